import type { CollectedMessage } from '../collect/message.js';
import { durableName } from '../counters/analytics-counters.js';
import { type Keys, part } from '../storage/keys.js';
import type { BatchEvent, Op, OpBatch } from '../storage/realtime.js';

// What each message counts, as ops for the site's one atomic step per batch. Every counter here
// is durable (written behind to PostgreSQL) and lives in a hash {s:<site>}:<suffix>:
//   u:<visitor>     pageviews, clicks, products (distinct products clicked)
//   ue:<visitor>    one field per track event name
//   p:<product>     clicks, users (distinct users who clicked it)
//   pu:<product>    one field per user: that user's clicks on the product (its first click
//                   makes the distinct counts above move, exactly)

/** A retried message (same site + messageId) is recognised for at least 24 hours. */
export const DEDUPE_TTL_SECONDS = 25 * 60 * 60;

export const PRODUCT_CLICKED = 'Product Clicked';

export function visitorOf(m: CollectedMessage): string {
  return (m.userId ?? m.anonymousId) as string;
}

/** The product of a `Product Clicked` track, or undefined. */
export function clickedProduct(m: CollectedMessage): string | undefined {
  if (m.type !== 'track' || m.event !== PRODUCT_CLICKED) return undefined;
  const id = m.properties['product_id'];
  if (typeof id === 'string' && id !== '' && id.length <= 256) return id;
  if (typeof id === 'number' && Number.isFinite(id)) return String(id);
  return undefined;
}

export function createAggregator(keys: Keys) {
  function counter(siteId: string, suffix: string, field: string, onFirst?: Op[]): Op {
    const op: Op = {
      op: 'count',
      key: keys.siteKey(siteId, suffix),
      field,
      by: 1,
      durable: { buffer: keys.analyticsBuffer(siteId), name: durableName(suffix, field) },
    };
    if (onFirst) op.onFirst = onFirst;
    return op;
  }

  function messageOps(siteId: string, m: CollectedMessage): Op[] {
    const visitor = part(visitorOf(m));
    const ops: Op[] = [];
    if (m.type === 'page' || m.type === 'screen') ops.push(counter(siteId, `u:${visitor}`, 'pageviews'));
    if (m.type === 'track' && m.event !== undefined) ops.push(counter(siteId, `ue:${visitor}`, m.event));
    const product = clickedProduct(m);
    if (product !== undefined) {
      const p = part(product);
      ops.push(
        counter(siteId, `u:${visitor}`, 'clicks'),
        counter(siteId, `p:${p}`, 'clicks'),
        counter(siteId, `pu:${p}`, visitor, [counter(siteId, `u:${visitor}`, 'products'), counter(siteId, `p:${p}`, 'users')]),
      );
    }
    return ops;
  }

  /** One site's messages as one batch: each event is deduplicated by its messageId. */
  return function buildBatch(siteId: string, messages: readonly CollectedMessage[]): OpBatch {
    const events: BatchEvent[] = messages.map((m) => ({
      dedupeKey: keys.dedupe(siteId, m.messageId),
      ops: messageOps(siteId, m),
    }));
    return { dedupeTtlSeconds: DEDUPE_TTL_SECONDS, events, tail: [] };
  };
}
