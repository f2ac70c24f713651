import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { checkJsonValue, MAX_JSON_DEPTH } from '../../protocol/json-limits.ts'

/** `[[…[leaf]…]]` (arrays) or `{"a":{"a":…leaf}}` (objects), `depth` levels deep. */
function nested (depth: number, kind: 'array' | 'object', leaf: unknown = 1): unknown {
  let v: unknown = leaf
  for (let i = 0; i < depth; i++) v = kind === 'array' ? [v] : { a: v }
  return v
}

describe('§1 limits on a JSON value (checkJsonValue)', () => {
  it('counts each array or object as one level: 256 deep is fine, 257 is refused', () => {
    expect(MAX_JSON_DEPTH).toBe(256)
    expect(checkJsonValue([[1]], 2)).toEqual({ ok: true })
    expect(checkJsonValue([[1]], 1)).toEqual({ ok: false, detail: 'JSON nested more than 1 levels deep' })
    for (const kind of ['array', 'object'] as const) {
      expect(checkJsonValue(nested(256, kind))).toEqual({ ok: true })
      expect(checkJsonValue(nested(257, kind))).toEqual({ ok: false, detail: 'JSON nested more than 256 levels deep' })
      expect(checkJsonValue(nested(256, kind, []))).toEqual({ ok: false, detail: 'JSON nested more than 256 levels deep' })
    }
    expect(checkJsonValue(nested(256, 'array', null))).toEqual({ ok: true })
    expect(checkJsonValue(nested(256, 'array', 'text'))).toEqual({ ok: true })
  })

  it('scalars are 0 levels, and a value a million levels deep is refused without a stack overflow', () => {
    for (const v of [1, 'x', null, true]) expect(checkJsonValue(v, 0)).toEqual({ ok: true })
    expect(checkJsonValue({}, 0).ok).toBe(false)
    expect(checkJsonValue(nested(1_000_000, 'array')).ok).toBe(false)
  })

  it('refuses a number that is not a finite double, wherever it sits', () => {
    for (const bad of [Infinity, -Infinity, NaN]) {
      const detail = `a number that is not a finite double (${String(bad)})`
      expect(checkJsonValue(bad)).toEqual({ ok: false, detail })
      expect(checkJsonValue({ a: [1, { b: bad }] })).toEqual({ ok: false, detail })
      expect(checkJsonValue([0, 'x', null, bad])).toEqual({ ok: false, detail })
    }
    expect(checkJsonValue(JSON.parse('{"hours":1e400}'))).toEqual({ ok: false, detail: 'a number that is not a finite double (Infinity)' })
    expect(checkJsonValue([Number.MAX_VALUE, -0, 5e-324])).toEqual({ ok: true })
  })

  it('accepts every JSON value of bounded depth (property)', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 8 }), (v) => {
      expect(checkJsonValue(v)).toEqual({ ok: true })
    }), { numRuns: 300 })
  })

  it('depth is that of the deepest branch, not the first or last (property)', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 6 }), (depths) => {
      const value = depths.map((d) => nested(d, 'array'))
      const deepest = 1 + Math.max(...depths)
      expect(checkJsonValue(value, deepest).ok).toBe(true)
      expect(checkJsonValue(value, deepest - 1).ok).toBe(false)
    }), { numRuns: 200 })
  })
})
