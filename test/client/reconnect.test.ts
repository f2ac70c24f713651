import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { backoffDelay, DEFAULT_BACKOFF } from '../../src/client/reconnect.ts'

describe('reconnection backoff', () => {
  it('doubles from the first delay up to the cap, each with a jitter of ±50 %', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 60 }), fc.double({ min: 0, max: 0.999_999, noNaN: true }), (attempt, r) => {
      const base = Math.min(DEFAULT_BACKOFF.maxMs, DEFAULT_BACKOFF.minMs * 2 ** (attempt - 1))
      const d = backoffDelay(attempt, DEFAULT_BACKOFF, () => r)
      expect(d).toBeGreaterThanOrEqual(Math.floor(base * 0.5))
      expect(d).toBeLessThanOrEqual(Math.ceil(base * 1.5))
    }))
    expect([1, 2, 3, 6, 20].map((n) => backoffDelay(n, DEFAULT_BACKOFF, () => 0.5))).toEqual([1_000, 2_000, 4_000, 30_000, 30_000])
  })
})
