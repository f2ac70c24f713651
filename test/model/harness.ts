/**
 * Runs one path of the protocol model against a real server over real TCP:
 * C is a frame-exact WireClient driven by the model's `out`, checked against
 * its `expect` after every step; P is a second client doing what the P_*
 * events say.
 */
import { expect } from 'vitest'
import type { JsonValue } from '../../protocol/frame.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { untilYours } from '../helpers/turns.ts'
import { join, WireClient } from '../helpers/wire-client.ts'
import { createModel, replay, type ModelSnapshot } from './paths.ts'
import {
  ANY, ASSET_P_JOIN, ASSET_P_PUSH, C_FILES, C_ID, C_MANIFEST, GIVE_FOLDER, P_ANALYTICS, P_FILE, P_ID, P_MANIFEST,
  P_NAME, P_STORY, P_TEXT, pAt, PROJECT, T0, TAKE_FOLDER, TS_P,
  type Expected, type ModelEvent, type ModelEventType
} from './protocol-model.ts'

/** Longest wait for any one frame or server-side effect. */
export const WAIT_MS = 3_000
/** After the last step, C must receive nothing more for this long. */
const QUIET_MS = 10
/** A user id nobody has: C's `get` before P ever joined. */
const NOBODY_CONNECTED = '127.0.0.1:1'

const text = (s: string): Uint8Array => new TextEncoder().encode(s)
const decode = (b: Uint8Array): string => new TextDecoder().decode(b)

async function until (what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`server: still not ${what} after ${WAIT_MS} ms`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

async function withTimeout<T> (what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${WAIT_MS} ms`)), WAIT_MS) })
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

/** Binary frames until exactly `size` bytes (a JSON frame instead is a failure). */
async function readBytes (c: WireClient, size: number, who: string): Promise<string> {
  const parts: Uint8Array[] = []
  let got = 0
  while (got < size) {
    const f = await c.frame(WAIT_MS)
    if (f.kind !== 'binary') throw new Error(`${who}: expected ${size - got} more bytes, got ${JSON.stringify(f.value)}`)
    for (const b of f.bytes) parts.push(Uint8Array.from(b))
    got += f.bytes.byteLength
  }
  const all = new Uint8Array(got)
  let at = 0
  for (const b of parts) { all.set(b, at); at += b.byteLength }
  return decode(all)
}

/** P: joins, acts, serves and takes as the P_* events say; its background reads are chained. */
class Peer {
  client: WireClient | null = null
  /** Kept: a closed socket no longer knows its port. */
  id: string | null = null
  private tail: Promise<void> = Promise.resolve()
  private filesReceived = 0

  constructor (private readonly run: PathRun) {}

  private get c (): WireClient {
    if (this.client === null) throw new Error('P is not connected')
    return this.client
  }

  /** Runs `fn` after P's previous background reads. */
  later (fn: () => Promise<void>): void { this.tail = this.tail.then(fn) }
  async settle (): Promise<void> { await withTimeout('P', this.tail) }

  private async request (value: JsonValue, answers: Parameters<typeof untilYours>[1] = {}): Promise<JsonValue[]> {
    await this.settle()
    this.c.send(value)
    return await untilYours(this.c, answers, WAIT_MS)
  }

  async do (type: ModelEventType, after: ModelSnapshot): Promise<void> {
    const server = this.run.server
    switch (type) {
      case 'P_JOINS':
        this.client = (await join(server.port, PROJECT, { username: P_NAME, assets: { [ASSET_P_JOIN]: ['someone else', TS_P] } })).client
        this.id = this.client.userId
        return
      case 'P_SAYS':
        expect(await this.request(['message', P_TEXT])).toEqual(['yours'])
        return
      case 'P_MOVES_AT':
        expect(await this.request(['at', ...pAt(after.context.data.pAts)])).toEqual(['yours'])
        return
      case 'P_PUSHES_STORY':
        expect(await this.request('story', { story: [P_STORY, TS_P] })).toEqual(['story', [this.id, P_STORY], 'yours'])
        return
      case 'P_PUSHES_ANALYTICS':
        expect(await this.request('analytics', { analytics: [P_ANALYTICS, TS_P] })).toEqual(['analytics', P_ANALYTICS, 'yours'])
        return
      case 'P_PUSHES_ASSETS': {
        const got = await this.request('assets', { assets: { [ASSET_P_PUSH]: ['someone else', TS_P] } })
        expect(got[0]).toBe('assets')
        expect((got[1] as Record<string, JsonValue>)[ASSET_P_PUSH]).toEqual([this.id, TS_P])
        return
      }
      case 'P_ASKS_C': {
        await this.settle()
        const before = server.coordinator.getSnapshot().context.nextRelayId
        this.c.send(['get', this.run.cId, GIVE_FOLDER])
        // P waits now; C's serve notification is queued once the relay is registered.
        await until('registering P\'s get', () => server.coordinator.getSnapshot().context.nextRelayId > before)
        return
      }
      case 'P_LEAVES': {
        const id = this.c.userId
        await this.settle()
        this.c.close()
        await until(`done with P leaving (${id})`, () => !server.coordinator.getSnapshot().context.users.has(id))
        return
      }
      // P as giver: C asked P for TAKE_FOLDER.
      case 'P_GIVES': {
        await this.settle()
        this.c.send('yours')
        while (true) {
          const m = await this.c.recv(WAIT_MS)
          if (m === 'yours') throw new Error('P: its pass ended without the give')
          if (m === 'story' || m === 'analytics') { this.c.send([{}, T0]); await this.c.recv(WAIT_MS); this.c.send(true) }
          if (m === 'assets') { this.c.send({}); await this.c.recv(WAIT_MS); this.c.send(true) }
          if (Array.isArray(m) && m[0] === 'give') {
            expect(m).toEqual(['give', TAKE_FOLDER])
            break
          }
        }
        this.c.send(P_MANIFEST)
        return
      }
      case 'P_SENDS_FILE':
      case 'P_SENDS_PART': {
        expect(await this.c.recv(WAIT_MS)).toEqual([P_FILE.path])
        this.c.send(['file', P_FILE.path, P_FILE.content.length])
        if (type === 'P_SENDS_FILE') {
          // Two frames: the relay need not keep frame boundaries, only the bytes.
          this.c.sendBinary(text(P_FILE.content.slice(0, P_FILE.split)))
          this.c.sendBinary(text(P_FILE.content.slice(P_FILE.split)))
        } else {
          this.c.sendBinary(text(P_FILE.content.slice(0, P_FILE.split)))
        }
        return
      }
      case 'P_SENDS_REST':
        this.c.sendBinary(text(P_FILE.content.slice(P_FILE.split)))
        return
      // P as taker: P asked C for GIVE_FOLDER.
      case 'P_GETLIST':
        expect(await this.c.recv(WAIT_MS)).toEqual(C_MANIFEST)
        this.filesReceived = 0
        this.c.send(C_FILES.map((f) => f.path))
        return
      case 'P_ANSWERS': {
        const f = C_FILES[this.filesReceived++]
        expect(await this.c.recv(WAIT_MS)).toEqual(['file', f.path, f.content.length])
        expect(await readBytes(this.c, f.content.length, 'P')).toBe(f.content)
        this.c.send(['ok', f.path])
        // After the last answer P, the taker, gets its turn back.
        if (this.filesReceived === C_FILES.length) expect(await this.c.recv(WAIT_MS)).toBe('yours')
        return
      }
      default:
        throw new Error(`not a P event: ${type}`)
    }
  }

  /** What P sees because of C's step (P's side of a relay C takes part in). */
  afterC (type: ModelEventType, after: ModelSnapshot): void {
    if (this.client === null || this.client.closed || after.context.flow.p !== 'here') return
    const c = this.client
    const passGoesOn = async (first: JsonValue): Promise<void> => {
      expect(await c.recv(WAIT_MS)).toEqual(first)
      await untilYours(c, {}, WAIT_MS)
    }
    // P gives to C: C's getlist ends the relay at once, or C's answer to the last file does; P's pass goes on.
    if (type === 'C_GETLIST_EMPTY' || type === 'C_BAD_GETLIST') this.later(async () => { await passGoesOn([]) })
    if (type === 'C_OK') this.later(async () => { await passGoesOn(['ok', P_FILE.path]) })
  }
}

/** The turn hold of the held-pass paths: long enough for P's news to arrive within it. */
export const HELD_TURN_HOLD_MS = 1_500

/** One path's run: a fresh server (turn hold `holdMs`), C, P. */
export class PathRun {
  server!: TestServer
  c!: WireClient
  readonly p = new Peer(this)
  cId = ''
  /** The step being checked, for messages. */
  step = 'connect'
  /** Steps checked: -1 before the first state, 0 after it, n after the n-th event. */
  completedSteps = -1

  constructor (readonly holdMs = 0) {}

  /** Longest wait for one of C's frames: a held pass may end by its expiry. */
  get waitMs (): number { return WAIT_MS + this.holdMs }

  async start (): Promise<void> {
    this.server = await startTestServer({ turnHoldMs: this.holdMs })
    this.c = await WireClient.connect(this.server.port)
    this.cId = this.c.userId
  }

  async stop (): Promise<void> {
    this.c?.close()
    this.p.client?.close()
    await this.server?.close()
  }

  /** `$C`, `$P` → user ids; ANY → any string. */
  resolve (v: JsonValue): unknown {
    const id = (s: string): unknown => s === C_ID ? this.cId : s === P_ID ? (this.p.id ?? NOBODY_CONNECTED) : s === ANY ? expect.any(String) : s
    if (typeof v === 'string') return id(v)
    if (Array.isArray(v)) return v.map((x) => this.resolve(x))
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [id(k) as string, this.resolve(x)]))
    }
    return v
  }

  /** Sends what the model says C sends. */
  async cSends (step: ModelSnapshot): Promise<void> {
    for (const o of step.context.out) {
      if ('json' in o) this.c.send(this.resolve(o.json))
      else if ('binary' in o) this.c.sendBinary(text(o.binary))
      else this.c.sendRaw(Uint8Array.from(o.raw))
    }
  }

  /** C has received exactly what the model expects, in order, and nothing else yet. */
  async check (state: ModelSnapshot): Promise<void> {
    const all = state.context.expect
    for (const [i, e] of all.entries()) await this.receive(e, `C after ${this.step}, frame ${i + 1} of ${all.length}`)
    expect(this.c.queued.map((f) => (f.kind === 'json' ? f.value : `${f.bytes.byteLength} bytes`)), `C after ${this.step}: frames not expected`).toEqual([])
  }

  private async receive (e: Expected, where: string): Promise<void> {
    if ('json' in e) {
      const f = await this.c.frame(this.waitMs).catch((err: Error) => { throw new Error(`${where}: ${err.message}, expected ${JSON.stringify(e.json)}`) })
      if (f.kind !== 'json') throw new Error(`${where}: expected ${JSON.stringify(e.json)}, got ${f.bytes.byteLength} binary bytes`)
      expect(f.value, where).toEqual(this.resolve(e.json))
    } else if ('bytes' in e) {
      expect(await readBytes(this.c, e.bytes.length, where), where).toBe(e.bytes)
    } else {
      await this.c.waitClosed(WAIT_MS).catch((err: Error) => { throw new Error(`${where}: ${err.message}, expected the server to close it`) })
    }
  }

  /** After the last step: nothing more arrives, and P's side ended cleanly. */
  async finish (last: ModelSnapshot): Promise<void> {
    if (!last.matches('closed')) {
      expect(await this.c.silentFor(QUIET_MS), 'C received frames after the last step').toBe(true)
    }
    await this.p.settle()
  }
}

const model = createModel()

/** Drives `events` from the start, checking C after every step (xstate/graph's testPath). */
export async function runPath (events: readonly ModelEvent[], run: PathRun): Promise<void> {
  const r = replay(events, { hold: run.holdMs > 0 })
  const steps = [
    { state: r.initial, event: { type: 'xstate.init' } as unknown as ModelEvent },
    ...events.map((event, i) => ({ state: r.snapshots[i], event }))
  ]
  const exec = async (step: { state: ModelSnapshot, event: ModelEvent }): Promise<void> => {
    const type = step.event.type
    run.step = type
    if (type.startsWith('P_')) {
      await run.p.do(type, step.state)
    } else {
      await run.cSends(step.state)
      run.p.afterC(type, step.state)
    }
  }
  const execs: Partial<Record<ModelEventType, typeof exec>> = {}
  for (const e of events) execs[e.type] = exec
  let checked = -1
  await model.testPath({ state: steps[steps.length - 1].state, steps, weight: events.length }, {
    events: execs,
    states: {
      '*': async (state) => {
        await run.check(state)
        checked++
        run.completedSteps = checked
      }
    }
  })
  await run.finish(steps[steps.length - 1].state)
}
