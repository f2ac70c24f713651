import type { AnyMachineSnapshot, EventObject } from 'xstate'
import type { StateNode, Transition } from './plans.ts'

/**
 * XState's `evaluateGuard`: guards that are functions or names of functions,
 * and builtin guards (`and`, `not`, …) by their `check`. Guards must be pure:
 * a step XState takes whole after this selected it evaluates them again.
 */
function guardPasses (guard: Transition['guard'], context: unknown, event: EventObject, snapshot: AnyMachineSnapshot): boolean {
  if (guard === undefined) return true
  const inline = typeof guard === 'function'
  const implementations = snapshot.machine.implementations.guards as Record<string, unknown>
  const name = typeof guard === 'string' ? guard : (guard as { type: string }).type
  const implementation = inline ? guard : implementations[name]
  // XState's message, verbatim.
  if (!inline && implementation === undefined) throw new Error(`Guard '${name}' is not implemented.'.`)
  if (typeof implementation !== 'function') return guardPasses(implementation as Transition['guard'], context, event, snapshot)
  const args = { context, event }
  const g = guard as { params?: unknown }
  const params = inline || typeof guard === 'string' || !('params' in g)
    ? undefined
    : typeof g.params === 'function' ? (g.params as (a: unknown) => unknown)(args) : g.params
  if (!('check' in implementation)) return (implementation as (a: unknown, p: unknown) => boolean)(args, params)
  return (implementation as unknown as { check: (s: unknown, a: unknown, g: unknown) => boolean }).check(snapshot, args, implementation)
}

/** XState's transition selection in a chain of states: the deepest state's first enabled candidate, else its parent's, and so on. */
export function selectTransition (chain: readonly StateNode[], event: EventObject, context: unknown, snapshot: AnyMachineSnapshot): Transition | undefined {
  for (let i = chain.length - 1; i >= 0; i--) {
    const node = chain[i]
    const candidates = node.transitions.get(event.type)
    if (candidates === undefined) continue
    for (const t of candidates) {
      let ok: boolean
      try {
        ok = guardPasses(t.guard, context, event, snapshot)
      } catch (err) {
        const g = t.guard
        const name = typeof g === 'string' ? g : typeof g === 'object' ? (g as { type: string }).type : undefined
        // XState's message, verbatim.
        throw new Error(`Unable to evaluate guard ${name !== undefined ? `'${name}' ` : ''}in transition for event '${event.type}' in state node '${node.id}':\n${(err as Error).message}`)
      }
      if (ok) return t
    }
  }
  return undefined
}

/** XState's eventless transition selection in a chain of states, deepest state first. */
export function selectEventless (chain: readonly StateNode[], event: EventObject, context: unknown, snapshot: AnyMachineSnapshot): Transition | undefined {
  for (let i = chain.length - 1; i >= 0; i--) {
    const always = chain[i].always
    if (always === undefined) continue
    for (const t of always) if (guardPasses(t.guard, context, event, snapshot)) return t
  }
  return undefined
}
