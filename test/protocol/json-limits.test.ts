import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { checkJsonValue, MAX_JSON_DEPTH } from '../../protocol/json-value.ts'

/** `[[…[leaf]…]]` (arrays) or `{"a":{"a":…leaf}}` (objects), `depth` levels deep. */
function nested (depth: number, kind: 'array' | 'object', leaf: unknown = 1): unknown {
  let v: unknown = leaf
  for (let i = 0; i < depth; i++) v = kind === 'array' ? [v] : { a: v }
  return v
}

const tooDeep = { ok: false, reason: `JSON nested over ${MAX_JSON_DEPTH} levels deep` }

describe('§1 limits on a parsed JSON value, as a data file is checked (checkJsonValue)', () => {
  it('counts each array or object as one level: 256 deep is fine, 257 is refused', () => {
    expect(MAX_JSON_DEPTH).toBe(256)
    for (const kind of ['array', 'object'] as const) {
      expect(checkJsonValue(nested(256, kind)).ok).toBe(true)
      expect(checkJsonValue(nested(257, kind))).toEqual(tooDeep)
      expect(checkJsonValue(nested(256, kind, []))).toEqual(tooDeep)
    }
    expect(checkJsonValue(nested(256, 'array', null)).ok).toBe(true)
    expect(checkJsonValue(nested(256, 'array', 'text')).ok).toBe(true)
  })

  it('scalars are fine, and a value a million levels deep is refused without a stack overflow', () => {
    for (const v of [1, 'x', null, true]) expect(checkJsonValue(v)).toEqual({ ok: true, value: v })
    expect(checkJsonValue(nested(1_000_000, 'array'))).toEqual(tooDeep)
  })

  it('refuses a number that is not a finite double, wherever it sits', () => {
    for (const bad of [Infinity, -Infinity, NaN]) {
      const refused = { ok: false, reason: `JSON holds a number that is not a finite double (${String(bad)})` }
      expect(checkJsonValue(bad)).toEqual(refused)
      expect(checkJsonValue({ a: [1, { b: bad }] })).toEqual(refused)
      expect(checkJsonValue([0, 'x', null, bad])).toEqual(refused)
    }
    expect(checkJsonValue(JSON.parse('{"hours":1e400}')).ok).toBe(false)
    expect(checkJsonValue([Number.MAX_VALUE, -0, 5e-324]).ok).toBe(true)
  })

  it('accepts every JSON value of bounded depth (property)', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 8 }), (v) => {
      expect(checkJsonValue(v).ok).toBe(true)
    }), { numRuns: 300 })
  })

  it('depth is that of the deepest branch, not the first or last (property)', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 6 }), fc.nat({ max: 5 }), (extra, pick) => {
      // Branches MAX - 1 - e deep under one array: the deepest is MAX - min(e) levels in all.
      const branches = extra.map((e) => nested(MAX_JSON_DEPTH - 1 - e, 'array'))
      expect(checkJsonValue(branches).ok).toBe(true)
      // One branch one level deeper than allowed, wherever it sits, is refused.
      const at = pick % (branches.length + 1)
      const withDeep = [...branches.slice(0, at), nested(MAX_JSON_DEPTH, 'array'), ...branches.slice(at)]
      expect(checkJsonValue(withDeep)).toEqual(tooDeep)
    }), { numRuns: 100 })
  })
})
