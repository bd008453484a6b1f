import type { AggregateBatch, AggregateOp } from '../analytics-realtime.js';

// The wire format of one analytics step for lua/apply-aggregate.lua (its header documents the
// same layout): every key the step touches goes into KEYS once, and the ops name them by their
// 1-based index; packed deltas travel as ARGV items of their own, pushed without being decoded.
// Encoded here only; decodeStep reads it back for the round-trip test and for nothing else the
// server does, so the format has one definition on the TypeScript side.

/** Op codes (apply-aggregate.lua's `code`). */
const CODE = { count: 1, pfadd: 2, zincrby: 3, zmax: 4, zremrangebyscore: 5, expire: 6, session: 7 } as const;

export interface EncodedStep {
  keys: string[];
  /** ARGV: dedupe TTL, the JSON step, then one packed item per buffer. */
  args: (string | number)[];
}

type WireOp = unknown[];

class KeyTable {
  readonly keys: string[] = [];
  private readonly index = new Map<string, number>();

  of(key: string): number {
    let i = this.index.get(key);
    if (i === undefined) {
      this.keys.push(key);
      i = this.keys.length;
      this.index.set(key, i);
    }
    return i;
  }
}

function encodeOps(table: KeyTable, ops: readonly AggregateOp[]): WireOp[] {
  return ops.map((op) => {
    switch (op.op) {
      case 'count': {
        const onFirst = op.onFirst ? encodeOps(table, op.onFirst) : 0;
        const pending = op.durable ? table.of(op.durable.buffer.pending) : 0;
        return [CODE.count, table.of(op.key), op.field, op.by, pending, op.durable?.name ?? '', onFirst];
      }
      case 'pfadd':
        return [CODE.pfadd, table.of(op.key), op.members, op.dirty ? table.of(op.dirty.buffer.pending) : 0, op.dirty?.name ?? ''];
      case 'zincrby':
        return [CODE.zincrby, table.of(op.key), op.member, op.by];
      case 'zmax':
        return [CODE.zmax, table.of(op.key), op.member, op.score];
      case 'zremrangebyscore':
        return [CODE.zremrangebyscore, table.of(op.key), op.max];
      case 'expire':
        return [CODE.expire, table.of(op.key), op.seconds];
      case 'session': {
        const views = op.views.map((v) => {
          const row: unknown[] = [v.at];
          for (const t of v.totals) row.push(table.of(t.key), t.name);
          return row;
        });
        return [CODE.session, table.of(op.key), table.of(op.buffer.pending), op.gapMs, op.ttlSeconds, views];
      }
    }
  });
}

export function encodeStep(batch: AggregateBatch): EncodedStep {
  const table = new KeyTable();
  const d = batch.dedupeKeys.map((k) => table.of(k));
  const o = encodeOps(table, batch.ops);
  const packed = batch.packed.filter((p) => p.names.length > 0);
  // ARGV[1] is the TTL and ARGV[2] the step: packed item i is ARGV[i + 3].
  const p = packed.map((item, i) => [table.of(item.buffer.pendingPacked), i + 3]);
  return {
    keys: table.keys,
    args: [batch.dedupeTtlSeconds, JSON.stringify({ d, o, p }), ...packed.map((item) => JSON.stringify([item.names, item.deltas]))],
  };
}

/** What the script receives, keys resolved: the step as far as it travels. */
export interface DecodedOp {
  op: keyof typeof CODE;
  key: string;
  fields: unknown[];
}

export interface DecodedStep {
  dedupeTtlSeconds: number;
  dedupeKeys: string[];
  ops: DecodedOp[];
  packed: { list: string; names: string[]; deltas: number[] }[];
}

const NAME_OF = Object.fromEntries(Object.entries(CODE).map(([name, code]) => [code, name])) as Record<number, keyof typeof CODE>;

export function decodeStep(step: EncodedStep): DecodedStep {
  const key = (i: unknown) => {
    const k = step.keys[Number(i) - 1];
    if (k === undefined) throw new Error(`step names key ${String(i)}, which is not in KEYS`);
    return k;
  };
  const refOrNone = (i: unknown) => (i === 0 ? null : key(i));
  const decodeOps = (ops: WireOp[]): DecodedOp[] =>
    ops.map((wire) => {
      const [code, k, ...rest] = wire;
      const name = NAME_OF[Number(code)];
      if (!name) throw new Error(`unknown op code ${String(code)}`);
      if (name === 'count') {
        const [field, by, pending, durable, onFirst] = rest;
        return {
          op: name,
          key: key(k),
          fields: [field, by, refOrNone(pending), durable, onFirst === 0 ? null : decodeOps(onFirst as WireOp[])],
        };
      }
      if (name === 'pfadd') {
        const [members, pending, durable] = rest;
        return { op: name, key: key(k), fields: [members, refOrNone(pending), durable] };
      }
      if (name === 'session') {
        const [pending, gapMs, ttl, views] = rest;
        const decodedViews = (views as unknown[][]).map(([at, ...totals]) => {
          const out: unknown[] = [at];
          for (let i = 0; i < totals.length; i += 2) out.push(key(totals[i]), totals[i + 1]);
          return out;
        });
        return { op: name, key: key(k), fields: [key(pending), gapMs, ttl, decodedViews] };
      }
      return { op: name, key: key(k), fields: rest };
    });
  const ttl = step.args[0];
  const body = JSON.parse(String(step.args[1])) as { d: number[]; o: WireOp[]; p: [number, number][] };
  return {
    dedupeTtlSeconds: Number(ttl),
    dedupeKeys: body.d.map(key),
    ops: decodeOps(body.o),
    packed: body.p.map(([list, argv]) => {
      const [names, deltas] = JSON.parse(String(step.args[argv - 1])) as [string[], number[]];
      return { list: key(list), names, deltas };
    }),
  };
}
