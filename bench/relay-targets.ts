/**
 * Issue 14's relay target: the first relay of a freshly started server (as
 * `npm start` starts it: what a user gets) against the bare forwarder
 * (bench/forwarder.ts, `src.pipe(dst)`, also freshly started) carrying the
 * same framed stream, with two kinds of peers:
 *  - count: the giver writes from one reused buffer, the taker counts bytes
 *    (the fastest peers: the relay's own cost shows most);
 *  - hash+write: as real clients do, the giver reads the file from disk and
 *    the taker hashes it (SHA-256) and writes it to disk, with backpressure.
 * Also the server's RSS growth during its relay (peak − before).
 */
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { binaryHeader, encodeJson } from '../protocol/frame.ts'
import { MiB, Peer, within, writeBigFile } from './relay-clients.ts'
import { sampleRss, startNode, startServer, type Child, type Listening } from './processes.ts'

export const RELAY_BYTES = 1024 * MiB
const CHUNK = MiB
const PHASE_MS = 120_000

export type PeerStyle = 'count' | 'hash+write'

export interface RelayRun { readonly ms: number, readonly rssGrowth: number, readonly cpu: number }

/** The bytes to relay: one reused buffer (count) or a file on disk (hash+write). */
export interface Source { readonly payload: Buffer, readonly file: string, readonly dir: string }

export async function prepareSource (): Promise<Source> {
  const payload = Buffer.alloc(CHUNK)
  for (let i = 0; i < payload.byteLength; i++) payload[i] = (i * 31 + 7) & 0xff
  const dir = await mkdtemp(join(tmpdir(), 'vcmu-bench-relay-'))
  const file = join(dir, 'big.bin')
  const out = createWriteStream(file)
  for (let left = RELAY_BYTES; left > 0; left -= CHUNK) if (!out.write(payload)) await once(out, 'drain')
  out.end()
  await once(out, 'finish')
  return { payload, file, dir }
}

export async function removeSource (s: Source): Promise<void> { await rm(s.dir, { recursive: true, force: true }) }

/** The giver's side: `["file", path, size]` and the bytes as 1 MiB binary frames. */
async function give (g: Peer, style: PeerStyle, src: Source): Promise<void> {
  if (style === 'count') return await writeBigFile(g, 'big.bin', RELAY_BYTES, src.payload)
  const s = g.socket
  s.write(encodeJson(['file', 'big.bin', RELAY_BYTES]))
  const fh = await open(src.file, 'r')
  try {
    for (let at = 0; at < RELAY_BYTES;) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, RELAY_BYTES - at))
      const { bytesRead } = await fh.read(buf, 0, buf.byteLength, at)
      if (bytesRead === 0) throw new Error('source file ended early')
      at += bytesRead
      s.write(binaryHeader(bytesRead))
      if (!s.write(bytesRead === buf.byteLength ? buf : buf.subarray(0, bytesRead))) await once(s, 'drain')
    }
  } finally {
    await fh.close()
  }
}

/** The taker's side: resolves at the last byte (after hashing and writing it, for hash+write). */
function take (t: Peer, style: PeerStyle, dir: string): { done: Promise<number>, cleanup: () => Promise<void> } {
  let got = 0
  if (style === 'count') {
    const done = new Promise<number>((resolve) => {
      t.reader.onBinary = (n) => { got += n; if (got === RELAY_BYTES) resolve(performance.now()) }
    })
    return { done, cleanup: async () => {} }
  }
  const hash = createHash('sha256')
  const file = join(dir, `taken-${process.hrtime.bigint()}.bin`)
  const out = createWriteStream(file, { highWaterMark: CHUNK })
  const done = new Promise<number>((resolve, reject) => {
    out.on('error', reject)
    t.reader.onBinaryData = (bytes) => {
      hash.update(bytes)
      // The view is into the socket's chunk, which is not reused: writing it as is is safe.
      if (!out.write(bytes)) {
        t.socket.pause()
        out.once('drain', () => t.socket.resume())
      }
      got += bytes.byteLength
      if (got === RELAY_BYTES) {
        hash.digest('hex')
        // A write stream that is ending emits no 'drain': a socket paused for the last write would stay
        // paused, and the frames after the bytes ("yours") would never be read.
        t.socket.resume()
        out.end(() => resolve(performance.now()))
      }
    }
  })
  return { done, cleanup: async () => { out.destroy(); await rm(file, { force: true }) } }
}

export async function joinPair (port: number): Promise<{ g: Peer, t: Peer }> {
  const g = await Peer.connect(port)
  await g.join('Bench', 'giver')
  const t = await Peer.connect(port)
  await t.join('Bench', 'taker')
  return { g, t }
}

/** T asks G for /bench, whose manifest is the one file `big.bin`, and wants it: the relay is ready for its bytes. */
export async function openBigFileRelay (g: Peer, t: Peer): Promise<void> {
  t.send(['get', g.userId, '/bench'])
  await g.passUntilGive()
  g.send({ 'big.bin': 'sha' })
  await t.expect({ 'big.bin': 'sha' })
  t.send(['big.bin'])
  await g.expect(['big.bin'])
}

/** One relay through a freshly started server: its first. */
export async function coldRelay (style: PeerStyle, src: Source, o: { entry?: string, env?: Record<string, string>, around?: (server: Listening, phase: 'start' | 'end') => Promise<void> } = {}): Promise<RelayRun> {
  const server = await startServer([], o)
  try {
    const { g, t } = await joinPair(server.port)
    try {
      await openBigFileRelay(g, t)
      await o.around?.(server, 'start')
      return await measure(server, style, src, g, t, async () => {
        await o.around?.(server, 'end')
        t.send(['ok', 'big.bin'])
        await t.expect(['file', 'big.bin', RELAY_BYTES])
        await t.expect('yours')
        await g.expect(['ok', 'big.bin'])
      })
    } finally {
      g.close()
      t.close()
    }
  } finally {
    await server.stop()
  }
}

/** A freshly started bare forwarder (`src.pipe(dst)`) and a giver and taker peer connected through it. */
export async function startForwarderPair (): Promise<{ fwd: Child, g: Peer, t: Peer }> {
  const fwd = startNode(['--import', 'tsx', 'bench/forwarder.ts', '--hwm', String(MiB)])
  try {
    const m = await fwd.match(/forwarding (\d+) (\d+)/)
    const t = await Peer.connect(Number(m[2]))
    const g = await Peer.connect(Number(m[1]))
    await new Promise((resolve) => setTimeout(resolve, 50)) // both accepted, the pipe is set up
    return { fwd, g, t }
  } catch (err) {
    await fwd.stop()
    throw err
  }
}

/** The same framed stream through a freshly started bare forwarder. */
export async function forwarderRelay (style: PeerStyle, src: Source): Promise<RelayRun> {
  const { fwd, g, t } = await startForwarderPair()
  try {
    try {
      return await measure(fwd, style, src, g, t, async () => {})
    } finally {
      g.close()
      t.close()
    }
  } finally {
    await fwd.stop()
  }
}

async function measure (proc: Child, style: PeerStyle, src: Source, g: Peer, t: Peer, after: () => Promise<void>): Promise<RelayRun> {
  const rss0 = proc.rss()
  const cpu0 = proc.cpuSeconds()
  const sampler = sampleRss(proc)
  const taker = take(t, style, src.dir)
  try {
    const t0 = performance.now()
    await give(g, style, src)
    const t1 = await within(PHASE_MS, `relay of ${RELAY_BYTES} bytes (${style})`, taker.done)
    const peak = sampler.stop()
    const cpu = proc.cpuSeconds() - cpu0
    await within(PHASE_MS, 'the end of the relay', after())
    return { ms: t1 - t0, rssGrowth: peak - rss0, cpu }
  } finally {
    sampler.stop()
    await taker.cleanup()
  }
}
