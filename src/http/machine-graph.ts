/**
 * The server's machines drawn as SVG for the status page, from their
 * definitions (never by hand), laid out by elkjs on the server and served
 * from the package: the offline counterpart of the Stately inspector.
 *
 * Every state is a `<g class="state" data-state="turnTaking.holding">` with a
 * `.count` text the page fills with the number of actors in that state, and
 * the class `current` the page sets on a selected user's states.
 */
import elk, { type ElkExtendedEdge, type ElkNode } from 'elkjs/lib/elk.bundled.js'
import type { AnyStateMachine } from 'xstate'
import { coordinatorMachine } from '../../actors/coordinator.ts'
import { giverMachine } from '../../actors/giver.ts'
import { sessionMachine } from '../../actors/session.ts'
import { takerMachine } from '../../actors/taker.ts'

export const STATUS_MACHINES = { session: sessionMachine, coordinator: coordinatorMachine, giver: giverMachine, taker: takerMachine } as const
export type MachineName = keyof typeof STATUS_MACHINES

/** The parts of XState's state node read here. */
interface Node {
  readonly key: string
  readonly id: string
  readonly path: readonly string[]
  readonly type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history'
  readonly parent?: Node
  readonly states: Record<string, Node>
  readonly initial?: { readonly target: readonly Node[] }
  readonly transitions: ReadonlyMap<string, readonly Transition[]>
  readonly always?: readonly Transition[]
  readonly after: ReadonlyArray<{ readonly delay: string | number, readonly eventType: string }>
}
interface Transition { readonly target?: readonly Node[], readonly guard?: unknown }

/** elkjs is CommonJS: its constructor is the module itself, also exported as `default`. */
const ELK = elk.default

const ANY = '(any)'
const FONT = 12
const CHAR = 7
const STATE_H = 30
const BADGE_W = 30

/** A state's id on the page: its dotted path (`turnTaking.holding`), as `activeStates` gives them. */
const stateId = (n: Node): string => n.path.join('.')
const isCompound = (n: Node): boolean => Object.keys(n.states).length > 0
const descendants = (n: Node): Node[] => [n, ...Object.values(n.states).flatMap(descendants)]

function eventLabel (node: Node, eventType: string): string {
  if (eventType === '') return 'always'
  if (eventType.startsWith('xstate.after.')) {
    const delay = node.after.find((a) => a.eventType === eventType)?.delay
    return `after ${typeof delay === 'number' ? `${delay} ms` : String(delay)}`
  }
  if (eventType === `xstate.done.state.${node.id}`) return 'onDone'
  if (eventType.startsWith('xstate.done.actor.')) return 'onDone(child)'
  return eventType
}

const guardName = (g: unknown): string | undefined => {
  if (typeof g === 'string') return g
  if (g !== null && typeof g === 'object' && typeof (g as { type?: unknown }).type === 'string') return (g as { type: string }).type
  if (typeof g === 'function') return g.name !== '' ? g.name : 'guard'
  return undefined
}

interface Arrow { from: string, to: string, labels: string[] }

interface Graph {
  readonly nodes: Map<string, Node>
  readonly arrows: Map<string, Arrow>
  /** Per state: what it does without an arrow (targetless events, folded exits), for its tooltip. */
  readonly notes: Map<string, string[]>
}

/** States and arrows of a machine; exits from nested states to a top-level final state are noted, not drawn. */
function graphOf (machine: AnyStateMachine): Graph {
  const root = machine.root as unknown as Node
  const g: Graph = { nodes: new Map(), arrows: new Map(), notes: new Map() }
  const note = (id: string, line: string): void => { g.notes.set(id, [...(g.notes.get(id) ?? []), line]) }
  const arrow = (from: string, to: string, label: string): void => {
    const k = `${from}→${to}`
    const a = g.arrows.get(k) ?? { from, to, labels: [] }
    if (!a.labels.includes(label)) a.labels.push(label)
    g.arrows.set(k, a)
  }
  for (const node of descendants(root)) {
    const id = node === root ? ANY : stateId(node)
    if (node !== root) g.nodes.set(id, node)
    const initial = node.initial?.target[0]
    if (initial !== undefined) arrow(`${node === root ? '' : id}#initial`, stateId(initial), '')
    const groups: Array<[string, readonly Transition[]]> = [...node.transitions.entries()]
    if (node.always !== undefined) groups.push(['', node.always])
    for (const [eventType, candidates] of groups) {
      const event = eventLabel(node, eventType)
      for (const t of candidates) {
        const guard = guardName(t.guard)
        const label = guard === undefined ? event : `${event} [${guard}]`
        const targets = t.target ?? []
        if (targets.length === 0) { note(id, label); continue }
        for (const target of targets) {
          const foldedExit = target.type === 'final' && target.parent === root && node.parent !== root && node !== root
          if (foldedExit) note(id, `${label} → ${target.key}`)
          else arrow(id, stateId(target), label)
        }
      }
    }
  }
  return g
}

const width = (text: string, min = 60): number => Math.max(min, text.length * CHAR + 20)

/** The ELK graph: compound states as nested nodes, every arrow declared at the top (ELK routes across levels). */
function elkGraph (g: Graph): ElkNode {
  const children = new Map<string, ElkNode[]>()
  const add = (parentId: string, n: ElkNode): void => { children.set(parentId, [...(children.get(parentId) ?? []), n]) }
  const parentOf = (n: Node): string => (n.parent === undefined || n.parent.path.length === 0 ? '' : stateId(n.parent))
  if (g.notes.has(ANY) || [...g.arrows.values()].some((a) => a.from === ANY)) add('', { id: ANY, width: width('any state'), height: STATE_H })
  for (const [from] of [...g.arrows.values()].filter((a) => a.from.endsWith('#initial')).map((a) => [a.from])) {
    add(from.slice(0, -'#initial'.length), { id: from, width: 12, height: 12 })
  }
  for (const [id, n] of g.nodes) {
    add(parentOf(n), isCompound(n)
      ? { id, layoutOptions: { 'elk.padding': '[top=30,left=12,bottom=12,right=12]' } }
      : { id, width: width(n.key) + BADGE_W, height: STATE_H })
  }
  const build = (id: string): ElkNode[] => (children.get(id) ?? []).map((c) => (children.has(c.id) ? { ...c, children: build(c.id) } : c))
  const edges: ElkExtendedEdge[] = [...g.arrows.values()].map((a, i) => {
    const text = a.labels.length > 3 ? `${a.labels.slice(0, 3).join(', ')}, …` : a.labels.join(', ')
    return {
      id: `e${i}`,
      sources: [a.from],
      targets: [a.to],
      labels: text === '' ? [] : [{ id: `e${i}l`, text, width: text.length * 6 + 4, height: 14 }]
    }
  })
  return {
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'DOWN',
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      'elk.layered.spacing.nodeNodeBetweenLayers': '40',
      'elk.spacing.nodeNode': '24',
      'elk.spacing.edgeLabel': '4',
      'elk.edgeLabels.inline': 'false',
      'elk.padding': '[top=12,left=12,bottom=12,right=12]'
    },
    children: build(''),
    edges
  }
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
const fmt = (n: number): string => String(Math.round(n * 10) / 10)

function render (name: MachineName, g: Graph, laid: ElkNode): string {
  const abs = new Map<string, { x: number, y: number }>([['root', { x: 0, y: 0 }]])
  const states: string[] = []
  const walk = (n: ElkNode, ox: number, oy: number): void => {
    for (const c of n.children ?? []) {
      const x = ox + (c.x ?? 0)
      const y = oy + (c.y ?? 0)
      abs.set(c.id, { x, y })
      const w = c.width ?? 0
      const h = c.height ?? 0
      if (c.id.endsWith('#initial')) {
        states.push(`<circle class="initial" cx="${fmt(x + w / 2)}" cy="${fmt(y + h / 2)}" r="5"/>`)
      } else if (c.id === ANY) {
        const tip = (g.notes.get(ANY) ?? []).join('\n')
        states.push(`<g class="any" transform="translate(${fmt(x)},${fmt(y)})"><title>${esc(`transitions taken in every state${tip === '' ? '' : `:\n${tip}`}`)}</title>` +
          `<rect width="${fmt(w)}" height="${fmt(h)}" rx="6"/><text x="10" y="${fmt(h / 2 + 4)}">any state</text></g>`)
      } else {
        const node = g.nodes.get(c.id) as Node
        const compound = c.children !== undefined && c.children.length > 0
        const kind = compound ? 'compound' : node.type === 'final' ? 'final' : 'atomic'
        const tip = [c.id, ...(g.notes.get(c.id) ?? [])].join('\n')
        const labelY = compound ? 18 : h / 2 + 4
        states.push(`<g class="state ${kind}" data-state="${esc(c.id)}" transform="translate(${fmt(x)},${fmt(y)})"><title>${esc(tip)}</title>` +
          `<rect width="${fmt(w)}" height="${fmt(h)}" rx="${compound ? 8 : 12}"/>` +
          (kind === 'final' ? `<rect class="inner" x="3" y="3" width="${fmt(w - 6)}" height="${fmt(h - 6)}" rx="9"/>` : '') +
          `<text class="name" x="10" y="${fmt(labelY)}">${esc(node.key)}</text>` +
          `<text class="count" x="${fmt(w - 8)}" y="${fmt(labelY)}" text-anchor="end"></text></g>`)
        walk(c, x, y)
      }
    }
  }
  walk(laid, 0, 0)
  const edges: string[] = []
  for (const e of laid.edges ?? []) {
    const o = abs.get((e as { container?: string }).container ?? 'root') ?? { x: 0, y: 0 }
    for (const s of e.sections ?? []) {
      const pts = [s.startPoint, ...(s.bendPoints ?? []), s.endPoint].map((p) => `${fmt(p.x + o.x)},${fmt(p.y + o.y)}`)
      edges.push(`<path d="M${pts.join(' L')}" marker-end="url(#arrow-${name})"/>`)
    }
    for (const l of e.labels ?? []) {
      edges.push(`<text class="edge-label" x="${fmt((l.x ?? 0) + o.x)}" y="${fmt((l.y ?? 0) + o.y + 11)}">${esc(l.text ?? '')}</text>`)
    }
  }
  const w = laid.width ?? 0
  const h = laid.height ?? 0
  return `<svg xmlns="http://www.w3.org/2000/svg" class="machine" data-machine="${name}" viewBox="0 0 ${fmt(w)} ${fmt(h)}" width="${fmt(w)}" height="${fmt(h)}" font-size="${FONT}">` +
    `<defs><marker id="arrow-${name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>` +
    `<g class="states">${states.join('')}</g><g class="edges">${edges.join('')}</g></svg>`
}

/** One machine as SVG. */
export async function machineSvg (name: MachineName): Promise<string> {
  const g = graphOf(STATUS_MACHINES[name])
  const laid = await new ELK().layout(elkGraph(g))
  return render(name, g, laid)
}

let all: Promise<Record<MachineName, string>> | undefined

/** Every machine as SVG, laid out once per process (the definitions do not change while it runs). */
export function machineSvgs (): Promise<Record<MachineName, string>> {
  all ??= (async () => {
    const out = {} as Record<MachineName, string>
    for (const name of Object.keys(STATUS_MACHINES) as MachineName[]) out[name] = await machineSvg(name)
    return out
  })()
  return all
}

/**
 * The states a snapshot's value is in, each as its dotted id, ancestors
 * included: `{ turnTaking: 'holding' }` → `['turnTaking', 'turnTaking.holding']`.
 */
export function activeStates (value: unknown, prefix = ''): string[] {
  if (typeof value === 'string') return [prefix + value]
  if (value === null || typeof value !== 'object') return []
  const out: string[] = []
  for (const [k, v] of Object.entries(value)) {
    out.push(prefix + k)
    out.push(...activeStates(v, `${prefix}${k}.`))
  }
  return out
}

/** The deepest active state(s), dotted: `turnTaking.holding`. */
export function leafState (value: unknown): string {
  const states = activeStates(value)
  return states.filter((s) => !states.some((o) => o.startsWith(`${s}.`))).join(', ')
}
