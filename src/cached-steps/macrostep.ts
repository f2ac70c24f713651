import type { AnyActorScope, AnyMachineSnapshot, EventObject } from 'xstate'
import { ASSIGN, compileAction, CUSTOM, type ActionImplementation, type CompiledAction } from './actions.ts'
import type { Config, Plan } from './plans.ts'

/** A copy of `base` with this context and configuration, built as XState's createMachineSnapshot builds one (same fields, same order). */
function snapshotWith (base: AnyMachineSnapshot, context: unknown, c: Config): AnyMachineSnapshot {
  return {
    status: base.status,
    output: base.output,
    error: base.error,
    machine: base.machine,
    context,
    _nodes: c._nodes,
    value: c.value,
    tags: c.tags,
    children: base.children,
    historyValue: base.historyValue,
    matches: base.matches,
    hasTag: base.hasTag,
    can: base.can,
    getMeta: base.getMeta,
    toJSON: base.toJSON
  } as AnyMachineSnapshot
}

const noSpawn = (): never => { throw new Error('cached steps: spawn inside assign is not supported') }

/**
 * One macrostep's running state: the context as actions change it, the
 * snapshot builtin actions see, the raised events (XState's internal queue),
 * and whether anything changed (XState's "the snapshot was replaced").
 */
export class Macrostep {
  context: unknown
  readonly queue: EventObject[] = []
  /** Bumped whenever the configuration, the context, or the snapshot given back by a builtin action changes. */
  changes = 0
  /** The configuration after the microsteps taken so far. */
  config: Config
  private base: AnyMachineSnapshot
  private readonly extra: { internalQueue: EventObject[], deferredActorIds: undefined }

  constructor (private readonly start: AnyMachineSnapshot, from: Config, private readonly scope: AnyActorScope) {
    this.base = start
    this.config = from
    this.context = start.context
    this.extra = { internalQueue: this.queue, deferredActorIds: undefined }
  }

  /**
   * The snapshot as builtin actions and guards see it: the current context,
   * and the configuration of the last microstep, as in XState. A copy is made
   * only when one of them changed since the last.
   */
  view (): AnyMachineSnapshot {
    const c = this.config
    if (this.base.context !== this.context || this.base._nodes !== c._nodes) this.base = snapshotWith(this.base, this.context, c)
    return this.base
  }

  /** One microstep: exit, transition and entry actions in XState's order; then the configuration changes. */
  run (plan: Plan, event: EventObject): void {
    this.runActions(plan.actions, event)
    if (plan.next !== plan.from) {
      this.config = plan.next
      this.changes++
    }
  }

  /** XState's resolveAndExecuteActionsWithContext, with `assign` resolved here (no snapshot copy per assign). */
  private runActions (actions: readonly CompiledAction[], event: EventObject): void {
    const scope = this.scope
    for (const a of actions) {
      const args = { context: this.context, event, self: scope.self, system: scope.system }
      const params = a.paramsFn !== undefined ? a.paramsFn({ context: this.context, event }) : a.params
      const implementation = a.implementation
      if (a.kind === CUSTOM) {
        scope.actionExecutor({ type: a.type, info: args as never, params, exec: implementation as never })
        continue
      }
      if (a.kind === ASSIGN) {
        this.assign(implementation as ActionImplementation, args, params)
        continue
      }
      const builtin = implementation as ActionImplementation
      const before = this.view()
      const [next, resolvedParams, nested] = (builtin.resolve as NonNullable<ActionImplementation['resolve']>)(scope, before, args, params, builtin, this.extra)
      if (next !== before) {
        this.base = next
        this.context = next.context
        this.changes++
      }
      if (builtin.execute !== undefined) {
        scope.actionExecutor({ type: a.type, info: args as never, params: resolvedParams, exec: builtin.execute.bind(null, scope, resolvedParams) as never })
      }
      if (nested !== undefined) this.runActions(nested.map((n) => compileAction(n, this.start.machine)), event)
    }
  }

  /** XState's resolveAssign without the snapshot copy. */
  private assign (implementation: ActionImplementation, args: { context: unknown, event: EventObject }, params: unknown): void {
    // XState's message, verbatim.
    if (this.context === undefined || this.context === null) throw new Error('Cannot assign to undefined `context`. Ensure that `context` is defined in the machine config.')
    const assignArgs = { context: this.context, event: args.event, spawn: noSpawn, self: this.scope.self, system: this.scope.system }
    const assignment = implementation.assignment
    let partial: Record<string, unknown> = {}
    if (typeof assignment === 'function') {
      partial = assignment(assignArgs, params) as Record<string, unknown>
    } else if (assignment !== undefined) {
      for (const key of Object.keys(assignment)) {
        const p = assignment[key]
        partial[key] = typeof p === 'function' ? (p as (a: unknown, q: unknown) => unknown)(assignArgs, params) : p
      }
    }
    this.context = Object.assign({}, this.context, partial)
    this.changes++
  }

  /** The snapshot after the macrostep: the one it started from if nothing changed, as XState does. */
  snapshot (): AnyMachineSnapshot {
    if (this.changes === 0) return this.start
    return this.view()
  }
}
