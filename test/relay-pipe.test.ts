/**
 * runRelay without sockets: fake ports whose borrowed frames are plain async
 * iterables (not a connection's FrameQueue), so the relay's generic frame
 * source is exercised too.
 */
import { describe, expect, it } from 'vitest'
import { Uint8ArrayList } from 'uint8arraylist'
import { runRelay } from '../src/relay-pipe.ts'
import type { BorrowedFrames, FramePort } from '../actors/ports.ts'
import type { Frame, JsonValue } from '../protocol/frame.ts'
import type { RelayPipeEvent } from '../actors/giver.ts'

type Sent = JsonValue | { binary: number }

/** A port whose incoming frames the test feeds, and which records what the relay sends. */
class FakePort implements FramePort {
  readonly sent: Sent[] = []
  private readonly inbox: Frame[] = []
  private ended = false
  private wake: (() => void) | null = null
  released = false
  closed = false
  private index = 0
  onSend: (what: Sent) => void = () => {}

  feedJson (value: JsonValue): void { this.feed({ kind: 'json', value, index: this.index++ }) }
  feedBinary (n: number): void { this.feed({ kind: 'binary', bytes: new Uint8ArrayList(new Uint8Array(n)), index: this.index++ }) }
  end (): void { this.ended = true; this.wake?.() }
  private feed (f: Frame): void { this.inbox.push(f); this.wake?.() }

  sendJson (value: unknown): void { this.record(value as JsonValue) }
  drained (): Promise<void> { return Promise.resolve() }
  async sendBinary (_chunks: Iterable<Uint8Array>, byteLength: number): Promise<void> { this.record({ binary: byteLength }) }
  close (): void { this.closed = true }
  borrowFrames (): BorrowedFrames {
    const self = this
    return {
      async * [Symbol.asyncIterator] () {
        while (!self.released) {
          const f = self.inbox.shift()
          if (f !== undefined) { yield f; continue }
          if (self.ended) return
          await new Promise<void>((resolve) => { self.wake = resolve })
        }
      },
      release: () => { this.released = true; this.wake?.() }
    }
  }

  private record (what: Sent): void {
    this.sent.push(what)
    queueMicrotask(() => this.onSend(what))
  }
}

function relay (giver: FakePort, taker: FakePort, idleLimitMs = 5_000): { events: RelayPipeEvent[], done: ReturnType<typeof runRelay> } {
  const events: RelayPipeEvent[] = []
  return { events, done: runRelay({ folder: '/f', giverPort: giver, takerPort: taker, idleLimitMs }, (e) => events.push(e)) }
}

describe('runRelay over async-iterable frames', () => {
  it('relays a manifest, a getlist, two files and their answers', async () => {
    const g = new FakePort()
    const t = new FakePort()
    // The taker answers each file at its last byte; the giver pipelines.
    let expecting: { path: string, left: number } | null = null
    t.onSend = (what) => {
      if (typeof what === 'object' && what !== null && !Array.isArray(what) && 'binary' in what) {
        if (expecting !== null && (expecting.left -= what.binary as number) === 0) { t.feedJson(['ok', expecting.path]); expecting = null }
      } else if (Array.isArray(what) && what[0] === 'file') {
        expecting = { path: what[1] as string, left: what[2] as number }
      } else if (what !== null && typeof what === 'object' && !Array.isArray(what)) {
        t.feedJson(['a', 'b']) // the manifest: get both
      }
    }
    g.onSend = (what) => {
      if (Array.isArray(what) && what[0] === 'give') g.feedJson({ a: 'h1', b: 'h2' })
      if (Array.isArray(what) && what.length === 2 && what[0] === 'a') {
        g.feedJson(['file', 'a', 3]); g.feedBinary(2); g.feedBinary(1)
        g.feedJson(['file', 'b', 4]); g.feedBinary(4)
      }
    }
    const { events, done } = relay(g, t)
    const outcome = await done
    expect(outcome).toMatchObject({ files: 2, bytes: 7 })
    expect(outcome.failure).toBeUndefined()
    expect(t.sent).toEqual([{ a: 'h1', b: 'h2' }, ['file', 'a', 3], { binary: 2 }, { binary: 1 }, ['file', 'b', 4], { binary: 4 }])
    expect(g.sent).toEqual([['give', '/f'], ['a', 'b'], ['ok', 'a'], ['ok', 'b']])
    expect(events.map((e) => e.type)).toEqual(['pipe.manifest', 'pipe.getlist', 'pipe.file', 'pipe.file'])
    expect(g.released && t.released).toBe(true)
  })

  it('the giver leaving mid-file: relay_failed for the taker, no violation', async () => {
    const g = new FakePort()
    const t = new FakePort()
    t.onSend = (what) => { if (what !== null && typeof what === 'object' && !Array.isArray(what) && !('binary' in what)) t.feedJson(['a']) }
    g.onSend = (what) => {
      if (Array.isArray(what) && what[0] === 'give') g.feedJson({ a: 'h' })
      if (Array.isArray(what) && what[0] === 'a') { g.feedJson(['file', 'a', 10]); g.feedBinary(4); g.end() }
    }
    const outcome = await relay(g, t).done
    expect(outcome.failure).toMatch(/^giver disconnected with 6 bytes of a to go/)
    expect(outcome.takerError?.code).toBe('relay_failed')
    expect(outcome.giverViolation).toBeUndefined()
  })

  it('an idle giver before its manifest is a violation after the idle limit', async () => {
    const g = new FakePort()
    const t = new FakePort()
    const outcome = await relay(g, t, 100).done
    expect(outcome.giverViolation).toMatch(/giver idle for 0\.1 s instead of a manifest/)
    expect(g.released).toBe(false) // its frames are dropped until its session closes it
    expect(t.released).toBe(true)
  })
})
