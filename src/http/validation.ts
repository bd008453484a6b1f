import { Ajv, type Options } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

// Schema validation of requests. Fastify's Ajv converts types everywhere by default ("5" → 5,
// 5 → "5", [x] ↔ x): right for the query string and the path, where every value arrives as
// text, wrong for JSON bodies, where a number sent for a string is a mistake the client should
// hear about. So bodies are validated by an Ajv that converts nothing.

/** Fastify's defaults (@fastify/ajv-compiler), less the conversion for bodies. */
const BASE: Options = { useDefaults: true, removeAdditional: true, allErrors: false, addUsedSchema: false };

export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const text = addFormats.default(new Ajv({ ...BASE, coerceTypes: 'array' }));
  const json = addFormats.default(new Ajv({ ...BASE, coerceTypes: false }));
  return ({ schema, httpPart }) => (httpPart === 'body' ? json : text).compile(schema as object);
}
