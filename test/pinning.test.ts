/**
 * Behaviours mutation testing found unpinned (issue 12): each test here fails
 * when the code that decides it is broken.
 */
import { describe, expect, it } from 'vitest'
import { join, T0, WireClient } from './helpers/wire-client.ts'
import { PROJECT, serverFixture } from './helpers/fixture.ts'
import { expectUsable, expectYours } from './helpers/relay-peers.ts'
import { pass, request } from './helpers/turns.ts'
import { encodeJson } from '../protocol/frame.ts'

const TS = '2025/01/01-00:00:00'
const { start, joined: joinedAs, raw, server } = serverFixture()
const joined = async (username: string, o: Parameters<typeof joinedAs>[0] = {}): Promise<WireClient> => await joinedAs({ username, ...o })
/** Joined, and past the users notifications of everyone's joins. */
async function ready (...names: string[]): Promise<WireClient[]> {
  const out: WireClient[] = []
  for (const name of names) out.push(await joined(name))
  for (const c of out) await pass(c)
  return out
}
async function waitFor (what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  if (!ok()) throw new Error(`still not ${what}`)
}
/** Lets a write leave as a segment of its own (not an assertion: the test holds either way). */
const pause = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 20)) }
const relayCount = (): number => server().coordinator.getSnapshot().context.relays.size

/** t asks g for `folder`; g passes and gets the give, sends `manifest`, t gets it. */
async function relayToGetlist (g: WireClient, t: WireClient, folder: string, manifest: Record<string, string>): Promise<void> {
  t.send(['get', g.userId, folder])
  await waitFor('a relay', () => relayCount() === 1)
  g.send('yours')
  expect(await g.recv()).toEqual(['give', folder])
  g.send(manifest)
  expect(await t.recv()).toEqual(manifest)
}

describe('§4 table: who is notified', () => {
  it('a story request that loses (not newer) still notifies the others', async () => {
    await start()
    const [a, b] = await ready('a', 'b')
    // T0 is not newer than the initial story's T0: a's story loses.
    expect(await request(a, 'story', { story: [{ mine: 1 }, T0] })).toEqual(['story', ['0.0.0.0:0000', {}], 'yours'])
    expect(await pass(b)).toEqual(['story', ['0.0.0.0:0000', {}], 'yours'])
  })

  it('an analytics request that loses still notifies the others', async () => {
    await start()
    const [a, b] = await ready('a', 'b')
    expect(await request(a, 'analytics', { analytics: [{ mine: 1 }, T0] })).toEqual(['analytics', {}, 'yours'])
    expect(await pass(b)).toEqual(['analytics', {}, 'yours'])
  })

  it('the sender of an at does not get its own at; the others do', async () => {
    await start()
    const [a, b] = await ready('a', 'b')
    expect(await request(a, ['at', '/chr/Moria', TS])).toEqual(['yours'])
    expect(await pass(a)).toEqual(['yours'])
    expect(await pass(b)).toEqual([[a.userId, 'at', '/chr/Moria', TS], 'yours'])
  })
})

describe('§3 merge rules', () => {
  it('an asset entry with an equal timestamp changes nothing: owner kept, nobody notified', async () => {
    await start()
    const a = await joined('a', { assets: { '/chr/A': ['a', TS] } })
    await pass(a)
    const b = await join(server().port, PROJECT, { username: 'b', assets: { '/chr/A': ['b', TS] } })
    b.client.close()
    expect(b.assets).toEqual({ '/chr/A': [a.userId, TS] })
    // a hears of b joining (and leaving), and of nothing else: no assets notification.
    expect(await pass(a)).toEqual(['users', 'yours'])
  })
})

describe('§5 relay edges', () => {
  it('a serve withdrawn while the giver is in the middle of its pass: the pass still ends with "yours"', async () => {
    await start()
    const [g, t, s] = await ready('g', 't', 's')
    // g's pending, in order: story (s's request), then serve (t's get).
    await request(s, 'story', { story: [{ v: 1 }, TS] })
    t.send(['get', g.userId, '/chr/Moria'])
    await waitFor('a relay', () => relayCount() === 1)
    g.send('yours')
    expect(await g.recv()).toBe('story') // g is in its pass, the serve still to come
    t.close() // the relay has not started: its serve is withdrawn
    await waitFor('the relay withdrawn', () => relayCount() === 0)
    g.send([{}, T0])
    expect(await g.recv()).toEqual([s.userId, { v: 1 }])
    g.send('ack')
    // No give, and nothing that was not pending when g passed: t's leaving comes on the next pass.
    expect(await g.recv()).toBe('yours')
    expect(await pass(g)).toEqual(['users', 'yours'])
    await expectUsable([g, s])
  })

  it('an oversized binary frame that arrives in pieces is refused from its header', async () => {
    await start({ maxFrame: 1024 })
    const c = await raw()
    expect(await c.recv()).toBe('username?')
    // Header announcing 4096 bytes of kind 0x01, in three pieces, then some of the payload.
    c.socket.setNoDelay(true)
    c.sendRaw(new Uint8Array([0, 0]))
    await pause()
    c.sendRaw(new Uint8Array([16, 0]))
    await pause()
    c.sendRaw(new Uint8Array([1, 9, 9, 9]))
    expect(await c.recv()).toEqual(['error', 'protocol', expect.stringContaining('4096 bytes, over the limit of 1024')])
    await c.waitClosed()
  })

  it('an oversized binary frame in pieces from a giver mid-file: G closed for protocol, T relay_failed', async () => {
    await start({ maxFrame: 1024 })
    const [g, t] = await ready('g', 't')
    await relayToGetlist(g, t, '/f', { 'a.bin': 'h' })
    t.send(['a.bin'])
    expect(await g.recv()).toEqual(['a.bin'])
    g.send(['file', 'a.bin', 5000])
    expect(await t.recv()).toEqual(['file', 'a.bin', 5000])
    g.socket.setNoDelay(true)
    g.sendRaw(new Uint8Array([0, 0, 0x13]))
    await pause()
    g.sendRaw(new Uint8Array([0x88, 1, 7, 7]))
    expect(await g.recv()).toEqual(['error', 'protocol', expect.stringContaining('over the limit of 1024')])
    await g.waitClosed()
    expect(await t.recv()).toEqual(['error', 'relay_failed', expect.any(String)])
    await expectYours(t)
    await expectUsable([t])
  })

  it('a taker answering before the file header was sent breaks the relay; the giver finishes its pass', async () => {
    await start()
    const [g, t] = await ready('g', 't')
    await relayToGetlist(g, t, '/f', { 'a.bin': 'h' })
    // The getlist and, in the same write, an answer for a file g has not even started.
    t.sendRaw(Buffer.concat([encodeJson(['a.bin']), encodeJson(['ok', 'a.bin'])]))
    expect(await g.recv()).toEqual(['a.bin'])
    g.send(['file', 'a.bin', 3])
    g.sendBinary(new Uint8Array([1, 2, 3]))
    expect(await g.recv()).toEqual(['failed', 'a.bin', 'taker disconnected'])
    await expectYours(g)
    const fromT: unknown[] = []
    while (!t.closed) fromT.push(await t.recv().catch(() => 'closed'))
    expect(fromT).toContainEqual(['error', 'protocol', expect.stringContaining('answered for a.bin before it was sent')])
    expect(server().lines.find((l) => l.startsWith('relay failed | '))).toMatch(/taker answered for a\.bin before it was sent/)
    await expectUsable([g])
  })
})
