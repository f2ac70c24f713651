import { afterEach, describe, expect, it } from 'vitest'
import { encodeJson } from '../protocol/frame.ts'
import { join, T0, WireClient } from './helpers/wire-client.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'
import { pass, request } from './helpers/turns.ts'

const PROJECT = 'Test Film'
let server: TestServer
const clients: WireClient[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  await server?.close()
})

async function start (o: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  server = await startTestServer(o)
  return server
}
async function joined (o: Parameters<typeof join>[2] = {}): Promise<Awaited<ReturnType<typeof join>>> {
  const j = await join(server.port, PROJECT, o)
  clients.push(j.client)
  return j
}
async function raw (): Promise<WireClient> {
  const c = await WireClient.connect(server.port)
  clients.push(c)
  return c
}
/** Waits until the server has dropped closed connections. */
async function settle (count: number): Promise<void> {
  for (let i = 0; i < 200 && server.connectionCount() !== count; i++) await new Promise((r) => setTimeout(r, 10))
  expect(server.connectionCount()).toBe(count)
}

describe('handshake (§3)', () => {
  it('accepts the right project and logs the connection', async () => {
    await start()
    const { client } = await joined({ username: 'ann' })
    expect(server.lines).toContain(`ann | connected | ${client.userId}`)
  })

  it('answers a wrong project with "wrong_project" and closes', async () => {
    await start()
    const c = await raw()
    expect(await c.recv()).toBe('username?')
    c.send('ann')
    expect(await c.recv()).toBe('project?')
    c.send('Other Film')
    expect(await c.recv()).toBe('wrong_project')
    await c.waitClosed()
  })

  it('refuses a non-string username or project with bad_handshake and closes', async () => {
    await start()
    for (const answers of [[42], ['ann', { project: PROJECT }], [''], ['x'.repeat(257)]]) {
      const c = await raw()
      expect(await c.recv()).toBe('username?')
      c.send(answers[0])
      if (answers.length === 2) {
        expect(await c.recv()).toBe('project?')
        c.send(answers[1])
      }
      const err = await c.recv()
      expect(err).toEqual(['error', 'bad_handshake', expect.any(String)])
      await c.waitClosed()
    }
  })

  it('asks for the secret when configured; a wrong one gets "wrong_secret" and close', async () => {
    await start({ secret: 's3cret' })
    await joined({ secret: 's3cret' })
    const c = await raw()
    expect(await c.recv()).toBe('username?')
    c.send('eve')
    expect(await c.recv()).toBe('project?')
    c.send(PROJECT)
    expect(await c.recv()).toBe('secret?')
    c.send('guess')
    expect(await c.recv()).toBe('wrong_secret')
    await c.waitClosed()
  })

  it('answers "busy" instead of "username?" at the connection limit', async () => {
    await start({ maxConnections: 1 })
    await joined()
    const c = await raw()
    expect(await c.recv()).toEqual(['error', 'busy', expect.any(String)])
    await c.waitClosed()
  })
})

describe('initial sync merge rules (§3)', () => {
  it('story: strictly newer wins, owned by its submitter; the reply is the current story', async () => {
    await start()
    const a = await joined({ username: 'a', story: [{ v: 'a' }, '2024/01/01-00:00:00'] })
    expect(a.story).toEqual([a.client.userId, { v: 'a' }])
    const b = await joined({ username: 'b', story: [{ v: 'b' }, '2023/01/01-00:00:00'] })
    expect(b.story).toEqual([a.client.userId, { v: 'a' }])
    const c = await joined({ username: 'c', story: [{ v: 'c' }, '2024/01/01-00:00:00'] })
    expect(c.story).toEqual([a.client.userId, { v: 'a' }]) // equal is not newer
    const d = await joined({ username: 'd', story: [{ v: 'd' }, '2025/01/01-00:00:00'] })
    expect(d.story).toEqual([d.client.userId, { v: 'd' }])
  })

  it('camera is taken from any submitted story, winning or not', async () => {
    await start()
    const a = await joined({ username: 'a', story: [{ camera: [3, 4] }, T0] })
    const b = await joined({ username: 'b', story: [{ camera: [1, 'x'] }, T0] })
    const users = await request(a.client, 'users')
    expect(users[0]).toEqual({
      [a.client.userId]: { username: 'a', camera: [3, 4], at: null },
      [b.client.userId]: { username: 'b', camera: [0, 0], at: null }
    })
  })

  it('assets: per entry, newer or absent wins and is stamped with the submitter id', async () => {
    await start()
    const a = await joined({ username: 'a', assets: { '/chr/Moria': ['someone-else', '2024/01/01-00:00:00'], '/loc/Town': ['x', '2024/01/01-00:00:00'] } })
    expect(a.assets).toEqual({
      '/chr/Moria': [a.client.userId, '2024/01/01-00:00:00'],
      '/loc/Town': [a.client.userId, '2024/01/01-00:00:00']
    })
    const b = await joined({ username: 'b', assets: { '/chr/Moria': ['b', '2025/01/01-00:00:00'], '/loc/Town': ['b', '2023/01/01-00:00:00'] } })
    expect(b.assets).toEqual({
      '/chr/Moria': [b.client.userId, '2025/01/01-00:00:00'],
      '/loc/Town': [a.client.userId, '2024/01/01-00:00:00']
    })
    const c = await joined({ username: 'c', assets: { '/obj/Cup': ['c', T0] } })
    expect(Object.keys(c.assets as object).sort()).toEqual(['/chr/Moria', '/loc/Town', '/obj/Cup'])
  })

  it('analytics: strictly newer wins; the reply is the value alone', async () => {
    await start()
    const a = await joined({ analytics: [{ done: 1 }, '2024/01/01-00:00:00'] })
    expect(a.analytics).toEqual({ done: 1 })
    const b = await joined({ analytics: [{ done: 0 }, '2023/01/01-00:00:00'] })
    expect(b.analytics).toEqual({ done: 1 })
    const c = await joined({ analytics: [[1, 2], '2026/01/01-00:00:00'] })
    expect(c.analytics).toEqual([1, 2])
  })

  it('a malformed sync answer gets bad_request and the connection is closed', async () => {
    await start()
    const c = await raw()
    await c.recv(); c.send('x')
    await c.recv(); c.send(PROJECT)
    expect(await c.recv()).toBe('story')
    c.send({ not: 'a pair' })
    expect(await c.recv()).toEqual(['error', 'bad_request', expect.stringContaining('story')])
    await c.waitClosed()
  })

  it('after "yours" everybody, the newcomer included, gets a users notification', async () => {
    await start()
    const a = await joined({ username: 'a' })
    expect(await pass(a.client)).toEqual(['users', 'yours'])
    await joined({ username: 'b' })
    expect(await pass(a.client)).toEqual(['users', 'yours'])
  })
})

describe('requests and notifications (§4)', () => {
  it('a pass with nothing pending is answered by "yours" alone', async () => {
    await start()
    const a = await joined()
    await pass(a.client)
    expect(await pass(a.client)).toEqual(['yours'])
  })

  it('story request: exchange, then the others run the story sync on their pass', async () => {
    await start()
    const a = await joined({ username: 'a' })
    const b = await joined({ username: 'b' })
    await pass(a.client); await pass(b.client)
    const ts = '2025/05/05-10:00:00'
    expect(await request(a.client, 'story', { story: [{ scenes: 1 }, ts] })).toEqual(['story', [a.client.userId, { scenes: 1 }], 'yours'])
    expect(await pass(b.client)).toEqual(['story', [a.client.userId, { scenes: 1 }], 'yours'])
    expect(await pass(a.client)).toEqual(['yours'])
  })

  it('analytics and assets requests notify the others', async () => {
    await start()
    const a = await joined({ username: 'a' })
    const b = await joined({ username: 'b' })
    await pass(a.client); await pass(b.client)
    expect(await request(a.client, 'analytics', { analytics: [{ x: 1 }, '2025/01/01-00:00:00'] })).toEqual(['analytics', { x: 1 }, 'yours'])
    expect(await request(a.client, 'assets', { assets: { '/chr/A': ['?', '2025/01/01-00:00:00'] } }))
      .toEqual(['assets', { '/chr/A': [a.client.userId, '2025/01/01-00:00:00'] }, 'yours'])
    expect(await pass(b.client)).toEqual([
      'analytics', { x: 1 },
      'assets', { '/chr/A': [a.client.userId, '2025/01/01-00:00:00'] },
      'yours'
    ])
  })

  it('at: recorded in users, others notified, logged', async () => {
    await start()
    const a = await joined({ username: 'a' })
    const b = await joined({ username: 'b' })
    await pass(a.client); await pass(b.client)
    expect(await request(a.client, ['at', '/rnd/scene_1/shot_2', '2025/01/01-12:00:00'])).toEqual(['yours'])
    expect(await pass(b.client)).toEqual([[a.client.userId, 'at', '/rnd/scene_1/shot_2', '2025/01/01-12:00:00'], 'yours'])
    const users = (await request(b.client, 'users'))[0] as Record<string, { at: unknown }>
    expect(users[a.client.userId].at).toEqual(['/rnd/scene_1/shot_2', '2025/01/01-12:00:00'])
    expect(server.lines).toContain(`${a.client.userId} | at | /rnd/scene_1/shot_2 | time | 2025/01/01-12:00:00`)
  })

  it('message: everyone, the sender too, gets the whole history', async () => {
    await start()
    const a = await joined({ username: 'a' })
    const b = await joined({ username: 'b' })
    await pass(a.client); await pass(b.client)
    expect(await request(a.client, ['message', 'hello'])).toEqual(['yours'])
    const history = ['messages', [['Multiuser Server', 'Server Started'], ['a', 'hello']]]
    expect(await pass(a.client)).toEqual([history, 'yours'])
    expect(await pass(b.client)).toEqual([history, 'yours'])
  })

  it('bad requests get an error, then "yours", and the session goes on', async () => {
    await start()
    const a = await joined()
    await pass(a.client)
    const cases: Array<[unknown, string]> = [
      ['dance', 'unknown_request'],
      [['dance'], 'unknown_request'],
      [{ at: 1 }, 'unknown_request'],
      [['at', '/x'], 'bad_request'],
      [['at', '/x', 'yesterday'], 'bad_request'],
      [['at', '/../etc', '2025/01/01-00:00:00'], 'bad_path'],
      [['message', 7], 'bad_request'],
      [['message', 'x'.repeat(64 * 1024 + 1)], 'bad_request'],
      [['get', 'nobody:1', '/chr'], 'no_such_user'],
      [['get', a.client.userId, '/chr'], 'no_such_user'],
      [['get', 'x', 'C:/Windows'], 'bad_path']
    ]
    for (const [value, code] of cases) {
      expect(await request(a.client, value)).toEqual([['error', code, expect.any(String)], 'yours'])
    }
    expect(await request(a.client, ['message', 'still here'])).toEqual(['yours'])
  })

  it('a malformed answer inside a story request gets bad_request, then "yours"', async () => {
    await start()
    const a = await joined()
    await pass(a.client)
    a.client.send('story')
    expect(await a.client.recv()).toBe('story')
    a.client.send(['not', 'a', 'story'])
    expect(await a.client.recv()).toEqual(['error', 'bad_request', expect.any(String)])
    expect(await a.client.recv()).toBe('yours')
  })
})

describe('coalescing (§4)', () => {
  it('one message notification however many messages; at keeps the newest per sender', async () => {
    await start()
    const a = await joined({ username: 'a' })
    const b = await joined({ username: 'b' })
    const c = await joined({ username: 'c' })
    await pass(a.client); await pass(b.client); await pass(c.client)
    await request(a.client, ['message', 'one'])
    await request(a.client, ['at', '/x', '2025/01/01-00:00:01'])
    await request(c.client, ['at', '/c', '2025/01/01-00:00:01'])
    await request(a.client, ['message', 'two'])
    await request(a.client, ['at', '/y', '2025/01/01-00:00:02'])
    const got = await pass(b.client)
    expect(got).toEqual([
      ['messages', [['Multiuser Server', 'Server Started'], ['a', 'one'], ['a', 'two']]],
      [a.client.userId, 'at', '/y', '2025/01/01-00:00:02'],
      [c.client.userId, 'at', '/c', '2025/01/01-00:00:01'],
      'yours'
    ])
  })

  it('users notifications coalesce', async () => {
    await start()
    const a = await joined({ username: 'a' })
    await joined({ username: 'b' })
    await joined({ username: 'c' })
    expect(await pass(a.client)).toEqual(['users', 'yours'])
  })
})

describe('turn hold and idle limit (§4)', () => {
  it('an idle pass is held; news arriving meanwhile is pushed at once, then "yours"', async () => {
    await start({ turnHoldMs: 60_000 })
    const a = await joined({ username: 'a' })
    const b = await joined({ username: 'b' })
    await pass(a.client); await pass(b.client)
    a.client.send('yours')
    expect(await a.client.silentFor(300)).toBe(true)
    b.client.send(['message', 'ping'])
    // Pushed during the hold (a minute, far longer than this test): the news, then "yours".
    expect(await a.client.recv()).toEqual(['messages', [['Multiuser Server', 'Server Started'], ['b', 'ping']]])
    expect(await a.client.recv()).toBe('yours')
  })

  it('with nothing arriving, the held pass is answered once the hold ends', async () => {
    await start({ turnHoldMs: 400 })
    const a = await joined()
    await pass(a.client)
    a.client.send('yours')
    expect(await a.client.silentFor(200)).toBe(true)
    expect(await a.client.recv(2_000)).toBe('yours')
  })

  it('a client that does not answer within the idle limit is disconnected', async () => {
    await start({ idleLimitMs: 300 })
    const a = await joined({ username: 'sleepy' })
    await a.client.waitClosed(3_000)
    expect(server.lines.some((l) => l.startsWith('sleepy | disconnected |') && l.endsWith('idle limit'))).toBe(true)
  })
})

describe('leaving (§6) and vanishing clients', () => {
  it('drops the leaver\'s assets and notifies users and assets', async () => {
    await start()
    const a = await joined({ username: 'a', assets: { '/chr/A': ['a', '2025/01/01-00:00:00'] } })
    const b = await joined({ username: 'b', assets: { '/chr/B': ['b', '2025/01/01-00:00:00'] } })
    await pass(a.client); await pass(b.client)
    a.client.close()
    await settle(1)
    expect(await pass(b.client)).toEqual(['users', 'assets', { '/chr/B': [b.client.userId, '2025/01/01-00:00:00'] }, 'yours'])
    const users = (await request(b.client, 'users'))[0]
    expect(Object.keys(users as object)).toEqual([b.client.userId])
  })

  it('a client vanishing mid-handshake, mid-sync or holding the turn is cleaned up', async () => {
    await start()
    const watcher = await joined({ username: 'w' })
    await pass(watcher.client)
    const h = await raw(); await h.recv(); h.close() // mid-handshake
    const s = await raw(); await s.recv(); s.send('s'); await s.recv(); s.send(PROJECT); await s.recv(); s.close() // mid-sync
    const t = await joined({ username: 't' }); t.client.close() // holding the turn
    await settle(1)
    const got = await pass(watcher.client)
    // None of them owned an asset entry: no assets notification (§6 rev 2).
    expect(got.filter((v) => typeof v === 'string')).toEqual(['users', 'yours'])
    expect(Object.keys((await request(watcher.client, 'users'))[0] as object)).toEqual([watcher.client.userId])
  })

  it('a protocol violation closes only that connection', async () => {
    await start()
    const a = await joined({ username: 'a' })
    await pass(a.client)
    const bad = await raw()
    await bad.recv()
    bad.sendRaw(new Uint8Array([0, 0, 0, 1, 7, 0])) // kind 0x07
    expect(await bad.recv()).toEqual(['error', 'protocol', expect.stringContaining('kind 0x07')])
    await bad.waitClosed()
    const bad2 = await raw()
    await bad2.recv()
    bad2.sendRaw(Uint8Array.from([...encodeJson('ok').subarray(0, 5), 0x7b, 0x7b, 0x7b, 0x7b])) // "{{{{": not JSON
    expect(await bad2.recv()).toEqual(['error', 'protocol', expect.stringContaining('JSON')])
    await bad2.waitClosed()
    expect(await request(a.client, ['message', 'fine'])).toEqual(['yours'])
  })

  it('a frame during a held pass ends the hold: "yours" at once, then it is the next request (§4 rev 2)', async () => {
    await start({ turnHoldMs: 60_000 })
    const a = await joined()
    await pass(a.client) // takes the pending users notification
    a.client.send('yours') // nothing pending: the server holds the turn (for a minute)
    a.client.send('users')
    expect(await a.client.recv()).toBe('yours')
    expect(await a.client.recv()).toEqual({ [a.client.userId]: { username: 'tester', camera: [0, 0], at: null } })
    expect(await a.client.recv()).toBe('yours')
    expect(a.client.closed).toBe(false)
  })

  it('a frame over the limit is refused from its header', async () => {
    await start({ maxFrame: 1024 })
    const c = await raw()
    await c.recv()
    c.sendRaw(new Uint8Array([0, 0, 4, 1, 0])) // announces 1025 bytes, sends none
    expect(await c.recv()).toEqual(['error', 'protocol', expect.stringContaining('over the limit')])
    await c.waitClosed()
  })
})

describe('chat history', () => {
  it('is capped, oldest dropped; the server\'s first line stays first (§4)', async () => {
    await start({ chatLimit: 3 })
    const a = await joined({ username: 'a' })
    await pass(a.client)
    for (const m of ['1', '2', '3', '4']) await request(a.client, ['message', m])
    expect(await pass(a.client)).toEqual([['messages', [['Multiuser Server', 'Server Started'], ['a', '2'], ['a', '3'], ['a', '4']]], 'yours'])
  })
})

describe('scale', () => {
  it('200 clients connected at once all receive one message notification', async () => {
    await start()
    const all = await Promise.all(Array.from({ length: 200 }, async (_, i) => await joined({ username: `u${i}` })))
    await settle(200)
    await request(all[0].client, ['message', 'to everyone'])
    const results = await Promise.all(all.map(async ({ client }) => await pass(client)))
    for (const got of results) {
      const messages = got.filter((v) => Array.isArray(v) && v[0] === 'messages')
      expect(messages).toEqual([['messages', [['Multiuser Server', 'Server Started'], ['u0', 'to everyone']]]])
    }
  })
})
