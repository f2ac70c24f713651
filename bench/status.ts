/**
 * What the HTTP side (issue 15) costs the server, and how far behind the
 * status page is. Real server in a child process, clients in this one:
 *  - server CPU per pass with 200 clients passing (turn hold 0), in three
 *    configurations run interleaved (each round starting with the next one), 5 rounds each, medians: (a) `--no-http`,
 *    the bare baseline; (b) HTTP on, nobody watching (the default: metrics
 *    hooks only); (c) HTTP on with a status page open (one server-sent event
 *    stream); reported as ratios to (a);
 *  - the request hook alone (a prom-client counter increment), ns per call,
 *    against (a)'s CPU per pass;
 *  - status lag: from a client's handshake being done to the event stream
 *    carrying the new user, 20 joins, p50 and max.
 *
 * Run alone: `npx tsx bench/status.ts`; with the others: `npm run bench`.
 */
import { createServer } from 'node:net'
import { once } from 'node:events'
import { openEvents } from '../test/helpers/http.ts'
import { join, type WireClient } from '../test/helpers/wire-client.ts'
import { isMain, markdownTable, type Row } from './run.ts'
import { percentile, startServerProcess } from './server-process.ts'
import { joinMany, passLoop } from './turns.ts'
import { StatusBuilder } from '../src/http/status.ts'
import { Telemetry } from '../src/http/telemetry.ts'
import { startTestApp } from '../test/helpers/app.ts'

const CLIENTS = 200
const PASS_SECONDS = 3
const ROUNDS = Number(process.env.STATUS_BENCH_ROUNDS ?? 5)
const JOINS = 20

async function freePort (): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  await new Promise((resolve) => s.close(resolve))
  return port
}

export type Config = 'no-http' | 'http' | 'http+page'

/** Server CPU µs per pass in one configuration. */
export async function cpuPerPass (config: Config): Promise<number> {
  const httpPort = await freePort()
  const server = await startServerProcess(['--turn-hold', '0', ...(config === 'no-http' ? ['--no-http'] : ['--http', String(httpPort)])])
  const close = config === 'http+page' ? openEvents(`http://127.0.0.1:${httpPort}/api/events`, () => {}) : () => {}
  try {
    const clients = await joinMany(server.port, CLIENTS)
    await Promise.all(clients.map(async (c) => { c.send('yours'); while (await c.recv(30_000) !== 'yours') { /* users */ } }))
    const cpu0 = server.cpuSeconds()
    const until = Date.now() + PASS_SECONDS * 1000
    const passes = (await Promise.all(clients.map(async (c) => await passLoop(c, until)))).reduce((a, b) => a + b, 0)
    const cpu = server.cpuSeconds() - cpu0
    for (const c of clients) c.close()
    return cpu / passes * 1e6
  } finally {
    close()
    await server.stop()
  }
}

/** ms from a join's last handshake frame to the event stream naming the user. */
async function statusLag (): Promise<number[]> {
  const httpPort = await freePort()
  const server = await startServerProcess(['--turn-hold', '0', '--http', String(httpPort)])
  let waiting: { id: string, resolve: (at: number) => void } | undefined
  const close = openEvents(`http://127.0.0.1:${httpPort}/api/events`, (json) => {
    if (waiting !== undefined && json.includes(`"id":"${waiting.id}"`)) waiting.resolve(performance.now())
  })
  const lags: number[] = []
  try {
    const clients: WireClient[] = []
    for (let i = 0; i < JOINS; i++) {
      const { client } = await join(server.port, 'Bench', { username: `lag${i}` })
      const joined = performance.now()
      const seen = await new Promise<number>((resolve) => { waiting = { id: client.userId, resolve } })
      lags.push(seen - joined)
      clients.push(client)
    }
    for (const c of clients) c.close()
    return lags
  } finally {
    close()
    await server.stop()
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** ms of CPU to build one status document with CLIENTS users connected, in this process (the page gets one per change, at most 4/s). */
async function buildMs (): Promise<number> {
  const app = await startTestApp(['--no-persist'], 'Bench')
  const clients = await joinMany(app.port, CLIENTS)
  try {
    const builder = new StatusBuilder({ project: 'Bench', version: '0', server: app.server, telemetry: app.telemetry as Telemetry, startedAt: Date.now() })
    for (let i = 0; i < 10; i++) JSON.stringify(await builder.build())
    const builds = 100
    const t0 = process.cpuUsage()
    for (let i = 0; i < builds; i++) JSON.stringify(await builder.build())
    const used = process.cpuUsage(t0)
    return (used.user + used.system) / 1000 / builds
  } finally {
    for (const c of clients) c.close()
    await app.close()
  }
}

/** ns per call of the session's request hook (a prom-client counter increment), in this process. */
function hookNs (): number {
  const telemetry = new Telemetry()
  const calls = 2_000_000
  for (let i = 0; i < 100_000; i++) telemetry.countRequest('pass') // warm up
  const t0 = process.cpuUsage()
  for (let i = 0; i < calls; i++) telemetry.countRequest('pass')
  const used = process.cpuUsage(t0)
  return (used.user + used.system) * 1000 / calls
}

export async function benchStatus (): Promise<Row[]> {
  const runs: Record<Config, number[]> = { 'no-http': [], http: [], 'http+page': [] }
  const configs = Object.keys(runs) as Config[]
  for (let r = 0; r < ROUNDS; r++) {
    // Each round starts with another configuration, so that none is always first or last.
    for (let i = 0; i < configs.length; i++) {
      const config = configs[(r + i) % configs.length]
      runs[config].push(await cpuPerPass(config))
    }
  }
  const base = median(runs['no-http'])
  const row = (config: Config, label: string): Row => ({
    measure: label,
    value: `${median(runs[config]).toFixed(1)} µs/pass`,
    runs: runs[config].map((v) => v.toFixed(1)).join(' / '),
    note: config === 'no-http' ? 'baseline' : `${(median(runs[config]) / base * 100).toFixed(0)} % of (a)`
  })
  const lags = await statusLag()
  const ns = hookNs()
  const build = await buildMs()
  return [
    row('no-http', `(a) server CPU per pass, --no-http, ${CLIENTS} clients`),
    row('http', '(b) same, HTTP side on, nobody watching (default)'),
    row('http+page', '(c) same, one status page open (event stream)'),
    {
      measure: 'request hook (metrics counter) per request',
      value: `${ns.toFixed(0)} ns`,
      runs: 'in-process, 2 M calls',
      note: `${(ns / 1000 / base * 100).toFixed(2)} % of (a)`
    },
    {
      measure: `one status document, ${CLIENTS} users (build + JSON)`,
      value: `${build.toFixed(2)} ms`,
      runs: 'in-process, 100 builds',
      note: `at most 4 a second while a page is open: ≤ ${(build * 4 / 10).toFixed(1)} % of a core`
    },
    {
      measure: 'status lag: join → event stream',
      value: `p50 ${percentile([...lags].sort((a, b) => a - b), 50).toFixed(0)} ms, max ${Math.max(...lags).toFixed(0)} ms`,
      runs: `${JOINS} joins`,
      note: 'pushed on each coordinator change (≥ 50 ms apart), else checked every 250 ms; target ≤ 1000 ms'
    }
  ]
}

if (isMain(import.meta.url)) console.log(markdownTable(await benchStatus()))
