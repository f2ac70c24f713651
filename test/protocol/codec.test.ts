import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { pipe } from 'it-pipe'
import { Uint8ArrayList } from 'uint8arraylist'
import {
  DEFAULT_MAX_FRAME, FrameDecoder, HEADER_BYTES, KIND_BINARY, KIND_JSON, ProtocolError,
  binaryHeader, decodeFrames, encodeBinary, encodeJson, type Frame, type JsonValue
} from '../../protocol/index.ts'

// ------------------------------------------------------------------ helpers

type Message = { kind: 'json', value: JsonValue } | { kind: 'binary', bytes: Uint8Array }

/** JSON of any shape, strings over all of UTF-16 (lone surrogates included). */
const jsonArb = fc.oneof(
  fc.jsonValue({ stringUnit: 'binary', maxDepth: 4 }),
  fc.jsonValue({ stringUnit: 'grapheme', maxDepth: 3 })
) as fc.Arbitrary<JsonValue>

const messageArb: fc.Arbitrary<Message> = fc.oneof(
  jsonArb.map((value) => ({ kind: 'json' as const, value })),
  fc.uint8Array({ maxLength: 600 }).map((bytes) => ({ kind: 'binary' as const, bytes })),
  fc.constant({ kind: 'binary' as const, bytes: new Uint8Array(0) })
)

function concat (parts: Array<Uint8Array | Uint8ArrayList>): Uint8Array {
  return new Uint8ArrayList(...parts).slice()
}

function encodeAll (messages: Message[]): Uint8Array {
  return concat(messages.map((m) => m.kind === 'json' ? encodeJson(m.value) : encodeBinary(m.bytes)))
}

/** Cuts `bytes` at the given positions (any integers; taken modulo the length). */
function cut (bytes: Uint8Array, positions: number[]): Uint8Array[] {
  const cuts = [...new Set(positions.map((p) => p % (bytes.byteLength + 1)))].sort((a, b) => a - b)
  const chunks: Uint8Array[] = []
  let from = 0
  for (const at of [...cuts, bytes.byteLength]) {
    chunks.push(bytes.subarray(from, at)) // empty chunks included: a decoder must cope with them
    from = at
  }
  return chunks
}

const oneByteAtATime = (bytes: Uint8Array): Uint8Array[] =>
  Array.from({ length: bytes.byteLength }, (_, i) => bytes.subarray(i, i + 1))

/** What a frame means, in a form `toEqual` compares exactly. */
function plain (frame: Frame): { kind: string, value?: unknown, bytes?: number[], index: number } {
  return frame.kind === 'json'
    ? { kind: 'json', value: frame.value, index: frame.index }
    : { kind: 'binary', bytes: Array.from(frame.bytes.subarray()), index: frame.index }
}

function expected (messages: Message[]): ReturnType<typeof plain>[] {
  return messages.map((m, index) => m.kind === 'json'
    ? { kind: 'json', value: JSON.parse(JSON.stringify(m.value)), index }
    : { kind: 'binary', bytes: Array.from(m.bytes), index })
}

function decodeWithPush (chunks: Array<Uint8Array | Uint8ArrayList>, decoder = new FrameDecoder()): Frame[] {
  const frames: Frame[] = []
  for (const chunk of chunks) for (const frame of decoder.push(chunk)) frames.push(frame)
  return frames
}

async function decodeWithPipe (chunks: Array<Uint8Array | Uint8ArrayList>, maxFrame?: number): Promise<Frame[]> {
  return await pipe(
    async function * () { yield * chunks },
    decodeFrames(maxFrame === undefined ? {} : { maxFrame }),
    async (source) => {
      const frames: Frame[] = []
      for await (const frame of source) frames.push(frame)
      return frames
    }
  )
}

function catchSync (fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('expected a throw')
}

function expectProtocolError (err: unknown, ...fragments: string[]): ProtocolError {
  expect(err).toBeInstanceOf(ProtocolError)
  const pe = err as ProtocolError
  expect(pe.code).toBe('protocol')
  for (const f of fragments) expect(pe.detail).toContain(f)
  expect(pe.message).toBe(pe.detail)
  return pe
}

/** A JSON frame whose payload is exactly `payload` (any bytes). */
function rawJsonFrame (payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(HEADER_BYTES + payload.byteLength)
  new DataView(frame.buffer).setUint32(0, payload.byteLength, false)
  frame[4] = KIND_JSON
  frame.set(payload, HEADER_BYTES)
  return frame
}

// ------------------------------------------------------------------ encoding

describe('encoding (§1)', () => {
  it('encodes the contract example "yours" as exactly 00 00 00 07 00 22 79 6f 75 72 73 22', () => {
    const bytes = encodeJson('yours')
    expect(Array.from(bytes)).toEqual([0x00, 0x00, 0x00, 0x07, 0x00, 0x22, 0x79, 0x6f, 0x75, 0x72, 0x73, 0x22])
    expect(decodeWithPush([bytes]).map(plain)).toEqual([{ kind: 'json', value: 'yours', index: 0 }])
  })

  it('writes the length big-endian, payload bytes only, and the kind byte', () => {
    const payload = new Uint8Array(0x010203).fill(7)
    const frame = encodeBinary(payload).subarray()
    expect(Array.from(frame.subarray(0, HEADER_BYTES))).toEqual([0x00, 0x01, 0x02, 0x03, KIND_BINARY])
    expect(frame.byteLength).toBe(HEADER_BYTES + 0x010203)
    expect(Array.from(binaryHeader(0x010203))).toEqual([0x00, 0x01, 0x02, 0x03, KIND_BINARY])
    expect(Array.from(encodeBinary(new Uint8Array(0)).subarray())).toEqual([0, 0, 0, 0, KIND_BINARY])
    // The length counts UTF-8 bytes, not UTF-16 units.
    const text = encodeJson('é😀')
    expect(new DataView(text.buffer).getUint32(0, false)).toBe(Buffer.byteLength('"é😀"'))
  })

  it('does not copy binary payloads', () => {
    const payload = new Uint8Array(10)
    const list = encodeBinary(payload)
    expect([...list][1]).toBe(payload)
  })

  it('refuses to encode what is not JSON', () => {
    expect(() => encodeJson(undefined)).toThrow(TypeError)
    expect(() => encodeJson(() => 1)).toThrow(TypeError)
    expect(() => encodeJson(undefined)).toThrow('value is not representable as JSON')
  })
})

// ------------------------------------------------------------------ round trip

describe('round trip under any split (§1)', () => {
  it('FrameDecoder.push decodes any message sequence under any split', () => {
    fc.assert(fc.property(
      fc.array(messageArb, { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      (messages, positions) => {
        const chunks = cut(encodeAll(messages), positions)
        const decoder = new FrameDecoder()
        expect(decodeWithPush(chunks, decoder).map(plain)).toEqual(expected(messages))
        expect(decoder.pendingBytes).toBe(0)
      }
    ), { numRuns: 300 })
  })

  it('FrameDecoder.push decodes any message sequence fed one byte at a time', () => {
    fc.assert(fc.property(fc.array(messageArb, { maxLength: 8 }), (messages) => {
      expect(decodeWithPush(oneByteAtATime(encodeAll(messages))).map(plain)).toEqual(expected(messages))
    }), { numRuns: 100 })
  })

  it('decodeFrames through it-pipe decodes any message sequence under any split', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(messageArb, { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      async (messages, positions) => {
        const frames = await decodeWithPipe(cut(encodeAll(messages), positions))
        expect(frames.map(plain)).toEqual(expected(messages))
      }
    ), { numRuns: 200 })
  })

  it('decodeFrames through it-pipe decodes one byte at a time', async () => {
    await fc.assert(fc.asyncProperty(fc.array(messageArb, { maxLength: 8 }), async (messages) => {
      const frames = await decodeWithPipe(oneByteAtATime(encodeAll(messages)))
      expect(frames.map(plain)).toEqual(expected(messages))
    }), { numRuns: 60 })
  })

  it('accepts Uint8ArrayList chunks as well as Uint8Array ones', () => {
    fc.assert(fc.property(
      fc.array(messageArb, { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (messages, positions) => {
        const chunks = cut(encodeAll(messages), positions)
        // Group neighbouring chunks into lists, as a socket reader might hand them over.
        const lists: Uint8ArrayList[] = []
        for (let i = 0; i < chunks.length; i += 3) lists.push(new Uint8ArrayList(...chunks.slice(i, i + 3)))
        expect(decodeWithPush(lists).map(plain)).toEqual(expected(messages))
      }
    ), { numRuns: 100 })
  })

  it('decodes a round trip of unicode strings exactly', () => {
    const values: JsonValue[] = ['', 'Moria', 'ünïcödé', '日本語のテキスト', '😀👩‍👩‍👧', '\u0000\u001f"\\', '\ud800', { 'ключ': ['значение', 1.5, null, true] }]
    const bytes = concat(values.map((v) => encodeJson(v)))
    expect(decodeWithPush(oneByteAtATime(bytes)).map((f) => f.kind === 'json' && f.value))
      .toEqual(values.map((v) => JSON.parse(JSON.stringify(v))))
  })

  it('numbers frames from 0 in stream order, across pushes and kinds', () => {
    const decoder = new FrameDecoder()
    const indexes: number[] = []
    for (let i = 0; i < 10; i++) {
      const chunk = i % 2 === 0 ? encodeJson(['n', i]) : encodeBinary(Uint8Array.of(i)).subarray()
      for (const frame of decoder.push(chunk)) indexes.push(frame.index)
    }
    expect(indexes).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  })

  it('keeps the bytes of a chunk pushed without iterating the result', () => {
    const decoder = new FrameDecoder()
    const bytes = encodeJson('yours')
    void decoder.push(bytes.subarray(0, 6)) // result ignored on purpose
    expect(decoder.pendingBytes).toBe(6)
    expect(decodeWithPush([bytes.subarray(6)], decoder).map(plain)).toEqual([{ kind: 'json', value: 'yours', index: 0 }])
  })

  it('yields binary payloads as views that stay valid after later pushes', () => {
    const decoder = new FrameDecoder()
    const [first] = decodeWithPush([encodeBinary(Uint8Array.of(1, 2, 3)).subarray()], decoder)
    decodeWithPush([encodeBinary(Uint8Array.of(9, 9, 9)).subarray()], decoder)
    expect(plain(first)).toEqual({ kind: 'binary', bytes: [1, 2, 3], index: 0 })
  })
})

// ------------------------------------------------------------------ bad input

describe('protocol violations (§1)', () => {
  it('refuses any unknown kind, naming the kind and the frame index', () => {
    fc.assert(fc.property(
      fc.array(messageArb, { maxLength: 5 }),
      fc.integer({ min: 2, max: 255 }),
      fc.boolean(),
      (before, kind, byteByByte) => {
        const bad = Uint8Array.of(0, 0, 0, 1, kind, 0x30)
        const bytes = concat([encodeAll(before), bad])
        const err = catchSync(() => decodeWithPush(byteByByte ? oneByteAtATime(bytes) : [bytes]))
        const pe = expectProtocolError(err, `0x${kind.toString(16).padStart(2, '0')}`, `frame ${before.length}`)
        expect(pe.frameIndex).toBe(before.length)
      }
    ), { numRuns: 150 })
  })

  it('refuses an unknown kind as soon as its header is complete', () => {
    const decoder = new FrameDecoder()
    const err = catchSync(() => [...decoder.push(Uint8Array.of(0, 0, 0, 100, 0x7f))])
    expectProtocolError(err, '0x7f', 'frame 0')
  })

  it('refuses invalid UTF-8 in a JSON frame', () => {
    const invalid = [
      [0x22, 0xff, 0x22], // a byte that never occurs in UTF-8
      [0x22, 0xc3, 0x22], // truncated 2-byte sequence
      [0x22, 0xc0, 0xaf, 0x22], // overlong encoding of '/'
      [0x22, 0xed, 0xa0, 0x80, 0x22], // an encoded surrogate (CESU-8)
      [0x22, 0xf4, 0x90, 0x80, 0x80, 0x22] // beyond U+10FFFF
    ]
    for (const [i, payload] of invalid.entries()) {
      const bytes = concat([encodeJson('yours'), encodeJson(i), rawJsonFrame(Uint8Array.from(payload))])
      const err = catchSync(() => decodeWithPush([bytes]))
      const pe = expectProtocolError(err, 'UTF-8', 'frame 2')
      expect(pe.frameIndex).toBe(2)
    }
  })

  it('refuses any JSON frame whose payload is not valid UTF-8 (property)', () => {
    const fatal = new TextDecoder('utf-8', { fatal: true })
    const isValidUtf8 = (b: Uint8Array): boolean => { try { fatal.decode(b); return true } catch { return false } }
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }).filter((b) => !isValidUtf8(b)), (payload) => {
      expectProtocolError(catchSync(() => decodeWithPush([rawJsonFrame(payload)])), 'UTF-8', 'frame 0')
    }))
  })

  it('refuses JSON that does not parse, naming the frame index', () => {
    const bad = ['', '{', '[1,', 'yours', "'yours'", '"yours', '1 2', '{"a":1}}', 'NaN', 'undefined', '[1,]']
    for (const text of bad) {
      const bytes = concat([encodeJson('a'), encodeBinary(Uint8Array.of(1)), encodeJson('b'), rawJsonFrame(Buffer.from(text))])
      const err = catchSync(() => decodeWithPush(oneByteAtATime(bytes)))
      const pe = expectProtocolError(err, 'frame 3', 'JSON')
      expect(pe.frameIndex).toBe(3)
    }
  })

  it('yields every good frame before the bad one', () => {
    const decoder = new FrameDecoder()
    const good: Frame[] = []
    const bytes = concat([encodeJson(1), encodeJson(2), rawJsonFrame(Buffer.from('{'))])
    const err = catchSync(() => { for (const f of decoder.push(bytes)) good.push(f) })
    expectProtocolError(err, 'frame 2')
    expect(good.map(plain)).toEqual([{ kind: 'json', value: 1, index: 0 }, { kind: 'json', value: 2, index: 1 }])
  })

  it('decodeFrames throws a ProtocolError when the stream ends inside a frame', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(messageArb, { minLength: 1, maxLength: 6 }),
      fc.nat(),
      fc.array(fc.nat(), { maxLength: 10 }),
      async (messages, at, positions) => {
        const bytes = encodeAll(messages)
        // Frame boundaries, where ending is clean.
        const boundaries = new Set<number>([0])
        let offset = 0
        for (const m of messages) {
          offset += m.kind === 'json' ? encodeJson(m.value).byteLength : HEADER_BYTES + m.bytes.byteLength
          boundaries.add(offset)
        }
        const end = at % (bytes.byteLength + 1)
        const truncated = bytes.subarray(0, end)
        const run = decodeWithPipe(cut(truncated, positions))
        if (boundaries.has(end)) {
          await expect(run).resolves.toBeInstanceOf(Array)
        } else {
          const err = await run.then(() => undefined, (e: unknown) => e)
          expectProtocolError(err, 'ended inside a frame')
        }
      }
    ), { numRuns: 200 })
  })

  it('decodeFrames throws on a stream that ends inside a header', async () => {
    const err = await decodeWithPipe([encodeJson('yours'), Uint8Array.of(0, 0)]).then(() => undefined, (e: unknown) => e)
    const pe = expectProtocolError(err, '2 bytes pending')
    // No frame is to blame for an end of stream: the index is -1 ("none"), and logs name the error by its class.
    expect(pe.frameIndex).toBe(-1)
    expect(pe.name).toBe('ProtocolError')
    expect(String(pe)).toBe('ProtocolError: stream ended inside a frame (2 bytes pending)')
  })

  it('decodeFrames passes on the first violation as a ProtocolError', async () => {
    const err = await decodeWithPipe([encodeJson('a'), Uint8Array.of(0, 0, 0, 0, 9)]).then(() => undefined, (e: unknown) => e)
    expectProtocolError(err, '0x09', 'frame 1')
  })
})

// ------------------------------------------------------------------ frame limit

describe('frame limit (§1)', () => {
  const MiB = 1024 * 1024

  it('defaults to 64 MiB', () => {
    expect(DEFAULT_MAX_FRAME).toBe(64 * MiB)
  })

  it('refuses a 4 GiB announce with 10 bytes behind it at once, buffering nothing more', () => {
    const before = process.memoryUsage().arrayBuffers
    const decoder = new FrameDecoder()
    const chunk = concat([Uint8Array.of(0xff, 0xff, 0xff, 0xff, KIND_BINARY), new Uint8Array(10)])
    const err = catchSync(() => [...decoder.push(chunk)])
    const pe = expectProtocolError(err, 'frame 0', '4294967295', String(DEFAULT_MAX_FRAME))
    expect(pe.frameIndex).toBe(0)
    expect(decoder.pendingBytes).toBe(15)
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(4 * MiB)
  })

  it('refuses a 4 GiB announce on the push of the header alone (no payload yet)', () => {
    for (const kind of [KIND_JSON, KIND_BINARY]) {
      const decoder = new FrameDecoder()
      const err = catchSync(() => [...decoder.push(Uint8Array.of(0xff, 0xff, 0xff, 0xff, kind))])
      expectProtocolError(err, '4294967295')
      expect(decoder.pendingBytes).toBe(HEADER_BYTES)
    }
  })

  it('with maxFrame 1000, refuses a 1001-byte announce after only the 5 header bytes', () => {
    for (const kind of [KIND_JSON, KIND_BINARY]) {
      const decoder = new FrameDecoder({ maxFrame: 1000 })
      const header = Uint8Array.of(0x00, 0x00, 0x03, 0xe9, kind) // 1001
      for (let i = 0; i < 4; i++) expect([...decoder.push(header.subarray(i, i + 1))]).toEqual([])
      const err = catchSync(() => [...decoder.push(header.subarray(4))])
      expectProtocolError(err, 'frame 0', '1001', '1000')
      expect(decoder.pendingBytes).toBe(HEADER_BYTES)
    }
  })

  it('with maxFrame 1000, accepts exactly 1000 bytes', () => {
    const decoder = new FrameDecoder({ maxFrame: 1000 })
    const payload = new Uint8Array(1000).fill(0xab)
    expect(decodeWithPush([encodeBinary(payload)], decoder).map((f) => f.kind === 'binary' && f.bytes.byteLength)).toEqual([1000])
    const json = encodeJson('x'.repeat(998)) // 1000 bytes with the quotes
    expect(decodeWithPush([json], decoder).map((f) => f.index)).toEqual([1])
  })

  it('with maxFrame 1000, refuses an oversized frame after good ones, naming its index', async () => {
    const bytes = concat([encodeJson('a'), encodeBinary(new Uint8Array(1000)), binaryHeader(1001)])
    const err = await decodeWithPipe(oneByteAtATime(bytes), 1000).then(() => undefined, (e: unknown) => e)
    expectProtocolError(err, 'frame 2', '1001')
  })

  it('does not allocate for an announced length: a 60 MiB announce with 10 bytes holds only those bytes', () => {
    const before = process.memoryUsage().arrayBuffers
    const decoder = new FrameDecoder()
    const frames = decodeWithPush([binaryHeader(60 * MiB), new Uint8Array(10)], decoder)
    expect(frames).toEqual([])
    expect(decoder.pendingBytes).toBe(HEADER_BYTES + 10)
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(4 * MiB)
  })

  it('holds at most one partial frame: pending bytes stay under frame + chunk size while streaming', () => {
    const decoder = new FrameDecoder()
    const frame = encodeBinary(new Uint8Array(MiB)).subarray()
    const stream = concat([frame, frame, frame, encodeJson(['ok', 'render/0001.png'])])
    let maxPending = 0
    let frames = 0
    for (const chunk of cut(stream, Array.from({ length: Math.ceil(stream.byteLength / 65536) }, (_, i) => i * 65536))) {
      for (const f of decoder.push(chunk)) { void f; frames++ }
      maxPending = Math.max(maxPending, decoder.pendingBytes)
    }
    expect(frames).toBe(4)
    expect(decoder.pendingBytes).toBe(0)
    expect(maxPending).toBeLessThan(HEADER_BYTES + MiB)
  })
})
