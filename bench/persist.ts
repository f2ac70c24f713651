/**
 * §8 acknowledged means durable, measured: acknowledged story updates per
 * second from 10 clients with a 1 MiB story, with the server's event-loop
 * delay meanwhile. Rows, interleaved over rounds (medians shown):
 *   - off: `--no-persist` (the memory store), the baseline;
 *   - on, not waiting: the file store, replies sent before the write
 *     (revision 1's behaviour, shown for reference only: not durable);
 *   - on, durable: the server's default; each acknowledgement waits until
 *     its change is on disk (file fsync, rename, directory fsync), changes
 *     made during a write share the next one (group commit).
 * "× off" is the row's rate over the off row's rate of the same round.
 *
 * The server runs in this process (the real server and store, wired as
 * src/app.ts wires them), so node:perf_hooks monitorEventLoopDelay (1 ms
 * resolution) sees its event loop; the clients run in a child process
 * (bench/persist-clients.ts) so their JSON work does not count. CPU % is
 * this process's (all threads: 100 = one core). Shared 2-core machine:
 * expect noise, read the ratios.
 *
 * Run alone: `npx tsx bench/persist.ts`; with the others: `npm run bench`.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { createLog } from '../src/log.ts'
import { DEFAULTS, startServer } from '../src/server.ts'
import { createStore } from '../src/store.ts'
import { isMain, markdownTable, type Row } from './run.ts'

const MiB = 1024 * 1024
const CLIENTS = 10
const STORY_BYTES = MiB
const DURATION_MS = 4_000
const ROUNDS = 2
const CLIENTS_SCRIPT = fileURLToPath(new URL('./persist-clients.ts', import.meta.url))

interface Variant { readonly name: string, readonly persist: boolean, readonly awaitCommit: boolean }

const VARIANTS: readonly Variant[] = [
  { name: 'off (--no-persist)', persist: false, awaitCommit: false },
  { name: 'on, not waiting (not durable)', persist: true, awaitCommit: false },
  { name: 'on, durable (the default)', persist: true, awaitCommit: true }
]

interface Measured { perSecond: number, refused: number, p50: number, p99: number, max: number, cpuPercent: number, writes: number }

async function runClients (port: number): Promise<{ acked: number, refused: number, wallMs: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLIENTS_SCRIPT, String(port), String(CLIENTS), String(DURATION_MS), String(STORY_BYTES)],
    { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const t0 = performance.now()
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`bench clients exited with ${code}: ${out}`)
  const { acked, refused } = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { acked: number, refused: number }
  return { acked, refused, wallMs: performance.now() - t0 }
}

async function run (variant: Variant): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-persist-'))
  let writes = 0
  const log = createLog({ silent: true })
  const counting = { ...log, debug: (m: unknown) => { if (String(m).includes('| saved |')) writes++ } }
  const store = createStore({ projectName: 'Bench', persist: variant.persist ? { dataDir: dir } : false }, counting)
  const restored = await store.load()
  const server = await startServer({ ...DEFAULTS, projectName: 'Bench', host: '127.0.0.1', port: 0, restored, awaitCommit: variant.awaitCommit }, log)
  server.coordinator.on('durableStateChanged', (e) => store.save(e.state, e.version))
  store.onCommitted((version) => server.coordinator.send({ type: 'durable.committed', version }))

  const histogram = monitorEventLoopDelay({ resolution: 1 })
  histogram.enable()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const { acked, refused } = await runClients(server.port)
  const wallMs = performance.now() - t0
  histogram.disable()
  const cpu = process.cpuUsage(cpu0)
  await server.close()
  await store.close()
  rmSync(dir, { recursive: true, force: true })
  return {
    // The clients' own start-up (tsx) is in wallMs but not in their DURATION_MS of updates.
    perSecond: acked / (DURATION_MS / 1000),
    refused,
    p50: histogram.percentile(50) / 1e6,
    p99: histogram.percentile(99) / 1e6,
    max: histogram.max / 1e6,
    cpuPercent: (cpu.user + cpu.system) / 1000 / wallMs * 100,
    writes
  }
}

/** The middle value; of an even count, the mean of the middle two. */
function median (xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

export async function benchPersist (): Promise<Row[]> {
  const results = VARIANTS.map(() => [] as Measured[])
  // Rounds interleaved, so that a noisy moment on a shared machine does not hit one variant only.
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, variant] of VARIANTS.entries()) results[i].push(await run(variant))
  }
  return VARIANTS.map((variant, i) => {
    const r = results[i]
    const ratios = r.map((m, round) => m.perSecond / results[0][round].perSecond)
    return {
      persistence: variant.name,
      clients: CLIENTS,
      'story MiB': (STORY_BYTES / MiB).toFixed(0),
      'acked updates / s': median(r.map((m) => m.perSecond)).toFixed(1),
      '× off': median(ratios).toFixed(2),
      '× off per round': ratios.map((x) => x.toFixed(2)).join(' / '),
      'story writes / s': (median(r.map((m) => m.writes)) / (DURATION_MS / 1000)).toFixed(1),
      'loop delay p50 ms': median(r.map((m) => m.p50)).toFixed(1),
      'p99 ms': median(r.map((m) => m.p99)).toFixed(1),
      'max ms': median(r.map((m) => m.max)).toFixed(1),
      'server CPU %': median(r.map((m) => m.cpuPercent)).toFixed(0)
    }
  })
}

if (isMain(import.meta.url)) {
  benchPersist().then((rows) => console.log(markdownTable(rows))).catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
