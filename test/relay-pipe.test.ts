/**
 * The giver machine with the real relayPipe, without sockets: fake ports whose
 * borrowed frames are plain async iterables (not a connection's FrameQueue),
 * so the relay's generic frame source is exercised too.
 */
import { describe, expect, it } from 'vitest'
import { Uint8ArrayList } from 'uint8arraylist'
import { createActor, fromCallback, waitFor, type AnyActorRef, type EventObject } from 'xstate'
import { newRelayProgress, relayPipe, relayPipeWith, type RelayProgress } from '../src/relay-pipe.ts'
import type { BorrowedFrames, FramePort } from '../actors/ports.ts'
import type { BinaryPiece, Frame, JsonValue } from '../protocol/frame.ts'
import { giverMachine, type RelayOutcome } from '../actors/giver.ts'

type Sent = JsonValue | { binary: number }

/** A port whose incoming frames the test feeds, and which records what the relay sends. */
class FakePort implements FramePort {
  readonly sent: Sent[] = []
  private readonly inbox: Frame[] = []
  private ended = false
  private error: Error | null = null
  private wake: (() => void) | null = null
  released = false
  closed = false
  private index = 0
  onSend: (what: Sent) => void = () => {}
  /** Its socket never drains: a binary write waits until the port is closed. */
  neverDrains (): void {
    let unblock = (): void => {}
    this.sendBinary = async (_chunks, byteLength) => {
      this.sent.push({ binary: byteLength })
      await new Promise<void>((resolve) => { unblock = resolve })
    }
    this.close = () => { this.closed = true; unblock() }
  }
  /** Also does `then` on each send, after what is done already (a side's scripted answers). */
  alsoOnSend (then: (what: Sent) => void): void {
    const before = this.onSend
    this.onSend = (what) => { before(what); then(what) }
  }

  feedJson (value: JsonValue): void { this.feed({ kind: 'json', value, index: this.index++ }) }
  feedBinary (n: number): void { this.feed({ kind: 'binary', bytes: new Uint8ArrayList(new Uint8Array(n)), index: this.index++ }) }
  /** A piece of a binary frame of `frameLength` bytes, as a cut-through decoder gives it. */
  feedPiece (n: number, frameLength: number, first: boolean): void {
    const piece: BinaryPiece = { kind: 'binary', bytes: new Uint8ArrayList(new Uint8Array(n)), index: this.index, frameLength, first }
    if (n === frameLength || !first) this.index++
    this.feed(piece)
  }
  end (): void { this.ended = true; this.wake?.() }
  /** The connection breaks: its frames end with `error` (as a connection's do on a protocol violation). */
  fail (error: Error): void { this.error = error; this.end() }
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
          if (self.error !== null) throw self.error
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

/** An actor that only records what it is sent. */
function recorder (got: EventObject[]): AnyActorRef {
  return createActor(fromCallback<EventObject>(({ receive }) => { receive((e) => { got.push(e) }) })).start()
}

/** Runs a giver machine over the two fake ports; `events` are those the machine took, in order. */
function relay (giver: FakePort, taker: FakePort, idleLimitMs = 5_000, pipe = relayPipe): { events: string[], told: EventObject[], done: Promise<RelayOutcome> } {
  const events: string[] = []
  const told: EventObject[] = []
  const actor = createActor(giverMachine.provide({ actors: { relayPipe: pipe } }), {
    input: {
      relayId: 1, folder: '/f', giver: recorder(told), taker: recorder([]), giverPort: giver, takerPort: taker,
      takerActor: recorder([]), coordinator: recorder([]), idleLimitMs
    },
    inspect: (ev) => { if (ev.type === '@xstate.event' && ev.actorRef === actor) events.push(ev.event.type) }
  })
  actor.start()
  actor.send({ type: 'giver.turn' })
  const done = waitFor(actor, (s) => s.status === 'done', { timeout: 10_000 }).then((s) => s.context.outcome as RelayOutcome)
  return { events, told, done }
}

/**
 * T asks for `wanted` when the manifest comes, then answers each file at its last byte
 * (`["ok", path]`), and a missing one at once (`["failed", path, "missing"]`).
 */
function takerAnswersEachFileWhenWhole (t: FakePort, wanted: string[]): void {
  let expecting: { path: string, left: number } | null = null
  t.onSend = (what) => {
    if (typeof what === 'object' && what !== null && !Array.isArray(what) && 'binary' in what) {
      if (expecting !== null && (expecting.left -= what.binary as number) === 0) { t.feedJson(['ok', expecting.path]); expecting = null }
    } else if (Array.isArray(what) && what[0] === 'file') {
      expecting = { path: what[1] as string, left: what[2] as number }
    } else if (Array.isArray(what) && what[0] === 'missing') {
      t.feedJson(['failed', what[1] as string, 'missing'])
    } else if (what !== null && typeof what === 'object' && !Array.isArray(what)) {
      t.feedJson(wanted) // the manifest
    }
  }
}

describe('the giver machine and relayPipe over async-iterable frames', () => {
  it('relays a manifest, a getlist, two files and their answers; the machine hears of files, not chunks', async () => {
    const g = new FakePort()
    const t = new FakePort()
    // The taker answers each file at its last byte; the giver pipelines.
    takerAnswersEachFileWhenWhole(t, ['a', 'b'])
    g.onSend = (what) => {
      if (Array.isArray(what) && what[0] === 'give') g.feedJson({ a: 'h1', b: 'h2' })
      if (Array.isArray(what) && what.length === 2 && what[0] === 'a') {
        g.feedJson(['file', 'a', 3]); g.feedBinary(2); g.feedBinary(1)
        g.feedJson(['file', 'b', 4]); g.feedBinary(4)
      }
    }
    const before = performance.now()
    const { events, done } = relay(g, t)
    const outcome = await done
    const elapsed = performance.now() - before
    expect(outcome).toMatchObject({ files: 2, bytes: 7 })
    // The duration it reports (for the log and the status page) lies within the time this test saw pass.
    expect(outcome.durationMs).toBeGreaterThan(0)
    expect(outcome.durationMs).toBeLessThanOrEqual(elapsed)
    expect(outcome.failure).toBeUndefined()
    expect(t.sent).toEqual([{ a: 'h1', b: 'h2' }, ['file', 'a', 3], { binary: 2 }, { binary: 1 }, ['file', 'b', 4], { binary: 4 }])
    expect(g.sent).toEqual([['give', '/f'], ['a', 'b'], ['ok', 'a'], ['ok', 'b']])
    // From outside: the turn, two messages, then the files' boundaries and answers in batches (never a chunk), then the end.
    const seen = events.filter((e) => !e.startsWith('xstate.'))
    expect(seen.slice(0, 3)).toEqual(['giver.turn', 'giver.message', 'taker.message'])
    const batches = seen.slice(3, -1)
    expect(batches).toContain('files.through')
    expect(batches).toContain('files.answered')
    expect(batches.every((e) => e === 'files.through' || e === 'files.answered')).toBe(true)
    expect(batches.length).toBeLessThanOrEqual(4)
    expect(seen.at(-1)).toBe('files.ended')
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
    const { done, told } = relay(g, t, 100)
    const outcome = await done
    expect(told).toEqual([{ type: 'serve.ended', violation: outcome.giverViolation }])
    expect(outcome.giverViolation).toMatch(/giver idle for 0\.1 s instead of a manifest/)
    expect(g.released).toBe(false) // its frames are dropped until its session closes it
    expect(t.released).toBe(true)
  })

  it('counts its progress for the status page: files, headers, bytes announced and relayed (a missing file is through, not a header)', async () => {
    const g = new FakePort()
    const t = new FakePort()
    // The taker answers each file once it has it whole ("failed" for the missing one).
    takerAnswersEachFileWhenWhole(t, ['a', 'm', 'b'])
    g.onSend = (what) => {
      if (Array.isArray(what) && what[0] === 'give') g.feedJson({ a: 'h1', m: 'h2', b: 'h3' })
      if (Array.isArray(what) && what.length === 3 && what[0] === 'a') {
        g.feedJson(['file', 'a', 3]); g.feedBinary(2); g.feedBinary(1)
        g.feedJson(['missing', 'm', 'unreadable'])
        g.feedJson(['file', 'b', 4]); g.feedBinary(4)
      }
    }
    const progress: RelayProgress[] = []
    const pipe = relayPipeWith(() => { const p = newRelayProgress(); progress.push(p); return p })
    const outcome = await relay(g, t, 5_000, pipe).done
    expect(outcome.failure).toBeUndefined()
    expect(outcome).toMatchObject({ files: 2, bytes: 7 })
    expect(progress).toEqual([{ filesTotal: 3, filesDone: 3, headers: 2, bytesAnnounced: 7, bytesDone: 7 }])
    expect(g.sent).toEqual([['give', '/f'], ['a', 'm', 'b'], ['ok', 'a'], ['failed', 'm', 'missing'], ['ok', 'b']])
    expect(newRelayProgress()).toEqual({ filesTotal: null, filesDone: 0, headers: 0, bytesAnnounced: 0, bytesDone: 0 })
  })

  /** G offers `files` (each `size` bytes) and T asks for them all; what G and T then do is up to the test. */
  function offer (g: FakePort, t: FakePort, files: string[]): void {
    t.onSend = (what) => { if (what !== null && typeof what === 'object' && !Array.isArray(what) && !('binary' in what)) t.feedJson(files) }
    g.onSend = (what) => { if (Array.isArray(what) && what[0] === 'give') g.feedJson(Object.fromEntries(files.map((f) => [f, 'h']))) }
  }

  it('a giver silent mid-file is dropped after the idle limit, named with the bytes still to come', async () => {
    const g = new FakePort()
    const t = new FakePort()
    offer(g, t, ['a'])
    g.alsoOnSend((what) => { if (Array.isArray(what) && what[0] === 'a') { g.feedJson(['file', 'a', 10]); g.feedBinary(4) } })
    const outcome = await relay(g, t, 100).done
    expect(outcome.failure).toBe('giver idle for 0.1 s with 6 bytes of a to go')
    expect(outcome.giverViolation).toBe(outcome.failure)
    expect(outcome.takerError?.code).toBe('relay_failed')
    expect(t.sent).toEqual([{ a: 'h' }, ['file', 'a', 10], { binary: 4 }])
  })

  it('a taker that never answers for a file it has whole is dropped after the idle limit; the giver gets "failed" for every file', async () => {
    const g = new FakePort()
    const t = new FakePort()
    offer(g, t, ['a', 'b'])
    g.alsoOnSend((what) => {
      if (Array.isArray(what) && what[0] === 'a') { g.feedJson(['file', 'a', 2]); g.feedBinary(2); g.feedJson(['file', 'b', 1]); g.feedBinary(1) }
    })
    const outcome = await relay(g, t, 100).done
    expect(outcome.takerViolation).toBe('taker idle for 0.1 s with its answer for a owed')
    expect(outcome.giverViolation).toBeUndefined()
    expect(g.sent.slice(2)).toEqual([['failed', 'a', 'taker disconnected'], ['failed', 'b', 'taker disconnected']])
  })

  it('a taker that reads nothing is dropped after the idle limit (its port closed); the giver finishes with "failed"', async () => {
    const g = new FakePort()
    const t = new FakePort()
    t.neverDrains()
    offer(g, t, ['a', 'b'])
    g.alsoOnSend((what) => {
      if (Array.isArray(what) && what[0] === 'a') { g.feedJson(['file', 'a', 2]); g.feedBinary(2); g.feedJson(['file', 'b', 1]); g.feedBinary(1) }
    })
    const outcome = await relay(g, t, 100).done
    expect(outcome.takerViolation).toBe('taker read nothing for 0.1 s')
    expect(t.closed).toBe(true)
    expect(t.sent).toEqual([{ a: 'h', b: 'h' }, ['file', 'a', 2], { binary: 2 }]) // nothing more once it is dropped
    expect(g.sent.slice(2)).toEqual([['failed', 'a', 'taker disconnected'], ['failed', 'b', 'taker disconnected']])
  })

  it('a giver whose connection breaks before its manifest: the violation carries the break\'s detail', async () => {
    const g = new FakePort()
    const t = new FakePort()
    g.onSend = (what) => { if (Array.isArray(what) && what[0] === 'give') g.fail(new Error('frame of 2 GiB refused')) }
    const outcome = await relay(g, t).done
    expect(outcome.giverViolation).toBe('giver broke the protocol instead of a manifest: frame of 2 GiB refused')
    expect(outcome.takerError?.code).toBe('relay_failed')
  })

  it('a giver whose manifest is bad breaks the protocol in its manifest', async () => {
    const g = new FakePort()
    const t = new FakePort()
    g.onSend = (what) => { if (Array.isArray(what) && what[0] === 'give') g.feedJson(['not', 'a', 'manifest']) }
    const outcome = await relay(g, t).done
    expect(outcome.giverViolation).toMatch(/^giver broke the protocol in its manifest: ./)
    expect(t.sent).toEqual([])
  })

  it('a giver that sends bytes instead of its manifest breaks the protocol', async () => {
    const g = new FakePort()
    const t = new FakePort()
    g.onSend = (what) => { if (Array.isArray(what) && what[0] === 'give') g.feedBinary(3) }
    const outcome = await relay(g, t).done
    expect(outcome.giverViolation).toBe('giver broke the protocol instead of a manifest: a binary frame where a message was due')
  })

  it('a taker silent after the manifest is dropped after the idle limit', async () => {
    const g = new FakePort()
    const t = new FakePort()
    g.onSend = (what) => { if (Array.isArray(what) && what[0] === 'give') g.feedJson({ a: 'h' }) }
    const outcome = await relay(g, t, 100).done
    expect(outcome.takerViolation).toBe('taker idle for 0.1 s before its getlist')
    expect(outcome.giverViolation).toBeUndefined()
  })

  it('a taker gone before its getlist is a failure, not a violation; one whose connection breaks there is a violation with the break\'s detail', async () => {
    const run = async (takerDoes: (t: FakePort) => void): Promise<RelayOutcome> => {
      const g = new FakePort()
      const t = new FakePort()
      g.onSend = (what) => { if (Array.isArray(what) && what[0] === 'give') g.feedJson({ a: 'h' }) }
      t.onSend = (what) => { if (what !== null && typeof what === 'object' && !Array.isArray(what)) takerDoes(t) }
      const outcome = await relay(g, t).done
      expect(g.sent).toEqual([['give', '/f'], []])
      return outcome
    }
    const gone = await run((t) => t.end())
    expect(gone.failure).toBe('taker disconnected before its getlist')
    expect(gone.takerViolation).toBeUndefined()
    expect(gone.giverViolation).toBeUndefined()
    const broken = await run((t) => t.fail(new Error('frame of 2 GiB refused')))
    expect(broken.takerViolation).toBe('taker broke the protocol before its getlist: frame of 2 GiB refused')
    expect(broken.failure).toBe(broken.takerViolation)
    const bytes = await run((t) => t.feedBinary(3))
    expect(bytes.takerViolation).toBe('taker sent bytes instead of a getlist')
  })

  it('the giver machine with no relay pipe wired ends the relay at once, never hangs', async () => {
    const g = new FakePort()
    const t = new FakePort()
    const outcome = await relay(g, t, 5_000, giverMachine.implementations.actors.relayPipe as typeof relayPipe).done
    expect(outcome.failure).toBe('giver broke the protocol instead of a manifest: the server has no relay pipe')
    expect(outcome.takerError?.code).toBe('relay_failed')
  })

  it('a giver machine stopped mid-relay (no exit actions run) still gives both sides\' frames back to their sessions', async () => {
    const g = new FakePort()
    const t = new FakePort()
    const actor = createActor(giverMachine.provide({ actors: { relayPipe } }), {
      input: {
        relayId: 1, folder: '/f', giver: recorder([]), taker: recorder([]), giverPort: g, takerPort: t,
        takerActor: recorder([]), coordinator: recorder([]), idleLimitMs: 5_000
      }
    })
    actor.start()
    actor.send({ type: 'giver.turn' })
    await waitFor(actor, (s) => s.matches({ relaying: 'asking' }))
    expect(g.sent).toEqual([['give', '/f']])
    actor.stop() // as when the server stops: XState runs no exit action, so no pipe.close is sent
    for (let i = 0; i < 100 && !(g.released && t.released); i++) await new Promise((resolve) => setImmediate(resolve))
    expect(g.released).toBe(true)
    expect(t.released).toBe(true)
  })

  it('a giver that sends faster than the relay reads is paused and resumed (backpressure on its frames), nothing lost', async () => {
    const g = new FakePort()
    const t = new FakePort()
    const MiB = 1024 * 1024
    offer(g, t, ['big'])
    g.alsoOnSend((what) => {
      if (Array.isArray(what) && what[0] === 'big') { g.feedJson(['file', 'big', 2 * MiB + 1]); g.feedBinary(MiB); g.feedBinary(MiB); g.feedBinary(1) }
    })
    let got = 0
    t.alsoOnSend((what) => {
      if (typeof what === 'object' && what !== null && 'binary' in what && (got += what.binary as number) === 2 * MiB + 1) t.feedJson(['ok', 'big'])
    })
    const outcome = await relay(g, t).done
    expect(outcome.failure).toBeUndefined()
    expect(outcome).toMatchObject({ files: 1, bytes: 2 * MiB + 1 })
  })

  it('each side\'s idle clock runs only while the relay waits on that side: waits each under the limit add up past it, and the relay succeeds', async () => {
    // Limit 800 ms; the giver, then the taker, then the taker again each take 500 ms (1.5 s in all).
    const g = new FakePort()
    const t = new FakePort()
    const later = (f: () => void): void => { setTimeout(f, 500) }
    g.onSend = (what) => {
      if (Array.isArray(what) && what[0] === 'give') later(() => g.feedJson({ a: 'h' }))
      if (Array.isArray(what) && what[0] === 'a') { g.feedJson(['file', 'a', 1]); g.feedBinary(1) }
    }
    t.onSend = (what) => {
      if (what !== null && typeof what === 'object' && !Array.isArray(what) && !('binary' in what)) later(() => t.feedJson(['a']))
      if (what !== null && typeof what === 'object' && 'binary' in what) later(() => t.feedJson(['ok', 'a']))
    }
    const outcome = await relay(g, t, 800).done
    expect(outcome.failure).toBeUndefined()
    expect(g.sent).toEqual([['give', '/f'], ['a'], ['ok', 'a']])
  })

  it('a side\'s idle clock stops once a read ends: the giver\'s two waits, each under the limit, with the taker\'s getlist between them, add up past it, and the relay succeeds', async () => {
    // Limit 1 s; G answers the give 600 ms after it, T sends its getlist at once, G sends the file 600 ms after that.
    // A giver's clock left running after its manifest was read would reach the limit during its wait for the header.
    const g = new FakePort()
    const t = new FakePort()
    g.onSend = (what) => {
      if (Array.isArray(what) && what[0] === 'give') setTimeout(() => g.feedJson({ a: 'h' }), 600)
      if (Array.isArray(what) && what[0] === 'a') setTimeout(() => { g.feedJson(['file', 'a', 1]); g.feedBinary(1) }, 600)
    }
    takerAnswersEachFileWhenWhole(t, ['a'])
    const outcome = await relay(g, t, 1_000).done
    expect(outcome.failure).toBeUndefined()
    expect(g.sent).toEqual([['give', '/f'], ['a'], ['ok', 'a']])
  })

  it('a giver gone, or sending bytes, where a file header is due; a taker answering before the header was sent', async () => {
    const run = async (giverDoes: (g: FakePort) => void, takerAnswersEarly = false): Promise<RelayOutcome> => {
      const g = new FakePort()
      const t = new FakePort()
      offer(g, t, ['a'])
      g.alsoOnSend((what) => { if (Array.isArray(what) && what[0] === 'a') giverDoes(g) })
      if (takerAnswersEarly) {
        t.alsoOnSend((what) => { if (what !== null && typeof what === 'object' && !Array.isArray(what) && !('binary' in what)) t.feedJson(['ok', 'a']) })
      }
      return await relay(g, t, 200).done
    }
    expect((await run((g) => g.end())).failure).toBe('giver disconnected before the header of a')
    expect((await run((g) => g.feedBinary(1))).giverViolation).toBe('giver broke the protocol before the header of a: a binary frame where a message was due')
    // G then sends nothing: it is idle too, and the outcome names both.
    const both = await run(() => {}, true)
    expect(both.takerViolation).toBe('taker answered for a before it was sent')
    expect(both.giverViolation).toBe('giver idle for 0.2 s before the header of a')
  })

  it('a taker whose connection breaks while it owes an answer: the violation carries the break\'s detail', async () => {
    const g = new FakePort()
    const t = new FakePort()
    offer(g, t, ['a'])
    g.alsoOnSend((what) => { if (Array.isArray(what) && what[0] === 'a') { g.feedJson(['file', 'a', 1]); g.feedBinary(1) } })
    t.alsoOnSend((what) => { if (what !== null && typeof what === 'object' && 'binary' in what) t.fail(new Error('frame too big')) })
    const outcome = await relay(g, t).done
    expect(outcome.takerViolation).toBe('taker broke the protocol: frame too big')
    expect(g.sent.at(-1)).toEqual(['failed', 'a', 'taker disconnected'])
  })

  it('a taker dropped for a wrong answer while its socket does not drain keeps that reason; its port is closed at the idle limit', async () => {
    const g = new FakePort()
    const t = new FakePort()
    t.neverDrains()
    offer(g, t, ['a'])
    g.alsoOnSend((what) => { if (Array.isArray(what) && what[0] === 'a') { g.feedJson(['file', 'a', 2]); g.feedBinary(2) } })
    t.alsoOnSend((what) => { if (Array.isArray(what) && what[0] === 'file') t.feedJson(['ok', 'not-a']) })
    const outcome = await relay(g, t, 100).done
    // Dropped once, for its answer: the drain limit that closes its port later does not rename the violation.
    expect(outcome.takerViolation).toBe('expected ["ok", "a"] or ["failed", "a", reason], got an array of 2')
    expect(t.closed).toBe(true)
    expect(g.sent.slice(2)).toEqual([['failed', 'a', 'taker disconnected']])
  })

  it('after the giver failed, the taker\'s answer it still owed is read but not relayed to the giver', async () => {
    const g = new FakePort()
    const t = new FakePort()
    offer(g, t, ['a', 'b'])
    g.alsoOnSend((what) => {
      if (Array.isArray(what) && what[0] === 'a') { g.feedJson(['file', 'a', 1]); g.feedBinary(1); g.feedJson(['file', 'b', 10]); g.feedBinary(4) }
    })
    let got = 0
    t.alsoOnSend((what) => {
      // The last bytes G sends reach T: G's connection ends, and only then T answers for a (it owes that answer).
      if (what !== null && typeof what === 'object' && 'binary' in what && ++got === 2) {
        g.end()
        setTimeout(() => t.feedJson(['ok', 'a']), 50)
      }
    })
    const outcome = await relay(g, t).done
    expect(outcome.failure).toBe('giver disconnected with 6 bytes of b to go')
    expect(outcome.takerViolation).toBeUndefined()
    expect(g.sent).toEqual([['give', '/f'], ['a', 'b']])
    expect(t.sent).toEqual([{ a: 'h', b: 'h' }, ['file', 'a', 1], { binary: 1 }, ['file', 'b', 10], { binary: 4 }])
  })

  it('a taker that sends bytes where an answer is due breaks the protocol; the giver gets "failed"', async () => {
    const g = new FakePort()
    const t = new FakePort()
    offer(g, t, ['a'])
    g.alsoOnSend((what) => { if (Array.isArray(what) && what[0] === 'a') { g.feedJson(['file', 'a', 1]); g.feedBinary(1) } })
    t.alsoOnSend((what) => { if (what !== null && typeof what === 'object' && 'binary' in what) t.feedBinary(2) })
    const outcome = await relay(g, t).done
    expect(outcome.takerViolation).toBe('taker sent bytes instead of an answer for a')
    expect(g.sent.at(-1)).toEqual(['failed', 'a', 'taker disconnected'])
  })

  it('an exception inside the pipe (a bug) ends the relay as failed for both, with the error in the log line, never a hang', async () => {
    const g = new FakePort()
    const t = new FakePort()
    takerAnswersEachFileWhenWhole(t, ['a'])
    g.onSend = (what) => {
      if (Array.isArray(what) && what[0] === 'give') g.feedJson({ a: 'h' })
      if (Array.isArray(what) && what[0] === 'a') { g.feedJson(['file', 'a', 1]); g.feedBinary(1) }
    }
    const sendJson = g.sendJson.bind(g)
    g.sendJson = (value) => {
      if (Array.isArray(value) && value[0] === 'ok') throw new Error('port broken by a bug')
      sendJson(value)
    }
    const outcome = await relay(g, t).done
    expect(outcome.failure).toBe('relay crashed: port broken by a bug')
    expect(outcome.takerError).toEqual({ code: 'relay_failed', detail: 'internal relay error' })
  })

  it('a giver\'s violation mid-relay names the file: a header for another file, a JSON frame where bytes are due, bytes past the size', async () => {
    const run = async (giverDoes: (g: FakePort) => void): Promise<{ outcome: RelayOutcome, t: FakePort }> => {
      const g = new FakePort()
      const t = new FakePort()
      offer(g, t, ['a'])
      g.alsoOnSend((what) => { if (Array.isArray(what) && what[0] === 'a') giverDoes(g) })
      return { outcome: await relay(g, t, 200).done, t }
    }
    expect((await run((g) => g.feedJson(['file', 'b', 1]))).outcome.giverViolation).toMatch(/^giver broke the protocol at a: ./)
    expect((await run((g) => { g.feedJson(['file', 'a', 2]); g.feedJson(['ok']) })).outcome.giverViolation)
      .toBe('giver broke the protocol in a: a JSON frame where 2 bytes of a were expected')
    const over = await run((g) => { g.feedJson(['file', 'a', 2]); g.feedBinary(3) })
    expect(over.outcome.giverViolation).toBe('giver broke the protocol in a: binary frames of a exceed the 2 bytes its header announced')
    expect(over.t.sent).toEqual([{ a: 'h' }, ['file', 'a', 2]])
  })

  it('a binary frame in pieces: refused from its first piece when its whole size overruns the file (nothing of it relayed); its later pieces count their own bytes', async () => {
    const g = new FakePort()
    const t = new FakePort()
    offer(g, t, ['a'])
    g.alsoOnSend((what) => { if (Array.isArray(what) && what[0] === 'a') { g.feedJson(['file', 'a', 4]); g.feedPiece(2, 10, true) } })
    const outcome = await relay(g, t, 200).done
    expect(outcome.giverViolation).toBe('giver broke the protocol in a: binary frames of a exceed the 4 bytes its header announced')
    expect(t.sent).toEqual([{ a: 'h' }, ['file', 'a', 4]])

    const g2 = new FakePort()
    const t2 = new FakePort()
    takerAnswersEachFileWhenWhole(t2, ['a'])
    g2.onSend = (what) => {
      if (Array.isArray(what) && what[0] === 'give') g2.feedJson({ a: 'h' })
      if (Array.isArray(what) && what[0] === 'a') { g2.feedJson(['file', 'a', 4]); g2.feedPiece(2, 4, true); g2.feedPiece(2, 4, false) }
    }
    const whole = await relay(g2, t2, 200).done
    expect(whole.failure).toBeUndefined()
    expect(whole).toMatchObject({ files: 1, bytes: 4 })
  })

  it('an ack-waiting giver slow between files, and a taker slow to drain, each within the limit: the relay succeeds', async () => {
    // Limit 1 s. T answers each file 600 ms after it; G, waiting for each answer, sends the next file
    // 500 ms after it (its clock runs for those 500 ms only, not while T owes its answer); T's socket
    // then takes 300 ms to drain the second file.
    const g = new FakePort()
    const t = new FakePort()
    const binary = t.sendBinary.bind(t)
    let drained = 0
    t.sendBinary = async (chunks, n) => { await binary(chunks, n); if (drained++ === 1) await new Promise((resolve) => setTimeout(resolve, 300)) }
    offer(g, t, ['a', 'b'])
    g.alsoOnSend((what) => {
      if (Array.isArray(what) && what[0] === 'a') { g.feedJson(['file', 'a', 1]); g.feedBinary(1) }
      if (Array.isArray(what) && what[0] === 'ok' && what[1] === 'a') setTimeout(() => { g.feedJson(['file', 'b', 1]); g.feedBinary(1) }, 500)
    })
    let files = 0
    t.alsoOnSend((what) => {
      if (what !== null && typeof what === 'object' && 'binary' in what) {
        const path = files++ === 0 ? 'a' : 'b'
        setTimeout(() => t.feedJson(['ok', path]), 600)
      }
    })
    const outcome = await relay(g, t, 1_000).done
    expect(outcome.failure).toBeUndefined()
    expect(g.sent.slice(2)).toEqual([['ok', 'a'], ['ok', 'b']])
    // The files came through in two reports (500 ms apart): both counted.
    expect(outcome).toMatchObject({ files: 2, bytes: 2 })
  })
})
