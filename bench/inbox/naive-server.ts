import Fastify from 'fastify';
import pg from 'pg';

// The naive counter path the benchmark compares with: every mutation updates the user's counter
// row directly, in the same statement as the notification (one round trip, atomic), so every
// write of a hot user queues on that user's row lock. Same routes and tables as Tally's inbox,
// no auth. Environment: DATABASE_URL, SCHEMA, SITE, PORT.

const schema = process.env['SCHEMA'] as string;
const site = process.env['SITE'] as string;
const pool = new pg.Pool({ connectionString: process.env['DATABASE_URL'], max: 10, options: `-c search_path=${schema}` });
const app = Fastify();

app.post('/v1/notifications', async (request, reply) => {
  const body = request.body as { userId: string; title: string };
  const result = await pool.query(
    `WITH n AS (INSERT INTO notifications (site_id, id, user_id, title) VALUES ($1, gen_random_uuid()::text, $2, $3) RETURNING id, user_id)
     INSERT INTO unread_counts (site_id, user_id, unread) SELECT $1, user_id, 1 FROM n
     ON CONFLICT (site_id, user_id) DO UPDATE SET unread = unread_counts.unread + 1
     RETURNING (SELECT id FROM n)`,
    [site, body.userId, body.title],
  );
  return reply.status(201).send({ id: result.rows[0]?.id });
});

app.post('/v1/notifications/:id/read', async (request) => {
  const { id } = request.params as { id: string };
  const result = await pool.query(
    `WITH r AS (UPDATE notifications SET read_at = now() WHERE site_id = $1 AND id = $2 AND read_at IS NULL RETURNING user_id)
     UPDATE unread_counts c SET unread = c.unread - 1 FROM r WHERE c.site_id = $1 AND c.user_id = r.user_id RETURNING c.unread`,
    [site, id],
  );
  return { changed: result.rowCount === 1, unread: result.rows[0]?.unread ?? null };
});

app.get('/v1/users/:userId/notifications/count', async (request) => {
  const { userId } = request.params as { userId: string };
  const result = await pool.query('SELECT unread FROM unread_counts WHERE site_id = $1 AND user_id = $2', [site, userId]);
  return { unread: Number(result.rows[0]?.unread ?? 0) };
});

const shutdown = async () => {
  await app.close();
  await pool.end();
  process.exit(0);
};
process.once('SIGTERM', shutdown);
await app.listen({ port: Number(process.env['PORT']), host: '127.0.0.1' });
