import type { InspectionEvent } from 'xstate'
import type { ServerLog } from './log.ts'

export interface Inspector {
  /** Pass as the actors' `inspect` option. */
  readonly inspect: (event: InspectionEvent) => void
  /** What to open in a browser. */
  readonly url: string
  readonly close: () => Promise<void>
}

/** STUB: the inspector relay is not implemented yet. */
export async function startInspector (port: number, _log: ServerLog): Promise<Inspector> {
  return { inspect: () => {}, url: `http://127.0.0.1:${port}`, close: async () => {} }
}
