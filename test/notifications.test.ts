import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { enqueueNotification, withdrawServe, type Notification } from '../actors/notifications.ts'
import type { ChatLine } from '../protocol/messages.ts'

const history = (n: number): readonly ChatLine[] => Array.from({ length: n }, (_, i) => ['u', `line ${i}`] as const)
const message = (n: number): Notification => ({ kind: 'message', history: history(n) })

describe('§4 coalescing of a message notification that carries the history', () => {
  it('keeps one pending message, in its first place, with the newest history', () => {
    let pending: readonly Notification[] = []
    pending = enqueueNotification(pending, message(1))
    pending = enqueueNotification(pending, { kind: 'users' })
    const newest = message(3)
    pending = enqueueNotification(pending, message(2))
    pending = enqueueNotification(pending, newest)
    expect(pending.map((n) => n.kind)).toEqual(['message', 'users'])
    expect(pending[0]).toBe(newest)
  })

  it('for any sequence: one message at most, carrying the last history enqueued', () => {
    const event = fc.oneof(
      fc.nat(20).map(message),
      fc.constantFrom<Notification>({ kind: 'users' }, { kind: 'story' }, { kind: 'assets' }, { kind: 'analytics' }),
      fc.record({ from: fc.constantFrom('a:1', 'b:2'), n: fc.nat(9) }).map(({ from, n }): Notification => ({ kind: 'at', from, path: `/p${n}`, timestamp: '2025/01/01-00:00:00' }))
    )
    fc.assert(fc.property(fc.array(event, { maxLength: 30 }), (events) => {
      const pending = events.reduce<readonly Notification[]>((p, n) => enqueueNotification(p, n), [])
      const messages = pending.filter((n) => n.kind === 'message')
      const sent = events.filter((n) => n.kind === 'message')
      expect(messages.length).toBe(sent.length > 0 ? 1 : 0)
      if (sent.length > 0) expect(messages[0]).toBe(sent[sent.length - 1])
      // Its place is where the first message was queued, among the kinds queued before it.
      const firstAt = events.findIndex((n) => n.kind === 'message')
      if (firstAt >= 0) {
        const kindsBefore = new Set(events.slice(0, firstAt).map((n) => (n.kind === 'at' ? `at ${n.from}` : n.kind)))
        expect(pending.findIndex((n) => n.kind === 'message')).toBe(kindsBefore.size)
      }
    }))
  })
})

describe('§4 what coalesces and what does not', () => {
  const at = (from: string, path: string): Notification => ({ kind: 'at', from, path, timestamp: '2024/01/01-00:00:00' })
  const serve = (relayId: number): Notification => ({ kind: 'serve', relayId, folder: '/f', taker: 't' })

  it('an at replaces only the pending at of the same sender, in its place; serves never coalesce', () => {
    let pending: readonly Notification[] = []
    for (const n of [at('ann', 'a'), { kind: 'users' } as const, at('bob', 'b'), serve(1), serve(2), at('ann', 'c'), { kind: 'users' } as const]) {
      pending = enqueueNotification(pending, n)
    }
    expect(pending).toEqual([at('ann', 'c'), { kind: 'users' }, at('bob', 'b'), serve(1), serve(2)])
  })

  it('withdrawing a serve removes that relay\'s serve only', () => {
    const pending: readonly Notification[] = [serve(1), { kind: 'story' }, serve(2), at('ann', 'a')]
    expect(withdrawServe(pending, 2)).toEqual([serve(1), { kind: 'story' }, at('ann', 'a')])
    expect(withdrawServe(pending, 3)).toEqual(pending)
  })
})
