import { describe, expect, it } from 'vitest'
import { FrameDecoder } from '../../protocol/decoder.ts'
import { encodeBinary, encodeJson, isBinaryPiece, type Frame } from '../../protocol/frame.ts'

function decodeAll (bytes: Uint8Array, binaryPieces: boolean): Frame[] {
  const d = new FrameDecoder({ binaryPieces })
  d.append(bytes)
  const out: Frame[] = []
  for (let f = d.next(); f !== undefined; f = d.next()) out.push(f)
  return out
}

describe('isBinaryPiece', () => {
  it('is true only for a piece from a cut-through decoder, not for a JSON frame nor a whole binary frame', () => {
    const stream = new Uint8Array([...encodeJson('yours'), ...encodeBinary(new Uint8Array([1, 2, 3])).subarray()])
    const [json, piece] = decodeAll(stream, true)
    expect(json.kind).toBe('json')
    expect(isBinaryPiece(json)).toBe(false)
    expect(isBinaryPiece(piece)).toBe(true)
    const [, whole] = decodeAll(stream, false)
    expect(whole.kind).toBe('binary')
    expect(isBinaryPiece(whole)).toBe(false)
  })
})
