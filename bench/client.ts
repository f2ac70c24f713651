/**
 * Reference client benchmark: one SDK client fetches folders from another
 * through a real server on 127.0.0.1 (all in this process). Standalone:
 * `npx tsx bench/client.ts [--mib 256] [--files 2000]`; or as a module
 * exporting `benchClient` (Row[]) for bench/run.ts.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { connect } from '../src/client/index.ts'
import { createLog } from '../src/log.ts'
import { DEFAULTS, startServer } from '../src/server.ts'

export type Row = Record<string, string | number>

const MiB = 1024 * 1024

export async function benchClient (o: { mib?: number, files?: number } = {}): Promise<Row[]> {
  const mib = o.mib ?? 256
  const fileCount = o.files ?? 2000
  const server = await startServer({ ...DEFAULTS, projectName: 'Bench', host: '127.0.0.1', port: 0 }, createLog({ silent: true }))
  const giverRoot = await mkdtemp(join(tmpdir(), 'vcmu-bench-g-'))
  const takerRoot = await mkdtemp(join(tmpdir(), 'vcmu-bench-t-'))
  let peakRss = 0
  const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss) }, 20)
  const rows: Row[] = []
  try {
    // One big file, written in 16 MiB pieces so the bench itself holds little.
    await mkdir(join(giverRoot, 'big'), { recursive: true })
    const piece = randomBytes(16 * MiB)
    await writeFile(join(giverRoot, 'big/render.mov'), '')
    const { appendFile } = await import('node:fs/promises')
    for (let left = mib; left > 0; left -= 16) await appendFile(join(giverRoot, 'big/render.mov'), piece.subarray(0, Math.min(16, left) * MiB))
    for (let i = 0; i < fileCount; i++) {
      const dir = join(giverRoot, 'many', `d${i % 50}`)
      if (i < 50) await mkdir(dir, { recursive: true })
      await writeFile(join(dir, `f${i}.txt`), `file ${i} `.repeat(50))
    }
    const common = { host: '127.0.0.1', port: server.port, project: 'Bench' }
    const giver = await connect({ ...common, username: 'giver', root: giverRoot })
    const taker = await connect({ ...common, username: 'taker', root: takerRoot })
    giver.on('close', (info) => { if (info.error !== undefined) console.error(`giver closed: ${info.reason}`) })
    const run = async (name: string, folder: string): Promise<void> => {
      const rssBefore = process.memoryUsage().rss
      peakRss = rssBefore
      const t0 = performance.now()
      const r = await taker.get(giver.userId, folder)
      const s = (performance.now() - t0) / 1000
      rows.push({
        scenario: name,
        files: r.files,
        skipped: r.skipped,
        MiB: (r.bytes / MiB).toFixed(1),
        seconds: s.toFixed(2),
        'MiB/s': (r.bytes / MiB / s).toFixed(0),
        'peak RSS growth MiB': ((peakRss - rssBefore) / MiB).toFixed(0)
      })
    }
    await run(`1 file of ${mib} MiB`, '/big')
    await run(`${fileCount} small files`, '/many')
    await run(`${fileCount} small files, unchanged (cache)`, '/many')
    await giver.close()
    await taker.close()
  } finally {
    clearInterval(sampler)
    await server.close()
    await rm(giverRoot, { recursive: true, force: true })
    await rm(takerRoot, { recursive: true, force: true })
  }
  return rows
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const arg = (name: string): number | undefined => {
    const i = process.argv.indexOf(name)
    return i < 0 ? undefined : Number(process.argv[i + 1])
  }
  const rows = await benchClient({ mib: arg('--mib'), files: arg('--files') })
  for (const r of rows) console.log(Object.entries(r).map(([k, v]) => `${k}: ${v}`).join(' | '))
}
