import type { EventRow } from '../events/event-row.js';
import type { Counted } from './aggregate.js';

// The event store's rows from what the processor counted: today's enriched fields, mapped as
// they are. A session is the visitor's UTC day here (a stand-in until sessions are tracked);
// columns the enricher does not know yet are NULL.

export function eventRows(siteId: string, counted: readonly Counted[]): EventRow[] {
  return counted.map(({ message: m, enriched: e }) => ({
    site_id: siteId,
    message_id: m.messageId,
    ts: e.at,
    type: m.type,
    kind: e.kind,
    name: e.event ?? null,
    visitor: e.visitor,
    session: `${e.visitor}:${new Date(e.at).toISOString().slice(0, 10)}`,
    user_id: e.user ?? null,
    hostname: null,
    page: e.page ?? null,
    entry_page: null,
    source: e.utmSource ?? e.referrer ?? 'Direct',
    referrer: null,
    referrer_host: e.referrer ?? null,
    utm_source: e.utmSource ?? null,
    utm_medium: null,
    utm_campaign: null,
    utm_term: null,
    utm_content: null,
    browser: e.browser,
    os: e.os,
    device: e.device,
    country: null,
    region: null,
    product: e.product ?? null,
    revenue: null,
    engaged_ms: e.engagedMs,
    props: {},
    bot: e.bot,
  }));
}
