/**
 * Pipelined requests on one connection (answered in order, RFC 9112 §9.3.2), and two things
 * Node's HTTP server leaves undone for them:
 *
 * - When the connection closes, Node closes the response it is writing, not the ones queued
 *   behind it (`// Abort socket._httpMessage ?` in its _http_server.js): they never emit 'close',
 *   so what waits for that — a file stream piped into one, a zero-copy transfer waiting for the
 *   socket, the access line — waits forever, with its file open. They are closed here, as Node
 *   closes the one it was writing.
 * - Node stops reading a connection only while bytes pile up in the responses it writes; a body
 *   sent zero-copy, or a file not yet read, piles up none, so a client that sends thousands of
 *   GETs and reads nothing had the server open thousands of files. Here at most
 *   MAX_PIPELINED_REQUESTS requests of a connection run at once; the next waits, and reading
 *   stops until none waits (the requests already read by then wait too: what one read brings).
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { closeResponse, pauseHttpReading, resumeHttpReading } from '../native/node-internals.js';

interface Connection {
  /** Requests started and not yet closed. */
  running: number;
  /** Requests read and waiting for one of those to close, oldest first. */
  readonly waiting: ((go: boolean) => void)[];
  /** Every response of the connection that has not closed yet. */
  readonly responses: Set<ServerResponse>;
  /** Reading was stopped here (not by Node's own pause). */
  paused: boolean;
  closed: boolean;
  /** The 'close' listener of a response that started at once (one function per connection). */
  readonly startedClosed: (this: ServerResponse) => void;
}

const connections = new WeakMap<Socket, Connection>();

/**
 * Calls `go(true)` once the request that `res` answers may run: at once while fewer than `max`
 * requests of its connection run, otherwise when one of them closes. `go(false)` means the
 * connection closed first: do nothing more (the response is closed already).
 */
export function pipelineTurn(
  socket: Socket,
  res: ServerResponse,
  max: number,
  go: (run: boolean) => void,
): void {
  const conn = connectionOf(socket, max);
  if (conn.closed) {
    closeQueued(res);
    go(false);
    return;
  }
  conn.responses.add(res);
  // The common case, no request of the connection waiting: it runs now, and its close is
  // counted by the connection's one listener (no closures made per request).
  if (conn.running < max && conn.waiting.length === 0) {
    conn.running++;
    res.on('close', conn.startedClosed);
    go(true);
    return;
  }
  let started = false;
  res.once('close', () => {
    conn.responses.delete(res);
    if (!started) return;
    conn.running--;
    next(socket, conn, max);
  });
  conn.waiting.push((run: boolean): void => {
    if (run) {
      started = true;
      conn.running++;
    }
    go(run);
  });
  stopReading(socket, conn);
}

function connectionOf(socket: Socket, max: number): Connection {
  const known = connections.get(socket);
  if (known !== undefined) return known;
  const created: Connection = {
    running: 0,
    waiting: [],
    responses: new Set(),
    paused: false,
    closed: false,
    startedClosed(this: ServerResponse) {
      created.responses.delete(this);
      created.running--;
      next(socket, created, max);
    },
  };
  connections.set(socket, created);
  socket.once('close', () => {
    created.closed = true;
    for (const res of [...created.responses]) closeQueued(res);
    for (const start of created.waiting.splice(0)) start(false);
  });
  // Node resumes reading when its own queue drains ('drain' in _http_server.js); while requests
  // wait here, stop again (this runs in the same tick as Node's resume, before any read).
  socket.on('resume', () => {
    if (created.waiting.length > 0 && !created.closed) stopReading(socket, created);
  });
  return created;
}

function next(socket: Socket, conn: Connection, max: number): void {
  if (conn.closed) return;
  while (conn.running < max && conn.waiting.length > 0) conn.waiting.shift()!(true);
  if (conn.waiting.length === 0 && conn.paused) startReading(socket, conn);
}

// With Node's own pause flag (native/node-internals.ts), so that its other resume paths leave
// the socket paused too; resuming waits, as Node's does, for the socket's write buffer to drain.
function stopReading(socket: Socket, conn: Connection): void {
  if (pauseHttpReading(socket)) conn.paused = true;
}

function startReading(socket: Socket, conn: Connection): void {
  conn.paused = false;
  resumeHttpReading(socket);
}

/**
 * A response the connection closed under before it got the socket: close it as Node closes the
 * one it was writing (emitCloseNT: destroyed, `closed`, then 'close'), so that what is piped
 * into it later is destroyed at once (stream.finished reads `closed`). One that has the socket,
 * or finished, Node closes itself.
 */
function closeQueued(res: ServerResponse): void {
  if (res.socket !== null || res.writableFinished || res.closed) return;
  closeResponse(res);
}
