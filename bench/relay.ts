/**
 * §5 relay throughput and memory, everything on loopback in one run:
 *   (a) one 2 GiB file relayed giver → server → taker; the server runs in a
 *       child process, started as `npm start` starts it (the start script's
 *       node flags), so its RSS and CPU are its own;
 *   (b) the same bytes through a bare forwarder child (bench/forwarder.ts:
 *       `src.pipe(dst)` between two sockets, no framing);
 *   (c) the same bytes over one socket, giver → taker, for reference;
 *   (d) the server's RSS growth while relaying (a), sampled from
 *       /proc/<pid>/status every 20 ms;
 *   (e) 10,000 files of 4 KiB from a giver that pipelines them;
 *   (a0) the very first relay of a freshly started server (before any
 *       warm-up), once;
 *   (a') (a) with the server started without the start script's heap flags
 *       (plain `node --import tsx src/main.ts`): its first relays then run a
 *       mark-compact about every 40 MiB relayed (a small old generation
 *       while ~1 GB/s of read buffers count as external memory).
 * Giver and taker are fast raw peers in this process (bench/relay-clients.ts):
 * the giver writes from one reused buffer, the taker counts bytes; the same
 * peers are used for (a), (b) and (c). (a), (b), (c) run interleaved, 3 times
 * each; the median is reported.
 * Targets: (a)/(b) ≥ 80 %, (d) ≤ 64 MiB, (e) ≥ 10,000 files/s.
 *
 * Run alone: `npx tsx bench/relay.ts`; with the others: `npm run bench`.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { isMain, markdownTable, type Row } from './run.ts'
import { MiB, Peer, within, writeBigFile, writeSmallFiles } from './relay-clients.ts'
import { sampleRss, startNode, startScriptArgs, type Child } from './processes.ts'
import { joinPair, openBigFileRelay, startForwarderPair } from './relay-targets.ts'

const BIG = 2 * 1024 * MiB
const SMALL_FILES = 10_000
const SMALL_SIZE = 4 * 1024
const REPETITIONS = 3
const CHUNK = MiB
const PHASE_MS = 60_000

// ---------------------------------------------------------------- one run of each

interface Transfer { readonly ms: number, readonly rssGrowth?: number, readonly cpu?: number }

/** The taker side of a big transfer: resolves at the last byte of `size` binary payload bytes. */
function lastByte (t: Peer, size: number, onDone?: () => void): Promise<number> {
  return new Promise((resolve) => {
    let got = 0
    t.reader.onBinary = (n) => {
      got += n
      if (got === size) { const at = performance.now(); onDone?.(); resolve(at) }
    }
  })
}

/** (a) and (d): 2 GiB through the server child. */
async function viaServer (server: Child, port: number, payload: Buffer): Promise<Transfer> {
  const { g, t } = await joinPair(port)
  try {
    await openBigFileRelay(g, t)
    const rss0 = server.rss()
    const cpu0 = server.cpuSeconds()
    const sampler = sampleRss(server)
    const done = lastByte(t, BIG, () => t.send(['ok', 'big.bin']))
    const t0 = performance.now()
    await writeBigFile(g, 'big.bin', BIG, payload)
    const t1 = await within(PHASE_MS, 'relay of 2 GiB', done)
    const peak = sampler.stop()
    const cpu = server.cpuSeconds() - cpu0
    await t.expect(['file', 'big.bin', BIG])
    await t.expect('yours')
    await g.expect(['ok', 'big.bin'])
    await g.expect('yours')
    return { ms: t1 - t0, rssGrowth: peak - rss0, cpu }
  } finally {
    g.close()
    t.close()
  }
}

/** (b): the same frames through `src.pipe(dst)` in a child. */
async function viaForwarder (payload: Buffer): Promise<Transfer> {
  const { fwd, g, t } = await startForwarderPair()
  try {
    const rss0 = fwd.rss()
    const cpu0 = fwd.cpuSeconds()
    const sampler = sampleRss(fwd)
    const done = lastByte(t, BIG)
    const t0 = performance.now()
    await writeBigFile(g, 'big.bin', BIG, payload)
    const t1 = await within(PHASE_MS, 'forwarding 2 GiB', done)
    const peak = sampler.stop()
    const cpu = fwd.cpuSeconds() - cpu0
    g.socket.end()
    await within(10_000, 'forwarder exit', once(fwd.proc, 'exit'))
    t.close()
    return { ms: t1 - t0, rssGrowth: peak - rss0, cpu }
  } finally {
    await fwd.stop()
  }
}

/** (c): giver → taker over one socket. */
async function singleHop (payload: Buffer): Promise<Transfer> {
  const server = createServer({ highWaterMark: MiB, noDelay: true } as Parameters<typeof createServer>[0])
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const accepted = once(server, 'connection')
    const g = await Peer.connect((server.address() as { port: number }).port)
    const t = Peer.wrap((await accepted)[0])
    const done = lastByte(t, BIG)
    const t0 = performance.now()
    await writeBigFile(g, 'big.bin', BIG, payload)
    const t1 = await within(PHASE_MS, 'single hop of 2 GiB', done)
    g.close()
    t.close()
    return { ms: t1 - t0 }
  } finally {
    server.close()
  }
}

/** (e): SMALL_FILES files of SMALL_SIZE bytes, pipelined by the giver. */
async function smallFiles (port: number, payload: Buffer): Promise<{ ms: number, totalMs: number }> {
  const { g, t } = await joinPair(port)
  try {
    const paths = Array.from({ length: SMALL_FILES }, (_, i) => `shots/${String(Math.floor(i / 100)).padStart(3, '0')}/frame_${String(i).padStart(5, '0')}.png`)
    const manifest = Object.fromEntries(paths.map((p) => [p, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']))
    const start = performance.now()
    t.send(['get', g.userId, '/rnd/scene_1'])
    await g.passUntilGive()
    g.send(manifest)
    await t.recv()
    t.send(paths)
    await g.recv()

    // Taker: answer each file at its last byte; done at "yours".
    let current = ''
    let left = 0
    const taken = new Promise<number>((resolve, reject) => {
      t.reader.onJson = (v) => {
        if (Array.isArray(v) && v[0] === 'file') {
          current = v[1] as string
          left = v[2] as number
          if (left === 0) t.send(['ok', current])
        } else if (v === 'yours') {
          resolve(performance.now())
        } else {
          reject(new Error(`taker got ${JSON.stringify(v)}`))
        }
      }
      t.reader.onBinary = (n) => {
        left -= n
        if (left === 0) t.send(['ok', current])
      }
    })
    let acks = 0
    const answered = new Promise<void>((resolve) => {
      g.reader.onJson = (v) => {
        if (Array.isArray(v) && v[0] === 'ok') acks++
        if (acks === SMALL_FILES || v === 'yours') resolve()
      }
    })
    const t0 = performance.now()
    await writeSmallFiles(g, paths, payload.subarray(0, SMALL_SIZE))
    const t1 = await within(PHASE_MS, `${SMALL_FILES} small files`, taken)
    await within(PHASE_MS, 'the giver\'s answers', answered)
    if (acks !== SMALL_FILES) throw new Error(`the giver got ${acks} answers`)
    return { ms: t1 - t0, totalMs: t1 - start }
  } finally {
    g.close()
    t.close()
  }
}

// ---------------------------------------------------------------- the table

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const mbps = (ms: number): number => BIG / 1e6 / (ms / 1000)
const fmt = (n: number, digits = 0): string => n.toFixed(digits)
const mib = (bytes: number): string => fmt(bytes / MiB, 1)

export async function benchRelay (): Promise<Row[]> {
  const payload = Buffer.alloc(CHUNK)
  for (let i = 0; i < payload.byteLength; i++) payload[i] = (i * 31 + 7) & 0xff

  const serverArgs = ['Bench', '--host', '127.0.0.1', '--port', '0', '--no-discovery', '--no-persist', '--turn-hold', '0', '--log-level', 'debug']
  const server = startNode([...startScriptArgs(), ...serverArgs])
  const plain = startNode(['--import', 'tsx', 'src/main.ts', ...serverArgs])
  try {
    const listening = /listening on 127\.0\.0\.1:(\d+)/
    const port = Number((await server.match(listening))[1])
    const plainPort = Number((await plain.match(listening))[1])
    const runs = { relay: [] as Transfer[], plain: [] as Transfer[], forwarder: [] as Transfer[], single: [] as Transfer[], small: [] as Array<{ ms: number, totalMs: number }> }
    const cold = await viaServer(server, port, payload)
    // Warm-up: a small relay through each server (JIT, first connections), not measured.
    await smallFiles(port, payload)
    await smallFiles(plainPort, payload)
    for (let i = 0; i < REPETITIONS; i++) {
      runs.relay.push(await viaServer(server, port, payload))
      runs.forwarder.push(await viaForwarder(payload))
      runs.single.push(await singleHop(payload))
      runs.plain.push(await viaServer(plain, plainPort, payload))
    }
    for (let i = 0; i < REPETITIONS; i++) runs.small.push(await smallFiles(port, payload))

    const rate = (xs: Transfer[]): number => median(xs.map((x) => mbps(x.ms)))
    const list = (xs: Transfer[]): string => xs.map((x) => fmt(mbps(x.ms))).join(' / ')
    const cpuPerGiB = (xs: Transfer[]): string => fmt(median(xs.map((x) => (x.cpu ?? 0) / (BIG / (1024 * MiB)))), 2)
    const a = rate(runs.relay)
    const a2 = rate(runs.plain)
    const b = rate(runs.forwarder)
    const rssPeak = Math.max(cold.rssGrowth ?? 0, ...runs.relay.map((x) => x.rssGrowth ?? 0))
    const filesPerS = median(runs.small.map((x) => SMALL_FILES / (x.ms / 1000)))
    return [
      { measure: '(a) relay G → server → T, 2 GiB', result: `${fmt(a)} MB/s`, runs: list(runs.relay), note: `server CPU ${cpuPerGiB(runs.relay)} s per GiB` },
      { measure: '(b) bare forwarder src.pipe(dst), 2 GiB', result: `${fmt(b)} MB/s`, runs: list(runs.forwarder), note: `forwarder CPU ${cpuPerGiB(runs.forwarder)} s per GiB` },
      { measure: '(c) single hop G → T, 2 GiB', result: `${fmt(rate(runs.single))} MB/s`, runs: list(runs.single), note: 'reference: no middle process' },
      { measure: 'ratio (a) / (b)', result: `${fmt(100 * a / b)} %`, runs: '', note: `target ≥ 80 %: ${a / b >= 0.8 ? 'met' : 'NOT MET'}` },
      {
        measure: '(d) server RSS growth during (a0) and (a)',
        result: `${mib(rssPeak)} MiB`,
        runs: [cold, ...runs.relay].map((x) => mib(x.rssGrowth ?? 0)).join(' / '),
        note: `target ≤ 64 MiB: ${rssPeak <= 64 * MiB ? 'met' : 'NOT MET'}; forwarder: ${runs.forwarder.map((x) => mib(x.rssGrowth ?? 0)).join(' / ')} MiB`
      },
      {
        measure: `(e) ${SMALL_FILES.toLocaleString('en')} files of 4 KiB, pipelined`,
        result: `${fmt(filesPerS)} files/s`,
        runs: runs.small.map((x) => fmt(SMALL_FILES / (x.ms / 1000))).join(' / '),
        note: `target ≥ 10,000 files/s: ${filesPerS >= 10_000 ? 'met' : 'NOT MET'}; with get, manifest, getlist: ${fmt(median(runs.small.map((x) => x.totalMs)))} ms`
      },
      {
        measure: '(a0) first relay of a fresh server (cold)',
        result: `${fmt(mbps(cold.ms))} MB/s`,
        runs: '1 run',
        note: `${fmt(100 * mbps(cold.ms) / b)} % of (b); server CPU ${fmt((cold.cpu ?? 0) / (BIG / (1024 * MiB)), 2)} s per GiB; RSS +${mib(cold.rssGrowth ?? 0)} MiB`
      },
      {
        measure: "(a') as (a), server without the start script's heap flags",
        result: `${fmt(a2)} MB/s`,
        runs: list(runs.plain),
        note: `${fmt(100 * a2 / b)} % of (b); server CPU ${cpuPerGiB(runs.plain)} s per GiB`
      }
    ]
  } finally {
    await Promise.all([server.stop(), plain.stop()])
  }
}

if (isMain(import.meta.url)) {
  const started = performance.now()
  benchRelay().then((rows) => {
    console.log(markdownTable(rows))
    console.log(`\n(${fmt((performance.now() - started) / 1000, 1)} s)`)
  }).catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
