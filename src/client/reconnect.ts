import type { Client } from './client.ts'
import { ClientError } from './errors.ts'

export interface Backoff {
  /** First delay, and the most any delay grows to, in ms. */
  readonly minMs: number
  readonly maxMs: number
}

export const DEFAULT_BACKOFF: Backoff = { minMs: 1_000, maxMs: 30_000 }

/** The delay before attempt `n` (1-based): doubling from `minMs` up to `maxMs`, times a jitter in [0.5, 1.5). */
export function backoffDelay (n: number, b: Backoff, random: () => number = Math.random): number {
  const base = Math.min(b.maxMs, b.minMs * 2 ** Math.min(30, n - 1))
  return Math.round(base * (0.5 + random()))
}

/** Refusals no retry can cure: the server is up and says no. */
const isFinal = (err: unknown): boolean => err instanceof ClientError && ['wrong_project', 'wrong_secret', 'bad_handshake'].includes(err.code)

/**
 * Keeps a client connected until `stop` resolves: `open` makes a connection,
 * `onConnected` sets it up (listeners, `at`); when the connection drops,
 * reconnects with backoff and jitter, saying one line per attempt. The first
 * connection is not retried (a wrong address fails at once); a refusal of the
 * handshake ends it too. Resolves once stopped; rejects with a final refusal.
 */
export async function stayConnected (o: {
  open: () => Promise<Client>
  onConnected: (c: Client, reconnected: boolean) => Promise<void>
  say: (line: string) => void
  stop: Promise<void>
  backoff?: Backoff
}): Promise<void> {
  const backoff = o.backoff ?? DEFAULT_BACKOFF
  let stopped = false
  void o.stop.then(() => { stopped = true })
  let client: Client | null = await o.open()
  let reconnected = false
  while (true) {
    const c: Client = client
    await o.onConnected(c, reconnected).catch(() => {})
    const ended = await Promise.race([o.stop.then(() => null), c.closed])
    if (ended === null) {
      const t = setTimeout(() => c.destroy(), 3_000)
      await c.close()
      clearTimeout(t)
      return
    }
    let reason = ended.error?.detail ?? ended.reason
    client = null
    for (let attempt = 1; client === null; attempt++) {
      const delay = backoffDelay(attempt, backoff)
      o.say(`connection lost (${reason}) | reconnecting in ${(delay / 1000).toFixed(1)} s | attempt ${attempt}`)
      const woke = await Promise.race([o.stop.then(() => 'stop' as const), new Promise<'time'>((resolve) => setTimeout(() => resolve('time'), delay))])
      if (woke === 'stop' || stopped) return
      try {
        client = await o.open()
      } catch (err) {
        if (isFinal(err)) throw err
        reason = err instanceof ClientError ? err.detail : (err as Error).message
      }
    }
    o.say(`reconnected as ${client.userId}`)
    reconnected = true
  }
}
