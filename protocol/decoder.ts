import { Uint8ArrayList } from 'uint8arraylist'
import {
  DEFAULT_MAX_FRAME, HEADER_BYTES, KIND_BINARY, KIND_JSON, ProtocolError,
  type Frame, type JsonValue
} from './frame.ts'

export interface DecoderOptions {
  /** Largest payload accepted, in bytes (§1, default 64 MiB). */
  maxFrame?: number
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Streaming frame decoder (§1). Feed it bytes in any chunking; it yields every
 * complete frame. A header announcing more than `maxFrame` bytes is refused as
 * soon as the header is read, before any of its payload is buffered.
 */
export class FrameDecoder {
  private readonly buffer = new Uint8ArrayList()
  private readonly maxFrame: number
  private nextIndex = 0

  constructor (options: DecoderOptions = {}) {
    this.maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME
  }

  /** Bytes received but not yet part of a complete frame. */
  get pendingBytes (): number {
    return this.buffer.byteLength
  }

  /**
   * Appends `chunk` at once (even if the result is never iterated) and returns
   * the frames it completes; iterate the result to get them and to see errors.
   */
  push (chunk: Uint8Array | Uint8ArrayList): Generator<Frame> {
    this.buffer.append(chunk)
    return this.drain()
  }

  private * drain (): Generator<Frame> {
    while (this.buffer.byteLength >= HEADER_BYTES) {
      const index = this.nextIndex
      const length = this.buffer.getUint32(0)
      const kind = this.buffer.get(4)
      if (kind !== KIND_JSON && kind !== KIND_BINARY) {
        throw new ProtocolError(`unknown frame kind 0x${kind.toString(16).padStart(2, '0')} at frame ${index}`, index)
      }
      if (length > this.maxFrame) {
        throw new ProtocolError(`frame ${index} announces ${length} bytes, over the limit of ${this.maxFrame}`, index)
      }
      if (this.buffer.byteLength < HEADER_BYTES + length) return
      const payload = this.buffer.sublist(HEADER_BYTES, HEADER_BYTES + length)
      this.buffer.consume(HEADER_BYTES + length)
      this.nextIndex++
      yield kind === KIND_BINARY
        ? { kind: 'binary', bytes: payload, index }
        : { kind: 'json', value: parseJsonPayload(payload, index), index }
    }
  }
}

function parseJsonPayload (payload: Uint8ArrayList, index: number): JsonValue {
  let text: string
  try {
    text = utf8.decode(payload.subarray())
  } catch {
    throw new ProtocolError(`frame ${index}: invalid UTF-8 in a JSON frame`, index)
  }
  try {
    return JSON.parse(text) as JsonValue
  } catch (err) {
    throw new ProtocolError(`frame ${index}: JSON does not parse (${(err as Error).message})`, index)
  }
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
