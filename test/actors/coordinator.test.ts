/**
 * The coordinator (actors/coordinator.ts) over real TCP and real files:
 * behaviours that mutation testing of the coordinator found unpinned
 * (issue 12, docs/mutation-actors.md). It tells the world of each relay's
 * end (`relayEnded`, which the status page and metrics read) and logs it.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createActor, setup, type AnyEventObject } from 'xstate'
import { coordinatorMachine, type EndedRelay } from '../../actors/coordinator.ts'
import type { FramePort } from '../../actors/ports.ts'
import type { ServerOptions } from '../../src/server.ts'
import { expectError, joinClients, passToGive, waitUntil } from '../helpers/relay-wire.ts'
import { expectYours, giveFolder, pass, removeTempDirs, takeFolder, tempDir, writeTree } from '../helpers/relay-peers.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { pass as passTurns, request } from '../helpers/turns.ts'
import { join, type WireClient } from '../helpers/wire-client.ts'

let server: TestServer
let ended: EndedRelay[]
afterEach(async () => {
  await server?.close()
  await removeTempDirs()
})

async function start (o: Partial<ServerOptions> = {}): Promise<WireClient[]> {
  server = await startTestServer(o)
  ended = []
  server.coordinator.on('relayEnded', (e) => ended.push(e.relay))
  return await joinClients(server.port, 'gina', 'tom')
}
const relayActors = (): string[] => Object.keys(server.coordinator.getSnapshot().children)
/** Every relay actor that ended is removed from the coordinator (none left behind). */
const noRelayActorsLeft = async (): Promise<void> => { await waitUntil('no relay actors', () => relayActors().length === 0) }
/** The kinds of what waits for `userId`'s next pass (the status page shows them). */
const pendingFor = (userId: string): string[] =>
  [...server.connections()].find((c) => c.userId === userId)?.session.getSnapshot().context.pending.map((n) => n.kind) ?? []
const serveWithdrawnFrom = async (g: WireClient): Promise<void> => {
  await waitUntil('the serve withdrawn from the giver\'s pending', () => !pendingFor(g.userId).includes('serve'))
}
const relayCount = (): number => server.coordinator.getSnapshot().context.relays.size
const oneEnded = async (): Promise<EndedRelay> => {
  await waitUntil('the relay\'s end', () => ended.length > 0)
  expect(ended).toHaveLength(1)
  return ended[0]
}

describe('relayEnded: how each relay ended, and what went through', () => {
  it('ok: the files and bytes served, logged as served', async () => {
    const [g, t] = await start()
    const root = await tempDir('giver-')
    const dest = await tempDir('taker-')
    await writeTree(root, { 'a.txt': 'frame a\n', 'b/c.txt': 'twelve bytes' })
    const taken = takeFolder(t, g.userId, '/shot', dest)
    await waitUntil('the relay', () => relayCount() === 1)
    await pass(g, { onGive: async (folder) => await giveFolder(g, root, folder) })
    expect((await taken).results).toEqual({ 'a.txt': 'ok', 'b/c.txt': 'ok' })
    const r = await oneEnded()
    expect(r).toMatchObject({ id: 1, folder: '/shot', giver: g.userId, taker: t.userId, outcome: 'ok', files: 2, bytes: 20 })
    expect(r.failure).toBeUndefined()
    expect(r.durationMs).toBeGreaterThanOrEqual(0)
    const served = server.lines.filter((l) => l.startsWith('served | '))
    expect(served).toHaveLength(1)
    expect(served[0]).toBe(`served | /shot | from | ${g.userId} | to | ${t.userId} | files | 2 | bytes | 20 | seconds | ${(r.durationMs / 1000).toFixed(2)}`)
    expect(server.lines).toContain(`serving | /shot | from | ${g.userId} | to | ${t.userId}`)
    expect(relayCount()).toBe(0)
    await noRelayActorsLeft()
  })

  it('failed: the giver left mid-file; the failure is said and logged', async () => {
    const [g, t] = await start()
    t.send(['get', g.userId, '/shot'])
    await waitUntil('the relay', () => relayCount() === 1)
    expect(await passToGive(g)).toEqual(['give', '/shot'])
    g.send({ 'a.bin': 'h' })
    expect(await t.recv()).toEqual({ 'a.bin': 'h' })
    t.send(['a.bin'])
    expect(await g.recv()).toEqual(['a.bin'])
    g.send(['file', 'a.bin', 10])
    expect(await t.recv()).toEqual(['file', 'a.bin', 10])
    const gId = g.userId
    g.close()
    await expectError(t, 'relay_failed')
    await expectYours(t)
    const r = await oneEnded()
    expect(r).toMatchObject({ id: 1, folder: '/shot', giver: gId, taker: t.userId, outcome: 'failed', files: 0 })
    expect(r.failure).toEqual(expect.any(String))
    expect(server.lines).toContain(`relay failed | /shot | from | ${gId} | to | ${t.userId} | ${r.failure ?? ''}`)
    await noRelayActorsLeft()
  })

  it('timeout: the giver held its turn too long; nothing went through', async () => {
    const [g, t] = await start({ relayTimeoutMs: 200 })
    t.send(['get', g.userId, '/shot'])
    await expectError(t, 'relay_timeout')
    await expectYours(t)
    expect(await oneEnded()).toEqual({ id: 1, folder: '/shot', giver: g.userId, taker: t.userId, outcome: 'timeout', files: 0, bytes: 0, durationMs: 0 })
    expect(server.lines).toContain(`relay timeout | /shot | from | ${g.userId} | to | ${t.userId}`)
    await noRelayActorsLeft()
    await serveWithdrawnFrom(g)
  })

  it('withdrawn: the taker left before the giver started', async () => {
    const [g, t] = await start()
    const tId = t.userId
    expect((await pass(g)).delivered).toEqual(['users']) // so that the serve is the first thing pending for g
    t.send(['get', g.userId, '/shot'])
    await waitUntil('the relay', () => relayCount() === 1)
    t.close()
    expect(await oneEnded()).toEqual({ id: 1, folder: '/shot', giver: g.userId, taker: tId, outcome: 'withdrawn', files: 0, bytes: 0, durationMs: 0 })
    expect(relayCount()).toBe(0)
    await serveWithdrawnFrom(g)
    expect((await pass(g)).delivered).toEqual(['users'])
    // Both relay actors are told the taker left (taker.left), end, and are removed.
    await noRelayActorsLeft()
  })

  it('withdrawn: the giver left before it started; the taker gets relay_failed', async () => {
    const [g, t] = await start()
    const gId = g.userId
    t.send(['get', g.userId, '/shot'])
    await waitUntil('the relay', () => relayCount() === 1)
    g.close()
    await expectError(t, 'relay_failed')
    await expectYours(t)
    expect(await oneEnded()).toEqual({ id: 1, folder: '/shot', giver: gId, taker: t.userId, outcome: 'withdrawn', files: 0, bytes: 0, durationMs: 0 })
    expect(relayCount()).toBe(0)
    // Both relay actors are told the giver left (giver.left), end, and are removed.
    await noRelayActorsLeft()
  })

  it('relays are numbered from 1 up; a giver who leaves withdraws every relay waiting on it', async () => {
    const [g, t] = await start()
    const x = (await joinClients(server.port, 'xena'))[0]
    t.send(['get', g.userId, '/shot'])
    await waitUntil('the first relay', () => relayCount() === 1)
    x.send(['get', g.userId, '/set'])
    await waitUntil('the second relay', () => relayCount() === 2)
    expect([...server.coordinator.getSnapshot().context.relays.keys()]).toEqual([1, 2])
    const gId = g.userId
    g.close()
    await expectError(t, 'relay_failed')
    await expectError(x, 'relay_failed')
    await waitUntil('both relays\' ends', () => ended.length === 2)
    expect(ended.map((r) => [r.id, r.folder, r.giver, r.outcome])).toEqual([[1, '/shot', gId, 'withdrawn'], [2, '/set', gId, 'withdrawn']])
    await noRelayActorsLeft()
  })

  it('withdrawn: the taker left after the give, and the giver answered it with a request', async () => {
    const [g, t] = await start()
    const tId = t.userId
    t.send(['get', g.userId, '/shot'])
    await waitUntil('the relay', () => relayCount() === 1)
    expect(await passToGive(g)).toEqual(['give', '/shot'])
    t.close()
    await waitUntil('tom\'s leave', () => !server.coordinator.getSnapshot().context.users.has(tId))
    expect(ended).toEqual([]) // started: the giver's answer decides
    g.send('users')
    await expectError(g, 'bad_request')
    await expectYours(g)
    expect(await oneEnded()).toEqual({ id: 1, folder: '/shot', giver: g.userId, taker: tId, outcome: 'withdrawn', files: 0, bytes: 0, durationMs: 0 })
    await noRelayActorsLeft()
  })

  it('a user who leaves ends its own relays only: a relay between two others goes on', async () => {
    const [g, t] = await start()
    const x = (await joinClients(server.port, 'xena'))[0]
    const root = await tempDir('giver-')
    const dest = await tempDir('taker-')
    await writeTree(root, { 'a.txt': 'frame a\n' })
    const taken = takeFolder(t, g.userId, '/shot', dest)
    await waitUntil('the relay', () => relayCount() === 1)
    const xId = x.userId
    x.close()
    await waitUntil('xena\'s leave', () => !server.coordinator.getSnapshot().context.users.has(xId))
    expect(ended).toEqual([])
    expect(relayCount()).toBe(1)
    await pass(g, { onGive: async (folder) => await giveFolder(g, root, folder) })
    expect((await taken).results).toEqual({ 'a.txt': 'ok' })
    expect((await oneEnded()).outcome).toBe('ok')
    await noRelayActorsLeft()
  })
})

describe('the relay timeout counts only while the giver holds its turn (§5)', () => {
  it('a giver that held its turn, then is busy in a request, stops its takers\' clocks, and no one else\'s', async () => {
    const [g, t] = await start({ relayTimeoutMs: 1_000 })
    const [g3, t3] = await joinClients(server.port, 'g3', 't3')
    const takerState = (id: number): string => JSON.stringify(server.coordinator.getSnapshot().context.relays.get(id)?.takerActor.getSnapshot().value)
    t.send(['get', g.userId, '/shot'])
    await waitUntil('G holding its turn, T\'s clock running', () => takerState(1) === '{"waitingForGiver":"giverHoldsTurn"}')
    // A control relay from a giver that stays silent in its turn: its clock runs from now on.
    t3.send(['get', g3.userId, '/three'])
    await waitUntil('G3 holding its turn, T3\'s clock running', () => takerState(2) === '{"waitingForGiver":"giverHoldsTurn"}')
    // G leaves its turn for a story request and keeps the server waiting for its answer: busy, T's clock stops (T3's goes on).
    g.send('story')
    expect(await g.recv()).toBe('story')
    await waitUntil('G busy, T\'s clock stopped', () => takerState(1) === '{"waitingForGiver":"giverBusy"}')
    expect(takerState(2)).toBe('{"waitingForGiver":"giverHoldsTurn"}')
    // T3 times out; T, whose clock started first but stopped, does not.
    await expectError(t3, 'relay_timeout')
    expect(server.lines.filter((l) => l.startsWith('relay timeout | '))).toEqual([`relay timeout | /three | from | ${g3.userId} | to | ${t3.userId}`])
    expect(relayCount()).toBe(1)
    // G ends its request and passes: T is served.
    g.send([{}, '0000/00/00-00:00:00'])
    await g.recv()
    g.send(true)
    await expectYours(g)
    const passed = pass(g, { onGive: async (folder) => { g.send({}); expect(await g.recv()).toEqual([]); return { folder, getlist: [], answers: [] } } })
    expect(await t.recv()).toEqual({})
    t.send([])
    await expectYours(t)
    await passed
    expect(ended.map((r) => [r.folder, r.outcome])).toEqual([['/three', 'timeout'], ['/shot', 'ok']])
  })
})

describe('relay refusals say why (§5 detail)', () => {
  it('no such user, oneself, and a deadlock, each with its reason', async () => {
    const [g, t] = await start()
    t.send(['get', '127.0.0.1:1', '/shot'])
    expect(await expectError(t, 'no_such_user')).toBe('127.0.0.1:1 is not connected')
    await expectYours(t)
    t.send(['get', t.userId, '/shot'])
    expect(await expectError(t, 'no_such_user')).toBe('you cannot get a folder from yourself')
    await expectYours(t)
    g.send(['get', t.userId, '/from-tom'])
    await waitUntil('the relay', () => relayCount() === 1)
    t.send(['get', g.userId, '/from-gina'])
    expect(await expectError(t, 'would_deadlock')).toBe(`${g.userId} is waiting, directly or through a chain, on a relay from you`)
    await expectYours(t)
    expect(relayCount()).toBe(1)
  })
})

describe('a restored state (persistence)', () => {
  it('is what newcomers sync to; its chat is capped like any history', async () => {
    const TS = '2031/02/02-00:00:00'
    server = await startTestServer({
      chatLimit: 2,
      restored: {
        story: { owner: '10.0.0.9:4000', value: { scenes: 9 }, timestamp: TS },
        analytics: { value: { done: 4 }, timestamp: TS },
        chat: [['Multiuser Server', 'Server Started'], ['ann', 'one'], ['bob', 'two'], ['cy', 'three']]
      }
    })
    expect(server.coordinator.getSnapshot().context.chat).toEqual([['Multiuser Server', 'Server Started'], ['bob', 'two'], ['cy', 'three']])
    const { client, story, analytics } = await join(server.port, 'Test Film', { username: 'dee' })
    expect(story).toEqual(['10.0.0.9:4000', { scenes: 9 }])
    expect(analytics).toEqual({ done: 4 })
    client.send(['message', 'four'])
    expect(await client.recv()).toBe('yours')
    expect((await pass(client)).delivered).toEqual(['users', ['messages', [['Multiuser Server', 'Server Started'], ['cy', 'three'], ['dee', 'four']]]])
    client.close()
  })

  it('its chat is capped in bytes by --chat-bytes as well (§4 rev 2)', async () => {
    const TS = '2031/02/02-00:00:00'
    const first: [string, string] = ['Multiuser Server', 'Server Started']
    server = await startTestServer({
      chatBytes: 200,
      restored: {
        story: { owner: '10.0.0.9:4000', value: {}, timestamp: TS },
        analytics: { value: {}, timestamp: TS },
        chat: [first, ['a', 'x'.repeat(50)], ['a', 'y'.repeat(50)], ['a', 'z'.repeat(50)]]
      }
    })
    // With the x line the history would be 210 bytes of JSON.
    expect(server.coordinator.getSnapshot().context.chat).toEqual([first, ['a', 'y'.repeat(50)], ['a', 'z'.repeat(50)]])
  })
})

describe('who hears of a change (§4 table)', () => {
  it('the submitter of a story, analytics or assets change is not notified of its own change; the others are', async () => {
    const [a, b] = await start()
    expect((await pass(a)).delivered).toEqual(['users'])
    expect((await pass(b)).delivered).toEqual(['users'])
    const TS = '2025/01/01-00:00:00'
    expect(await request(a, 'story', { story: [{ scenes: 2 }, TS] })).toEqual(['story', [a.userId, { scenes: 2 }], 'yours'])
    expect(await request(a, 'analytics', { analytics: [{ done: 1 }, TS] })).toEqual(['analytics', { done: 1 }, 'yours'])
    expect(await request(a, 'assets', { assets: { '/chr/A': ['?', TS] } })).toEqual(['assets', { '/chr/A': [a.userId, TS] }, 'yours'])
    expect(await request(b, 'story', { story: [{ scenes: 3 }, '2025/01/01-00:00:01'] })).toEqual(['story', [b.userId, { scenes: 3 }], 'yours'])
    // a's story sync on its pass (started by the server, not a request) carries a newer story: b hears of it, a does not.
    expect(await passTurns(a, { story: [{ scenes: 4 }, '2025/01/01-00:00:02'] })).toEqual(['story', [a.userId, { scenes: 4 }], 'yours'])
    expect((await pass(a)).delivered).toEqual([])
    expect((await pass(b)).delivered).toEqual(['story', 'analytics', 'assets'])
    expect((await pass(b)).delivered).toEqual([])
  })

  it('assets: a change in the sync of a joining client notifies the others; a request that changes nothing notifies them too', async () => {
    const [a] = await start()
    expect((await pass(a)).delivered).toEqual(['users'])
    const TS = '2025/01/01-00:00:00'
    const [c] = await joinClients(server.port, 'cleo') // empty assets: nothing changes
    expect((await pass(a)).delivered).toEqual(['users'])
    const d = (await join(server.port, 'Test Film', { username: 'dan', assets: { '/chr/D': ['?', TS] } })).client
    expect((await pass(a)).delivered.slice().sort()).toEqual(['assets', 'users'])
    expect((await pass(c)).delivered.slice().sort()).toEqual(['assets', 'users'])
    // d's request changes nothing (its entry is not newer): the others hear of it all the same (§4 table).
    expect(await request(d, 'assets', { assets: { '/chr/D': ['?', TS] } })).toEqual(['assets', { '/chr/D': [d.userId, TS] }, 'yours'])
    expect((await pass(a)).delivered).toEqual(['assets'])
    d.close()
  })
})

describe('the coordinator alone: a serve.begin for a relay no longer there', () => {
  // Over TCP a withdrawal reaches the giver's session (serve.withdraw) before it can start that serve;
  // this pins the coordinator's own answer should a serve.begin ever cross a withdrawal.
  it('is answered serve.ended, so that the giver\'s pass goes on; nothing starts', () => {
    const got: AnyEventObject[] = []
    const session = createActor(setup({}).createMachine({ on: { '*': { actions: ({ event }) => { got.push(event) } } } }))
    session.start()
    const coordinator = createActor(coordinatorMachine, { input: { chatLimit: 100, relayTimeoutMs: 60_000 } })
    const lines: string[] = []
    coordinator.on('log', (e) => lines.push(e.line))
    coordinator.start()
    coordinator.send({ type: 'user.join', userId: 'gina', username: 'gina', session, port: {} as FramePort })
    coordinator.send({ type: 'serve.begin', userId: 'gina', relayId: 7 })
    expect(got).toEqual([{ type: 'serve.ended' }])
    expect(lines.filter((l) => l.startsWith('serving'))).toEqual([])
    expect(coordinator.getSnapshot().context.relays.size).toBe(0)
    coordinator.stop()
    session.stop()
  })
})
