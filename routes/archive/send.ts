/**
 * `GET /archive` through the zero-copy path of downloads (routes/zero-copy.ts): tar headers,
 * sparse maps and padding are written by Node, and each large member's data goes from the file
 * to the socket with sendfile(2) on a native thread, never through JS.
 *
 * The response is chunked (its length is not known before the walk ends), so this writes the
 * HTTP/1.1 chunk framing itself (RFC 9112 §7.1): Node's bytes are gathered into chunks of up to
 * 256 KiB, and a member's data is one chunk whose size line goes out before the sendfile and
 * whose CRLF after it; `res.end()` writes the last chunk. Small members (under
 * ZERO_COPY_MIN_BYTES) are read through JS into the gathered bytes: a transfer's thread start
 * costs more than copying them. A file that shrank while sent is padded with zeros, as the JS
 * path does. A response Node does not chunk (an HTTP/1.0 client), or a socket without an fd,
 * takes the JS path instead.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import type { FastifyBaseLogger } from 'fastify';

import { socketFd } from '../../native/node-internals.js';
import { ZERO_COPY_MIN_BYTES, ownSocket, sendfileToSocket } from '../zero-copy.js';
import { type Piece, pieceBytes, readFileRange, shrank, zeros } from './pack.js';

/** Node's bytes are sent once this many are gathered (or before a sendfile). */
const GATHER = 256 * 1024;
const CRLF = Buffer.from('\r\n');

function write(socket: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) {
      reject(new Error('archive: the connection closed'));
      return;
    }
    if (socket.write(data)) {
      resolve();
      return;
    }
    const done = (err?: Error): void => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new Error('archive: the connection closed'));
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
}

/** One chunk (size line, data, CRLF) of `parts`, in one write. */
function chunk(parts: Buffer[], size: number): Buffer {
  return Buffer.concat([Buffer.from(`${size.toString(16)}\r\n`), ...parts, CRLF]);
}

/**
 * Sends the archive `pieces` as the body of `res`, whose status and headers the caller has set
 * but not sent (Fastify: hijack first). Resolves once the response has ended; rejects when the
 * walk failed or the client went away, with the response destroyed by then. The pieces are
 * iterated to the end or left with `return()`, which closes the file the walk has open.
 */
export async function sendArchive(
  res: ServerResponse,
  pieces: AsyncGenerator<Piece>,
  signal: AbortSignal,
  log: FastifyBaseLogger,
): Promise<void> {
  try {
    const socket = await ownSocket(res);
    const fd = socketFd(socket);
    res.flushHeaders();
    if (fd < 0 || !res.chunkedEncoding) {
      await pipeline(Readable.from(pieceBytes(pieces, signal, log)), res);
      return;
    }
    let gathered: Buffer[] = [];
    let size = 0;
    const flush = async (): Promise<void> => {
      if (size === 0) return;
      const data = chunk(gathered, size);
      gathered = [];
      size = 0;
      await write(socket, data);
    };
    const gather = async (buf: Buffer): Promise<void> => {
      gathered.push(buf);
      size += buf.length;
      if (size >= GATHER) await flush();
    };
    for await (const piece of pieces) {
      if (Buffer.isBuffer(piece)) {
        await gather(piece);
        continue;
      }
      if (piece.length < ZERO_COPY_MIN_BYTES) {
        for await (const buf of readFileRange(piece, signal, log)) await gather(buf);
        continue;
      }
      await flush();
      await write(socket, Buffer.from(`${piece.length.toString(16)}\r\n`));
      const sent = await sendfileToSocket(socket, fd, piece.fd, piece.offset, piece.length);
      if (sent < piece.length) {
        shrank(piece, sent, log);
        for (const z of zeros(piece.length - sent)) await write(socket, z);
      }
      await write(socket, CRLF);
    }
    await flush();
    res.end();
  } catch (err) {
    res.destroy();
    throw err;
  }
}
