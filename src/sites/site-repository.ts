import { randomBytes } from 'node:crypto';
import { TallyError } from '../errors.js';
import type { Db, Queryable } from '../storage/db.js';
import { generateKey, hashKey, newSiteId, SECRET_KEY_PREFIX, WRITE_KEY_PREFIX } from './site-keys.js';

export interface Site {
  id: string;
  name: string;
  tokenSigningKey: string;
  /** IANA time zone its periods, days and hours follow (src/time/zone.ts). */
  timezone: string;
  /** Days its raw events are kept; null: forever. */
  retentionDays: number | null;
}

/** What a site's owner sets and reads (GET /v1/sites/:id). */
export interface SiteSettings {
  id: string;
  name: string;
  /** Domains it answers to in Plausible's Events API besides its name (lower case). */
  domains: string[];
  timezone: string;
  retentionDays: number | null;
}

/** Settings to change; what is absent stays. The time zone must be a name zoneName() gave. */
export interface SiteChange {
  domains?: readonly string[];
  timezone?: string;
  retentionDays?: number | null;
}

export interface CreatedSite extends SiteSettings {
  writeKey: string;
  secretKey: string;
}

export type KeyKind = 'write' | 'secret';

const CACHE_TTL_MS = 60_000;
const MISS_TTL_MS = 5_000;

interface Row {
  id: string;
  name: string;
  token_signing_key: string;
  timezone: string;
  retention_days: number | null;
}

const COLUMNS = 'id, name, token_signing_key, timezone, retention_days';

const toSite = (row: Row): Site => ({
  id: row.id,
  name: row.name,
  tokenSigningKey: row.token_signing_key,
  timezone: row.timezone,
  retentionDays: row.retention_days,
});

/**
 * Sites and their keys. Key lookups are cached in the process (hits for a minute, misses for a
 * few seconds), so collection neither waits on nor depends on PostgreSQL once a key is known.
 */
export class SiteRepository {
  private readonly cache = new Map<string, { site: Site | null; until: number }>();
  private created = 0;

  constructor(private readonly db: Db) {}

  async create(name: string, domains: readonly string[] = [], settings: Omit<SiteChange, 'domains'> = {}): Promise<CreatedSite> {
    const writeKey = generateKey(WRITE_KEY_PREFIX);
    const secretKey = generateKey(SECRET_KEY_PREFIX);
    const id = newSiteId();
    const timezone = settings.timezone ?? 'UTC';
    const retentionDays = settings.retentionDays ?? null;
    const stored = await this.db.transaction(async (tx) => {
      const inserted = await tx.query(
        `INSERT INTO sites (id, name, write_key_hash, secret_key_hash, token_signing_key, timezone, retention_days)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING`,
        [id, name, hashKey(writeKey), hashKey(secretKey), randomBytes(32).toString('base64url'), timezone, retentionDays],
      );
      if (inserted.rowCount === 0) throw new TallyError('conflict', `A site named "${name}" exists already.`, '/name');
      return replaceDomains(tx, id, domains);
    });
    this.forget(stored.removed.concat(stored.domains));
    this.created += 1;
    return { id, name, writeKey, secretKey, domains: stored.domains, timezone, retentionDays };
  }

  /**
   * Changes a site's settings in one transaction (domains: the list replaces the old one, 409
   * when another site has one of them); null when there is no such site. This process sees the
   * change at once; other processes' cached key lookups within a minute.
   */
  async update(siteId: string, change: SiteChange): Promise<SiteSettings | null> {
    const updated = await this.db.transaction(async (tx) => {
      const row = await tx.query<Row>(
        `UPDATE sites SET timezone = coalesce($2, timezone),
           retention_days = CASE WHEN $3::boolean THEN $4::integer ELSE retention_days END
         WHERE id = $1 RETURNING ${COLUMNS}`,
        [siteId, change.timezone ?? null, change.retentionDays !== undefined, change.retentionDays ?? null],
      );
      if (!row.rows[0]) return null;
      const domains = change.domains === undefined ? undefined : await replaceDomains(tx, siteId, change.domains);
      return { site: toSite(row.rows[0]), domains };
    });
    if (!updated) return null;
    if (updated.domains) this.forget(updated.domains.removed.concat(updated.domains.domains));
    for (const [key, hit] of [...this.cache]) if (hit.site?.id === siteId) this.cache.delete(key);
    const { id, name, timezone, retentionDays } = updated.site;
    return { id, name, timezone, retentionDays, domains: updated.domains?.domains ?? (await this.domainsOf(siteId)) };
  }

  /** The site's settings, or null when there is no such site. */
  async settings(siteId: string): Promise<SiteSettings | null> {
    const site = await this.byId(siteId);
    if (!site) return null;
    const { id, name, timezone, retentionDays } = site;
    return { id, name, timezone, retentionDays, domains: await this.domainsOf(siteId) };
  }

  async domainsOf(siteId: string): Promise<string[]> {
    const result = await this.db.query<{ domain: string }>('SELECT domain FROM site_domains WHERE site_id = $1 ORDER BY domain', [siteId]);
    return result.rows.map((r) => r.domain);
  }

  /**
   * The site a Plausible `domain` names: the site of that exact name, else the site that lists
   * the domain (lower-cased) among its domains.
   */
  async byDomain(domain: string): Promise<Site | null> {
    return this.cached(`domain:${domain}`, async () => {
      const result = await this.db.query<Row>(
        `SELECT ${COLUMNS} FROM (
           SELECT ${COLUMNS}, 0 AS rank FROM sites WHERE name = $1
           UNION ALL
           SELECT s.id, s.name, s.token_signing_key, s.timezone, s.retention_days, 1 AS rank
           FROM site_domains d JOIN sites s ON s.id = d.site_id WHERE d.domain = $2
         ) found ORDER BY rank LIMIT 1`,
        [domain, normalizeDomain(domain)],
      );
      return result.rows[0] ? toSite(result.rows[0]) : null;
    });
  }

  /** Changes whenever this repository creates a site: a site list kept elsewhere is read again then. */
  get generation(): number {
    return this.created;
  }

  async count(): Promise<number> {
    const result = await this.db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM sites');
    return result.rows[0]?.n ?? 0;
  }

  async list(): Promise<Site[]> {
    const result = await this.db.query<Row>(`SELECT ${COLUMNS} FROM sites ORDER BY created_at`);
    return result.rows.map(toSite);
  }

  async byId(id: string): Promise<Site | null> {
    const result = await this.db.query<Row>(`SELECT ${COLUMNS} FROM sites WHERE id = $1`, [id]);
    return result.rows[0] ? toSite(result.rows[0]) : null;
  }

  /** The site a key belongs to, or null. */
  async byKey(kind: KeyKind, key: string): Promise<Site | null> {
    const digest = hashKey(key);
    return this.cached(`${kind}:${digest}`, async () => {
      const column = kind === 'write' ? 'write_key_hash' : 'secret_key_hash';
      const result = await this.db.query<Row>(`SELECT ${COLUMNS} FROM sites WHERE ${column} = $1`, [digest]);
      return result.rows[0] ? toSite(result.rows[0]) : null;
    });
  }

  /** Drops this process's cached lookups of these domains (other processes see changes within a minute). */
  private forget(domains: readonly string[]): void {
    for (const key of [...this.cache.keys()]) {
      if (key.startsWith('domain:') && domains.includes(normalizeDomain(key.slice('domain:'.length)))) this.cache.delete(key);
    }
  }

  private async cached(key: string, load: () => Promise<Site | null>): Promise<Site | null> {
    const hit = this.cache.get(key);
    const now = Date.now();
    if (hit && hit.until > now) return hit.site;
    let site: Site | null;
    try {
      site = await load();
    } catch {
      // PostgreSQL down: a key seen before keeps working; an unknown one cannot be checked.
      if (hit?.site) return hit.site;
      throw new TallyError('unavailable', 'Keys cannot be checked right now; retry later.', undefined, 5);
    }
    this.cache.set(key, { site, until: now + (site ? CACHE_TTL_MS : MISS_TTL_MS) });
    if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value as string);
    return site;
  }
}

export const normalizeDomain = (domain: string): string => domain.trim().toLowerCase();

/** Replaces a site's domains in a transaction; answers the stored list and the ones removed. */
async function replaceDomains(
  tx: Queryable,
  siteId: string,
  domains: readonly string[],
): Promise<{ domains: string[]; removed: string[] }> {
  const wanted = [...new Set(domains.map(normalizeDomain))].sort();
  const taken = await tx.query<{ domain: string }>(
    `SELECT domain FROM site_domains WHERE domain = ANY($1::text[]) AND site_id <> $2
     UNION ALL SELECT name FROM sites WHERE name = ANY($1::text[]) AND id <> $2`,
    [wanted, siteId],
  );
  const clash = taken.rows[0]?.domain;
  if (clash !== undefined) {
    throw new TallyError(
      'conflict',
      `Another site answers to "${clash}" already.`,
      `/domains/${domains.findIndex((d) => normalizeDomain(d) === clash)}`,
    );
  }
  const removed = await tx.query<{ domain: string }>('DELETE FROM site_domains WHERE site_id = $1 RETURNING domain', [siteId]);
  try {
    await tx.query('INSERT INTO site_domains (domain, site_id) SELECT unnest($1::text[]), $2', [wanted, siteId]);
  } catch (err) {
    // Another site claimed one of them since the check above.
    if ((err as { code?: unknown }).code === '23505')
      throw new TallyError('conflict', 'Another site took one of these domains meanwhile.', '/domains');
    throw err;
  }
  return { domains: wanted, removed: removed.rows.map((r) => r.domain) };
}
