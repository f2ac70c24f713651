import type { ChatLine, Timestamp, UserId } from '../protocol/messages.ts'

/** §4: what can be pending for a client, delivered on its pass. */
export type Notification =
  | { readonly kind: 'users' }
  | { readonly kind: 'story' }
  | { readonly kind: 'analytics' }
  | { readonly kind: 'assets' }
  /** Carries the whole history as it is now: delivering it needs no round trip to the coordinator. */
  | { readonly kind: 'message', readonly history: readonly ChatLine[] }
  | { readonly kind: 'at', readonly from: UserId, readonly path: string, readonly timestamp: Timestamp }
  | { readonly kind: 'serve', readonly relayId: number, readonly folder: string, readonly taker: UserId }

export type NotificationKind = Notification['kind']

const COALESCING: ReadonlySet<NotificationKind> = new Set(['users', 'story', 'analytics', 'assets'])

/**
 * §4 coalescing: one pending `users`/`story`/`analytics`/`assets`/`message` at
 * most; `message` keeps its place but takes the newest history; `at` keeps
 * the newest per sender (in the place of the older one); `serve` never
 * coalesces.
 */
export function enqueueNotification (pending: readonly Notification[], n: Notification): readonly Notification[] {
  if (COALESCING.has(n.kind)) {
    return pending.some((p) => p.kind === n.kind) ? pending : [...pending, n]
  }
  if (n.kind === 'message' || n.kind === 'at') {
    const i = pending.findIndex((p) => p.kind === n.kind && (n.kind === 'message' || (p.kind === 'at' && p.from === n.from)))
    if (i >= 0) return pending.map((p, j) => (j === i ? n : p))
  }
  return [...pending, n]
}

/** Withdraws a serve notification (relay timeout, taker gone). */
export function withdrawServe (pending: readonly Notification[], relayId: number): readonly Notification[] {
  return pending.filter((p) => !(p.kind === 'serve' && p.relayId === relayId))
}
