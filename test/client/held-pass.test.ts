import fc from 'fast-check'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, type Client, type CloseInfo } from '../../src/client/index.ts'
import { GateProxy } from '../helpers/gate-proxy.ts'
import type { TestServer } from '../helpers/server.ts'
import { HELD_PASS, sessionReaches } from '../helpers/session-state.ts'
import { PROJECT, Scene, waitFor, writeTree } from './helpers.ts'

/**
 * §4 rev 2: a frame during a held pass ends the hold. The server here holds an
 * idle pass for 10 minutes and every test has a timeout of seconds: a client
 * that waited for the end of the hold before sending its request would time
 * the test out, never pass it slowly.
 */
const TURN_HOLD_MS = 600_000
const TEST_TIMEOUT_MS = 30_000

const scene = new Scene()
const proxies: GateProxy[] = []
afterEach(async () => {
  for (const p of proxies.splice(0)) await p.close()
  await scene.cleanup()
})

const SHOT = { 'shot/a.txt': 'frame a\n', 'shot/sub/b.txt': 'frame b\n' }

async function giverWithShot (): Promise<Client> {
  const root = await scene.dir()
  await writeTree(root, SHOT)
  return await scene.client('gina', { root })
}

/**
 * A server holding passes for long, bob connected straight to it, and one
 * client connected through a gate proxy (the server sees it as `proxy.userId`).
 */
async function withGatedClient (username: string, root?: string): Promise<{ server: TestServer, bob: Client, proxy: GateProxy, gated: Client }> {
  const server = await scene.start({ turnHoldMs: TURN_HOLD_MS })
  const bob = await scene.client('bob')
  const proxy = await GateProxy.start(server.port)
  proxies.push(proxy)
  const gated = await connect({ host: '127.0.0.1', port: proxy.port, username, project: PROJECT, root: root ?? await scene.dir() })
  scene.clients.push(gated)
  return { server, bob, proxy, gated }
}

/** Every close of `c`, to check none happened. */
function closes (c: Client): CloseInfo[] {
  const seen: CloseInfo[] = []
  c.on('close', (info) => seen.push(info))
  return seen
}

describe('requests during a held pass (§4 rev 2)', () => {
  it('users, say, at, a story push and a get each go out at once and complete', async () => {
    const server = await scene.start({ turnHoldMs: TURN_HOLD_MS })
    const gina = await giverWithShot()
    const ann = await scene.client('ann')
    const bob = await scene.client('bob')
    const annCloses = closes(ann)

    await sessionReaches(server, ann.userId, HELD_PASS)
    const users = await ann.users()
    expect(Object.values(users).map((u) => u.username).sort()).toEqual(['ann', 'bob', 'gina'])

    await sessionReaches(server, ann.userId, HELD_PASS)
    const ownLine = waitFor(ann, 'messages', (h) => h.some(([u, t]) => u === 'ann' && t === 'lighting done'))
    await ann.say('lighting done')
    await ownLine

    await sessionReaches(server, ann.userId, HELD_PASS)
    await sessionReaches(server, bob.userId, HELD_PASS)
    const bobSees = waitFor(bob, 'at', (at) => at.from === ann.userId && at.path === '/shot')
    await ann.at('/shot', '2030/01/01-00:00:00')
    await bobSees

    await sessionReaches(server, ann.userId, HELD_PASS)
    const pushed = await ann.pushStory({ title: 'held' }, '2030/01/01-00:00:01')
    expect(pushed).toEqual({ owner: ann.userId, story: { title: 'held' } })

    await sessionReaches(server, ann.userId, HELD_PASS)
    await sessionReaches(server, gina.userId, HELD_PASS)
    const got = await ann.get(gina.userId, '/shot')
    expect(got.files).toBe(2)
    expect(await readFile(join(ann.root, 'shot/sub/b.txt'), 'utf8')).toBe('frame b\n')

    expect(annCloses).toEqual([])
    expect(server.lines.filter((l) => l.includes('protocol'))).toEqual([])
  }, TEST_TIMEOUT_MS)

  it('close() during a held pass ends the connection without waiting for the hold; the others see the user leave', async () => {
    const server = await scene.start({ turnHoldMs: TURN_HOLD_MS })
    const bob = await scene.client('bob')
    const ann = await scene.client('ann')
    await sessionReaches(server, ann.userId, HELD_PASS)
    const bobSeesAnnLeave = waitFor(bob, 'usersUpdated', (u) => u[ann.userId] === undefined)
    await ann.close()
    expect((await ann.closed).error).toBeUndefined()
    await bobSeesAnnLeave
  }, TEST_TIMEOUT_MS)

  it('a request the server took as a sync answer is sent again and the sync caught up', async () => {
    const { server, bob, proxy, gated: ann } = await withGatedClient('ann')
    const annCloses = closes(ann)
    const annId = proxy.userId

    // Ann passed; the server holds it. Her next frames from the server are held back at the proxy.
    await sessionReaches(server, annId, HELD_PASS)
    proxy.gate()
    await sessionReaches(server, bob.userId, HELD_PASS)
    await bob.pushStory({ title: 'from bob' }, '2030/01/01-00:00:02')
    // The server has asked ann for her story; she has not seen the question.
    await sessionReaches(server, annId, { turnTaking: { delivering: { story: 'awaitingSubmission' } } })
    const storyEvent = waitFor(ann, 'story', (s) => s.story.title === 'from bob')
    const users = ann.users() // sent at once: the server reads it as her story submission
    expect(await proxy.holds(3)).toEqual(['story', ['error', 'bad_request', expect.stringContaining('story expects')], 'yours'])
    proxy.release()

    expect(Object.values(await users).map((u) => u.username).sort()).toEqual(['ann', 'bob'])
    await storyEvent
    expect(ann.story).toEqual({ owner: bob.userId, story: { title: 'from bob' } })
    expect(annCloses).toEqual([])
  }, TEST_TIMEOUT_MS)

  it('a chat line that is a timestamp is not sent during a held pass (it would be a valid analytics answer)', async () => {
    const { server, bob, proxy, gated: ann } = await withGatedClient('ann')
    const annId = proxy.userId
    await sessionReaches(server, annId, HELD_PASS)
    proxy.gate()
    await sessionReaches(server, bob.userId, HELD_PASS)
    await bob.pushAnalytics({ shots: 12 }, '2030/01/01-00:00:03')
    await sessionReaches(server, annId, { turnTaking: { delivering: { analytics: 'awaitingSubmission' } } })
    const annSeesOwnLine = waitFor(ann, 'messages', (h) => h.some(([u, t]) => u === 'ann' && t === '2099/01/01-00:00:00'))
    const said = ann.say('2099/01/01-00:00:00') // sent early, the server would take it as analytics "message" of 2099
    proxy.release()
    await said
    await annSeesOwnLine
    expect(ann.analytics).toEqual({ shots: 12 })
    expect(await bob.pushAnalytics({ shots: 12 }, '2030/01/01-00:00:03')).toEqual({ shots: 12 })
  }, TEST_TIMEOUT_MS)

  it('a request the server took as the answer to a give is refused, sent again, and the give served on the next pass: the get completes', async () => {
    // §4: sending out of turn is never a violation. The server refuses the request (bad_request, "yours") and
    // gives the serve back to gina's pending notifications; bob keeps waiting. See docs/client.md.
    const root = await scene.dir()
    await writeTree(root, SHOT)
    const { server, bob, proxy, gated: gina } = await withGatedClient('gina', root)
    const ginaCloses = closes(gina)
    const ginaId = proxy.userId

    await sessionReaches(server, ginaId, HELD_PASS)
    proxy.gate()
    await sessionReaches(server, bob.userId, HELD_PASS)
    const get = bob.get(ginaId, '/shot')
    // The server has sent gina the give; she has not seen it.
    await sessionReaches(server, ginaId, 'serving')
    const users = gina.users() // sent at once: the server reads it as her answer to the give
    expect((await proxy.holds(2)).slice(0, 2)).toEqual([
      ['give', '/shot'],
      ['error', 'bad_request', expect.stringContaining('where the answer to ["give", "/shot"] was due')]
    ])
    expect((await proxy.holds(3))[2]).toBe('yours')
    proxy.release()

    expect(Object.values(await users).map((u) => u.username).sort()).toEqual(['bob', 'gina'])
    const got = await get
    expect(got.files).toBe(2)
    expect(await readFile(join(bob.root, 'shot/sub/b.txt'), 'utf8')).toBe('frame b\n')
    expect(ginaCloses).toEqual([])
    expect(server.lines.filter((l) => l.startsWith('give deferred | /shot'))).toHaveLength(1)
    expect(server.lines.filter((l) => l.includes('protocol') || l.startsWith('relay failed'))).toEqual([])
  }, TEST_TIMEOUT_MS)

  it('news racing an early request (chat, a story sync, at, a give) is never misread: every request completes, nothing is lost', async () => {
    const server = await scene.start({ turnHoldMs: TURN_HOLD_MS })
    const gina = await giverWithShot()
    const annRoot = await scene.dir()
    await writeTree(annRoot, SHOT)
    const ann = await scene.client('ann', { root: annRoot })
    const bob = await scene.client('bob')
    const carl = await scene.client('carl')
    const everyone = [gina, ann, bob, carl]
    const closed = everyone.map(closes)
    let round = 0

    await fc.assert(fc.asyncProperty(
      fc.constantFrom('users', 'say', 'at', 'analytics', 'get'),
      fc.shuffledSubarray(['request', 'chat', 'story', 'at', 'give'], { minLength: 5, maxLength: 5 }),
      fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
      async (request, order, yields) => {
        round++
        const text = `line ${round}`
        const title = `take ${round}`
        const ts = `2030/01/01-00:${String(Math.floor(round / 60)).padStart(2, '0')}:${String(round % 60).padStart(2, '0')}`
        await sessionReaches(server, ann.userId, HELD_PASS)
        const annSeesChat = waitFor(ann, 'messages', (h) => h.some(([u, t]) => u === 'carl' && t === text))
        const annSeesStory = waitFor(ann, 'story', (s) => s.story.title === title)
        const annSeesAt = waitFor(ann, 'at', (at) => at.from === bob.userId && at.timestamp === ts)
        // Her own line comes back on a later pass, as everyone's does.
        const annSeesOwnLine = request === 'say' ? waitFor(ann, 'messages', (h) => h.some(([u, t]) => u === 'ann' && t === `ann ${round}`)) : null
        const steps: Record<string, () => Promise<unknown>> = {
          request: async () => {
            if (request === 'users') {
              expect(Object.keys(await ann.users()).length).toBe(4)
            } else if (request === 'say') {
              await ann.say(`ann ${round}`)
            } else if (request === 'at') {
              await ann.at('/shot', ts)
            } else if (request === 'analytics') {
              await ann.pushAnalytics({ round }, ts)
            } else {
              expect((await ann.get(gina.userId, '/shot')).failed).toEqual([])
            }
          },
          chat: async () => await carl.say(text),
          story: async () => await bob.pushStory({ title }, ts),
          at: async () => await bob.at('/elsewhere', ts),
          // Carl gets from ann: her serve can race her early request.
          give: async () => expect((await carl.get(ann.userId, '/shot')).failed).toEqual([])
        }
        const running: Array<Promise<unknown>> = []
        for (const [i, step] of order.entries()) {
          running.push(steps[step]())
          if (yields[i]) await new Promise((resolve) => setImmediate(resolve))
        }
        await Promise.all(running)
        await Promise.all([annSeesChat, annSeesStory, annSeesAt])
        expect(ann.story.story).toEqual({ title })
        await annSeesOwnLine
        if (request === 'analytics') expect(ann.analytics).toEqual({ round })
      }
    ), { numRuns: 20 })

    expect(closed.flat()).toEqual([])
    expect(server.lines.filter((l) => l.includes('protocol'))).toEqual([])
    expect(await readFile(join(ann.root, 'shot/a.txt'), 'utf8')).toBe('frame a\n')
    expect(await readFile(join(carl.root, 'shot/sub/b.txt'), 'utf8')).toBe('frame b\n')
  }, 120_000)
})
