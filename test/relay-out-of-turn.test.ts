/**
 * §4 vs §5: a request the giver sent out of turn (during a held pass, when a
 * `serve` reached its session first) is read where its answer to
 * `["give", folder]` was due. It is no bad manifest: the giver gets
 * `bad_request`, then `"yours"`; the serve is pending again, first, and the
 * taker keeps waiting. Real TCP, real files.
 */
import { readFile } from 'node:fs/promises'
import { join as joinPath } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { JsonValue } from '../protocol/frame.ts'
import { MAX_GIVE_DEFERRALS } from '../actors/giver.ts'
import type { WireClient } from './helpers/wire-client.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'
import { expectClosedForProtocol, expectError, joinClients, passToGive, waitUntil } from './helpers/relay-wire.ts'
import {
  expectUsable, expectYours, giveFolder, pass, removeTempDirs, takeFolder, tempDir, writeTree
} from './helpers/relay-peers.ts'
import { sessionReaches } from './helpers/session-state.ts'

let server: TestServer
afterEach(async () => {
  await server?.close()
  await removeTempDirs()
})

const TS = '2030/01/01-00:00:00'
const SHOT = { 'a.txt': 'frame a\n', 'sub/b.txt': 'frame b\n' }

const relayCount = (): number => server.coordinator.getSnapshot().context.relays.size
const pendingFor = (userId: string): string[] =>
  [...server.connections()].find((c) => c.userId === userId)?.session.getSnapshot().context.pending.map((n) => n.kind) ?? []
const chatTexts = (): string[] => server.coordinator.getSnapshot().context.chat.map(([, text]) => text)

/** G's answer to the give was `request`: refused with bad_request (saying why), then "yours". Returns the detail. */
async function expectRefusedOutOfTurn (g: WireClient, folder: string): Promise<string> {
  const detail = await expectError(g, 'bad_request')
  expect(detail).toContain(`where the answer to ["give", ${JSON.stringify(folder)}] was due`)
  await expectYours(g)
  return detail
}

/** A giver serving `SHOT` from a real folder, a taker with an empty one; T's get is on its way and G holds the give. */
async function giveRaced (folder = '/shot'): Promise<{ g: WireClient, t: WireClient, root: string, dest: string, take: ReturnType<typeof takeFolder> }> {
  const [g, t] = await joinClients(server.port, 'gina', 'bob')
  const root = await tempDir('giver-')
  const dest = await tempDir('taker-')
  await writeTree(root, SHOT)
  const take = takeFolder(t, g.userId, folder, dest)
  await waitUntil('the relay', () => relayCount() === 1)
  expect(await passToGive(g)).toEqual(['give', folder])
  return { g, t, root, dest, take }
}

describe('a request where the answer to give was due (§4: never a violation)', () => {
  // Every request, well formed or not: what the giver's turn would have read next.
  const requests: JsonValue[] = [
    'users', 'yours', 'story', 'analytics', 'assets',
    ['at', '/shot', TS], ['message', 'sent early'], ['get', '127.0.0.1:1', '/other'],
    ['at', 1], ['message'], ['get', 'x', '/../y']
  ]
  it.each(requests.map((r) => [JSON.stringify(r), r]))('%s: G gets bad_request and "yours"; the give comes again first on its next pass and the get completes', async (_, request) => {
    server = await startTestServer()
    const { g, t, root, dest, take } = await giveRaced()
    g.send(request)
    const detail = await expectRefusedOutOfTurn(g, '/shot')
    expect(detail).toBe(`a request (${request === 'yours' ? '"yours"' : JSON.stringify(Array.isArray(request) ? request[0] : request)}) came where the answer to ["give", "/shot"] was due: ` +
      'it was not served (send it again); the give comes again on your next pass')
    // The relay waits for G's next pass; the request was not served.
    await sessionReaches(server, g.userId, { turnTaking: 'clientHolds' })
    expect(server.coordinator.getSnapshot().context.relays.get(1)?.started).toBe(false)
    expect(chatTexts()).not.toContain('sent early')

    const { delivered, served } = await pass(g, { onGive: async (folder) => await giveFolder(g, root, folder) })
    expect(delivered[0]).toEqual(['give', '/shot'])
    expect(served).toHaveLength(1)
    const got = await take
    expect(got.error).toBeUndefined()
    expect(got.results).toEqual({ 'a.txt': 'ok', 'sub/b.txt': 'ok' })
    expect(await readFile(joinPath(dest, 'sub', 'b.txt'), 'utf8')).toBe('frame b\n')
    expect(server.lines.filter((l) => l.startsWith('give deferred | /shot | from | '))).toHaveLength(1)
    expect(server.lines.some((l) => l.startsWith('served | /shot'))).toBe(true)
    expect(server.lines.filter((l) => l.includes('protocol'))).toEqual([])
    await expectUsable([g, t])
    expect(relayCount()).toBe(0)
    expect(Object.keys(server.coordinator.getSnapshot().children)).toEqual([])
  })

  it('the refused request sent again on the turn is served; the rest of the pass waits for the next one, the give first', async () => {
    server = await startTestServer()
    const [g, t, carl] = await joinClients(server.port, 'gina', 'bob', 'carl')
    const root = await tempDir('giver-')
    const dest = await tempDir('taker-')
    await writeTree(root, SHOT)
    // Pending for G: users (joins), the serve, then an at of carl's.
    const take = takeFolder(t, g.userId, '/shot', dest)
    await waitUntil('the relay', () => relayCount() === 1)
    carl.send(['at', '/elsewhere', TS])
    await expectYours(carl)
    await waitUntil('the at pending for G', () => pendingFor(g.userId).includes('at'))
    expect(await passToGive(g)).toEqual(['give', '/shot'])
    g.send(['message', 'sent early'])
    await expectRefusedOutOfTurn(g, '/shot')
    g.send(['message', 'sent early'])
    await expectYours(g)
    expect(chatTexts()).toContain('sent early')

    const { delivered } = await pass(g, { onGive: async (folder) => await giveFolder(g, root, folder) })
    expect(delivered[0]).toEqual(['give', '/shot'])
    expect(delivered).toContainEqual([carl.userId, 'at', '/elsewhere', TS])
    expect((await take).results).toEqual({ 'a.txt': 'ok', 'sub/b.txt': 'ok' })
  })

  it('the relay timeout still applies: a G that keeps the turn after the refusal times the get out, and its next pass has no give', async () => {
    server = await startTestServer({ relayTimeoutMs: 300 })
    const { g, take } = await giveRaced()
    g.send('users')
    await expectRefusedOutOfTurn(g, '/shot')
    const got = await take
    expect(got.error).toEqual(['error', 'relay_timeout', expect.any(String)])
    const { delivered } = await pass(g)
    expect(delivered.filter((m) => Array.isArray(m) && m[0] === 'give')).toEqual([])
    expect(relayCount()).toBe(0)
  })

  it('T leaves before G answers with a request: G gets bad_request and "yours", and no give comes again', async () => {
    server = await startTestServer()
    const { g, t, take } = await giveRaced()
    t.close()
    await expect(take).rejects.toThrow('connection closed')
    await waitUntil('T gone', () => server.coordinator.getSnapshot().context.users.size === 1)
    g.send('users')
    await expectRefusedOutOfTurn(g, '/shot')
    await waitUntil('no relay', () => relayCount() === 0)
    const { delivered } = await pass(g)
    expect(delivered).toEqual(['users'])
    expect(Object.keys(server.coordinator.getSnapshot().children)).toEqual([])
    await expectUsable([g])
  })

  it('G leaves after its request was refused: T gets relay_failed, then "yours"', async () => {
    server = await startTestServer()
    const { g, t, take } = await giveRaced()
    g.send('users')
    await expectRefusedOutOfTurn(g, '/shot')
    g.close()
    const got = await take
    expect(got.error).toEqual(['error', 'relay_failed', expect.stringContaining('giver disconnected')])
    await expectUsable([t])
    expect(relayCount()).toBe(0)
  })

  it(`a G that answers the give with a request ${MAX_GIVE_DEFERRALS} times in a row does not serve: closed for protocol, T relay_failed`, async () => {
    server = await startTestServer()
    const { g, t, take } = await giveRaced()
    for (let i = 1; i < MAX_GIVE_DEFERRALS; i++) {
      g.send('users')
      await expectRefusedOutOfTurn(g, '/shot')
      expect(await passToGive(g)).toEqual(['give', '/shot'])
    }
    g.send('users')
    const detail = `giver broke the protocol instead of a manifest: answered ["give", "/shot"] with a request ${MAX_GIVE_DEFERRALS} times in a row`
    expect(await expectClosedForProtocol(g)).toBe(detail)
    expect((await take).error).toEqual(['error', 'relay_failed', detail])
    await expectUsable([t])
  })

  it('a frame that is neither a manifest, missing, nor a request stays a violation', async () => {
    server = await startTestServer()
    const { g, take } = await giveRaced()
    g.send(['file', 'a.txt', 1])
    await expectClosedForProtocol(g)
    expect((await take).error).toEqual(['error', 'relay_failed', expect.any(String)])
  })
})
