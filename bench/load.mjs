// The keep-alive load client of `npm run bench` (no autocannon needed): CONNS connections, each
// with one request in flight (like autocannon's default), for DURATION ms; counts responses by
// their Content-Length. Prints one JSON line: requests, errors, seconds, p50/p99 latency (ms) and
// the client's own CPU share, so a client-bound result shows as such.
//   node bench/load.mjs ADDRESS URL_PATH CONNS DURATION_MS
import { Buffer } from 'node:buffer';
import { Socket } from 'node:net';
import { setTimeout } from 'node:timers';
import { parseAddress } from '../dist/core/address.js';
import { connectFd } from '../dist/native/socket.js';

const [address, urlPath, connsArg, durationArg] = process.argv.slice(2);
const conns = Number(connsArg);
const duration = Number(durationArg);
if (!address || !urlPath || !(conns > 0) || !(duration > 0)) {
  throw new Error('usage: load.mjs ADDRESS URL_PATH CONNS DURATION_MS');
}
const request = Buffer.from(`GET ${urlPath} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
const target = parseAddress(address);

// Latency histogram in 10 µs buckets up to 2 s.
const BUCKET_US = 10;
const histogram = new Uint32Array(200_000);
let requests = 0;
let errors = 0;
let open = 0;
let running = true;
// Per connection: from its first connect attempt to its first whole answer, and the connect
// alone (a full backlog makes it retry), in ms: where a slow first answer comes from.
const firstAnswers = [];
const connectWaits = [];
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();

function percentile(p) {
  const want = Math.ceil(requests * p);
  let seen = 0;
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i];
    if (seen >= want && want > 0) return ((i + 1) * BUCKET_US) / 1000;
  }
  return NaN;
}

/** The q-quantile of `values` (ms, rounded to 0.1), NaN when there are none. */
function quantile(values, q) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * q) - 1)] * 10) / 10;
}

function finish() {
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const result = {
    requests,
    errors,
    seconds,
    rps: requests / seconds,
    p50ms: percentile(0.5),
    p99ms: percentile(0.99),
    clientCpuPct: ((cpu.user + cpu.system) / 1e6 / seconds) * 100,
    firstAnswerP50ms: quantile(firstAnswers, 0.5),
    firstAnswerP90ms: quantile(firstAnswers, 0.9),
    firstAnswerP99ms: quantile(firstAnswers, 0.99),
    firstAnswerMaxMs: quantile(firstAnswers, 1),
    connectMaxMs: quantile(connectWaits, 1),
    unanswered: conns - firstAnswers.length,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

/**
 * A connected fd. A full listen backlog answers EAGAIN on unix sockets (not a queued SYN as on
 * TCP): retry shortly, as nullgate's own connector does, for up to 5 s.
 */
async function connectRetrying() {
  for (const t0 = Date.now(); ;) {
    try {
      return connectFd(target);
    } catch (err) {
      if (err.code !== 'EAGAIN' || Date.now() - t0 > 5000) throw err;
      await new Promise((r) => setTimeout(r, 2));
    }
  }
}

async function connection() {
  const startedAt = process.hrtime.bigint();
  let answered = false;
  let fd;
  try {
    fd = await connectRetrying();
    connectWaits.push(Number(process.hrtime.bigint() - startedAt) / 1e6);
  } catch {
    errors++;
    return;
  }
  const socket = new Socket({ fd, readable: true, writable: true });
  open++;
  let pending = null;
  let remaining = -1; // body bytes still to skip; -1 while reading a head
  let status = 0;
  let sentAt = 0n;
  const send = () => {
    sentAt = process.hrtime.bigint();
    socket.write(request);
  };
  const complete = () => {
    const us = Number(process.hrtime.bigint() - sentAt) / 1000;
    histogram[Math.min(histogram.length - 1, Math.floor(us / BUCKET_US))]++;
    if (status >= 200 && status < 300) requests++;
    else errors++;
    if (!answered) {
      answered = true;
      firstAnswers.push(Number(process.hrtime.bigint() - startedAt) / 1e6);
    }
    remaining = -1;
    if (running) send();
    else socket.destroy();
  };
  socket.on('data', (chunk) => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = null;
    let pos = 0;
    while (pos < buf.length || remaining === 0) {
      if (remaining > 0) {
        const take = Math.min(remaining, buf.length - pos);
        pos += take;
        remaining -= take;
        if (remaining > 0) break;
        complete();
        continue;
      }
      if (remaining === 0) {
        complete();
        continue;
      }
      const end = buf.indexOf('\r\n\r\n', pos);
      if (end === -1) {
        pending = buf.subarray(pos);
        break;
      }
      status = Number(buf.toString('latin1', pos + 9, pos + 12));
      // "Content-Length:" is the only response header here ending in "ength:".
      const at = buf.indexOf('ength:', pos);
      remaining = at !== -1 && at < end ? Number.parseInt(buf.toString('latin1', at + 6, end), 10) : 0;
      pos = end + 4;
    }
    buf = null;
  });
  socket.on('error', () => {
    errors++;
  });
  socket.on('close', () => {
    if (--open === 0) finish();
  });
  send();
}

for (let i = 0; i < conns; i++) void connection();
setTimeout(() => {
  running = false;
  // Connections stop after their response in flight; bound that wait too.
  setTimeout(finish, 2000).unref();
}, duration);
