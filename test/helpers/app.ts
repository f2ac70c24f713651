import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startApp, type App } from '../../src/app.ts'
import { parseCli } from '../../src/cli.ts'
import type { ServerLog } from '../../src/log.ts'

/** A ServerLog that keeps every line, by level, and prints nothing. */
export interface RecordingLog extends ServerLog {
  readonly lines: Array<{ level: 'human' | 'debug' | 'warn' | 'error', text: string }>
}

export function recordingLog (): RecordingLog {
  const lines: RecordingLog['lines'] = []
  const listeners = new Set<(line: string) => void>()
  return {
    lines,
    human: (line) => { lines.push({ level: 'human', text: line }); for (const l of listeners) l(line) },
    debug: (m) => { lines.push({ level: 'debug', text: String(m) }) },
    warn: (m) => { lines.push({ level: 'warn', text: String(m) }) },
    error: (m) => { lines.push({ level: 'error', text: String(m) }) },
    onHumanLine: (listener) => { listeners.add(listener); return () => { listeners.delete(listener) } }
  }
}

export interface TestApp extends App {
  readonly log: RecordingLog
  /** The TCP port clients connect to. */
  readonly port: number
  /** The status page's base URL (`http://127.0.0.1:<port>/`). */
  readonly url: string
  readonly dataDir: string
  readonly close: () => Promise<void>
}

/**
 * The whole app as `npm start` runs it (options through the real CLI parser),
 * in this process: TCP on 127.0.0.1 and the HTTP side on a free port, UDP off,
 * persistence in a fresh temp dir. `args` are extra command-line arguments.
 * Project "Test Film" unless `project` says otherwise.
 */
export async function startTestApp (args: string[] = [], project = 'Test Film'): Promise<TestApp> {
  const dataDir = await mkdtemp(join(tmpdir(), 'vcs-status-'))
  const options = parseCli(['node', 'main.ts', project, '--host', '127.0.0.1', '--port', '0', '--turn-hold', '0',
    '--no-discovery', '--http', '0', '--data-dir', join(dataDir, 'data'), ...args])
  const log = recordingLog()
  const app = await startApp(options, log, () => {})
  return {
    ...app,
    log,
    port: app.server.port,
    url: app.http?.url ?? '',
    dataDir: join(dataDir, 'data'),
    close: async () => {
      await app.stop('test over')
      await rm(dataDir, { recursive: true, force: true })
    }
  }
}
