-- Raw events, append-only, partitioned by the UTC day of their (skew-corrected) timestamp.
-- A partitioned table's unique key must hold the partition key, so the key is
-- (site_id, day, message_id), not (site_id, message_id). That still catches every replay Tally
-- makes itself (a redelivered stream entry carries the same computed timestamp, so the same
-- day); a client's retry of an already counted message never reaches this table, because the
-- processor writes only what the real-time step found new, plus whole redelivered entries.
-- Partitions are created on demand by the raw-event sink (src/process/raw-events.ts).
CREATE TABLE events (
  site_id text NOT NULL,
  day date NOT NULL,
  message_id text NOT NULL,
  type text NOT NULL,
  ts timestamptz NOT NULL,
  received_at timestamptz NOT NULL,
  visitor text NOT NULL,
  user_id text,
  anonymous_id text,
  event text,
  name text,
  group_id text,
  previous_user_id text,
  properties jsonb NOT NULL,
  context jsonb NOT NULL,
  traits jsonb NOT NULL,
  PRIMARY KEY (site_id, day, message_id)
) PARTITION BY RANGE (day);
