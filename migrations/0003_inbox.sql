-- The notification inbox (src/inbox). Rows are the truth; unread_counts is the write-behind
-- copy of each user's unread count, advanced by the flusher from Redis buffers (flush_state
-- records each buffer's applied batches), checked against the rows by the reconciler.
CREATE TABLE notifications (
  site_id text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
  id text NOT NULL,
  -- Insertion order: newest-first listing, cursors and read-all's `before` watermark.
  seq bigserial NOT NULL,
  user_id text NOT NULL,
  category text,
  title text NOT NULL,
  body text NOT NULL DEFAULT '',
  data jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  read_at timestamptz,
  PRIMARY KEY (site_id, id)
);

CREATE INDEX notifications_by_user ON notifications (site_id, user_id, seq DESC);
-- Unread rows only: the reconciler's COUNT(*), unread listings and read-all stay small.
CREATE INDEX notifications_unread ON notifications (site_id, user_id, seq DESC) WHERE read_at IS NULL;

-- Durable unread count per user. It may dip below zero between two flushes (a read's -1 can be
-- flushed before its create's +1); the count read adds the pending deltas and is never negative.
CREATE TABLE unread_counts (
  site_id text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
  user_id text NOT NULL,
  unread bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (site_id, user_id)
);

-- What the reconciler found, per site: exported by /metrics as the drift metric.
CREATE TABLE inbox_reconcile_state (
  site_id text PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
  runs bigint NOT NULL DEFAULT 0,
  users_checked bigint NOT NULL DEFAULT 0,
  users_drifted bigint NOT NULL DEFAULT 0,
  drift_repaired bigint NOT NULL DEFAULT 0,
  last_drift bigint NOT NULL DEFAULT 0,
  last_run_at timestamptz NOT NULL DEFAULT now()
);
