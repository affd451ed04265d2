/**
 * Requests refused by a limit or by the HTTP parser, logged at warn with the reason and the peer,
 * rate-limited per status and uid: a flood logs one line per window (with the count of the rest).
 */
import type { FastifyBaseLogger } from 'fastify';
import type { PeerCredentials } from '../native/binding.js';
import { RateLimitedLog } from '../core/limits.js';

/** Tells the log that a request was refused with `status` for `reason`. */
export type LimitHit = (status: number, reason: string, peer: PeerCredentials | undefined) => void;

interface Refusal {
  readonly status: number;
  readonly reason: string;
  readonly peer: PeerCredentials | undefined;
}

const LIMIT_LOG_WINDOW_MS = 10_000;

/**
 * `log` is asked for the logger when a line is written, so the log can be made before the app
 * whose logger it uses (the app's options need `hit`). `flush` writes the pending counts.
 */
export function limitLog(log: () => FastifyBaseLogger): { readonly hit: LimitHit; flush(): void } {
  const refusals = new RateLimitedLog<Refusal>(LIMIT_LOG_WINDOW_MS, ({ status, reason, peer }, suppressed) =>
    log().warn(
      { peer, status, reason, suppressed },
      suppressed === 0
        ? `request refused: ${reason}`
        : `request refused: ${suppressed} more like the last one`,
    ),
  );
  return {
    hit: (status, reason, peer) => refusals.event(`${status}:${peer?.uid ?? '-'}`, { status, reason, peer }),
    flush: () => refusals.flush(),
  };
}
