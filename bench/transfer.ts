/**
 * Folder transfers as a studio does them (issue 13): a 2,000-file shot of
 * mixed sizes, and one large file, each fetched fresh (with both indexes cold,
 * then again into an empty folder from a giver whose index is warm, as a
 * serving artist's is after its first give), incrementally (3 files
 * changed), with nothing changed, and resumed after an interrupt at half; the
 * same two local folders copied with `rsync -a` in the same run, and a fresh
 * hash of the folder (what a get without the index did every time) as the
 * no-change baseline. Ratios only mean something within one run. Three
 * processes, as in a studio: the server, the giver (`serve`), and the taker
 * (this process, through the SDK).
 *
 * Standalone: `npx tsx bench/transfer.ts [--big-mib 2048] [--files 2000]`
 * (also BENCH_TRANSFER_BIG_MIB); or as a module exporting `benchTransfer`
 * (Row[]) for bench/run.ts. The large file shrinks, and says so, when /tmp
 * lacks room for three copies of it; each step is bounded in time.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { appendFile, mkdir, mkdtemp, rm, statfs, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { buildManifest, connect, HashCache, type Client } from '../src/client/index.ts'
import { isMain, markdownTable, type Row } from './run.ts'
import { startServerProcess } from './server-process.ts'

const CLI = fileURLToPath(new URL('../src/client/cli.ts', import.meta.url))

const MiB = 1024 * 1024
const run = promisify(execFile)
/** No step of this bench may take longer. */
const STEP_LIMIT_MS = 240_000

interface Options { bigMib?: number, files?: number }

async function hasRsync (): Promise<boolean> {
  try {
    await run('rsync', ['--version'])
    return true
  } catch {
    return false
  }
}

/** Within STEP_LIMIT_MS, or a clear failure (the bench stops by itself). */
async function bounded<T> (what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: over ${STEP_LIMIT_MS / 1000} s, stopped`)), STEP_LIMIT_MS) })
  try {
    return await Promise.race([p, limit])
  } finally {
    clearTimeout(timer)
  }
}

async function timed (what: string, f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now()
  await bounded(what, f())
  return (performance.now() - t0) / 1000
}

/** Last changed an hour ago, as a studio's files are (a change in the last instant is always checked again). */
async function aged (path: string): Promise<void> {
  const past = new Date(Date.now() - 3_600_000)
  await utimes(path, past, past)
}

/** A shot of `count` files: mostly small, some medium, a few large (about 380 MiB for 2,000). */
async function writeShot (dir: string, count: number): Promise<string[]> {
  const pool = randomBytes(32 * MiB)
  const rels: string[] = []
  for (let i = 0; i < count; i++) {
    const size = i % 200 === 0 ? 24 * MiB : i % 20 === 1 ? MiB : 4 * 1024 + ((i * 7919) % (56 * 1024))
    const rel = `seq${i % 10}/sh${Math.floor(i / 100)}/f${i}.${i % 20 === 1 ? 'exr' : i % 200 === 0 ? 'blend' : 'png'}`
    const start = (i * 104_729) % (pool.length - size)
    await mkdir(join(dir, rel, '..'), { recursive: true })
    await writeFile(join(dir, rel), pool.subarray(start, start + size))
    await aged(join(dir, rel))
    rels.push(rel)
  }
  return rels
}

/** One large file (written in 16 MiB pieces) and 3 small sidecar files. */
async function writeBig (dir: string, mib: number): Promise<string[]> {
  await mkdir(dir, { recursive: true })
  const piece = randomBytes(16 * MiB)
  const big = join(dir, 'render.mov')
  await writeFile(big, '')
  for (let left = mib; left > 0; left -= 16) await appendFile(big, piece.subarray(0, Math.min(16, left) * MiB))
  await aged(big)
  const rels = ['render.mov']
  for (const name of ['notes.txt', 'edl.xml', 'grade.cdl']) {
    await writeFile(join(dir, name), randomBytes(2048))
    await aged(join(dir, name))
    rels.push(name)
  }
  return rels
}

/** Rewrites 3 of `rels` (not the large ones) with new content of the same size. */
async function changeThree (dir: string, rels: readonly string[]): Promise<void> {
  const small = rels.filter((r) => !r.endsWith('.blend') && !r.endsWith('.mov')).slice(0, 3)
  for (const rel of small) {
    await writeFile(join(dir, rel), randomBytes(3000))
    await aged(join(dir, rel))
  }
}

interface Ctx {
  port: number
  giverRoot: string
  takerRoot: string
  rsyncDest: string
  rsync: boolean
  serverPid: number | undefined
}

interface Giver { readonly id: string, readonly child: ChildProcess }

/** CPU seconds (user + system) of a process, from /proc (0 where there is none). */
function cpuOf (pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid ?? 0}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

/** CPU seconds of this process's finished children (rsync and what it ran), from /proc. */
function childrenCpu (): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /, '').split(' ')
  return (Number(fields[13]) + Number(fields[14])) / 100
}

const selfCpu = (since?: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(since)
  return (u.user + u.system) / 1e6
}

/** Elapsed seconds, and CPU seconds of every process involved (the sum, and its split). */
interface Measure { seconds: number, cpu: number, split: string }

/** `f` with the CPU of the server, the giver and the taker (this process). */
async function measureGet (ctx: Ctx, giver: Giver, what: string, f: () => Promise<unknown>): Promise<Measure> {
  const server0 = cpuOf(ctx.serverPid)
  const giver0 = cpuOf(giver.child.pid)
  const taker0 = process.cpuUsage()
  const seconds = await timed(what, f)
  const parts = [cpuOf(ctx.serverPid) - server0, cpuOf(giver.child.pid) - giver0, selfCpu(taker0)]
  return { seconds, cpu: parts.reduce((a, b) => a + b, 0), split: parts.map((c) => c.toFixed(2)).join(' / ') }
}

/** `f` run here (a hash) or in child processes (rsync): elapsed and CPU seconds. */
async function measureHere (what: string, f: () => Promise<unknown>): Promise<Measure> {
  const self0 = process.cpuUsage()
  const children0 = childrenCpu()
  const seconds = await timed(what, f)
  const cpu = selfCpu(self0) + childrenCpu() - children0
  return { seconds, cpu, split: '' }
}

/** The giver as an artist runs it: `serve` in its own process (the taker is this process, the server a third). */
async function startGiver (ctx: Ctx, name: string): Promise<Giver> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, '--host', '127.0.0.1', '--port', String(ctx.port), '--project', 'Bench',
    '--username', name, '--root', ctx.giverRoot, 'serve'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const id = await new Promise<string>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`the giver did not start: ${out}`)), 30_000)
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /^serving .* as (\S+) \|/m.exec(out)
      if (m !== null) { clearTimeout(timer); resolve(m[1]) }
    })
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`the giver exited with ${code}: ${out}`)) })
  })
  child.stdout?.resume()
  return { id, child }
}

async function stopGiver (g: Giver, signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
  if (g.child.exitCode !== null || g.child.signalCode !== null) return
  const exited = new Promise((resolve) => g.child.once('exit', resolve))
  g.child.kill(signal)
  await exited
}

const ratio = (a: number, b: number): string => b > 0 ? `${(a / b).toFixed(2)}×` : '-'
const mibText = (n: number): string => n === 0 ? '0' : n < MiB ? `${(n / 1024).toFixed(1)} KiB` : `${(n / MiB).toFixed(1)} MiB`

/** The four scenarios for one folder, beside rsync -a and a fresh hash. */
async function scenarios (ctx: Ctx, dataset: string, folder: string, rels: readonly string[]): Promise<Row[]> {
  const rows: Row[] = []
  const giverDir = join(ctx.giverRoot, folder)
  const rsyncTo = join(ctx.rsyncDest, folder)
  await mkdir(rsyncTo, { recursive: true })
  const rsync = async (what: string): Promise<Measure | null> =>
    ctx.rsync ? await measureHere(`rsync ${what}`, async () => await run('rsync', ['-a', `${giverDir}/`, `${rsyncTo}/`])) : null
  // Both indexes cold for the fresh get.
  await rm(join(ctx.giverRoot, '.vcmu'), { recursive: true, force: true })
  let giver = await startGiver(ctx, 'giver')
  const taker: Client = await connect({ host: '127.0.0.1', port: ctx.port, project: 'Bench', username: 'taker', root: ctx.takerRoot, holdTurnWhenIdle: true })
  const row = (scenario: string, c: Measure, moved: number, baseline: string, b: Measure | null, aim: string): Row => ({
    dataset,
    scenario,
    moved: mibText(moved),
    'client s': c.seconds.toFixed(2),
    baseline,
    'baseline s': b === null ? 'skipped (no rsync)' : b.seconds.toFixed(2),
    'client/baseline': b === null ? '-' : ratio(c.seconds, b.seconds),
    'CPU s client (server / giver / taker)': `${c.cpu.toFixed(2)} (${c.split})`,
    'baseline CPU s': b === null ? '-' : b.cpu.toFixed(2),
    'CPU client/baseline': b === null ? '-' : ratio(c.cpu, b.cpu),
    aim
  })
  const get = async (what: string, f: () => Promise<void>): Promise<Measure> => await measureGet(ctx, giver, what, f)
  try {
    let bytes = 0
    const fresh = await get('fresh get', async () => { bytes = (await taker.get(giver.id, `/${folder}`)).bytes })
    rows.push(row('fresh (both indexes cold)', fresh, bytes, 'rsync -a', await rsync('fresh'), '≤ 1×'))

    // The usual case of a serving artist: the giver's index knows its files (it served them, or got them), the taker's folder is empty.
    await rm(join(ctx.takerRoot, folder), { recursive: true, force: true })
    await rm(rsyncTo, { recursive: true, force: true })
    await mkdir(rsyncTo, { recursive: true })
    const warm = await get('fresh get, giver warm', async () => { bytes = (await taker.get(giver.id, `/${folder}`)).bytes })
    rows.push(row('fresh (giver\'s index warm, taker empty)', warm, bytes, 'rsync -a', await rsync('fresh again'), '≤ 1×'))

    await changeThree(giverDir, rels)
    const incremental = await get('incremental get', async () => { bytes = (await taker.get(giver.id, `/${folder}`)).bytes })
    rows.push(row('incremental (3 files changed)', incremental, bytes, 'rsync -a', await rsync('incremental'), '≤ 1×'))

    const noChange = await get('no-change get', async () => { bytes = (await taker.get(giver.id, `/${folder}`)).bytes })
    const hashAll = await measureHere('fresh hash', async () => await buildManifest(ctx.takerRoot, `/${folder}`, new HashCache(ctx.takerRoot, { inMemory: true })))
    rows.push(row('no change', noChange, bytes, 'fresh hash of the folder', hashAll, '≤ 0.1×'))
    const rsyncNoChange = await rsync('no change')
    if (rsyncNoChange !== null) rows.push(row('no change', noChange, bytes, 'rsync -a', rsyncNoChange, '-'))

    // Interrupted at half: the giver's process is killed once half the bytes arrived; `serve` started again serves the rest.
    await rm(join(ctx.takerRoot, folder), { recursive: true, force: true })
    const offered = await buildManifest(ctx.giverRoot, `/${folder}`, new HashCache(ctx.giverRoot, { inMemory: true }))
    const totalBytes = [...offered.entries.values()].reduce((n, e) => n + e.size, 0)
    const dying = giver
    let killed = false
    await bounded('interrupted get', taker.get(dying.id, `/${folder}`, {
      onProgress: (p) => { if (!killed && p.bytesDone >= totalBytes / 2) { killed = true; dying.child.kill('SIGKILL') } }
    }).catch(() => null))
    await stopGiver(dying, 'SIGKILL')
    giver = await startGiver(ctx, 'giver-again')
    let resumed = 0
    const resume = await get('resumed get', async () => {
      const r = await taker.get(giver.id, `/${folder}`)
      bytes = r.bytes
      resumed = r.bytesResumed
    })
    rows.push({ ...row('resumed after an interrupt at half', resume, bytes, 'fresh get (above)', fresh, '≈ 0.5×'), note: `${mibText(resumed)} of a part kept` })
  } finally {
    await stopGiver(giver)
    taker.destroy()
  }
  return rows
}

export async function benchTransfer (o: Options = {}): Promise<Row[]> {
  const wanted = o.bigMib ?? Number(process.env.BENCH_TRANSFER_BIG_MIB ?? 2048)
  const files = o.files ?? 2000
  const base = await mkdtemp(join(tmpdir(), 'vcmu-bench-transfer-'))
  // Three copies of the large file (giver, taker, rsync) and the shot, with room to spare.
  const fs = await statfs(base)
  const free = Number(fs.bavail) * Number(fs.bsize)
  const bigMib = Math.max(64, Math.min(wanted, Math.floor((free / MiB - 2048) / 4 / 16) * 16))
  const rsync = await hasRsync()
  const server = await startServerProcess()
  const ctx: Ctx = { serverPid: server.child.pid, port: server.port, giverRoot: join(base, 'giver'), takerRoot: join(base, 'taker'), rsyncDest: join(base, 'rsync'), rsync }
  const rows: Row[] = []
  try {
    const shot = await writeShot(join(ctx.giverRoot, 'shot'), files)
    rows.push(...await scenarios(ctx, `shot, ${files} files`, 'shot', shot))
    const big = await writeBig(join(ctx.giverRoot, 'big'), bigMib)
    const label = `one ${bigMib >= 1024 ? `${bigMib / 1024} GiB` : `${bigMib} MiB`} file${bigMib < wanted ? ` (${wanted} MiB asked; /tmp too small)` : ''}`
    rows.push(...await scenarios(ctx, label, 'big', big))
    if (!rsync) rows.push({ dataset: '-', scenario: 'rsync rows skipped: rsync is not installed (apt-get install rsync)' })
  } finally {
    await server.stop()
    await rm(base, { recursive: true, force: true })
  }
  return rows
}

if (isMain(import.meta.url)) {
  const arg = (name: string): number | undefined => {
    const i = process.argv.indexOf(name)
    return i >= 0 ? Number(process.argv[i + 1]) : undefined
  }
  benchTransfer({ bigMib: arg('--big-mib'), files: arg('--files') })
    .then((rows) => { console.log(markdownTable(rows)); process.exit(0) })
    .catch((err: unknown) => { console.error(err); process.exit(1) })
}
