import type { EventStore } from '../events/event-store.js';
import type { EventRows } from './event-rows.js';
import type { BatchSink } from './processor.js';

// Every processed event into the columnar store, each (site, messageId) once. New messages (the
// atomic step counted them) are written as they are. Messages of entries delivered again may be
// in the store already (a crash between the write and the acknowledgement): the store is asked
// which, and only the others are written, in a segment marked as possibly repeating, which reads
// and the compactor dedupe (docs/events.md has the whole argument).

export function createEventSink(store: Pick<EventStore, 'append' | 'heldIds'>, eventRows: EventRows): BatchSink {
  return async (bySite, batch) => {
    for (const [siteId, counted] of bySite) {
      let rows = await eventRows(siteId, counted);
      const redelivered = batch.redelivered.has(siteId);
      if (redelivered) {
        const held = await store.heldIds(siteId, rows);
        rows = rows.filter((r) => !held.has(r.message_id));
      }
      if (rows.length > 0) await store.append(siteId, rows, { dirty: redelivered, claimableAt: batch.claimableAt });
    }
  };
}
