import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { Auth } from '../http/auth.js';
import type { Ingest } from './ingest.js';
import {
  type CollectedMessage,
  MAX_BATCH_BYTES,
  MAX_BATCH_MESSAGES,
  MAX_MESSAGE_BYTES,
  type MessageType,
  normalizeMessage,
  refuseUnstorable,
  type RequestFacts,
} from './message.js';

// Segment's HTTP Tracking API: unmodified Segment / RudderStack SDKs post here.

export interface CollectDeps {
  auth: Auth;
  ingest: Ingest;
  rateLimit: (siteId: string) => void;
}

const Success = Type.Object({ success: Type.Boolean() }, { examples: [{ success: true }] });

const BatchBody = Type.Object(
  {
    batch: Type.Array(Type.Unknown(), { maxItems: MAX_BATCH_MESSAGES }),
    context: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    sentAt: Type.Optional(Type.String({ maxLength: 64 })),
    writeKey: Type.Optional(Type.String()),
  },
  {
    additionalProperties: true,
    examples: [
      {
        batch: [
          { type: 'page', anonymousId: 'a-123', properties: { path: '/pricing' } },
          { type: 'track', userId: 'user-42', event: 'Product Clicked', properties: { product_id: 'sku-7' } },
        ],
        context: { userAgent: 'Mozilla/5.0' },
      },
    ],
  },
);

const SINGLE_ROUTES: readonly MessageType[] = ['track', 'page', 'screen', 'identify', 'group', 'alias'];

export function requestFacts(request: FastifyRequest): RequestFacts {
  return { receivedAt: Date.now(), ip: request.ip, userAgent: request.headers['user-agent'] };
}

export function registerSegmentRoutes(app: FastifyInstance, deps: CollectDeps): void {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>();
  routes.post(
    '/v1/batch',
    {
      bodyLimit: MAX_BATCH_BYTES,
      config: { validationCode: 'invalid_event' },
      schema: { body: BatchBody, response: { 200: Success } },
    },
    async (request) => {
      const body = request.body;
      const site = await deps.auth.writeKey(request, body.writeKey);
      deps.rateLimit(site.id);
      const facts = requestFacts(request);
      const defaults = { ...(body.context ? { context: body.context } : {}), ...(body.sentAt ? { sentAt: body.sentAt } : {}) };
      if (body.context) refuseUnstorable(JSON.stringify(body.context), '/context');
      // Every message is checked before any is queued: a batch is accepted or rejected whole.
      const messages: CollectedMessage[] = body.batch.map((m, i) => normalizeMessage(m, ['batch', i], facts, defaults));
      await deps.ingest(site.id, messages);
      return { success: true };
    },
  );

  for (const type of SINGLE_ROUTES) {
    routes.post(
      `/v1/${type}`,
      {
        bodyLimit: MAX_MESSAGE_BYTES,
        config: { validationCode: 'invalid_event' },
        schema: { body: Type.Record(Type.String(), Type.Unknown()), response: { 200: Success } },
      },
      async (request) => {
        const body = request.body;
        const site = await deps.auth.writeKey(request, body['writeKey']);
        deps.rateLimit(site.id);
        const message = normalizeMessage({ ...body, type }, [], requestFacts(request));
        await deps.ingest(site.id, [message]);
        return { success: true };
      },
    );
  }
}
