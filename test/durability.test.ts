/**
 * §8 acknowledged means durable: with persistence on, the merged reply of a
 * story/analytics exchange that changed the value, and the "yours" ending a
 * `message` request, go out only once the change is committed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createActor, setup, type AnyEventObject } from 'xstate'
import { coordinatorMachine, type CoordinatorEmitted } from '../actors/coordinator.ts'
import type { FramePort } from '../actors/ports.ts'
import { startApp, type App } from '../src/app.ts'
import type { CliOptions } from '../src/cli.ts'
import { createLog } from '../src/log.ts'
import { DEFAULTS } from '../src/server.ts'
import { atomicWrite, FILES, type FileStoreTuning } from '../src/store.ts'
import { request } from './helpers/turns.ts'
import { join as joinServer, T0, type WireClient } from './helpers/wire-client.ts'

const LATE = '2024/05/01-10:00:00'
const LATER = '2024/05/01-10:00:01'
const temps: string[] = []
afterAll(() => { for (const dir of temps) rmSync(dir, { recursive: true, force: true }) })

// ------------------------------------------------------------ the coordinator alone

/** A stand-in session: records what the coordinator sends it. */
function recordingSession (): { ref: ReturnType<typeof createActor>, got: AnyEventObject[] } {
  const got: AnyEventObject[] = []
  const ref = createActor(setup({}).createMachine({ on: { '*': { actions: ({ event }) => { got.push(event) } } } }))
  ref.start()
  return { ref, got }
}

const noPort = {} as FramePort

function coordinator (awaitCommit: boolean) {
  const emitted: Array<Extract<CoordinatorEmitted, { type: 'durableStateChanged' }>> = []
  const actor = createActor(coordinatorMachine, { input: { chatLimit: 100, relayTimeoutMs: 60_000, awaitCommit } })
  actor.on('durableStateChanged', (e) => emitted.push(e))
  actor.start()
  const ann = recordingSession()
  const bob = recordingSession()
  actor.send({ type: 'user.join', userId: 'ann', username: 'ann', session: ann.ref, port: noPort })
  actor.send({ type: 'user.join', userId: 'bob', username: 'bob', session: bob.ref, port: noPort })
  const replies = (s: { got: AnyEventObject[] }): string[] => s.got.filter((e) => e.type !== 'notify').map((e) => e.type)
  return { actor, emitted, ann, bob, replies }
}

describe('coordinator: acknowledgements wait for the commit', () => {
  it('holds the reply of a change until durable.committed of its number; a reply that changed nothing goes at once', () => {
    const { actor, emitted, ann, bob, replies } = coordinator(true)
    actor.send({ type: 'story.submit', userId: 'ann', submission: { story: { v: 1 }, timestamp: LATE }, origin: 'request' })
    expect(emitted.map((e) => e.version)).toEqual([1])
    expect(replies(ann)).toEqual([])
    // Others hear of it at once (they sync on their pass); only the acknowledgement waits.
    expect(bob.got).toEqual([{ type: 'notify', notification: { kind: 'story' } }])

    actor.send({ type: 'story.submit', userId: 'bob', submission: { story: { old: true }, timestamp: T0 }, origin: 'notification' })
    expect(replies(bob)).toEqual(['story.current'])

    actor.send({ type: 'analytics.submit', userId: 'bob', submission: { analytics: { h: 1 }, timestamp: LATE }, origin: 'request' })
    actor.send({ type: 'message.say', userId: 'bob', text: 'hi' })
    expect(emitted.map((e) => e.version)).toEqual([1, 2, 3])
    expect(emitted[2].state.chat.at(-1)).toEqual(['bob', 'hi'])
    expect(replies(bob)).toEqual(['story.current'])

    actor.send({ type: 'durable.committed', version: 1 })
    expect(ann.got.filter((e) => e.type === 'story.current')).toEqual([{ type: 'story.current', owner: 'ann', story: { v: 1 } }])
    expect(replies(bob)).toEqual(['story.current'])
    actor.send({ type: 'durable.committed', version: 3 })
    expect(replies(bob)).toEqual(['story.current', 'analytics.current', 'message.stored'])
    expect(actor.getSnapshot().context.held).toEqual([])
  })

  it('a held acknowledgement of a user who left is dropped at the commit', () => {
    const { actor, ann, replies } = coordinator(true)
    actor.send({ type: 'message.say', userId: 'ann', text: 'bye' })
    actor.send({ type: 'user.leave', userId: 'ann' })
    actor.send({ type: 'durable.committed', version: 1 })
    expect(replies(ann)).toEqual([])
    expect(actor.getSnapshot().context.held).toEqual([])
  })

  it('without persistence nothing waits', () => {
    const { actor, emitted, ann, replies } = coordinator(false)
    actor.send({ type: 'story.submit', userId: 'ann', submission: { story: { v: 1 }, timestamp: LATE }, origin: 'request' })
    actor.send({ type: 'message.say', userId: 'ann', text: 'hi' })
    expect(emitted.map((e) => e.version)).toEqual([1, 2])
    expect(replies(ann)).toEqual(['story.current', 'message.stored'])
  })
})

// ------------------------------------------------------------ the app, over TCP

/** A writeFile that writes for real (atomically, synced) only once released. */
function gatedDisk (): { writeFile: FileStoreTuning['writeFile'], calls: string[], release: () => void } {
  const calls: string[] = []
  const gates: Array<() => void> = []
  return {
    calls,
    release: () => { for (const g of gates.splice(0)) g() },
    writeFile: async (path, data) => {
      calls.push(path)
      await new Promise<void>((resolve) => gates.push(resolve))
      await atomicWrite(path, data)
    }
  }
}

async function startDurableApp (dir: string, tuning: Partial<FileStoreTuning>): Promise<App> {
  const options: CliOptions = {
    ...DEFAULTS,
    projectName: 'Test Film',
    host: '127.0.0.1',
    port: 0,
    turnHoldMs: 0,
    logFormat: 'pretty',
    logLevel: 'fatal',
    http: false,
    discovery: false,
    persist: { dataDir: dir }
  }
  return await startApp(options, createLog({ silent: true }), () => {}, tuning)
}

/** Round trips of another client through the server: what the server had sent `c` before them has arrived by now in practice. */
async function roundTrips (other: WireClient, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await request(other, 'users')
}

describe('app: §8 over TCP', () => {
  it('the merged reply of a changing story, analytics exchange and the "yours" of a message wait until the change is on disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'durability-test-'))
    temps.push(dir)
    const disk = gatedDisk()
    const app = await startDurableApp(dir, { writeFile: disk.writeFile })
    try {
      const ann = await joinServer(app.server.port, 'Test Film', { username: 'ann' })
      const bob = await joinServer(app.server.port, 'Test Film', { username: 'bob' })
      expect(disk.calls).toEqual([]) // joining with nothing newer changes nothing

      ann.client.send('story')
      expect(await ann.client.recv()).toBe('story')
      ann.client.send([{ scene: 1 }, LATE])
      await until(() => disk.calls.length === 1)
      expect(disk.calls[0].endsWith(FILES.story)).toBe(true)
      await roundTrips(bob.client, 3)
      expect(ann.client.queued).toEqual([])
      disk.release()
      expect(await ann.client.recv()).toEqual([ann.client.userId, { scene: 1 }])
      expect(JSON.parse(readFileSync(join(dir, FILES.story), 'utf8')).value).toEqual({ scene: 1 })
      ann.client.send('ack')
      expect(await ann.client.recv()).toBe('yours')

      ann.client.send('analytics')
      expect(await ann.client.recv()).toBe('analytics')
      ann.client.send([{ hours: 2 }, LATER])
      await until(() => disk.calls.length === 2)
      await roundTrips(bob.client, 3)
      expect(ann.client.queued).toEqual([])
      disk.release()
      expect(await ann.client.recv()).toEqual({ hours: 2 })
      ann.client.send('ack')
      expect(await ann.client.recv()).toBe('yours')

      ann.client.send(['message', 'on disk first'])
      await until(() => disk.calls.length === 3)
      expect(disk.calls[2].endsWith(FILES.chat)).toBe(true)
      await roundTrips(bob.client, 3)
      expect(ann.client.queued).toEqual([])
      disk.release()
      expect(await ann.client.recv()).toBe('yours')
      expect(JSON.parse(readFileSync(join(dir, FILES.chat), 'utf8')).lines.at(-1)).toEqual(['ann', 'on disk first'])

      // An older story changes nothing: its reply does not wait for any write.
      ann.client.send('story')
      expect(await ann.client.recv()).toBe('story')
      ann.client.send([{ stale: true }, T0])
      expect(await ann.client.recv()).toEqual([ann.client.userId, { scene: 1 }])
      expect(disk.calls).toHaveLength(3)
      ann.client.close()
      bob.client.close()
    } finally {
      disk.release()
      await app.stop('test over')
    }
  })
})

async function until (check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
