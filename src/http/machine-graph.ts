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
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import type { AnyStateMachine } from 'xstate'
import { coordinatorMachine } from '../../actors/coordinator.ts'
import { giverMachine } from '../../actors/giver.ts'
import { sessionMachine } from '../../actors/session.ts'
import { takerMachine } from '../../actors/taker.ts'
import { descendants, eventLabel, type MachineNode, type MachineTransition } from '../machine-nodes.ts'

export const STATUS_MACHINES = { session: sessionMachine, coordinator: coordinatorMachine, giver: giverMachine, taker: takerMachine } as const
export type MachineName = keyof typeof STATUS_MACHINES

type Node = MachineNode
type Transition = MachineTransition

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

const guardName = (g: unknown): string | undefined => {
  if (typeof g === 'string') return g
  if (g !== null && typeof g === 'object' && typeof (g as { type?: unknown }).type === 'string') return (g as { type: string }).type
  if (typeof g === 'function') return g.name !== '' ? g.name : 'guard'
  return undefined
}

interface Arrow { from: string, to: string, labels: string[] }

interface Graph {
  /** Every state, by dotted id. */
  readonly nodes: Map<string, Node>
  /**
   * Compound states drawn as one box with their states in a row inside
   * (sub-machines that repeat, like the session's sync exchanges): their
   * inner arrows are noted, not drawn.
   */
  readonly collapsed: Set<string>
  readonly arrows: Map<string, Arrow>
  /** Per state: what it does without an arrow (targetless events, folded exits, inner arrows), for its tooltip. */
  readonly notes: Map<string, string[]>
}

/** Compound states made of simple states only, whose shape (state names) occurs more than once. */
function repeatedSubMachines (root: Node): Set<string> {
  const byShape = new Map<string, string[]>()
  for (const n of descendants(root)) {
    if (n === root || !isCompound(n) || Object.values(n.states).some(isCompound)) continue
    const shape = Object.keys(n.states).join('|')
    byShape.set(shape, [...(byShape.get(shape) ?? []), stateId(n)])
  }
  return new Set([...byShape.values()].filter((ids) => ids.length > 1).flat())
}

/** States and arrows of a machine; exits from nested states to a top-level final state are noted, not drawn. */
function graphOf (machine: AnyStateMachine): Graph {
  const root = machine.root as unknown as Node
  const g: Graph = { nodes: new Map(), collapsed: repeatedSubMachines(root), arrows: new Map(), notes: new Map() }
  const note = (id: string, line: string): void => { g.notes.set(id, [...(g.notes.get(id) ?? []), line]) }
  /** The box a state is drawn in: itself, or the collapsed sub-machine holding it. */
  const boxOf = (n: Node): string => {
    for (let p = n.parent; p !== undefined; p = p.parent) if (g.collapsed.has(stateId(p))) return stateId(p)
    return stateId(n)
  }
  const arrow = (from: string, to: string, label: string): void => {
    const k = `${from}→${to}`
    const a = g.arrows.get(k) ?? { from, to, labels: [] }
    if (!a.labels.includes(label)) a.labels.push(label)
    g.arrows.set(k, a)
  }
  for (const node of descendants(root)) {
    const id = node === root ? ANY : stateId(node)
    const box = node === root ? ANY : boxOf(node)
    if (node !== root) g.nodes.set(id, node)
    const initial = node.initial?.target[0]
    if (initial !== undefined && !g.collapsed.has(id) && box === id) arrow(`${node === root ? '' : id}#initial`, stateId(initial), '')
    const groups: Array<[string, readonly Transition[]]> = [...node.transitions.entries()]
    if (node.always !== undefined) groups.push(['', node.always])
    for (const [eventType, candidates] of groups) {
      const event = eventLabel(node, eventType)
      for (const t of candidates) {
        const guard = guardName(t.guard)
        const label = guard === undefined ? event : `${event} [${guard}]`
        const targets = t.target ?? []
        if (targets.length === 0) { note(box, box === id ? label : `${node.key}: ${label}`); continue }
        for (const target of targets) {
          const foldedExit = target.type === 'final' && target.parent === root && node.parent !== root && node !== root
          const to = boxOf(target)
          if (foldedExit) note(box, `${box === id ? '' : `${node.key}: `}${label} → ${target.key}`)
          else if (to === box && box !== id) note(box, `${node.key} → ${target.key}: ${label}`)
          else arrow(box, to, label)
        }
      }
    }
  }
  return g
}

const width = (text: string, min = 60): number => Math.max(min, text.length * CHAR + 20)
const MINI_H = 24
const MINI_GAP = 8

const MINI_COLUMNS = 2

/** The states of a collapsed sub-machine, in a grid of MINI_COLUMNS: their places inside its box. */
function miniGrid (n: Node): Array<{ child: Node, x: number, y: number, w: number }> {
  const children = Object.values(n.states)
  const columns = Array.from({ length: MINI_COLUMNS }, (_, c) =>
    Math.max(...children.filter((_, i) => i % MINI_COLUMNS === c).map((child) => width(child.key, 40) + BADGE_W - 10)))
  return children.map((child, i) => {
    const c = i % MINI_COLUMNS
    const x = 10 + columns.slice(0, c).reduce((a, b) => a + b + MINI_GAP, 0)
    return { child, x, y: 28 + Math.floor(i / MINI_COLUMNS) * (MINI_H + 6), w: columns[c] }
  })
}

/** A collapsed sub-machine's box size. */
function miniSize (n: Node): { width: number, height: number } {
  const grid = miniGrid(n)
  return {
    width: Math.max(width(n.key) + BADGE_W, ...grid.map((m) => m.x + m.w + 10)),
    height: Math.max(...grid.map((m) => m.y + MINI_H + 10))
  }
}

/** The ELK graph: compound states as nested nodes, every arrow declared at the top (ELK routes across levels). */
function elkGraph (g: Graph): ElkNode {
  const children = new Map<string, ElkNode[]>()
  const add = (parentId: string, n: ElkNode): void => { children.set(parentId, [...(children.get(parentId) ?? []), n]) }
  const parentOf = (n: Node): string => (n.parent === undefined || n.parent.path.length === 0 ? '' : stateId(n.parent))
  if (g.notes.has(ANY) || [...g.arrows.values()].some((a) => a.from === ANY)) add('', { id: ANY, width: width('any state'), height: STATE_H })
  for (const a of g.arrows.values()) {
    if (a.from.endsWith('#initial')) add(a.from.slice(0, -'#initial'.length), { id: a.from, width: 12, height: 12 })
  }
  const hidden = (n: Node): boolean => {
    for (let p = n.parent; p !== undefined; p = p.parent) if (g.collapsed.has(stateId(p))) return true
    return false
  }
  for (const [id, n] of g.nodes) {
    if (hidden(n)) continue
    if (g.collapsed.has(id)) {
      add(parentOf(n), { id, ...miniSize(n) })
    } else {
      add(parentOf(n), isCompound(n)
        ? { id, layoutOptions: { 'elk.padding': '[top=30,left=12,bottom=12,right=12]' } }
        : { id, width: width(n.key) + BADGE_W, height: STATE_H })
    }
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

/** One state's box: `<g class="state …" data-state="id">` with its name and an empty count the page fills. */
function stateBox (id: string, node: Node, kind: string, x: number, y: number, w: number, h: number, tip: string): string {
  const compound = kind === 'compound'
  const labelY = compound ? 18 : h / 2 + 4
  return `<g class="state ${kind}" data-state="${esc(id)}" transform="translate(${fmt(x)},${fmt(y)})"><title>${esc(tip)}</title>` +
    `<rect width="${fmt(w)}" height="${fmt(h)}" rx="${compound ? 8 : h / 2.5}"/>` +
    (kind.includes('final') ? `<rect class="inner" x="3" y="3" width="${fmt(w - 6)}" height="${fmt(h - 6)}" rx="${h / 3}"/>` : '') +
    `<text class="name" x="10" y="${fmt(labelY)}">${esc(node.key)}</text>` +
    `<text class="count" x="${fmt(w - 8)}" y="${fmt(labelY)}" text-anchor="end"></text></g>`
}

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
        const collapsed = g.collapsed.has(c.id)
        const compound = collapsed || (c.children !== undefined && c.children.length > 0)
        const tip = [c.id, ...(g.notes.get(c.id) ?? [])].join('\n')
        states.push(stateBox(c.id, node, compound ? 'compound' : node.type === 'final' ? 'final' : 'atomic', x, y, w, h, tip))
        if (collapsed) {
          for (const m of miniGrid(node)) {
            states.push(stateBox(stateId(m.child), m.child, `atomic mini${m.child.type === 'final' ? ' final' : ''}`, x + m.x, y + m.y, m.w, MINI_H, stateId(m.child)))
          }
        }
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

/** Every machine as SVG, in this thread (elkjs works synchronously: about a second for the session). */
export async function layoutAll (): Promise<Record<MachineName, string>> {
  const out = {} as Record<MachineName, string>
  for (const name of Object.keys(STATUS_MACHINES) as MachineName[]) out[name] = await machineSvg(name)
  return out
}

/**
 * Runs in a worker thread: the TypeScript loader (tsx) registered there, this
 * module imported, `layoutAll()` posted back.
 */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
;(async () => {
  (await import(workerData.tsx)).register()
  const m = await import(workerData.module)
  parentPort.postMessage({ svgs: await m.layoutAll() })
})().catch((err) => parentPort.postMessage({ error: String((err && err.stack) || err) }))
`

/** `layoutAll()` in a worker thread, so that laying out never stalls the sessions' event loop. */
async function layoutInWorker (): Promise<Record<MachineName, string>> {
  const tsx = import.meta.resolve('tsx/esm/api')
  const worker = new Worker(WORKER, { eval: true, workerData: { tsx, module: import.meta.url } })
  try {
    const [message] = await once(worker, 'message') as [{ svgs?: Record<MachineName, string>, error?: string }]
    if (message.svgs === undefined) throw new Error(message.error ?? 'no diagrams')
    return message.svgs
  } finally {
    await worker.terminate()
  }
}

let all: Promise<Record<MachineName, string>> | undefined

/** Every machine as SVG, laid out once per process, in a worker thread (the definitions do not change while it runs). */
export function machineSvgs (): Promise<Record<MachineName, string>> {
  all ??= layoutInWorker().catch((err: unknown) => {
    all = undefined // tried again on the next request
    throw err
  })
  return all
}
