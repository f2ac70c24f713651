/**
 * Issue 12 over real TCP: one bad or hostile client never hurts the others
 * (contract revision 2, §1–§4, §6).
 */
import { connect } from 'node:net'
import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import { FrameDecoder } from '../protocol/decoder.ts'
import { T0, type WireClient } from './helpers/wire-client.ts'
import { PROJECT, serverFixture } from './helpers/fixture.ts'
import { pass, request } from './helpers/turns.ts'
import { deliveredUntilYours, expectUsable } from './helpers/relay-peers.ts'
import { encodeJson } from '../protocol/frame.ts'

const { start, joined, raw, settle, server } = serverFixture()
/** A JSON frame whose payload is `text` as is. */
function jsonFrame (text: string): Uint8Array {
  const payload = Buffer.from(text, 'utf8')
  const frame = Buffer.alloc(5 + payload.byteLength)
  frame.writeUInt32BE(payload.byteLength, 0)
  payload.copy(frame, 5)
  return frame
}

describe('§1 values the server refuses', () => {
  it('a story nested thousands of levels deep closes only its sender; the server lives on', async () => {
    await start()
    const a = await joined({ username: 'a' })
    await pass(a)
    const b = await joined({ username: 'b' })
    await pass(b)
    b.send('story')
    expect(await b.recv()).toBe('story')
    // 12 KB of nesting: parsed fine by JSON.parse, but JSON.stringify of it would overflow the stack.
    b.sendRaw(jsonFrame(`[{"a":${'['.repeat(6000)}1${']'.repeat(6000)}},"2030/01/01-00:00:00"]`))
    expect(await b.recv()).toEqual(['error', 'protocol', expect.stringContaining('256 levels')])
    await b.waitClosed()
    // Nothing was stored: a's story sync shows the initial story.
    expect(await request(a, 'story')).toEqual(['story', ['0.0.0.0:0000', {}], 'yours'])
    await expectUsable([a])
    const c = await joined({ username: 'c' })
    await expectUsable([a, c])
  })

  it('1e400 (Infinity once parsed) is a violation wherever it comes, even in an ack', async () => {
    await start()
    const a = await joined({ username: 'a' })
    await pass(a)
    const texts = ['["message", 1e400]', '[{"camera":[1e400,0]},"2030/01/01-00:00:00"]']
    for (const text of texts) {
      const c = await joined()
      c.sendRaw(jsonFrame(text))
      expect(await c.recv()).toEqual(['error', 'protocol', expect.stringContaining('finite')])
      await c.waitClosed()
    }
    const d = await raw()
    expect(await d.recv()).toBe('username?')
    d.send('d'); await d.recv(); d.send(PROJECT)
    expect(await d.recv()).toBe('story')
    d.send([{}, T0]); await d.recv()
    d.sendRaw(jsonFrame('{"ack": -1e999}'))
    expect(await d.recv()).toEqual(['error', 'protocol', expect.stringContaining('finite')])
    await d.waitClosed()
    await expectUsable([a])
  })
})

describe('§3 busy', () => {
  it('a busy refusal releases its socket even if the client never closes its side', async () => {
    await start({ maxConnections: 1 })
    const a = await joined()
    // A client that keeps its side open after the server's FIN, and keeps writing.
    const s = connect({ port: server().port, host: '127.0.0.1', allowHalfOpen: true })
    await once(s, 'connect')
    const decoder = new FrameDecoder()
    const got: unknown[] = []
    s.on('data', (chunk) => { for (const f of decoder.push(chunk)) if (f.kind === 'json') got.push(f.value) })
    s.on('error', () => {})
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()))
    await once(s, 'end')
    expect(got).toEqual([['error', 'busy', expect.any(String)]])
    // Writes to a socket the server has destroyed are answered by a reset: that is the release.
    const poke = setInterval(() => { if (s.writable) s.write('x') }, 50)
    try {
      await closed
    } finally {
      clearInterval(poke)
    }
    expect(s.destroyed).toBe(true)
    await expectUsable([a])
  })
})

describe('§6 leaving', () => {
  it('an assets notification only when the leaver\'s entries were dropped', async () => {
    await start()
    const a = await joined({ username: 'a' })
    const b = await joined({ username: 'b' })
    const c = await joined({ username: 'c', assets: { '/chr/C': ['c', '2025/01/01-00:00:00'] } })
    await pass(a); await pass(b); await pass(c)
    b.close()
    await settle(2)
    expect(await pass(a)).toEqual(['users', 'yours'])
    // An entry b submitted but c's newer one replaced is not b's any more: still nothing dropped.
    const d = await joined({ username: 'd', assets: { '/chr/C': ['d', '2024/01/01-00:00:00'] } })
    await pass(a); await pass(d)
    d.close()
    await settle(2)
    expect(await pass(a)).toEqual(['users', 'yours'])
    c.close()
    await settle(1)
    expect(await pass(a)).toEqual(['users', 'assets', {}, 'yours'])
  })
})

const HISTORY_START = ['Multiuser Server', 'Server Started']

/** Waits for `c`'s unsent output to stop changing: what the server would read of it, it has read. */
async function writesSettled (c: WireClient): Promise<number> {
  let last = -1
  let same = 0
  for (let i = 0; i < 400 && same < 10; i++) {
    await new Promise((resolve) => setTimeout(resolve, 25))
    const now = c.socket.writableLength
    same = now === last ? same + 1 : 0
    last = now
  }
  return last
}

describe('§4 frames in order', () => {
  it('pipelined requests are served in order, a sync answer and its ack included', async () => {
    await start()
    const a = await joined({ username: 'ann' })
    const ts = '2025/05/05-10:00:00'
    for (const m of [['message', 'one'], 'users', 'story', [{ s: 1 }, ts], 'ack', ['at', '/x', ts], 'yours']) a.send(m)
    const got: unknown[] = []
    for (let yours = 0; yours < 5;) {
      const m = await a.recv()
      got.push(m)
      if (m === 'yours') yours++
    }
    expect(got).toEqual([
      'yours',
      { [a.userId]: { username: 'ann', camera: [0, 0], at: null } }, 'yours',
      'story', [a.userId, { s: 1 }], 'yours',
      'yours',
      'users', ['messages', [HISTORY_START, ['ann', 'one']]], 'yours'
    ])
  })

  it('a whole handshake, the syncs and a first request sent at once', async () => {
    await start()
    const c = await raw()
    for (const m of ['zoe', PROJECT, [{}, T0], true, {}, true, [{}, T0], true, ['message', 'hi']]) c.send(m)
    const got: unknown[] = []
    while (got.filter((m) => m === 'yours').length < 2) got.push(await c.recv())
    expect(got).toEqual(['username?', 'project?', 'story', ['0.0.0.0:0000', {}], 'assets', {}, 'analytics', {}, 'yours', 'yours'])
  })

  it('a frame during a held pass ends the hold, whatever it is; the session goes on', async () => {
    await start({ turnHoldMs: 60_000 })
    const a = await joined()
    await pass(a)
    a.send('yours')
    a.send(['message', 'during the hold'])
    expect(await a.recv()).toBe('yours') // the hold's
    expect(await a.recv()).toBe('yours') // the message's
    a.send('yours')
    a.send('dance')
    expect(await a.recv()).toEqual(['messages', [HISTORY_START, ['tester', 'during the hold']]])
    expect(await a.recv()).toBe('yours')
    expect(await a.recv()).toEqual(['error', 'unknown_request', expect.any(String)])
    expect(await a.recv()).toBe('yours')
  })

  it('reads at most one frame ahead: what a waiting taker pipelines stays in TCP, then is served in order', async () => {
    await start()
    const g = await joined({ username: 'g' })
    const t = await joined({ username: 't' })
    await pass(g); await pass(t)
    t.send(['get', g.userId, '/chr/Moria'])
    for (let i = 0; i < 200 && server().coordinator.getSnapshot().context.relays.size === 0; i++) await new Promise((r) => setTimeout(r, 10))
    // t waits on g (who never passes): 48 MiB of requests, sent without waiting.
    const text = 'x'.repeat(60_000)
    const n = 800
    for (let i = 0; i < n; i++) t.send(['message', text])
    const unsent = await writesSettled(t)
    // The kernel's buffers take a few MiB; the server itself took one frame (and at most one read chunk).
    expect(unsent).toBeGreaterThan(24 * 1024 * 1024)
    expect(t.closed).toBe(false)
    g.close() // the relay fails; t's turn comes back and its requests are served one by one
    expect(await t.recv(10_000)).toEqual(['error', 'relay_failed', expect.any(String)])
    for (let i = 0; i <= n; i++) expect(await t.recv(10_000)).toBe('yours')
    expect(t.socket.writableLength).toBe(0)
  })
})

describe('§4 frames in order, around a relay', () => {
  it('a taker that pipelines its getlist and its next request, and a giver that pipelines its manifest', async () => {
    await start()
    const g = await joined({ username: 'g' })
    const t = await joined({ username: 't' })
    await pass(g); await pass(t)
    // t's get and its getlist at once (the getlist waits, unread, until the relay reads it).
    t.sendRaw(Buffer.concat([encodeJson(['get', g.userId, '/f']), encodeJson(['a.txt'])]))
    for (let i = 0; i < 500 && server().coordinator.getSnapshot().context.relays.size === 0; i++) await new Promise((r) => setTimeout(r, 10))
    // g passes and sends its manifest before the give has even arrived.
    g.sendRaw(Buffer.concat([encodeJson('yours'), encodeJson({ 'a.txt': 'h' })]))
    expect(await g.recv()).toEqual(['give', '/f'])
    expect(await g.recv()).toEqual(['a.txt'])
    g.send(['file', 'a.txt', 3])
    g.sendBinary(new Uint8Array([1, 2, 3]))
    expect(await t.recv()).toEqual({ 'a.txt': 'h' })
    expect(await t.recv()).toEqual(['file', 'a.txt', 3])
    const bytes = await t.frame()
    expect(bytes.kind === 'binary' ? [...bytes.bytes.subarray()] : bytes.value).toEqual([1, 2, 3])
    // Its answer and a request for after the relay, at once: the request goes back to t's session.
    t.sendRaw(Buffer.concat([encodeJson(['ok', 'a.txt']), encodeJson(['message', 'got it'])]))
    expect(await g.recv()).toEqual(['ok', 'a.txt'])
    expect(await t.recv()).toBe('yours') // the relay's end
    expect(await t.recv()).toBe('yours') // the pipelined message's
    expect(await deliveredUntilYours(g)).toEqual({ delivered: [], served: [] })
    expect(await pass(t)).toEqual([['messages', [HISTORY_START, ['t', 'got it']]], 'yours'])
  })
})

describe('§4 output limit', () => {
  it('a client pipelining chat and passes without reading is disconnected past the output limit; others are served', async () => {
    await start({ outputLimit: 2 * 1024 * 1024 })
    const a = await joined({ username: 'a' })
    await pass(a)
    const x = await joined({ username: 'hog' })
    x.socket.pause() // never reads again
    const text = 'y'.repeat(60_000)
    for (let i = 0; i < 100; i++) { x.send(['message', text]); x.send('yours') }
    for (let i = 0; i < 500 && !server().lines.some((l) => l.startsWith('hog | disconnected |')); i++) await new Promise((r) => setTimeout(r, 20))
    const line = server().lines.find((l) => l.startsWith('hog | disconnected |'))
    expect(line).toMatch(/output limit \| \d+ bytes waiting unsent, over the limit of 2097152$/)
    await expectUsable([a])
  })

  it('output that waits unsent for the idle limit disconnects too, even below the output limit', async () => {
    await start({ idleLimitMs: 500, turnHoldMs: 60_000 })
    const x = await joined({ username: 'slow' })
    x.socket.pause()
    const text = 'z'.repeat(60_000)
    for (let i = 0; i < 30; i++) { x.send(['message', text]); x.send('yours') }
    x.send('yours') // nothing pending then: the pass is held, no idle clock runs on the client
    for (let i = 0; i < 500 && !server().lines.some((l) => l.startsWith('slow | disconnected |')); i++) await new Promise((r) => setTimeout(r, 20))
    expect(server().lines.find((l) => l.startsWith('slow | disconnected |'))).toMatch(/output limit \| output waited unsent for the idle limit/)
    const a = await joined({ username: 'a' })
    expect(await request(a, ['message', 'still here'])).toEqual(['yours'])
  })

  it('the chat history is capped in bytes as well as lines (§4 rev 2)', async () => {
    await start({ chatBytes: 200 })
    const a = await joined({ username: 'a' })
    await pass(a)
    for (const m of ['x'.repeat(50), 'y'.repeat(50), 'z'.repeat(50)]) await request(a, ['message', m])
    const got = await pass(a)
    // [["Multiuser Server","Server Started"],["a","yyy…"],["a","zzz…"]] is 151 bytes; with the x line it would be 210.
    expect(got).toEqual([['messages', [HISTORY_START, ['a', 'y'.repeat(50)], ['a', 'z'.repeat(50)]]], 'yours'])
  })
})
