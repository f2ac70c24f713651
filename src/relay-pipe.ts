import { fromCallback, type EventObject } from 'xstate'
import { pipe } from 'it-pipe'
import { isBinaryPiece, type Frame, type JsonValue } from '../protocol/frame.ts'
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

/** A BorrowedFrames that is only an async iterable, pumped into a FrameQueue (with its backpressure). */
function queueOf (frames: BorrowedFrames): FrameQueue {
  let room = (): void => {}
  const queue = new FrameQueue(() => frames.release(), () => room())
  void (async () => {
    for await (const frame of frames) {
      if (!queue.push(frame)) await new Promise<void>((resolve) => { room = resolve })
    }
  })().then(() => queue.end(), (err: Error) => queue.end(err))
  return queue
}

/**
 * One side of a relay: its borrowed frames, whether the relay waits on it
 * and since when its idle clock runs. As an async iterable (a pipeline's
 * source) it gives its frames, then why no more come.
 */
class Side implements AsyncIterable<Next> {
  readonly queue: FrameQueue
  /** performance.now() since this side's idle clock runs, or null. */
  clock: number | null = null
  /** The relay waits for this side's next frame. */
  waiting = false
  private stop: ((n: Next | null) => void) | null = null

  /** `clocks` sets the idle clocks when `waiting` changes. */
  constructor (frames: BorrowedFrames, private readonly clocks: () => void) {
    this.queue = frames instanceof FrameQueue ? frames : queueOf(frames)
  }

  /** Runs the idle clock (from now, if it was stopped) or stops it. */
  time (on: boolean): void { this.clock = on ? this.clock ?? performance.now() : null }

  /** The next frame if it is already there (no promise, no tick), or the end. */
  poll (): Next | undefined {
    const frame = this.queue.shift()
    if (frame !== undefined) return { kind: 'frame', frame }
    if (!this.queue.done) return undefined
    const failure = this.queue.failure
    return failure === null ? { kind: 'gone' } : { kind: 'broken', detail: failure.message }
  }

  /** The next frame, or why there is none. `interrupt` ends the wait without taking a frame. */
  async next (): Promise<Next> {
    const now = this.poll()
    if (now !== undefined) return now
    this.waiting = true
    this.clocks()
    try {
      while (true) {
        const interrupted = await new Promise<Next | null>((resolve) => {
          this.stop = resolve
          void this.queue.wait().then(() => {
            if (this.stop === resolve) { this.stop = null; resolve(null) }
          })
        })
        const n = interrupted ?? this.poll()
        if (n !== undefined) return n
      }
    } finally {
      this.waiting = false
      this.clocks()
    }
  }

  /** Ends a pending `next()` with `n`; no frame is lost. */
  interrupt (n: Next): void {
    const stop = this.stop
    this.stop = null
    stop?.(n)
  }

  /** A pipeline's source: frames, then why no more come (a plain iterator: a generator costs a tick per frame). */
  [Symbol.asyncIterator] (): AsyncIterator<Next, undefined> {
    let ended = false
    return {
      next: async () => {
        if (ended) return { done: true, value: undefined }
        const n = this.poll() ?? await this.next()
        ended = n.kind !== 'frame'
        return { done: false, value: n }
      }
    }
  }
}

type Failure = Omit<RelayOutcome, 'files' | 'bytes' | 'durationMs'>

/**
 * How far one relay is, for the status page: plain counters the pipe bumps as
 * it goes (no event, no allocation per piece). Read, never written, outside.
 */
export interface RelayProgress {
  /** Files in the getlist; null until it is known. */
  filesTotal: number | null
  /** Files through (relayed whole, or answered missing by the giver). */
  filesDone: number
  /** File headers relayed so far, and the bytes they announced. */
  headers: number
  bytesAnnounced: number
  /** Bytes of file content relayed to the taker. */
  bytesDone: number
}

export const newRelayProgress = (): RelayProgress => ({ filesTotal: null, filesDone: 0, headers: 0, bytesAnnounced: 0, bytesDone: 0 })

/**
 * The bytes of one §5 relay, outside the state machines: `give`, manifest,
 * getlist, then files giver → taker and answers taker → giver at the same
 * time, each direction an it-pipe pipeline with backpressure. Checks
 * everything it relays and reports decisions (not chunks) to the giver actor.
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
export async function runRelay (input: RelayPipeInput, report: (e: RelayPipeEvent) => void, progress: RelayProgress = newRelayProgress()): Promise<RelayOutcome> {
  const { folder, giverPort, takerPort, idleLimitMs } = input
  const started = performance.now()
  /** Sets the idle clocks: before the files, a side's runs while the relay waits on it. */
  let clocks = (): void => { giver.time(giver.waiting); taker.time(taker.waiting) }
  const giver = new Side(giverPort.borrowFrames(), () => clocks())
  const taker = new Side(takerPort.borrowFrames(), () => clocks())
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

  try {
    giverPort.sendJson(['give', folder])
    const m = await giver.next()
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

    const l = await taker.next()
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
    progress.filesTotal = getlist.value.length
    report({ type: 'pipe.getlist', files: getlist.value.length })
    if (getlist.value.length === 0) return end()

    return await stream(getlist.value)
  } finally {
    clearInterval(watchdog)
    if (giverBroke) giver.queue.discard()
    else giver.queue.release()
    if (takerBroke) taker.queue.discard()
    else taker.queue.release()
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
    /** Since when the relay waits for the taker's socket to drain, or null. */
    let drainSince: number | null = null

    const takerOwes = (): boolean => !takerGone && answered < completed
    clocks = () => {
      giver.time(giver.waiting && !takerOwes())
      taker.time(takerOwes())
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
      clocks()
    }
    const failGiver = (failure: Failure): void => {
      giverFailure = failure
      giverBroke = failure.giverViolation !== undefined
      for (const d of through) d.resolve()
      // The taker may still owe answers for files it has whole: they are read (not relayed) first.
      if (!takerOwes()) taker.interrupt({ kind: 'stopped' })
      clocks()
    }
    onTick = (now) => {
      if (drainSince !== null && now - drainSince >= idleLimitMs) {
        drainSince = null
        dropTaker(`taker read nothing for ${idleFor}`)
        takerPort.close() // ends the wait for its drain
      }
    }

    /** The giver's frames, checked against the getlist: yields what to relay, reports each file through. */
    async function * checkFiles (frames: AsyncIterable<Next>): AsyncGenerator<Frame> {
      let i = 0
      /** Bytes of paths[i] still to come, null while its header is; and its size. */
      let remaining: number | null = null
      let size = 0
      for await (const n of frames) {
        const path = paths[i]
        if (remaining === null) {
          if (n.kind !== 'frame' || n.frame.kind !== 'json') return failGiver(giverFailed(n, `before the header of ${path}`))
          const header = validateFileHeader(n.frame.value, path)
          if (!header.ok) return failGiver(giverFailed({ kind: 'broken', detail: header.detail }, `at ${path}`))
          yield n.frame
          headersSent = i + 1
          progress.headers = headersSent
          if (header.value.type === 'file') {
            remaining = size = header.value.size
            progress.bytesAnnounced += size
          }
        } else {
          if (n.kind !== 'frame') return failGiver(giverFailed(n, `with ${remaining} bytes of ${path} to go`))
          const b = n.frame
          if (b.kind !== 'binary') {
            return failGiver(giverFailed({ kind: 'broken', detail: `a JSON frame where ${remaining} bytes of ${path} were expected` }, `in ${path}`))
          }
          // A frame's first piece tells its whole size: one that would overrun the file is refused before any of it is relayed.
          const piece = b.bytes.byteLength
          if ((isBinaryPiece(b) && b.first ? Math.max(b.frameLength, piece) : piece) > remaining) {
            return failGiver(giverFailed({ kind: 'broken', detail: `binary frames of ${path} exceed its size of ${size} bytes` }, `in ${path}`))
          }
          yield b
          remaining -= piece
          bytes += piece
          progress.bytesDone += piece
        }
        if (remaining !== null && remaining > 0) continue
        if (remaining === 0) {
          files++
          report({ type: 'pipe.file', path, bytes: size })
        }
        remaining = null
        completed = progress.filesDone = ++i
        clocks()
        through[i - 1].resolve()
        if (i === paths.length) return
      }
    }

    /** Writes to the taker with backpressure; drops everything once the taker is gone. */
    async function relayToTaker (frames: AsyncIterable<Frame>): Promise<void> {
      for await (const frame of frames) {
        if (takerGone) continue
        if (frame.kind === 'json') {
          takerPort.sendJson(frame.value)
        } else {
          drainSince = performance.now()
          await takerPort.sendBinary(frame.bytes, frame.bytes.byteLength)
          drainSince = null
        }
      }
    }

    /**
     * The taker's answers, checked: yields what to relay to the giver. A gone
     * taker's files are answered "failed" once each is through.
     */
    async function * checkAnswers (answers: AsyncIterable<Next>): AsyncGenerator<JsonValue> {
      let i = 0
      for await (const a of answers) {
        const path = paths[i]
        if (a.kind === 'stopped') break // the taker was dropped, or the giver failed and the taker owes nothing more
        if (a.kind === 'gone') {
          dropTaker()
          break
        }
        if (a.kind !== 'frame' || a.frame.kind !== 'json') {
          dropTaker(a.kind === 'idle'
            ? `taker idle for ${idleFor} with its answer for ${path} owed`
            : a.kind === 'broken' ? `taker broke the protocol: ${a.detail}` : `taker sent bytes instead of an answer for ${path}`)
          break
        }
        const ack = validateFileAck(a.frame.value, path)
        if (!ack.ok || i >= headersSent) {
          dropTaker(ack.ok ? `taker answered for ${path} before it was sent` : ack.detail)
          break
        }
        answered = ++i
        taker.clock = null
        clocks()
        if (giverFailure === undefined) yield a.frame.value
        if (i === paths.length || takerGone || (giverFailure !== undefined && !takerOwes())) break
      }
      // No taker any more: the giver still gets an answer for each file, once it is through.
      for (; i < paths.length; i++) {
        await through[i].promise
        if (giverFailure !== undefined) return
        yield ['failed', paths[i], 'taker disconnected']
      }
    }

    async function relayToGiver (answers: AsyncIterable<JsonValue>): Promise<void> {
      for await (const answer of answers) giverPort.sendJson(answer)
    }

    await Promise.all([
      pipe(giver, checkFiles, relayToTaker),
      pipe(taker, checkAnswers, relayToGiver)
    ])
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

/** The giver actor's `relayPipe`: runs the relay and reports back; `progressOf` gives each relay its counters. */
export const relayPipeWith = (progressOf: (input: RelayPipeInput) => RelayProgress = newRelayProgress) => fromCallback<EventObject, RelayPipeInput>(({ input, sendBack }) => {
  runRelay(input, sendBack, progressOf(input)).then(
    (outcome) => sendBack({ type: 'pipe.done', outcome }),
    (err: Error) => sendBack({
      type: 'pipe.done',
      outcome: { files: 0, bytes: 0, durationMs: 0, failure: `relay crashed: ${err.message}`, takerError: { code: 'relay_failed', detail: 'internal relay error' } }
    })
  )
})

export const relayPipe = relayPipeWith()
