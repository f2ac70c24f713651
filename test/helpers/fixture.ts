import { afterEach, expect } from 'vitest'
import { join, WireClient, type JoinOptions } from './wire-client.ts'
import { startTestServer, type TestServer } from './server.ts'
import type { ServerOptions } from '../../src/server.ts'

export const PROJECT = 'Test Film'

/**
 * One test server per test and the clients it connected, closed after each
 * test: `start`, then `joined` (handshake and syncs done) or `raw` clients.
 */
export function serverFixture (): {
  readonly server: () => TestServer
  readonly start: (o?: Partial<ServerOptions>) => Promise<TestServer>
  readonly joined: (o?: JoinOptions) => Promise<WireClient>
  readonly raw: () => Promise<WireClient>
  /** Waits until the server has dropped closed connections, down to `count`. */
  readonly settle: (count: number) => Promise<void>
} {
  let current: TestServer | undefined
  const clients: WireClient[] = []
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close()
    await current?.close()
    current = undefined
  })
  const server = (): TestServer => {
    if (current === undefined) throw new Error('start() the server first')
    return current
  }
  return {
    server,
    start: async (o = {}) => { current = await startTestServer(o); return current },
    joined: async (o = {}) => {
      const c = (await join(server().port, PROJECT, o)).client
      clients.push(c)
      return c
    },
    raw: async () => {
      const c = await WireClient.connect(server().port)
      clients.push(c)
      return c
    },
    settle: async (count) => {
      for (let i = 0; i < 500 && server().connectionCount() !== count; i++) await new Promise((resolve) => setTimeout(resolve, 10))
      expect(server().connectionCount()).toBe(count)
    }
  }
}
