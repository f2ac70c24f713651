import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url))
const GC_WRAPPER = fileURLToPath(new URL('./gc-wrapper.ts', import.meta.url))

export interface ServerProcess {
  readonly child: ChildProcess
  readonly port: number
  /** Resident memory of the server process, bytes (from /proc). */
  rss: () => number
  /** CPU seconds (user + system) the server process has used (from /proc). */
  cpuSeconds: () => number
  /** RSS after a full garbage collection in the server (started with `{ gc: true }`). */
  rssAfterGc: () => Promise<number>
  stop: () => Promise<void>
}

/**
 * Runs the real server (`src/main.ts`) in a child process on 127.0.0.1 with
 * an ephemeral port, so its memory and CPU are its own.
 */
export async function startServerProcess (extraArgs: readonly string[] = [], o: { gc?: boolean } = {}): Promise<ServerProcess> {
  const entry = o.gc === true ? ['--expose-gc', '--import', 'tsx', GC_WRAPPER] : ['--import', 'tsx', MAIN]
  const child = spawn(process.execPath, [...entry, 'Bench', '--host', '127.0.0.1', '--port', '0',
    '--no-discovery', '--no-persist', '--log-level', 'debug', ...extraArgs], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 20_000)
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out)
      if (m !== null) { clearTimeout(timer); resolve(Number(m[1])) }
    })
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}: ${out}`)) })
  })
  child.stdout?.resume()
  const pid = child.pid as number
  const ticks = 100 // USER_HZ on Linux
  return {
    child,
    port,
    rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024,
    cpuSeconds: () => {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
      return (Number(fields[11]) + Number(fields[12])) / ticks
    },
    rssAfterGc: async () => {
      child.kill('SIGUSR2')
      await new Promise((resolve) => setTimeout(resolve, 500))
      return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024
    },
    stop: async () => {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))])
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  }
}

export function percentile (sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))]
}
