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
  /** Bytes appended and not given out yet (replaced, not emptied, when a piece takes all of it). */
  private buffer = new Uint8ArrayList()
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
    const buffer = this.buffer
    const have = buffer.byteLength
    if (have < HEADER_BYTES) return undefined
    const index = this.nextIndex
    // Views, not copies, while the bytes lie in one chunk (nearly always): no DataView, no sublist per frame.
    const header = buffer.subarray(0, HEADER_BYTES)
    const length = uint32At(header)
    const kind = header[4]
    if (kind !== KIND_JSON && kind !== KIND_BINARY) {
      throw new ProtocolError(`unknown frame kind 0x${kind.toString(16).padStart(2, '0')} at frame ${index}`, index)
    }
    if (length > this.maxFrame) {
      throw new ProtocolError(`frame ${index} announces ${length} bytes, over the limit of ${this.maxFrame}`, index)
    }
    if (kind === KIND_BINARY && this.binaryPieces) {
      buffer.consume(HEADER_BYTES)
      this.nextIndex++
      this.piecing = { index, length, left: length, first: true }
      return this.nextPiece(this.piecing)
    }
    const end = HEADER_BYTES + length
    if (have < end) return undefined
    this.nextIndex++
    if (kind === KIND_JSON) {
      const value = parseJsonPayload(buffer.subarray(HEADER_BYTES, end), index)
      buffer.consume(end)
      return { kind: 'json', value, index }
    }
    const payload = buffer.sublist(HEADER_BYTES, end)
    buffer.consume(end)
    return { kind: 'binary', bytes: payload, index }
  }

  private nextPiece (p: { index: number, length: number, left: number, first: boolean }): BinaryPiece | undefined {
    const have = this.buffer.byteLength
    const n = Math.min(p.left, have)
    if (n === 0 && p.left > 0) return undefined
    let bytes: Uint8ArrayList
    if (n === have) {
      // The piece is everything buffered (a relay's usual chunk): hand the list over, start a new one.
      bytes = this.buffer
      this.buffer = new Uint8ArrayList()
    } else {
      bytes = this.buffer.sublist(0, n)
      this.buffer.consume(n)
    }
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

/** A frame header's big-endian length, from its first four bytes. */
const uint32At = (b: Uint8Array): number => ((b[0] << 24) >>> 0) + ((b[1] << 16) | (b[2] << 8) | b[3])

function parseJsonPayload (payload: Uint8Array, index: number): JsonValue {
  let text: string
  try {
    text = utf8.decode(payload)
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
