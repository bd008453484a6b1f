import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { count, HyperLogLog } from '../src/storage/hyperloglog.js';
import { REDIS_URL, uniqueName } from './helpers.js';

// The TypeScript HyperLogLog against the real Redis: the same members in both must give the
// same PFADD replies, the same PFCOUNT and the same bytes (what GET returns), so that a
// HyperLogLog can move between Redis and the embedded mode through PostgreSQL.

const redis = new Redis(REDIS_URL);
const prefix = uniqueName('hll');
let keyCount = 0;
const newKey = (): string => `${prefix}:${keyCount++}`;

afterAll(async () => {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
});

async function redisBytes(key: string): Promise<Buffer> {
  const bytes = await redis.getBuffer(key);
  if (bytes === null) throw new Error(`${key} does not exist`);
  return bytes;
}

/** Adds every member (no short cut: each may change a register); true if any did, as PFADD. */
function addAll(hll: HyperLogLog, members: readonly string[]): boolean {
  let changed = false;
  for (const m of members) changed = hll.add(m) || changed;
  return changed;
}

/** A HyperLogLog with the same members in Redis (at `key`) and in TypeScript. */
async function addToBoth(key: string, members: readonly string[]): Promise<HyperLogLog> {
  const hll = new HyperLogLog();
  addAll(hll, members);
  await redis.pfadd(key, ...members);
  return hll;
}

/** As hex text: a mismatch shows where, and 12 KiB compare fast. */
const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');

const SPARSE = 1;
const DENSE = 0;
const encodingOf = (bytes: Uint8Array): number | undefined => bytes[4];

/** A dense HyperLogLog with every register 0: PFMERGE into it makes Redis decode a sparse one. */
function emptyDenseBytes(): Buffer {
  const bytes = Buffer.alloc(16 + 12288);
  bytes.write('HYLL', 0, 'latin1');
  bytes[15] = 0x80;
  return bytes;
}

const member = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
  // Any UTF-16 unit, lone surrogates included (both sides send them as U+FFFD).
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 4 }),
  fc.nat().map((n) => `visitor-${n}`),
);

/** Many distinct members at once, enough to cross the sparse encoding's 3000 bytes. */
const bulk = fc
  .tuple(fc.string({ maxLength: 3 }), fc.integer({ min: 1, max: 2500 }))
  .map(([tag, n]) => Array.from({ length: n }, (_, i) => `${tag}:${i}`));

type Opcode = { zeros: number } | { value: number; run: number };

const zeroOpcode = (max: number): fc.Arbitrary<Opcode> => fc.integer({ min: 1, max }).map((zeros) => ({ zeros }));
const valOpcode = (max: number): fc.Arbitrary<Opcode> =>
  fc.record({ value: fc.integer({ min: 1, max }), run: fc.integer({ min: 1, max: 4 }) });
/**
 * Sparse values Redis accepts but does not write itself: runs of zeros split over several
 * opcodes, XZERO for short runs, adjacent VALs of one value, and values past the 3000 bytes Redis
 * keeps a sparse value under. The cached cardinality is stale, so PFCOUNT reads the registers.
 */
const sparseValue = fc
  .oneof(
    fc.array(fc.oneof(zeroOpcode(64), zeroOpcode(400), valOpcode(32), valOpcode(3)), { maxLength: 300 }),
    // Mostly VALs of few values and short zero runs: long values, many VALs to merge.
    fc.array(fc.oneof(zeroOpcode(3), valOpcode(2), valOpcode(32)), { minLength: 1000, maxLength: 3500 }),
  )
  .chain((opcodes) => fc.tuple(fc.constant(opcodes), fc.array(fc.boolean(), { minLength: opcodes.length, maxLength: opcodes.length })))
  .map(([opcodes, extended]) => {
    const bytes = [0x48, 0x59, 0x4c, 0x4c, SPARSE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80];
    const zeroRun = (n: number, extended: boolean): void => {
      if (extended || n > 64) bytes.push(0x40 | ((n - 1) >> 8), (n - 1) & 0xff);
      else bytes.push(n - 1);
    };
    let left = 16384;
    for (const [i, op] of opcodes.entries()) {
      if (left === 0) break;
      if ('zeros' in op) {
        const n = Math.min(op.zeros, left);
        zeroRun(n, extended[i]!);
        left -= n;
      } else {
        const run = Math.min(op.run, left);
        bytes.push(0x80 | ((op.value - 1) << 2) | (run - 1));
        left -= run;
      }
    }
    if (left > 0) zeroRun(left, true);
    return Buffer.from(bytes);
  });

type Step = { kind: 'add'; members: string[] } | { kind: 'count' } | { kind: 'reload' };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.array(member, { maxLength: 40 }).map((members) => ({ kind: 'add' as const, members })) },
  { weight: 1, arbitrary: bulk.map((members) => ({ kind: 'add' as const, members })) },
  { weight: 2, arbitrary: fc.constant({ kind: 'count' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reload' as const }) },
);

describe('HyperLogLog against Redis', () => {
  it('gives the PFADD replies, PFCOUNT and GET bytes of Redis for any sequence of PFADD, PFCOUNT and SET', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
        const key = newKey();
        let hll: HyperLogLog | undefined;
        try {
          for (const s of steps) {
            if (s.kind === 'add') {
              // PFADD replies 1 when it creates the key, even with no member.
              const created = hll === undefined;
              hll ??= new HyperLogLog();
              const changed = addAll(hll, s.members);
              expect(await redis.pfadd(key, ...s.members)).toBe(changed || created ? 1 : 0);
            } else if (s.kind === 'count') {
              // PFCOUNT writes the cardinality into the header: the bytes are compared after it too.
              expect(count(hll)).toBe(await redis.pfcount(key));
            } else if (hll !== undefined) {
              // Redis's bytes decoded here, and these bytes given back to Redis with SET.
              hll = HyperLogLog.fromBytes(await redisBytes(key));
              await redis.set(key, hll.toBytes());
            }
            if (hll !== undefined) expect(hex(hll.toBytes())).toBe(hex(await redisBytes(key)));
          }
          expect(count(hll)).toBe(await redis.pfcount(key));
        } finally {
          await redis.del(key);
        }
      }),
      { seed: 42, numRuns: 300 },
    );
  });

  it('goes on from any sparse value Redis accepts as Redis does, however its opcodes are laid out', async () => {
    await fc.assert(
      fc.asyncProperty(sparseValue, fc.array(fc.array(member, { maxLength: 30 }), { minLength: 1, maxLength: 8 }), async (bytes, calls) => {
        const key = newKey();
        try {
          await redis.set(key, bytes);
          const hll = HyperLogLog.fromBytes(bytes);
          for (const members of calls) {
            expect(await redis.pfadd(key, ...members)).toBe(addAll(hll, members) ? 1 : 0);
            expect(hex(hll.toBytes())).toBe(hex(await redisBytes(key)));
          }
          expect(count(hll)).toBe(await redis.pfcount(key));
        } finally {
          await redis.del(key);
        }
      }),
      { seed: 11, numRuns: 150 },
    );
  });

  it('keeps a sparse value past 3000 bytes sparse while an update does not lengthen it', async () => {
    const probe = new HyperLogLog();
    probe.add('m');
    const index = probe.registers().findIndex((value) => value > 0);
    // Every register holds 1 (a VAL each) but two zeros, the member's register one of them, in
    // one XZERO: setting it splits the XZERO into VAL and ZERO, two bytes for two.
    const start = Math.min(index, 16382);
    const bytes = [0x48, 0x59, 0x4c, 0x4c, SPARSE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80];
    for (let i = 0; i < start; i++) bytes.push(0x80);
    bytes.push(0x40, 0x01);
    for (let i = start + 2; i < 16384; i++) bytes.push(0x80);
    const key = newKey();
    await redis.set(key, Buffer.from(bytes));
    const hll = HyperLogLog.fromBytes(Buffer.from(bytes));
    expect(await redis.pfadd(key, 'm')).toBe(hll.add('m') ? 1 : 0);
    const after = await redisBytes(key);
    expect(encodingOf(after)).toBe(SPARSE);
    expect(after.length).toBeGreaterThan(3000);
    expect(hex(hll.toBytes())).toBe(hex(after));
    await redis.del(key);
  });

  it('matches Redis member by member across the promotion from sparse to dense', async () => {
    const key = newKey();
    const hll = new HyperLogLog();
    const encodings = new Set<number | undefined>();
    for (let i = 0; i < 2500; i++) {
      const m = `v${i}${i % 5 === 0 ? '-é漢😀' : ''}`;
      expect(await redis.pfadd(key, m)).toBe(hll.add(m) || i === 0 ? 1 : 0);
      const bytes = await redisBytes(key);
      expect(hex(hll.toBytes())).toBe(hex(bytes));
      encodings.add(encodingOf(bytes));
    }
    expect(encodings).toEqual(new Set([SPARSE, DENSE]));
    expect(hll.count()).toBe(await redis.pfcount(key));
  });

  it('counts a union as PFCOUNT of several keys does, without touching their caches', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.array(member, { maxLength: 200 }), bulk), { minLength: 2, maxLength: 4 }),
        fc.boolean(),
        async (memberLists, withMissingKey) => {
          const keys = memberLists.map(() => newKey());
          try {
            const hlls = await Promise.all(memberLists.map((members, i) => addToBoth(keys[i]!, members)));
            const missing = newKey();
            const expected = withMissingKey ? await redis.pfcount(...keys, missing) : await redis.pfcount(...keys);
            expect(withMissingKey ? count(...hlls, undefined) : count(...hlls)).toBe(expected);
            for (const [i, hll] of hlls.entries()) expect(hex(hll.toBytes())).toBe(hex(await redisBytes(keys[i]!)));
          } finally {
            await redis.del(...keys);
          }
        },
      ),
      { seed: 7, numRuns: 40 },
    );
  });

  it('answers a single count from a fresh cached cardinality, as PFCOUNT does, and a union from the registers', async () => {
    const key = newKey();
    const otherKey = newKey();
    const hll = await addToBoth(key, ['a', 'b', 'c']);
    const other = await addToBoth(otherKey, ['d']);
    // A cached cardinality (bytes 8..15, little endian, top bit clear) that no estimate gives.
    const bytes = hll.toBytes();
    bytes.writeBigUInt64LE(12345n, 8);
    await redis.set(key, bytes);
    const restored = HyperLogLog.fromBytes(bytes);
    expect(await redis.pfcount(key)).toBe(12345);
    expect(count(restored)).toBe(12345);
    expect(await redis.pfcount(key, otherKey)).toBe(4);
    expect(count(restored, other)).toBe(4);
    // A changed register marks the cache stale; the stale value stays in the bytes until a count.
    restored.add('e');
    await redis.pfadd(key, 'e');
    expect(hex(restored.toBytes())).toBe(hex(await redisBytes(key)));
    expect(restored.toBytes().readBigUInt64LE(8)).toBe(12345n | (1n << 63n));
    const expected = new HyperLogLog();
    addAll(expected, ['a', 'b', 'c', 'e']);
    expect(count(restored)).toBe(await redis.pfcount(key));
    expect(count(restored)).toBe(expected.count());
    await redis.del(key, otherKey);
  });

  it('counts a missing key, and no key, as 0', () => {
    expect(count(undefined)).toBe(0);
    expect(count()).toBe(0);
    expect(count(new HyperLogLog())).toBe(0);
  });
});

describe('HyperLogLog bytes', () => {
  it('round-trips through toBytes and fromBytes with the same registers, count and bytes', () => {
    fc.assert(
      fc.property(fc.oneof(fc.array(member, { maxLength: 300 }), bulk), fc.boolean(), (members, counted) => {
        const hll = new HyperLogLog();
        addAll(hll, members);
        if (counted) hll.count();
        const copy = HyperLogLog.fromBytes(hll.toBytes());
        expect(hex(copy.toBytes())).toBe(hex(hll.toBytes()));
        expect(hex(copy.registers())).toBe(hex(hll.registers()));
        expect(copy.count()).toBe(hll.count());
      }),
      { seed: 3, numRuns: 100 },
    );
  });

  it('decodes the registers of sparse and dense Redis values alike', async () => {
    for (const n of [0, 1, 10, 300, 1200, 5000]) {
      const sparseKey = newKey();
      const emptyKey = newKey();
      const denseKey = newKey();
      const members = Array.from({ length: n }, (_, i) => `member-${n}-${i}`);
      const hll = await addToBoth(sparseKey, members);
      // Merging with an empty dense HyperLogLog makes Redis itself write the same registers densely.
      await redis.set(emptyKey, emptyDenseBytes());
      await redis.pfmerge(denseKey, sparseKey, emptyKey);
      const fromRedis = HyperLogLog.fromBytes(await redisBytes(sparseKey));
      const denseFromRedis = HyperLogLog.fromBytes(await redisBytes(denseKey));
      expect(encodingOf(await redisBytes(denseKey))).toBe(DENSE);
      expect(hex(fromRedis.registers())).toBe(hex(hll.registers()));
      expect(hex(denseFromRedis.registers())).toBe(hex(hll.registers()));
      expect(denseFromRedis.count()).toBe(await redis.pfcount(denseKey));
      expect(fromRedis.count()).toBe(await redis.pfcount(sparseKey));
      await redis.del(sparseKey, emptyKey, denseKey);
    }
  });

  it('hashes members as Redis does: register index and run length from MurmurHash64A', async () => {
    // One member per HyperLogLog, so each dense image shows exactly one register.
    const members = ['', 'a', 'abcdefg', 'abcdefgh', 'abcdefghi', 'é', '漢字', '😀', '\ud800', 'x'.repeat(1000)];
    for (const m of members) {
      const key = newKey();
      const emptyKey = newKey();
      const denseKey = newKey();
      await redis.pfadd(key, m);
      await redis.set(emptyKey, emptyDenseBytes());
      await redis.pfmerge(denseKey, key, emptyKey);
      const hll = new HyperLogLog();
      hll.add(m);
      expect(hex(hll.registers())).toBe(hex(HyperLogLog.fromBytes(await redisBytes(denseKey)).registers()));
      await redis.del(key, emptyKey, denseKey);
    }
  });

  describe('fromBytes refuses what is not a whole HyperLogLog, as Redis does', () => {
    const header = (encoding: number): number[] => [0x48, 0x59, 0x4c, 0x4c, encoding, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80];
    const dense = (length: number): Buffer => {
      const bytes = Buffer.alloc(length);
      Buffer.from(header(DENSE)).copy(bytes);
      return bytes;
    };
    const xzero = (n: number): number[] => [0x40 | ((n - 1) >> 8), (n - 1) & 0xff];
    const cases: [string, Buffer, RegExp][] = [
      ['empty', Buffer.alloc(0), /16-byte header/],
      ['a truncated header', Buffer.from(header(SPARSE).slice(0, 15)), /16-byte header/],
      ['another magic', Buffer.from([0x48, 0x59, 0x4c, 0x4d, ...header(SPARSE).slice(4), ...xzero(16384)]), /HYLL/],
      ['text', Buffer.from('not a hyperloglog at all'), /HYLL/],
      ['an unknown encoding', Buffer.from([...header(2), ...xzero(16384)]), /encoding 2/],
      ['a short dense value', dense(16 + 12287), /dense HyperLogLog has 12304 bytes/],
      ['a long dense value', dense(16 + 12289), /dense HyperLogLog has 12304 bytes/],
      ['a sparse value without opcodes', Buffer.from(header(SPARSE)), /covers 0 registers/],
      ['a sparse value short of registers', Buffer.from([...header(SPARSE), ...xzero(16383)]), /covers 16383 registers/],
      ['a sparse value ending inside XZERO', Buffer.from([...header(SPARSE), ...xzero(16000), 0x40]), /inside an XZERO/],
      ['a sparse value past the registers', Buffer.from([...header(SPARSE), ...xzero(16384), 0x80]), /more than 16384/],
      ['a sparse value of many ZERO past the registers', Buffer.from([...header(SPARSE), ...Array(257).fill(0x3f)]), /more than 16384/],
    ];
    for (const [name, bytes, message] of cases) {
      it(`refuses ${name}`, async () => {
        expect(() => HyperLogLog.fromBytes(bytes)).toThrow(message);
        const key = newKey();
        await redis.set(key, bytes);
        await expect(redis.pfcount(key)).rejects.toThrow(/WRONGTYPE|INVALIDOBJ/);
        await redis.del(key);
      });
    }

    it('refuses an XZERO cut after its first byte even where Redis takes its string terminator as the second', async () => {
      // Redis reads one byte past the value here (an sds string ends with a 0), which makes this
      // XZERO cover the one register left; no value Redis writes ends like this.
      const bytes = Buffer.from([...header(SPARSE), ...xzero(16383), 0x40]);
      expect(() => HyperLogLog.fromBytes(bytes)).toThrow(/inside an XZERO/);
      const key = newKey();
      await redis.set(key, bytes);
      expect(await redis.pfcount(key)).toBe(0);
      await redis.del(key);
    });
  });
});
