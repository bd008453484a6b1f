// A goal: a predicate over events (a page view of a path pattern, or a custom event with
// optional property values). Goals are not counters: a goal defined today answers for every
// event stored before it too.

export interface Goal {
  id: string;
  name: string;
  /** Path pattern of a page-view goal; `*` stands for any characters. */
  page?: string;
  /** Event name of a custom-event goal. */
  event?: string;
  /** Property values the event must carry (custom-event goals only). */
  props?: Readonly<Record<string, string>>;
}

export const MAX_GOALS_PER_SITE = 100;
export const MAX_GOAL_NAME_LENGTH = 120;
export const MAX_GOAL_PROPS = 10;
