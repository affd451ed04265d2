// The Node baseline for `npm run bench`: plain node:http + fs.createReadStream, the way a Node
// file server is usually written (what @fastify/static does underneath, minus the framework).
//   GET /files/<name>   fs.createReadStream (Node's default 64 KiB chunks), async stat/open
//   PUT /files/<name>   body streamed into a temporary file, then renamed (no fsync, like nginx DAV)
// With a third argument `zerocopy`, GET bodies go through routes/zero-copy.ts's sendFileRange
// instead (sendfile(2) on a native thread): the zero-copy primitive measured on its own.
// argv: ADDRESS ROOT [zerocopy]. Listens on the exact-length address via nullgate's listenAbstract (Node 20
// pads abstract names to 108 bytes itself) and prints "ready".
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
// listen.js alone: the whole gateway (Fastify included) would count in this baseline's memory.
import { listenAbstract } from '../../dist/gateway/listen.js';
import { sendFileRange } from '../../dist/routes/zero-copy.js';

const [address, root, mode] = process.argv.slice(2);
const zeroCopy = mode === 'zerocopy';
if (!address || !root) throw new Error('usage: node-baseline.mjs ADDRESS ROOT');
const PREFIX = '/files/';

function fail(res, status) {
  if (res.headersSent) return res.destroy();
  res.writeHead(status, { 'content-length': 0 });
  res.end();
}

async function handle(req, res) {
  const url = (req.url ?? '/').split('?')[0];
  const name = decodeURIComponent(url.slice(PREFIX.length));
  if (!url.startsWith(PREFIX) || name.includes('..')) return fail(res, 404);
  const file = path.join(root, name);
  if (zeroCopy && req.method === 'GET') {
    let fh;
    try {
      fh = await open(file, 'r');
    } catch {
      return fail(res, 404);
    }
    try {
      const { size } = await fh.stat();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
      if (size === 0) return res.end();
      await sendFileRange(res, fh.fd, 0, size - 1).catch(() => undefined);
    } finally {
      await fh.close();
    }
    return;
  }
  if (req.method === 'GET' || req.method === 'HEAD') {
    let st;
    try {
      st = await stat(file);
    } catch {
      return fail(res, 404);
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': st.size });
    if (req.method === 'HEAD') return res.end();
    await pipeline(createReadStream(file), res);
    return;
  }
  if (req.method === 'PUT') {
    const temp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      await pipeline(req, createWriteStream(temp));
      await rename(temp, file);
    } catch {
      await unlink(temp).catch(() => undefined);
      return fail(res, 500);
    }
    res.writeHead(201, { 'content-length': 0 });
    return res.end();
  }
  return fail(res, 405);
}

const server = createServer((req, res) => {
  handle(req, res).catch(() => res.destroy());
});
server.keepAliveTimeout = 60_000;
await listenAbstract(server, address);
process.stdout.write('ready\n');
process.on('SIGTERM', () => process.exit(0));
