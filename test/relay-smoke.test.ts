import { afterEach, describe, expect, it } from 'vitest'
import { join } from './helpers/wire-client.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'

let server: TestServer
afterEach(async () => { await server?.close() })

describe('relay smoke', () => {
  it('relays one file', async () => {
    server = await startTestServer()
    const g = (await join(server.port, 'Test Film', { username: 'giver' })).client
    const t = (await join(server.port, 'Test Film', { username: 'taker' })).client
    t.send(['get', g.userId, '/chr/Moria'])
    // giver passes: users (coalesced), then the serve
    g.send('yours')
    expect(await g.recv()).toBe('users')
    expect(await g.recv()).toEqual(['give', '/chr/Moria'])
    g.send({ 'a.txt': 'h1', 'b.txt': 'h2' })
    expect(await t.recv()).toEqual({ 'a.txt': 'h1', 'b.txt': 'h2' })
    t.send(['b.txt'])
    expect(await g.recv()).toEqual(['b.txt'])
    g.send(['file', 'b.txt', 5])
    g.sendBinary(new TextEncoder().encode('hello'))
    expect(await t.recv()).toEqual(['file', 'b.txt', 5])
    const f = await t.frame()
    expect(f.kind).toBe('binary')
    t.send(['ok', 'b.txt'])
    expect(await g.recv()).toEqual(['ok', 'b.txt'])
    expect(await t.recv()).toBe('yours')
    expect(await g.recv()).toBe('yours')
    expect(server.lines.some((l) => l.startsWith('served | /chr/Moria'))).toBe(true)
  })

  it('leaves no relay actor behind, after a relay or a timeout', async () => {
    server = await startTestServer({ relayTimeoutMs: 200 })
    const g = (await join(server.port, 'Test Film', { username: 'g' })).client
    const t = (await join(server.port, 'Test Film', { username: 't' })).client
    t.send(['get', g.userId, '/x'])
    expect(await t.recv()).toEqual(['error', 'relay_timeout', expect.any(String)])
    expect(await t.recv()).toBe('yours')
    t.send(['get', g.userId, '/x'])
    g.send('yours')
    expect(await g.recv()).toBe('users')
    expect(await g.recv()).toEqual(['give', '/x'])
    g.send({})
    expect(await t.recv()).toEqual({})
    t.send([])
    expect(await g.recv()).toEqual([])
    expect(await g.recv()).toBe('yours')
    expect(await t.recv()).toBe('yours')
    const snapshot = server.coordinator.getSnapshot()
    expect(Object.keys(snapshot.children)).toEqual([])
    expect(snapshot.context.relays.size).toBe(0)
  })
})
