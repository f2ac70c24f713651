/**
 * Issue 14's targets, each with its same-run measure and whether it holds.
 * The server is started as `npm start` starts it (a cold child process with
 * the start script's node flags); floors are the bare protocol server
 * (bench/bare-server.ts) and the bare forwarder (bench/forwarder.ts), started
 * the same way and measured in the same run, interleaved with the server;
 * each figure is the median of `--rounds` such pairs (RSS: the worst run).
 *
 *   npx tsx bench/targets.ts [--rounds 3] [--only passes|idle|relay]     (also part of `npm run bench`)
 *
 * Bounded: every phase has a fixed duration or byte count and a timeout.
 */
import { isMain, markdownTable, type Row } from './run.ts'
import { coldRelay, forwarderRelay, prepareSource, removeSource, RELAY_BYTES, type PeerStyle, type RelayRun } from './relay-targets.ts'
import { idleRun, passRun, percentile, type IdleRun, type PassRun } from './turn-targets.ts'

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}
const fmt = (n: number, digits = 2): string => n.toFixed(digits)
const MiB = 1024 * 1024
const held = (ok: boolean): string => (ok ? 'held' : 'NOT HELD')
const medianBy = <R>(runs: readonly R[], f: (r: R) => number): number => median(runs.map(f))
/** Every run's figure, for the note: `a / b / c`. */
const listBy = <R>(runs: readonly R[], f: (r: R) => number, digits: number): string => runs.map((r) => fmt(f(r), digits)).join(' / ')

/** `rounds` runs of the server and of its floor, taking turns. */
async function interleaved<R> (rounds: number, run: (floor: boolean) => Promise<R>): Promise<{ server: R[], floor: R[] }> {
  const server: R[] = []
  const floor: R[] = []
  for (let i = 0; i < rounds; i++) {
    server.push(await run(false))
    floor.push(await run(true))
  }
  return { server, floor }
}

export type Section = 'passes' | 'idle' | 'relay'

export async function benchTargets (o: { rounds?: number, only?: Section } = {}): Promise<Row[]> {
  const rounds = o.rounds ?? 3
  const runs = (s: Section): boolean => o.only === undefined || o.only === s
  const rows: Row[] = []
  const row = (target: string, measured: string, floor: string, ratio: string, ok: boolean, note = ''): void => {
    rows.push({ target, server: measured, floor, 'ratio or figure': ratio, verdict: held(ok), note })
  }

  if (runs('passes')) await passes()
  if (runs('idle')) await idleClients()
  if (runs('relay')) await relays()
  return rows

  async function passes (): Promise<void> {
    // ---- passes, turn hold 0: server and bare interleaved, `rounds` each
    const { server, floor: bare } = await interleaved(rounds, passRun)
    const m = medianBy<PassRun>
    const cpu1 = m(server, (r) => r.one.cpuPerPassUs)
    const cpu1b = m(bare, (r) => r.one.cpuPerPassUs)
    const rate50 = m(server, (r) => r.fifty.passesPerS)
    const rate50b = m(bare, (r) => r.fifty.passesPerS)
    const cpu50 = m(server, (r) => r.fifty.cpuPerPassUs)
    const cpu50b = m(bare, (r) => r.fifty.cpuPerPassUs)
    const list = (runs: PassRun[], f: (r: PassRun) => number, d = 0): string => listBy(runs, f, d)
    row('pass CPU, 1 client ≤ 1.5 × bare', `${fmt(cpu1, 1)} µs`, `${fmt(cpu1b, 1)} µs`, `${fmt(cpu1 / cpu1b)} ×`, cpu1 / cpu1b <= 1.5,
      `turn hold 0; runs ${list(server, (r) => r.one.cpuPerPassUs, 1)} vs ${list(bare, (r) => r.one.cpuPerPassUs, 1)} µs`)
    row('passes/s, 50 clients ≥ 0.5 × bare', `${fmt(rate50, 0)}/s`, `${fmt(rate50b, 0)}/s`, `${fmt(rate50 / rate50b)} ×`, rate50 / rate50b >= 0.5,
      `runs ${list(server, (r) => r.fifty.passesPerS)} vs ${list(bare, (r) => r.fifty.passesPerS)}; 1 client: ${fmt(m(server, (r) => r.one.passesPerS), 0)} vs ${fmt(m(bare, (r) => r.one.passesPerS), 0)}/s`)
    row('CPU per pass, 50 clients ≤ 2 × bare', `${fmt(cpu50, 1)} µs`, `${fmt(cpu50b, 1)} µs`, `${fmt(cpu50 / cpu50b)} ×`, cpu50 / cpu50b <= 2,
      `runs ${list(server, (r) => r.fifty.cpuPerPassUs, 1)} vs ${list(bare, (r) => r.fifty.cpuPerPassUs, 1)} µs`)

  }

  async function idleClients (): Promise<void> {
    // ---- 1,000 clients at the default turn hold: idle CPU, broadcast, RSS; server and bare interleaved, `rounds` each
    const { server, floor: bare } = await interleaved(rounds, async (floor) => await idleRun(floor))
    const m = medianBy<IdleRun>
    const list = (runs: IdleRun[], f: (r: IdleRun) => number, d = 1): string => listBy(runs, f, d)
    const pctOf = (r: IdleRun): number => 100 * r.idleCores
    const usPerPass = (r: IdleRun): number => r.idleCores / r.idlePassesPerS * 1e6
    const pct = m(server, pctOf)
    row('1,000 idle clients ≤ 5 % of one core', `${fmt(pct, 1)} %`, `${fmt(m(bare, pctOf), 1)} %`, `${fmt(pct, 1)} %`, pct <= 5,
      `default turn hold ${server[0].turnHoldMs} ms: ${fmt(m(server, (r) => r.idlePassesPerS), 0)} passes/s, ${fmt(m(server, usPerPass), 0)} µs each (bare ${fmt(m(bare, usPerPass), 0)}); runs ${list(server, pctOf)} vs ${list(bare, pctOf)} %`)
    const p99Of = (r: IdleRun): number => percentile(r.deliveries, 99)
    const p50Of = (r: IdleRun): number => percentile(r.deliveries, 50)
    const p99 = m(server, p99Of)
    row('broadcast p99 ≤ 50 ms at 1,000 clients', `${fmt(p99, 1)} ms`, `${fmt(m(bare, p99Of), 1)} ms`, `${fmt(p99, 1)} ms`, p99 <= 50,
      `request → receipt, ${server[0].deliveries.length} deliveries a run; runs ${list(server, p99Of)} vs ${list(bare, p99Of)} ms; p50 ${fmt(m(server, p50Of), 1)} ms (bare ${fmt(m(bare, p50Of), 1)}); server CPU per broadcast ${fmt(m(server, (r) => r.cpuPerBroadcastMs), 0)} ms (bare ${fmt(m(bare, (r) => r.cpuPerBroadcastMs), 0)}); the first broadcast after start, not counted: p99 ${fmt(m(server, (r) => r.firstBroadcastP99), 1)} ms (bare ${fmt(m(bare, (r) => r.firstBroadcastP99), 1)}); the clients share this machine`)
    const kibOf = (r: IdleRun): number => r.rssPerConnection / 1024
    const kib = Math.max(...server.map(kibOf))
    row('RSS per connection ≤ 100 KiB at 1,000, no forced GC', `${fmt(kib, 1)} KiB`, `${fmt(Math.max(...bare.map(kibOf)), 1)} KiB`, `${fmt(kib, 1)} KiB`, kib <= 100,
      `(RSS with 1,000 clients passing − RSS before) ÷ 1,000; worst run; runs ${list(server, kibOf)} KiB`)
  }

  async function relays (): Promise<void> {
    // ---- relay: cold servers, count and hash+write peers, interleaved with cold forwarders
    const src = await prepareSource()
    try {
      for (const style of ['count', 'hash+write'] as PeerStyle[]) {
        const { server: via, floor: fwd } = await interleaved(rounds, async (floor) => floor ? await forwarderRelay(style, src) : await coldRelay(style, src))
        const rate = (r: RelayRun): number => RELAY_BYTES / 1e6 / (r.ms / 1000)
        const a = medianBy(via, rate)
        const b = medianBy(fwd, rate)
        row(`cold first relay ≥ 0.8 × forwarder (${style})`, `${fmt(a, 0)} MB/s`, `${fmt(b, 0)} MB/s`, `${fmt(a / b)} ×`, a / b >= 0.8,
          `${RELAY_BYTES / MiB} MiB, each run a fresh process; runs ${listBy(via, rate, 0)} vs ${listBy(fwd, rate, 0)} MB/s; server CPU ${fmt(medianBy(via, (r) => r.cpu))} s, forwarder ${fmt(medianBy(fwd, (r) => r.cpu))} s`)
        const growth = Math.max(...via.map((r) => r.rssGrowth)) / MiB
        row(`server growth during the relay ≤ 64 MiB (${style})`, `${fmt(growth, 1)} MiB`, `${fmt(Math.max(...fwd.map((r) => r.rssGrowth)) / MiB, 1)} MiB`, `${fmt(growth, 1)} MiB`, growth <= 64,
          'peak RSS − RSS before, sampled every 20 ms; worst run')
      }
    } finally {
      await removeSource(src)
    }
  }
}

if (isMain(import.meta.url)) {
  const i = process.argv.indexOf('--rounds')
  const j = process.argv.indexOf('--only')
  const started = performance.now()
  benchTargets({ rounds: i > 0 ? Number(process.argv[i + 1]) : undefined, only: j > 0 ? process.argv[j + 1] as Section : undefined }).then((rows) => {
    console.log(markdownTable(rows))
    console.log(`\n(${fmt((performance.now() - started) / 1000, 1)} s)`)
  }).catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
