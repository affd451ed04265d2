/**
 * The access log: one line per request at info, written when its response is over, however it
 * was sent (through Fastify, hijacked for a zero-copy body, or cut short), with the bytes it put
 * on the wire.
 */
import type { Socket } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** Bytes already counted in an access line, per connection. */
const loggedBytes = Symbol('nullgate.loggedBytes');
type CountedSocket = Socket & { [loggedBytes]?: number };

/** True when the request's logger writes info lines (the access line costs two listeners a request). */
export function accessLogged(request: FastifyRequest): boolean {
  return (request.log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('info') === true;
}

/** Writes the request's access line when its response is over; call it from onRequest. */
export function accessLine(request: FastifyRequest, reply: FastifyReply): void {
  const socket = request.raw.socket as CountedSocket;
  // What this response put on the wire, headers included (nginx's $bytes_sent), however it
  // was sent: the socket's bytesWritten from here to the response's last write (inject()
  // sockets have no count: 0). 'prefinish' is that last write; waiting for 'close' would also
  // count a pipelined successor, which Node starts writing before this one's 'close'.
  const startBytes = socket.bytesWritten ?? 0;
  const res = reply.raw;
  let bytes = -1;
  const settle = (): void => {
    if (bytes >= 0) return;
    const endBytes = socket.bytesWritten ?? 0;
    // Pipelined responses share the socket: each counts from where the previous one's ended.
    bytes = endBytes - Math.max(startBytes, socket[loggedBytes] ?? 0);
    socket[loggedBytes] = endBytes;
  };
  res.on('prefinish', settle);
  // One access line per request, written when the response is over — also for responses
  // that leave Fastify's lifecycle (zero-copy downloads hijack the reply) or are cut short.
  res.on('close', () => {
    settle();
    const { pid, uid, gid, root } = request.peer;
    const finished = res.writableFinished;
    if (finished && request.method !== 'HEAD' && res.statusCode !== 304) {
      // A zero-copy body (sendfile, routes/zero-copy.ts) goes around the socket's count. A
      // finished response that wrote fewer bytes than its Content-Length through Node can only
      // be one of those, and it was sent whole.
      const length = Number(res.getHeader('content-length') ?? 0);
      if (bytes < length) bytes += length;
    }
    const url = request.originalUrl;
    const query = url.indexOf('?');
    request.log.info(
      {
        peer: { pid, uid, gid },
        ...(root === undefined ? {} : { export: root }),
        method: request.method,
        path: query === -1 ? url : url.slice(0, query),
        status: res.statusCode,
        bytes,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        ...(finished ? {} : { aborted: true }),
      },
      'access',
    );
  });
}
