/**
 * §5 and §6: every way a relay can be refused or fail, and after each one,
 * nobody is left paused (the clients still connected can chat).
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { WireClient } from './helpers/wire-client.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'
import { expectClosedForProtocol, expectError, joinClients, passToGive, waitUntil } from './helpers/relay-wire.ts'
import { deliveredUntilYours, expectUsable, expectYours, pass } from './helpers/relay-peers.ts'
import type { ServerOptions } from '../src/server.ts'
import type { JsonValue } from '../protocol/frame.ts'

let server: TestServer
const clients = async (...names: string[]): Promise<WireClient[]> => await joinClients(server.port, ...names)
afterEach(async () => { await server?.close() })

async function start (o: Partial<ServerOptions> = {}): Promise<void> {
  server = await startTestServer(o)
}

const relayCount = (): number => server.coordinator.getSnapshot().context.relays.size
const waitForRelays = async (n: number): Promise<void> => waitUntil(`${n} relays`, () => relayCount() === n)

/** T asks G for `folder`, G passes and gets the give, G sends `manifest`, T gets it. */
async function startRelay (g: WireClient, t: WireClient, manifest: Record<string, string>, folder = '/chr/Moria'): Promise<void> {
  const before = relayCount()
  t.send(['get', g.userId, folder])
  await waitForRelays(before + 1)
  expect(await passToGive(g)).toEqual(['give', folder])
  g.send(manifest)
  expect(await t.recv()).toEqual(manifest)
}

const bytes = (n: number, fill = 7): Uint8Array => new Uint8Array(n).fill(fill)

const failedLine = (): string | undefined => server.lines.find((l) => l.startsWith('relay failed | '))

describe('relay refused at once', () => {
  it('no_such_user: an unknown user, and oneself', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    t.send(['get', '127.0.0.1:1', '/chr/Moria'])
    await expectError(t, 'no_such_user')
    await expectYours(t)
    t.send(['get', t.userId, '/chr/Moria'])
    await expectError(t, 'no_such_user')
    await expectYours(t)
    expect(relayCount()).toBe(0)
    await expectUsable([g, t])
  })

  it('bad_path: .., a drive letter, a backslash, empty', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    for (const folder of ['../x', '/chr/../../etc', 'C:/x', '/a\\b', '']) {
      t.send(['get', g.userId, folder])
      await expectError(t, 'bad_path')
      await expectYours(t)
    }
    expect(relayCount()).toBe(0)
    await expectUsable([g, t])
  })

  it('would_deadlock: a cycle of 2', async () => {
    await start()
    const [a, b] = await clients('a', 'b')
    a.send(['get', b.userId, '/from-b'])
    await waitForRelays(1)
    b.send(['get', a.userId, '/from-a'])
    await expectError(b, 'would_deadlock')
    await expectYours(b)
    // B serves A (an empty folder), so A gets its turn back.
    const passed = pass(b, { onGive: async (folder) => { b.send({}); expect(await b.recv()).toEqual([]); return { folder, getlist: [], answers: [] } } })
    expect(await a.recv()).toEqual({})
    a.send([])
    await expectYours(a)
    await passed
    await expectUsable([a, b])
  })

  it('would_deadlock: a cycle of 3', async () => {
    await start()
    const [a, b, c] = await clients('a', 'b', 'c')
    a.send(['get', b.userId, '/from-b'])
    await waitForRelays(1)
    b.send(['get', c.userId, '/from-c'])
    await waitForRelays(2)
    c.send(['get', a.userId, '/from-a'])
    await expectError(c, 'would_deadlock')
    await expectYours(c)
    // C serves B, then B serves A: everyone gets the turn back.
    const emptyGive = (x: WireClient) => async (folder: string) => { x.send({}); expect(await x.recv()).toEqual([]); return { folder, getlist: [], answers: [] } }
    const cPass = pass(c, { onGive: emptyGive(c) })
    expect(await b.recv()).toEqual({})
    b.send([])
    await expectYours(b)
    await cPass
    const bPass = pass(b, { onGive: emptyGive(b) })
    expect(await a.recv()).toEqual({})
    a.send([])
    await expectYours(a)
    await bPass
    await expectUsable([a, b, c])
  })
})

describe('relay failures', () => {
  it('giver disconnects mid-file: T gets relay_failed, then "yours"', async () => {
    await start()
    const [g, t, other] = await clients('giver', 'taker', 'other')
    await startRelay(g, t, { 'a.bin': 'h' })
    t.send(['a.bin'])
    expect(await g.recv()).toEqual(['a.bin'])
    g.send(['file', 'a.bin', 1000])
    g.sendBinary(bytes(400))
    expect(await t.recv()).toEqual(['file', 'a.bin', 1000])
    expect((await t.frame()).kind).toBe('binary')
    g.close()
    await expectError(t, 'relay_failed')
    await expectYours(t)
    await waitUntil('the failure logged', () => failedLine() !== undefined)
    expect(failedLine()).toMatch(/^relay failed \| \/chr\/Moria \| from \| .* \| to \| .* \| giver disconnected/)
    expect(relayCount()).toBe(0)
    await expectUsable([t, other])
  })

  it('giver disconnects mid-file while T still owes the answer for the file before', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    await startRelay(g, t, { '1.bin': 'h1', '2.bin': 'h2' })
    t.send(['1.bin', '2.bin'])
    expect(await g.recv()).toEqual(['1.bin', '2.bin'])
    g.send(['file', '1.bin', 10])
    g.sendBinary(bytes(10))
    g.send(['file', '2.bin', 10])
    g.sendBinary(bytes(5))
    expect(await t.recv()).toEqual(['file', '1.bin', 10])
    expect((await t.frame()).kind).toBe('binary')
    expect(await t.recv()).toEqual(['file', '2.bin', 10])
    expect((await t.frame()).kind).toBe('binary')
    g.close()
    await waitUntil('the giver gone', () => server.connectionCount() === 1)
    await new Promise((resolve) => setTimeout(resolve, 50))
    // T's answer for 1.bin was on its way when the giver left: it must not cost T its connection.
    t.send(['ok', '1.bin'])
    await expectError(t, 'relay_failed')
    await expectYours(t)
    expect(t.closed).toBe(false)
    await expectUsable([t])
  })

  it('giver disconnects before it starts: T gets relay_failed, then "yours"', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    t.send(['get', g.userId, '/chr/Moria'])
    await waitForRelays(1)
    g.close()
    await expectError(t, 'relay_failed')
    await expectYours(t)
    expect(relayCount()).toBe(0)
    await expectUsable([t])
  })

  it('a JSON frame where bytes were expected: G gets a protocol error and is closed, T relay_failed', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    await startRelay(g, t, { 'a.bin': 'h' })
    t.send(['a.bin'])
    expect(await g.recv()).toEqual(['a.bin'])
    g.send(['file', 'a.bin', 100])
    g.sendBinary(bytes(30))
    g.send(['file', 'a.bin', 70])
    g.sendBinary(bytes(70)) // what a confused giver would send next: dropped, not held against anyone else
    expect(await t.recv()).toEqual(['file', 'a.bin', 100])
    expect((await t.frame()).kind).toBe('binary')
    await expectError(t, 'relay_failed')
    await expectYours(t)
    const detail = await expectError(g, 'protocol')
    expect(detail).toMatch(/JSON frame where 70 bytes of a\.bin were expected/)
    await g.waitClosed()
    expect(failedLine()).toMatch(/giver broke the protocol/)
    await expectUsable([t])
  })

  it('a frame of an unknown kind from the giver mid-relay: G gets a protocol error, T relay_failed', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    await startRelay(g, t, { 'a.bin': 'h' })
    t.send(['a.bin'])
    expect(await g.recv()).toEqual(['a.bin'])
    g.send(['file', 'a.bin', 100])
    g.sendRaw(new Uint8Array([0, 0, 0, 1, 0x02, 0x41]))
    expect(await t.recv()).toEqual(['file', 'a.bin', 100])
    await expectError(t, 'relay_failed')
    await expectYours(t)
    await expectClosedForProtocol(g)
    await expectUsable([t])
  })

  it('bad manifests: G gets a protocol error and is closed, T relay_failed', async () => {
    await start()
    for (const manifest of [{ '../x': 'h' }, { '/abs': 'h' }, { 'a//b': 'h' }, { 'a.txt': 5 }, ['a.txt'], 'a.txt']) {
      const [g, t] = await clients('giver', 'taker')
      t.send(['get', g.userId, '/chr/Moria'])
      await waitForRelays(1)
      expect(await passToGive(g)).toEqual(['give', '/chr/Moria'])
      g.send(manifest)
      await expectError(t, 'relay_failed')
      await expectYours(t)
      await expectClosedForProtocol(g)
      await waitForRelays(0)
      await expectUsable([t])
      t.close()
      await waitUntil('both gone', () => server.connectionCount() === 0)
    }
  })

  it('bad getlists: T gets bad_request, then "yours"; G gets [] and its pass goes on', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    for (const getlist of [['nope.txt'], ['a.txt', 'a.txt'], ['../a.txt'], { 'a.txt': true }, 'a.txt', [1]] as JsonValue[]) {
      await startRelay(g, t, { 'a.txt': 'h', 'b.txt': 'h' })
      t.send(getlist)
      // T is told what was wrong, and the log line says the same.
      const detail = await expectError(t, 'bad_request')
      expect(detail).not.toBe('')
      await expectYours(t)
      expect(await g.recv()).toEqual([])
      await deliveredUntilYours(g)
      await waitForRelays(0)
      expect(server.lines.filter((l) => l.startsWith('relay failed | ')).at(-1)).toBe(`relay failed | /chr/Moria | from | ${g.userId} | to | ${t.userId} | bad getlist: ${detail}`)
      await expectUsable([g, t])
    }
    expect(server.lines.filter((l) => l.startsWith('relay failed | ') && l.includes('bad getlist'))).toHaveLength(6)
  })

  it('a file header out of getlist order: G is closed for protocol, T relay_failed', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    await startRelay(g, t, { 'a.txt': 'h', 'b.txt': 'h' })
    t.send(['a.txt', 'b.txt'])
    expect(await g.recv()).toEqual(['a.txt', 'b.txt'])
    g.send(['file', 'b.txt', 1])
    g.sendBinary(bytes(1))
    await expectError(t, 'relay_failed')
    await expectYours(t)
    await expectClosedForProtocol(g)
    expect(failedLine()).toMatch(/where "a\.txt" was next in the getlist/)
    await expectUsable([t])
  })

  it('bad file headers: a negative or fractional size, an unknown type', async () => {
    await start()
    for (const header of [['file', 'a.txt', -1], ['file', 'a.txt', 1.5], ['file', 'a.txt', '1'], ['folder', 'a.txt', 1], ['missing', 'a.txt']]) {
      const [g, t] = await clients('giver', 'taker')
      await startRelay(g, t, { 'a.txt': 'h' })
      t.send(['a.txt'])
      expect(await g.recv()).toEqual(['a.txt'])
      g.send(header)
      await expectError(t, 'relay_failed')
      await expectYours(t)
      await expectClosedForProtocol(g)
      await expectUsable([t])
      t.close()
      await waitUntil('both gone', () => server.connectionCount() === 0)
    }
  })

  it('binary frames beyond the size: G is closed for protocol, T relay_failed', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    await startRelay(g, t, { 'a.txt': 'h' })
    t.send(['a.txt'])
    expect(await g.recv()).toEqual(['a.txt'])
    g.send(['file', 'a.txt', 10])
    g.sendBinary(bytes(6))
    g.sendBinary(bytes(6))
    expect(await t.recv()).toEqual(['file', 'a.txt', 10])
    const f = await t.frame()
    expect(f.kind === 'binary' && f.bytes.byteLength).toBe(6)
    await expectError(t, 'relay_failed')
    await expectYours(t)
    await expectClosedForProtocol(g)
    expect(failedLine()).toMatch(/exceed the 10 bytes its header announced/)
    await expectUsable([t])
  })

  it('"missing" instead of a file is relayed, and so is T\'s "failed"', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    await startRelay(g, t, { 'a.txt': 'h', 'b.txt': 'h' })
    t.send(['a.txt', 'b.txt'])
    expect(await g.recv()).toEqual(['a.txt', 'b.txt'])
    g.send(['missing', 'a.txt', 'permission denied'])
    g.send(['file', 'b.txt', 0])
    expect(await t.recv()).toEqual(['missing', 'a.txt', 'permission denied'])
    expect(await t.recv()).toEqual(['file', 'b.txt', 0])
    t.send(['failed', 'a.txt', 'not sent'])
    t.send(['ok', 'b.txt'])
    expect(await g.recv()).toEqual(['failed', 'a.txt', 'not sent'])
    expect(await g.recv()).toEqual(['ok', 'b.txt'])
    await expectYours(t)
    await expectYours(g)
    expect(server.lines.some((l) => l.startsWith('served | /chr/Moria |') && l.includes('| files | 1 | bytes | 0 |'))).toBe(true)
    await expectUsable([g, t])
  })

  it('taker disconnects mid-relay: G\'s files are drained and answered "failed", its pass goes on', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    await startRelay(g, t, { '1.bin': 'h', '2.bin': 'h', '3.bin': 'h' })
    t.send(['1.bin', '2.bin', '3.bin'])
    expect(await g.recv()).toEqual(['1.bin', '2.bin', '3.bin'])
    g.send(['file', '1.bin', 100])
    g.sendBinary(bytes(50))
    expect(await t.recv()).toEqual(['file', '1.bin', 100])
    expect((await t.frame()).kind).toBe('binary')
    t.close()
    await waitUntil('the taker gone', () => server.connectionCount() === 1)
    g.sendBinary(bytes(50))
    g.send(['file', '2.bin', 3])
    g.sendBinary(bytes(3))
    g.send(['missing', '3.bin', 'gone'])
    for (const p of ['1.bin', '2.bin', '3.bin']) expect(await g.recv()).toEqual(['failed', p, 'taker disconnected'])
    await deliveredUntilYours(g)
    await waitUntil('the failure logged', () => failedLine() !== undefined)
    expect(failedLine()).toMatch(/\| taker disconnected$/)
    expect(relayCount()).toBe(0)
    await expectUsable([g])
  })

  it('taker disconnects after its answer for the first of two files', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    await startRelay(g, t, { '1.bin': 'h', '2.bin': 'h' })
    t.send(['1.bin', '2.bin'])
    expect(await g.recv()).toEqual(['1.bin', '2.bin'])
    g.send(['file', '1.bin', 1])
    g.sendBinary(bytes(1))
    expect(await t.recv()).toEqual(['file', '1.bin', 1])
    expect((await t.frame()).kind).toBe('binary')
    t.send(['ok', '1.bin'])
    expect(await g.recv()).toEqual(['ok', '1.bin'])
    t.close()
    await waitUntil('the taker gone', () => server.connectionCount() === 1)
    g.send(['file', '2.bin', 1])
    g.sendBinary(bytes(1))
    expect(await g.recv()).toEqual(['failed', '2.bin', 'taker disconnected'])
    await deliveredUntilYours(g)
    await expectUsable([g])
  })

  it('taker disconnects before its getlist: G gets [] and its pass goes on', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    await startRelay(g, t, { 'a.txt': 'h' })
    const taker = t.userId
    t.close()
    expect(await g.recv()).toEqual([])
    await deliveredUntilYours(g)
    await waitForRelays(0)
    // Logged as a failed relay, not served, and not as a violation.
    expect(failedLine()).toBe(`relay failed | /chr/Moria | from | ${g.userId} | to | ${taker} | taker disconnected before its getlist`)
    await expectUsable([g])
  })

  it('taker disconnects before the giver starts: the serve is withdrawn', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    t.send(['get', g.userId, '/chr/Moria'])
    await waitForRelays(1)
    t.close()
    await waitForRelays(0)
    const { delivered } = await pass(g)
    expect(delivered.some((m) => Array.isArray(m) && m[0] === 'give')).toBe(false)
    await expectUsable([g])
  })

  it('a taker answer for the wrong file: T is closed for protocol, G\'s pass goes on', async () => {
    await start()
    const [g, t] = await clients('giver', 'taker')
    await startRelay(g, t, { '1.bin': 'h', '2.bin': 'h' })
    t.send(['1.bin', '2.bin'])
    expect(await g.recv()).toEqual(['1.bin', '2.bin'])
    g.send(['file', '1.bin', 1])
    g.sendBinary(bytes(1))
    expect(await t.recv()).toEqual(['file', '1.bin', 1])
    t.send(['ok', '2.bin'])
    g.send(['file', '2.bin', 1])
    g.sendBinary(bytes(1))
    expect(await g.recv()).toEqual(['failed', '1.bin', 'taker disconnected'])
    expect(await g.recv()).toEqual(['failed', '2.bin', 'taker disconnected'])
    await expectClosedForProtocol(t)
    await deliveredUntilYours(g)
    await expectUsable([g])
  })

  it('relay timeout: T gets relay_timeout, then "yours"; G\'s later pass has no give', async () => {
    await start({ relayTimeoutMs: 300 })
    const [g, t] = await clients('giver', 'taker')
    t.send(['get', g.userId, '/chr/Moria'])
    expect(await expectError(t, 'relay_timeout')).toMatch(/0\.3 s/)
    await expectYours(t)
    expect(relayCount()).toBe(0)
    const { delivered } = await pass(g)
    expect(delivered.some((m) => Array.isArray(m) && m[0] === 'give')).toBe(false)
    expect(server.lines).toContain(`relay timeout | /chr/Moria | from | ${g.userId} | to | ${t.userId}`)
    await expectUsable([g, t])
  })
})
