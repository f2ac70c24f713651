/**
 * §5 backpressure: a taker that stops reading stalls the giver's writes; the
 * server never holds the file in memory.
 */
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { join } from './helpers/wire-client.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'
import { expectUsable, MiB } from './helpers/relay-peers.ts'

let server: TestServer
afterEach(async () => { await server?.close() })

const TOTAL = 64 * MiB

describe('relay backpressure', () => {
  it('a taker that does not read stalls the giver; the server holds no more than a few MiB', async () => {
    server = await startTestServer()
    const g = (await join(server.port, 'Test Film', { username: 'giver' })).client
    const t = (await join(server.port, 'Test Film', { username: 'taker' })).client
    const chunk = Buffer.alloc(MiB)
    for (let i = 0; i < chunk.byteLength; i++) chunk[i] = (i * 131 + 17) & 0xff
    const expected = createHash('sha256')
    for (let i = 0; i < TOTAL / MiB; i++) expected.update(chunk)
    const hash = expected.digest('hex')

    t.send(['get', g.userId, '/big'])
    while (server.coordinator.getSnapshot().context.relays.size === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    g.send('yours')
    expect(await g.recv()).toBe('users')
    expect(await g.recv()).toEqual(['give', '/big'])
    g.send({ 'big.bin': hash })
    expect(await t.recv()).toEqual({ 'big.bin': hash })
    t.send(['big.bin'])
    expect(await g.recv()).toEqual(['big.bin'])

    // The taker stops reading; the giver pushes 64 MiB from one reused buffer (so its own
    // writable queue costs no memory) until its writes stall.
    t.socket.pause()
    const rss0 = process.memoryUsage().rss
    g.send(['file', 'big.bin', TOTAL])
    let sent = 0
    let stall: { sent: number, writableLength: number, rssGrowth: number } | undefined
    while (sent < TOTAL) {
      g.sendBinary(chunk)
      sent += MiB
      if (!g.socket.writableNeedDrain) continue
      const drained = await Promise.race([
        once(g.socket, 'drain').then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 500))
      ])
      if (drained || stall !== undefined) continue
      stall = { sent, writableLength: g.socket.writableLength, rssGrowth: process.memoryUsage().rss - rss0 }
      t.socket.resume()
      await once(g.socket, 'drain')
    }
    expect(stall, 'the giver never stalled: the server read everything').toBeDefined()
    const s = stall as NonNullable<typeof stall>
    expect(s.sent).toBeLessThan(TOTAL)
    expect(s.writableLength).toBeGreaterThan(0)
    expect(s.rssGrowth).toBeLessThan(64 * MiB)
    console.log(`stalled after ${(s.sent / MiB).toFixed(0)} MiB, giver's queue ${(s.writableLength / MiB).toFixed(1)} MiB, RSS +${(s.rssGrowth / MiB).toFixed(1)} MiB`)

    // Everything arrives, in order, intact.
    expect(await t.recv()).toEqual(['file', 'big.bin', TOTAL])
    const got = createHash('sha256')
    let received = 0
    while (received < TOTAL) {
      const f = await t.frame(10_000)
      if (f.kind !== 'binary') throw new Error(`expected bytes, got ${JSON.stringify(f.value)}`)
      for (const b of f.bytes) got.update(b)
      received += f.bytes.byteLength
    }
    expect(received).toBe(TOTAL)
    expect(got.digest('hex')).toBe(hash)
    t.send(['ok', 'big.bin'])
    expect(await g.recv()).toEqual(['ok', 'big.bin'])
    expect(await t.recv()).toBe('yours')
    expect(await g.recv()).toBe('yours')
    expect(server.lines.some((l) => l.startsWith(`served | /big | from | ${g.userId} | to | ${t.userId} | files | 1 | bytes | ${TOTAL} |`))).toBe(true)
    await expectUsable([g, t])
  })
})
