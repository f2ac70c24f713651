import { createServer, type Server } from 'node:net'
import { once } from 'node:events'
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join as joinPath } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format'
import { startHttp, HttpConfigError } from '../src/http/server.ts'
import type { StatusDoc } from '../src/http/status.ts'
import { giveFolder, pass, removeTempDirs, takeFolder, tempDir, writeTree } from './helpers/relay-peers.ts'
import { startTestApp, type TestApp } from './helpers/app.ts'
import { basic, get, readEvents } from './helpers/http.ts'
import { join } from './helpers/wire-client.ts'

const SECRET = 'sesame-5e1c7-status'
const STORY_MARKER = 'STORY-CONTENT-MARKER-4411'
const ANALYTICS_MARKER = 'ANALYTICS-CONTENT-MARKER-9902'
const FILE_MARKER = 'FILE-BYTES-MARKER-7713'
const TS = '2024/05/01-10:00:00'

async function status (app: TestApp): Promise<StatusDoc> {
  const r = await get(`${app.url}api/status`)
  expect(r.status).toBe(200)
  return JSON.parse(r.body) as StatusDoc
}

async function metrics (app: TestApp): Promise<Map<string, PrometheusFamily>> {
  const r = await get(`${app.url}metrics`)
  expect(r.status).toBe(200)
  expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
  return new Map(parsePrometheusTextFormat(r.body).map((f) => [f.name, f]))
}

const value = (m: Map<string, PrometheusFamily>, name: string, labels: Record<string, string> = {}): number => {
  const family = m.get(name)
  if (family === undefined) throw new Error(`no metric ${name}`)
  const sample = family.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v))
  if (sample?.value === undefined) throw new Error(`no sample of ${name} ${JSON.stringify(labels)}`)
  return Number(sample.value)
}

/** Waits until `check` passes, re-reading with `read` (bounded; for effects with no event to wait on from outside). */
async function until<T> (what: string, read: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await read()
    if (check(v)) return v
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; last: ${JSON.stringify(v).slice(0, 500)}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

afterAll(removeTempDirs)

describe('HTTP side: /api/status, /metrics, nothing sensitive', () => {
  let app: TestApp
  beforeAll(async () => { app = await startTestApp(['--secret', SECRET]) })
  afterAll(async () => { await app.close() })

  it('describes users and relays, counts them in /metrics, and never lets out the secret, file bytes or story/analytics content', async () => {
    const giverRoot = await tempDir('status-giver-')
    const takerRoot = await tempDir('status-taker-')
    const fileBytes = `${FILE_MARKER}\n`.repeat(3000)
    await writeTree(giverRoot, { 'shot_1/a.txt': fileBytes, 'shot_1/b.txt': 'small' })
    const { client: ann } = await join(app.port, 'Test Film', {
      username: 'ann', secret: SECRET, story: [{ text: STORY_MARKER, camera: [3, 4] }, TS], analytics: [{ note: ANALYTICS_MARKER }, TS]
    })
    const { client: bob } = await join(app.port, 'Test Film', { username: 'bob', secret: SECRET })
    ann.send(['at', '/rnd/shot_1', TS])
    expect(await ann.recv()).toBe('yours')
    ann.send(['message', `the secret is ${SECRET}`])
    expect(await ann.recv()).toBe('yours')

    // bob holds the turn without passing: ann's get waits for it, as a relay not started yet.
    const taken = takeFolder(ann, bob.userId, '/shot_1', takerRoot)
    const waiting = await until('a waiting relay', () => status(app), (s) => s.relays.length === 1)
    expect(waiting.relays[0]).toMatchObject({ folder: '/shot_1', giver: bob.userId, taker: ann.userId, started: false, bytesDone: 0, bytesTotal: 0 })
    expect(waiting.users.map((u) => ({ id: u.id, username: u.username, at: u.at, state: u.state }))).toEqual([
      { id: ann.userId, username: 'ann', at: ['/rnd/shot_1', TS], state: 'paused' },
      { id: bob.userId, username: 'bob', at: null, state: 'turnTaking.clientHolds' }
    ])
    const annStatus = waiting.users[0]
    expect(annStatus.camera).toEqual([3, 4])
    expect(Date.parse(annStatus.connectedSince)).toBeLessThanOrEqual(Date.now())
    const bobPending = waiting.users[1].pending.map((p) => p.kind)
    expect(bobPending).toEqual(expect.arrayContaining(['serve', 'at', 'message']))
    expect(waiting.story).toEqual({ owner: ann.userId, timestamp: TS, bytes: Buffer.byteLength(JSON.stringify({ text: STORY_MARKER, camera: [3, 4] })) })
    expect(waiting.machines.session['turnTaking.clientHolds']).toBe(1)
    expect(waiting.machines.session.paused).toBe(1)
    expect(waiting.machines.taker.waitingForGiver).toBe(1)
    expect(waiting.machines.giver.waitingForTurn).toBe(1)
    expect(waiting.chat.at(-1)).toEqual({ username: 'ann', text: 'the secret is [redacted]' })

    // The relay runs: bob passes and serves the folder from disk.
    await pass(bob, { onGive: async (folder) => await giveFolder(bob, joinPath(giverRoot, 'shot_1'), folder) })
    const result = await taken
    expect(result.results).toEqual({ 'a.txt': 'ok', 'b.txt': 'ok' })

    const after = await until('the finished relay', () => status(app), (s) => s.finishedRelays.length === 1)
    expect(after.relays).toEqual([])
    expect(after.finishedRelays[0]).toMatchObject({ folder: '/shot_1', giver: bob.userId, taker: ann.userId, outcome: 'ok', files: 2, bytes: fileBytes.length + 5 })

    const m = await metrics(app)
    expect(m.get('multiuser_users')?.type).toBe('GAUGE')
    expect(value(m, 'multiuser_users')).toBe(2)
    expect(value(m, 'multiuser_connections')).toBe(2)
    expect(m.get('multiuser_passes_total')?.type).toBe('COUNTER')
    expect(value(m, 'multiuser_passes_total')).toBe(1)
    expect(value(m, 'multiuser_requests_total', { kind: 'pass' })).toBe(1)
    expect(value(m, 'multiuser_requests_total', { kind: 'at' })).toBe(1)
    expect(value(m, 'multiuser_requests_total', { kind: 'message' })).toBe(1)
    expect(value(m, 'multiuser_requests_total', { kind: 'get' })).toBe(1)
    expect(value(m, 'multiuser_relays_active')).toBe(0)
    expect(value(m, 'multiuser_relay_bytes_total')).toBe(fileBytes.length + 5)
    expect(value(m, 'multiuser_relays_total', { outcome: 'ok' })).toBe(1)
    expect(value(m, 'multiuser_relays_total', { outcome: 'failed' })).toBe(0)
    expect(m.get('multiuser_output_buffered_bytes')?.type).toBe('GAUGE')
    expect(value(m, 'multiuser_output_buffered_bytes')).toBeGreaterThanOrEqual(0)
    // story, analytics and chat changed: each file is written once (writes run in the background, fsync included).
    const writes = (await until('three timed writes', () => metrics(app), (mm) => Number(mm.get('multiuser_persist_write_seconds')?.metrics[0].count) >= 3))
      .get('multiuser_persist_write_seconds')
    expect(writes?.type).toBe('HISTOGRAM')
    expect(Number(writes?.metrics[0].buckets?.['+Inf'])).toBe(Number(writes?.metrics[0].count))
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds']) {
      expect(m.has(name), name).toBe(true)
    }

    // Everything the HTTP side serves, and the live stream: none of it carries the secret or any content.
    const served = await Promise.all(['', 'api/status', 'api/machines', 'metrics', 'healthz', 'assets/status.js', 'assets/status.css'].map(async (p) => (await get(`${app.url}${p}`)).body))
    const { raw } = await readEvents(`${app.url}api/events`, (s) => s.length >= 1)
    for (const text of [...served, raw]) {
      for (const secretThing of [SECRET, STORY_MARKER, ANALYTICS_MARKER, FILE_MARKER]) expect(text).not.toContain(secretThing)
    }
    expect(raw).toContain('"username":"ann"')
    ann.close()
    bob.close()
  })

  it('answers only to its own host name on loopback (no DNS rebinding)', async () => {
    const port = new URL(app.url).port
    expect((await get(`${app.url}api/status`, { host: `evil.example:${port}` })).status).toBe(403)
    expect((await get(`${app.url}api/status`, { host: `localhost:${port}` })).status).toBe(200)
    const page = await get(app.url)
    expect(page.status).toBe(200)
    expect(page.headers['content-security-policy']).toContain("default-src 'self'")
  })
})

describe('HTTP side: /healthz', () => {
  let app: TestApp
  beforeAll(async () => { app = await startTestApp() })
  afterAll(async () => { await app.close() })

  it('is 200 while healthy, 503 with the reason when the data dir is unusable, 200 again once saving works', async () => {
    const { client } = await join(app.port, 'Test Film', { username: 'ann' })
    client.send(['message', 'first'])
    expect(await client.recv()).toBe('yours')
    await until('chat saved', async () => await readFile(`${app.dataDir}/chat.json`, 'utf8').catch(() => ''), (t) => t.includes('first'))
    expect(await get(`${app.url}healthz`)).toMatchObject({ status: 200, body: '{"status":"ok"}' })

    // As root, chmod does not stop writes: the data dir is replaced by a plain file, which no write gets through.
    await rename(app.dataDir, `${app.dataDir}.away`)
    await writeFile(app.dataDir, 'not a directory')
    const down = await get(`${app.url}healthz`)
    expect(down.status).toBe(503)
    expect(JSON.parse(down.body)).toEqual({ status: 'unhealthy', reasons: [`persistence: the data dir ${app.dataDir} is not a directory`] })

    // A change now fails to save: that is a reason too, until a write works again. Its "yours" waits for the disk (§8).
    client.send(['message', 'second'])
    const failing = await until('a failed write', () => get(`${app.url}healthz`), (r) => r.body.includes('cannot save'))
    expect(failing.status).toBe(503)
    expect((JSON.parse((await get(`${app.url}api/status`)).body) as StatusDoc).persistence.problem).toMatch(/not a directory/)

    await rm(app.dataDir)
    await rename(`${app.dataDir}.away`, app.dataDir)
    expect(await client.recv()).toBe('yours')
    await until('saving works again', () => get(`${app.url}healthz`), (r) => r.status === 200)
    expect(await readFile(`${app.dataDir}/chat.json`, 'utf8')).toContain('second')
    client.close()
  })

  it('is 503 once the server stops accepting clients', async () => {
    await app.server.close()
    const r = await get(`${app.url}healthz`)
    expect(r.status).toBe(503)
    expect(JSON.parse(r.body).reasons).toContain('not accepting clients: the server is stopping')
  })
})

describe('HTTP side: exposed (any address but 127.0.0.1 and ::1)', () => {
  // 127.0.0.2 is loopback, so nothing leaves this machine, but it counts as exposed.
  let app: TestApp
  beforeAll(async () => { app = await startTestApp(['--http-host', '127.0.0.2', '--secret', SECRET]) })
  afterAll(async () => { await app.close() })

  it('refuses every path without the secret, and takes it as Basic password or bearer token', async () => {
    expect(app.url).toMatch(/^http:\/\/127\.0\.0\.2:\d+\/$/)
    for (const path of ['', 'api/status', 'api/events', 'api/machines', 'metrics', 'healthz', 'assets/status.js']) {
      const none = await get(`${app.url}${path}`)
      expect(none.status, path).toBe(401)
      expect(none.headers['www-authenticate']).toMatch(/^Basic realm=/)
      expect(none.body).not.toContain(SECRET)
      expect((await get(`${app.url}${path}`, { authorization: basic('td', 'wrong') })).status).toBe(401)
      expect((await get(`${app.url}${path}`, { authorization: 'Bearer wrong' })).status).toBe(401)
    }
    expect((await get(`${app.url}api/status`, { authorization: basic('td', SECRET) })).status).toBe(200)
    expect((await get(`${app.url}api/status`, { authorization: basic('', SECRET) })).status).toBe(200)
    expect((await get(`${app.url}metrics`, { authorization: `Bearer ${SECRET}` })).status).toBe(200)
    expect((await get(`${app.url}healthz`, { authorization: `Bearer ${SECRET}` })).status).toBe(200)
  })

  it('will not start exposed without a secret', async () => {
    const err = await startHttp({ host: '127.0.0.2', port: 0 }, {} as never, app.log).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(HttpConfigError)
    expect((err as Error).message).toMatch(/--http-host 127\.0\.0\.2 exposes the status page.*--secret/)
  })
})

describe('HTTP side: a taken port', () => {
  let blocker: Server
  let app: TestApp
  beforeAll(async () => {
    blocker = createServer()
    blocker.listen(0, '127.0.0.1')
    await once(blocker, 'listening')
  })
  afterAll(async () => {
    await app?.close()
    blocker.close()
  })

  it('logs one warning and the server runs on without the HTTP side', async () => {
    const port = (blocker.address() as { port: number }).port
    app = await startTestApp(['--http', String(port)])
    expect(app.http).toBeUndefined()
    const warnings = app.log.lines.filter((l) => l.level === 'warn')
    expect(warnings).toEqual([{ level: 'warn', text: `status page | port ${port} is taken | the server runs on without it (pick a port with --http <port>, or --no-http)` }])
    const { client } = await join(app.port, 'Test Film', { username: 'ann' })
    client.send(['message', 'still serving'])
    expect(await client.recv()).toBe('yours')
    client.close()
  })

  it('--no-http starts no HTTP side at all', async () => {
    const quiet = await startTestApp(['--no-http'])
    try {
      expect(quiet.http).toBeUndefined()
      expect(quiet.log.lines.some((l) => l.text.includes('status page'))).toBe(false)
    } finally {
      await quiet.close()
    }
  })
})
