import type { EventRow } from '../src/events/event-row.js';
import type { FunnelStep } from '../src/query/funnel.js';

// Funnels computed the plain way, for tests: for every event that can be a visitor's step 1, walk
// forward taking the first event strictly later than the last step that matches the next step
// (the earliest is always the best choice), and keep the longest chain whose last step is within
// the window.

/** `*` is any run of characters, the rest literal (src/query/page-pattern.ts). */
export function matchesPagePattern(pattern: string, page: string): boolean {
  const parts = pattern.split(/\*+/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*')}$`, 's').test(page);
}

export function matchesStep(step: FunnelStep, e: EventRow): boolean {
  if ('page' in step) return e.kind === 'pageview' && e.page !== null && matchesPagePattern(step.page, e.page);
  return e.kind === 'event' && e.name === step.event;
}

/** Visitors at each step, from the site's events in [fromMs, toMs) that pass `keep`. */
export function modelFunnel(
  events: readonly EventRow[],
  q: { siteId: string; fromMs: number; toMs: number; steps: readonly FunnelStep[]; windowMs: number | null },
  keep: (e: EventRow) => boolean = () => true,
): number[] {
  const window = q.windowMs ?? q.toMs - q.fromMs;
  const byVisitor = new Map<string, EventRow[]>();
  for (const e of events) {
    if (e.site_id !== q.siteId || e.ts < q.fromMs || e.ts >= q.toMs || e.bot || !keep(e)) continue;
    byVisitor.set(e.visitor, [...(byVisitor.get(e.visitor) ?? []), e]);
  }
  const counts = q.steps.map(() => 0);
  for (const list of byVisitor.values()) {
    list.sort((a, b) => a.ts - b.ts);
    let best = 0;
    list.forEach((start, i) => {
      if (!matchesStep(q.steps[0] as FunnelStep, start)) return;
      let level = 1;
      let last = start.ts;
      for (let j = i + 1; j < list.length && level < q.steps.length; j++) {
        const e = list[j] as EventRow;
        if (e.ts - start.ts > window) break;
        if (e.ts > last && matchesStep(q.steps[level] as FunnelStep, e)) {
          level += 1;
          last = e.ts;
        }
      }
      best = Math.max(best, level);
    });
    for (let k = 0; k < best; k++) counts[k] = (counts[k] ?? 0) + 1;
  }
  return counts;
}
