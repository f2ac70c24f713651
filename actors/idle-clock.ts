import { fromCallback, type EventObject } from 'xstate'

/**
 * §4 idle limit, one timer per connection. A state where the server waits on
 * its client starts the clock on entry (a timestamp) and stops it on exit;
 * the `idleClock` actor arms one timer for the limit and, when it fires,
 * either reports `idle.limit` (the session has waited that long) or re-arms
 * itself for what is left. So a pass costs a timestamp, not the scheduling
 * and cancelling of a delayed event every time the turn comes back.
 */
export class IdleClock {
  /** performance.now() when the current wait began. */
  since = 0
  waiting = false

  start (): void {
    this.since = performance.now()
    this.waiting = true
  }

  stop (): void { this.waiting = false }
}

export interface IdleClockInput {
  readonly clock: IdleClock
  readonly limitMs: number
}

/** Sends `{ type: 'idle.limit' }` to its parent once the clock has run for the limit. */
export const idleClock = fromCallback<EventObject, IdleClockInput>(({ input, sendBack }) => {
  const { clock, limitMs } = input
  let timer: NodeJS.Timeout
  const check = (): void => {
    const left = clock.waiting ? clock.since + limitMs - performance.now() : limitMs
    if (clock.waiting && left <= 0) sendBack({ type: 'idle.limit' })
    timer = setTimeout(check, left > 0 ? left : limitMs)
    timer.unref()
  }
  timer = setTimeout(check, limitMs)
  timer.unref()
  return () => clearTimeout(timer)
})
