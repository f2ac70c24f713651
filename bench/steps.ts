/**
 * The session machines alone, on XState's own interpreter and with cached
 * steps (src/cached-steps/), in one process and one run: what a session's
 * machine costs per pass and per broadcast recipient, without sockets.
 *
 * 1,000 session machines and the coordinator, each session joined and synced
 * through its real frames, talking to a port that only counts what it is
 * given. Three scenarios, each a fixed number of rounds after a warm-up,
 * the two interpreters interleaved, 3 repetitions each, medians:
 *  - a pass answered at once (turn hold 0, nothing pending): one step, one action;
 *  - a held pass: the pass (into `holding`) and the hold's end (back to
 *    `clientHolds` with `"yours"`): two state changes;
 *  - a broadcast: one session's `message` to the 999 others, each in a held
 *    pass, and each one's pass back into a held pass, per recipient.
 * Both interpreters must make the same number of port calls: a run that
 * does not is reported as an error, not as a figure.
 *
 * Run alone: `npx tsx bench/steps.ts`; with the others: `npm run bench`.
 */
import { createActor, type AnyActorRef } from 'xstate'
import type { JsonValue } from '../protocol/frame.ts'
import { coordinatorMachine } from '../actors/coordinator.ts'
import type { FramePort } from '../actors/ports.ts'
import { sessionMachine } from '../actors/session.ts'
import { withCachedSteps } from '../src/cached-steps/index.ts'
import { isMain, markdownTable, type Row } from './run.ts'

const SESSIONS = 1_000
const T0 = '2030/01/01-00:00:00'
const LONG_MS = 600_000
const REPETITIONS = 3

type Logic = typeof sessionMachine

/** One world: a coordinator and its sessions, on one interpreter. */
class World {
  sent = 0
  readonly coordinator = createActor(coordinatorMachine, { input: { chatLimit: 1_000, relayTimeoutMs: LONG_MS, idleLimitMs: LONG_MS } }).start()
  private readonly port: FramePort = {
    sendJson: () => { this.sent++ },
    drained: async () => {},
    sendBinary: async () => {},
    borrowFrames: () => { throw new Error('no relay in this bench') },
    close: () => {}
  }

  private n = 0
  constructor (private readonly logic: Logic) {}

  /** A session that has passed the handshake and the three syncs. */
  session (turnHoldMs: number): AnyActorRef {
    const i = this.n++
    const s = createActor(this.logic, {
      input: { userId: `127.0.0.1:${i}`, projectName: 'Bench', turnHoldMs, idleLimitMs: LONG_MS, coordinator: this.coordinator, port: this.port }
    }).start()
    for (const v of [`u${i}`, 'Bench', [{}, T0], true, {}, true, [{}, T0], true] as JsonValue[]) s.send(frame(v))
    return s
  }

  stop (sessions: readonly AnyActorRef[]): void {
    for (const s of sessions) s.stop()
    this.coordinator.stop()
  }
}

const frame = (value: JsonValue): { type: 'frame', value: JsonValue } => ({ type: 'frame', value })

interface Scenario {
  readonly name: string
  readonly unit: string
  /** Builds the world's sessions; returns one round and how many units it is. */
  readonly setUp: (w: World) => { round: () => void, units: number, sessions: AnyActorRef[] }
  readonly rounds: number
}

const SCENARIOS: readonly Scenario[] = [
  {
    name: 'pass answered at once (turn hold 0)',
    unit: 'pass',
    rounds: 200,
    setUp: (w) => {
      const s = w.session(0)
      s.send(frame('yours'))
      return { round: () => { for (let i = 0; i < 1_000; i++) s.send(frame('yours')) }, units: 1_000, sessions: [s] }
    }
  },
  {
    name: 'held pass (pass, then the hold ends)',
    unit: 'held pass',
    rounds: 100,
    setUp: (w) => {
      const s = w.session(LONG_MS)
      s.send(frame('yours'))
      s.send({ type: 'turn.hold.over' })
      return { round: () => { for (let i = 0; i < 1_000; i++) { s.send(frame('yours')); s.send({ type: 'turn.hold.over' }) } }, units: 1_000, sessions: [s] }
    }
  },
  {
    name: `broadcast to ${SESSIONS - 1} sessions in held passes`,
    unit: 'recipient, with its pass back',
    rounds: 30,
    setUp: (w) => {
      const sessions = Array.from({ length: SESSIONS }, () => w.session(LONG_MS))
      const [sender, ...listeners] = sessions
      // Everyone's `users` news (the joins), then a held pass each; the sender passes too and takes the turn back with its message.
      for (const l of listeners) l.send(frame('yours'))
      for (const l of listeners) l.send(frame('yours'))
      sender.send(frame('yours'))
      let k = 0
      return {
        round: () => {
          sender.send(frame(['message', `m${k++}`]))
          for (const l of listeners) l.send(frame('yours'))
          sender.send(frame('yours'))
        },
        units: listeners.length,
        sessions
      }
    }
  }
]

interface Measure { readonly usPerUnit: number, readonly sent: number }

function measure (scenario: Scenario, logic: Logic): Measure {
  const w = new World(logic)
  const { round, units, sessions } = scenario.setUp(w)
  for (let i = 0; i < Math.ceil(scenario.rounds / 5); i++) round()
  const sent0 = w.sent
  const c0 = process.cpuUsage()
  for (let i = 0; i < scenario.rounds; i++) round()
  const c = process.cpuUsage(c0)
  const sent = w.sent - sent0
  w.stop(sessions)
  return { usPerUnit: (c.user + c.system) / scenario.rounds / units, sent }
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

export async function benchSteps (): Promise<Row[]> {
  const cached = withCachedSteps(sessionMachine)
  const rows: Row[] = []
  for (const scenario of SCENARIOS) {
    const stock: Measure[] = []
    const fast: Measure[] = []
    for (let r = 0; r < REPETITIONS; r++) {
      // Each first in turn, so that neither always runs on a warmer (or more fragmented) heap.
      if (r % 2 === 0) {
        stock.push(measure(scenario, sessionMachine))
        fast.push(measure(scenario, cached))
      } else {
        fast.push(measure(scenario, cached))
        stock.push(measure(scenario, sessionMachine))
      }
    }
    if (fast.some((m, i) => m.sent !== stock[i].sent)) {
      throw new Error(`${scenario.name}: the two interpreters sent different numbers of frames (${stock.map((m) => m.sent).join('/')} vs ${fast.map((m) => m.sent).join('/')})`)
    }
    const a = median(stock.map((m) => m.usPerUnit))
    const b = median(fast.map((m) => m.usPerUnit))
    rows.push({
      scenario: scenario.name,
      "XState's interpreter": `${a.toFixed(2)} µs`,
      'cached steps': `${b.toFixed(2)} µs`,
      'cached ÷ XState': `${(b / a).toFixed(2)} ×`,
      note: `CPU per ${scenario.unit}; runs ${stock.map((m) => m.usPerUnit.toFixed(2)).join(' / ')} vs ${fast.map((m) => m.usPerUnit.toFixed(2)).join(' / ')} µs; ${stock[0].sent} frames a run on both`
    })
  }
  return rows
}

if (isMain(import.meta.url)) {
  benchSteps().then((rows) => {
    console.log(markdownTable(rows))
    process.exit(0)
  }).catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
