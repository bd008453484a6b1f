-- Inbox states (seen, read, archived), tenants, expiry, actions and preferences (docs/inbox.md).
-- A notification is counted ("live") while it is not archived, not expired and not muted; a
-- live row counts in its user's cell (tenant, category) as total, unread (read_at IS NULL) and
-- unseen (seen_at IS NULL). '' stands for "no tenant" / "no category" in the counts.
ALTER TABLE notifications
  ADD COLUMN seen_at timestamptz,
  ADD COLUMN archived_at timestamptz,
  ADD COLUMN tenant text,
  ADD COLUMN expires_at timestamptz,
  -- Set once by the expiry loop, in the statement that takes the row out of the counts: a row
  -- whose expires_at passed but is not yet marked is still counted, so counts and lists agree.
  ADD COLUMN expired boolean NOT NULL DEFAULT false,
  -- The user had the category's in-app channel off when it was created: stored, never counted.
  ADD COLUMN muted boolean NOT NULL DEFAULT false,
  ADD COLUMN action_url text,
  ADD COLUMN actions jsonb,
  ADD COLUMN clicked_action text,
  ADD COLUMN clicked_at timestamptz;

-- Rows read before seen existed were seen too.
UPDATE notifications SET seen_at = read_at WHERE read_at IS NOT NULL;

-- The expiry loop's work list: rows with an expiry not yet applied, soonest first.
CREATE INDEX notifications_expiring ON notifications (expires_at) WHERE expires_at IS NOT NULL AND NOT expired;

-- Durable counts per user and cell, written behind by the flusher (src/inbox/unread-flush.ts).
CREATE TABLE inbox_counts (
  site_id text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
  user_id text NOT NULL,
  tenant text NOT NULL DEFAULT '',
  category text NOT NULL DEFAULT '',
  unseen bigint NOT NULL DEFAULT 0,
  unread bigint NOT NULL DEFAULT 0,
  total bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (site_id, user_id, tenant, category)
);

-- Counted from the rows here: deltas still buffered in Redis under the old format (one number per
-- user) belong to changes these rows already hold, and the flusher skips them.
INSERT INTO inbox_counts (site_id, user_id, tenant, category, unseen, unread, total)
SELECT site_id, user_id, '', coalesce(category, ''), count(*) FILTER (WHERE seen_at IS NULL),
  count(*) FILTER (WHERE read_at IS NULL), count(*)
FROM notifications GROUP BY site_id, user_id, coalesce(category, '');

DROP TABLE unread_counts;

-- In-app preferences per category: the site's default, and each user's choice over it.
CREATE TABLE inbox_preference_defaults (
  site_id text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
  category text NOT NULL,
  in_app boolean NOT NULL,
  PRIMARY KEY (site_id, category)
);

CREATE TABLE inbox_preferences (
  site_id text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
  user_id text NOT NULL,
  category text NOT NULL,
  in_app boolean NOT NULL,
  PRIMARY KEY (site_id, user_id, category)
);
