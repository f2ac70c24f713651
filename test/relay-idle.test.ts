/**
 * The idle limit during a relay (§4, §5): only the side the relay waits on is
 * timed. A slow file does not make the taker idle, a slow taker does not make
 * an ack-waiting giver idle; a stuck giver, a taker that never answers and a
 * taker that stops reading are each dropped, and the other side goes on.
 */
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { join, type WireClient } from './helpers/wire-client.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'
import { expectUsable, expectYours, MiB } from './helpers/relay-peers.ts'
import type { JsonValue } from '../protocol/frame.ts'

let server: TestServer
afterEach(async () => { await server?.close() })

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const bytes = (n: number): Uint8Array => new Uint8Array(n).fill(3)

async function pair (idleLimitMs: number): Promise<[WireClient, WireClient]> {
  server = await startTestServer({ idleLimitMs })
  const g = (await join(server.port, 'Test Film', { username: 'giver' })).client
  const t = (await join(server.port, 'Test Film', { username: 'taker' })).client
  return [g, t]
}

/** T gets a folder with `paths` from G, up to the getlist (everything). */
async function startRelay (g: WireClient, t: WireClient, paths: string[]): Promise<void> {
  t.send(['get', g.userId, '/f'])
  while (server.coordinator.getSnapshot().context.relays.size === 0) await sleep(2)
  g.send('yours')
  expect(await g.recv()).toBe('users')
  expect(await g.recv()).toEqual(['give', '/f'])
  const manifest = Object.fromEntries(paths.map((p) => [p, 'h']))
  g.send(manifest)
  expect(await t.recv()).toEqual(manifest)
  t.send(paths)
  expect(await g.recv()).toEqual(paths)
}

/** T reads one whole file: its header and `size` bytes. */
async function takeFile (t: WireClient, path: string, size: number): Promise<void> {
  expect(await t.recv(5_000)).toEqual(['file', path, size])
  let got = 0
  while (got < size) {
    const f = await t.frame(5_000)
    if (f.kind !== 'binary') throw new Error(`expected bytes, got ${JSON.stringify(f.value)}`)
    got += f.bytes.byteLength
  }
}

async function expectError (c: WireClient, code: string): Promise<void> {
  const m = await c.recv()
  expect(Array.isArray(m) && m[0] === 'error' && m[1] === code, `expected ${code}, got ${JSON.stringify(m)}`).toBe(true)
}

describe('relay idle limit', () => {
  it('a file that takes longer than the idle limit to stream does not make the taker idle', async () => {
    const [g, t] = await pair(700)
    await startRelay(g, t, ['slow.bin'])
    g.send(['file', 'slow.bin', 8 * 1024])
    const taking = takeFile(t, 'slow.bin', 8 * 1024)
    for (let i = 0; i < 8; i++) { // 1.6 s in all, a chunk every 200 ms
      g.sendBinary(bytes(1024))
      await sleep(200)
    }
    await taking
    t.send(['ok', 'slow.bin'])
    expect(await g.recv()).toEqual(['ok', 'slow.bin'])
    await expectYours(t)
    await expectYours(g)
    await expectUsable([g, t])
  })

  it('an ack-waiting giver is not idle while a slow taker checks each file', async () => {
    // Taker and giver each take 400 ms of the 700 ms limit: the old per-frame timer counted both (800 ms).
    const [g, t] = await pair(700)
    const paths = ['1.bin', '2.bin', '3.bin']
    await startRelay(g, t, paths)
    const taker = (async () => {
      for (const p of paths) {
        await takeFile(t, p, 10)
        await sleep(400)
        t.send(['ok', p])
      }
      await expectYours(t)
    })()
    for (const p of paths) {
      g.send(['file', p, 10])
      g.sendBinary(bytes(10))
      expect(await g.recv()).toEqual(['ok', p])
      await sleep(400)
    }
    await taker
    await expectYours(g)
    await expectUsable([g, t])
  })

  it('a giver that stops mid-file is dropped: protocol error for G, relay_failed for T', async () => {
    const [g, t] = await pair(300)
    await startRelay(g, t, ['a.bin'])
    g.send(['file', 'a.bin', 100])
    g.sendBinary(bytes(10))
    expect(await t.recv()).toEqual(['file', 'a.bin', 100])
    expect((await t.frame()).kind).toBe('binary')
    await expectError(t, 'relay_failed')
    await expectYours(t)
    await expectError(g, 'protocol')
    await g.waitClosed()
    expect(server.lines.find((l) => l.startsWith('relay failed | '))).toMatch(/giver idle for 0\.3 s/)
    await expectUsable([t])
  })

  it('a taker that never answers is dropped; the giver gets "failed" and its pass goes on', async () => {
    const [g, t] = await pair(300)
    await startRelay(g, t, ['a.bin', 'b.bin'])
    g.send(['file', 'a.bin', 5])
    g.sendBinary(bytes(5))
    await takeFile(t, 'a.bin', 5)
    g.send(['file', 'b.bin', 5])
    g.sendBinary(bytes(5))
    expect(await g.recv()).toEqual(['failed', 'a.bin', 'taker disconnected'])
    expect(await g.recv()).toEqual(['failed', 'b.bin', 'taker disconnected'])
    await expectYours(g)
    const rest: JsonValue[] = []
    while (!t.closed) rest.push(await t.recv().catch(() => 'closed'))
    expect(rest.some((m) => Array.isArray(m) && m[0] === 'error' && m[1] === 'protocol')).toBe(true)
    expect(server.lines.find((l) => l.startsWith('relay failed | '))).toMatch(/taker idle for 0\.3 s with its answer for a\.bin owed/)
    await expectUsable([g])
  })

  it('a taker that stops reading is dropped; the giver finishes', async () => {
    const [g, t] = await pair(500)
    await startRelay(g, t, ['big.bin', 'next.bin'])
    t.socket.pause()
    const chunk = Buffer.alloc(MiB, 1)
    const total = 64 * MiB
    g.send(['file', 'big.bin', total])
    for (let sent = 0; sent < total; sent += MiB) {
      g.sendBinary(chunk)
      if (g.socket.writableNeedDrain) await once(g.socket, 'drain')
    }
    g.send(['file', 'next.bin', 1])
    g.sendBinary(bytes(1))
    expect(await g.recv(10_000)).toEqual(['failed', 'big.bin', 'taker disconnected'])
    expect(await g.recv()).toEqual(['failed', 'next.bin', 'taker disconnected'])
    await expectYours(g)
    expect(server.lines.find((l) => l.startsWith('relay failed | '))).toMatch(/taker read nothing for 0\.5 s/)
    t.socket.resume()
    await t.waitClosed(10_000)
    await expectUsable([g])
  })
})
