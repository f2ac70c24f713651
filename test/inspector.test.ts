import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { createActor, createMachine } from 'xstate'
import { parseCli } from '../src/cli.ts'
import { Sanitizer, REDACTED } from '../src/inspector.ts'
import { join, WireClient } from './helpers/wire-client.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SECRET = 'open-sesame-7f3a91'
const WRONG_GUESS = 'not-the-secret-c0ffee'
const BIG_MARKER = 'BIG-STORY-MARKER-'
/** No inspection message may be this big (the session machine's definition is the largest, ~25 KiB). */
const MAX_MESSAGE = 64 * 1024

interface Inspected {
  type: string
  sessionId: string
  name?: string
  event?: { type: string, [k: string]: unknown }
  snapshot?: { status?: string, value?: unknown, context?: Record<string, unknown> }
}

/** The app as `npm start` runs it, with the inspector on a free port. */
class AppProcess {
  readonly child: ChildProcess
  private output = ''

  constructor (args: string[]) {
    this.child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--no-http', ...args], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' }
    })
    this.child.stdout?.on('data', (d: Buffer) => { this.output += d.toString() })
    this.child.stderr?.on('data', (d: Buffer) => { this.output += d.toString() })
  }

  /** Waits for a log line matching `pattern` (ANSI colours stripped). */
  async line (pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs
    while (true) {
      // eslint-disable-next-line no-control-regex
      const m = this.output.replace(/\u001b\[[0-9;]*m/g, '').match(pattern)
      if (m !== null) return m
      if (this.child.exitCode !== null) throw new Error(`app exited (${this.child.exitCode}):\n${this.output}`)
      if (Date.now() > deadline) throw new Error(`no line ${pattern} within ${timeoutMs} ms:\n${this.output}`)
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }

  async stop (): Promise<void> {
    if (this.child.exitCode !== null || this.child.pid === undefined) return
    const exited = once(this.child, 'exit')
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 8_000)
    await exited
    clearTimeout(timer)
  }
}

/** A viewer of the relay, as the browser page is: keeps every raw message. */
class Viewer {
  readonly raw: string[] = []
  constructor (readonly ws: WebSocket) {
    ws.on('message', (data) => this.raw.push(data.toString()))
  }

  static async connect (url: string): Promise<Viewer> {
    const ws = new WebSocket(url)
    const viewer = new Viewer(ws)
    await once(ws, 'open')
    return viewer
  }

  get events (): Inspected[] { return this.raw.map((t) => JSON.parse(t) as Inspected) }

  async until (what: string, test: (events: Inspected[]) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!test(this.events)) {
      if (Date.now() > deadline) throw new Error(`inspector: no ${what} within ${timeoutMs} ms (${this.raw.length} messages)`)
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }
}

const topState = (value: unknown): string => (typeof value === 'string' ? value : Object.keys(value as object)[0])

describe('inspector (--inspect)', () => {
  let app: AppProcess
  let port: number
  let inspectorUrl: string
  let inspectorPort: number

  beforeAll(async () => {
    app = new AppProcess([
      'Test Film', '--host', '127.0.0.1', '--port', '0', '--no-discovery', '--no-persist',
      '--secret', SECRET, '--inspect', '0', '--log-level', 'debug', '--log-format', 'pretty'
    ])
    port = Number((await app.line(/listening on 127\.0\.0\.1:(\d+)/))[1])
    const open = await app.line(/inspector \| open (http:\/\/127\.0\.0\.1:(\d+))/)
    inspectorUrl = open[1]
    inspectorPort = Number(open[2])
  })
  afterAll(async () => { await app?.stop() })

  it('streams sanitized session and coordinator inspection events to a relay viewer', async () => {
    const viewer = await Viewer.connect(`ws://127.0.0.1:${inspectorPort}`)
    try {
      // The coordinator started before the viewer connected: the relay replays the live actors.
      await viewer.until('coordinator actor', (es) => es.some((e) => e.type === '@xstate.actor' && e.name === 'coordinator'))

      // A wrong guess at the secret is not shown either.
      const guesser = await WireClient.connect(port)
      expect(await guesser.recv()).toBe('username?')
      guesser.send('mallory')
      expect(await guesser.recv()).toBe('project?')
      guesser.send('Test Film')
      expect(await guesser.recv()).toBe('secret?')
      guesser.send(WRONG_GUESS)
      expect(await guesser.recv()).toBe('wrong_secret')
      await guesser.waitClosed()

      const bigStory = { scenes: BIG_MARKER + 'x'.repeat(300_000) }
      const { client } = await join(port, 'Test Film', { username: 'ann', secret: SECRET, story: [bigStory, '2024/01/01-00:00:00'] })
      const userId = client.userId
      client.send(['message', 'hello inspector'])
      expect(await client.recv()).toBe('yours')
      client.close() // leave

      const sessionName = `session ${userId}`
      await viewer.until('closed session', (es) => {
        const id = es.find((e) => e.type === '@xstate.actor' && e.name === sessionName)?.sessionId
        return es.some((e) => e.type === '@xstate.snapshot' && e.sessionId === id && e.snapshot?.status === 'done')
      })
      await viewer.until('coordinator hearing the leave', (es) => es.some((e) => e.event?.type === 'user.leave'))

      const events = viewer.events
      const session = events.find((e) => e.type === '@xstate.actor' && e.name === sessionName)
      expect(session).toBeDefined()
      const states = events
        .filter((e) => e.type === '@xstate.snapshot' && e.sessionId === session?.sessionId)
        .map((e) => topState(e.snapshot?.value))
        .filter((s, i, all) => i === 0 || s !== all[i - 1])
      expect(states).toEqual(['handshake', 'syncing', 'turnTaking', 'closed'])

      const coordinator = events.find((e) => e.type === '@xstate.actor' && e.name === 'coordinator')
      const toCoordinator = events.filter((e) => e.type === '@xstate.event' && e.sessionId === coordinator?.sessionId).map((e) => e.event?.type)
      expect(toCoordinator).toEqual(expect.arrayContaining(['user.join', 'story.submit', 'user.synced', 'message.say', 'user.leave']))
      const coordinatorSnapshots = events.filter((e) => e.type === '@xstate.snapshot' && e.sessionId === coordinator?.sessionId)
      expect(coordinatorSnapshots.length).toBeGreaterThan(0)
      expect(coordinatorSnapshots.at(-1)?.snapshot?.value).toBe('running')

      // Live objects are summarised as strings, big values as summaries.
      const join_ = events.find((e) => e.type === '@xstate.event' && e.event?.type === 'user.join')
      expect(join_?.event?.session).toMatch(/^\[actor /)
      expect(join_?.event?.port).toBe('[Connection]')
      const summaries = events.filter((e) => e.type === '@xstate.event' && e.event?.type === 'frame').map((e) => e.event?.value)
      expect(summaries).toContainEqual({ summary: expect.stringMatching(/^array, 2 items, ~29\d KiB$/) })
      const context = coordinatorSnapshots.at(-1)?.snapshot?.context
      expect(context?.chat).toEqual([['Multiuser Server', 'Server Started'], ['ann', 'hello inspector']])
      expect((context?.story as { value?: unknown })?.value).toEqual({ summary: expect.stringMatching(/^object, 1 keys, ~/) })
      const sessionContext = events.find((e) => e.type === '@xstate.snapshot' && e.sessionId === session?.sessionId)?.snapshot?.context
      expect(sessionContext?.secret).toBe(REDACTED)
      expect(sessionContext?.port).toBe('[Connection]')
      expect(sessionContext?.coordinator).toBe('[actor coordinator]')

      // Nothing secret, nothing giant.
      const all = viewer.raw.join('\n')
      expect(all).not.toContain(SECRET)
      expect(all).not.toContain(WRONG_GUESS)
      expect(all).not.toContain(BIG_MARKER)
      expect(Math.max(...viewer.raw.map((t) => t.length))).toBeLessThan(MAX_MESSAGE)
    } finally {
      viewer.ws.close()
    }
  })

  it('serves the page to open on 127.0.0.1 and refuses other web origins', async () => {
    const page = await fetch(inspectorUrl)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('https://stately.ai/inspect')

    const foreign = new WebSocket(`ws://127.0.0.1:${inspectorPort}`, { origin: 'https://example.com' })
    const [err] = await once(foreign, 'error') as [Error]
    expect(err.message).toMatch(/403/)
  })
})

describe('inspection is off by default', () => {
  it('has no inspector port unless --inspect is given', () => {
    expect(parseCli(['node', 'main', 'Film']).inspectPort).toBeUndefined()
    expect(parseCli(['node', 'main', 'Film', '--inspect']).inspectPort).toBe(8080)
  })
})

describe('Sanitizer', () => {
  it('redacts secrets, summarises live objects, bytes and big values', () => {
    const s = new Sanitizer()
    const actor = createActor(createMachine({}), { id: 'someone' })
    class Socketish { fd = 3 }
    const out = s.value({
      secret: 'hunter22',
      note: 'the secret is hunter22',
      port: new Socketish(),
      ref: actor,
      bytes: new Uint8Array(5000),
      story: { owner: 'a', value: { text: 'y'.repeat(10_000) } },
      chat: Array.from({ length: 500 }, (_, i) => ['u', `line ${i}`]),
      users: new Map([['u1', { username: 'ann' }]])
    }) as Record<string, unknown>
    expect(out.secret).toBe(REDACTED)
    expect(out.note).toBe(`the secret is ${REDACTED}`)
    expect(out.port).toBe('[Socketish]')
    expect(out.ref).toBe('[actor someone]')
    expect(out.bytes).toBe('[5000 bytes]')
    expect(out.story).toEqual({ owner: 'a', value: { summary: expect.stringMatching(/^object, 1 keys, ~9\.\d KiB$/) } })
    expect(out.chat).toEqual({ summary: expect.stringMatching(/^array, 500 items, ~/) })
    expect(out.users).toEqual({ u1: { username: 'ann' } })
  })
})
