import { randomBytes } from 'node:crypto';
import { TallyError } from '../errors.js';
import type { Db } from '../storage/db.js';
import { type Goal, MAX_GOALS_PER_SITE } from './goal.js';

// A site's goals in PostgreSQL (migrations/0013_goals.sql): defined, listed, deleted. Names are
// unique per site (filters and the goal dimension name goals by name).

interface Row {
  id: string;
  name: string;
  page: string | null;
  event: string | null;
  props: Record<string, string> | string;
}

function toGoal(row: Row): Goal {
  if (row.page !== null) return { id: row.id, name: row.name, page: row.page };
  const props = typeof row.props === 'string' ? (JSON.parse(row.props) as Record<string, string>) : row.props;
  return { id: row.id, name: row.name, event: row.event ?? '', props };
}

export class GoalRepository {
  constructor(private readonly db: Db) {}

  /** Adds a goal: 409 when the site has one of that name, or has its most goals already. */
  async create(siteId: string, goal: Omit<Goal, 'id'>): Promise<Goal> {
    const id = `g_${randomBytes(9).toString('base64url')}`;
    return this.db.transaction(async (tx) => {
      // The site's row, locked: two creates at once cannot both pass the count below.
      await tx.query('SELECT 1 FROM sites WHERE id = $1 FOR UPDATE', [siteId]);
      const count = await tx.query<{ n: number | string }>('SELECT count(*) AS n FROM goals WHERE site_id = $1', [siteId]);
      if (Number(count.rows[0]?.n ?? 0) >= MAX_GOALS_PER_SITE) {
        throw new TallyError('conflict', `A site has at most ${MAX_GOALS_PER_SITE} goals; delete one first.`);
      }
      const inserted = await tx.query<Row>(
        `INSERT INTO goals (id, site_id, name, page, event, props) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
         ON CONFLICT (site_id, name) DO NOTHING RETURNING id, name, page, event, props`,
        [id, siteId, goal.name, goal.page ?? null, goal.event ?? null, JSON.stringify(goal.props ?? {})],
      );
      const row = inserted.rows[0];
      if (!row) throw new TallyError('conflict', `A goal named "${goal.name}" exists already.`, '/name');
      return toGoal(row);
    });
  }

  async list(siteId: string): Promise<Goal[]> {
    const result = await this.db.query<Row>('SELECT id, name, page, event, props FROM goals WHERE site_id = $1 ORDER BY created_at, id', [
      siteId,
    ]);
    return result.rows.map(toGoal);
  }

  /** True when the site had the goal. */
  async delete(siteId: string, id: string): Promise<boolean> {
    const result = await this.db.query('DELETE FROM goals WHERE site_id = $1 AND id = $2', [siteId, id]);
    return result.rowCount > 0;
  }
}
