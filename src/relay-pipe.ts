import { fromCallback } from 'xstate'
import { pipe } from 'it-pipe'
import { isBinaryPiece, type Frame, type JsonValue } from '../protocol/frame.ts'
import { bytesFollowing, validateFileAck, validateFileHeader, type Wanted } from '../protocol/messages.ts'
import {
  giverFailure, type ReadFailure, type RelayFailure, type RelayPipeCommand, type RelayPipeEvent, type RelayPipeInput
} from '../actors/giver.ts'
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
        // Stryker disable next-line ObjectLiteral,BooleanLiteral: unreachable: both pipelines stop at the first non-frame they read, never asking again
        if (ended) return { done: true, value: undefined }
        const n = this.poll() ?? await this.next()
        ended = n.kind !== 'frame'
        return { done: false, value: n }
      }
    }
  }
}

/**
 * The two sides of one relay while it runs: their borrowed frames, their idle
 * clocks and one watchdog timer.
 *
 * Idle limit: the relay waits on one side at a time and only that side's
 * clock runs. Before the files, a side's clock runs while the relay waits for
 * its message; the files phase sets its own rule (`FileRelay`).
 */
class Link {
  readonly giver: Side
  readonly taker: Side
  readonly idleFor: string
  /** Sets the idle clocks when a side's `waiting` changes. */
  clocks: () => void = () => { this.giver.time(this.giver.waiting); this.taker.time(this.taker.waiting) }
  /** Extra watchdog checks (the files phase: a taker that reads nothing). */
  onTick: (now: number) => void = () => {}
  closed = false
  private readonly watchdog: ReturnType<typeof setInterval>

  constructor (readonly input: RelayPipeInput) {
    this.giver = new Side(input.giverPort.borrowFrames(), () => this.clocks())
    this.taker = new Side(input.takerPort.borrowFrames(), () => this.clocks())
    this.idleFor = `${input.idleLimitMs / 1000} s`
    // Stryker disable next-line MethodExpression,ArithmeticOperator: how soon after the limit a stuck side is noticed, not whether; only a duration would tell
    this.watchdog = setInterval(() => this.tick(), Math.max(5, Math.min(1_000, input.idleLimitMs / 10)))
    this.watchdog.unref()
  }

  private tick (): void {
    const now = performance.now()
    for (const side of [this.giver, this.taker]) {
      if (side.clock !== null && now - side.clock >= this.input.idleLimitMs) {
        side.clock = null
        side.interrupt({ kind: 'idle' })
      }
    }
    this.onTick(now)
  }

  /**
   * Gives each side's frames back to its session; a side that broke §5 keeps
   * its frames borrowed and dropped until its session closes it.
   */
  close (dropGiver: boolean, dropTaker: boolean): void {
    if (this.closed) return
    this.closed = true
    clearInterval(this.watchdog)
    for (const [side, drop] of [[this.giver, dropGiver], [this.taker, dropTaker]] as const) {
      // Stryker disable next-line ObjectLiteral,StringLiteral: every report after close is dropped (report checks link.closed), whatever the pending read gets
      side.interrupt({ kind: 'stopped' })
      if (drop) side.queue.discard()
      else side.queue.release()
    }
  }
}

/** Why a read gave no frame, as the giver machine hears it. */
function readFailure (n: Exclude<Next, { kind: 'frame' }>): ReadFailure {
  if (n.kind === 'broken') return { kind: 'broken', detail: n.detail }
  if (n.kind === 'idle') return { kind: 'idle' }
  return { kind: 'gone' }
}

/** The side's next message (a JSON frame), or why there is none. */
async function readMessage (side: Side): Promise<{ readonly value: JsonValue } | ReadFailure> {
  const n = await side.next()
  if (n.kind !== 'frame') return readFailure(n)
  return n.frame.kind === 'json' ? { value: n.frame.value } : { kind: 'binary' }
}

function deferred (): { promise: Promise<void>, resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => { resolve = r })
  return { promise, resolve }
}

/**
 * The files of one relay: giver → taker in getlist order, and the taker's
 * answers → giver, at the same time, each direction an it-pipe pipeline with
 * backpressure. Checks every header and byte count, and reports the files'
 * boundaries (batched per event-loop turn, never per chunk).
 *
 * Idle clocks: the giver's runs while the relay needs its next frame and the
 * taker owes no answer (an ack-waiting giver is not idle while the taker checks
 * a file); the taker's while it owes an answer for a file it has whole, or does
 * not read what it is sent.
 *
 * A taker whose giver failed is first let answer for the files it already
 * has, so its turn stays in step; a gone taker's files are drained and
 * answered "failed" to the giver, so the giver finishes normally.
 */
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

class FileRelay {
  /** Resolved when file i is through (or the giver failed). */
  private readonly through: Array<{ promise: Promise<void>, resolve: () => void }>
  private readonly paths: readonly string[]
  /** Headers relayed to the taker / files it has whole / files it answered for. */
  private headersSent = 0
  private completed = 0
  private answered = 0
  private takerGone = false
  private takerViolation: string | undefined
  private giverFailure: RelayFailure | undefined
  /** Since when the relay waits for the taker's socket to drain, or null. */
  private drainSince: number | null = null
  /** File boundaries not reported yet: the machine hears of them at most once per event-loop turn. */
  private unreported = { through: 0, relayed: 0, bytes: 0, answered: 0 }
  // Stryker disable next-line BooleanLiteral: batching only (see flushSoon)
  private flushing = false

  constructor (
    private readonly link: Link,
    private readonly wanted: readonly Wanted[],
    private readonly report: (e: RelayPipeEvent) => void,
    private readonly progress: RelayProgress
  ) {
    progress.filesTotal = wanted.length
    this.paths = wanted.map((w) => w.path)
    this.through = wanted.map(() => deferred())
  }

  async run (): Promise<RelayFailure | null> {
    const { link } = this
    link.clocks = () => {
      link.giver.time(link.giver.waiting && !this.takerOwes())
      link.taker.time(this.takerOwes())
    }
    link.onTick = (now) => {
      if (this.drainSince !== null && now - this.drainSince >= link.input.idleLimitMs) {
        this.drainSince = null
        this.dropTaker(`taker read nothing for ${link.idleFor}`)
        link.input.takerPort.close() // ends the wait for its drain
      }
    }
    await Promise.all([
      pipe(link.giver, (frames) => this.checkFiles(frames), (frames) => this.relayToTaker(frames)),
      pipe(link.taker, (answers) => this.checkAnswers(answers), (answers) => this.relayToGiver(answers))
    ])
    this.flush()
    const takerViolation = this.takerViolation
    if (this.giverFailure !== undefined) return takerViolation === undefined ? this.giverFailure : { ...this.giverFailure, takerViolation }
    if (takerViolation !== undefined) return { failure: takerViolation, takerViolation }
    if (this.takerGone) return { failure: 'taker disconnected' }
    return null
  }

  private takerOwes (): boolean { return !this.takerGone && this.answered < this.completed }

  private noteThrough (bytes: number | null): void {
    this.unreported.through++
    if (bytes !== null) {
      this.unreported.relayed++
      this.unreported.bytes += bytes
    }
    this.flushSoon()
  }

  private noteAnswered (): void {
    this.unreported.answered++
    this.flushSoon()
  }

  // Stryker disable all: batching only: nothing reads the machine's counts before files.ended, and the last batch is flushed before it (more, fewer or later batches add up the same)
  private flushSoon (): void {
    if (this.flushing) return
    this.flushing = true
    setImmediate(() => this.flush())
  }
  // Stryker restore all

  /** Reports the file boundaries since the last report, if any. */
  private flush (): void {
    // Stryker disable next-line BooleanLiteral: batching only (see flushSoon)
    this.flushing = false
    const u = this.unreported
    if (u.through > 0) this.report({ type: 'files.through', files: u.through, relayed: u.relayed, bytes: u.bytes })
    if (u.answered > 0) this.report({ type: 'files.answered', files: u.answered })
    this.unreported = { through: 0, relayed: 0, bytes: 0, answered: 0 }
  }

  /** No more is relayed to the taker; its remaining files are answered "failed" to the giver. */
  private dropTaker (violation?: string): void {
    if (this.takerGone) return
    this.takerGone = true
    this.takerViolation = violation
    this.link.taker.interrupt({ kind: 'stopped' })
    this.link.clocks()
  }

  private failGiver (failure: ReadFailure, during: string): void {
    this.giverFailure = giverFailure(failure, during, this.link.input.idleLimitMs)
    for (const d of this.through) d.resolve()
    // The taker may still owe answers for files it has whole: they are read (not relayed) first.
    if (!this.takerOwes()) this.link.taker.interrupt({ kind: 'stopped' })
    this.link.clocks()
  }

  private fileThrough (i: number): void {
    this.completed = i + 1
    this.link.clocks()
    this.through[i].resolve()
  }

  /** The giver's frames, checked against the getlist: yields what to relay, reports each file's boundaries. */
  private async * checkFiles (frames: AsyncIterable<Next>): AsyncGenerator<Frame> {
    let i = 0
    /** Bytes of paths[i] still to come, null while its header is; and how many the header announced. */
    let remaining: number | null = null
    let announced = 0
    for await (const n of frames) {
      const path = this.paths[i]
      if (remaining === null) {
        if (n.kind !== 'frame') return this.failGiver(readFailure(n), `before the header of ${path}`)
        // Stryker disable next-line ObjectLiteral: giverFailure words any failure that is not gone, idle or broken as a binary frame where a message was due
        if (n.frame.kind !== 'json') return this.failGiver({ kind: 'binary' }, `before the header of ${path}`)
        const header = validateFileHeader(n.frame.value, this.wanted[i])
        if (!header.ok) return this.failGiver({ kind: 'broken', detail: header.detail }, `at ${path}`)
        yield n.frame
        this.headersSent = i + 1
        if (header.value.type === 'file') {
          remaining = announced = bytesFollowing(header.value)
          this.progress.headers++
          this.progress.bytesAnnounced += announced
        }
      } else {
        if (n.kind !== 'frame') return this.failGiver(readFailure(n), `with ${remaining} bytes of ${path} to go`)
        const b = n.frame
        if (b.kind !== 'binary') {
          return this.failGiver({ kind: 'broken', detail: `a JSON frame where ${remaining} bytes of ${path} were expected` }, `in ${path}`)
        }
        // A frame's first piece tells its whole size: one that would overrun the file is refused before any of it is relayed.
        const piece = b.bytes.byteLength
        if ((isBinaryPiece(b) && b.first ? Math.max(b.frameLength, piece) : piece) > remaining) {
          return this.failGiver({ kind: 'broken', detail: `binary frames of ${path} exceed the ${announced} bytes its header announced` }, `in ${path}`)
        }
        yield b
        remaining -= piece
        this.progress.bytesDone += piece
      }
      if (remaining !== null && remaining > 0) continue
      this.noteThrough(remaining === 0 ? announced : null)
      this.progress.filesDone++
      remaining = null
      this.fileThrough(i++)
      if (i === this.paths.length) return
    }
  }

  /** Writes to the taker with backpressure; drops everything once the taker is gone. */
  private async relayToTaker (frames: AsyncIterable<Frame>): Promise<void> {
    const port = this.link.input.takerPort
    for await (const frame of frames) {
      if (this.takerGone) continue
      if (frame.kind === 'json') {
        port.sendJson(frame.value)
      } else {
        this.drainSince = performance.now()
        await port.sendBinary(frame.bytes, frame.bytes.byteLength)
        this.drainSince = null
      }
    }
  }

  /** Why the taker's next frame is not an answer the relay can take, or null when it is `ack`. */
  private answerRefusal (a: Next, path: string): string | 'stop' | 'gone' | null {
    if (a.kind === 'stopped') return 'stop' // the taker was dropped, or the giver failed and the taker owes nothing more
    if (a.kind === 'gone') return 'gone'
    if (a.kind === 'idle') return `taker idle for ${this.link.idleFor} with its answer for ${path} owed`
    if (a.kind === 'broken') return `taker broke the protocol: ${a.detail}`
    return a.frame.kind === 'json' ? null : `taker sent bytes instead of an answer for ${path}`
  }

  /** The taker's answers, checked: yields what to relay to the giver. A gone taker's files are answered "failed" once each is through. */
  private async * checkAnswers (answers: AsyncIterable<Next>): AsyncGenerator<JsonValue> {
    let i = 0
    for await (const a of answers) {
      const path = this.paths[i]
      const refusal = this.answerRefusal(a, path)
      if (refusal === 'stop') break
      if (refusal !== null) {
        this.dropTaker(refusal === 'gone' ? undefined : refusal)
        break
      }
      // Stryker disable next-line LogicalOperator: answerRefusal let only a JSON frame through; this only narrows the type
      if (a.kind !== 'frame' || a.frame.kind !== 'json') break // (answerRefusal let only a JSON frame through)
      const value = a.frame.value
      const ack = validateFileAck(value, path)
      if (!ack.ok || i >= this.headersSent) {
        this.dropTaker(ack.ok ? `taker answered for ${path} before it was sent` : ack.detail)
        break
      }
      this.answered = ++i
      this.link.taker.clock = null
      this.link.clocks()
      if (this.giverFailure === undefined) {
        yield value
        this.noteAnswered()
      }
      if (i === this.paths.length || this.takerGone || (this.giverFailure !== undefined && !this.takerOwes())) break
    }
    // No taker any more: the giver still gets an answer for each file, once it is through.
    for (; i < this.paths.length; i++) {
      await this.through[i].promise
      if (this.giverFailure !== undefined) return
      yield ['failed', this.paths[i], 'taker disconnected']
      this.noteAnswered()
    }
  }

  private async relayToGiver (answers: AsyncIterable<JsonValue>): Promise<void> {
    for await (const answer of answers) this.link.input.giverPort.sendJson(answer)
  }
}

/**
 * The giver actor's `relayPipe`: the bytes of one §5 relay, outside the state
 * machines. It borrows both connections' frames while it runs, reads the
 * messages the giver machine asks for, relays the files, and gives the frames
 * back when told to close (or when stopped).
 */
export const relayPipeWith = (progressOf: (input: RelayPipeInput) => RelayProgress = newRelayProgress) =>
  fromCallback<RelayPipeCommand, RelayPipeInput>(({ input, sendBack, receive }) => {
  const link = new Link(input)
  const progress = progressOf(input)
  const report = (e: RelayPipeEvent): void => { if (!link.closed) sendBack(e) }
  const crashed = (err: Error): RelayFailure => ({
    failure: `relay crashed: ${err.message}`, takerError: { code: 'relay_failed', detail: 'internal relay error' }
  })
  receive((command) => {
    switch (command.type) {
      case 'pipe.readGiver':
      case 'pipe.readTaker': {
        const giver = command.type === 'pipe.readGiver'
        readMessage(giver ? link.giver : link.taker).then(
          (r) => report('value' in r
            ? { type: giver ? 'giver.message' : 'taker.message', value: r.value }
            : { type: giver ? 'giver.failed' : 'taker.failed', failure: r }),
          // Stryker disable next-line all: unreachable: readMessage never rejects (a side's errors end its queue as broken, read as a failure)
          (err: Error) => report({ type: giver ? 'giver.failed' : 'taker.failed', failure: { kind: 'broken', detail: `relay crashed: ${err.message}` } })
        )
        break
      }
      case 'pipe.stream':
        new FileRelay(link, command.wanted, report, progress).run().then(
          (failure) => report({ type: 'files.ended', failure }),
          (err: Error) => report({ type: 'files.ended', failure: crashed(err) })
        )
        break
      case 'pipe.close':
        link.close(command.dropGiver, command.dropTaker)
        break
    }
  })
  return () => link.close(false, false)
  })

export const relayPipe = relayPipeWith()
