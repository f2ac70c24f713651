import { Uint8ArrayList } from 'uint8arraylist'
import {
  DEFAULT_MAX_FRAME, HEADER_BYTES, KIND_BINARY, KIND_JSON, ProtocolError,
  type BinaryPiece, type Frame, type JsonValue
} from './frame.ts'
import { parseJsonText } from './json-value.ts'

export interface DecoderOptions {
  /** Largest payload accepted, in bytes (§1, default 64 MiB). */
  maxFrame?: number
  /**
   * Cut-through: a binary frame's payload comes out piece by piece as it
   * arrives (each a BinaryPiece) instead of whole. JSON frames are always whole.
   */
  binaryPieces?: boolean
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Streaming frame decoder (§1). Feed it bytes in any chunking; it gives every
 * complete frame. A header announcing more than `maxFrame` bytes is refused as
 * soon as the header is read, before any of its payload is buffered.
 *
 * Pull-based: `append` bytes, then `next()` until undefined. What is not taken
 * yet waits here, so a reader that pauses loses nothing.
 */
export class FrameDecoder {
  private readonly buffer = new Uint8ArrayList()
  private readonly maxFrame: number
  private readonly binaryPieces: boolean
  private nextIndex = 0
  /** Cut-through only: the binary frame being passed on, while bytes of it are still to come. */
  private piecing: { index: number, length: number, left: number, first: boolean } | null = null

  constructor (options: DecoderOptions = {}) {
    this.maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME
    this.binaryPieces = options.binaryPieces ?? false
  }

  /** Bytes of a frame that has started but not been given out whole. */
  get pendingBytes (): number {
    const p = this.piecing
    return p === null ? this.buffer.byteLength : HEADER_BYTES + p.length - p.left + this.buffer.byteLength
  }

  append (chunk: Uint8Array | Uint8ArrayList): void {
    this.buffer.append(chunk)
  }

  /**
   * Appends `chunk` at once (even if the result is never iterated) and returns
   * the frames it completes; iterate the result to get them and to see errors.
   */
  push (chunk: Uint8Array | Uint8ArrayList): Generator<Frame> {
    this.append(chunk)
    return this.drain()
  }

  /** The next frame (or piece) decodable from what was appended; throws ProtocolError. */
  next (): Frame | undefined {
    if (this.piecing !== null) return this.nextPiece(this.piecing)
    if (this.buffer.byteLength < HEADER_BYTES) return undefined
    const index = this.nextIndex
    const length = this.buffer.getUint32(0)
    const kind = this.buffer.get(4)
    if (kind !== KIND_JSON && kind !== KIND_BINARY) {
      throw new ProtocolError(`unknown frame kind 0x${kind.toString(16).padStart(2, '0')} at frame ${index}`, index)
    }
    if (length > this.maxFrame) {
      throw new ProtocolError(`frame ${index} announces ${length} bytes, over the limit of ${this.maxFrame}`, index)
    }
    if (kind === KIND_BINARY && this.binaryPieces) {
      this.buffer.consume(HEADER_BYTES)
      this.nextIndex++
      this.piecing = { index, length, left: length, first: true }
      return this.nextPiece(this.piecing)
    }
    if (this.buffer.byteLength < HEADER_BYTES + length) return undefined
    const payload = this.buffer.sublist(HEADER_BYTES, HEADER_BYTES + length)
    this.buffer.consume(HEADER_BYTES + length)
    this.nextIndex++
    return kind === KIND_BINARY
      ? { kind: 'binary', bytes: payload, index }
      : { kind: 'json', value: parseJsonPayload(payload, index), index }
  }

  private nextPiece (p: { index: number, length: number, left: number, first: boolean }): BinaryPiece | undefined {
    const n = Math.min(p.left, this.buffer.byteLength)
    if (n === 0 && p.left > 0) return undefined
    const bytes = this.buffer.sublist(0, n)
    this.buffer.consume(n)
    p.left -= n
    const piece: BinaryPiece = { kind: 'binary', bytes, index: p.index, frameLength: p.length, first: p.first }
    p.first = false
    if (p.left === 0) this.piecing = null
    return piece
  }

  private * drain (): Generator<Frame> {
    for (let frame = this.next(); frame !== undefined; frame = this.next()) yield frame
  }
}

function parseJsonPayload (payload: Uint8ArrayList, index: number): JsonValue {
  let text: string
  try {
    text = utf8.decode(payload.subarray())
  } catch {
    throw new ProtocolError(`frame ${index}: invalid UTF-8 in a JSON frame`, index)
  }
  const parsed = parseJsonText(text)
  if (!parsed.ok) throw new ProtocolError(`frame ${index}: ${parsed.reason}`, index)
  return parsed.value
}

/**
 * An `it-pipe` transform: a byte stream (a socket's async iterable) in,
 * frames out. Throws ProtocolError on the first violation.
 */
export function decodeFrames (options: DecoderOptions = {}) {
  return async function * (source: AsyncIterable<Uint8Array | Uint8ArrayList>): AsyncGenerator<Frame> {
    const decoder = new FrameDecoder(options)
    for await (const chunk of source) yield * decoder.push(chunk)
    if (decoder.pendingBytes > 0) {
      // A stream that ends mid-frame is a truncated peer, not a new violation: report it the same way.
      throw new ProtocolError(`stream ended inside a frame (${decoder.pendingBytes} bytes pending)`, -1)
    }
  }
}
