// The event-store questions issue 13 times (bench:query through HTTP, bench:query-engine on the
// engine alone): each with the route that answers it and its body.

export interface StoreQuestion {
  label: string;
  route: '/v1/stats/query' | '/v1/stats/funnel' | '/v1/stats/retention';
  body: Record<string, unknown>;
}

export const FUNNEL_STEPS = [{ page: '/pricing' }, { page: '/signup' }, { event: 'Signed Up' }];

/** The questions over the last 30 days; `goal` names the site's "Signed Up" goal. */
export function storeQuestions(goal: string): StoreQuestion[] {
  return [
    {
      label: 'summary 30d, filtered on a referrer',
      route: '/v1/stats/query',
      body: {
        date_range: '30d',
        metrics: ['visitors', 'visits', 'pageviews', 'bounce_rate', 'visit_duration'],
        filters: ['is', 'source', ['news.ycombinator.com']],
      },
    },
    {
      label: 'top pages 30d, filtered on a country and a UTM source',
      route: '/v1/stats/query',
      body: {
        date_range: '30d',
        metrics: ['visitors', 'pageviews'],
        dimensions: ['page'],
        filters: [
          'and',
          [
            ['is', 'country', ['US']],
            ['is', 'utm_source', ['newsletter']],
          ],
        ],
        order_by: [['visitors', 'desc']],
        pagination: { limit: 10 },
      },
    },
    {
      label: "a goal's conversion rate 30d",
      route: '/v1/stats/query',
      body: { date_range: '30d', metrics: ['visitors', 'conversions', 'conversion_rate'], filters: ['is', 'goal', [goal]] },
    },
    { label: 'funnel of 3 steps 30d', route: '/v1/stats/funnel', body: { date_range: '30d', steps: FUNNEL_STEPS } },
    {
      label: 'summary 30d with previous_period',
      route: '/v1/stats/query',
      body: { date_range: '30d', metrics: ['visitors', 'pageviews', 'bounce_rate'], include: { comparison: 'previous_period' } },
    },
    {
      label: 'breakdown by a custom property 30d',
      route: '/v1/stats/query',
      body: { date_range: '30d', metrics: ['visitors', 'events'], dimensions: ['props:plan'], order_by: [['events', 'desc']] },
    },
    { label: 'retention 30d by week', route: '/v1/stats/retention', body: { date_range: '30d', interval: 'week' } },
  ];
}
