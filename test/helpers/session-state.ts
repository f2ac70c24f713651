import type { StateValue } from 'xstate'
import type { RunningServer } from '../../src/server.ts'

/**
 * Resolves once the server's session of `userId` is in `state` (as for
 * `snapshot.matches`), now or later: a test waits for the server to be where
 * it needs it (holding a pass, delivering a sync) instead of sleeping.
 */
export async function sessionReaches (server: RunningServer, userId: string, state: StateValue): Promise<void> {
  const connection = [...server.connections()].find((c) => c.userId === userId)
  if (connection === undefined) throw new Error(`no connection of ${userId}`)
  const session = connection.session
  if (session.getSnapshot().matches(state as never)) return
  await new Promise<void>((resolve) => {
    const subscription = session.subscribe((snapshot) => {
      if (!snapshot.matches(state as never)) return
      subscription.unsubscribe()
      resolve()
    })
  })
}

/** The server holds this user's pass (§4 turn hold): it passed and nothing is pending. */
export const HELD_PASS = { turnTaking: 'holding' } as const
