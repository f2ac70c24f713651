/**
 * §5 revision 2: the relay timeout measures the giver's silence, not its
 * queue. Its clock runs only while the giver holds its turn, so a giver busy
 * in a long pass keeps its other takers waiting, not failing; a giver that
 * holds its turn silently still times out.
 *
 * No durations are measured: a control pair (G3 silent, T3 asking it after
 * T2 asked G) times out with the same relay timeout, which proves that much
 * time has passed for T2 too.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { WireClient } from './helpers/wire-client.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'
import { expectClosedForProtocol, expectError, joinClients, passToGive, waitUntil } from './helpers/relay-wire.ts'
import { expectUsable, expectYours, pass } from './helpers/relay-peers.ts'
import type { JsonValue } from '../protocol/frame.ts'

const RELAY_TIMEOUT_MS = 300

let server: TestServer
const clients = async (...names: string[]): Promise<WireClient[]> => await joinClients(server.port, ...names)
afterEach(async () => { await server?.close() })

const relays = () => [...server.coordinator.getSnapshot().context.relays.values()]
const relayOf = (taker: WireClient) => relays().find((r) => r.taker === taker.userId)

/**
 * G serves T1 and stays in that relay (T1 holds back its getlist) while T2
 * asks G, and until a control taker T3, asking a silent G3 after T2 asked,
 * has timed out: a whole relay timeout has passed while T2 waited.
 */
async function giverBusyForARelayTimeout (g: WireClient, t1: WireClient, t2: WireClient, g3: WireClient, t3: WireClient): Promise<void> {
  t1.send(['get', g.userId, '/one'])
  await waitUntil('T1 relay', () => relayOf(t1) !== undefined)
  expect(await passToGive(g)).toEqual(['give', '/one'])
  g.send({ 'a.txt': 'h' })
  expect(await t1.recv()).toEqual({ 'a.txt': 'h' })
  // G is now in a pass, serving T1. T2 asks G.
  t2.send(['get', g.userId, '/two'])
  await waitUntil('T2 relay', () => relayOf(t2) !== undefined)
  t3.send(['get', g3.userId, '/three'])
  await expectError(t3, 'relay_timeout')
  await expectYours(t3)
  // T2's relay is still there, its taker waiting on a busy giver, its clock stopped.
  const r2 = relayOf(t2)
  expect(r2?.started).toBe(false)
  expect(r2?.takerActor.getSnapshot().value).toEqual({ waitingForGiver: 'giverBusy' })
  expect(t2.queued).toHaveLength(0)
  expect(server.lines.some((l) => l.startsWith('relay timeout | /two'))).toBe(false)
  // T1's relay ends: G's pass goes on to its end (T2's serve came after the pass began).
  t1.send([])
  expect(await g.recv()).toEqual([])
  await expectYours(t1)
  const rest: JsonValue[] = []
  while (true) {
    const m = await g.recv()
    if (m === 'yours') break
    rest.push(m)
  }
  expect(rest.some((m) => Array.isArray(m) && m[0] === 'give')).toBe(false)
}

describe('relay timeout: the giver\'s silence, not its queue', () => {
  it('a giver busy serving another taker for longer than the timeout keeps T2 waiting; T2 is served on its next pass', async () => {
    server = await startTestServer({ relayTimeoutMs: RELAY_TIMEOUT_MS })
    const [g, t1, t2, g3, t3] = await clients('giver', 't1', 't2', 'g3', 't3')
    await giverBusyForARelayTimeout(g, t1, t2, g3, t3)
    // G holds its turn now (T2's clock runs) and passes: T2 is served.
    const giving = pass(g, {
      onGive: async (folder) => {
        g.send({ 'b.txt': 'h2' })
        const getlist = await g.recv()
        g.send(['file', 'b.txt', 3])
        g.sendBinary(new Uint8Array([1, 2, 3]))
        return { folder, getlist: getlist as string[], answers: [await g.recv()] }
      }
    })
    expect(await t2.recv()).toEqual({ 'b.txt': 'h2' })
    t2.send(['b.txt'])
    expect(await t2.recv()).toEqual(['file', 'b.txt', 3])
    expect((await t2.frame()).kind).toBe('binary')
    t2.send(['ok', 'b.txt'])
    await expectYours(t2)
    const passed = await giving
    expect(passed.served.map((s) => s.folder)).toEqual(['/two'])
    expect(passed.served[0].answers).toEqual([['ok', 'b.txt']])
    expect(server.lines.some((l) => l.startsWith(`served | /two | from | ${g.userId} | to | ${t2.userId}`))).toBe(true)
    await expectUsable([g, t1, t2, g3, t3])
  })

  it('once that pass is over, a giver holding its turn silently still times out', async () => {
    server = await startTestServer({ relayTimeoutMs: RELAY_TIMEOUT_MS })
    const [g, t1, t2, g3, t3] = await clients('giver', 't1', 't2', 'g3', 't3')
    await giverBusyForARelayTimeout(g, t1, t2, g3, t3)
    // G holds its turn and says nothing.
    expect(await expectError(t2, 'relay_timeout')).toMatch(/held its turn for 0\.3 s without starting the relay/)
    await expectYours(t2)
    expect(relayOf(t2)).toBeUndefined()
    expect(server.lines).toContain(`relay timeout | /two | from | ${g.userId} | to | ${t2.userId}`)
    // The serve was withdrawn: G's next pass has no give.
    const { delivered } = await pass(g)
    expect(delivered.some((m) => Array.isArray(m) && m[0] === 'give')).toBe(false)
    await expectUsable([g, t1, t2, g3, t3])
  })

  it('the clock adds up over the giver\'s holds: requests between them do not restart it', async () => {
    server = await startTestServer({ relayTimeoutMs: RELAY_TIMEOUT_MS })
    const [g, t] = await clients('giver', 'taker')
    t.send(['get', g.userId, '/x'])
    await waitUntil('the relay', () => relayOf(t) !== undefined)
    await waitUntil('the giver holding its turn', () => {
      const v = relayOf(t)?.takerActor.getSnapshot().value
      return JSON.stringify(v) === JSON.stringify({ waitingForGiver: 'giverHoldsTurn' })
    })
    // G keeps making requests without ever passing: each one leaves and takes back the turn.
    // The time held so far grows with each hold (a clock that restarted would time out only on one hold longer than the limit).
    let heldSoFar = 0
    let timedOut = false
    while (!timedOut) {
      g.send(['message', 'busy, not passing'])
      expect(await g.recv()).toBe('yours')
      const held = relayOf(t)?.takerActor.getSnapshot().context.heldMs as number | undefined
      if (held !== undefined) {
        expect(held).toBeGreaterThan(heldSoFar)
        heldSoFar = held
      }
      timedOut = t.queued.length > 0
    }
    expect(heldSoFar).toBeGreaterThan(0)
    expect(await expectError(t, 'relay_timeout')).toMatch(/without starting/)
    await expectYours(t)
    await expectUsable([g, t])
  })

  it('ordinary passes cost nothing: a session speaks of its turn only while a serve is pending for it', async () => {
    server = await startTestServer({ relayTimeoutMs: 10_000 })
    const [g, t] = await clients('giver', 'taker')
    const turnEvents: string[] = []
    const inspection = server.coordinator.system.inspect((ev) => {
      if (ev.type === '@xstate.snapshot' && ev.actorRef === server.coordinator && ev.event.type.startsWith('turn.')) turnEvents.push(ev.event.type)
    })
    for (let i = 0; i < 10; i++) { await pass(g); await pass(t) }
    expect(turnEvents).toEqual([])
    t.send(['get', g.userId, '/x'])
    await waitUntil('the giver to say it holds its turn', () => turnEvents.length === 1)
    const giving = pass(g, { onGive: async (folder) => { g.send({}); expect(await g.recv()).toEqual([]); return { folder, getlist: [], answers: [] } } })
    expect(await t.recv()).toEqual({})
    t.send([])
    await expectYours(t)
    await giving
    for (let i = 0; i < 10; i++) { await pass(g); await pass(t) }
    expect(turnEvents).toEqual(['turn.held', 'turn.released'])
    inspection.unsubscribe()
  })
})
