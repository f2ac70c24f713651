/**
 * The session machine (actors/session.ts) over real TCP: behaviours that
 * mutation testing of the session found unpinned (issue 12,
 * docs/mutation-actors.md). Each test fails when the code deciding it is
 * broken; none waits on a clock: they wait for the server's state or frames.
 */
import { describe, expect, it } from 'vitest'
import type { JsonValue } from '../../protocol/frame.ts'
import type { RequestType } from '../../protocol/messages.ts'
import { newRelayProgress } from '../../src/relay-pipe.ts'
import { serverFixture } from '../helpers/fixture.ts'
import { HELD_PASS, sessionReaches } from '../helpers/session-state.ts'
import { pass, request, untilYours } from '../helpers/turns.ts'
import { WireClient } from '../helpers/wire-client.ts'
import { expectError, passToGive, waitUntil } from '../helpers/relay-wire.ts'

const TS = '2031/01/01-00:00:00'
const SERVER_LINE = ['Multiuser Server', 'Server Started']
const { start, joined: joinedAs, raw, server } = serverFixture()

/** Joined as `username`, past the users notifications of everyone's joins. */
async function ready (...names: string[]): Promise<WireClient[]> {
  const out: WireClient[] = []
  for (const username of names) out.push(await joinedAs({ username }))
  for (const c of out) await pass(c)
  return out
}

describe('handshake refusals say what was wrong with the answer (§3)', () => {
  async function refusal (answers: unknown[]): Promise<unknown> {
    const c = await raw()
    for (const [i, question] of ['username?', 'project?', 'secret?'].slice(0, answers.length).entries()) {
      expect(await c.recv()).toBe(question)
      c.send(answers[i])
    }
    const err = await c.recv()
    await c.waitClosed()
    return err
  }

  it('a bad username by the username rules; a project or secret that is no string as such', async () => {
    await start({ secret: 'sesame' })
    expect(await refusal([42])).toEqual(['error', 'bad_handshake', 'username must be a string, got number 42'])
    expect(await refusal(['ann', { project: 'Test Film' }])).toEqual(['error', 'bad_handshake', 'expected a string, got {"project":"Test Film"}'])
    expect(await refusal(['ann', 'Test Film', 7])).toEqual(['error', 'bad_handshake', 'expected a string, got 7'])
    expect(await refusal(['ann', 'Test Film', 'sesame!'])).toBe('wrong_secret')
  })
})

describe('a pass delivers what was pending when the client passed, in order (§4)', () => {
  it('an at, then a story: the at goes out first, then the story sync, then "yours"', async () => {
    await start()
    const [a, b] = await ready('a', 'b')
    expect(await request(b, ['at', '/rnd/shot_1', TS])).toEqual(['yours'])
    expect(await request(b, 'story', { story: [{ scenes: 2 }, TS] })).toEqual(['story', [b.userId, { scenes: 2 }], 'yours'])
    expect(await pass(a)).toEqual([[b.userId, 'at', '/rnd/shot_1', TS], 'story', [b.userId, { scenes: 2 }], 'yours'])
    expect(await pass(a)).toEqual(['yours'])
  })

  it('messages, then an analytics change: the history first, then the analytics sync, then "yours"', async () => {
    await start()
    const [a, b] = await ready('a', 'b')
    expect(await request(b, ['message', 'cut the intro'])).toEqual(['yours'])
    expect(await request(b, 'analytics', { analytics: [{ done: 3 }, TS] })).toEqual(['analytics', { done: 3 }, 'yours'])
    expect(await pass(a)).toEqual([['messages', [SERVER_LINE, ['b', 'cut the intro']]], 'analytics', { done: 3 }, 'yours'])
  })

  it('news arriving during a sync of the pass waits for the next pass; what was pending goes out in this one', async () => {
    await start()
    const [a, b] = await ready('a', 'b')
    expect(await request(b, 'story', { story: [{ scenes: 1 }, TS] })).toEqual(['story', [b.userId, { scenes: 1 }], 'yours'])
    const c = await joinedAs({ username: 'c' }) // a's pending: story, users
    a.send('yours')
    expect(await a.recv()).toBe('story')
    // While a is in its story sync, b says something: a's session has the messages queued before a answers.
    expect(await request(b, ['message', 'later'])).toEqual(['yours'])
    a.send([{}, '0000/00/00-00:00:00'])
    expect(await a.recv()).toEqual([b.userId, { scenes: 1 }])
    a.send('ack')
    expect(await untilYours(a)).toEqual(['users', 'yours'])
    expect(await pass(a)).toEqual([['messages', [SERVER_LINE, ['b', 'later']]], 'yours'])
    c.close()
  })
})

describe('a serve withdrawn during a pass (§5)', () => {
  it('leaves the rest of what the pass delivers as it was: the users news still comes before "yours"', async () => {
    await start()
    const [a, b] = await ready('a', 'b')
    const pendingOfA = (): string[] =>
      [...server().connections()].find((c) => c.userId === a.userId)?.session.getSnapshot().context.pending.map((n) => n.kind) ?? []
    expect(await request(b, 'story', { story: [{ scenes: 3 }, TS] })).toEqual(['story', [b.userId, { scenes: 3 }], 'yours'])
    const t = await joinedAs({ username: 't' }) // a's pending: story, users
    a.send('yours')
    expect(await a.recv()).toBe('story')
    // During a's story sync, t asks a for a folder, then leaves before a could serve it.
    t.send(['get', a.userId, '/shot'])
    await waitUntil('the serve pending for a', () => pendingOfA().includes('serve'))
    t.close()
    await waitUntil('the serve withdrawn', () => !pendingOfA().includes('serve'))
    a.send([{}, '0000/00/00-00:00:00'])
    expect(await a.recv()).toEqual([b.userId, { scenes: 3 }])
    a.send('ack')
    expect(await untilYours(a)).toEqual(['users', 'yours'])
  })
})

describe('two serves pending for one giver (§5)', () => {
  it('the later one withdrawn during the pass: the earlier one is still given in this pass', async () => {
    await start()
    const [a, b, t1, t2] = await ready('a', 'b', 't1', 't2')
    const servesOfA = (): number =>
      [...server().connections()].find((c) => c.userId === a.userId)?.session.getSnapshot().context.pending.filter((n) => n.kind === 'serve').length ?? -1
    expect(await request(b, 'story', { story: [{ scenes: 4 }, TS] })).toEqual(['story', [b.userId, { scenes: 4 }], 'yours'])
    t1.send(['get', a.userId, '/one'])
    await waitUntil('t1\'s serve pending for a', () => servesOfA() === 1)
    a.send('yours') // delivers: the story sync, then the give of /one
    expect(await a.recv()).toBe('story')
    t2.send(['get', a.userId, '/two'])
    await waitUntil('t2\'s serve pending for a', () => servesOfA() === 2)
    t2.close()
    await waitUntil('t2\'s serve withdrawn', () => servesOfA() === 1)
    a.send([{}, '0000/00/00-00:00:00'])
    expect(await a.recv()).toEqual([b.userId, { scenes: 4 }])
    a.send('ack')
    expect(await a.recv()).toEqual(['give', '/one'])
    a.send({})
    expect(await t1.recv()).toEqual({})
    t1.send([])
    expect(await a.recv()).toEqual([])
    expect(await a.recv()).toBe('yours')
    expect(await t1.recv()).toBe('yours')
  })
})

describe('a held pass (§4 turn hold)', () => {
  it('news that needs an answer (a story) runs its sync during the hold, then "yours"', async () => {
    await start({ turnHoldMs: 60_000 })
    const [a, b] = await ready('a', 'b')
    a.send('yours')
    await sessionReaches(server(), a.userId, HELD_PASS)
    b.send('story')
    expect(await b.recv()).toBe('story')
    b.send([{ scenes: 5 }, TS])
    expect(await b.recv()).toEqual([b.userId, { scenes: 5 }])
    b.send('ack')
    expect(await b.recv()).toBe('yours')
    // Pushed during a's hold (a minute, far longer than this test).
    expect(await untilYours(a)).toEqual(['story', [b.userId, { scenes: 5 }], 'yours'])
  })
})

describe('values of any JSON kind reach every client (§1, §3)', () => {
  it('analytics that are null, a number, a string, a boolean or an array', async () => {
    await start()
    const [a, b] = await ready('a', 'b')
    const values: JsonValue[] = [null, 7, 'half done', true, [1, 2]]
    for (const [i, v] of values.entries()) {
      const ts = `2031/01/0${i + 1}-00:00:00`
      expect(await request(a, 'analytics', { analytics: [v, ts] })).toEqual(['analytics', v, 'yours'])
      expect(await pass(b)).toEqual(['analytics', v, 'yours'])
    }
    const late = await joinedAs({ username: 'late' })
    expect(await request(late, 'analytics')).toEqual(['analytics', [1, 2], 'yours'])
  })
})

describe('closing a session', () => {
  it('a binary frame outside a relay: a protocol error, the close, and a log line saying why', async () => {
    await start()
    const [a] = await ready('ann')
    const id = a.userId
    a.sendBinary(new Uint8Array([1, 2, 3]))
    expect(await a.recv()).toEqual(['error', 'protocol', 'a binary frame arrived outside a relay'])
    await a.waitClosed()
    await waitForLine(`ann | disconnected | ${id} | binary frame outside a relay`)
  })

  it('a client gone before its username is logged as such', async () => {
    await start()
    const c = await raw()
    expect(await c.recv()).toBe('username?')
    const id = c.userId
    c.close()
    await waitForLine(new RegExp(`^\\(no username\\) \\| disconnected \\| ${id.replace(/\./g, '\\.')} \\| .+`))
  })

  it('a protocol violation is logged with its detail', async () => {
    await start()
    const [a] = await ready('vic')
    const id = a.userId
    a.sendRaw(new Uint8Array([0, 0, 0, 1, 0x02, 0x41]))
    const m = await a.recv()
    expect(Array.isArray(m) && m[0] === 'error' && m[1] === 'protocol').toBe(true)
    await a.waitClosed()
    await waitForLine(`vic | disconnected | ${id} | protocol | ${(m as string[])[2]}`)
  })
})

describe('request counts (status page metrics)', () => {
  it('each request is counted once, by kind; a refused one as refused', async () => {
    const counted: Array<RequestType | 'refused'> = []
    await start({ telemetry: { countRequest: (kind) => counted.push(kind), relayProgress: () => newRelayProgress() } })
    const [a, b] = await ready('a', 'b')
    counted.length = 0
    expect(await pass(a)).toEqual(['yours'])
    expect(await request(a, 'users')).toHaveLength(2)
    expect(await request(a, ['at', '/x', TS])).toEqual(['yours'])
    expect(await request(a, ['message', 'hi'])).toEqual(['yours'])
    expect(await request(a, 'story')).toHaveLength(3)
    expect(await request(a, ['bogus'])).toEqual([['error', 'unknown_request', 'unknown request "bogus"'], 'yours'])
    expect(await pass(b)).toHaveLength(5) // the at, the messages, the story sync (signal and merged reply), "yours"
    expect(counted).toEqual(['pass', 'users', 'at', 'message', 'story', 'refused', 'pass'])
  })
})

describe('the relay timeout clock (§5): a session speaks of its turn only for a serve', () => {
  it('news other than a serve reaching a giver that holds its turn says nothing; a serve says it holds it', async () => {
    await start({ relayTimeoutMs: 60_000 })
    const [g, t] = await ready('gina', 'tom')
    const turnEvents: string[] = []
    const inspection = server().coordinator.system.inspect((ev) => {
      if (ev.type === '@xstate.snapshot' && ev.actorRef === server().coordinator && ev.event.type.startsWith('turn.')) turnEvents.push(ev.event.type)
    })
    const pendingOfG = (): string[] =>
      [...server().connections()].find((c) => c.userId === g.userId)?.session.getSnapshot().context.pending.map((n) => n.kind) ?? []
    expect(await request(t, ['message', 'news'])).toEqual(['yours'])
    expect(await request(t, ['at', '/x', TS])).toEqual(['yours'])
    await waitUntil('the news pending for g', () => pendingOfG().length === 2)
    t.send(['get', g.userId, '/shot'])
    await waitUntil('the serve pending for g', () => pendingOfG().includes('serve'))
    await waitUntil('g to say it holds its turn', () => turnEvents.length > 0)
    expect(turnEvents).toEqual(['turn.held'])
    inspection.unsubscribe()
  })
})

describe('request counts, around a relay', () => {
  it('a request read where the answer to give was due is counted as refused (§4)', async () => {
    const counted: Array<RequestType | 'refused'> = []
    await start({ telemetry: { countRequest: (kind) => counted.push(kind), relayProgress: () => newRelayProgress() } })
    const [g, t] = await ready('gina', 'tom')
    t.send(['get', g.userId, '/shot'])
    await waitUntil('the relay', () => server().coordinator.getSnapshot().context.relays.size === 1)
    expect(await passToGive(g)).toEqual(['give', '/shot'])
    counted.length = 0
    g.send('users')
    expect(await expectError(g, 'bad_request')).toContain('where the answer to ["give", "/shot"] was due')
    expect(await g.recv()).toBe('yours')
    expect(counted).toEqual(['refused'])
  })
})

async function waitForLine (want: string | RegExp): Promise<void> {
  const matches = (l: string): boolean => (typeof want === 'string' ? l === want : want.test(l))
  for (let i = 0; i < 500 && !server().lines.some(matches); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  expect(server().lines.filter(matches), `log lines: ${server().lines.join('\n')}`).toHaveLength(1)
}
