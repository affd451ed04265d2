/**
 * `nullgate request [-X METHOD] [-H 'K: V']... [-d DATA | --data-binary @FILE | -T FILE]
 * [-o FILE] [-i] [-I] [-f] [-s] [-v] PATH`: one raw HTTP request with curl's semantics, for
 * the endpoints that are not files (`/health`, `/whoami`) and for anything the file verbs do not
 * cover. Parsing is pure; files named by `@FILE` and `-T` are read only when the request runs.
 */
import { type CommandSpec, parseCommand } from '../../core/argv.js';
import { usageError } from '../../core/errors.js';
import { encodeNameComponent } from '../../core/name-bytes.js';
import { promises as fsp } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { escapeControls } from '../../core/terminal-text.js';
import { LocalFileError, responseError } from '../client-error.js';
import { localTarget, saveTo } from '../local-file.js';
import {
  type CommonOptions,
  type Env,
  commonOptions,
  expectPositionals,
  parseCommon,
  toStdout,
  withClient,
} from './common.js';

/** One -d / --data-binary / --data-raw argument, as curl reads it. */
export type DataPart =
  | { readonly kind: 'text'; readonly text: string }
  /** `-d @FILE` strips CR and LF (curl); `--data-binary @FILE` keeps every byte. '-' is stdin. */
  | { readonly kind: 'file'; readonly file: string; readonly binary: boolean };

export type RequestBody =
  | { readonly kind: 'none' }
  | { readonly kind: 'data'; readonly parts: readonly DataPart[] }
  /** -T FILE ('-' is stdin): streamed as is. */
  | { readonly kind: 'upload'; readonly file: string };

export interface RequestArgs {
  readonly common: CommonOptions;
  readonly method: string;
  /** The URL path with its query (`/files/x?y=1`). */
  readonly path: string;
  /** Headers to send; a null value removes a default (curl's `-H 'Name:'`). */
  readonly headers: readonly (readonly [string, string | null])[];
  readonly body: RequestBody;
  /** undefined: standard output. */
  readonly output: string | undefined;
  readonly include: boolean;
  readonly head: boolean;
  readonly fail: boolean;
  readonly verbose: boolean;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export function parseHeader(text: string): readonly [string, string | null] {
  const colon = text.indexOf(':');
  if (colon === -1) {
    // curl: `-H 'Name;'` sends the header with an empty value.
    if (text.endsWith(';') && TOKEN.test(text.slice(0, -1))) return [text.slice(0, -1), ''];
    throw usageError(`request -H takes 'Name: value', got "${text}"`);
  }
  const name = text.slice(0, colon).trim();
  const value = text.slice(colon + 1).trim();
  if (!TOKEN.test(name)) throw usageError(`request -H: "${name}" is not a valid header name`);
  if (/[\r\n\0]/.test(value)) throw usageError(`request -H ${name}: the value may not contain CR, LF or NUL`);
  return [name, value === '' ? null : value];
}

/** `/health`, or a full `http://localhost/health` as curl users paste it. */
export function parseTarget(text: string): string {
  if (/^https?:\/\//i.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw usageError(`request: "${text}" is not a valid URL`);
    }
    return `${url.pathname}${url.search}`;
  }
  if (!text.startsWith('/'))
    throw usageError(`request: PATH must start with '/' (like /health), got "${text}"`);
  if (/[\s\0]/.test(text))
    throw usageError(`request: PATH may not contain spaces or control characters (percent-encode them)`);
  return text;
}

function dataPart(text: string, binary: boolean, raw: boolean): DataPart {
  if (!raw && text.startsWith('@')) {
    const file = text.slice(1);
    if (file === '') throw usageError('request: @ needs a file name (or @- for standard input)');
    return { kind: 'file', file, binary };
  }
  return { kind: 'text', text };
}

export const requestSpec = {
  name: 'request',
  usage: [
    `nullgate request [-X METHOD] [-H 'K: V']... [-d DATA | --data-binary @FILE | -T FILE] [-o FILE]
                 [-i] [-I] [-f] [-s] [-v] PATH`,
  ],
  summary:
    "One raw HTTP request, with curl's flags and semantics: for the endpoints that are not files (/health, /whoami) and anything the file verbs do not cover. Without -f an error status is printed like any other answer, and the exit code is 0.",
  operands: [
    ['PATH', 'the URL path with its query (/health, /files/x?y=1), or a full http://localhost/... URL'],
  ],
  options: {
    request: {
      type: 'string',
      short: 'X',
      value: 'METHOD',
      help: 'the method (default GET; POST with -d, PUT with -T, HEAD with -I)',
    },
    header: {
      type: 'string',
      short: 'H',
      multiple: true,
      value: "'K: V'",
      help: "add a header (repeatable); 'Name:' removes a default header, 'Name;' sends it empty",
    },
    data: {
      type: 'string',
      short: 'd',
      multiple: true,
      value: 'DATA',
      help: 'a POST body (application/x-www-form-urlencoded); repeated ones are joined with &; @FILE reads FILE without CR/LF, @- standard input',
    },
    'data-binary': {
      type: 'string',
      multiple: true,
      value: 'DATA',
      help: 'like -d, but @FILE is sent byte for byte (streamed when it is the only data)',
    },
    'data-raw': {
      type: 'string',
      multiple: true,
      value: 'DATA',
      help: 'like -d, but a leading @ is literal',
    },
    'upload-file': {
      type: 'string',
      short: 'T',
      value: 'FILE',
      help: "stream FILE (- for standard input) as a PUT body; a PATH ending in / gets FILE's name appended",
    },
    output: {
      type: 'string',
      short: 'o',
      value: 'FILE',
      help: 'write the output to FILE (a temporary name, then rename)',
    },
    include: { type: 'boolean', short: 'i', help: 'print the status line and headers before the body' },
    head: { type: 'boolean', short: 'I', help: 'HEAD; print the status line and headers' },
    fail: {
      type: 'boolean',
      short: 'f',
      help: 'an HTTP status >= 400 prints one error line and exits 22, with no body output',
    },
    verbose: {
      type: 'boolean',
      short: 'v',
      help: 'print the request (> ) and response (< ) headers to standard error',
    },
    ...commonOptions,
  },
} as const satisfies CommandSpec;

export function parseRequestArgs(argv: string[], env: Env = process.env): RequestArgs {
  const { values, positionals, tokens } = parseCommand(requestSpec, argv);
  const [target] = expectPositionals('request', positionals, ['PATH']) as [string];
  const common = parseCommon(values, env);
  let urlPath = parseTarget(target);

  // Data options keep their command-line order, as curl joins them with '&' in that order.
  const parts: DataPart[] = [];
  for (const t of tokens) {
    if (t.kind !== 'option' || t.value === undefined) continue;
    if (t.name === 'data') parts.push(dataPart(t.value, false, false));
    else if (t.name === 'data-binary') parts.push(dataPart(t.value, true, false));
    else if (t.name === 'data-raw') parts.push(dataPart(t.value, false, true));
  }
  const upload = values['upload-file'];
  if (upload !== undefined && parts.length > 0)
    throw usageError('request: give -d/--data-binary or -T, not both');
  if (upload === '') throw usageError('request -T: empty file name');
  const head = values.head === true;
  if (head && (upload !== undefined || parts.length > 0)) {
    throw usageError('request: -I (HEAD) sends no body; drop -d/--data-binary/-T');
  }

  let body: RequestBody = { kind: 'none' };
  let method = 'GET';
  if (upload !== undefined) {
    body = { kind: 'upload', file: upload };
    method = 'PUT';
    // curl -T FILE URL/ appends the file's name to a URL that ends in '/'.
    if (urlPath.split('?')[0]!.endsWith('/') && upload !== '-') {
      const q = urlPath.indexOf('?');
      const name = encodeNameComponent(path.basename(upload));
      urlPath = q === -1 ? urlPath + name : urlPath.slice(0, q) + name + urlPath.slice(q);
    }
  } else if (parts.length > 0) {
    body = { kind: 'data', parts };
    method = 'POST';
  }
  if (head) method = 'HEAD';
  const explicit = values.request;
  if (explicit !== undefined) {
    if (!TOKEN.test(explicit)) throw usageError(`request -X: "${explicit}" is not a valid method`);
    method = explicit;
  }

  const headers = (values.header ?? []).map(parseHeader);
  const output = values.output === undefined || values.output === '-' ? undefined : values.output;
  if (values.output === '') throw usageError('request -o: empty file name');
  return {
    common,
    method,
    path: urlPath,
    headers,
    body,
    output,
    include: values.include === true,
    head,
    fail: values.fail === true,
    verbose: values.verbose === true,
  };
}

async function readAll(file: string): Promise<Buffer> {
  try {
    if (file === '-') {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
      return Buffer.concat(chunks);
    }
    return await fsp.readFile(file);
  } catch (err) {
    throw new LocalFileError('read', file === '-' ? 'standard input' : file, err);
  }
}

interface ResolvedBody {
  readonly body: string | Buffer | Readable | undefined;
  readonly length: number | undefined;
  readonly type: string | undefined;
}

async function openUpload(file: string): Promise<{ stream: Readable; length: number | undefined }> {
  if (file === '-') return { stream: process.stdin, length: undefined };
  try {
    const fh = await fsp.open(file, 'r');
    const st = await fh.stat().catch(async (err: unknown) => {
      await fh.close();
      throw err;
    });
    if (st.isDirectory()) {
      await fh.close();
      throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    }
    return { stream: fh.createReadStream(), length: st.isFile() ? st.size : undefined };
  } catch (err) {
    throw new LocalFileError('read', file, err);
  }
}

/** Reads what -d/--data-binary name and opens what -T names. */
export async function resolveBody(body: RequestBody): Promise<ResolvedBody> {
  if (body.kind === 'none') return { body: undefined, length: undefined, type: undefined };
  if (body.kind === 'upload') {
    const { stream, length } = await openUpload(body.file);
    return { body: stream, length, type: undefined };
  }
  const form = 'application/x-www-form-urlencoded';
  const [only] = body.parts;
  if (body.parts.length === 1 && only?.kind === 'file' && only.binary && only.file !== '-') {
    // A single --data-binary @FILE is streamed rather than read into memory.
    const { stream, length } = await openUpload(only.file);
    return { body: stream, length, type: form };
  }
  const chunks: Buffer[] = [];
  for (const [i, part] of body.parts.entries()) {
    if (i > 0) chunks.push(Buffer.from('&'));
    if (part.kind === 'text') chunks.push(Buffer.from(part.text));
    else {
      const data = await readAll(part.file);
      chunks.push(part.binary ? data : Buffer.from(data.toString('latin1').replace(/[\r\n]/g, ''), 'latin1'));
    }
  }
  const data = Buffer.concat(chunks);
  return { body: data, length: data.length, type: form };
}

/**
 * The status line and header fields as curl -i prints them. Field values may carry obs-text
 * (RFC 9110 §5.5), which arrives as C1 characters: escaped, as everything printed from the server.
 */
export function formatHead(statusCode: number, headers: Dispatcher.ResponseData['headers']): string {
  let text = `HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode] ?? ''}`.trimEnd() + '\r\n';
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      text += `${escapeControls(name)}: ${escapeControls(v)}\r\n`;
    }
  }
  return `${text}\r\n`;
}

function contentLength(headers: Dispatcher.ResponseData['headers']): number | undefined {
  const v = headers['content-length'];
  return typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
}

async function* withHead(
  head: string | undefined,
  body: AsyncIterable<Buffer> | undefined,
): AsyncGenerator<Buffer> {
  // A consumer that stops early (stdout gone) destroys the undici body, which then emits
  // UND_ERR_ABORTED: heard here, so it cannot crash the process.
  (body as Partial<Readable> | undefined)?.on?.('error', () => undefined);
  if (head !== undefined) yield Buffer.from(head);
  if (body) yield* body;
}

export async function requestCommand(argv: string[]): Promise<void> {
  const args = parseRequestArgs(argv);
  return withClient(
    args.common,
    (socket) => `${args.method} ${args.path} on ${socket}`,
    async (client) => {
      const resolved = await resolveBody(args.body);
      const fields = new Map<string, string>();
      if (resolved.type !== undefined) fields.set('content-type', resolved.type);
      if (resolved.length !== undefined) fields.set('content-length', String(resolved.length));
      for (const [name, value] of args.headers) {
        if (value === null) fields.delete(name.toLowerCase());
        else fields.set(name.toLowerCase(), value);
      }
      const headers = Object.fromEntries(fields);
      if (args.verbose) {
        let text = `> ${args.method} ${args.path} HTTP/1.1\n> host: localhost\n`;
        for (const [k, v] of Object.entries(headers)) text += `> ${k}: ${v}\n`;
        process.stderr.write(`* connecting to ${client.socket}\n${text}>\n`);
      }
      const res = await client.request(args.method, args.path, {
        headers,
        body: resolved.body ?? null,
      });
      const head = formatHead(res.statusCode, res.headers);
      if (args.verbose) {
        process.stderr.write(
          head
            .trimEnd()
            .split('\r\n')
            .map((l) => `< ${l}\n`)
            .join('') + '<\n',
        );
      }
      if (args.fail && res.statusCode >= 400) {
        throw await responseError(res, args.method, args.path, client.socket);
      }
      const showHead = args.include || args.head ? head : undefined;
      const body = args.head || args.method === 'HEAD' ? undefined : (res.body as AsyncIterable<Buffer>);
      if (body === undefined) await res.body.dump();
      const bodyLength = body === undefined ? 0 : contentLength(res.headers);
      const length =
        bodyLength === undefined ? undefined : bodyLength + (showHead ? Buffer.byteLength(showHead) : 0);
      if (args.output !== undefined) {
        // The same rules as get -o: a temporary name renamed when complete, devices in place.
        await saveTo(await localTarget(args.output), withHead(showHead, body), 'replace', { length });
      } else await toStdout(withHead(showHead, body), process.stdout, length);
      return;
    },
  );
}
