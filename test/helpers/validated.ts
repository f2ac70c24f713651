import { expect } from 'vitest'
import type { ErrorCode, Validated } from '../../protocol/index.ts'

/** The accepted value; fails the test with the refusal otherwise. */
export function expectOk<T> (result: Validated<T>): T {
  if (!result.ok) throw new Error(`expected acceptance, got ${result.code}: ${result.detail}`)
  return result.value
}

/** Refused with `code`, and a detail that is a real sentence holding every fragment. */
export function expectRefused (result: Validated<unknown>, code: ErrorCode, ...fragments: string[]): void {
  expect(result.ok).toBe(false)
  if (result.ok) return
  expect(result.code).toBe(code)
  expect(typeof result.detail).toBe('string')
  expect(result.detail.length).toBeGreaterThan(8)
  for (const f of fragments) expect(result.detail).toContain(f)
}
