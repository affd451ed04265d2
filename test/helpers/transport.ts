/** What the client transport tests share: reading a body whole, an error's comparable shape, the zero-copy switch. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ClientError } from '../../client/index.js';
import type { FileClient } from '../../client/file-client.js';

export async function bodyOf(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** What a test compares of an error: its class, code, message, and the counts of a cut. */
export function shape(err: unknown): Record<string, unknown> {
  const e = err as {
    name?: unknown;
    code?: unknown;
    message?: unknown;
    received?: unknown;
    expected?: unknown;
  };
  return { name: e.name, code: e.code, message: e.message, received: e.received, expected: e.expected };
}

/** Runs `fn` with NULLGATE_ZERO_COPY_DOWNLOADS set to `mode` (undefined: unset). */
export async function withMode<T>(mode: string | undefined, fn: () => Promise<T>): Promise<T> {
  const before = process.env.NULLGATE_ZERO_COPY_DOWNLOADS;
  if (mode === undefined) delete process.env.NULLGATE_ZERO_COPY_DOWNLOADS;
  else process.env.NULLGATE_ZERO_COPY_DOWNLOADS = mode;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.NULLGATE_ZERO_COPY_DOWNLOADS;
    else process.env.NULLGATE_ZERO_COPY_DOWNLOADS = before;
  }
}

/**
 * The simple verbs' file methods, one after the other, in a directory of their own (`/same-TAG`):
 * mkdir (new, then existing), put, stat, move, list, remove, stat of the removed directory. What
 * each answered, to compare a transport with another.
 */
export async function simpleVerbAnswers(client: FileClient, tag: string, work: string): Promise<unknown[]> {
  const dir = `/same-${tag}`;
  const steps: unknown[] = [];
  steps.push(await client.mkdir(dir), await client.mkdir(dir));
  writeFileSync(path.join(work, 'up.txt'), 'uploaded\n');
  const up = await client.put(path.join(work, 'up.txt'), `${dir}/up.txt`);
  steps.push({ size: up.size, created: up.created });
  const st = await client.stat(`${dir}/up.txt`);
  steps.push({ type: st.type, size: st.size, contentType: st.contentType, mode: st.mode });
  steps.push(await client.move(`${dir}/up.txt`, `${dir}/moved.txt`));
  const listing = await client.list(dir);
  steps.push(listing.entries.map((e) => [e.name, e.type, e.size]));
  await client.remove(dir, { recursive: true });
  steps.push(await client.stat(dir).catch((e: unknown) => (e as ClientError).statusCode));
  return steps;
}
