/**
 * Small steps the relay tests share: joining clients, waiting for a server
 * condition, passing up to a give, and reading the errors §5 ends with.
 */
import { expect } from 'vitest'
import type { JsonValue } from '../../protocol/frame.ts'
import { join, type WireClient } from './wire-client.ts'

/** Joins one client per name (handshake and syncs done), in order. */
export async function joinClients (port: number, ...names: string[]): Promise<WireClient[]> {
  const out: WireClient[] = []
  for (const username of names) out.push((await join(port, 'Test Film', { username })).client)
  return out
}

/** Polls `ok` until it holds; fails naming `what` after `timeoutMs`. */
export async function waitUntil (what: string, ok: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** G passes and reads what comes before the give (notifications from joins); returns the give. */
export async function passToGive (g: WireClient): Promise<JsonValue> {
  g.send('yours')
  while (true) {
    const m = await g.recv()
    if (Array.isArray(m) && m[0] === 'give') return m
    if (m === 'yours') throw new Error('the pass ended without a give')
  }
}

/** The next frame is `["error", code, detail]`; returns the detail. */
export async function expectError (c: WireClient, code: string): Promise<string> {
  const m = await c.recv()
  expect(Array.isArray(m) && m[0] === 'error' && m[1] === code, `expected a ${code} error, got ${JSON.stringify(m)}`).toBe(true)
  return (m as string[])[2]
}

/** The client broke §5: `["error","protocol",detail]` comes (after what was on its way), then the close. Returns the detail. */
export async function expectClosedForProtocol (c: WireClient): Promise<string> {
  while (true) {
    const m = await c.recv()
    if (Array.isArray(m) && m[0] === 'error') {
      expect(m[1]).toBe('protocol')
      await c.waitClosed()
      return m[2] as string
    }
  }
}
