// The ceiling for small files with Fastify on this machine: Fastify 5 answering every
// GET /files/* with the same 1 KiB from memory (no file system at all). nullgate's 1 KiB GET can
// come close to this, never beyond it. argv: ADDRESS. Prints "ready".
import { Buffer } from 'node:buffer';
import Fastify from 'fastify';
// listen.js alone: the whole gateway (Fastify included) would count in this baseline's memory.
import { listenAbstract } from '../../dist/gateway/listen.js';

const [address] = process.argv.slice(2);
if (!address) throw new Error('usage: fastify-const.mjs ADDRESS');
const body = Buffer.alloc(1024, 0x61);
const app = Fastify({ logger: false, keepAliveTimeout: 60_000 });
app.get('/files/*', (_request, reply) => reply.type('application/octet-stream').send(body));
await app.ready();
await listenAbstract(app.server, address);
process.stdout.write('ready\n');
process.on('SIGTERM', () => process.exit(0));
