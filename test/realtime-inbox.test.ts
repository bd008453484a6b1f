import { beforeEach, describe, expect, it } from 'vitest';
import { createKeys, type Keys } from '../src/storage/keys.js';
import type { Realtime } from '../src/storage/realtime.js';
import { eventually, uniqueName } from './helpers.js';
import { realtimeLayers } from './realtime-layers.js';

// The inbox count protocol's real-time half (src/storage/inbox-counts.ts), for every implementation.

describe.each(realtimeLayers())('inbox counts: %s', (_name, open) => {
  let rt: Realtime;
  let keys: Keys;
  beforeEach(async () => {
    keys = createKeys(uniqueName('rt'));
    rt = await open(keys);
  });
  const m1 = 'aaaaaaaaaaaaaaaa';
  const m2 = 'bbbbbbbbbbbbbbbb';

  it("adds a change's delta only while its intent is there, bumping a version that only grows", async () => {
    const inbox = keys.inbox('site', 0);
    await rt.inbox.begin(inbox, m1, ['u1', 'u:2'], 1_000);
    const busy = await rt.inbox.readState(inbox, 'u1');
    expect(busy).toMatchObject({ intents: 1, oldestIntentMs: 1_000, version: 0, pending: 0 });
    expect(await rt.inbox.listTouched(inbox, 1_000, 10)).toEqual(expect.arrayContaining(['u1', 'u:2']));
    const done = await rt.inbox.finish(
      inbox,
      m1,
      [
        { userId: 'u1', delta: 2 },
        { userId: 'u:2', delta: 0 },
      ],
      1_500,
    );
    expect(done[0]).toMatchObject({ applied: true, version: 1_500_000, pending: 2, inflight: 0 });
    expect(done[1]).toMatchObject({ applied: true, version: 0, pending: 0 });
    await rt.inbox.begin(inbox, m2, ['u1'], 2_000);
    const next = await rt.inbox.finish(inbox, m2, [{ userId: 'u1', delta: -1 }], 2_000);
    expect(next[0]).toMatchObject({ applied: true, version: 1_500_001, pending: 1 });
    // Finishing twice (or without an intent) adds nothing and marks the user for another check.
    const again = await rt.inbox.finish(inbox, m2, [{ userId: 'u1', delta: -1 }], 9_000);
    expect(again[0]).toMatchObject({ applied: false, version: 1_500_001, pending: 1 });
    expect(await rt.inbox.listTouched(inbox, 8_999, 10)).not.toContain('u1');
    expect(await rt.inbox.listTouched(inbox, 9_000, 10)).toContain('u1');
    expect(await rt.inbox.readState(inbox, 'u1')).toMatchObject({ intents: 0, oldestIntentMs: 0 });
  });

  it('shows a batch in flight with its sequence numbers', async () => {
    const inbox = keys.inbox('site', 1);
    await rt.inbox.begin(inbox, m1, ['u'], 1);
    await rt.inbox.finish(inbox, m1, [{ userId: 'u', delta: 3 }], 1);
    const batch = await rt.buffers.take(inbox.buffer, 0);
    expect(batch?.seq).toBe(1);
    expect(await rt.inbox.readState(inbox, 'u')).toMatchObject({ pending: 0, inflight: 3, inflightSeq: 1, doneSeq: 0 });
    await rt.inbox.begin(inbox, m2, ['u'], 2);
    const during = await rt.inbox.finish(inbox, m2, [{ userId: 'u', delta: 1 }], 2);
    expect(during[0]).toMatchObject({ pending: 1, inflight: 3, inflightSeq: 1, doneSeq: 0 });
    await rt.buffers.finish(inbox.buffer, 1);
    expect(await rt.inbox.readState(inbox, 'u')).toMatchObject({ pending: 1, inflight: 0, inflightSeq: 0, doneSeq: 1 });
  });

  it('drops only stale intents of the user, and a late finish of a dropped one adds nothing', async () => {
    const inbox = keys.inbox('site', 2);
    await rt.inbox.begin(inbox, m1, ['u', 'v'], 1_000);
    await rt.inbox.begin(inbox, m2, ['u'], 5_000);
    expect(await rt.inbox.dropStaleIntents(inbox, 'u', 2_000)).toBe(1);
    expect(await rt.inbox.readState(inbox, 'u')).toMatchObject({ intents: 1, oldestIntentMs: 5_000 });
    expect(await rt.inbox.readState(inbox, 'v')).toMatchObject({ intents: 1 });
    const late = await rt.inbox.finish(inbox, m1, [{ userId: 'u', delta: 1 }], 6_000);
    expect(late[0]).toMatchObject({ applied: false, pending: 0 });
  });

  it('repairs only at the version the drift was measured at', async () => {
    const inbox = keys.inbox('site', 3);
    expect(await rt.inbox.repair(inbox, 'u', 2, 0, 7_000)).toBe(true);
    expect(await rt.inbox.readState(inbox, 'u')).toMatchObject({ pending: 2, version: 7_000_000 });
    expect(await rt.inbox.repair(inbox, 'u', 2, 0, 7_001)).toBe(false);
    expect(await rt.inbox.repair(inbox, 'u', -1, 7_000_000, 7_002)).toBe(true);
    expect(await rt.inbox.readState(inbox, 'u')).toMatchObject({ pending: 1, version: 7_000_001 });
  });

  it('keeps a total composed from a durable count, moved by deltas, unchanged by a flush, dropped by a repair', async () => {
    const inbox = keys.inbox('site', 5);
    expect(await rt.inbox.readTotal(inbox, 'u')).toEqual({ version: 0, total: null, running: 0 });
    expect(await rt.inbox.readState(inbox, 'u')).toMatchObject({ total: null });
    await rt.inbox.begin(inbox, m1, ['u'], 1);
    const first = await rt.inbox.finish(inbox, m1, [{ userId: 'u', delta: 2 }], 1);
    expect(first[0]).toMatchObject({ pending: 2, total: null });
    // PostgreSQL showed 4 as of batch 0: 4 + 2 pending.
    expect(await rt.inbox.readTotal(inbox, 'u', { durable: 4, lastSeq: 0 })).toEqual({ version: 1_000, total: 6, running: 0 });
    expect(await rt.buffers.take(inbox.buffer, 0)).toMatchObject({ seq: 1 });
    await rt.inbox.begin(inbox, m2, ['u'], 2);
    const second = await rt.inbox.finish(inbox, m2, [{ userId: 'u', delta: -1 }], 2);
    expect(second[0]).toMatchObject({ pending: -1, inflight: 2, total: 5 });
    await rt.buffers.finish(inbox.buffer, 1);
    expect(await rt.inbox.readState(inbox, 'u')).toMatchObject({ total: 5, doneSeq: 1 });
    expect(await rt.inbox.repair(inbox, 'u', 1, 1_001, 3)).toBe(true);
    expect(await rt.inbox.readTotal(inbox, 'u')).toEqual({ version: 1_002, total: null, running: 0 });
    // A snapshot older than the last finished batch may miss it: nothing is composed.
    expect(await rt.inbox.readTotal(inbox, 'u', { durable: 4, lastSeq: 0 })).toEqual({ version: 1_002, total: null, running: 0 });
    // As of batch 1 PostgreSQL held 6: 6 + 0 pending (the repair's +1 and -1 left 0).
    expect(await rt.inbox.readTotal(inbox, 'u', { durable: 6, lastSeq: 1 })).toEqual({ version: 1_002, total: 6, running: 0 });
  });

  it('composes a missing total at finish from the durable count the statement read, counting a batch it did not hold', async () => {
    const inbox = keys.inbox('site', 6);
    await rt.inbox.begin(inbox, m1, ['u'], 1);
    await rt.inbox.finish(inbox, m1, [{ userId: 'u', delta: 3 }], 1);
    await rt.buffers.take(inbox.buffer, 0);
    await rt.inbox.begin(inbox, m2, ['u'], 2);
    // The statement read 10 as of batch 0: batch 1 (3) is in flight, not in PostgreSQL.
    const done = await rt.inbox.finish(inbox, m2, [{ userId: 'u', delta: 1, durable: { durable: 10, lastSeq: 0 } }], 2);
    expect(done[0]).toMatchObject({ pending: 1, inflight: 3, total: 14 });
  });

  it('publishes the new version of a changed user on the channel given', async () => {
    const inbox = keys.inbox('site', 7);
    const channel = keys.channel('contract-inbox');
    const heard: string[] = [];
    const unsubscribe = await rt.live.subscribe(channel, (message) => heard.push(message));
    await rt.inbox.begin(inbox, m1, ['u', 'v'], 5);
    await rt.inbox.finish(
      inbox,
      m1,
      [
        { userId: 'u', delta: 1, channel },
        { userId: 'v', delta: 0, channel },
      ],
      5,
    );
    await eventually(async () => expect(heard).toEqual(['5000']));
    await unsubscribe();
  });

  it('untouches users unless they changed after the check began', async () => {
    const inbox = keys.inbox('site', 4);
    await rt.inbox.begin(inbox, m1, ['a', 'b'], 100);
    await rt.inbox.begin(inbox, m2, ['b'], 300);
    expect(await rt.inbox.listTouched(inbox, 1_000, 1)).toEqual(['a']);
    await rt.inbox.untouch(inbox, ['a', 'b'], 200);
    expect(await rt.inbox.listTouched(inbox, 1_000, 10)).toEqual(['b']);
  });

  it('names users with a stale intent, and users with buffered deltas', async () => {
    const inbox = keys.inbox('site', 8);
    await rt.inbox.begin(inbox, m1, ['old'], 1_000);
    await rt.inbox.begin(inbox, m2, ['new'], 9_000);
    expect(await rt.inbox.staleUsers(inbox, 5_000)).toEqual(['old']);
    await rt.inbox.finish(inbox, m2, [{ userId: 'new', delta: 2 }], 9_000);
    expect(await rt.inbox.bufferedUsers(inbox)).toEqual(['new']);
    await rt.buffers.take(inbox.buffer, 0);
    await rt.inbox.begin(inbox, m1, ['late'], 9_500);
    await rt.inbox.finish(inbox, m1, [{ userId: 'late', delta: -1 }], 9_500);
    expect((await rt.inbox.bufferedUsers(inbox)).sort()).toEqual(['late', 'new']);
  });

  it('counts the changes of a user still in flight, for a count read to know when the total may lead', async () => {
    const inbox = keys.inbox('site', 9);
    await rt.inbox.begin(inbox, m1, ['u'], 1_000);
    await rt.inbox.begin(inbox, m1, ['u'], 1_000); // the same change again: still one
    await rt.inbox.begin(inbox, m2, ['u'], 2_000);
    const [done] = await rt.inbox.finish(inbox, m2, [{ userId: 'u', delta: -1, durable: { durable: 1, lastSeq: 0 } }], 2_000);
    expect(done).toMatchObject({ applied: true, running: 1, total: 0 });
    expect(await rt.inbox.readTotal(inbox, 'u')).toMatchObject({ total: 0, running: 1 });
    expect(await rt.inbox.dropStaleIntents(inbox, 'u', 1_500)).toBe(1);
    expect(await rt.inbox.readTotal(inbox, 'u')).toMatchObject({ running: 0 });
    const [late] = await rt.inbox.finish(inbox, m1, [{ userId: 'u', delta: 1 }], 3_000);
    expect(late).toMatchObject({ applied: false, running: 0 });
  });
});
