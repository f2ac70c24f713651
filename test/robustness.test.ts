/**
 * Issue 12 over real TCP: one bad or hostile client never hurts the others
 * (contract revision 2, §1–§4, §6).
 */
import { connect } from 'node:net'
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { FrameDecoder } from '../protocol/decoder.ts'
import { join, T0, WireClient } from './helpers/wire-client.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'
import { pass, request } from './helpers/turns.ts'
import { expectUsable } from './helpers/relay-peers.ts'

const PROJECT = 'Test Film'
let server: TestServer
const clients: WireClient[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  await server?.close()
})

async function start (o: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  server = await startTestServer(o)
  return server
}
async function joined (o: Parameters<typeof join>[2] = {}): Promise<WireClient> {
  const j = await join(server.port, PROJECT, o)
  clients.push(j.client)
  return j.client
}
async function raw (): Promise<WireClient> {
  const c = await WireClient.connect(server.port)
  clients.push(c)
  return c
}
/** Waits until the server has dropped closed connections. */
async function settle (count: number): Promise<void> {
  for (let i = 0; i < 500 && server.connectionCount() !== count; i++) await new Promise((r) => setTimeout(r, 10))
  expect(server.connectionCount()).toBe(count)
}
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
    const s = connect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true })
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
