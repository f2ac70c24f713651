/**
 * Issue 12: random and mutated frames and message sequences against a live
 * server (bounded in count and time). Afterwards the server is alive, a
 * fresh client completes a handshake, a chat and a pass, and a client
 * connected throughout is still served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { connect, type Socket } from 'node:net'
import { encodeBinary, encodeJson, type JsonValue } from '../protocol/frame.ts'
import { FrameDecoder } from '../protocol/decoder.ts'
import { join, T0, type WireClient } from './helpers/wire-client.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'
import { deliveredUntilYours } from './helpers/relay-peers.ts'

const PROJECT = 'Test Film'
const TS = '2025/01/01-00:00:00'
let server: TestServer
let witness: WireClient

beforeAll(async () => {
  // A fuzzer's get for the witness (who never passes during the fuzz) ends at the relay timeout.
  server = await startTestServer({ maxFrame: 64 * 1024, turnHoldMs: 20, relayTimeoutMs: 300 })
  witness = (await join(server.port, PROJECT, { username: 'witness' })).client
})
afterAll(async () => {
  witness?.close()
  await server?.close()
})

/** The valid start of a session, frame by frame: a run sends a prefix of it first. */
const JOIN: JsonValue[] = ['fuzzer', PROJECT, [{}, T0], true, {}, true, [{}, T0], true]

const path = fc.oneof(
  fc.constantFrom('/chr/Moria', '/rnd/scene_1/shot_2', 'a/b', '', '..', '/a/../b', 'C:/x', 'a\\b', 'a\u0000b', '/x\n'),
  fc.string({ maxLength: 12 })
)
const timestamp = fc.oneof(fc.constant(TS), fc.constant(T0), fc.string({ maxLength: 20 }))

/** Messages shaped like the protocol's (requests, answers, acks), some slightly wrong. */
const protocolish: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.constantFrom<JsonValue>('yours', 'story', 'analytics', 'assets', 'users', 'username?', 'give', true, null, 0, [], {}),
  fc.tuple(fc.constant('at'), path, timestamp),
  fc.tuple(fc.constant('message'), fc.string({ unit: 'binary', maxLength: 40 })),
  fc.tuple(fc.constant('get'), fc.oneof(fc.constantFrom('WITNESS', 'PEER', 'PEER'), fc.string({ maxLength: 20 })), path),
  fc.tuple(fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }), timestamp),
  fc.tuple(fc.record({ camera: fc.tuple(fc.double(), fc.double()) }), timestamp),
  fc.dictionary(path, fc.tuple(fc.string({ maxLength: 8 }), timestamp), { maxKeys: 3 }),
  fc.tuple(fc.constantFrom('ok', 'failed', 'file', 'missing'), path, fc.oneof(fc.nat(), fc.string({ maxLength: 5 }))),
  fc.jsonValue({ maxDepth: 3 })
) as fc.Arbitrary<JsonValue>

/** Bytes that break §1 in every way we know, and mutations of good frames. */
const hostileBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constantFrom(
    Buffer.from('[1e400]'), Buffer.from('{"a":-1e999}'), Buffer.from('['.repeat(300) + ']'.repeat(300)),
    Buffer.from('{"a":' + '['.repeat(5_000) + ']'.repeat(5_000) + '}'), Buffer.from([0xff, 0xfe, 0x22]), Buffer.from('{{{{')
  ).map((payload) => {
    const frame = Buffer.alloc(5 + payload.byteLength)
    frame.writeUInt32BE(payload.byteLength, 0)
    payload.copy(frame, 5)
    return new Uint8Array(frame)
  }),
  // A header announcing more than the limit, or of an unknown kind.
  fc.tuple(fc.integer({ min: 64 * 1024 + 1, max: 2 ** 32 - 1 }), fc.constantFrom(0, 1)).map(([n, kind]) => {
    const h = Buffer.alloc(5)
    h.writeUInt32BE(n, 0)
    h[4] = kind
    return new Uint8Array(h)
  }),
  fc.tuple(fc.nat({ max: 16 }), fc.integer({ min: 2, max: 255 })).map(([n, kind]) => {
    const h = Buffer.alloc(5 + n)
    h.writeUInt32BE(n, 0)
    h[4] = kind
    return new Uint8Array(h)
  }),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.concat([...encodeBinary(b)])),
  fc.uint8Array({ minLength: 1, maxLength: 64 }),
  // A good frame with one byte changed, or cut short.
  fc.tuple(protocolish, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([v, at, byte]) => {
    const f = Uint8Array.from(encodeJson(v))
    f[at % f.byteLength] = byte
    return f
  }),
  fc.tuple(protocolish, fc.nat()).map(([v, cut]) => {
    const f = encodeJson(v)
    return f.subarray(0, cut % f.byteLength)
  })
)

type Step = { kind: 'json', value: JsonValue } | { kind: 'raw', bytes: Uint8Array }
const json = (value: JsonValue): Step => ({ kind: 'json', value })
/** Openings that make relays between the fuzzers likely: a get for the next one, or passes and a manifest. */
const ROLES: Readonly<Record<'none' | 'taker' | 'giver', readonly Step[]>> = {
  none: [],
  taker: [json(['get', 'PEER', '/f'])],
  giver: [json('yours'), json('yours'), json({ 'a.txt': 'h', 'b.txt': 'h' })]
}
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: protocolish.map((value) => ({ kind: 'json' as const, value })) },
  // Passes and gets between the fuzzers, so that relays start among them.
  { weight: 2, arbitrary: fc.constantFrom<JsonValue>('yours', ['get', 'PEER', '/f'], { 'a.txt': 'h' }, ['a.txt'], ['file', 'a.txt', 2], ['ok', 'a.txt']).map((value) => ({ kind: 'json' as const, value })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 }).map((b) => ({ kind: 'raw' as const, bytes: Buffer.concat([...encodeBinary(b)]) })) },
  { weight: 1, arbitrary: hostileBytes.map((bytes) => ({ kind: 'raw' as const, bytes })) }
)

/** A connected socket; `frames` counts the frames the server sent it (read and dropped). */
async function open (): Promise<{ socket: Socket, id: string, firstData: Promise<unknown>, closed: Promise<void>, onFrame: (f: (v: JsonValue) => void) => void }> {
  const socket = connect({ port: server.port, host: '127.0.0.1' })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const firstData = new Promise((resolve) => socket.once('data', resolve))
  const decoder = new FrameDecoder({ maxFrame: 2 ** 32 - 1 })
  let listener = (_: JsonValue): void => {}
  socket.on('data', (chunk) => {
    try {
      for (const f of decoder.push(chunk)) if (f.kind === 'json') listener(f.value)
    } catch { /* the fuzzer does not care */ }
  })
  return { socket, id: `127.0.0.1:${socket.localPort ?? 0}`, firstData, closed, onFrame: (f) => { listener = f } }
}

/**
 * How a fuzzer sends its steps: all at once (`burst`), or one for each
 * frame the server sends it (`lockstep`: it answers prompts, passes when
 * given the turn, serves when given a give, with whatever step is next).
 */
type Pace = 'burst' | 'lockstep'
interface ClientPlan { joinSteps: number, steps: Step[], readFirst: boolean, pace: Pace }

/**
 * Hostile clients at once: each sends a prefix of a good join, then its
 * steps, and ends its side. `["get", "WITNESS" or "PEER", …]` asks the
 * witness or another of them for a folder.
 */
async function runClients (plans: ClientPlan[]): Promise<void> {
  const opened = await Promise.all(plans.map(async () => await open()))
  await Promise.all(plans.map(async (plan, i) => {
    const { socket, firstData, closed, onFrame } = opened[i]
    const peer = opened[(i + 1) % opened.length].id
    const rewrite = (v: JsonValue): JsonValue => Array.isArray(v) && v[0] === 'get' && (v[1] === 'WITNESS' || v[1] === 'PEER')
      ? ['get', v[1] === 'WITNESS' ? witness.userId : peer, v[2]]
      : v
    const write = (s: Step): void => { if (socket.writable) socket.write(s.kind === 'raw' ? s.bytes : encodeJson(rewrite(s.value))) }
    if (plan.readFirst) await firstData
    for (const v of JOIN.slice(0, plan.joinSteps)) socket.write(encodeJson(v))
    if (plan.pace === 'burst') {
      for (const s of plan.steps) write(s)
    } else {
      // One step per frame received (after the join's, when it joined); a server that says nothing
      // for a while gets the next one anyway.
      await new Promise<void>((resolve) => {
        let next = 0
        let idle: NodeJS.Timeout | undefined
        let joining = plan.joinSteps === JOIN.length
        const step = (v?: JsonValue): void => {
          if (joining && v !== undefined && v !== 'yours') return
          joining = false
          clearTimeout(idle)
          if (next >= plan.steps.length || socket.destroyed) { onFrame(() => {}); resolve(); return }
          write(plan.steps[next++])
          idle = setTimeout(() => step(), 200)
        }
        onFrame((v) => step(v))
        void closed.then(() => { clearTimeout(idle); resolve() })
        idle = setTimeout(() => step(), 200)
      })
    }
    socket.end()
    // The server reads to the end (or closes on a violation): wait for the close itself. What it has
    // not read yet (behind a get that waits on a giver) waits in TCP, its end of stream too.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([closed, new Promise<void>((_, reject) => { timer = setTimeout(() => reject(new Error('the server did not close a finished client')), 10_000) })])
    clearTimeout(timer)
  }))
}

function lastHistory (delivered: JsonValue[]): JsonValue[] | undefined {
  const histories = delivered.filter((m): m is ['messages', JsonValue[]] => Array.isArray(m) && m[0] === 'messages')
  return histories.at(-1)?.[1]
}

describe('fuzz (issue 12)', () => {
  it('random and mutated frames never hurt the server or the other clients', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({
          joinSteps: fc.oneof(fc.constant(JOIN.length), fc.integer({ min: 0, max: JOIN.length })),
          role: fc.constantFrom<keyof typeof ROLES>('none', 'taker', 'giver'),
          steps: fc.array(step, { maxLength: 12 }),
          readFirst: fc.boolean(),
          pace: fc.constantFrom<Pace>('burst', 'lockstep')
        }).map(({ role, steps, ...plan }) => ({ ...plan, steps: [...ROLES[role], ...steps] })), { minLength: 1, maxLength: 3 }),
        async (plans) => { await runClients(plans) }
      ),
      // Bounded in count and in time (a slow machine runs fewer); FUZZ_RUNS=2000 for a longer hunt.
      { numRuns: Number(process.env.FUZZ_RUNS ?? 150), interruptAfterTimeLimit: 40_000, markInterruptAsFailure: false }
    )
    // The server is alive and everyone is gone but the witness.
    for (let i = 0; i < 500 && server.connectionCount() !== 1; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(server.connectionCount()).toBe(1)
    // A fresh client: handshake, chat, pass.
    const fresh = (await join(server.port, PROJECT, { username: 'fresh' })).client
    try {
      fresh.send(['message', 'after the storm'])
      expect(await fresh.recv()).toBe('yours')
      fresh.send('yours')
      expect(lastHistory((await deliveredUntilYours(fresh)).delivered)).toContainEqual(['fresh', 'after the storm'])
      // The witness, connected throughout, is served: its pass brings the fresh client's line.
      witness.send('yours')
      const got = await deliveredUntilYours(witness, {
        onGive: async (folder) => {
          // A give left over from a fuzzer's get (should its relay not be withdrawn yet): an empty folder.
          witness.send({})
          return { folder, getlist: [], answers: [] }
        }
      })
      expect(lastHistory(got.delivered)).toContainEqual(['fresh', 'after the storm'])
    } finally {
      fresh.close()
    }
  })
})
