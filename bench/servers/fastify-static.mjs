// The Node baseline issue 8 names: Fastify 5 + @fastify/static 9 with its defaults, the way a
// Fastify user would serve files.
//   GET/HEAD /files/<path>   @fastify/static (Range, ETag, Last-Modified; 16 KiB reads by default)
//   PUT /files/<path>        body streamed into a temporary file, then renamed (no fsync, like nginx DAV)
// argv: ADDRESS ROOT. Listens on the exact-length address via nullgate's listenAbstract (Node 20
// pads abstract names to 108 bytes itself) and prints "ready".
import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import fastifyStatic from '@fastify/static';
import Fastify from 'fastify';
// listen.js alone: the whole gateway (Fastify included) would count in this baseline's memory.
import { listenAbstract } from '../../dist/gateway/listen.js';

const [address, root] = process.argv.slice(2);
if (!address || !root) throw new Error('usage: fastify-static.mjs ADDRESS ROOT');
const ROOT = path.resolve(root);

const app = Fastify({ logger: false, keepAliveTimeout: 60_000 });
await app.register(fastifyStatic, { root: ROOT, prefix: '/files/', index: false });
app.addContentTypeParser('*', (_request, _payload, done) => done(null));
app.put('/files/*', async (request, reply) => {
  const rel = path.posix.normalize(`/${request.params['*']}`);
  const file = path.join(ROOT, rel);
  if (!file.startsWith(ROOT + path.sep)) return reply.code(400).send('bad path\n');
  const temp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await pipeline(request.raw, createWriteStream(temp));
    await rename(temp, file);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  return reply.code(201).send();
});

await app.ready();
await listenAbstract(app.server, address);
process.stdout.write('ready\n');
process.on('SIGTERM', () => process.exit(0));
