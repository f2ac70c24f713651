import type { Socket } from 'node:net'
import type { AnyActorRef } from 'xstate'
import { errorMessage } from '../protocol/errors.ts'
import { FrameDecoder } from '../protocol/decoder.ts'
import { binaryHeader, encodeJson, ProtocolError, type Frame } from '../protocol/frame.ts'
import type { BorrowedFrames, FramePort } from '../actors/ports.ts'
import { READS_FRAME } from '../actors/session.ts'
import { FrameQueue } from './frame-queue.ts'

/** How long a closing connection may take to flush before it is destroyed. */
const CLOSE_GRACE_MS = 2_000

const DRAINED: Promise<void> = Promise.resolve()

/**
 * Encodings of messages built from shared immutable values (chat history,
 * story): a broadcast to 200 clients encodes a 10,000-line history once, not
 * 200 times. Keyed weakly, so an old history goes with its last reference.
 */
const sharedFrames = new WeakMap<object, Uint8Array>()

/** The server's one-word messages (§3, §4), encoded once: `"yours"` ends every exchange. */
const SIGNAL_FRAMES: ReadonlyMap<unknown, Uint8Array> = new Map(
  (['username?', 'project?', 'secret?', 'wrong_project', 'wrong_secret', 'story', 'assets', 'analytics', 'users', 'yours'] as const)
    .map((signal) => [signal, encodeJson(signal)])
)

function encodeShared (value: unknown, key: object): Uint8Array {
  let frame = sharedFrames.get(key)
  if (frame === undefined) {
    frame = encodeJson(value)
    sharedFrames.set(key, frame)
  }
  return frame
}

/** §2 user id: the client's `ip:port`, without the IPv4-mapped prefix. */
export function userIdOf (socket: Socket): string {
  const ip = (socket.remoteAddress ?? '0.0.0.0').replace(/^::ffff:/, '')
  return `${ip}:${socket.remotePort ?? 0}`
}

/** What a connection needs besides its socket. */
export interface ConnectionLimits {
  /** §1: largest frame accepted. */
  readonly maxFrame: number
  /** §4: more than this many bytes waiting unsent disconnects the client. */
  readonly outputLimit: number
  /** §4: output waiting unsent this long disconnects the client. */
  readonly idleLimitMs: number
}

/** Frames handed to the session in one go before other connections get a turn of the event loop. */
const FRAMES_PER_TURN = 64

/**
 * One client's socket, as the actors see it: frames in (to the session
 * machine, or to a relay that borrowed them), frames out with backpressure.
 *
 * Reading is driven by `'data'` events, decoded at once: no async iteration
 * per chunk or per frame, and no concatenation of buffered chunks. The
 * session gets a frame only in a state that reads one (tagged READS_FRAME);
 * meanwhile at most one decoded frame waits here and the socket is paused,
 * so what a pipelining client sends early waits in TCP, not in memory (§4).
 * When a relay that borrowed the frames is behind, the socket is paused too
 * until the relay has room again.
 *
 * Writes are corked and go out together (one `writev`) when the session's
 * step that made them ends, or at the end of the tick for writes made
 * outside a step (a relay's).
 * A client that does not read is disconnected when more than the output
 * limit waits unsent for it, or output has waited unsent for the idle limit.
 */
export class Connection implements FramePort {
  private session: AnyActorRef | null = null
  private borrowed: FrameQueue | null = null
  private closing = false
  private corked = false
  /** Decoded frames for the session that it has not taken yet: one, or a relay's leftovers. */
  private readonly held: Frame[] = []
  private pumpScheduled = false
  /** Runs the reader again (after the session took a frame, a borrower made room, or frames came back). */
  private readonly schedulePump = (): void => {
    if (this.pumpScheduled) return
    this.pumpScheduled = true
    queueMicrotask(this.runPump)
  }
  private readonly runPump = (): void => { this.pumpScheduled = false; this.pump() }
  private pump: () => void = () => {}
  /** Ends the connection at once, for the reason given (output limit, encoding failure). */
  private abort: (why: string) => void = () => {}
  private stallTimer: NodeJS.Timeout | null = null
  private readonly maxFrame: number
  private readonly outputLimit: number
  private readonly idleLimitMs: number

  constructor (readonly socket: Socket, limits: ConnectionLimits) {
    this.maxFrame = limits.maxFrame
    this.outputLimit = limits.outputLimit
    this.idleLimitMs = limits.idleLimitMs
    socket.setNoDelay(true)
  }

  /** Starts reading; resolves when the connection has ended. */
  run (session: AnyActorRef): Promise<void> {
    this.session = session
    const socket = this.socket
    // Cut-through: a relay passes binary payloads on as they arrive, never holding a whole frame.
    const decoder = new FrameDecoder({ maxFrame: this.maxFrame, binaryPieces: true })
    const held = this.held
    /** A borrower is behind, or the session does not read now: frames wait, the socket is paused. */
    let blocked = false
    let eof = false
    let finished = false
    let reason = 'client closed the connection'
    // The session moved: if it now reads and a frame waits for it, hand it over (outside its processing).
    // After each of the session's steps: what it wrote goes out now (its exchange's frames in one writev),
    // not after every other session's step of this tick; and a waiting frame may now be taken.
    const subscription = session.subscribe(() => {
      this.uncork()
      if (held.length > 0 && !finished) this.schedulePump()
    })

    return new Promise<void>((resolve) => {
      const finish = (why?: string): void => {
        if (finished) return
        finished = true
        if (why !== undefined) reason = why
        subscription.unsubscribe()
        this.stopStallTimer()
        this.borrowed?.end()
        this.tell({ type: 'socket.closed', reason })
        this.uncork()
        socket.destroy()
        resolve()
      }
      this.abort = finish
      const violation = (err: ProtocolError): void => {
        reason = `protocol | ${err.detail}`
        if (this.borrowed !== null) {
          // A relay borrowed the frames: it learns of the violation as the end of its stream;
          // the peer hears of it here, before the connection closes, as it would outside a relay.
          this.borrowed.end(err)
          this.sendJson(errorMessage('protocol', err.detail))
        } else {
          this.tell({ type: 'protocol.violation', detail: err.detail })
        }
        finish()
      }
      const pause = (): void => {
        blocked = true
        socket.pause()
      }
      this.pump = (): void => {
        if (finished) return
        blocked = false
        let handed = 0
        try {
          while (true) {
            const borrower = this.borrowed
            if (borrower !== null) {
              const frame = decoder.next()
              if (frame === undefined) break
              if (!borrower.push(frame)) return pause()
              continue
            }
            if (held.length === 0) {
              const frame = decoder.next()
              if (frame === undefined) break
              held.push(frame)
            }
            if (!this.sessionReads()) return pause()
            if (++handed > FRAMES_PER_TURN) {
              // A client pipelining thousands of small requests shares the event loop with the others.
              pause()
              setImmediate(this.schedulePump)
              return
            }
            this.toSession(held.shift() as Frame)
            if (finished) return
          }
        } catch (err) {
          if (err instanceof ProtocolError) violation(err)
          else finish(`connection error | ${(err as Error).message}`)
          return
        }
        if (eof) {
          if (decoder.pendingBytes > 0) {
            // A stream that ends mid-frame is a truncated peer, not a new violation: report it the same way.
            violation(new ProtocolError(`stream ended inside a frame (${decoder.pendingBytes} bytes pending)`, -1))
          } else {
            finish()
          }
          return
        }
        if (socket.isPaused()) socket.resume()
      }
      socket.on('data', (chunk: Buffer) => {
        decoder.append(chunk)
        if (!blocked) this.pump()
      })
      socket.on('end', () => { eof = true; if (!blocked) this.pump() })
      socket.on('close', () => finish())
      socket.on('error', (err) => finish(`connection error | ${err.message}`))
    })
  }

  sendJson (value: unknown, shareKey?: object): void {
    if (!this.socket.writable) return
    // §4 output limit: the backlog before this message (so that one message larger than the limit,
    // a big story say, does not cost its receiver the connection; memory stays within limit + one message).
    const waiting = this.socket.writableLength
    if (waiting > this.outputLimit) {
      this.abort(`output limit | ${waiting} bytes waiting unsent, over the limit of ${this.outputLimit}`)
      return
    }
    let frame: Uint8Array
    try {
      frame = SIGNAL_FRAMES.get(value) ?? (shareKey === undefined ? encodeJson(value) : encodeShared(value, shareKey))
    } catch (err) {
      // §1 keeps unencodable values out; should one slip through, only this client pays.
      this.abort(`cannot encode a message for this client | ${(err as Error).message}`)
      return
    }
    this.corkForThisTick()
    this.socket.write(frame)
    this.watchStall()
  }

  sendBinary (chunks: Iterable<Uint8Array>, byteLength: number): Promise<void> {
    const s = this.socket
    if (!s.writable) return DRAINED
    s.cork()
    s.write(binaryHeader(byteLength))
    for (const chunk of chunks) s.write(chunk)
    s.uncork()
    // A relay waits for the drain before its next chunk, and its watchdog times a taker that does not read.
    return s.writableNeedDrain ? this.drained() : DRAINED
  }

  drained (): Promise<void> {
    const s = this.socket
    if (!s.writableNeedDrain || s.destroyed) return DRAINED
    return new Promise((resolve) => {
      const done = (): void => { s.off('drain', done); s.off('close', done); resolve() }
      s.on('drain', done)
      s.on('close', done)
    })
  }

  borrowFrames (): BorrowedFrames {
    const queue = new FrameQueue(
      (leftover) => {
        if (this.borrowed === queue) this.borrowed = null
        // Frames the relay read but did not take are the session's next, in order.
        this.held.unshift(...leftover)
        this.schedulePump()
      },
      () => this.schedulePump()
    )
    // Frames that came early, while the relay was being set up, are the relay's first.
    for (const frame of this.held.splice(0)) queue.push(frame)
    if (this.socket.destroyed) queue.end()
    this.borrowed = queue
    this.schedulePump()
    return queue
  }

  close (): void {
    if (this.closing) return
    this.closing = true
    this.socket.end()
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref()
  }

  /** The session is in a state that takes the client's next frame. */
  private sessionReads (): boolean {
    const snapshot = this.session?.getSnapshot()
    return snapshot !== undefined && snapshot.status === 'active' && snapshot.hasTag(READS_FRAME)
  }

  /** §4 output limit: output that waits unsent (the socket asked for a drain) for the idle limit disconnects. */
  private watchStall (): void {
    const s = this.socket
    // During a relay the relay's own watchdog times a taker that does not read (§5, with its own log line).
    if (this.stallTimer === null && s.writableNeedDrain && this.idleLimitMs > 0 && this.borrowed === null) {
      this.stallTimer = setTimeout(() => {
        this.stallTimer = null
        if (s.writableNeedDrain && this.borrowed === null) this.abort(`output limit | output waited unsent for the idle limit (${s.writableLength} bytes)`)
      }, this.idleLimitMs)
      this.stallTimer.unref()
      s.once('drain', this.stopStallTimer)
    }
  }

  private readonly stopStallTimer = (): void => {
    if (this.stallTimer === null) return
    clearTimeout(this.stallTimer)
    this.stallTimer = null
    this.socket.off('drain', this.stopStallTimer)
  }

  private toSession (frame: Frame): void {
    this.tell(frame.kind === 'json' ? { type: 'frame', value: frame.value } : { type: 'frame.binary' })
  }

  private tell (event: { type: string, [k: string]: unknown }): void {
    if (this.session !== null && this.session.getSnapshot().status === 'active') this.session.send(event)
  }

  /** Writes go out together (one writev) when the session's step ends (or this tick, at the latest). */
  private corkForThisTick (): void {
    if (this.corked) return
    this.corked = true
    this.socket.cork()
    process.nextTick(this.uncorkLater)
  }

  private readonly uncorkLater = (): void => this.uncork()

  private uncork (): void {
    if (!this.corked) return
    this.corked = false
    this.socket.uncork()
  }
}
