/**
 * Frame decoding throughput against a plain memory copy of the same bytes.
 *
 * The stream is what a taker's socket carries during a big relay (§5): for
 * each file a JSON header `["file", path, 1048576]`, one 1 MiB binary frame
 * and an `["ok", path]` ack, about 256 MiB in all, delivered in 64 KiB chunks
 * as TCP would. Measured, 3 repetitions interleaved, median of each:
 *   (a) decode: FrameDecoder.push over every chunk, touching every frame;
 *   (b) copy: every chunk memcpy'd into a reusable 1 MiB buffer (the floor:
 *       the cost of merely looking at each byte once);
 *   (c) decode + copy: (a), then each binary payload copied into the 1 MiB
 *       buffer, as a consumer writing the bytes somewhere would.
 * Target: decode_time / copy_time ≤ 1.5.
 *
 * Run alone: `npx tsx bench/codec.ts`; with the others: `npm run bench`.
 */
import { randomFillSync } from 'node:crypto'
import { FrameDecoder, HEADER_BYTES, encodeBinary, encodeJson } from '../protocol/index.ts'
import { isMain, markdownTable, type Row } from './run.ts'

const MiB = 1024 * 1024
const FILE_BYTES = MiB
const FILES = 256
const CHUNK = 64 * 1024
const REPETITIONS = 3

/** The whole stream in one buffer, and its 64 KiB chunks (views, not copies). */
function buildStream (): { stream: Uint8Array, chunks: Uint8Array[], frames: number } {
  const content = randomFillSync(new Uint8Array(FILE_BYTES))
  const parts: Uint8Array[] = []
  const manifest: Record<string, string> = {}
  const paths = Array.from({ length: FILES }, (_, i) => `render/${String(i + 1).padStart(4, '0')}.png`)
  for (const p of paths) manifest[p] = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
  parts.push(encodeJson(['give', '/rnd/scene_1/shot_2']), encodeJson(manifest), encodeJson(paths))
  for (const p of paths) {
    parts.push(encodeJson(['file', p, FILE_BYTES]), encodeBinary(content).subarray(), encodeJson(['ok', p]))
  }
  parts.push(encodeJson('yours'))
  const total = parts.reduce((n, p) => n + p.byteLength, 0)
  const stream = new Uint8Array(total)
  let offset = 0
  for (const p of parts) { stream.set(p, offset); offset += p.byteLength }
  const chunks: Uint8Array[] = []
  for (let at = 0; at < total; at += CHUNK) chunks.push(stream.subarray(at, Math.min(at + CHUNK, total)))
  return { stream, chunks, frames: parts.length }
}

interface Run { ms: number, check: number }

function decode (chunks: readonly Uint8Array[], expectedFrames: number): Run {
  const decoder = new FrameDecoder()
  let frames = 0
  let bytes = 0
  const t0 = performance.now()
  for (const chunk of chunks) {
    for (const frame of decoder.push(chunk)) {
      frames++
      bytes += frame.kind === 'binary' ? frame.bytes.byteLength : 1
    }
  }
  const ms = performance.now() - t0
  if (frames !== expectedFrames || decoder.pendingBytes !== 0) throw new Error(`decoded ${frames} frames, expected ${expectedFrames}`)
  return { ms, check: bytes }
}

function copy (chunks: readonly Uint8Array[], target: Uint8Array): Run {
  let offset = 0
  let check = 0
  const t0 = performance.now()
  for (const chunk of chunks) {
    if (offset + chunk.byteLength > target.byteLength) offset = 0
    target.set(chunk, offset)
    offset += chunk.byteLength
    check += target[offset - 1]
  }
  return { ms: performance.now() - t0, check }
}

function decodeAndCopy (chunks: readonly Uint8Array[], target: Uint8Array, expectedFrames: number): Run {
  const decoder = new FrameDecoder()
  let frames = 0
  let check = 0
  const t0 = performance.now()
  for (const chunk of chunks) {
    for (const frame of decoder.push(chunk)) {
      frames++
      if (frame.kind !== 'binary') continue
      let offset = 0
      for (const buf of frame.bytes) { target.set(buf, offset); offset += buf.byteLength }
      check += offset
    }
  }
  const ms = performance.now() - t0
  if (frames !== expectedFrames) throw new Error(`decoded ${frames} frames, expected ${expectedFrames}`)
  return { ms, check }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = (n: number, digits = 1): string => n.toFixed(digits)

export async function benchCodec (): Promise<Row[]> {
  const { stream, chunks, frames } = buildStream()
  const target = new Uint8Array(FILE_BYTES + HEADER_BYTES)
  const mb = stream.byteLength / 1e6

  // One untimed pass of each, so that all three are measured with warm code.
  decode(chunks, frames)
  copy(chunks, target)
  decodeAndCopy(chunks, target, frames)

  const times = { decode: [] as number[], copy: [] as number[], both: [] as number[] }
  for (let i = 0; i < REPETITIONS; i++) {
    times.decode.push(decode(chunks, frames).ms)
    times.copy.push(copy(chunks, target).ms)
    times.both.push(decodeAndCopy(chunks, target, frames).ms)
    await new Promise((resolve) => setImmediate(resolve))
  }

  const row = (measure: string, ms: number[], note = ''): Row => ({
    measure,
    'median ms': fmt(median(ms)),
    'MB/s': fmt(mb / (median(ms) / 1000), 0),
    'runs (ms)': ms.map((t) => fmt(t)).join(' / '),
    note
  })
  const ratio = median(times.decode) / median(times.copy)
  return [
    row('(a) decode (FrameDecoder)', times.decode, 'payloads are views, not copied'),
    row('(b) copy (memcpy to 1 MiB buffer)', times.copy, `${fmt(mb, 0)} MB: ${frames} frames in ${chunks.length} chunks of 64 KiB`),
    row('(c) decode + copy payload', times.both, `(c) / (b) = ${fmt(median(times.both) / median(times.copy), 2)}`),
    {
      measure: 'ratio decode / copy',
      'median ms': fmt(ratio, 2),
      'MB/s': '',
      'runs (ms)': '',
      note: `target ≤ 1.5: ${ratio <= 1.5 ? 'met' : 'NOT MET'}`
    }
  ]
}

if (isMain(import.meta.url)) {
  benchCodec().then((rows) => console.log(markdownTable(rows))).catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
