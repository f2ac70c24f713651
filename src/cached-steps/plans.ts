import { pathToStateValue, type AnyMachineSnapshot, type AnyStateMachine } from 'xstate'
import { ASSIGN_RESOLVE, compileAction, type CompiledAction } from './actions.ts'

export type StateNode = AnyStateMachine['root']
export type Transition = NonNullable<StateNode['always']>[number]
export type Action = Transition['actions'][number]

/** A configuration of a machine without parallel states: a chain from the root to one atomic state. */
export interface Config {
  readonly atomic: StateNode
  /** Root first, the atomic state last. */
  readonly chain: readonly StateNode[]
  /** The snapshot fields of this configuration, as XState's `resolveState` computes them (shared, frozen). */
  readonly _nodes: StateNode[]
  readonly value: AnyMachineSnapshot['value']
  readonly tags: AnyMachineSnapshot['tags']
  readonly hasAlways: boolean
}

/** One microstep from a configuration by one transition, worked out once. */
export interface Plan {
  readonly from: Config
  readonly next: Config
  /** Exit actions (deepest state first), the transition's, then entry actions (outermost first), looked up. */
  readonly actions: readonly CompiledAction[]
}

/**
 * Whether the machine is one cached steps can run: no parallel or history
 * states, no wildcard event descriptors, no iteration limit, and XState's
 * internals as this reads them (the package is pinned; an upgrade must pass
 * test/cached-steps.test.ts).
 */
export function isChainMachine (machine: AnyStateMachine): boolean {
  if (typeof ASSIGN_RESOLVE !== 'function' || !(machine.root.transitions instanceof Map) || typeof machine.root.order !== 'number') return false
  if ((machine.options?.maxIterations ?? Infinity) !== Infinity) return false
  const visit = (n: StateNode): boolean => {
    if (n.type === 'parallel' || n.type === 'history') return false
    for (const descriptor of n.transitions.keys()) if (descriptor.includes('*')) return false
    return Object.values(n.states).every(visit)
  }
  return visit(machine.root)
}

const deepFreeze = <T>(v: T): T => {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v)
    for (const x of Object.values(v)) deepFreeze(x)
  }
  return v
}

/** The configurations and plans of one machine, each worked out once, for all its actors. */
export class StepPlans {
  private readonly configs = new Map<StateNode, Config>()
  /** Made once each; steps into blocked states are XState's whatever the plan (see planOf). */
  private readonly plans = new Map<StateNode, Map<Transition, Plan | null>>()
  /** Atomic states whose eventless transitions may lead to a step XState must take (so XState takes all steps into them). */
  private readonly blocked = new Set<StateNode>()

  constructor (private readonly machine: AnyStateMachine) {
    // Worked out for the whole machine before any step, until nothing changes: eventless transitions may form cycles.
    const atomics: StateNode[] = []
    const collect = (n: StateNode): void => { if (n.type === 'atomic') atomics.push(n); for (const c of Object.values(n.states)) collect(c) }
    collect(machine.root)
    for (let changed = true; changed;) {
      changed = false
      for (const a of atomics) {
        const config = this.configOf(a)
        if (!config.hasAlways || this.blocked.has(a)) continue
        const leadsToXState = config.chain.some((n) => (n.always ?? []).some((t) => this.planOf(config, t) === null))
        if (leadsToXState) {
          this.blocked.add(a)
          changed = true
        }
      }
    }
  }

  configOf (atomic: StateNode): Config {
    let c = this.configs.get(atomic)
    if (c === undefined) {
      const resolved = this.machine.resolveState({ value: pathToStateValue(atomic.path), context: {} }) as AnyMachineSnapshot
      const chain: StateNode[] = []
      for (let n: StateNode | undefined = atomic; n !== undefined; n = n.parent) chain.unshift(n)
      c = {
        atomic,
        chain,
        _nodes: Object.freeze(resolved._nodes as StateNode[]) as StateNode[],
        value: deepFreeze(resolved.value),
        tags: resolved.tags,
        hasAlways: chain.some((n) => n.always !== undefined && n.always.length > 0)
      }
      this.configs.set(atomic, c)
    }
    return c
  }

  /** The configuration of a snapshot XState or this made. */
  configOfSnapshot (snapshot: AnyMachineSnapshot): Config {
    let atomic: StateNode | undefined
    for (const n of snapshot._nodes as StateNode[]) if (n.type === 'atomic' || n.type === 'final') atomic = n
    return this.configOf(atomic as StateNode)
  }

  /** The plan of this step, or `null` when it is XState's to take (whole, with what follows it). */
  planOf (config: Config, t: Transition): Plan | null {
    let byTransition = this.plans.get(config.atomic)
    if (byTransition === undefined) {
      byTransition = new Map()
      this.plans.set(config.atomic, byTransition)
    }
    let plan = byTransition.get(t)
    if (plan === undefined) {
      plan = makePlan(config, t, (x) => this.configOf(x))
      byTransition.set(t, plan)
    }
    // Not stored filtered: `blocked` grows while the constructor works it out with these same plans.
    return plan === null || this.blocked.has(plan.next.atomic) ? null : plan
  }

  /** Some eventless transition of this configuration may lead to a step XState must take. */
  alwaysBlocked (config: Config): boolean {
    return this.blocked.has(config.atomic)
  }
}

/** The transition enters a final state of the machine itself: the machine is done. */
export function endsTheMachine (t: Transition): boolean {
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

/**
 * One microstep worked out with XState's rules (SCXML's: transition domain,
 * exit set deepest first, entry set with default entries in document order).
 * Steps XState must take are `null`: into or out of final, invoking or
 * delayed states, history, several targets.
 */
function makePlan (from: Config, t: Transition, configOf: (n: StateNode) => Config): Plan | null {
  const machine = from.atomic.machine
  const targets = t.target ?? []
  if (targets.length === 0) return { from, next: from, actions: t.actions.map((a) => compileAction(a, machine)) }
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
  return { from, next, actions: actions.map((a) => compileAction(a, machine)) }
}
