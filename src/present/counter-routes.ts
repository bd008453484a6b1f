import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { MAX_ID_LENGTH } from '../collect/message.js';
import type { Auth } from '../http/auth.js';
import type { CounterStats } from './counter-stats.js';

const IdParam = Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH });

const UserStats = Type.Object({
  userId: Type.String(),
  events: Type.Record(Type.String(), Type.Integer()),
  pageviews: Type.Integer(),
  clicks: Type.Integer(),
  productsClicked: Type.Integer(),
});

const ProductStats = Type.Object({
  productId: Type.String(),
  clicks: Type.Integer(),
  uniqueUsers: Type.Integer(),
});

export function registerCounterRoutes(app: FastifyInstance, deps: { auth: Auth; stats: CounterStats }): void {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>();
  routes.get(
    '/v1/stats/users/:userId',
    { schema: { params: Type.Object({ userId: IdParam }), response: { 200: UserStats } } },
    async (request) => {
      const site = await deps.auth.secret(request);
      return deps.stats.user(site.id, request.params.userId);
    },
  );

  routes.get(
    '/v1/stats/products/:productId',
    { schema: { params: Type.Object({ productId: IdParam }), response: { 200: ProductStats } } },
    async (request) => {
      const site = await deps.auth.secret(request);
      return deps.stats.product(site.id, request.params.productId);
    },
  );

  // The seed tutorial's read: the user's total clicks as a bare JSON number.
  routes.get(
    '/user/:user_id/clicks',
    { schema: { params: Type.Object({ user_id: IdParam }), response: { 200: Type.Integer() } } },
    async (request) => {
      const site = await deps.auth.secret(request);
      return deps.stats.userClicks(site.id, request.params.user_id);
    },
  );
}
