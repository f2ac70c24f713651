/**
 * Issue 14's turn-taking targets, measured against the real server started
 * as `npm start` starts it (bench/processes.ts) and against the bare protocol
 * server (bench/bare-server.ts) in the same run:
 *  - passes: one client, then 50, passing as fast as answered (turn hold 0):
 *    server CPU per pass and passes/s, each over the bare server's;
 *  - idle: 1,000 clients passing at the default turn hold (an idle VCStudio
 *    passes whenever it gets the turn): the server's CPU in % of one core,
 *    and its RSS per connection without any forced GC;
 *  - broadcast: with those 1,000 clients in held passes, one of them sends a
 *    `message`; from that send to each other client's receipt of
 *    `["messages", …]`, p50 and p99 over every delivery of 20 broadcasts
 *    that follow a first one (the server's first broadcast runs code the
 *    JIT has not compiled yet: its p99 is reported on its own). The
 *    listeners pass again once all of them have a broadcast, so that this
 *    process's own writes do not delay the reads it times.
 * The clients are lean (bench/relay-clients.ts's frame reader, pre-encoded
 * `"yours"`), all in this process, the same for both servers.
 */
import { encodeJson, type JsonValue } from '../protocol/frame.ts'
import { DEFAULTS } from '../src/server.ts'
import { percentile } from './server-process.ts'
import { Peer, within } from './relay-clients.ts'
import { sleep, startBareServer, startServer, type Listening } from './processes.ts'

const YOURS = encodeJson('yours')
const WARM_MS = 1_000
const MEASURE_MS = 3_000
const IDLE_CLIENTS = 1_000
/** At least this long, and a whole number of turn holds (each client then passes the same number of times in it). */
const IDLE_MEASURE_MS = 5_000
const BROADCASTS = 20

/** Clients to pass again once this turn of the event loop has read every socket. */
let repass: TurnClient[] = []
function flushRepass (): void {
  const now = repass
  repass = []
  for (const c of now) {
    if (c.passing) c.peer.socket.write(YOURS)
    else c.holdsTurn = true
  }
}

/** A client that passes whenever it gets the turn (while `passing`), and notes `messages` arrivals. */
export class TurnClient {
  passes = 0
  passing = false
  holdsTurn = true
  /**
   * Pass again after every socket of this event-loop turn has been read,
   * so that 1,000 clients of this one process note a broadcast's arrival
   * before any of them spends time writing.
   */
  deferRepass = false
  onMessages: (() => void) | null = null
  onYours: (() => void) | null = null

  private constructor (readonly peer: Peer) {
    peer.reader.onJson = (v: JsonValue) => {
      if (v === 'yours') {
        this.passes++
        if (!this.passing) this.holdsTurn = true
        else if (!this.deferRepass) this.peer.socket.write(YOURS)
        else if (repass.push(this) === 1) setImmediate(flushRepass)
        this.onYours?.()
      } else if (Array.isArray(v) && v[0] === 'messages') {
        this.onMessages?.()
      }
    }
  }

  static async join (port: number, name: string): Promise<TurnClient> {
    const peer = await Peer.connect(port)
    await peer.join('Bench', name)
    return new TurnClient(peer)
  }

  start (): void {
    this.passing = true
    if (this.holdsTurn) { this.holdsTurn = false; this.peer.socket.write(YOURS) }
  }

  /** Stops passing; resolves when it holds the turn. */
  async stop (): Promise<void> {
    this.passing = false
    if (this.holdsTurn) return
    await new Promise<void>((resolve) => { this.onYours = () => { this.onYours = null; resolve() } })
  }

  send (value: unknown): void { this.holdsTurn = false; this.peer.send(value) }
  close (): void { this.peer.close() }
}

export async function joinTurnClients (port: number, n: number, from = 0): Promise<TurnClient[]> {
  const out: TurnClient[] = []
  for (let i = 0; i < n; i += 50) {
    out.push(...await Promise.all(Array.from({ length: Math.min(50, n - i) }, async (_, j) => await TurnClient.join(port, `u${from + i + j}`))))
  }
  return out
}

export interface PassFigures { readonly passesPerS: number, readonly cpuPerPassUs: number }

/** Every client passes for MEASURE_MS after WARM_MS: passes/s and server CPU per pass. */
async function measurePasses (server: Listening, clients: readonly TurnClient[]): Promise<PassFigures> {
  for (const c of clients) c.start()
  await sleep(WARM_MS)
  const passes0 = clients.reduce((n, c) => n + c.passes, 0)
  const cpu0 = server.cpuSeconds()
  const t0 = performance.now()
  await sleep(MEASURE_MS)
  const passes = clients.reduce((n, c) => n + c.passes, 0) - passes0
  const cpu = server.cpuSeconds() - cpu0
  const seconds = (performance.now() - t0) / 1000
  await Promise.all(clients.map(async (c) => await c.stop()))
  return { passesPerS: passes / seconds, cpuPerPassUs: cpu / passes * 1e6 }
}

export interface PassRun { readonly one: PassFigures, readonly fifty: PassFigures }

/** One server (or the bare one), turn hold 0: one client passing, then 50. */
export async function passRun (bare: boolean): Promise<PassRun> {
  const args = ['--turn-hold', '0']
  const server = bare ? await startBareServer(args) : await startServer(args)
  try {
    const first = await joinTurnClients(server.port, 1)
    const one = await measurePasses(server, first)
    const all = [...first, ...await joinTurnClients(server.port, 49, 1)]
    const fifty = await measurePasses(server, all)
    for (const c of all) c.close()
    return { one, fifty }
  } finally {
    await server.stop()
  }
}

export interface IdleRun {
  readonly turnHoldMs: number
  /** Server CPU while 1,000 clients pass at the turn hold, in cores. */
  readonly idleCores: number
  readonly idlePassesPerS: number
  /** (RSS with the clients − RSS before them) ÷ clients, bytes; no forced GC. */
  readonly rssPerConnection: number
  /** ms from a `message` request to each other client's receipt, every delivery, sorted. */
  readonly deliveries: number[]
  /** Server CPU per broadcast (its whole fan-out), ms. */
  readonly cpuPerBroadcastMs: number
  /** p99 of the server's first broadcast (not among `deliveries`), ms. */
  readonly firstBroadcastP99: number
}

/** 1,000 clients at the default turn hold: idle CPU, RSS per connection, broadcast latency. */
export async function idleRun (bare: boolean, nodeFlags: readonly string[] = []): Promise<IdleRun> {
  const turnHoldMs = DEFAULTS.turnHoldMs
  const server = bare
    ? await startBareServer(['--turn-hold', String(turnHoldMs)])
    : await startServer(['--max-connections', String(IDLE_CLIENTS + 10)], { nodeFlags })
  try {
    await sleep(500)
    const rss0 = server.rss()
    const clients = await joinTurnClients(server.port, IDLE_CLIENTS)
    // Each client starts passing at its own moment of one turn hold, as clients that joined at
    // different times do: not all 1,000 passes in one burst every hold.
    for (const [i, c] of clients.entries()) {
      c.deferRepass = true
      setTimeout(() => c.start(), i * turnHoldMs / clients.length)
    }
    await sleep(2 * WARM_MS + 2 * turnHoldMs)
    const rss1 = server.rss()
    const passes0 = clients.reduce((n, c) => n + c.passes, 0)
    const cpu0 = server.cpuSeconds()
    const t0 = performance.now()
    await sleep(Math.ceil(IDLE_MEASURE_MS / turnHoldMs) * turnHoldMs)
    const seconds = (performance.now() - t0) / 1000
    const idleCores = (server.cpuSeconds() - cpu0) / seconds
    const idlePassesPerS = (clients.reduce((n, c) => n + c.passes, 0) - passes0) / seconds

    // Broadcast: the sender stops passing; everyone else sits in held passes.
    const first = await broadcasts(server, clients, 1)
    const { deliveries, serverSeconds } = await broadcasts(server, clients, BROADCASTS)
    for (const c of clients) c.close()
    deliveries.sort((a, b) => a - b)
    return { turnHoldMs, idleCores, idlePassesPerS, rssPerConnection: (rss1 - rss0) / IDLE_CLIENTS, deliveries, cpuPerBroadcastMs: serverSeconds / BROADCASTS * 1000, firstBroadcastP99: percentile(first.deliveries.sort((a, b) => a - b), 99) }
  } finally {
    await server.stop()
  }
}

/** Every wait of a broadcast is bounded: one that does not end fails the bench instead of hanging it. */
const PHASE_MS = 30_000

/**
 * `count` broadcasts: the first client stops passing and sends a `message`
 * while every other one sits in a held pass; ms from each send to each other
 * client's receipt of `["messages", …]`, and the server CPU spent on them.
 */
export async function broadcasts (server: Listening, clients: readonly TurnClient[], count: number): Promise<{ deliveries: number[], serverSeconds: number }> {
  const [sender, ...listeners] = clients
  await sender.stop()
  const deliveries: number[] = []
  let serverSeconds = 0
  for (let i = 0; i < count; i++) {
    await sleep(100 + (i % 5) * 17) // not in step with the turn hold
    let received = 0
    let t = 0
    const all = new Promise<void>((resolve) => {
      for (const l of listeners) {
        l.onMessages = () => {
          deliveries.push(performance.now() - t)
          l.passing = false
          l.onMessages = null
          if (++received === listeners.length) resolve()
        }
      }
    })
    const answered = new Promise<void>((resolve) => { sender.onYours = () => { sender.onYours = null; resolve() } })
    // Each listener holds the turn once it has the broadcast, and all pass again once all have it:
    // this one process's 999 writes would otherwise delay its own reads, and so the receipts it times.
    // (One that holds the turn when the broadcast comes gets it on its pass, as it would.)
    const cpuBefore = server.cpuSeconds()
    t = performance.now()
    sender.send(['message', `broadcast ${i}`])
    await within(PHASE_MS, `broadcast ${i}: all ${listeners.length} listeners to receive it`, all)
    await within(PHASE_MS, `broadcast ${i}: the sender's "yours"`, answered)
    serverSeconds += server.cpuSeconds() - cpuBefore
    for (const l of listeners) l.start()
    // Its own messages notification: take it, then hold the turn again.
    const again = new Promise<void>((resolve) => { sender.onYours = () => { sender.onYours = null; resolve() } })
    sender.send('yours')
    await within(PHASE_MS, `broadcast ${i}: the sender's own messages and "yours"`, again)
  }
  return { deliveries, serverSeconds }
}

export { percentile }
