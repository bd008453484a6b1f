import type { Logger } from 'pino';
import { type BackgroundLoop, startLoop } from '../lifecycle/background-loop.js';
import type { Inbox } from './inbox.js';

// Expiry without a request touching the user: this loop applies passed expiries through the
// change protocol (Inbox.expire: intents, ONE conditional statement per batch whose changed rows
// are the deltas, the deltas), so an expired notification leaves every count and list within
// about one interval of its expiresAt. Every worker runs it; two workers racing on the same rows
// change each row once (`NOT expired` in the statement).

/** Rows expired per statement; a fuller batch runs the next one at once. */
const EXPIRE_BATCH = 500;

export function startExpiry(deps: { inbox: Pick<Inbox, 'expire'>; log: Logger }, options: { intervalMs: number }): BackgroundLoop {
  return startLoop({
    name: 'inbox expiry',
    log: deps.log,
    intervalMs: options.intervalMs,
    step: async () => ((await deps.inbox.expire(EXPIRE_BATCH)) >= EXPIRE_BATCH ? 'again' : undefined),
  });
}
