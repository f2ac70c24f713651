/**
 * Runs every benchmark module of bench/ and prints its table: `npm run bench`.
 *
 * To add a benchmark, write bench/<name>.ts exporting an async function that
 * returns Row[], and add it to BENCHES. Entries whose file does not exist are
 * skipped, so a list can name benchmarks that are still being written.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** One line of a benchmark's table: column name → cell. */
export type Row = Record<string, string | number>

interface BenchEntry {
  readonly name: string
  /** Path relative to this file. */
  readonly module: string
  /** The exported function returning Promise<Row[]>. */
  readonly fn: string
}

export const BENCHES: readonly BenchEntry[] = [
  { name: 'targets (issue 14)', module: './targets.ts', fn: 'benchTargets' },
  { name: 'session steps: XState\'s interpreter and cached steps', module: './steps.ts', fn: 'benchSteps' },
  { name: 'codec', module: './codec.ts', fn: 'benchCodec' },
  { name: 'turns', module: './turns.ts', fn: 'benchTurns' },
  { name: 'client', module: './client.ts', fn: 'benchClient' },
  { name: 'persist', module: './persist.ts', fn: 'benchPersist' },
  { name: 'relay', module: './relay.ts', fn: 'benchRelay' },
  { name: 'hog', module: './hog.ts', fn: 'benchHog' },
  { name: 'transfer', module: './transfer.ts', fn: 'benchTransfer' },
  { name: 'status', module: './status.ts', fn: 'benchStatus' }
]

/** A markdown table; columns are the union of the rows' keys, in first-seen order. */
export function markdownTable (rows: readonly Row[]): string {
  const columns: string[] = []
  for (const row of rows) for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key)
  const cell = (v: string | number | undefined): string => v === undefined ? '' : String(v)
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)))
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`
  return [
    line(columns),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map((r) => line(columns.map((c) => cell(r[c]))))
  ].join('\n')
}

/** True when `moduleUrl` is the script node was started with (not an import). */
export function isMain (moduleUrl: string): boolean {
  const script = process.argv[1]
  return script !== undefined && pathToFileURL(script).href === moduleUrl
}

async function main (): Promise<void> {
  for (const bench of BENCHES) {
    const url = new URL(bench.module, import.meta.url)
    if (!existsSync(fileURLToPath(url))) {
      console.log(`## ${bench.name}\n\n(skipped: ${bench.module} does not exist)\n`)
      continue
    }
    const mod = await import(url.href) as Record<string, unknown>
    const fn = mod[bench.fn]
    if (typeof fn !== 'function') throw new Error(`${bench.module} does not export ${bench.fn}()`)
    const rows = await (fn as () => Promise<Row[]>)()
    console.log(`## ${bench.name}\n\n${markdownTable(rows)}\n`)
  }
}

// No top-level await: bench modules import this file, and awaiting here while
// they load would be an import cycle that never settles.
if (isMain(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
