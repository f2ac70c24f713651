import type { DurableState } from '../actors/coordinator.ts'
import type { ServerLog } from './log.ts'

/** Where story, analytics and chat survive restarts (issue: persistence). */
export interface Store {
  /** The saved state, or undefined when there is none. */
  load: () => Promise<DurableState | undefined>
  /** A change: written soon, coalesced with later ones. */
  save: (state: DurableState) => void
  /** Writes whatever is pending; resolves once it is on disk. */
  flush: () => Promise<void>
}

export interface StoreOptions {
  readonly projectName: string
  readonly persist: false | { readonly dataDir?: string }
}

/** STUB: keeps nothing yet. */
export function createStore (_options: StoreOptions, _log: ServerLog): Store {
  return { load: async () => undefined, save: () => {}, flush: async () => {} }
}
