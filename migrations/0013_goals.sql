-- Goals: per-site predicates over the event store's events (a page view of a path pattern, or a
-- custom event with optional property values), answered over all past events, never counted.
CREATE TABLE goals (
  id text PRIMARY KEY,
  site_id text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
  name text NOT NULL,
  page text,
  event text,
  props jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (site_id, name),
  CHECK ((page IS NULL) <> (event IS NULL))
);
