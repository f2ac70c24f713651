import { spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterEach } from 'vitest'

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url))
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
export const PROJECT = 'Test Film'

/** The real server (`npm start`, through tsx) in a child process. */
export interface SpawnedServer {
  readonly child: ChildProcess
  /** Everything the process printed so far (stdout and stderr). */
  readonly output: () => string
  /** The exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>
  /** Resolves with the first match of `pattern` in the output (rejects if the process exits first). */
  readonly waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpExecArray>
}

export interface ServerProcess extends SpawnedServer {
  readonly port: number
  /** SIGTERM, then the exit code (SIGKILL after 10 s). */
  readonly stop: () => Promise<number | null>
  readonly kill: () => Promise<void>
}

const children = new Set<ChildProcess>()
afterEach(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  children.clear()
})

/** Starts `src/main.ts <project> --host 127.0.0.1 --port 0 --no-discovery --no-http --log-level debug <args>` (`--http <port>` in args turns the HTTP side back on). */
export function spawnServer (args: readonly string[], o: { cwd?: string, env?: NodeJS.ProcessEnv, project?: string } = {}): SpawnedServer {
  const child = spawn(process.execPath, ['--import', TSX, MAIN, o.project ?? PROJECT, '--host', '127.0.0.1', '--port', '0',
    '--no-discovery', '--no-http', '--log-level', 'debug', ...args], { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let out = ''
  const listeners = new Set<() => void>()
  const onData = (d: Buffer): void => {
    out += d.toString()
    for (const l of listeners) l()
  }
  child.stdout?.on('data', onData)
  child.stderr?.on('data', onData)
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const waitFor = async (pattern: RegExp, timeoutMs = 15_000): Promise<RegExpExecArray> => await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { listeners.delete(look); reject(new Error(`no ${String(pattern)} within ${timeoutMs} ms: ${out}`)) }, timeoutMs)
    const look = (): void => {
      const m = pattern.exec(out)
      if (m !== null) { clearTimeout(timer); listeners.delete(look); resolve(m) }
    }
    listeners.add(look)
    look()
    void exited.then((code) => { if (listeners.delete(look)) { clearTimeout(timer); reject(new Error(`server exited with ${code}: ${out}`)) } })
  })
  return { child, output: () => out, exited, waitFor }
}

/** Starts the server and waits until it listens. */
export async function startServerProcess (args: readonly string[], cwd?: string, env?: NodeJS.ProcessEnv): Promise<ServerProcess> {
  const spawned = spawnServer(args, { cwd, env })
  const port = Number((await spawned.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1])
  const { child, exited } = spawned
  return {
    ...spawned,
    port,
    stop: async () => {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      const code = await exited
      clearTimeout(timer)
      return code
    },
    kill: async () => {
      child.kill('SIGKILL')
      await exited
    }
  }
}
