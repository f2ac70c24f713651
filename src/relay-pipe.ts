import { fromCallback, type EventObject } from 'xstate'
import { isBinaryPiece, type Frame } from '../protocol/frame.ts'
import { validateFileAck, validateFileHeader, validateGetlist, validateManifest } from '../protocol/messages.ts'
import type { RelayOutcome, RelayPipeEvent, RelayPipeInput } from '../actors/giver.ts'
import type { BorrowedFrames } from '../actors/ports.ts'
import { FrameQueue } from './frame-queue.ts'

/** What reading the next frame of one side gave. */
type Next =
  | { readonly kind: 'frame', readonly frame: Frame }
  /** The connection ended. */
  | { readonly kind: 'gone' }
  /** The connection ended with a protocol violation. */
  | { readonly kind: 'broken', readonly detail: string }
  /** The side kept the relay waiting for the idle limit. */
  | { readonly kind: 'idle' }
  /** The relay stopped reading this side. */
  | { readonly kind: 'stopped' }

/** A borrowed frame stream, pulled: what is there now without a tick, a promise only to wait. */
interface PullSource {
  shift: () => Frame | undefined
  readonly done: boolean
  readonly failure: Error | null
  wait: () => Promise<void>
  release: () => void
  discard: () => void
}

/** Any `BorrowedFrames` as a PullSource (a connection's FrameQueue already is one). */
function pullSource (frames: BorrowedFrames): PullSource {
  return frames instanceof FrameQueue ? frames : new IteratorSource(frames)
}

/** For a BorrowedFrames that is only an async iterable: reads one frame ahead. */
class IteratorSource implements PullSource {
  private readonly iterator: AsyncIterator<Frame>
  private readonly buffered: Frame[] = []
  private ended = false
  private reading = false
  private dropping = false
  failure: Error | null = null
  private wake: (() => void) | null = null

  constructor (private readonly frames: BorrowedFrames) {
    this.iterator = frames[Symbol.asyncIterator]()
    this.readAhead()
  }

  get done (): boolean { return this.ended && this.buffered.length === 0 }

  shift (): Frame | undefined {
    const frame = this.buffered.shift()
    if (frame !== undefined) this.readAhead()
    return frame
  }

  wait (): Promise<void> {
    if (this.buffered.length > 0 || this.ended) return Promise.resolve()
    return new Promise((resolve) => { this.wake = resolve })
  }

  release (): void { this.ended = true; this.frames.release() }

  discard (): void { this.dropping = true; this.buffered.length = 0; this.readAhead() }

  private readAhead (): void {
    if (this.reading || this.ended || (this.buffered.length > 0 && !this.dropping)) return
    this.reading = true
    this.iterator.next().then((r) => {
      this.reading = false
      if (r.done === true) this.ended = true
      else if (!this.dropping) this.buffered.push(r.value)
      this.wakeNow()
      this.readAhead()
    }, (err: Error) => {
      this.reading = false
      this.ended = true
      this.failure = err
      this.wakeNow()
    })
  }

  private wakeNow (): void { const w = this.wake; this.wake = null; w?.() }
}

/** One side of a relay: its frames, and since when the relay waits on it (for the idle limit). */
class Side {
  /** performance.now() since the relay waits on this side, or null. */
  clock: number | null = null
  private settle: ((n: Next | null) => void) | null = null

  constructor (readonly source: PullSource) {}

  /** The next frame if it is already there (no promise, no tick), or the end. */
  poll (): Next | undefined {
    const frame = this.source.shift()
    if (frame !== undefined) return { kind: 'frame', frame }
    if (this.source.done) {
      const failure = this.source.failure
      return failure === null ? { kind: 'gone' } : { kind: 'broken', detail: failure.message }
    }
    return undefined
  }

  /** The next frame, or why there is none. `interrupt` ends the wait without taking a frame. */
  async next (): Promise<Next> {
    while (true) {
      const n = this.poll()
      if (n !== undefined) return n
      const interrupted = await new Promise<Next | null>((resolve) => {
        this.settle = resolve
        void this.source.wait().then(() => {
          if (this.settle === resolve) { this.settle = null; resolve(null) }
        })
      })
      if (interrupted !== null) return interrupted
    }
  }

  /** Ends a pending `next()` with `n`; no frame is lost. */
  interrupt (n: Next): void {
    const settle = this.settle
    this.settle = null
    settle?.(n)
  }
}

type Failure = Omit<RelayOutcome, 'files' | 'bytes' | 'durationMs'>

/**
 * The bytes of one §5 relay, outside the state machines: `give`, manifest,
 * getlist, then files giver → taker and answers taker → giver at the same
 * time, each direction with backpressure. Checks everything it relays and
 * reports decisions (not chunks) to the giver actor.
 *
 * Idle limit: the relay waits on one side at a time and only that side's
 * clock runs — the giver's while the relay needs its next frame and the
 * taker owes no answer (an ack-waiting giver is not idle while the taker
 * checks a file), the taker's while it owes an answer for a file it has
 * whole, or does not read what it is sent. One watchdog timer per relay.
 *
 * A side that breaks the relay keeps its frames borrowed and dropped until
 * its session closes it; a taker whose giver failed is first let answer for
 * the files it already has, so its turn stays in step.
 */
export async function runRelay (input: RelayPipeInput, report: (e: RelayPipeEvent) => void): Promise<RelayOutcome> {
  const { folder, giverPort, takerPort, idleLimitMs } = input
  const started = performance.now()
  const giver = new Side(pullSource(giverPort.borrowFrames()))
  const taker = new Side(pullSource(takerPort.borrowFrames()))
  const idleFor = `${idleLimitMs / 1000} s`
  let files = 0
  let bytes = 0
  /** The side broke §5 and is being closed: its frames are dropped, not given back to its session. */
  let giverBroke = false
  let takerBroke = false
  /** Extra watchdog checks of the streaming phase. */
  let onTick: (now: number) => void = () => {}

  const watchdog = setInterval(() => {
    const now = performance.now()
    for (const side of [giver, taker]) {
      if (side.clock !== null && now - side.clock >= idleLimitMs) {
        side.clock = null
        side.interrupt({ kind: 'idle' })
      }
    }
    onTick(now)
  }, Math.max(5, Math.min(1_000, idleLimitMs / 10)))
  watchdog.unref()

  const end = (o: Failure = {}): RelayOutcome => ({ files, bytes, durationMs: performance.now() - started, ...o })
  const giverFailed = (n: Next, during: string): Failure => {
    const detail = n.kind === 'gone'
      ? `giver disconnected ${during}`
      : n.kind === 'idle' ? `giver idle for ${idleFor} ${during}` : `giver broke the protocol ${during}: ${n.kind === 'broken' ? n.detail : 'unexpected frame'}`
    return { failure: detail, takerError: { code: 'relay_failed', detail }, giverViolation: n.kind === 'gone' ? undefined : detail }
  }
  /** The next frame of `side`, its clock running while the relay waits. */
  const waitOn = async (side: Side): Promise<Next> => {
    const now = side.poll()
    if (now !== undefined) return now
    side.clock = performance.now()
    try { return await side.next() } finally { side.clock = null }
  }

  try {
    giverPort.sendJson(['give', folder])
    const m = await waitOn(giver)
    if (m.kind !== 'frame' || m.frame.kind !== 'json') {
      giverBroke = m.kind !== 'gone'
      return end(giverFailed(m, 'instead of a manifest'))
    }
    const manifest = validateManifest(m.frame.value)
    if (!manifest.ok) {
      giverBroke = true
      return end(giverFailed({ kind: 'broken', detail: manifest.detail }, 'in its manifest'))
    }
    takerPort.sendJson(manifest.value)
    report({ type: 'pipe.manifest', files: Object.keys(manifest.value).length })

    const l = await waitOn(taker)
    if (l.kind !== 'frame' || l.frame.kind !== 'json') {
      giverPort.sendJson([])
      if (l.kind === 'gone') return end({ failure: 'taker disconnected before its getlist' })
      const detail = l.kind === 'idle'
        ? `taker idle for ${idleFor} before its getlist`
        : l.kind === 'broken' ? `taker broke the protocol before its getlist: ${l.detail}` : 'taker sent bytes instead of a getlist'
      takerBroke = true
      return end({ failure: detail, takerViolation: detail })
    }
    const getlist = validateGetlist(l.frame.value, manifest.value)
    if (!getlist.ok) {
      giverPort.sendJson([])
      return end({ failure: `bad getlist: ${getlist.detail}`, takerError: { code: 'bad_request', detail: getlist.detail } })
    }
    giverPort.sendJson(getlist.value)
    report({ type: 'pipe.getlist', files: getlist.value.length })
    if (getlist.value.length === 0) return end()

    return await stream(getlist.value)
  } finally {
    clearInterval(watchdog)
    if (giverBroke) giver.source.discard()
    else giver.source.release()
    if (takerBroke) taker.source.discard()
    else taker.source.release()
  }

  async function stream (paths: readonly string[]): Promise<RelayOutcome> {
    /** Resolved when file i is through (or the giver failed). */
    const through = paths.map(() => deferred())
    /** Headers relayed to the taker / files it has whole / files it answered for. */
    let headersSent = 0
    let completed = 0
    let answered = 0
    let takerGone = false
    let takerViolation: string | undefined
    let giverFailure: Failure | undefined
    /** The relay waits for the giver's next frame. */
    let giverWaiting = false
    /** Since when the relay waits for the taker's socket to drain, or null. */
    let drainSince: number | null = null

    const takerOwes = (): boolean => !takerGone && answered < completed
    const setClocks = (): void => {
      const now = performance.now()
      if (giverWaiting && !takerOwes()) giver.clock ??= now
      else giver.clock = null
      if (takerOwes()) taker.clock ??= now
      else taker.clock = null
    }
    /** No more is relayed to the taker; its remaining files are answered "failed" to the giver. */
    const dropTaker = (violation?: string): void => {
      if (takerGone) return
      takerGone = true
      if (violation !== undefined) {
        takerViolation = violation
        takerBroke = true
      }
      taker.interrupt({ kind: 'stopped' })
      setClocks()
    }
    const failGiver = (failure: Failure): void => {
      giverFailure = failure
      giverBroke = failure.giverViolation !== undefined
      for (const d of through) d.resolve()
      // The taker may still owe answers for files it has whole: they are read (not relayed) first.
      if (!takerOwes()) taker.interrupt({ kind: 'stopped' })
      setClocks()
    }
    onTick = (now) => {
      if (drainSince !== null && now - drainSince >= idleLimitMs) {
        drainSince = null
        dropTaker(`taker read nothing for ${idleFor}`)
        takerPort.close() // ends the wait for its drain
      }
    }
    const giverNext = async (): Promise<Next> => {
      const now = giver.poll()
      if (now !== undefined) return now
      giverWaiting = true
      setClocks()
      try { return await giver.next() } finally { giverWaiting = false; giver.clock = null }
    }

    const forwardFiles = async (): Promise<void> => {
      for (const [i, path] of paths.entries()) {
        const h = await giverNext()
        if (h.kind !== 'frame' || h.frame.kind !== 'json') return failGiver(giverFailed(h, `before the header of ${path}`))
        const header = validateFileHeader(h.frame.value, path)
        if (!header.ok) return failGiver(giverFailed({ kind: 'broken', detail: header.detail }, `at ${path}`))
        if (!takerGone) takerPort.sendJson(h.frame.value)
        headersSent = i + 1
        if (header.value.type === 'file') {
          let remaining = header.value.size
          while (remaining > 0) {
            const b = giver.poll() ?? await giverNext()
            if (b.kind !== 'frame') return failGiver(giverFailed(b, `with ${remaining} bytes of ${path} to go`))
            if (b.frame.kind !== 'binary') {
              return failGiver(giverFailed({ kind: 'broken', detail: `a JSON frame where ${remaining} bytes of ${path} were expected` }, `in ${path}`))
            }
            // A frame's first piece tells its whole size: one that would overrun the file is refused before any of it is relayed.
            const n = isBinaryPiece(b.frame) && b.frame.first ? Math.max(b.frame.frameLength, b.frame.bytes.byteLength) : b.frame.bytes.byteLength
            if (n > remaining) return failGiver(giverFailed({ kind: 'broken', detail: `binary frames of ${path} exceed its size of ${header.value.size} bytes` }, `in ${path}`))
            const piece = b.frame.bytes.byteLength
            remaining -= piece
            bytes += piece
            if (!takerGone) {
              drainSince = performance.now()
              await takerPort.sendBinary(b.frame.bytes, piece)
              drainSince = null
            }
          }
          files++
          report({ type: 'pipe.file', path, bytes: header.value.size })
        }
        completed = i + 1
        setClocks()
        through[i].resolve()
      }
    }

    const forwardAnswers = async (): Promise<void> => {
      for (const [i, path] of paths.entries()) {
        if (!takerGone) {
          if (giverFailure !== undefined && !takerOwes()) return
          const a = taker.poll() ?? await taker.next()
          if (a.kind === 'stopped') {
            if (!takerGone) return // the giver failed and the taker owes nothing more
          } else if (a.kind === 'gone') {
            dropTaker()
          } else if (a.kind !== 'frame' || a.frame.kind !== 'json') {
            dropTaker(a.kind === 'idle'
              ? `taker idle for ${idleFor} with its answer for ${path} owed`
              : a.kind === 'broken' ? `taker broke the protocol: ${a.detail}` : `taker sent bytes instead of an answer for ${path}`)
          } else {
            const ack = validateFileAck(a.frame.value, path)
            if (ack.ok && i < headersSent) {
              answered = i + 1
              taker.clock = null
              setClocks()
              if (giverFailure === undefined) giverPort.sendJson(a.frame.value)
              continue
            }
            dropTaker(ack.ok ? `taker answered for ${path} before it was sent` : ack.detail)
          }
        }
        // No taker any more: the giver still gets an answer for each file, once it is through.
        await through[i].promise
        if (giverFailure !== undefined) return
        giverPort.sendJson(['failed', path, 'taker disconnected'])
      }
    }

    await Promise.all([forwardFiles(), forwardAnswers()])
    if (giverFailure !== undefined) return end(takerViolation === undefined ? giverFailure : { ...giverFailure, takerViolation })
    if (takerViolation !== undefined) return end({ failure: takerViolation, takerViolation })
    if (takerGone) return end({ failure: 'taker disconnected' })
    return end()
  }
}

function deferred (): { promise: Promise<void>, resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => { resolve = r })
  return { promise, resolve }
}

/** The giver actor's `relayPipe`: runs the relay and reports back. */
export const relayPipe = fromCallback<EventObject, RelayPipeInput>(({ input, sendBack }) => {
  runRelay(input, sendBack).then(
    (outcome) => sendBack({ type: 'pipe.done', outcome }),
    (err: Error) => sendBack({
      type: 'pipe.done',
      outcome: { files: 0, bytes: 0, durationMs: 0, failure: `relay crashed: ${err.message}`, takerError: { code: 'relay_failed', detail: 'internal relay error' } }
    })
  )
})
