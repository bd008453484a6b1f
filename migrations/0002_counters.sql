-- The shared counters engine (src/counters). Durable counter values, and per buffer the last
-- batch applied: recording it in the same transaction as the deltas makes a replayed batch a no-op.
CREATE TABLE counters (
  site_id text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
  name text NOT NULL,
  value bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (site_id, name)
);

CREATE TABLE flush_state (
  buffer text PRIMARY KEY,
  last_seq bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
