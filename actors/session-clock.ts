import { fromCallback, type EventObject } from 'xstate'

/**
 * The session's two §4 clocks, on one actor with two Node timers made once
 * per connection:
 *  - the idle limit: a state where the server waits on its client starts it
 *    on entry (a timestamp) and stops it on exit; its timer, armed for the
 *    limit, either reports `idle.limit` when it fires (the session has waited
 *    that long) or re-arms itself for what is left;
 *  - the turn hold: `holding` starts it on entry and stops it on exit; each
 *    start re-arms the one hold timer (`refresh()`), which tells the session
 *    `turn.hold.over` when it fires during a hold.
 * So a pass costs a timestamp and a timer refresh, not a delayed event
 * booked, keyed and unbooked in the system's scheduler every time the turn
 * comes back (with 1,000 idle clients, that was the largest cost after the
 * socket writes), and one child actor per session, not two.
 */
export class SessionClock {
  /** performance.now() when the current wait on the client began. */
  waitingSince = 0
  waiting = false
  holding = false
  /** Set by the actor: re-arms the hold timer for a full turn hold from now. */
  rearmHold: () => void = () => {}

  startIdle (): void {
    this.waitingSince = performance.now()
    this.waiting = true
  }

  stopIdle (): void { this.waiting = false }

  startHold (): void {
    this.holding = true
    this.rearmHold()
  }

  stopHold (): void { this.holding = false }
}

export interface SessionClockInput {
  readonly clock: SessionClock
  readonly idleLimitMs: number
  readonly turnHoldMs: number
}

export type SessionClockEvent = { type: 'idle.limit' } | { type: 'turn.hold.over' }

/** Sends `idle.limit` once the session has waited on its client for the limit, `turn.hold.over` when a hold has lasted the turn hold. */
export const sessionClock = fromCallback<EventObject, SessionClockInput>(({ input, sendBack }) => {
  const { clock, idleLimitMs, turnHoldMs } = input
  const idle = (): void => {
    const left = clock.waiting ? clock.waitingSince + idleLimitMs - performance.now() : idleLimitMs
    if (clock.waiting && left <= 0) sendBack({ type: 'idle.limit' } satisfies SessionClockEvent)
    idleTimer = setTimeout(idle, left > 0 ? left : idleLimitMs)
    idleTimer.unref()
  }
  let idleTimer = setTimeout(idle, idleLimitMs)
  idleTimer.unref()
  // refresh() restarts the timer from now, so it fires only a full hold after the latest start.
  const holdTimer = setTimeout(() => {
    if (!clock.holding) return
    clock.holding = false
    sendBack({ type: 'turn.hold.over' } satisfies SessionClockEvent)
  }, Math.max(1, turnHoldMs))
  holdTimer.unref()
  clock.rearmHold = () => { holdTimer.refresh() }
  return () => {
    clock.rearmHold = () => {}
    clearTimeout(idleTimer)
    clearTimeout(holdTimer)
  }
})
