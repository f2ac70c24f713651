/**
 * The idle clock of a session closed by its idle limit (actors/session-clock.ts)
 * leaves no timer behind. `idle.limit` closes the session, and so stops the
 * clock, from inside the clock's own timer callback; a timer armed after that
 * would never be cleared, and would keep the closed session in memory for the
 * life of the process. Node's own async hooks show which timers the clock
 * arms and which are cleared; no clock is faked, no time asserted.
 */
import { createHook } from 'node:async_hooks'
import { afterEach, describe, expect, it } from 'vitest'
import { createActor, setup, toPromise } from 'xstate'
import { SessionClock, sessionClock } from '../../actors/session-clock.ts'

/** The smallest owner of a session clock: it waits on its client, and the idle limit ends it. */
const owner = setup({ actors: { sessionClock } }).createMachine({
  context: () => ({ clock: new SessionClock() }),
  invoke: { src: 'sessionClock', input: ({ context }) => ({ clock: context.clock, idleLimitMs: 20, turnHoldMs: 0 }) },
  entry: ({ context }) => context.clock.startIdle(),
  on: { 'idle.limit': '.closed' },
  initial: 'waitsOnClient',
  states: { waitsOnClient: {}, closed: { type: 'final' } }
})

const hooks: Array<{ disable: () => void }> = []
afterEach(() => { for (const h of hooks.splice(0)) h.disable() })

describe('idle limit (§4): the clock of a closed session', () => {
  it('arms no timer once the idle limit has closed the session', async () => {
    // Timers by id; those the clock's own timer callbacks arm (triggered by a timer we saw) after the close.
    const timers = new Set<number>()
    const armedAfterClose: number[] = []
    let closed = false
    const hook = createHook({
      init (id, type, triggerId) {
        if (type !== 'Timeout') return
        if (closed && timers.has(triggerId)) armedAfterClose.push(id)
        timers.add(id)
      }
    }).enable()
    hooks.push(hook)

    const actor = createActor(owner)
    actor.subscribe({ complete: () => { closed = true } })
    actor.start()
    await toPromise(actor)
    // The clock's callback that sent idle.limit has returned by now: whatever it armed is seen.
    await new Promise((resolve) => setImmediate(resolve))

    expect(closed).toBe(true)
    expect(timers.size).toBeGreaterThan(0) // the clock's timer was seen at all
    expect(armedAfterClose).toEqual([])
  })
})
