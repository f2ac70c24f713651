/**
 * The session's two §4 clocks (actors/session-clock.ts) over real TCP:
 * behaviours that mutation testing of the clock found unpinned (issue 12,
 * docs/mutation-actors.md). No timing is asserted: a hold that never ends
 * fails by its bounded wait, an idle limit counted from the wrong moment by
 * closing a client that never waited that long.
 */
import { describe, expect, it } from 'vitest'
import { serverFixture } from '../helpers/fixture.ts'
import { pass, request } from '../helpers/turns.ts'
import type { WireClient } from '../helpers/wire-client.ts'

const { start, joined } = serverFixture()

describe('turn hold (§4)', () => {
  it('clients passing together, their holds ending in the same tick, all get their turn back', async () => {
    await start({ turnHoldMs: 200 })
    const clients: WireClient[] = []
    for (let i = 0; i < 6; i++) clients.push(await joined({ username: `c${i}` }))
    // Past everyone's users notifications (each such pass delivers, then the hold begins on the next one).
    for (const c of clients) await pass(c)
    for (const c of clients) c.send('yours')
    for (const c of clients) expect(await c.recv(10_000)).toBe('yours')
  })
})

describe('idle limit (§4)', () => {
  it('counts from the start of each wait: a client that keeps answering stays, however long the session', async () => {
    const idleLimitMs = 1_500
    await start({ idleLimitMs })
    const a = await joined({ username: 'busy' })
    const until = Date.now() + idleLimitMs * 1.3
    let requests = 0
    while (Date.now() < until) {
      expect(await request(a, 'users')).toHaveLength(2)
      requests++
    }
    expect(requests).toBeGreaterThan(1)
    expect(a.closed).toBe(false)
    expect(await pass(a)).toEqual(['users', 'yours'])
  })
})
