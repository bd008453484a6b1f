import { randomBytes } from 'node:crypto';
import type { Db } from '../storage/db.js';
import { TallyError } from '../errors.js';
import { generateKey, hashKey, newSiteId, SECRET_KEY_PREFIX, WRITE_KEY_PREFIX } from './site-keys.js';

export interface Site {
  id: string;
  name: string;
  tokenSigningKey: string;
}

export interface CreatedSite {
  id: string;
  name: string;
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
}

const toSite = (row: Row): Site => ({ id: row.id, name: row.name, tokenSigningKey: row.token_signing_key });

/**
 * Sites and their keys. Key lookups are cached in the process (hits for a minute, misses for a
 * few seconds), so collection neither waits on nor depends on PostgreSQL once a key is known.
 */
export class SiteRepository {
  private readonly cache = new Map<string, { site: Site | null; until: number }>();
  private created = 0;

  constructor(private readonly db: Db) {}

  async create(name: string): Promise<CreatedSite> {
    const writeKey = generateKey(WRITE_KEY_PREFIX);
    const secretKey = generateKey(SECRET_KEY_PREFIX);
    const id = newSiteId();
    const inserted = await this.db.query(
      `INSERT INTO sites (id, name, write_key_hash, secret_key_hash, token_signing_key)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING`,
      [id, name, hashKey(writeKey), hashKey(secretKey), randomBytes(32).toString('base64url')],
    );
    if (inserted.rowCount === 0) throw new TallyError('conflict', `A site named "${name}" exists already.`, '/name');
    this.created += 1;
    return { id, name, writeKey, secretKey };
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
    const result = await this.db.query<Row>('SELECT id, name, token_signing_key FROM sites ORDER BY created_at');
    return result.rows.map(toSite);
  }

  async byId(id: string): Promise<Site | null> {
    const result = await this.db.query<Row>('SELECT id, name, token_signing_key FROM sites WHERE id = $1', [id]);
    return result.rows[0] ? toSite(result.rows[0]) : null;
  }

  async byName(name: string): Promise<Site | null> {
    return this.cached(`name:${name}`, async () => {
      const result = await this.db.query<Row>('SELECT id, name, token_signing_key FROM sites WHERE name = $1', [name]);
      return result.rows[0] ? toSite(result.rows[0]) : null;
    });
  }

  /** The site a key belongs to, or null. */
  async byKey(kind: KeyKind, key: string): Promise<Site | null> {
    const digest = hashKey(key);
    return this.cached(`${kind}:${digest}`, async () => {
      const column = kind === 'write' ? 'write_key_hash' : 'secret_key_hash';
      const result = await this.db.query<Row>(
        `SELECT id, name, token_signing_key FROM sites WHERE ${column} = $1`,
        [digest],
      );
      return result.rows[0] ? toSite(result.rows[0]) : null;
    });
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
