import Type from 'typebox';
import { PERIODS } from './stats-range.js';

/** The period parameters every stats query takes (API.md "Stats"). */
export const PeriodFields = {
  period: Type.Optional(Type.Enum([...PERIODS])),
  from: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
  to: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
};

export const PeriodQuery = Type.Object(PeriodFields, { additionalProperties: false });
