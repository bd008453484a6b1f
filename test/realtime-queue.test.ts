import { beforeEach, describe, expect, it } from 'vitest';
import { createKeys, type Keys } from '../src/storage/keys.js';
import type { Realtime } from '../src/storage/realtime.js';
import { eventually, uniqueName } from './helpers.js';
import { realtimeLayers } from './realtime-layers.js';

// The ingestion queue's contract (src/storage/ingest-queue.ts), for every implementation.

describe.each(realtimeLayers())('ingest queue: %s', (_name, open) => {
  let rt: Realtime;
  let keys: Keys;
  beforeEach(async () => {
    keys = createKeys(uniqueName('rt'));
    rt = await open(keys);
  });

  it('delivers each entry once to the group, and acknowledged entries leave the backlog', async () => {
    const stream = keys.stream(0);
    const a = await rt.queue.enqueue(stream, 'a', 100);
    const b = await rt.queue.enqueue(stream, 'b', 100);
    expect(a).not.toBeNull();
    expect(b).not.toBeNull();
    const c1 = await rt.queue.openConsumer(stream, 'g', 'c1');
    const c2 = await rt.queue.openConsumer(stream, 'g', 'c2');
    const first = await c1.read(10, 100);
    expect(first.map((e) => e.payload)).toEqual(['a', 'b']);
    expect(await c2.read(10, 0)).toEqual([]);
    expect(await rt.queue.length(stream)).toBe(2);
    await c1.ack(first.map((e) => e.id));
    expect(await rt.queue.length(stream)).toBe(0);
    await c1.close();
    await c2.close();
  });

  it('refuses to enqueue beyond the backlog limit', async () => {
    const stream = keys.stream(1);
    expect(await rt.queue.enqueue(stream, 'a', 2)).not.toBeNull();
    expect(await rt.queue.enqueue(stream, 'b', 2)).not.toBeNull();
    expect(await rt.queue.enqueue(stream, 'c', 2)).toBeNull();
    expect(await rt.queue.length(stream)).toBe(2);
  });

  it('wakes a blocked reader when an entry arrives, and a closed one at once', async () => {
    const stream = keys.stream(2);
    const reader = await rt.queue.openConsumer(stream, 'g', 'c1');
    let done = false;
    const pending = reader.read(10, 5000).finally(() => (done = true));
    await rt.queue.enqueue(stream, 'late', 100);
    const entries = await pending;
    expect(done).toBe(true);
    expect(entries.map((e) => e.payload)).toEqual(['late']);
    const blocked = reader.read(10, 30_000);
    const started = Date.now();
    await reader.close();
    // Redis answers a read on a closed connection with an error; either way it ends now.
    await blocked.catch(() => []);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("gives a consumer back its own unacknowledged entries, not others'", async () => {
    const stream = keys.stream(4);
    await rt.queue.enqueue(stream, 'mine', 100);
    await rt.queue.enqueue(stream, 'theirs', 100);
    const me = await rt.queue.openConsumer(stream, 'g', 'me');
    const other = await rt.queue.openConsumer(stream, 'g', 'other');
    expect((await me.read(1, 100)).map((e) => e.payload)).toEqual(['mine']);
    expect((await other.read(1, 100)).map((e) => e.payload)).toEqual(['theirs']);
    const own = await me.readOwnPending(10);
    expect(own.map((e) => e.payload)).toEqual(['mine']);
    await me.ack(own.map((e) => e.id));
    expect(await me.readOwnPending(10)).toEqual([]);
    await me.close();
    await other.close();
  });

  it('lets another consumer have entries a dead one left unacknowledged', async () => {
    const stream = keys.stream(3);
    await rt.queue.enqueue(stream, 'x', 100);
    const dead = await rt.queue.openConsumer(stream, 'g', 'dead');
    expect(await dead.read(10, 100)).toHaveLength(1);
    const alive = await rt.queue.openConsumer(stream, 'g', 'alive');
    expect(await alive.claimStale(60_000, 10)).toEqual([]);
    await dead.close();
    // Redis: claimed once idle long enough. Embedded: at once, its consumer being closed.
    const got = await eventually(async () => {
      const entries = await alive.claimStale(10, 10);
      expect(entries.map((e) => e.payload)).toEqual(['x']);
      return entries;
    });
    await alive.ack(got.map((e) => e.id));
    expect(await rt.queue.length(stream)).toBe(0);
    await alive.close();
  });

  it('moves entries to the dead letters in one step: gone from the stream and its consumer, there in order', async () => {
    const stream = keys.stream(5);
    const dead = keys.deadLetters(5);
    for (const payload of ['a', 'b', 'c']) await rt.queue.enqueue(stream, payload, 100);
    const me = await rt.queue.openConsumer(stream, 'g', 'me');
    const [a, b, c] = await me.read(10, 100);
    expect(await me.deadLetter([a?.id ?? '', c?.id ?? '', '999999'], dead)).toBe(2);
    expect(await me.deadLetter([a?.id ?? ''], dead)).toBe(0);
    expect(await rt.queue.length(stream)).toBe(1);
    expect((await me.readOwnPending(10)).map((e) => e.id)).toEqual([b?.id]);
    const operator = await rt.queue.openConsumer(dead, 'd', 'op');
    expect((await operator.read(10, 0)).map((e) => e.payload)).toEqual(['a', 'c']);
    await me.close();
    await operator.close();
  });
});
