import { fromCallback, type EventObject } from 'xstate'

/**
 * The session's two §4 clocks, on one actor per connection:
 *  - the idle limit: a state where the server waits on its client starts it
 *    on entry (a timestamp) and stops it on exit; the actor's one timer,
 *    armed for the limit, either reports `idle.limit` when it fires (the
 *    session has waited that long) or re-arms itself for what is left;
 *  - the turn hold: `holding` starts it on entry and stops it on exit; the
 *    session is told `turn.hold.over` when the hold has lasted the turn hold
 *    (or at most one tick of HOLD_TICK_MS less: §4 holds "up to" it).
 * So a pass costs a timestamp and a place in a shared list, not a delayed
 * event booked, keyed and unbooked in the system's scheduler every time the
 * turn comes back.
 */
export class SessionClock {
  /** performance.now() when the current wait on the client began. */
  waitingSince = 0
  waiting = false
  /** Counts holds, so that a hold timer of an earlier hold finds it is not the current one. */
  hold = 0
  holding = false
  /** Set by the actor: tells the session that hold number `hold` is over. */
  holdOver: (hold: number) => void = () => {}
  turnHoldMs = 0

  startIdle (): void {
    this.waitingSince = performance.now()
    this.waiting = true
  }

  stopIdle (): void { this.waiting = false }

  startHold (): void {
    this.holding = true
    holdTimers.add(this, ++this.hold, this.turnHoldMs)
  }

  stopHold (): void { this.holding = false }
}

/**
 * Hold expiries of every session, in ticks of HOLD_TICK_MS: one timer per
 * tick for all the holds that end in it, not one timer per session. With
 * 1,000 idle clients passing at their own moments, a tick's "yours" go out
 * together and their passes come back together, one event-loop wake-up for
 * many instead of one each (a wake-up costs more than the pass itself).
 */
const HOLD_TICK_MS = 50

class HoldTimers {
  private readonly ticks = new Map<number, Array<{ clock: SessionClock, hold: number }>>()

  add (clock: SessionClock, hold: number, holdMs: number): void {
    const tickMs = Math.min(HOLD_TICK_MS, holdMs / 4)
    // Rounded down: the hold ends at the latest after holdMs, at the earliest one tick sooner.
    const tick = Math.floor((performance.now() + holdMs) / tickMs) * tickMs
    let due = this.ticks.get(tick)
    if (due === undefined) {
      due = []
      this.ticks.set(tick, due)
      setTimeout(() => this.fire(tick), Math.max(0, tick - performance.now())).unref()
    }
    due.push({ clock, hold })
  }

  private fire (tick: number): void {
    const due = this.ticks.get(tick) ?? []
    this.ticks.delete(tick)
    for (const { clock, hold } of due) if (clock.holding && clock.hold === hold) clock.holdOver(hold)
  }
}

const holdTimers = new HoldTimers()

export interface SessionClockInput {
  readonly clock: SessionClock
  readonly idleLimitMs: number
  readonly turnHoldMs: number
}

export type SessionClockEvent = { type: 'idle.limit' } | { type: 'turn.hold.over' }

/** Sends `idle.limit` once the session has waited on its client for the limit, `turn.hold.over` when a hold has lasted the turn hold. */
export const sessionClock = fromCallback<EventObject, SessionClockInput>(({ input, sendBack }) => {
  const { clock, idleLimitMs, turnHoldMs } = input
  let stopped = false
  const idle = (): void => {
    const left = clock.waiting ? clock.waitingSince + idleLimitMs - performance.now() : idleLimitMs
    if (clock.waiting && left <= 0) sendBack({ type: 'idle.limit' } satisfies SessionClockEvent)
    // `idle.limit` closes the session at once, and with it this actor: its cleanup has run, and a
    // timer armed now would never be cleared (it would keep the closed session in memory for good).
    if (stopped) return
    idleTimer = setTimeout(idle, left > 0 ? left : idleLimitMs)
    idleTimer.unref()
  }
  let idleTimer = setTimeout(idle, idleLimitMs)
  idleTimer.unref()
  clock.turnHoldMs = turnHoldMs
  clock.holdOver = () => {
    clock.holding = false
    sendBack({ type: 'turn.hold.over' } satisfies SessionClockEvent)
  }
  return () => {
    stopped = true
    clock.holdOver = () => {}
    clock.holding = false
    clearTimeout(idleTimer)
  }
})
