/**
 * Paths through the protocol model (xstate/graph), and the model's own
 * inventory of states and transitions for the coverage check.
 */
import { createActor, type AnyStateNode, type AnyTransitionDefinition, type SnapshotFrom } from 'xstate'
import { createTestModel, getStateNodes, type StatePath, type TestModel } from 'xstate/graph'
import { protocolModel, type ModelEvent, type ModelInput } from './protocol-model.ts'

export type ModelSnapshot = SnapshotFrom<typeof protocolModel>
export type ModelPath = StatePath<ModelSnapshot, ModelEvent>

/**
 * A state of the model for path generation: its value and `flow` (what
 * decides which events are enabled), not `data`/`out`/`expect` (what the
 * frames carry), so that the graph stays finite and small. For shortest
 * paths the step that led there (event and previous state) is part of the
 * key too, so every step of the flow graph, self-loops included, is a vertex
 * of its own and some shortest path takes it.
 */
export function flowKey (s: ModelSnapshot): string {
  return JSON.stringify({ v: s.value, f: s.context.flow })
}

function serializeState (s: ModelSnapshot, event: ModelEvent | undefined, prev?: ModelSnapshot): string {
  return event === undefined || prev === undefined ? flowKey(s) : `${flowKey(s)} via ${event.type} from ${flowKey(prev)}`
}

export function createModel (): TestModel<ModelSnapshot, ModelEvent, unknown> {
  return createTestModel(protocolModel, {
    serializeState,
    // Only events some transition takes (guards pass): a refused event is not a step.
    filterEvents: (s, e) => s.can(e)
  })
}

/** The event types of a path, without the initial `xstate.init` step. */
export const eventsOf = (p: ModelPath): ModelEvent[] =>
  p.steps.map((s) => s.event).filter((e) => (e.type as string) !== 'xstate.init')

export const describePath = (events: readonly ModelEvent[]): string => events.map((e) => e.type).join(' → ') || '(connect)'

export interface GeneratedPaths {
  readonly paths: ModelEvent[][]
  /** How many each generator gave, before duplicates and prefixes were dropped. */
  readonly shortest: number
  readonly simple: number
}

/** C holds the turn with nothing pending: a scenario can end here. */
const settled = (s: ModelSnapshot): boolean => s.matches({ turn: 'clientHolds' }) && s.context.flow.pending.length === 0

/** Where the simple-path regions start: C holds the turn, P is here and idle, nothing pending. */
const calm = (s: ModelSnapshot): boolean => settled(s) && s.context.flow.p === 'here' && !s.context.flow.pAsking

/**
 * Regions of the model where the order of events matters, each explored by
 * every simple path (no state twice) over its events, from `calm`.
 */
const REGIONS: Record<string, readonly ModelEvent['type'][]> = {
  'chat and presence': ['P_SAYS', 'P_MOVES_AT', 'C_MESSAGE', 'C_PASS'],
  'story, analytics, assets': ['P_PUSHES_STORY', 'P_PUSHES_ANALYTICS', 'P_PUSHES_ASSETS', 'C_STORY', 'C_ANALYTICS', 'C_ASSETS', 'C_ANSWER', 'C_ACK', 'C_PASS'],
  'relay as giver': ['P_ASKS_C', 'C_MESSAGE', 'C_GET', 'C_PASS', 'C_MANIFEST', 'C_EARLY_REQUEST', 'C_FILE', 'P_GETLIST', 'P_ANSWERS', 'P_LEAVES'],
  'relay as taker': ['C_GET', 'P_GIVES', 'C_GETLIST', 'C_GETLIST_EMPTY', 'C_BAD_GETLIST', 'P_SENDS_FILE', 'P_SENDS_PART', 'P_SENDS_REST', 'C_OK', 'P_LEAVES', 'C_PASS']
}

/**
 * Every path the model gives: the shortest path to every vertex (a state of
 * `flowKey` and the step that led there, so every transition), then simple
 * paths: through the handshake and sync, and through each of REGIONS from
 * the shortest way to `calm`. A simple path is completed by the shortest way
 * to `settled` (C's pending notifications delivered), so it checks what they
 * bring. Simple paths are keyed by `flowKey` alone (far fewer of them) and
 * capped per region, spread evenly. Paths that are a prefix of another are
 * dropped: the longer one checks every state the prefix does.
 */
export function generatePaths (maxSimplePerRegion = 40): GeneratedPaths {
  const model = createModel()
  const shortest = model.getShortestPaths()
  const byFlow = { serializeState: (s: ModelSnapshot) => flowKey(s) }
  const simplePaths = (from: ModelSnapshot | undefined, o: { stopWhen?: (s: ModelSnapshot) => boolean, only?: ReadonlySet<string> }): ModelPath[] =>
    model.getSimplePaths({
      ...byFlow,
      ...(from === undefined ? {} : { fromState: from }),
      ...(o.stopWhen === undefined ? {} : { stopWhen: o.stopWhen }),
      filterEvents: (s, e) => (o.only === undefined || o.only.has(e.type)) && s.can(e)
    })
  const completed = (prefix: ModelEvent[], tail: ModelPath): ModelEvent[] => {
    const events = [...prefix, ...eventsOf(tail)]
    if (settled(tail.state) || tail.state.matches('closed')) return events
    const ways = model.getShortestPaths({ ...byFlow, fromState: tail.state, toState: settled })
      .map(eventsOf)
      .sort((a, b) => a.length - b.length || describePath(a).localeCompare(describePath(b)))
    return ways.length === 0 ? events : [...events, ...ways[0]]
  }

  const simple: ModelEvent[][] = []
  const inHandshake = (s: ModelSnapshot): boolean => s.matches('handshake') || s.matches('sync')
  simple.push(...capped(simplePaths(undefined, { stopWhen: (s) => !inHandshake(s) }), maxSimplePerRegion).map((t) => completed([], t)))
  const toCalm = model.getShortestPaths({ toState: calm, allowDuplicatePaths: true })
    .sort((a, b) => a.steps.length - b.steps.length || a.description.localeCompare(b.description))[0]
  for (const only of Object.values(REGIONS)) {
    const tails = simplePaths(toCalm.state, { only: new Set(only) })
    simple.push(...capped(tails, maxSimplePerRegion).map((t) => completed(eventsOf(toCalm), t)))
  }
  return { paths: dedupe([...shortest.map(eventsOf), ...simple]), shortest: shortest.length, simple: simple.length }
}

/** Events of the held-pass region: news, requests and expiry while the server holds C's pass. */
const HELD_REGION: readonly ModelEvent['type'][] = [
  'C_PASS', 'HOLD_EXPIRES', 'P_SAYS', 'P_MOVES_AT', 'P_PUSHES_STORY', 'P_ASKS_C',
  'C_MESSAGE', 'C_USERS', 'C_AT', 'C_STORY', 'C_BAD_REQUEST', 'C_ANSWER', 'C_ACK'
]

/** Longer stories of held passes, after the shortest way to `calm`: several holds, each ended another way. */
const HELD_SCENARIOS: ReadonlyArray<readonly ModelEvent['type'][]> = [
  ['C_PASS', 'P_SAYS', 'C_PASS', 'P_MOVES_AT', 'C_PASS', 'HOLD_EXPIRES', 'C_PASS', 'C_USERS'],
  ['C_PASS', 'P_PUSHES_STORY', 'C_ANSWER', 'C_ACK', 'C_PASS', 'C_MESSAGE', 'C_PASS', 'C_PASS', 'P_SAYS'],
  ['C_PASS', 'C_PASS', 'P_MOVES_AT', 'C_PASS', 'C_AT', 'C_PASS', 'HOLD_EXPIRES']
]

/**
 * Paths of the model with a turn hold (input `{ hold: true }`), from the
 * shortest way to `calm`: the shortest path to every vertex (a state and the
 * step that led there, as for the paths without a hold) over HELD_REGION
 * that goes through `turn.holding`, then every simple path (keyed by
 * `flowKey`) over it, capped and spread evenly; each completed by the
 * shortest way to `settled`; then HELD_SCENARIOS.
 */
export function generateHeldPaths (maxSimple = 20): ModelEvent[][] {
  const model = createModel()
  const input: ModelInput = { hold: true }
  const toCalm = model.getShortestPaths({ input, toState: calm, allowDuplicatePaths: true })
    .sort((a, b) => a.steps.length - b.steps.length || a.description.localeCompare(b.description))[0]
  const only = new Set(HELD_REGION)
  const inRegion = { input, fromState: toCalm.state, filterEvents: (s: ModelSnapshot, e: ModelEvent) => only.has(e.type) && s.can(e) }
  const held = (p: ModelPath): boolean => p.steps.some((s) => s.state.matches({ turn: 'holding' }))
  const shortest = model.getShortestPaths(inRegion).filter(held)
  const simple = capped(model.getSimplePaths({ ...inRegion, serializeState: (s: ModelSnapshot) => flowKey(s) }).filter(held), maxSimple)
  const byFlow = { serializeState: (s: ModelSnapshot) => flowKey(s), input }
  const complete = (tail: ModelPath): ModelEvent[] => {
    const events = [...eventsOf(toCalm), ...eventsOf(tail)]
    if (settled(tail.state)) return events
    const ways = model.getShortestPaths({ ...byFlow, fromState: tail.state, toState: settled })
      .map(eventsOf)
      .sort((a, b) => a.length - b.length || describePath(a).localeCompare(describePath(b)))
    return ways.length === 0 ? events : [...events, ...ways[0]]
  }
  const scenarios = HELD_SCENARIOS.map((types) => {
    const events = [...eventsOf(toCalm), ...types.map((type) => ({ type }))]
    replay(events, input) // throws if the model does not take one of them
    return events
  })
  return dedupe([...[...shortest, ...simple].map(complete), ...scenarios])
}

/** At most `n` paths, spread evenly over the list (deterministic). */
function capped<T> (xs: T[], n: number): T[] {
  if (xs.length <= n) return xs
  const step = xs.length / n
  return Array.from({ length: n }, (_, i) => xs[Math.floor(i * step)])
}

/** Drops duplicates and paths that are a prefix of another. */
function dedupe (paths: ModelEvent[][]): ModelEvent[][] {
  const keys = paths.map((p) => p.map((e) => e.type))
  const sorted = keys.map((k, i) => ({ k, i })).sort((a, b) => b.k.length - a.k.length)
  const kept: Array<{ k: string[], i: number }> = []
  for (const c of sorted) {
    if (kept.some((o) => c.k.every((t, j) => o.k[j] === t))) continue
    kept.push(c)
  }
  return kept.sort((a, b) => a.i - b.i).map((c) => paths[c.i])
}

// ---------------------------------------------------------------- replay and coverage

export interface Replay {
  /** The model's state after each event. */
  readonly snapshots: ModelSnapshot[]
  readonly initial: ModelSnapshot
  /** Per event: the state nodes and transitions its macrostep went through. */
  readonly visited: Array<{ nodes: AnyStateNode[], transitions: AnyTransitionDefinition[] }>
  readonly initialNodes: AnyStateNode[]
}

/**
 * Runs the events on the model machine itself: the states with their data
 * (the frames to expect), and which state nodes and transitions each step
 * went through, transient ones included (inspection microsteps).
 */
export function replay (events: readonly ModelEvent[], input: ModelInput = {}): Replay {
  let current: { nodes: AnyStateNode[], transitions: AnyTransitionDefinition[] } = { nodes: [], transitions: [] }
  const actor = createActor(protocolModel, {
    input,
    inspect: (e) => {
      if (e.type === '@xstate.microstep') {
        current.nodes.push(...(e.snapshot as ModelSnapshot)._nodes)
        current.transitions.push(...e._transitions)
      }
    }
  })
  actor.start()
  const initial = actor.getSnapshot()
  const initialNodes = [...initial._nodes]
  const snapshots: ModelSnapshot[] = []
  const visited: Replay['visited'] = []
  for (const e of events) {
    current = { nodes: [], transitions: [] }
    const before = actor.getSnapshot()
    if (!before.can(e)) throw new Error(`model: ${e.type} is not enabled in ${JSON.stringify(before.value)}`)
    actor.send(e)
    const after = actor.getSnapshot()
    current.nodes.push(...after._nodes)
    snapshots.push(after)
    visited.push(current)
  }
  actor.stop()
  return { snapshots, initial, visited, initialNodes }
}

export interface Inventory {
  readonly states: AnyStateNode[]
  readonly transitions: AnyTransitionDefinition[]
}

/** Every state node of the model (the root excluded) and every transition, eventless ones included. */
export function inventory (): Inventory {
  const states = getStateNodes(protocolModel.root)
  const transitions = [protocolModel.root, ...states].flatMap((n) => [...[...n.transitions.values()].flat(), ...(n.always ?? [])])
  return { states, transitions }
}

/** `#wire.turn.clientHolds on C_GET [2]`: a readable name for a transition. */
export function transitionName (t: AnyTransitionDefinition): string {
  const list = t.eventType === '' ? (t.source.always ?? []) : (t.source.transitions.get(t.eventType) ?? [])
  return `#${t.source.id} on ${t.eventType === '' ? '(always)' : t.eventType} [${list.indexOf(t)}]`
}
