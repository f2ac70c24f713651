/**
 * Child processes for the benchmarks, started the way a user starts them:
 * the server exactly as `npm start` runs it (the node flags of package.json's
 * start script, a cold process), the bare protocol server and the bare
 * forwarder likewise, each measured from /proc (its own CPU and RSS).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/**
 * The node arguments of package.json's `start` script (`node <flags> --import
 * tsx src/main.ts` or `tsx src/main.ts`), so the bench runs the server with
 * the very heap flags a user gets.
 */
export function startScriptArgs (): string[] {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }
  const words = pkg.scripts.start.trim().split(/\s+/)
  if (words[0] === 'node') return words.slice(1)
  if (words[0] === 'tsx') return ['--import', 'tsx', ...words.slice(1)]
  throw new Error(`cannot read the start script: ${pkg.scripts.start}`)
}

export interface Child {
  readonly proc: ChildProcess
  readonly pid: number
  /** Resolves with the first match of `pattern` in the child's stdout. */
  readonly match: (pattern: RegExp, ms?: number) => Promise<RegExpExecArray>
  /** CPU seconds (user + system) used so far. */
  readonly cpuSeconds: () => number
  /** Resident memory, bytes. */
  readonly rss: () => number
  /** Everything the child wrote to stderr (the last 64 KiB). */
  readonly stderr: () => string
  readonly stop: () => Promise<void>
}

/** `node <args>` in the repository root, with its stdout watched. */
export function startNode (args: readonly string[], env: Record<string, string> = {}): Child {
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', ...env } })
  if (proc.pid === undefined) throw new Error(`could not start node ${args.join(' ')}`)
  const pid = proc.pid
  let out = ''
  let err = ''
  const waiters: Array<{ pattern: RegExp, resolve: (m: RegExpExecArray) => void }> = []
  proc.stdout?.setEncoding('utf8')
  proc.stdout?.on('data', (s: string) => {
    out = (out + s).slice(-64 * 1024)
    for (const w of [...waiters]) {
      const m = w.pattern.exec(out)
      if (m !== null) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m) }
    }
  })
  proc.stderr?.setEncoding('utf8')
  proc.stderr?.on('data', (s: string) => { err = (err + s).slice(-64 * 1024) })
  const exited = once(proc, 'exit')
  const status = (): string => readFileSync(`/proc/${pid}/status`, 'utf8')
  return {
    proc,
    pid,
    match: (pattern, ms = 30_000) => new Promise((resolve, reject) => {
      const m = pattern.exec(out)
      if (m !== null) { resolve(m); return }
      const timer = setTimeout(() => reject(new Error(`node ${args.join(' ')}: no ${String(pattern)} within ${ms} ms (stderr: ${err.slice(-2000)})`)), ms)
      waiters.push({ pattern, resolve: (x) => { clearTimeout(timer); resolve(x) } })
    }),
    cpuSeconds: () => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return (Number(fields[11]) + Number(fields[12])) / 100 // utime + stime, USER_HZ = 100
    },
    rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(status())?.[1] ?? 0) * 1024,
    stderr: () => err,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      const killer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
      await exited
      clearTimeout(killer)
    }
  }
}

export interface Listening extends Child { readonly port: number }

const LISTENING = /listening on 127\.0\.0\.1:(\d+)/

/**
 * The real server, as `npm start` runs it, on an ephemeral loopback port.
 * `entry` replaces src/main.ts by a bench wrapper that imports it.
 */
export async function startServer (serverArgs: readonly string[], o: { nodeFlags?: readonly string[], entry?: string, env?: Record<string, string> } = {}): Promise<Listening> {
  // Extra node flags go after the start script's, so they win over them (an experiment with other heap sizes).
  const start = startScriptArgs().flatMap((a) => (a === 'src/main.ts' ? [...o.nodeFlags ?? [], o.entry ?? a] : [a]))
  const child = startNode([...start, 'Bench', '--host', '127.0.0.1', '--port', '0',
    '--no-discovery', '--no-persist', '--log-level', 'debug', ...serverArgs], o.env)
  const port = Number((await child.match(LISTENING))[1])
  return { ...child, port }
}

/** bench/bare-server.ts, the floor of turn-taking. */
export async function startBareServer (serverArgs: readonly string[]): Promise<Listening> {
  const child = startNode(['--import', 'tsx', 'bench/bare-server.ts', 'Bench', '--port', '0', ...serverArgs])
  const port = Number((await child.match(LISTENING))[1])
  return { ...child, port }
}

/** Samples a process's RSS every 20 ms until stopped; returns the peak. */
export function sampleRss (child: Child): { stop: () => number } {
  let peak = child.rss()
  const timer = setInterval(() => { try { peak = Math.max(peak, child.rss()) } catch { /* exited */ } }, 20)
  return { stop: () => { clearInterval(timer); try { return Math.max(peak, child.rss()) } catch { return peak } } }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
