// PostgreSQL's text and jsonb cannot hold a NUL character, and an unpaired UTF-16 surrogate has
// no UTF-8 form: text would silently get U+FFFD instead, jsonb refuses the whole statement.
// Input holding either is refused at the door, where the caller can still be told which field.

/** An unpaired surrogate (a high one not followed by a low one, or a low one alone), or NUL. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding NUL is the point
const UNSTORABLE_CHAR = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * What JSON.stringify writes for the same characters (the only ones it escapes as \u0000 and
 * \ud800-\udfff), after an even number of backslashes (an odd one would make the match the text
 * of an escaped backslash, as in "\\u0000").
 */
const UNSTORABLE_ESCAPE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/;

export function isStorableText(value: string): boolean {
  return !UNSTORABLE_CHAR.test(value);
}

/** For the output of JSON.stringify: true when every string in it (keys too) is storable. */
export function isStorableJson(json: string): boolean {
  return !UNSTORABLE_ESCAPE.test(json);
}
