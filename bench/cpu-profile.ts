/**
 * CPU profile of the server (started as `npm start` starts it, through
 * bench/profile-wrapper.ts: V8's profiler, as `--cpu-prof` uses, but only
 * over the measured phase) during one scenario, summarised: the functions with the most self time,
 * and the share of garbage collection.
 *
 *   npx tsx bench/cpu-profile.ts passes [--clients 1]   # clients passing, turn hold 0, 5 s
 *   npx tsx bench/cpu-profile.ts idle                   # 1,000 clients at the default turn hold, 5 s
 *   npx tsx bench/cpu-profile.ts broadcast              # 1,000 clients in held passes, 40 chat broadcasts
 *   npx tsx bench/cpu-profile.ts relay                  # a cold server's first relay of 1 GiB (count peers), its streaming
 *
 * The .cpuprofile file stays in a temp dir (printed) for a closer look.
 */
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DEFAULTS } from '../src/server.ts'
import { isMain } from './run.ts'
import { sleep, startServer, type Listening } from './processes.ts'
import { coldRelay, prepareSource, removeSource } from './relay-targets.ts'
import { broadcasts, joinTurnClients } from './turn-targets.ts'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number }
interface Profile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[] }

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** A script's place for people: relative to the repository, node_modules shortened. */
function placeOf (url: string): string {
  const path = url.startsWith('file:') ? fileURLToPath(url) : url
  if (!path.startsWith('/')) return path
  return relative(ROOT, path).replace(/^node_modules\/(\.pnpm\/)?/, '').replace(/^(\.\.\/)+/, '')
}

/** Where a function belongs: xstate, this project, other packages, Node's JS, native code (syscalls), GC. */
function areaOf (name: string, url: string): string {
  if (name === '(garbage collector)') return 'GC'
  if (url === '') return 'native'
  if (url.startsWith('node:')) return 'node'
  if (url.includes('/node_modules/xstate/')) return 'xstate'
  if (url.includes('/node_modules/')) return 'packages'
  return 'project'
}

/** Self time per function (name and place), largest first, as fractions of all samples. */
export function summarise (p: Profile, top = 15): string[] {
  const total = p.samples.length
  const self = new Map<string, number>()
  const areas = new Map<string, number>()
  let idle = 0
  for (const n of p.nodes) {
    const hits = n.hitCount ?? 0
    if (hits === 0) continue
    const f = n.callFrame
    if (f.functionName === '(idle)') { idle += hits; continue }
    const where = f.url === '' ? '' : ` ${placeOf(f.url)}:${f.lineNumber + 1}`
    const key = `${f.functionName === '' ? '(anonymous)' : f.functionName}${where}`
    self.set(key, (self.get(key) ?? 0) + hits)
    const area = areaOf(f.functionName, f.url)
    areas.set(area, (areas.get(area) ?? 0) + hits)
  }
  const busy = total - idle
  const ms = (p.endTime - p.startTime) / 1000
  const byArea = [...areas].sort((a, b) => b[1] - a[1]).map(([a, h]) => `${a} ${(100 * h / busy).toFixed(0)} %`).join(', ')
  const lines = [`${ms.toFixed(0)} ms profiled, busy ${(100 * busy / total).toFixed(0)} %; by area: ${byArea}`, 'self time as % of busy:']
  for (const [key, hits] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${(100 * hits / busy).toFixed(1).padStart(5)} %  ${key}`)
  return lines
}

/** Starts (first call) or stops and writes (second call) the server's profile; waits for its word. */
async function toggle (server: Listening, word: 'started' | 'written'): Promise<void> {
  const seen = server.match(new RegExp(`profiling \\| ${word}`))
  server.proc.kill('SIGUSR2')
  await seen
}

async function profileOf (scenario: string, clients: number): Promise<{ dir: string, profile: Profile }> {
  const dir = await mkdtemp(join(tmpdir(), 'vcmu-cpuprof-'))
  const o = { entry: 'bench/profile-wrapper.ts', env: { VCMU_PROFILE_DIR: dir } }
  if (scenario === 'relay') {
    const src = await prepareSource()
    try {
      await coldRelay('count', src, { ...o, around: async (server, phase) => await toggle(server, phase === 'start' ? 'started' : 'written') })
    } finally {
      await removeSource(src)
    }
  } else {
    const idle = scenario === 'idle' || scenario === 'broadcast'
    const server = await startServer(idle ? ['--max-connections', '1100'] : ['--turn-hold', '0'], o)
    try {
      const cs = await joinTurnClients(server.port, idle ? 1_000 : clients)
      // Idle clients pass at their own moments of one turn hold, as in bench/targets.ts.
      for (const [i, c] of cs.entries()) setTimeout(() => c.start(), idle ? i * DEFAULTS.turnHoldMs / cs.length : 0)
      await sleep(2_000) // warm, settled
      await toggle(server, 'started')
      if (scenario === 'broadcast') await broadcasts(server, cs, 40)
      else await sleep(5_000)
      await toggle(server, 'written')
      await Promise.all(cs.map(async (c) => await c.stop()))
      for (const c of cs) c.close()
    } finally {
      await server.stop()
    }
  }
  return { dir, profile: JSON.parse(await readFile(join(dir, 'server.cpuprofile'), 'utf8')) as Profile }
}

if (isMain(import.meta.url)) {
  const scenario = process.argv[2] ?? 'passes'
  const i = process.argv.indexOf('--clients')
  const clients = i > 0 ? Number(process.argv[i + 1]) : 1
  profileOf(scenario, clients).then(({ dir, profile }) => {
    console.log(`${scenario}: ${dir}`)
    for (const line of summarise(profile)) console.log(line)
  }).catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
