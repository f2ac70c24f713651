import { afterEach, describe, expect, it } from 'vitest'
import { join, T0 } from './helpers/wire-client.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'

let server: TestServer
afterEach(async () => { await server?.close() })

describe('smoke', () => {
  it('handshake, sync, message, users', async () => {
    server = await startTestServer()
    const a = await join(server.port, 'Test Film', { username: 'ann' })
    expect(a.story).toEqual(['0.0.0.0:0000', {}])
    expect(a.assets).toEqual({})
    expect(a.analytics).toEqual({})
    a.client.send('yours')
    expect(await a.client.recv()).toBe('users')
    expect(await a.client.recv()).toBe('yours')
    a.client.send(['message', 'hi'])
    expect(await a.client.recv()).toBe('yours')
    a.client.send('yours')
    expect(await a.client.recv()).toEqual(['messages', [['Multiuser Server', 'Server Started'], ['ann', 'hi']]])
    expect(await a.client.recv()).toBe('yours')
    a.client.send('users')
    expect(await a.client.recv()).toEqual({ [a.client.userId]: { username: 'ann', camera: [0, 0], at: null } })
    expect(await a.client.recv()).toBe('yours')
    void T0
  })
})
