/**
 * Turn-taking at scale (§4), against the real server in a child process:
 *  - 1,000 clients connected, each passing its turn as fast as the server
 *    answers (turn hold 0) for a fixed time: passes/s, server CPU, and server
 *    RSS per connection (RSS with 1,000 clients − RSS before, ÷ 1,000, both
 *    read after a full GC in the server: bench/gc-wrapper.ts);
 *  - broadcast latency with 200 clients sitting in held passes (turn hold
 *    250 ms, the default): from one client's `message` request to each
 *    client receiving the `messages` notification, p50/p99 per delivery and
 *    for the last client of each broadcast.
 * Targets: RSS ≤ 100 KiB per connection; broadcast p99 ≤ 50 ms at 200 clients.
 *
 * Run alone: `npx tsx bench/turns.ts`; with the others: `npm run bench`.
 */
import { join } from '../test/helpers/wire-client.ts'
import type { WireClient } from '../test/helpers/wire-client.ts'
import { isMain, markdownTable, type Row } from './run.ts'
import { percentile, startServerProcess } from './server-process.ts'

const CLIENTS = 1_000
const PASS_SECONDS = 5
const BROADCAST_CLIENTS = 200
const BROADCASTS = 50

export async function joinMany (port: number, n: number): Promise<WireClient[]> {
  const clients: WireClient[] = []
  for (let i = 0; i < n; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, n - i) }, async (_, j) =>
      (await join(port, 'Bench', { username: `u${i + j}` })).client))
    clients.push(...batch)
  }
  return clients
}

export async function passLoop (client: WireClient, until: number): Promise<number> {
  let passes = 0
  while (Date.now() < until) {
    client.send('yours')
    while (await client.recv(30_000) !== 'yours') { /* notifications */ }
    passes++
  }
  return passes
}

async function benchPasses (): Promise<Row[]> {
  const server = await startServerProcess(['--turn-hold', '0', '--max-connections', String(CLIENTS + 10)], { gc: true })
  try {
    await new Promise((resolve) => setTimeout(resolve, 500))
    const rssBefore = server.rss()
    const gcBefore = await server.rssAfterGc()
    const settle = async (cs: WireClient[]): Promise<void> => {
      // Take the pending users notifications so every queue is empty, then let the server idle.
      await Promise.all(cs.map(async (c) => { c.send('yours'); while (await c.recv(30_000) !== 'yours') { /* users */ } }))
      await new Promise((resolve) => setTimeout(resolve, 1_000))
    }
    const clients = await joinMany(server.port, CLIENTS)
    await settle(clients)
    const rssHeld = server.rss()
    const gcHeld = await server.rssAfterGc()
    const cpu0 = server.cpuSeconds()
    const t0 = performance.now()
    const passes = (await Promise.all(clients.map(async (c) => await passLoop(c, Date.now() + PASS_SECONDS * 1000)))).reduce((a, b) => a + b, 0)
    const seconds = (performance.now() - t0) / 1000
    const cpu = server.cpuSeconds() - cpu0
    const rssAfter = server.rss()
    for (const c of clients) c.close()
    return [
      { measure: 'clients connected', value: CLIENTS, note: '' },
      { measure: 'passes/s served', value: Math.round(passes / seconds), note: `turn hold 0, ${PASS_SECONDS} s, all clients passing` },
      { measure: 'server CPU (cores busy)', value: (cpu / seconds).toFixed(2), note: 'user+system ÷ wall time, while passing' },
      { measure: 'server CPU per pass (µs)', value: (cpu / passes * 1e6).toFixed(1), note: '' },
      { measure: 'server RSS per connection (KiB), after a full GC', value: ((gcHeld - gcBefore) / CLIENTS / 1024).toFixed(1), note: `(RSS at ${CLIENTS} − RSS at 0) ÷ ${CLIENTS}, each after gc(); target ≤ 100` },
      { measure: 'server RSS per connection (KiB), no GC', value: ((rssHeld - rssBefore) / CLIENTS / 1024).toFixed(1), note: 'includes garbage in V8\'s young generation, a fixed cost' },
      { measure: 'server RSS per connection (KiB), after passing', value: ((rssAfter - rssBefore) / CLIENTS / 1024).toFixed(1), note: `RSS before clients ${(rssBefore / 2 ** 20).toFixed(0)} MiB` }
    ]
  } finally {
    await server.stop()
  }
}

async function benchBroadcast (historyLines = 0): Promise<Row[]> {
  const server = await startServerProcess(['--turn-hold', '250'])
  try {
    if (historyLines > 0) {
      // Fill the history before the listeners join, so they are not sent each step of it.
      const filler = (await join(server.port, 'Bench', { username: 'filler' })).client
      for (let i = 0; i < historyLines; i++) {
        filler.send(['message', `line ${i}: the quick brown fox jumps over the lazy dog`])
        while (await filler.recv(30_000) !== 'yours') { /* notifications */ }
      }
      filler.close()
    }
    const clients = await joinMany(server.port, BROADCAST_CLIENTS)
    const sender = clients[0]
    const listeners = clients.slice(1)
    const perDelivery: number[] = []
    const lastOfEach: number[] = []
    let stop = false
    let t0 = 0
    let received = 0
    let allReceived: (() => void) | null = null
    // Every listener sits in a held pass; when a messages notification arrives it records the latency.
    const loops = listeners.map(async (c) => {
      while (!stop) {
        c.send('yours')
        while (true) {
          const v = await c.recv(30_000)
          if (Array.isArray(v) && v[0] === 'messages') {
            perDelivery.push(performance.now() - t0)
            if (++received === listeners.length) allReceived?.()
          }
          if (v === 'yours') break
        }
      }
    })
    // Let everyone take the users notification and settle into a held pass.
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    sender.send('yours'); while (await sender.recv() !== 'yours') { /* users */ }
    const cpu0 = server.cpuSeconds()
    for (let i = 0; i < BROADCASTS; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      received = 0
      const done = new Promise<void>((resolve) => { allReceived = resolve })
      t0 = performance.now()
      sender.send(['message', `broadcast ${i}`])
      await done
      lastOfEach.push(performance.now() - t0)
      while (await sender.recv() !== 'yours') { /* its own reply */ }
      sender.send('yours'); while (await sender.recv() !== 'yours') { /* its own messages notification */ }
    }
    const cpuPerBroadcast = (server.cpuSeconds() - cpu0) / BROADCASTS
    stop = true
    for (const c of clients) c.close()
    await Promise.allSettled(loops)
    perDelivery.sort((a, b) => a - b)
    lastOfEach.sort((a, b) => a - b)
    const history = historyLines > 0 ? `, history of ${historyLines} lines` : ''
    return [
      { measure: `broadcast to ${BROADCAST_CLIENTS} clients${history}, per delivery p50 (ms)`, value: percentile(perDelivery, 50).toFixed(2), note: `${BROADCASTS} broadcasts, turn hold 250 ms` },
      { measure: `per delivery p99 (ms)${history}`, value: percentile(perDelivery, 99).toFixed(2), note: historyLines > 0 ? 'the whole history goes to every client' : 'target ≤ 50' },
      { measure: `last client of a broadcast p50 (ms)${history}`, value: percentile(lastOfEach, 50).toFixed(2), note: '' },
      { measure: `last client of a broadcast p99 (ms)${history}`, value: percentile(lastOfEach, 99).toFixed(2), note: '' },
      { measure: `server CPU per broadcast (ms)${history}`, value: (cpuPerBroadcast * 1000).toFixed(1), note: 'the clients, in one bench process, parse every copy' }
    ]
  } finally {
    await server.stop()
  }
}

export async function benchTurns (): Promise<Row[]> {
  return [...await benchPasses(), ...await benchBroadcast(), ...await benchBroadcast(10_000)]
}

if (isMain(import.meta.url)) {
  benchTurns().then((rows) => console.log(markdownTable(rows)), (err: unknown) => { console.error(err); process.exitCode = 1 })
}
