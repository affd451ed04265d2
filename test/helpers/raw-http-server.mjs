// A raw HTTP/1.1 server in a process of its own, for clients that read with blocking calls
// (client/blocking-transport.ts): a server on the test's own event loop could not answer them.
// Answers what nullgate's server never sends, by request target. Run by test/helpers/raw-http.ts:
//   node raw-http-server.mjs NAME BODY_FILE
// prints "ready" once listening on the abstract NAME (exact length), serves until killed.
//
//   /files/body          200, BODY with a Content-Length (a Range bytes=N- gets a 206 of the rest)
//   /files/cut           200, BODY announced, CUT bytes sent, then the end
//   /files/stall         200, BODY announced, CUT bytes sent, then silence
//   /files/silent        nothing at all: the connection stays open
//   /files/hangup        the connection closed before any answer
//   /files/chunked       BODY in chunks of many sizes (extensions, a trailer), written piecemeal
//   /files/chunked-bad   a chunk size that is no hex number
//   /files/interim       103 Early Hints, then 200 with BODY
//   /files/until-close   BODY with neither length nor chunking: it ends with the connection
//   /files/bad-head      a header with a space before its colon
//   /files/overflow      a head of 20 KiB
//   anything else        404, empty
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { setImmediate, setTimeout } from 'node:timers';
import { listenAbstract } from '../../dist/gateway/listen.js';

const [name, bodyFile] = process.argv.slice(2);
const BODY = readFileSync(bodyFile);
const CUT = Math.floor(BODY.length / 3);
const LAST_MODIFIED = 'Tue, 01 Dec 2026 10:00:00 GMT';

function chunked(socket) {
  socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
  const pieces = [];
  for (let at = 0, size = 1; at < BODY.length; size = (size * 7 + 3) % 70_001) {
    const part = BODY.subarray(at, at + size);
    at += part.length;
    pieces.push(
      Buffer.concat([
        Buffer.from(`${part.length.toString(16)};n=${pieces.length}\r\n`),
        part,
        Buffer.from('\r\n'),
      ]),
    );
  }
  pieces.push(Buffer.from('0\r\nx-trailer: done\r\n\r\n'));
  const wire = Buffer.concat(pieces);
  // Written in odd slices, so that lines and chunks straddle reads.
  let at = 0;
  const next = () => {
    if (at >= wire.length) return socket.end();
    const n = 1 + ((at * 13) % 50_000);
    socket.write(wire.subarray(at, at + n));
    at += n;
    setImmediate(next);
  };
  next();
}

const server = net.createServer((socket) => {
  socket.on('error', () => undefined);
  let head = '';
  socket.on('data', (chunk) => {
    if (head.includes('\r\n\r\n')) return;
    head += chunk.toString('latin1');
    if (!head.includes('\r\n\r\n')) return;
    const target = head.split(' ')[1];
    const range = /\r\nrange: bytes=(\d+)-\r\n/i.exec(head);
    const dated = `last-modified: ${LAST_MODIFIED}\r\ndate: ${new Date().toUTCString()}\r\n`;
    switch (target) {
      case '/files/body':
        if (range) {
          const from = Number(range[1]);
          socket.write(
            `HTTP/1.1 206 Partial Content\r\n${dated}content-range: bytes ${from}-${BODY.length - 1}/${BODY.length}\r\ncontent-length: ${BODY.length - from}\r\n\r\n`,
          );
          socket.end(BODY.subarray(from));
        } else {
          socket.write(`HTTP/1.1 200 OK\r\n${dated}content-length: ${BODY.length}\r\n\r\n`);
          socket.end(BODY);
        }
        return;
      case '/files/cut':
      case '/files/stall':
        socket.write(`HTTP/1.1 200 OK\r\n${dated}content-length: ${BODY.length}\r\n\r\n`);
        if (target === '/files/cut') socket.end(BODY.subarray(0, CUT));
        else socket.write(BODY.subarray(0, CUT));
        return;
      case '/files/silent':
        return;
      case '/files/hangup':
        socket.end();
        return;
      case '/files/chunked':
        chunked(socket);
        return;
      case '/files/chunked-bad':
        socket.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n');
        return;
      case '/files/interim':
        socket.write('HTTP/1.1 103 Early Hints\r\nlink: </x>; rel=preload\r\n\r\n');
        setTimeout(() => {
          socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${BODY.length}\r\n\r\n`);
          socket.end(BODY);
        }, 20);
        return;
      case '/files/until-close':
        socket.write('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n');
        socket.end(BODY);
        return;
      case '/files/bad-head':
        socket.end('HTTP/1.1 200 OK\r\nx-a : 1\r\ncontent-length: 2\r\n\r\nhi');
        return;
      case '/files/overflow':
        socket.end(`HTTP/1.1 200 OK\r\nx-a: ${'a'.repeat(20 * 1024)}\r\ncontent-length: 2\r\n\r\nhi`);
        return;
      default:
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
    }
  });
});
await listenAbstract(server, name);
process.stdout.write('ready\n');
