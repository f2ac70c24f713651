import { assign, pathToStateValue, StateMachine, type AnyActorScope, type AnyMachineSnapshot, type AnyStateMachine, type EventObject } from 'xstate'

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
 * XState's own rules (SCXML's: transition domain, exit set deepest first,
 * entry set with default entries, in document order) and the next snapshot's
 * `_nodes`, `value` and `tags` come from XState's `resolveState`. Each step
 * then selects the transition as XState does (deepest state first, candidates
 * in order, first guard that passes), runs the exit, transition and entry
 * actions in XState's order through the actor's own action executor (so
 * builtin actions such as `sendTo`, `raise`, `enqueueActions` and `emit` are
 * resolved and executed by XState itself), takes eventless transitions and
 * raised events as `macrostep` does, and builds one snapshot at the end.
 *
 * What it does not handle is left to XState whole, before any action has run:
 * a step that enters or exits a final state, an invoking state or one with
 * delayed transitions, a history target, and XState's own events
 * (`xstate.*`). A raised event whose step is such is handed to XState's
 * `transition` as the rest of the macrostep. Not supported (an error, after
 * the step's first actions ran): such a raised event with more raised events
 * queued behind it, unless it ends the machine, since XState's internal queue
 * cannot be handed over; and `spawn` inside `assign`. The session machine
 * raises one event at a time and spawns nothing. Machines with parallel or
 * history states, or wildcard event descriptors, are returned as they are.
 *
 * The differential test (test/cached-steps.test.ts) runs random event
 * sequences through both and compares every snapshot and every effect.
 */
export function withCachedSteps<M extends AnyStateMachine> (machine: M): M {
  if (!isChainMachine(machine)) return machine
  const plans = new Map<StateNode, Map<Transition, Plan | null>>()
  const configs = new Map<StateNode, Config>()
  const stock = StateMachine.prototype.transition
  const fast = Object.create(machine) as M

  const configOf = (atomic: StateNode): Config => {
    let c = configs.get(atomic)
    if (c === undefined) {
      const resolved = machine.resolveState({ value: pathToStateValue(atomic.path), context: {} }) as AnyMachineSnapshot
      const chain: StateNode[] = []
      for (let n: StateNode | undefined = atomic; n !== undefined; n = n.parent) chain.unshift(n)
      c = {
        atomic,
        chain,
        _nodes: resolved._nodes as StateNode[],
        value: resolved.value,
        tags: resolved.tags,
        hasAlways: chain.some((n) => n.always !== undefined && n.always.length > 0)
      }
      configs.set(atomic, c)
    }
    return c
  }

  const planOf = (config: Config, t: Transition): Plan | null => {
    let byTransition = plans.get(config.atomic)
    if (byTransition === undefined) {
      byTransition = new Map()
      plans.set(config.atomic, byTransition)
    }
    let plan = byTransition.get(t)
    if (plan === undefined) {
      plan = makePlan(config, t, configOf)
      // Taken only if every eventless transition it may lead to can be taken here too: XState's are taken whole, from the start.
      byTransition.set(t, plan)
      if (plan !== null && alwaysBlocked(plan.next)) {
        plan = null
        byTransition.set(t, plan)
      }
    }
    return plan
  }

  /** Some eventless transition of this configuration is a step XState must take whole. */
  const alwaysBlocked = (config: Config): boolean =>
    config.hasAlways && config.chain.some((n) => (n.always ?? []).some((a) => planOf(config, a) === null))

  fast.transition = function (this: M, snapshot: AnyMachineSnapshot, event: EventObject, scope: AnyActorScope): AnyMachineSnapshot {
    if (snapshot.status !== 'active' || event.type.startsWith('xstate.')) return stock.call(this, snapshot, event, scope)
    const from = atomicOf(snapshot, configOf)
    const first = select(from.chain, event, snapshot.context, snapshot)
    const firstPlan = first === undefined ? undefined : planOf(from, first)
    // An event no state takes may still enable an eventless transition: if that is XState's to take, all of it is.
    if (firstPlan === null || (firstPlan === undefined && alwaysBlocked(from))) return stock.call(this, snapshot, event, scope)

    const step = new Step(snapshot, from, scope)
    if (firstPlan !== undefined) step.run(firstPlan, event)
    let current = event
    let checkAlways = true
    while (true) {
      const always: Transition | undefined = checkAlways && step.config.hasAlways ? selectAlways(step.config.chain, current, step.context, step.view()) : undefined
      let t: Transition | undefined = always
      if (t === undefined) {
        const queued = step.queue.shift()
        if (queued === undefined) break
        current = queued
        t = select(step.config.chain, current, step.context, step.view())
        if (t === undefined) { checkAlways = true; continue }
      }
      const plan = planOf(step.config, t)
      if (plan === null) {
        // The rest of the macrostep is this raised event's step and what follows it: XState's own. Events
        // raised after it wait in XState's internal queue, which cannot be handed over, unless the step ends
        // the machine (XState then drops them).
        if (always === undefined && (step.queue.length === 0 || endsTheMachine(t))) return stock.call(this, step.snapshot(), current, scope)
        throw new Error(`cached steps: a step XState must take (${step.config.atomic.id}, ${t.eventType}) came where it cannot take over`)
      }
      const before = step.changes
      step.run(plan, current)
      // As XState's macrostep: after an eventless step that changed nothing, no eventless transition is selected again.
      checkAlways = always === undefined || step.changes !== before
    }
    return step.snapshot()
  }
  return fast
}

type StateNode = AnyStateMachine['root']
type Transition = NonNullable<StateNode['always']>[number]
type Action = Transition['actions'][number]

interface Config {
  readonly atomic: StateNode
  /** Root first, the atomic state last. */
  readonly chain: readonly StateNode[]
  readonly _nodes: StateNode[]
  readonly value: AnyMachineSnapshot['value']
  readonly tags: AnyMachineSnapshot['tags']
  readonly hasAlways: boolean
}

interface Plan {
  readonly from: Config
  readonly next: Config
  /** Exit actions (deepest state first), the transition's, then entry actions (outermost first), looked up. */
  readonly compiled: readonly Compiled[]
}

function isChainMachine (machine: AnyStateMachine): boolean {
  // What this relies on of XState's internals (the package is pinned; a change falls back to XState's own steps).
  if (typeof ASSIGN_RESOLVE !== 'function' || !(machine.root.transitions instanceof Map) || typeof machine.root.order !== 'number') return false
  const visit = (n: StateNode): boolean => {
    if (n.type === 'parallel' || n.type === 'history') return false
    for (const descriptor of n.transitions.keys()) if (descriptor.includes('*')) return false
    return Object.values(n.states).every(visit)
  }
  return visit(machine.root)
}

function atomicOf (snapshot: AnyMachineSnapshot, configOf: (n: StateNode) => Config): Config {
  let atomic: StateNode | undefined
  for (const n of snapshot._nodes as StateNode[]) if (n.type === 'atomic' || n.type === 'final') atomic = n
  return configOf(atomic as StateNode)
}

/** XState's `evaluateGuard` for guards that are functions or names of functions (and builtin guards, by their `check`). */
function passes (guard: Transition['guard'], context: unknown, event: EventObject, snapshot: AnyMachineSnapshot): boolean {
  if (guard === undefined) return true
  const inline = typeof guard === 'function'
  const implementations = snapshot.machine.implementations.guards as Record<string, unknown>
  const resolved = inline ? guard : implementations[typeof guard === 'string' ? guard : (guard as { type: string }).type]
  if (!inline && resolved === undefined) throw new Error(`Guard '${typeof guard === 'string' ? guard : (guard as { type: string }).type}' is not implemented.'.`)
  if (typeof resolved !== 'function') return passes(resolved as Transition['guard'], context, event, snapshot)
  const args = { context, event }
  const params = inline || typeof guard === 'string'
    ? undefined
    : 'params' in (guard as object) ? (typeof (guard as { params: unknown }).params === 'function' ? ((guard as { params: (a: unknown) => unknown }).params(args)) : (guard as { params: unknown }).params) : undefined
  if (!('check' in resolved)) return (resolved as (a: unknown, p: unknown) => boolean)(args, params)
  return (resolved as unknown as { check: (s: unknown, a: unknown, g: unknown) => boolean }).check(snapshot, args, resolved)
}

/** XState's transition selection in a chain of states: the deepest state's first enabled candidate, else its parent's, and so on. */
function select (chain: readonly StateNode[], event: EventObject, context: unknown, snapshot: AnyMachineSnapshot): Transition | undefined {
  for (let i = chain.length - 1; i >= 0; i--) {
    const node = chain[i]
    const candidates = node.transitions.get(event.type)
    if (candidates === undefined) continue
    for (const t of candidates) {
      let ok: boolean
      try {
        ok = passes(t.guard, context, event, snapshot)
      } catch (err) {
        const g = t.guard
        const name = typeof g === 'string' ? g : typeof g === 'object' ? (g as { type: string }).type : undefined
        throw new Error(`Unable to evaluate guard ${name !== undefined ? `'${name}' ` : ''}in transition for event '${event.type}' in state node '${node.id}':\n${(err as Error).message}`)
      }
      if (ok) return t
    }
  }
  return undefined
}

function selectAlways (chain: readonly StateNode[], event: EventObject, context: unknown, snapshot: AnyMachineSnapshot): Transition | undefined {
  for (let i = chain.length - 1; i >= 0; i--) {
    const always = chain[i].always
    if (always === undefined) continue
    for (const t of always) if (passes(t.guard, context, event, snapshot)) return t
  }
  return undefined
}

/** The transition enters a final state of the machine itself: the machine is done. */
function endsTheMachine (t: Transition): boolean {
  const target = t.target?.[0]
  return t.target?.length === 1 && target !== undefined && target.type === 'final' && target.parent === target.machine.root
}

/** `child` lies strictly inside `parent` (XState's isDescendant). */
function isDescendant (child: StateNode, parent: StateNode | undefined): boolean {
  let marker = child
  while (marker.parent !== undefined && marker.parent !== parent) marker = marker.parent
  return marker.parent === parent
}

function properAncestors (node: StateNode, upTo: StateNode | undefined): StateNode[] {
  const out: StateNode[] = []
  if (upTo === node) return out
  for (let m = node.parent; m !== undefined && m !== upTo; m = m.parent) out.push(m)
  return out
}

/** XState's getTransitionDomain for one non-history target. */
function domainOf (t: Transition, target: StateNode): StateNode | undefined {
  if (t.reenter !== true && (target === t.source || isDescendant(target, t.source))) return t.source
  for (const ancestor of properAncestors(target, undefined)) if (isDescendant(t.source, ancestor)) return ancestor
  return t.reenter === true ? undefined : t.source.machine.root
}

/** Steps XState would take whole are `null`: final, invoking or delayed states, history, several targets. */
function makePlan (from: Config, t: Transition, configOf: (n: StateNode) => Config): Plan | null {
  const targets = t.target ?? []
  if (targets.length === 0) return { from, next: from, compiled: t.actions.map((a) => compile(a, from.atomic.machine)) }
  if (targets.length !== 1) return null
  const target = targets[0]
  if (target.type === 'history') return null
  const domain = domainOf(t, target)
  if (domain === undefined) return null

  const exit = new Set<StateNode>()
  if (t.reenter === true && t.source === domain) exit.add(domain)
  for (const n of from.chain) if (isDescendant(n, domain)) exit.add(n)

  const enter = new Set<StateNode>()
  const defaultEntry = new Set<StateNode>()
  if (target !== t.source || t.source !== domain || t.reenter === true) {
    enter.add(target)
    defaultEntry.add(target)
  }
  for (let n = target; n.type === 'compound';) {
    const initial = n.initial.target[0]
    if (initial === undefined || initial.type === 'history') return null
    enter.add(initial)
    defaultEntry.add(initial)
    n = initial
  }
  const reentrancy = t.source.parent === undefined && t.reenter === true ? undefined : domain
  for (const anc of properAncestors(target, domain)) if (reentrancy === undefined || isDescendant(anc, reentrancy)) enter.add(anc)

  const exiting = [...exit].sort((a, b) => b.order - a.order)
  const entering = [...enter].sort((a, b) => a.order - b.order)
  for (const n of [...exiting, ...entering]) {
    if (n.type === 'final' || n.type === 'parallel' || n.type === 'history' || n.invoke.length > 0 || n.after.length > 0) return null
  }
  const remaining = new Set(from.chain.filter((n) => !exit.has(n)))
  for (const n of entering) remaining.add(n)
  const atomic = [...remaining].sort((a, b) => b.order - a.order)[0]
  if (atomic === undefined || atomic.type !== 'atomic') return null
  const next = configOf(atomic)
  if (next.chain.length !== remaining.size || next.chain.some((n) => !remaining.has(n))) return null

  const actions: Action[] = []
  for (const n of exiting) actions.push(...n.exit)
  actions.push(...t.actions)
  for (const n of entering) {
    actions.push(...n.entry)
    if (defaultEntry.has(n) && n.initial !== undefined) actions.push(...n.initial.actions)
  }
  return { from, next, compiled: actions.map((a) => compile(a, from.atomic.machine)) }
}

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

type Resolved = ((args: unknown, params: unknown) => void) & {
  readonly type?: string
  readonly resolve?: (scope: AnyActorScope, snapshot: AnyMachineSnapshot, args: unknown, params: unknown, action: unknown, extra: unknown) => [AnyMachineSnapshot, unknown, Action[] | undefined]
  readonly execute?: (scope: AnyActorScope, params: unknown) => void
  readonly assignment?: Record<string, unknown> | ((args: unknown, params: unknown) => object)
}

const ASSIGN_RESOLVE = (assign({}) as unknown as Resolved).resolve

const CUSTOM = 0
const ASSIGN = 1
const BUILTIN = 2

/** An action as XState's resolveAndExecuteActionsWithContext looks it up on every step, looked up once. */
interface Compiled {
  readonly kind: typeof CUSTOM | typeof ASSIGN | typeof BUILTIN
  readonly type: string
  readonly resolved: Resolved | undefined
  readonly params: unknown
  readonly paramsFn: ((a: { context: unknown, event: EventObject }) => unknown) | undefined
}

function compile (action: Action, machine: AnyStateMachine): Compiled {
  const inline = typeof action === 'function'
  const implementations = machine.implementations.actions as Record<string, unknown>
  const resolved = (inline ? action : implementations[typeof action === 'string' ? action : (action as { type: string }).type]) as Resolved | undefined
  let params: unknown
  let paramsFn: Compiled['paramsFn']
  if (!inline && typeof action !== 'string' && 'params' in (action as object)) {
    const p = (action as { params: unknown }).params
    if (typeof p === 'function') paramsFn = p as Compiled['paramsFn']
    else params = p
  }
  if (resolved === undefined || !('resolve' in resolved)) {
    const type = typeof action === 'string' ? action : typeof action === 'object' ? (action as { type: string }).type : ((action as { name?: string }).name || '(anonymous)')
    return { kind: CUSTOM, type, resolved, params, paramsFn }
  }
  return { kind: resolved.resolve === ASSIGN_RESOLVE ? ASSIGN : BUILTIN, type: resolved.type as string, resolved, params, paramsFn }
}

const noSpawn = (): never => { throw new Error('cached steps: spawn inside assign is not supported') }

/**
 * One macrostep's running state: the context as actions change it, the
 * snapshot handed to builtin actions, the raised events (XState's internal
 * queue), and whether anything changed.
 */
class Step {
  context: unknown
  readonly queue: EventObject[] = []
  /** Bumped whenever the context or the snapshot given back by a builtin action changes. */
  changes = 0
  /** The configuration after the steps taken so far. */
  config: Config
  private base: AnyMachineSnapshot
  private readonly extra: { internalQueue: EventObject[], deferredActorIds: undefined }

  constructor (private readonly start: AnyMachineSnapshot, from: Config, private readonly scope: AnyActorScope) {
    this.base = start
    this.config = from
    this.context = start.context
    this.extra = { internalQueue: this.queue, deferredActorIds: undefined }
  }

  /** The snapshot as builtin actions and guards see it mid-macrostep: the current context and configuration, as in XState. */
  view (): AnyMachineSnapshot {
    const c = this.config
    if (this.base.context !== this.context || this.base._nodes !== c._nodes) this.base = snapshotWith(this.base, this.context, c)
    return this.base
  }

  /** One microstep: exit, transition and entry actions in XState's order; then the configuration changes. */
  run (plan: Plan, event: EventObject): void {
    this.runActions(plan.compiled, event)
    if (plan.next !== plan.from) {
      this.config = plan.next
      this.changes++
    }
  }

  /** XState's resolveAndExecuteActionsWithContext, with `assign` resolved here (no snapshot copy per assign). */
  runActions (actions: readonly Compiled[], event: EventObject): void {
    const scope = this.scope
    for (const a of actions) {
      const args = { context: this.context, event, self: scope.self, system: scope.system }
      const params = a.paramsFn !== undefined ? a.paramsFn({ context: this.context, event }) : a.params
      const resolved = a.resolved
      if (a.kind === CUSTOM) {
        scope.actionExecutor({ type: a.type, info: args as never, params, exec: resolved as never })
        continue
      }
      if (a.kind === ASSIGN) {
        this.assign(resolved as Resolved, args, params)
        continue
      }
      const before = this.view()
      const [next, resolvedParams, nested] = ((resolved as Resolved).resolve as NonNullable<Resolved['resolve']>)(scope, before, args, params, resolved, this.extra)
      if (next !== before) {
        this.base = next
        this.context = next.context
        this.changes++
      }
      const execute = (resolved as Resolved).execute
      if (execute !== undefined) {
        scope.actionExecutor({ type: a.type, info: args as never, params: resolvedParams, exec: execute.bind(null, scope, resolvedParams) as never })
      }
      if (nested !== undefined) this.runActions(nested.map((n) => compile(n, this.start.machine)), event)
    }
  }

  /** XState's resolveAssign without the snapshot copy. */
  private assign (resolved: Resolved, args: { context: unknown, event: EventObject }, params: unknown): void {
    if (this.context === undefined || this.context === null) throw new Error('Cannot assign to undefined `context`. Ensure that `context` is defined in the machine config.')
    const assignArgs = { context: this.context, event: args.event, spawn: noSpawn, self: this.scope.self, system: this.scope.system }
    const assignment = resolved.assignment
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
