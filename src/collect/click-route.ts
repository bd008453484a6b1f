import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { inflateBody } from './inflate-body.js';
import { MAX_ID_LENGTH, normalizeMessage } from './message.js';
import { type CollectDeps, requestFacts } from './segment-routes.js';

// The seed tutorial's route, kept for its users: a click becomes a Segment `Product Clicked`.

const Id = Type.Union([Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH }), Type.Integer()]);
const ClickBody = Type.Object({ user_id: Id, product_id: Id, writeKey: Type.Optional(Type.String()) });

export function registerClickRoute(app: FastifyInstance, deps: CollectDeps): void {
  app
    .withTypeProvider<TypeBoxTypeProvider>()
    .post(
      '/click',
      { bodyLimit: 4096, preParsing: inflateBody, config: { validationCode: 'invalid_event' }, schema: { body: ClickBody } },
      async (request, reply) => {
        const body = request.body;
        const site = await deps.auth.writeKey(request, body.writeKey);
        deps.rateLimit(site.id);
        const message = normalizeMessage(
          {
            type: 'track',
            event: 'Product Clicked',
            userId: String(body.user_id),
            properties: { product_id: String(body.product_id) },
          },
          [],
          requestFacts(request),
        );
        await deps.ingest(site.id, [message]);
        return reply.type('text/plain; charset=utf-8').send('OK');
      },
    );
}
