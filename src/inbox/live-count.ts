import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { LiveChannel } from '../storage/live-channel.js';
import { summarize } from './counts-view.js';
import type { UnreadCounter } from './unread-counter.js';

// GET …/notifications/stream: Server-Sent Events of {"unread", "version", "counts"} (counts:
// {unseen, unread, total}, within the stream's tenant if it has one). The current value goes out
// at once; every change of the user's counts is announced on the user's channel (its version
// only), and the stream re-reads the counts then: one read per burst of changes, only while
// someone listens. Versions only grow, so a value is never sent after a newer one. A muted
// notification changes no count: nothing is pushed for it.

const HEARTBEAT_MS = 15_000;

export function registerLiveCount(app: FastifyInstance, deps: { live: LiveChannel; counter: UnreadCounter }) {
  const open = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...open]) end();
  });

  return async function stream(
    request: FastifyRequest,
    reply: FastifyReply,
    target: { siteId: string; userId: string; tenant?: string | undefined },
  ): Promise<void> {
    const { siteId, userId, tenant } = target;
    const raw = reply.raw;
    let sent = -1;
    let reading: Promise<void> | null = null;
    let again = false;
    let closed = false;

    const push = (): void => {
      if (reading) {
        again = true;
        return;
      }
      reading = (async () => {
        do {
          again = false;
          const value = await deps.counter.read(siteId, userId);
          if (!closed && value.version > sent) {
            sent = value.version;
            const counts = summarize(value.counts, { tenant });
            raw.write(`data: ${JSON.stringify({ unread: counts.unread, version: value.version, counts })}\n\n`);
          }
        } while (again && !closed);
      })()
        .catch((err: unknown) => request.log.warn({ err }, 'live count read failed'))
        .finally(() => {
          reading = null;
        });
    };

    // Subscribe before the first read: a change landing in between is announced, not missed.
    const unsubscribe = await deps.live.subscribe(deps.counter.channel(siteId, userId), (message) => {
      if (Number(message) > sent) push();
    });
    reply.hijack();
    raw.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    raw.write('retry: 2000\n\n');
    push();
    const heartbeat = setInterval(() => raw.write(': ping\n\n'), HEARTBEAT_MS);

    const end = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      open.delete(end);
      unsubscribe().catch(() => undefined);
      raw.end();
    };
    open.add(end);
    request.raw.on('close', end);
  };
}
