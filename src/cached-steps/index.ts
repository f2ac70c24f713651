import { StateMachine, type AnyActorScope, type AnyMachineSnapshot, type AnyStateMachine, type EventObject } from 'xstate'
import { Macrostep } from './macrostep.ts'
import { endsTheMachine, isChainMachine, StepPlans, type Transition } from './plans.ts'
import { selectEventless, selectTransition } from './select.ts'

/**
 * Runs a machine's steps the way XState does, with what XState recomputes on
 * every step computed once per state and transition instead.
 *
 * XState's `macrostep` works out, for each event, the exit set, the entry set,
 * the next configuration, its state value and its tags set from scratch, and
 * copies the whole snapshot for every `assign`. For a session that is most of
 * the cost of a pass or a broadcast (docs/benchmarks.md): the actions and
 * guards themselves are a few per cent of it.
 *
 * Here, per (active atomic state, transition) the plan is computed once with
 * XState's own rules (plans.ts) and the next snapshot's `_nodes`, `value` and
 * `tags` come from XState's `resolveState`. Each event then:
 *  - selects its transition as XState does (select.ts: deepest state first,
 *    candidates in order, the first guard that passes);
 *  - runs the exit, transition and entry actions in XState's order through
 *    the actor's own action executor (macrostep.ts), so builtin actions such
 *    as `sendTo`, `raise`, `enqueueActions` and `emit` are resolved and
 *    executed by XState itself;
 *  - takes eventless transitions and raised events as `macrostep` does;
 *  - gives the actor one snapshot (copies are made mid-step only where a
 *    builtin action must see the current context).
 *
 * XState's own `transition` takes, whole, every step into or out of a final
 * state, an invoking state or one with delayed transitions, a history target,
 * and XState's own events (`xstate.*`): before any action has run when it is
 * the event's first step; as the rest of the macrostep when it is a raised
 * event's. Not supported (an error, after the step's first actions ran): such
 * a raised event with more raised events queued behind it, unless it ends the
 * machine, since XState's internal queue cannot be handed over; and `spawn`
 * inside `assign`. The session machine raises one event at a time and spawns
 * nothing. Machines with parallel or history states, wildcard event
 * descriptors or an iteration limit are returned as they are.
 *
 * The differential test (test/cached-steps.test.ts) runs random event
 * sequences through both and compares every snapshot and every effect.
 */
export function withCachedSteps<M extends AnyStateMachine> (machine: M): M {
  if (!isChainMachine(machine)) return machine
  const plans = new StepPlans(machine)
  const stock = StateMachine.prototype.transition
  const cached = Object.create(machine) as M

  cached.transition = function (this: M, snapshot: AnyMachineSnapshot, event: EventObject, scope: AnyActorScope): AnyMachineSnapshot {
    if (snapshot.status !== 'active' || event.type.startsWith('xstate.')) return stock.call(this, snapshot, event, scope)
    const from = plans.configOfSnapshot(snapshot)
    const first = selectTransition(from.chain, event, snapshot.context, snapshot)
    const firstPlan = first === undefined ? undefined : plans.planOf(from, first)
    // An event no state takes may still enable an eventless transition: if that may lead to XState's steps, all of it is XState's.
    if (firstPlan === null || (firstPlan === undefined && plans.alwaysBlocked(from))) return stock.call(this, snapshot, event, scope)

    const step = new Macrostep(snapshot, from, scope)
    if (firstPlan !== undefined) step.run(firstPlan, event)
    let current = event
    let checkEventless = true
    while (true) {
      const eventless: Transition | undefined = checkEventless && step.config.hasAlways ? selectEventless(step.config.chain, current, step.context, step.view()) : undefined
      let t: Transition | undefined = eventless
      if (t === undefined) {
        const queued = step.queue.shift()
        if (queued === undefined) break
        current = queued
        t = selectTransition(step.config.chain, current, step.context, step.view())
        if (t === undefined) { checkEventless = true; continue }
      }
      const plan = plans.planOf(step.config, t)
      if (plan === null) {
        // The rest of the macrostep is this raised event's step and what follows it: XState's own. Events
        // raised after it wait in XState's internal queue, which cannot be handed over, unless the step ends
        // the machine (XState then drops them). (Eventless steps never get here: their states are blocked.)
        if (eventless === undefined && (step.queue.length === 0 || endsTheMachine(t))) return stock.call(this, step.snapshot(), current, scope)
        throw new Error(`cached steps: a step XState must take (${step.config.atomic.id}, ${t.eventType}) came where it cannot take over`)
      }
      const before = step.changes
      step.run(plan, current)
      // As XState's macrostep: after an eventless step that changed nothing, no eventless transition is selected again.
      checkEventless = eventless === undefined || step.changes !== before
    }
    return step.snapshot()
  }
  return cached
}
