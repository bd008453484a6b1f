import { beforeEach, describe, expect, it } from 'vitest';
import { createKeys, type Keys } from '../src/storage/keys.js';
import type { Realtime } from '../src/storage/realtime.js';
import { eventually, uniqueName } from './helpers.js';
import { realtimeLayers } from './realtime-layers.js';

// Coordination (locks, shared values) and the live channel, for every implementation.

describe.each(realtimeLayers())('coordination and live channel: %s', (_name, open) => {
  let rt: Realtime;
  let keys: Keys;
  beforeEach(async () => {
    keys = createKeys(uniqueName('rt'));
    rt = await open(keys);
  });

  it('grants a lock to one holder until it is released', async () => {
    const lock = keys.lock('x');
    expect(await rt.coordination.tryLock(lock, 'a', 10_000)).toBe(true);
    expect(await rt.coordination.tryLock(lock, 'b', 10_000)).toBe(false);
    await rt.coordination.unlock(lock, 'b'); // not the holder: no effect
    expect(await rt.coordination.tryLock(lock, 'b', 10_000)).toBe(false);
    await rt.coordination.unlock(lock, 'a');
    expect(await rt.coordination.tryLock(lock, 'b', 10_000)).toBe(true);
  });

  it('gets or sets a shared value once', async () => {
    const key = keys.salt('2024-01-01');
    expect(await rt.coordination.getOrSet(key, 'first', 60)).toBe('first');
    expect(await rt.coordination.getOrSet(key, 'second', 60)).toBe('first');
  });

  it('delivers published messages to subscribers until they unsubscribe', async () => {
    const channel = keys.channel('test');
    const got: string[] = [];
    const unsubscribe = await rt.live.subscribe(channel, (m) => got.push(m));
    await rt.live.publish(channel, 'one');
    await eventually(async () => expect(got).toEqual(['one']));
    // A second subscriber stays: when it has 'two', the first would have had it too.
    const other: string[] = [];
    const unsubscribeOther = await rt.live.subscribe(channel, (m) => other.push(m));
    await unsubscribe();
    await rt.live.publish(channel, 'two');
    await eventually(async () => expect(other).toEqual(['two']));
    await unsubscribeOther();
    expect(got).toEqual(['one']);
  });
});
