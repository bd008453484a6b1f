import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

// Prometheus metrics of one process, in a registry of its own (tests build many apps).
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tally_' });
  return {
    registry,
    ingested: new Counter({ name: 'tally_ingested_events_total', help: 'Events accepted by the collector', registers: [registry] }),
    plausibleUnknownDomain: new Counter({
      name: 'tally_plausible_unknown_domain_events_total',
      help: 'Plausible events (per domain named) for a domain no site answers to: answered 202, counted nowhere',
      registers: [registry],
    }),
    processed: new Counter({ name: 'tally_processed_events_total', help: 'Events the processor handled', registers: [registry] }),
    duplicates: new Counter({
      name: 'tally_duplicate_events_total',
      help: 'Events dropped as duplicates (same site and messageId)',
      registers: [registry],
    }),
    deadLettered: new Counter({
      name: 'tally_dead_lettered_entries_total',
      help: 'Stream entries moved to the dead letters after their batch failed every attempt (tally dead-letters)',
      registers: [registry],
    }),
    streamBacklog: new Gauge({ name: 'tally_stream_backlog', help: 'Ingestion stream entries not yet processed', registers: [registry] }),
    flushLag: new Gauge({
      name: 'tally_flush_lag_seconds',
      help: 'Age of the oldest counter delta that may not be in PostgreSQL yet: seconds since the start of the last flush pass that failed nothing and left no backlog',
      registers: [registry],
    }),
    unknownNames: new Gauge({
      name: 'tally_unknown_counter_names',
      help: 'Stored counter names this version cannot read, skipped since the process started (each is logged)',
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'tally_http_request_duration_seconds',
      help: 'HTTP request latency',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
