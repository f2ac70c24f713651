import type { Socket } from 'node:net'
import { Uint8ArrayList } from 'uint8arraylist'
import type { AnyActorRef } from 'xstate'
import { errorMessage } from '../protocol/errors.ts'
import {
  DEFAULT_MAX_FRAME, encodeJson, HEADER_BYTES, KIND_BINARY, KIND_JSON, ProtocolError,
  type BinaryFrame, type Frame, type JsonValue
} from '../protocol/frame.ts'
import type { BorrowedFrames, FramePort } from '../actors/ports.ts'
import { FrameQueue } from './frame-queue.ts'

/** How long a closing connection may take to flush before it is destroyed. */
const CLOSE_GRACE_MS = 2_000

const DRAINED: Promise<void> = Promise.resolve()

/**
 * A piece of a binary frame's payload, as it arrived. `frameLength` is the
 * whole frame's payload size; `first` marks the frame's first piece.
 */
export interface BinaryPiece extends BinaryFrame {
  readonly frameLength: number
  readonly first: boolean
}

export const isBinaryPiece = (frame: Frame): frame is BinaryPiece => frame.kind === 'binary' && 'frameLength' in frame

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * §1 frames from a byte stream, like protocol/decoder.ts's FrameDecoder (same
 * checks, same error details), except that a binary frame's payload is not
 * buffered whole: each part of it that arrives comes out at once as a binary
 * frame of its own (a BinaryPiece). A relay passes those on as they come
 * (cut-through, as a bare forwarder would) and never holds a frame's worth of
 * chunks; the taker still gets binary frames adding up to the file's size.
 * JSON frames come out whole.
 *
 * Pull-based: `push` a chunk, then `next()` until undefined; what is not taken
 * yet waits here (a paused reader loses nothing).
 */
export class StreamingDecoder {
  private readonly input: Uint8Array[] = []
  private readonly header = new Uint8Array(HEADER_BYTES)
  private headerHave = 0
  /** Kind of the frame being read, or -1 between frames. */
  private kind = -1
  private length = 0
  private left = 0
  private first = false
  private json: Uint8Array[] = []
  private index = -1
  private readonly maxFrame: number

  constructor (options: { maxFrame?: number } = {}) {
    this.maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME
  }

  push (chunk: Uint8Array): void {
    if (chunk.byteLength > 0) this.input.push(chunk)
  }

  /** The stream ended inside a frame: how many of its bytes had arrived. */
  get pendingBytes (): number {
    if (this.kind === -1) return this.headerHave
    return HEADER_BYTES + this.length - this.left
  }

  /** The next frame (or binary piece) decodable from what was pushed; throws ProtocolError. */
  next (): Frame | undefined {
    while (true) {
      if (this.kind === -1) {
        if (!this.readHeader()) return undefined
        if (this.length > 0) continue
        const kind: number = this.kind as number
        this.kind = -1
        if (kind === KIND_BINARY) return this.piece(new Uint8Array(0))
        return { kind: 'json', value: parseJson([], 0, this.index), index: this.index }
      }
      const chunk = this.input[0]
      if (chunk === undefined) return undefined
      const n = Math.min(this.left, chunk.byteLength)
      let part = chunk
      if (n === chunk.byteLength) {
        this.input.shift()
      } else {
        part = chunk.subarray(0, n)
        this.input[0] = chunk.subarray(n)
      }
      this.left -= n
      if (this.kind === KIND_BINARY) {
        if (this.left === 0) this.kind = -1
        return this.piece(part)
      }
      this.json.push(part)
      if (this.left === 0) {
        this.kind = -1
        const parts = this.json
        this.json = []
        return { kind: 'json', value: parseJson(parts, this.length, this.index), index: this.index }
      }
    }
  }

  private piece (bytes: Uint8Array): BinaryPiece {
    const first = this.first
    this.first = false
    return { kind: 'binary', bytes: new Uint8ArrayList(bytes), index: this.index, frameLength: this.length, first }
  }

  /** Reads a frame header from the input; false when it is not all there yet. */
  private readHeader (): boolean {
    while (this.headerHave < HEADER_BYTES) {
      const chunk = this.input[0]
      if (chunk === undefined) return false
      const n = Math.min(HEADER_BYTES - this.headerHave, chunk.byteLength)
      this.header.set(n === chunk.byteLength ? chunk : chunk.subarray(0, n), this.headerHave)
      this.headerHave += n
      if (n === chunk.byteLength) this.input.shift()
      else this.input[0] = chunk.subarray(n)
    }
    this.headerHave = 0
    this.index++
    const h = this.header
    const length = ((h[0] << 24) >>> 0) + (h[1] << 16) + (h[2] << 8) + h[3]
    const kind = h[4]
    if (kind !== KIND_JSON && kind !== KIND_BINARY) {
      throw new ProtocolError(`unknown frame kind 0x${kind.toString(16).padStart(2, '0')} at frame ${this.index}`, this.index)
    }
    if (length > this.maxFrame) {
      throw new ProtocolError(`frame ${this.index} announces ${length} bytes, over the limit of ${this.maxFrame}`, this.index)
    }
    this.kind = kind
    this.length = length
    this.left = length
    this.first = true
    return true
  }
}

function parseJson (parts: Uint8Array[], length: number, index: number): JsonValue {
  let bytes: Uint8Array
  if (parts.length === 1) {
    bytes = parts[0]
  } else {
    bytes = new Uint8Array(length)
    let at = 0
    for (const p of parts) { bytes.set(p, at); at += p.byteLength }
  }
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    throw new ProtocolError(`frame ${index}: invalid UTF-8 in a JSON frame`, index)
  }
  try {
    return JSON.parse(text) as JsonValue
  } catch (err) {
    throw new ProtocolError(`frame ${index}: JSON does not parse (${(err as Error).message})`, index)
  }
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

  get isOpen (): boolean {
    return !this.socket.destroyed && !this.closing
  }

  /** Starts reading; resolves when the connection has ended. */
  run (session: AnyActorRef): Promise<void> {
    this.session = session
    const socket = this.socket
    const decoder = new StreamingDecoder({ maxFrame: this.maxFrame })
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
        decoder.push(chunk)
        if (!blocked) pump()
      })
      socket.on('end', () => { eof = true; if (!blocked) pump() })
      socket.on('close', () => finish())
      socket.on('error', (err) => finish(`connection error | ${err.message}`))
    })
  }

  sendJson (value: unknown): void {
    if (!this.socket.writable) return
    this.corkForThisTick()
    this.socket.write(encodeJson(value))
  }

  sendBinary (chunks: Iterable<Uint8Array>, byteLength: number): Promise<void> {
    const s = this.socket
    if (!s.writable) return DRAINED
    s.cork()
    // From Node's buffer pool: a fresh 5-byte ArrayBuffer per frame would cost a backing store each.
    const header = Buffer.allocUnsafe(HEADER_BYTES)
    header.writeUInt32BE(byteLength, 0)
    header[4] = KIND_BINARY
    s.write(header)
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
