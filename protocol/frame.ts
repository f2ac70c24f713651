import { Uint8ArrayList } from 'uint8arraylist'

/** §1: every frame is `length: uint32 BE | kind: u8 | payload`. */
export const HEADER_BYTES = 5
export const KIND_JSON = 0x00
export const KIND_BINARY = 0x01
/** §1: the server's default frame limit. */
export const DEFAULT_MAX_FRAME = 64 * 1024 * 1024
/** §1: senders split file content into binary frames of at most 1 MiB. */
export const MAX_CHUNK = 1024 * 1024

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

export interface JsonFrame {
  readonly kind: 'json'
  readonly value: JsonValue
  /** 0-based position of this frame in its stream, for error messages. */
  readonly index: number
}

export interface BinaryFrame {
  readonly kind: 'binary'
  /** The payload, as views into the received chunks (not copied). */
  readonly bytes: Uint8ArrayList
  readonly index: number
}

/**
 * A part of a binary frame's payload, from a decoder in cut-through mode: it
 * comes out as it arrives, so a relay never holds a frame's worth of bytes.
 */
export interface BinaryPiece extends BinaryFrame {
  /** The whole frame's payload size, as its header announced. */
  readonly frameLength: number
  /** The frame's first piece (its size is known before any of it is relayed). */
  readonly first: boolean
}

export type Frame = JsonFrame | BinaryFrame

export const isBinaryPiece = (frame: Frame): frame is BinaryPiece => frame.kind === 'binary' && 'frameLength' in frame

/** A protocol violation (§1): the peer gets `["error","protocol",detail]` and is closed. */
export class ProtocolError extends Error {
  readonly code = 'protocol'
  constructor (readonly detail: string, readonly frameIndex: number) {
    super(detail)
    this.name = 'ProtocolError'
  }
}

function header (length: number, kind: number): Uint8Array {
  const h = new Uint8Array(HEADER_BYTES)
  new DataView(h.buffer).setUint32(0, length, false)
  h[4] = kind
  return h
}

const utf8 = new TextEncoder()

/** Encodes one JSON message as a single contiguous frame. */
export function encodeJson (value: unknown): Uint8Array {
  const text = JSON.stringify(value)
  if (text === undefined) throw new TypeError('value is not representable as JSON')
  const payload = utf8.encode(text)
  const frame = new Uint8Array(HEADER_BYTES + payload.byteLength)
  new DataView(frame.buffer).setUint32(0, payload.byteLength, false)
  frame[4] = KIND_JSON
  frame.set(payload, HEADER_BYTES)
  return frame
}

/**
 * Encodes raw bytes as a binary frame. The payload is not copied: the result
 * is the 5-byte header followed by the caller's buffers.
 */
export function encodeBinary (bytes: Uint8Array | Uint8ArrayList): Uint8ArrayList {
  return new Uint8ArrayList(header(bytes.byteLength, KIND_BINARY), bytes)
}

/**
 * The header alone, for writers that send the payload buffers themselves.
 * From Node's buffer pool: a fresh 5-byte ArrayBuffer per frame would cost a
 * backing store each, on the hot path of every relayed chunk.
 */
export function binaryHeader (length: number): Uint8Array {
  const h = Buffer.allocUnsafe(HEADER_BYTES)
  h.writeUInt32BE(length, 0)
  h[4] = KIND_BINARY
  return h
}
