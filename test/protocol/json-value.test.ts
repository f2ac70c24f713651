import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  checkJsonValue, encodeJson, FrameDecoder, MAX_JSON_DEPTH, parseJsonText, ProtocolError, type JsonValue
} from '../../protocol/index.ts'

/** `[[…[inner]…]]`, `levels` arrays deep, built without recursion. */
const nestedArrays = (levels: number, inner = '1'): string => '['.repeat(levels) + inner + ']'.repeat(levels)
const nestedObjects = (levels: number): string => '{"a":'.repeat(levels) + '1' + '}'.repeat(levels)

/** Reference depth, recursive (fine for fast-check's small values). */
function depthOf (v: unknown): number {
  if (v === null || typeof v !== 'object') return 0
  const children = Array.isArray(v) ? v : Object.values(v)
  return 1 + Math.max(0, ...children.map(depthOf))
}

function decodeOne (text: string): JsonValue {
  const payload = Buffer.from(text, 'utf8')
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), payload])
  frame.writeUInt32BE(payload.byteLength, 0)
  const f = new FrameDecoder().push(frame).next()
  if (f.done === true || f.value.kind !== 'json') throw new Error('no JSON frame')
  return f.value.value
}

describe('§1 JSON values: depth and finite numbers', () => {
  it('counts each array or object as a level: 256 accepted, 257 refused', () => {
    expect(parseJsonText(nestedArrays(MAX_JSON_DEPTH)).ok).toBe(true)
    expect(parseJsonText(nestedObjects(MAX_JSON_DEPTH)).ok).toBe(true)
    expect(parseJsonText(nestedArrays(MAX_JSON_DEPTH + 1))).toEqual({ ok: false, reason: expect.stringContaining('256 levels') })
    expect(parseJsonText(nestedObjects(MAX_JSON_DEPTH + 1))).toEqual({ ok: false, reason: expect.stringContaining('256 levels') })
    expect(parseJsonText('[[1]]').ok).toBe(true)
    expect(parseJsonText('7').ok).toBe(true)
  })

  it('does not count brackets inside strings, escaped quotes included', () => {
    const tricky = JSON.stringify({ s: '['.repeat(1000) + '\\"{{{' + '"'.repeat(3) + '\\' })
    expect(parseJsonText(nestedArrays(MAX_JSON_DEPTH - 1, tricky))).toEqual({ ok: true, value: expect.anything() })
    // A string ending in an escaped backslash closes there: the brackets after it count.
    expect(parseJsonText(nestedArrays(MAX_JSON_DEPTH, '"a\\\\"')).ok).toBe(true)
    expect(parseJsonText(nestedArrays(MAX_JSON_DEPTH + 1, '"a\\\\"')).ok).toBe(false)
    // Brackets after such a string count too (a scan that took its closing quote for an escaped one would stop counting).
    for (const s of ['a\\', 'a\\\\', '\\', 'a\\"\\']) {
      const before = `[${JSON.stringify(s)},`
      expect(parseJsonText(`${before}${nestedArrays(MAX_JSON_DEPTH - 1)}]`).ok).toBe(true)
      expect(parseJsonText(`${before}${nestedArrays(MAX_JSON_DEPTH)}]`)).toEqual({ ok: false, reason: expect.stringContaining('256 levels') })
    }
  })

  it('counts the depth, not the brackets: thousands of sibling arrays and objects are one level each', () => {
    for (const sibling of ['[]', '{}', '[1]', '{"a":1}', '[[]]', '{"a":{}}']) {
      const text = `[${Array(1000).fill(sibling).join(',')}]`
      expect(parseJsonText(text)).toEqual({ ok: true, value: JSON.parse(text) })
    }
    // Closing brackets of either kind count: 256 levels, reached again after each of 300 closed branches.
    const branch = nestedArrays(MAX_JSON_DEPTH - 1)
    expect(parseJsonText(`[${Array(300).fill(branch).join(',')}]`).ok).toBe(true)
    expect(parseJsonText(`{${Array.from({ length: 300 }, (_, i) => `"${i}":${nestedObjects(MAX_JSON_DEPTH - 1)}`).join(',')}}`).ok).toBe(true)
    expect(parseJsonText(`[${branch},${nestedArrays(MAX_JSON_DEPTH)}]`).ok).toBe(false)
  })

  it('refuses a 100,000-level nesting without overflowing the stack', () => {
    expect(parseJsonText(nestedArrays(100_000)).ok).toBe(false)
    expect(() => decodeOne(nestedObjects(50_000))).toThrow(ProtocolError)
  })

  it('refuses numbers that are not finite doubles, and only those', () => {
    for (const text of ['1e400', '-1e400', '[1E999]', '{"x":{"y":[0,1.5e309]}}', '1' + '0'.repeat(400), '1e+400', '1' + '0'.repeat(250) + 'e99', '1' + '0'.repeat(250) + '.5e90', '1e0000000000400']) {
      expect(parseJsonText(text)).toEqual({ ok: false, reason: expect.stringContaining('finite') })
    }
    for (const text of ['1e300', '1e-400', '-0', '0.' + '0'.repeat(400) + '1', '"1e400"', '[true,false,1e2]', '1e-7', '1.7976931348623157e308', '[1e+21,-5e-324]']) {
      expect(parseJsonText(text).ok).toBe(true)
    }
  })

  it('agrees with Number.isFinite on any number text', () => {
    const digits = (max: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: max })
    fc.assert(fc.property(
      fc.boolean(), digits(320), fc.option(digits(30)), fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(5))),
      (negative, int, frac, exp) => {
        const text = `${negative ? '-' : ''}${int.replace(/^0+(?=\d)/, '')}${frac === null ? '' : `.${frac}`}${exp === null ? '' : exp.join('')}`
        expect(parseJsonText(`[${text}]`).ok).toBe(Number.isFinite(Number(text)))
      }
    ), { numRuns: 500 })
  })

  it('the frame decoder refuses them as protocol violations', () => {
    expect(() => decodeOne('["story", 1e400]')).toThrow(/finite/)
    expect(() => decodeOne(nestedArrays(257))).toThrow(/256 levels/)
    expect(decodeOne(nestedArrays(256))).toBeDefined()
  })

  it('agrees with JSON.parse and a reference depth on any JSON', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => {
      const text = JSON.stringify(v)
      const r = parseJsonText(text)
      expect(r.ok).toBe(depthOf(v) <= MAX_JSON_DEPTH)
      if (r.ok) expect(r.value).toEqual(JSON.parse(text))
    }), { numRuns: 300 })
  })

  it('checkJsonValue: what a data file may hold', () => {
    let deep: unknown = 1
    for (let i = 0; i < 100_000; i++) deep = [deep]
    expect(checkJsonValue(deep)).toEqual({ ok: false, reason: expect.stringContaining('256 levels') })
    expect(checkJsonValue({ a: [1, { b: Number.POSITIVE_INFINITY }] }).ok).toBe(false)
    expect(checkJsonValue({ a: Number.NaN }).ok).toBe(false)
    expect(checkJsonValue({ a: undefined })).toEqual({ ok: false, reason: 'not a JSON value: a undefined' })
    expect(checkJsonValue([() => 1])).toEqual({ ok: false, reason: 'not a JSON value: a function' })
    expect(checkJsonValue({ story: { a: [1, 'x', null, true] } })).toEqual({ ok: true, value: { story: { a: [1, 'x', null, true] } } })
    // What passes the check encodes without throwing.
    let ok: unknown = 'x'
    for (let i = 0; i < MAX_JSON_DEPTH; i++) ok = i % 2 === 0 ? [ok] : { k: ok }
    expect(checkJsonValue(ok).ok).toBe(true)
    expect(() => encodeJson(['owner', ok])).not.toThrow()
  })
})
