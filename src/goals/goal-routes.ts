import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { TallyError } from '../errors.js';
import type { Auth } from '../http/auth.js';
import { MAX_VALUE_LENGTH } from '../process/enrich.js';
import { isStorableText } from '../storage/storable-text.js';
import { MAX_GOAL_NAME_LENGTH, MAX_GOAL_PROPS } from './goal.js';
import type { GoalRepository } from './goal-repository.js';

// POST /v1/goals, GET /v1/goals, DELETE /v1/goals/:id (secret key; the key's site): API.md
// "Goals". A goal is exactly one of a page pattern or an event name; props go with events.

const Text = (maxLength: number) => Type.String({ minLength: 1, maxLength });
const Props = Type.Record(Type.String({ minLength: 1, maxLength: 100 }), Type.String({ maxLength: MAX_VALUE_LENGTH }), {
  maxProperties: MAX_GOAL_PROPS,
});
const GoalBody = Type.Object(
  {
    name: Text(MAX_GOAL_NAME_LENGTH),
    page: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_VALUE_LENGTH, pattern: '^/' })),
    event: Type.Optional(Text(MAX_VALUE_LENGTH)),
    props: Type.Optional(Props),
  },
  {
    additionalProperties: false,
    examples: [
      { name: 'Pricing', page: '/pricing*' },
      { name: 'Pro signup', event: 'Signed Up', props: { plan: 'pro' } },
    ],
  },
);
const GoalAnswer = Type.Object({
  id: Type.String(),
  name: Type.String(),
  page: Type.Optional(Type.String()),
  event: Type.Optional(Type.String()),
  props: Type.Optional(Type.Record(Type.String(), Type.String())),
});

export function registerGoalRoutes(app: FastifyInstance, deps: { auth: Auth; goals: GoalRepository }): void {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>();
  const { auth, goals } = deps;

  routes.post('/v1/goals', { bodyLimit: 16 * 1024, schema: { body: GoalBody, response: { 201: GoalAnswer } } }, async (request, reply) => {
    const site = await auth.secret(request);
    const { name, page, event, props } = request.body;
    if ((page === undefined) === (event === undefined)) {
      throw new TallyError(
        'invalid_request',
        'A goal has exactly one of page (a path pattern) or event (an event name).',
        page === undefined ? '/page' : '/event',
      );
    }
    if (props !== undefined && page !== undefined) throw new TallyError('invalid_request', 'props go with an event goal.', '/props');
    const texts: [string, string][] = [
      ['/name', name],
      ['/page', page ?? ''],
      ['/event', event ?? ''],
    ];
    for (const [k, v] of Object.entries(props ?? {})) texts.push([`/props/${k}`, k + v]);
    for (const [path, text] of texts) {
      if (!isStorableText(text))
        throw new TallyError('invalid_request', 'Text must not contain NUL characters or unpaired UTF-16 surrogates.', path);
    }
    const goal = await goals.create(site.id, page !== undefined ? { name, page } : { name, event: event as string, props: props ?? {} });
    return reply.status(201).send(goal);
  });

  routes.get('/v1/goals', { schema: { response: { 200: Type.Object({ goals: Type.Array(GoalAnswer) }) } } }, async (request) => {
    const site = await auth.secret(request);
    return { goals: await goals.list(site.id) };
  });

  routes.delete(
    '/v1/goals/:id',
    {
      schema: {
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) }),
        response: { 200: Type.Object({ deleted: Type.Boolean() }) },
      },
    },
    async (request) => {
      const site = await auth.secret(request);
      if (!(await goals.delete(site.id, request.params.id)))
        throw new TallyError('not_found', 'This site has no goal with that id.', '/id');
      return { deleted: true };
    },
  );
}
