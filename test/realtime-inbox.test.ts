import { beforeEach, describe, expect, it } from 'vitest';
import { countName } from '../src/storage/inbox-count-names.js';
import { createKeys, type Keys } from '../src/storage/keys.js';
import type { Realtime } from '../src/storage/realtime.js';
import { eventually, uniqueName } from './helpers.js';
import { realtimeLayers } from './realtime-layers.js';

// The inbox count protocol's real-time half (src/storage/inbox-counts.ts), for every implementation.

/** Count vectors in tests: unread / unseen / total of a cell. */
const U = countName('unread', '', '');
const S = countName('unseen', '', '');
const T = countName('total', 't1', 'cat');
const v = (entries: Record<string, number>) => new Map(Object.entries(entries));

describe.each(realtimeLayers())('inbox counts: %s', (_name, open) => {
  let rt: Realtime;
  let keys: Keys;
  beforeEach(async () => {
    keys = createKeys(uniqueName('rt'));
    rt = await open(keys);
  });
  const m1 = 'aaaaaaaaaaaaaaaa';
  const m2 = 'bbbbbbbbbbbbbbbb';

  it("adds a change's deltas only while its intent is there, bumping a version that only grows", async () => {
    const inbox = keys.inbox('site', 0);
    await rt.inbox.begin(inbox, m1, ['u1', 'u:2'], 1_000);
    const busy = await rt.inbox.readState(inbox, 'u1');
    expect(busy).toMatchObject({ intents: 1, oldestIntentMs: 1_000, version: 0, pending: new Map() });
    expect(await rt.inbox.listTouched(inbox, 1_000, 10)).toEqual(expect.arrayContaining(['u1', 'u:2']));
    const done = await rt.inbox.finish(
      inbox,
      m1,
      [
        { userId: 'u1', deltas: v({ [U]: 2, [S]: 1, [T]: 0 }) },
        { userId: 'u:2', deltas: v({}) },
      ],
      1_500,
    );
    expect(done[0]).toMatchObject({ applied: true, version: 1_500_000, counts: null, running: 0 });
    expect(done[1]).toMatchObject({ applied: true, version: 0 });
    expect(await rt.inbox.readState(inbox, 'u1')).toMatchObject({ pending: v({ [U]: 2, [S]: 1 }), inflight: new Map() });
    await rt.inbox.begin(inbox, m2, ['u1'], 2_000);
    const next = await rt.inbox.finish(inbox, m2, [{ userId: 'u1', deltas: v({ [U]: -1 }) }], 2_000);
    expect(next[0]).toMatchObject({ applied: true, version: 1_500_001 });
    // Finishing twice (or without an intent) adds nothing and marks the user for another check.
    const again = await rt.inbox.finish(inbox, m2, [{ userId: 'u1', deltas: v({ [U]: -1 }) }], 9_000);
    expect(again[0]).toMatchObject({ applied: false, version: 1_500_001 });
    expect(await rt.inbox.listTouched(inbox, 8_999, 10)).not.toContain('u1');
    expect(await rt.inbox.listTouched(inbox, 9_000, 10)).toContain('u1');
    expect(await rt.inbox.readState(inbox, 'u1')).toMatchObject({ intents: 0, oldestIntentMs: 0, pending: v({ [U]: 1, [S]: 1 }) });
  });

  it("keeps a user's buffered deltas apart from other users' with similar ids", async () => {
    const inbox = keys.inbox('site', 0);
    await rt.inbox.begin(inbox, m1, ['u', 'u"', 'uu'], 1);
    await rt.inbox.finish(
      inbox,
      m1,
      [
        { userId: 'u', deltas: v({ [U]: 1 }) },
        { userId: 'u"', deltas: v({ [U]: 2 }) },
        { userId: 'uu', deltas: v({ [U]: 3 }) },
      ],
      1,
    );
    expect((await rt.inbox.readState(inbox, 'u')).pending).toEqual(v({ [U]: 1 }));
    expect((await rt.inbox.readState(inbox, 'u"')).pending).toEqual(v({ [U]: 2 }));
    expect((await rt.inbox.bufferedUsers(inbox)).sort()).toEqual(['u', 'u"', 'uu']);
  });

  it('shows a batch in flight with its sequence numbers', async () => {
    const inbox = keys.inbox('site', 1);
    await rt.inbox.begin(inbox, m1, ['u'], 1);
    await rt.inbox.finish(inbox, m1, [{ userId: 'u', deltas: v({ [U]: 3 }) }], 1);
    const batch = await rt.buffers.take(inbox.buffer, 0);
    expect(batch?.seq).toBe(1);
    expect(await rt.inbox.readState(inbox, 'u')).toMatchObject({ pending: new Map(), inflight: v({ [U]: 3 }), inflightSeq: 1, doneSeq: 0 });
    await rt.inbox.begin(inbox, m2, ['u'], 2);
    await rt.inbox.finish(inbox, m2, [{ userId: 'u', deltas: v({ [U]: 1 }) }], 2);
    expect(await rt.inbox.readState(inbox, 'u')).toMatchObject({ pending: v({ [U]: 1 }), inflight: v({ [U]: 3 }), inflightSeq: 1 });
    await rt.buffers.finish(inbox.buffer, 1);
    expect(await rt.inbox.readState(inbox, 'u')).toMatchObject({ pending: v({ [U]: 1 }), inflight: new Map(), inflightSeq: 0, doneSeq: 1 });
  });

  it('drops only stale intents of the user, and a late finish of a dropped one adds nothing', async () => {
    const inbox = keys.inbox('site', 2);
    await rt.inbox.begin(inbox, m1, ['u', 'v'], 1_000);
    await rt.inbox.begin(inbox, m2, ['u'], 5_000);
    expect(await rt.inbox.dropStaleIntents(inbox, 'u', 2_000)).toBe(1);
    expect(await rt.inbox.readState(inbox, 'u')).toMatchObject({ intents: 1, oldestIntentMs: 5_000 });
    expect(await rt.inbox.readState(inbox, 'v')).toMatchObject({ intents: 1 });
    const late = await rt.inbox.finish(inbox, m1, [{ userId: 'u', deltas: v({ [U]: 1 }) }], 6_000);
    expect(late[0]).toMatchObject({ applied: false });
    expect((await rt.inbox.readState(inbox, 'u')).pending).toEqual(new Map());
  });

  it('repairs only at the version the drift was measured at, dropping the kept counts', async () => {
    const inbox = keys.inbox('site', 3);
    expect(await rt.inbox.keepCounts(inbox, 'u', v({ [U]: 5 }), 0)).toBe(true);
    expect(await rt.inbox.repair(inbox, 'u', v({ [U]: 2, [T]: -1 }), 0, 7_000)).toBe(true);
    expect(await rt.inbox.readState(inbox, 'u')).toMatchObject({ pending: v({ [U]: 2, [T]: -1 }), version: 7_000_000, counts: null });
    expect(await rt.inbox.repair(inbox, 'u', v({ [U]: 2 }), 0, 7_001)).toBe(false);
    expect(await rt.inbox.repair(inbox, 'u', v({ [U]: -1 }), 7_000_000, 7_002)).toBe(true);
    expect(await rt.inbox.readState(inbox, 'u')).toMatchObject({ pending: v({ [U]: 1, [T]: -1 }), version: 7_000_001 });
  });

  it('keeps counts only at the version read and with no change running; deltas move them, a flush does not', async () => {
    const inbox = keys.inbox('site', 5);
    expect(await rt.inbox.readCounts(inbox, 'u')).toEqual({ version: 0, running: 0, counts: null });
    await rt.inbox.begin(inbox, m1, ['u'], 1);
    expect(await rt.inbox.keepCounts(inbox, 'u', v({ [U]: 4 }), 0)).toBe(false);
    await rt.inbox.finish(inbox, m1, [{ userId: 'u', deltas: v({ [U]: 2 }) }], 1);
    expect(await rt.inbox.keepCounts(inbox, 'u', v({ [U]: 4 }), 0)).toBe(false);
    expect(await rt.inbox.keepCounts(inbox, 'u', v({ [U]: 6, [S]: 0 }), 1_000)).toBe(true);
    expect(await rt.inbox.keepCounts(inbox, 'u', v({ [U]: 9 }), 1_000)).toBe(false);
    expect(await rt.inbox.readCounts(inbox, 'u')).toEqual({ version: 1_000, running: 0, counts: v({ [U]: 6 }) });
    expect(await rt.buffers.take(inbox.buffer, 0)).toMatchObject({ seq: 1 });
    await rt.inbox.begin(inbox, m2, ['u'], 2);
    const [second] = await rt.inbox.finish(inbox, m2, [{ userId: 'u', deltas: v({ [U]: -1, [T]: 1 }) }], 2);
    expect(second).toMatchObject({ counts: v({ [U]: 5, [T]: 1 }), version: 1_001 });
    await rt.buffers.finish(inbox.buffer, 1);
    expect(await rt.inbox.readCounts(inbox, 'u')).toEqual({ version: 1_001, running: 0, counts: v({ [U]: 5, [T]: 1 }) });
    // Counts that are all zero are still kept.
    const inbox2 = keys.inbox('site', 6);
    expect(await rt.inbox.keepCounts(inbox2, 'z', new Map(), 0)).toBe(true);
    expect(await rt.inbox.readCounts(inbox2, 'z')).toEqual({ version: 0, running: 0, counts: new Map() });
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
        { userId: 'u', deltas: v({ [S]: -1 }), channel },
        { userId: 'v', deltas: v({ [S]: 0 }), channel },
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
    await rt.inbox.finish(inbox, m2, [{ userId: 'new', deltas: v({ [U]: 2 }) }], 9_000);
    expect(await rt.inbox.bufferedUsers(inbox)).toEqual(['new']);
    await rt.buffers.take(inbox.buffer, 0);
    await rt.inbox.begin(inbox, m1, ['late'], 9_500);
    await rt.inbox.finish(inbox, m1, [{ userId: 'late', deltas: v({ [U]: -1 }) }], 9_500);
    expect((await rt.inbox.bufferedUsers(inbox)).sort()).toEqual(['late', 'new']);
  });

  it('counts the changes of a user still in flight, for a count read to know when the kept counts may lead', async () => {
    const inbox = keys.inbox('site', 9);
    await rt.inbox.keepCounts(inbox, 'u', v({ [U]: 1 }), 0);
    await rt.inbox.begin(inbox, m1, ['u'], 1_000);
    await rt.inbox.begin(inbox, m1, ['u'], 1_000); // the same change again: still one
    await rt.inbox.begin(inbox, m2, ['u'], 2_000);
    const [done] = await rt.inbox.finish(inbox, m2, [{ userId: 'u', deltas: v({ [U]: -1 }) }], 2_000);
    expect(done).toMatchObject({ applied: true, running: 1, counts: new Map() });
    expect(await rt.inbox.readCounts(inbox, 'u')).toMatchObject({ counts: new Map(), running: 1 });
    expect(await rt.inbox.dropStaleIntents(inbox, 'u', 1_500)).toBe(1);
    expect(await rt.inbox.readCounts(inbox, 'u')).toMatchObject({ running: 0 });
    const [late] = await rt.inbox.finish(inbox, m1, [{ userId: 'u', deltas: v({ [U]: 1 }) }], 3_000);
    expect(late).toMatchObject({ applied: false, running: 0 });
  });
});
