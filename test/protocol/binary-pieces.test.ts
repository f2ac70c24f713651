/**
 * FrameDecoder in cut-through mode (`binaryPieces`: binary payloads passed on
 * piece by piece, as relays use it) decodes exactly what it decodes whole,
 * under any chunking, errors included.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FrameDecoder } from '../../protocol/decoder.ts'
import { encodeBinary, encodeJson, isBinaryPiece, type JsonValue } from '../../protocol/frame.ts'

type Item = { kind: 'json', value: JsonValue } | { kind: 'binary', bytes: number[] }
type Decoded = Array<{ index: number, json?: string, bytes?: number[] }>

function concat (parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.byteLength }
  return out
}

function encode (items: Item[]): Uint8Array {
  return concat(items.map((it) => it.kind === 'json' ? encodeJson(it.value) : encodeBinary(new Uint8Array(it.bytes)).subarray()))
}

function split (stream: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (stream.byteLength + 1)))].sort((a, b) => a - b)
  const out: Uint8Array[] = []
  let at = 0
  for (const p of [...points, stream.byteLength]) {
    if (p > at) out.push(stream.subarray(at, p))
    at = Math.max(at, p)
  }
  return out
}

/** Frames by index; binary pieces of one frame joined. Errors as `error: detail`. */
function viaStreaming (chunks: Uint8Array[], maxFrame?: number): { frames: Decoded, error?: string, pending: number } {
  const d = new FrameDecoder({ maxFrame, binaryPieces: true })
  const frames: Decoded = []
  try {
    for (const chunk of chunks) {
      d.append(chunk)
      for (let f = d.next(); f !== undefined; f = d.next()) {
        if (f.kind === 'json') {
          frames.push({ index: f.index, json: JSON.stringify(f.value) })
          continue
        }
        expect(isBinaryPiece(f)).toBe(true)
        const last = frames.at(-1)
        const bytes = [...f.bytes.subarray()]
        if (isBinaryPiece(f) && !f.first && last?.index === f.index) last.bytes?.push(...bytes)
        else frames.push({ index: f.index, bytes })
      }
    }
  } catch (err) {
    return { frames, error: (err as Error).message, pending: d.pendingBytes }
  }
  return { frames, pending: d.pendingBytes }
}

function viaFrameDecoder (chunks: Uint8Array[], maxFrame?: number): { frames: Decoded, error?: string, pending: number } {
  const d = new FrameDecoder({ maxFrame })
  const frames: Decoded = []
  try {
    for (const chunk of chunks) {
      for (const f of d.push(chunk)) {
        frames.push(f.kind === 'json' ? { index: f.index, json: JSON.stringify(f.value) } : { index: f.index, bytes: [...f.bytes.subarray()] })
      }
    }
  } catch (err) {
    return { frames, error: (err as Error).message, pending: d.pendingBytes }
  }
  return { frames, pending: d.pendingBytes }
}

const item: fc.Arbitrary<Item> = fc.oneof(
  fc.record({ kind: fc.constant('json' as const), value: fc.jsonValue() as fc.Arbitrary<JsonValue> }),
  fc.record({ kind: fc.constant('binary' as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 300 }) })
)

describe('FrameDecoder, binary pieces', () => {
  it('decodes what FrameDecoder decodes, binary frames as pieces, under any chunking', () => {
    fc.assert(fc.property(fc.array(item, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }), (items, cuts) => {
      const chunks = split(encode(items), cuts)
      const got = viaStreaming(chunks)
      expect(got.error).toBeUndefined()
      expect(got.frames).toEqual(viaFrameDecoder(chunks).frames)
      expect(got.pending).toBe(0)
    }), { numRuns: 300 })
  })

  it('refuses what FrameDecoder refuses, with the same detail', () => {
    const bad: Array<[string, Uint8Array, number?]> = [
      ['unknown kind', new Uint8Array([0, 0, 0, 1, 0x02, 0x41])],
      ['over the limit', new Uint8Array([0, 0, 4, 1, 0x01]), 1024],
      ['bad UTF-8', new Uint8Array([0, 0, 0, 2, 0x00, 0xc3, 0x28])],
      ['bad JSON', concat([encodeJson('ok'), new Uint8Array([0, 0, 0, 3, 0x00, 0x7b, 0x7b, 0x7d])])],
      ['empty JSON', new Uint8Array([0, 0, 0, 0, 0x00])]
    ]
    for (const [what, stream, maxFrame] of bad) {
      for (const cuts of [[], [1], [3, 5, 6]]) {
        const chunks = split(stream, cuts)
        const want = viaFrameDecoder(chunks, maxFrame)
        const got = viaStreaming(chunks, maxFrame)
        expect(want.error, what).toBeDefined()
        expect(got.error, what).toBe(want.error)
        expect(got.frames, what).toEqual(want.frames)
      }
    }
  })

  it('an empty binary frame is one empty piece; a truncated stream leaves bytes pending', () => {
    const d = new FrameDecoder({ binaryPieces: true })
    d.append(new Uint8Array([0, 0, 0, 0, 0x01]))
    const f = d.next()
    expect(f?.kind === 'binary' && f.bytes.byteLength).toBe(0)
    expect(d.next()).toBeUndefined()
    d.append(new Uint8Array([0, 0, 0, 9, 0x01, 1, 2]))
    const piece = d.next()
    expect(piece !== undefined && isBinaryPiece(piece) && [piece.first, piece.frameLength, piece.bytes.byteLength]).toEqual([true, 9, 2])
    expect(d.pendingBytes).toBe(7)
    // Bytes appended but not yet taken as a piece count too: 5 header bytes, 2 passed on, 3 waiting.
    d.append(new Uint8Array([3, 4, 5]))
    expect(d.pendingBytes).toBe(10)
    const rest = d.next()
    expect(rest !== undefined && isBinaryPiece(rest) && [rest.first, [...rest.bytes.subarray()]]).toEqual([false, [3, 4, 5]])
    expect(d.pendingBytes).toBe(10)
  })
})
