import { assign, type AnyActorScope, type AnyMachineSnapshot, type AnyStateMachine, type EventObject } from 'xstate'
import type { Action } from './plans.ts'

/** An action's implementation as XState keeps it: a function, and for builtin actions (`assign`, `sendTo`, …) `resolve`/`execute`. */
export type ActionImplementation = ((args: unknown, params: unknown) => void) & {
  readonly type?: string
  readonly resolve?: (scope: AnyActorScope, snapshot: AnyMachineSnapshot, args: unknown, params: unknown, action: unknown, extra: unknown) => [AnyMachineSnapshot, unknown, Action[] | undefined]
  readonly execute?: (scope: AnyActorScope, params: unknown) => void
  readonly assignment?: Record<string, unknown> | ((args: unknown, params: unknown) => object)
}

/** How `assign` is told from the other builtin actions (it is resolved without XState's snapshot copy). */
export const ASSIGN_RESOLVE = (assign({}) as unknown as ActionImplementation).resolve

export const CUSTOM = 0
export const ASSIGN = 1
export const BUILTIN = 2

/** An action as XState's resolveAndExecuteActionsWithContext looks it up on every step, looked up once. */
export interface CompiledAction {
  readonly kind: typeof CUSTOM | typeof ASSIGN | typeof BUILTIN
  readonly type: string
  readonly implementation: ActionImplementation | undefined
  readonly params: unknown
  readonly paramsFn: ((a: { context: unknown, event: EventObject }) => unknown) | undefined
}

export function compileAction (action: Action, machine: AnyStateMachine): CompiledAction {
  const inline = typeof action === 'function'
  const implementations = machine.implementations.actions as Record<string, unknown>
  const implementation = (inline ? action : implementations[typeof action === 'string' ? action : (action as { type: string }).type]) as ActionImplementation | undefined
  let params: unknown
  let paramsFn: CompiledAction['paramsFn']
  if (!inline && typeof action !== 'string' && 'params' in (action as object)) {
    const p = (action as { params: unknown }).params
    if (typeof p === 'function') paramsFn = p as CompiledAction['paramsFn']
    else params = p
  }
  if (implementation === undefined || !('resolve' in implementation)) {
    // The name XState's action executor and inspector give it.
    const type = typeof action === 'string' ? action : typeof action === 'object' ? (action as { type: string }).type : ((action as { name?: string }).name || '(anonymous)')
    return { kind: CUSTOM, type, implementation, params, paramsFn }
  }
  return { kind: implementation.resolve === ASSIGN_RESOLVE ? ASSIGN : BUILTIN, type: implementation.type as string, implementation, params, paramsFn }
}
