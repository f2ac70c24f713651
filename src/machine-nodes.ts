/**
 * The parts of XState's state nodes that the diagram generators read
 * (scripts/diagrams.ts for the docs, src/http/machine-graph.ts for the status
 * page): one view of a machine's definition, walked the same way by both.
 */

export interface MachineNode {
  readonly key: string
  readonly id: string
  readonly path: readonly string[]
  readonly type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history'
  readonly parent?: MachineNode
  readonly states: Record<string, MachineNode>
  readonly initial?: { readonly target: readonly MachineNode[], readonly actions: readonly unknown[] }
  readonly transitions: ReadonlyMap<string, readonly MachineTransition[]>
  readonly always?: readonly MachineTransition[]
  readonly after: ReadonlyArray<{ readonly delay: string | number, readonly eventType: string }>
  readonly invoke: ReadonlyArray<{ readonly id: string, readonly src: unknown }>
  readonly entry: readonly unknown[]
  readonly exit: readonly unknown[]
}

export interface MachineTransition {
  readonly target?: readonly MachineNode[]
  readonly guard?: unknown
  readonly actions: readonly unknown[]
  readonly reenter: boolean
}

/** A node and every node below it, depth first, in definition order. */
export function descendants (node: MachineNode): MachineNode[] {
  return [node, ...Object.values(node.states).flatMap(descendants)]
}

/** How an event reads on an arrow: its type, or `always`, `after <delay>`, `onDone`, `onDone(<child>)`. */
export function eventLabel (node: MachineNode, eventType: string): string {
  if (eventType === '') return 'always'
  if (eventType.startsWith('xstate.after.')) {
    const delay = node.after.find((a) => a.eventType === eventType)?.delay
    return `after ${typeof delay === 'number' ? `${delay} ms` : (delay ?? '?')}`
  }
  if (eventType === `xstate.done.state.${node.id}`) return 'onDone'
  const actor = /^xstate\.(done|error)\.actor\.(.*)$/.exec(eventType)
  if (actor !== null) return `${actor[1] === 'done' ? 'onDone' : 'onError'}(${actor[2] === '*' ? 'any child' : actor[2]})`
  return eventType
}
