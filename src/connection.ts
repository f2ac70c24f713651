import type { Socket } from 'node:net'
import type { AnyActorRef } from 'xstate'
import { errorMessage } from '../protocol/errors.ts'
import { FrameDecoder } from '../protocol/decoder.ts'
import { binaryHeader, encodeJson, ProtocolError, type Frame } from '../protocol/frame.ts'
import type { BorrowedFrames, FramePort } from '../actors/ports.ts'
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

/**
 * One client's socket, as the actors see it: frames in (to the session
 * machine, or to a relay that borrowed them), frames out with backpressure.
 *
 * Reading is driven by `'data'` events, decoded at once: no async iteration
 * per chunk or per frame, and no concatenation of buffered chunks. When a
 * relay that borrowed the frames is behind, the socket is paused (TCP
 * backpressure to the sender) until the relay has room again.
 *
 * Writes made in one tick are corked together and go out as one `writev`.
 */
export class Connection implements FramePort {
  private session: AnyActorRef | null = null
  private borrowed: FrameQueue | null = null
  private closing = false
  private corked = false
  /** Continues dispatching decoded frames after a borrower made room. */
  private resumeReading: () => void = () => {}

  constructor (readonly socket: Socket, private readonly maxFrame: number) {
    socket.setNoDelay(true)
  }

  /** Starts reading; resolves when the connection has ended. */
  run (session: AnyActorRef): Promise<void> {
    this.session = session
    const socket = this.socket
    // Cut-through: a relay passes binary payloads on as they arrive, never holding a whole frame.
    const decoder = new FrameDecoder({ maxFrame: this.maxFrame, binaryPieces: true })
    /** A borrower is behind: frames wait in the decoder, the socket is paused. */
    let blocked = false
    let eof = false
    let finished = false
    let reason = 'client closed the connection'

    return new Promise<void>((resolve) => {
      const finish = (why?: string): void => {
        if (finished) return
        finished = true
        if (why !== undefined) reason = why
        this.borrowed?.end()
        this.tell({ type: 'socket.closed', reason })
        this.uncork()
        socket.destroy()
        resolve()
      }
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
      const pump = (): void => {
        if (finished) return
        blocked = false
        try {
          for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
            if (!this.dispatch(frame)) {
              blocked = true
              socket.pause()
              return
            }
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
      this.resumeReading = () => queueMicrotask(pump)
      socket.on('data', (chunk: Buffer) => {
        decoder.append(chunk)
        if (!blocked) pump()
      })
      socket.on('end', () => { eof = true; if (!blocked) pump() })
      socket.on('close', () => finish())
      socket.on('error', (err) => finish(`connection error | ${err.message}`))
    })
  }

  sendJson (value: unknown, shareKey?: object): void {
    if (!this.socket.writable) return
    this.corkForThisTick()
    this.socket.write(shareKey === undefined ? encodeJson(value) : encodeShared(value, shareKey))
  }

  sendBinary (chunks: Iterable<Uint8Array>, byteLength: number): Promise<void> {
    const s = this.socket
    if (!s.writable) return DRAINED
    s.cork()
    s.write(binaryHeader(byteLength))
    for (const chunk of chunks) s.write(chunk)
    s.uncork()
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
        for (const frame of leftover) this.toSession(frame)
      },
      () => this.resumeReading()
    )
    if (this.socket.destroyed) queue.end()
    this.borrowed = queue
    return queue
  }

  close (): void {
    if (this.closing) return
    this.closing = true
    this.socket.end()
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref()
  }

  /** To the borrower if there is one (false: it is behind, stop reading), else to the session. */
  private dispatch (frame: Frame): boolean {
    if (this.borrowed !== null) return this.borrowed.push(frame)
    this.toSession(frame)
    return true
  }

  private toSession (frame: Frame): void {
    this.tell(frame.kind === 'json' ? { type: 'frame', value: frame.value } : { type: 'frame.binary' })
  }

  private tell (event: { type: string, [k: string]: unknown }): void {
    if (this.session !== null && this.session.getSnapshot().status === 'active') this.session.send(event)
  }

  /** Writes of this tick go out together (one writev) when it ends. */
  private corkForThisTick (): void {
    if (this.corked) return
    this.corked = true
    this.socket.cork()
    process.nextTick(() => this.uncork())
  }

  private uncork (): void {
    if (!this.corked) return
    this.corked = false
    this.socket.uncork()
  }
}
