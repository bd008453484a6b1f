import type { Db } from '../storage/db.js';

// In-app preferences per category: a site-wide default per category, and each user's choice over
// it. A notification is muted (stored, never counted, never pushed) when, at its creation, the
// effective value of its category is off (the insert reads it: notification-sql.ts, MUTED). A
// change of preference affects new notifications only, as in Knock and Novu (docs/inbox.md).

export type Preferences = Record<string, { in_app: boolean }>;

const toPreferences = (rows: readonly { category: string; in_app: boolean }[]): Preferences =>
  Object.fromEntries(rows.map((row) => [row.category, { in_app: row.in_app }]));

const SET_DEFAULTS = `INSERT INTO inbox_preference_defaults (site_id, category, in_app)
  SELECT $1, * FROM unnest($2::text[], $3::bool[])
  ON CONFLICT (site_id, category) DO UPDATE SET in_app = excluded.in_app`;

const SET_USER = `INSERT INTO inbox_preferences (site_id, user_id, category, in_app)
  SELECT $1, $2, * FROM unnest($3::text[], $4::bool[])
  ON CONFLICT (site_id, user_id, category) DO UPDATE SET in_app = excluded.in_app`;

/** The user's effective preferences: every category with a default or a choice of theirs. */
const SELECT_USER = `SELECT coalesce(p.category, d.category) AS category, coalesce(p.in_app, d.in_app) AS in_app
  FROM (SELECT category, in_app FROM inbox_preferences WHERE site_id = $1 AND user_id = $2) p
  FULL JOIN (SELECT category, in_app FROM inbox_preference_defaults WHERE site_id = $1) d USING (category)
  ORDER BY 1`;

export function createPreferences(deps: { db: Db }) {
  const { db } = deps;
  const columns = (prefs: Preferences) => [Object.keys(prefs), Object.values(prefs).map((p) => p.in_app)];

  return {
    async defaults(siteId: string): Promise<Preferences> {
      const result = await db.query<{ category: string; in_app: boolean }>(
        'SELECT category, in_app FROM inbox_preference_defaults WHERE site_id = $1 ORDER BY category',
        [siteId],
      );
      return toPreferences(result.rows);
    },

    /** Sets the given categories' defaults (others are kept); answers every default. */
    async setDefaults(siteId: string, prefs: Preferences): Promise<Preferences> {
      if (Object.keys(prefs).length > 0) await db.query(SET_DEFAULTS, [siteId, ...columns(prefs)]);
      return this.defaults(siteId);
    },

    async ofUser(siteId: string, userId: string): Promise<Preferences> {
      return toPreferences((await db.query<{ category: string; in_app: boolean }>(SELECT_USER, [siteId, userId])).rows);
    },

    /** Sets the user's choice for the given categories (others are kept); answers the effective preferences. */
    async setUser(siteId: string, userId: string, prefs: Preferences): Promise<Preferences> {
      if (Object.keys(prefs).length > 0) await db.query(SET_USER, [siteId, userId, ...columns(prefs)]);
      return this.ofUser(siteId, userId);
    },
  };
}

export type PreferenceStore = ReturnType<typeof createPreferences>;
