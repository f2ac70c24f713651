/**
 * What saving a big story costs the other sessions: event-loop delay while a
 * 10 MiB story is replaced 10 times a second for 2 s, 3 rounds per variant,
 * interleaved (medians shown, p99 of every run too).
 *
 * In process: the real coordinator actor gets `story.submit` events (the
 * same 10 MiB story object with a newer timestamp each time, so only the
 * store's work differs between rows) and the store saves on its
 * `durableStateChanged` events, exactly as src/app.ts wires them. Rows:
 *   - off: `--no-persist` (the memory store), the baseline;
 *   - on: the file store as the server runs it (serialization sliced on the
 *     main thread, write-file-atomic with fsync, coalesced);
 *   - on, unsliced: the same with one JSON.stringify call per write, to
 *     show what the slicing buys.
 * Measured with node:perf_hooks monitorEventLoopDelay (1 ms resolution);
 * CPU % is process.cpuUsage over wall time (all threads: 100 = one core).
 * On a busy machine p99/max are noisy: a process that computes a lot is
 * also preempted more by the OS, whatever its slices.
 *
 * Run alone: `npx tsx bench/persist.ts`; with the others: `npm run bench`.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createActor } from 'xstate'
import { coordinatorMachine } from '../actors/coordinator.ts'
import type { JsonObject } from '../protocol/messages.ts'
import type { ServerLog } from '../src/log.ts'
import { createStore, FILES, type Store } from '../src/store.ts'
import { isMain, markdownTable, type Row } from './run.ts'

const MiB = 1024 * 1024
const STORY_BYTES = 10 * MiB
const CHANGES_PER_SECOND = 10
const DURATION_MS = 2_000
const ROUNDS = 3

/** A story shaped like VCStudio's: scenes of shots of small script blocks, arrows between scenes. */
function bigStory (bytes: number): JsonObject {
  const scenes: JsonObject = {}
  let size = 0
  let i = 0
  while (size < bytes) {
    const shots = Array.from({ length: 20 }, (_, k) => ['shot_block', `shot_${k}`, [
      ['text', `Moria walks into room ${i}, looking at the old clock on the wall. It is late. `],
      ['frase', 'MORIA', 'Where is everyone? I thought we agreed on eight.'],
      ['image', `/rnd/scene_${i}/shot_${k}/storyboard.png`]
    ]])
    const scene = { fraction: 0.5, position: [i * 10, (i % 7) * 30], size: [100, 40], shots }
    scenes[`scene_${i}`] = scene
    size += JSON.stringify(scene).length
    i++
  }
  return { scenes, arrows: Array.from({ length: i }, (_, j) => [[j - 1, `scene_${j - 1}`], [j, `scene_${j}`]]), links: [], camera: [0, 0] }
}

interface Variant { readonly name: string, readonly store: (dir: string, log: ServerLog) => Store }

const quietLog = (onLine: (line: string) => void): ServerLog => ({
  human: onLine,
  debug: (m) => onLine(String(m)),
  warn: (m) => onLine(String(m)),
  error: (m) => onLine(String(m)),
  onHumanLine: () => () => {}
})

const ms = (nanoseconds: number): string => (nanoseconds / 1e6).toFixed(1)

interface Measured {
  changes: number
  p50: number
  p99: number
  max: number
  writes: number[]
  cpuPercent: number
  flushMs: number
  fileBytes: number
}

async function run (story: JsonObject, variant: Variant): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-persist-'))
  const writes: number[] = []
  const log = quietLog((line) => {
    const m = / \| saved \| .*story\.json \| \d+ bytes \| ([\d.]+) ms/.exec(line)
    if (m !== null) writes.push(Number(m[1]))
    else if (line.includes('cannot save')) throw new Error(line)
  })
  const store = variant.store(dir, log)
  const coordinator = createActor(coordinatorMachine, { input: { chatLimit: 10_000, relayTimeoutMs: 60_000, restored: await store.load() } })
  coordinator.on('durableStateChanged', (e) => store.save(e.state, e.version))
  coordinator.start()

  // Settle, then measure.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  histogram.enable()
  const cpu0 = process.cpuUsage()
  let n = 0
  const t0 = performance.now()
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      n++
      const timestamp = `2024/01/01-00:${String(Math.floor(n / 60)).padStart(2, '0')}:${String(n % 60).padStart(2, '0')}`
      coordinator.send({ type: 'story.submit', userId: '127.0.0.1:1', submission: { story, timestamp }, origin: 'request' })
      if (performance.now() - t0 >= DURATION_MS) {
        clearInterval(timer)
        resolve()
      }
    }, 1000 / CHANGES_PER_SECOND)
  })
  histogram.disable()
  const cpu = process.cpuUsage(cpu0)
  const wallMs = performance.now() - t0
  const flushT0 = performance.now()
  await store.flush()
  const flushMs = performance.now() - flushT0
  coordinator.stop()
  let fileBytes = 0
  try { fileBytes = statSync(join(dir, FILES.story)).size } catch { /* the memory store writes nothing */ }
  rmSync(dir, { recursive: true, force: true })
  return {
    changes: n,
    p50: histogram.percentile(50),
    p99: histogram.percentile(99),
    max: histogram.max,
    writes,
    cpuPercent: (cpu.user + cpu.system) / 1000 / wallMs * 100,
    flushMs,
    fileBytes
  }
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

export async function benchPersist (): Promise<Row[]> {
  const story = bigStory(STORY_BYTES)
  const storyBytes = Buffer.byteLength(JSON.stringify(story))
  const variants: Variant[] = [
    { name: 'off (--no-persist)', store: (_dir, log) => createStore({ projectName: 'Bench', persist: false }, log) },
    { name: 'on (sliced, the default)', store: (dir, log) => createStore({ projectName: 'Bench', persist: { dataDir: dir } }, log) },
    { name: 'on, one JSON.stringify', store: (dir, log) => createStore({ projectName: 'Bench', persist: { dataDir: dir }, tuning: { sliceMs: 0 } }, log) }
  ]
  // Rounds interleaved, so that a noisy moment on a shared machine does not hit one variant only.
  const results = variants.map(() => [] as Measured[])
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, variant] of variants.entries()) results[i].push(await run(story, variant))
  }
  return variants.map((variant, i) => {
    const r = results[i]
    const writes = r.flatMap((m) => m.writes)
    const fileBytes = Math.max(...r.map((m) => m.fileBytes))
    return {
      persistence: variant.name,
      'story MiB': (storyBytes / MiB).toFixed(1),
      'changes / run': median(r.map((m) => m.changes)),
      'loop delay p50 ms': ms(median(r.map((m) => m.p50))),
      'p99 ms': ms(median(r.map((m) => m.p99))),
      'p99 runs (ms)': r.map((m) => ms(m.p99)).join(' / '),
      'max ms': ms(median(r.map((m) => m.max))),
      'story writes / run': (writes.length / r.length).toFixed(0),
      'write ms (median)': writes.length > 0 ? median(writes).toFixed(0) : '',
      'CPU %': median(r.map((m) => m.cpuPercent)).toFixed(0),
      'file MiB': fileBytes > 0 ? (fileBytes / MiB).toFixed(1) : ''
    }
  })
}

if (isMain(import.meta.url)) {
  benchPersist().then((rows) => console.log(markdownTable(rows))).catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
