import { startServer, DEFAULTS, type RunningServer, type ServerOptions } from '../../src/server.ts'
import { createLog } from '../../src/log.ts'

export interface TestServer extends RunningServer {
  /** Human log lines, in order. */
  readonly lines: string[]
}

/** A real server on 127.0.0.1 with an ephemeral port; quiet logs kept in `lines`. */
export async function startTestServer (overrides: Partial<ServerOptions> = {}): Promise<TestServer> {
  const log = createLog({ silent: true })
  const lines: string[] = []
  log.onHumanLine((line) => lines.push(line))
  const server = await startServer({
    ...DEFAULTS,
    projectName: 'Test Film',
    host: '127.0.0.1',
    port: 0,
    turnHoldMs: 0,
    ...overrides
  }, log)
  return Object.assign(Object.create(server) as RunningServer, server, { lines })
}
