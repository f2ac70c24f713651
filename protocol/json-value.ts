import type { JsonValue } from './frame.ts'
import type { Checked } from './paths.ts'

/** §1: a JSON value nested deeper than this (each array or object adds a level) is a violation. */
export const MAX_JSON_DEPTH = 256

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const DIGIT_0 = 0x30
const DIGIT_9 = 0x39
const POINT = 0x2e
const MINUS = 0x2d
const PLUS = 0x2b
const LOWER_E = 0x65
const UPPER_E = 0x45
/** Fewer integer digits than this cannot reach Number.MAX_VALUE (about 1.8e308). */
const SAFE_DIGIT_RUN = 300

/**
 * §1 for JSON text: parses it, refusing a value deeper than 256 levels or
 * holding a number that is not a finite double (`1e400`). The depth is
 * checked by a scan of the text before `JSON.parse` (iterative, so it cannot
 * overflow the stack whatever the nesting); the numbers are walked only when
 * the scan saw one that could overflow (an exponent, or 300 digits in a row).
 */
export function parseJsonText (text: string): Checked<JsonValue> {
  const scan = scanJsonText(text)
  if (scan.depth > MAX_JSON_DEPTH) return { ok: false, reason: `JSON nested over ${MAX_JSON_DEPTH} levels deep` }
  let value: JsonValue
  try {
    value = JSON.parse(text) as JsonValue
  } catch (err) {
    return { ok: false, reason: `JSON does not parse (${(err as Error).message})` }
  }
  return scan.mayOverflow ? checkJsonValue(value) : { ok: true, value }
}

/**
 * §1 for a value already parsed (a data file, say): no deeper than 256
 * levels, every number a finite double, nothing that is not JSON. Iterative.
 */
export function checkJsonValue (value: unknown): Checked<JsonValue> {
  const stack: Array<{ v: unknown, depth: number }> = [{ v: value, depth: 0 }]
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const { v, depth } = top
    if (v === null || typeof v === 'string' || typeof v === 'boolean') continue
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return { ok: false, reason: `JSON holds a number that is not a finite double (${String(v)})` }
      continue
    }
    if (typeof v !== 'object') return { ok: false, reason: `not a JSON value: a ${typeof v}` }
    if (depth + 1 > MAX_JSON_DEPTH) return { ok: false, reason: `JSON nested over ${MAX_JSON_DEPTH} levels deep` }
    const children = Array.isArray(v) ? v : Object.values(v)
    for (const child of children) stack.push({ v: child, depth: depth + 1 })
  }
  return { ok: true, value: value as JsonValue }
}

/**
 * One pass over the text outside strings: the deepest nesting of `[` and
 * `{`, and whether a number might overflow to Infinity. Strings are skipped
 * with indexOf, so text-heavy JSON costs little.
 */
function scanJsonText (text: string): { depth: number, mayOverflow: boolean } {
  let depth = 0
  let deepest = 0
  /** Characters of the number being read so far (digits and its point), 0 outside numbers. */
  let digits = 0
  // Stryker disable next-line BooleanLiteral: performance only: starting true only adds checkJsonValue's walk, which finds what JSON.parse's value holds anyway
  let mayOverflow = false
  const n = text.length
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if ((c >= DIGIT_0 && c <= DIGIT_9) || (c === POINT && digits > 0)) {
      // Stryker disable next-line EqualityOperator: performance only: 299 or 300 digits cannot overflow (that takes 309), and `<` only adds the walk
      if (++digits >= SAFE_DIGIT_RUN) mayOverflow = true
      continue
    }
    // An exponent can overflow only when positive and large enough for the digits before it (1e-7 cannot).
    if ((c === LOWER_E || c === UPPER_E) && digits > 0 && digits + exponentAt(text, i + 1) >= SAFE_DIGIT_RUN) mayOverflow = true
    digits = 0
    if (c === QUOTE) {
      i = endOfString(text, i)
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > deepest) {
        deepest = depth
        // Deeper than allowed: no need to read on (a 64 MiB "[[[[…" stops here).
        if (deepest > MAX_JSON_DEPTH) break
      }
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--
    }
  }
  return { depth: deepest, mayOverflow }
}

/** The value of the exponent that starts at `at` (after the `e`): negative ones count as 0, long ones as huge. */
function exponentAt (text: string, at: number): number {
  let i = at
  const sign = text.charCodeAt(i)
  if (sign === MINUS) return 0
  if (sign === PLUS) i++
  let value = 0
  // Stryker disable next-line LogicalOperator: performance only: reading on past the digits (NaN at the end stops it) can lower the value only below 5, where overflowing takes 305+ digits, flagged by the digit run
  for (let c = text.charCodeAt(i); c >= DIGIT_0 && c <= DIGIT_9; c = text.charCodeAt(++i)) {
    value = value * 10 + (c - DIGIT_0)
    if (value >= SAFE_DIGIT_RUN) return value
  }
  return value
}

/** The index of the quote that closes the string opened at `open` (or the end of the text). */
function endOfString (text: string, open: number): number {
  let at = open
  while (true) {
    at = text.indexOf('"', at + 1)
    if (at < 0) return text.length
    let backslashes = 0
    for (let j = at - 1; j > open && text.charCodeAt(j) === BACKSLASH; j--) backslashes++
    if (backslashes % 2 === 0) return at
  }
}
