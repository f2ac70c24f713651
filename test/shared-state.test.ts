import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  appendChat, bytesOfChat, capChat, dropAssetsOf, INITIAL_ANALYTICS, INITIAL_CHAT, INITIAL_STORY, mergeAnalytics, mergeAssets, mergeStory, wouldDeadlock
} from '../actors/shared-state.ts'
import { SERVER_CHAT_NAME, type ChatLine } from '../protocol/messages.ts'

describe('the merge rules (§3), as pure functions', () => {
  it('story: only a strictly newer one wins, owned by its submitter; otherwise the same object', () => {
    const won = mergeStory(INITIAL_STORY, { story: { a: 1 }, timestamp: '2024/01/01-00:00:00' }, 'u:1')
    expect(won).toEqual({ owner: 'u:1', value: { a: 1 }, timestamp: '2024/01/01-00:00:00' })
    expect(mergeStory(won, { story: { b: 2 }, timestamp: '2024/01/01-00:00:00' }, 'u:2')).toBe(won)
  })

  it('assets: the unchanged index is the same object; "__proto__" stays an entry', () => {
    const current = { '/a': ['x', '2024/01/01-00:00:00'] as const }
    expect(mergeAssets(current, { '/a': ['y', '2023/01/01-00:00:00'] }, 'u:2')).toEqual({ merged: current, changed: false })
    const proto = JSON.parse('{"__proto__": ["x", "2024/01/01-00:00:00"]}') as Record<string, readonly [string, string]>
    const { merged } = mergeAssets({}, proto, 'u:3')
    expect(Object.keys(merged)).toEqual(['__proto__'])
    expect(dropAssetsOf(merged, 'u:3')).toEqual({ assets: {}, changed: true })
  })

  it('would_deadlock follows chains of waits, and stops on a cycle that does not involve the taker', () => {
    const waits = new Map([['b', 'c'], ['c', 'a'], ['x', 'y'], ['y', 'x']])
    expect(wouldDeadlock(waits, 'a', 'b')).toBe(true)
    expect(wouldDeadlock(waits, 'a', 'c')).toBe(true)
    expect(wouldDeadlock(waits, 'z', 'x')).toBe(false)
    expect(wouldDeadlock(new Map(), 'a', 'b')).toBe(false)
  })
})

describe('chat cap', () => {
  it('keeps the newest `limit` messages, and the server line first, whatever is appended', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.string(), { maxLength: 60 }), (limit, texts) => {
      let chat: readonly ChatLine[] = INITIAL_CHAT
      for (const t of texts) chat = appendChat(chat, ['u', t], limit)
      expect(chat[0]).toEqual(INITIAL_CHAT[0])
      expect(chat.slice(1).map(([, t]) => t)).toEqual(texts.slice(Math.max(0, texts.length - limit)))
    }))
  })

  it('trims a restored history the same way; a history without the server line is just trimmed', () => {
    const lines: ChatLine[] = Array.from({ length: 30 }, (_, i) => ['ann', String(i)])
    expect(capChat([...INITIAL_CHAT, ...lines], 10)).toEqual([...INITIAL_CHAT, ...lines.slice(20)])
    expect(capChat(lines, 10)).toEqual(lines.slice(20))
    expect(capChat(lines, 30)).toBe(lines)
  })
})

describe('chat cap in bytes (§4 rev 2)', () => {
  const json = (chat: readonly ChatLine[]): number => Buffer.byteLength(JSON.stringify(chat), 'utf8')

  it('keeps the history within the byte cap as JSON, the server\'s first line kept, oldest dropped', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.string({ maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 60 })), { maxLength: 40 }),
      fc.integer({ min: 40, max: 800 }),
      fc.integer({ min: 1, max: 50 }),
      (lines, maxBytes, limit) => {
        let chat: readonly ChatLine[] = INITIAL_CHAT
        const all: ChatLine[] = []
        for (const line of lines) {
          chat = appendChat(chat, line, limit, maxBytes)
          all.push(line)
          // The newest lines that fit, after the server's first line.
          expect(chat[0]).toEqual(INITIAL_CHAT[0])
          expect(json(chat)).toBeLessThanOrEqual(Math.max(maxBytes, json(INITIAL_CHAT)))
          expect(chat.length - 1).toBeLessThanOrEqual(limit)
          expect(chat.slice(1)).toEqual(all.slice(all.length - (chat.length - 1)))
          // Maximal: one more older line would break a cap.
          const older = all[all.length - chat.length]
          if (older !== undefined && chat.length - 1 < limit) expect(json([INITIAL_CHAT[0], older, ...chat.slice(1)])).toBeGreaterThan(maxBytes)
        }
      }
    ))
  })

  it('counts UTF-8 bytes and JSON escapes, not characters', () => {
    const line: ChatLine = ['u', 'é\n"'.repeat(10)] // 10 × (2 + 2 + 2) bytes of text in JSON
    const chat = appendChat(INITIAL_CHAT, line, 100, json([INITIAL_CHAT[0], line]))
    expect(chat).toEqual([INITIAL_CHAT[0], line])
    expect(appendChat(INITIAL_CHAT, line, 100, json([INITIAL_CHAT[0], line]) - 1)).toEqual(INITIAL_CHAT)
  })
})

describe('the rules mutation testing found unpinned', () => {
  const json = (chat: readonly ChatLine[]): number => Buffer.byteLength(JSON.stringify(chat), 'utf8')

  it('analytics: only a strictly newer one wins; otherwise the same object', () => {
    const won = mergeAnalytics(INITIAL_ANALYTICS, { analytics: { h: 1 }, timestamp: '2024/01/01-00:00:00' })
    expect(won).toEqual({ value: { h: 1 }, timestamp: '2024/01/01-00:00:00' })
    expect(mergeAnalytics(won, { analytics: { h: 2 }, timestamp: '2024/01/01-00:00:00' })).toBe(won)
  })

  it('assets: a newer entry is a change; a leaver\'s entries go and the others stay; a user with none changes nothing', () => {
    const first = mergeAssets({}, { '/a': ['x', '2024/01/01-00:00:00'], '/b': ['x', '2024/01/01-00:00:00'] }, 'ann')
    expect(first.changed).toBe(true)
    const both = mergeAssets(first.merged, { '/b': ['x', '2024/01/01-00:00:01'] }, 'bob')
    expect(both).toEqual({ merged: { '/a': ['ann', '2024/01/01-00:00:00'], '/b': ['bob', '2024/01/01-00:00:01'] }, changed: true })
    expect(dropAssetsOf(both.merged, 'ann')).toEqual({ assets: { '/b': ['bob', '2024/01/01-00:00:01'] }, changed: true })
    const none = dropAssetsOf(both.merged, 'carl')
    expect(none.changed).toBe(false)
    expect(none.assets).toBe(both.merged)
  })

  it('only the exact server first line is kept first; a look-alike counts as a message', () => {
    const lines: ChatLine[] = [['ann', '1'], ['ann', '2']]
    expect(capChat([[SERVER_CHAT_NAME, 'hello'], ...lines], 2)).toEqual(lines)
    expect(capChat([['ann', INITIAL_CHAT[0][1]], ...lines], 2)).toEqual(lines)
    expect(capChat([...INITIAL_CHAT, ...lines], 1)).toEqual([...INITIAL_CHAT, lines[1]])
  })

  it('the byte count of any history is its JSON\'s, restored or appended (from empty too), and capping keeps the newest that fit', () => {
    const line = fc.tuple(fc.string({ maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 30 }))
    fc.assert(fc.property(fc.boolean(), fc.array(line, { maxLength: 20 }), fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 25 }), (server, lines, maxBytes, limit) => {
      const restored: readonly ChatLine[] = server ? [...INITIAL_CHAT, ...lines] : [...lines]
      expect(bytesOfChat(restored)).toBe(json(restored))
      const capped = capChat(restored, limit, maxBytes)
      expect(bytesOfChat(capped)).toBe(json(capped))
      const pinned = server ? 1 : 0
      expect(capped.slice(0, pinned)).toEqual(restored.slice(0, pinned))
      const kept = capped.length - pinned
      expect(capped.slice(pinned)).toEqual(restored.slice(restored.length - kept))
      expect(kept).toBeLessThanOrEqual(limit)
      if (kept > 0) expect(json(capped)).toBeLessThanOrEqual(maxBytes)
      // Maximal: one more older line would break a cap.
      if (kept < Math.min(limit, restored.length - pinned)) expect(json([...restored.slice(0, pinned), restored[restored.length - kept - 1], ...capped.slice(pinned)])).toBeGreaterThan(maxBytes)
      let appended: readonly ChatLine[] = []
      for (const l of lines) appended = appendChat(appended, l, 100)
      expect(bytesOfChat(appended)).toBe(json(appended))
    }), { numRuns: 300 })
  })
})
