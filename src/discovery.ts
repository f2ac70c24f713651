import type { ServerLog } from './log.ts'

export interface DiscoveryOptions {
  readonly projectName: string
  readonly secret?: string
  /** Where announcements and terminal lines go. */
  readonly address: string
  /** The UDP port: announcements are sent to it, aborts are received on it. */
  readonly port: number
  readonly intervalMs: number
}

export interface Discovery {
  close: () => Promise<void>
}

/** STUB: §7 not implemented yet. */
export async function startDiscovery (_options: DiscoveryOptions, _log: ServerLog, _onAbort: () => void): Promise<Discovery> {
  return { close: async () => {} }
}
