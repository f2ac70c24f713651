/**
 * §5 revision 2 over real TCP with real files: manifests of entry objects
 * relayed as they are, resumed files (`[path, offset]` and the 4-element
 * header) with every check, `["missing", folder, reason]` → `no_such_folder`,
 * and bad getlist entries.
 */
import { randomBytes } from 'node:crypto'
import { appendFile, open, readFile, stat, writeFile } from 'node:fs/promises'
import { join as joinPath } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { WireClient } from './helpers/wire-client.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'
import { expectClosedForProtocol, expectError, joinClients, passToGive, waitUntil } from './helpers/relay-wire.ts'
import { deliveredUntilYours, expectUsable, expectYours, MiB, removeTempDirs, sha256, tempDir, writeTree } from './helpers/relay-peers.ts'
import { encodeBinary, encodeJson, type JsonValue } from '../protocol/frame.ts'

let server: TestServer
const clients = async (...names: string[]): Promise<WireClient[]> => await joinClients(server.port, ...names)
afterEach(async () => {
  await server?.close()
  await removeTempDirs()
})

const relayCount = (): number => server.coordinator.getSnapshot().context.relays.size

/** T asks G for `folder`; G passes, gets the give and answers it with `answer`. */
async function askAndAnswer (g: WireClient, t: WireClient, answer: JsonValue, folder = '/chr/Moria'): Promise<void> {
  const before = relayCount()
  t.send(['get', g.userId, folder])
  await waitUntil(`${before + 1} relays`, () => relayCount() === before + 1)
  expect(await passToGive(g)).toEqual(['give', folder])
  g.send(answer)
}

const failedLine = (): string | undefined => server.lines.find((l) => l.startsWith('relay failed | '))

/** Sends `path` of `root` from `offset` in 256 KiB frames; returns the bytes sent. */
async function sendBytes (g: WireClient, file: string, offset: number): Promise<number> {
  const fh = await open(file, 'r')
  try {
    const size = (await fh.stat()).size
    let at = offset
    while (at < size) {
      const buf = Buffer.allocUnsafe(Math.min(256 * 1024, size - at))
      await fh.read(buf, 0, buf.byteLength, at)
      g.sendBinary(buf)
      at += buf.byteLength
    }
    return size - offset
  } finally {
    await fh.close()
  }
}

/** T reads a header and the bytes it announces, appending them to `file`; returns the header. */
async function receiveInto (t: WireClient, file: string): Promise<JsonValue[]> {
  const h = await t.recv()
  if (!Array.isArray(h) || h[0] !== 'file') throw new Error(`expected a file header, got ${JSON.stringify(h)}`)
  let left = (h[2] as number) - (h.length === 4 ? h[3] as number : 0)
  if (h.length === 3) await writeFile(file, new Uint8Array(0))
  while (left > 0) {
    const f = await t.frame()
    if (f.kind !== 'binary') throw new Error(`expected bytes, got ${JSON.stringify(f.value)}`)
    await appendFile(file, f.bytes.subarray())
    left -= f.bytes.byteLength
  }
  return h
}

describe('manifest entries (§5 rev 2)', () => {
  it('a manifest of entry objects and hash strings reaches T exactly as G sent it', async () => {
    server = await startTestServer()
    const [g, t] = await clients('giver', 'taker')
    const manifest = {
      'shot/0001.png': { hash: 'a'.repeat(64), size: 10, mtime: 1733000000.123, mode: 0o644 },
      'shot/render.sh': { hash: 'b'.repeat(64), size: 0, mtime: 0, mode: 0o755, 'x-studio': { note: ['kept', 1, null] } },
      'old.txt': 'c'.repeat(64),
      'bare.txt': { hash: '' }
    }
    await askAndAnswer(g, t, manifest)
    expect(await t.recv()).toEqual(manifest)
    t.send([])
    expect(await g.recv()).toEqual([])
    await expectYours(g)
    await expectYours(t)
    await expectUsable([g, t])
  })

  it('a bad entry (size, mode, mtime, hash) closes G for protocol; T gets relay_failed', async () => {
    server = await startTestServer()
    const entries: JsonValue[] = [{ hash: 'h', size: -1 }, { hash: 'h', mode: 1.5 }, { hash: 'h', mtime: 'today' }, { size: 3 }, { hash: 3 }]
    for (const entry of entries) {
      const [g, t] = await clients('giver', 'taker')
      await askAndAnswer(g, t, { 'a.bin': entry })
      await expectError(t, 'relay_failed')
      await expectYours(t)
      expect(await expectClosedForProtocol(g)).toMatch(/manifest: .*"a\.bin"/)
      await expectUsable([t])
      t.close()
      await waitUntil('both gone', () => server.connectionCount() === 0)
    }
  })
})

describe('answers in more than one batch', () => {
  it('a taker that answers each file only after the giver has the previous answer: the relay ends with the last answer, not the first', async () => {
    server = await startTestServer()
    const [g, t] = await clients('giver', 'taker')
    const files: Record<string, string> = { 'a.txt': 'alpha\n', 'b.txt': 'bravo\n', 'c.txt': 'charlie\n' }
    await askAndAnswer(g, t, Object.fromEntries(Object.keys(files).map((p) => [p, 'h'])))
    expect(await t.recv()).toEqual({ 'a.txt': 'h', 'b.txt': 'h', 'c.txt': 'h' })
    t.send(Object.keys(files))
    expect(await g.recv()).toEqual(Object.keys(files))
    for (const [path, text] of Object.entries(files)) {
      g.send(['file', path, Buffer.byteLength(text)])
      g.sendBinary(Buffer.from(text))
    }
    for (const path of Object.keys(files)) {
      expect(await t.recv()).toEqual(['file', path, Buffer.byteLength(files[path])])
      const f = await t.frame()
      expect(f.kind === 'binary' ? Buffer.from(f.bytes.subarray()).toString() : f).toBe(files[path])
      t.send(['ok', path])
      // The next answer leaves only once the giver has this one: one answer per batch.
      expect(await g.recv()).toEqual(['ok', path])
    }
    await expectYours(g)
    await expectYours(t)
    await expectUsable([g, t])
  })
})

describe('bytes where a message is due', () => {
  it('bytes instead of a manifest: G is closed for protocol, T gets relay_failed', async () => {
    server = await startTestServer()
    const [g, t] = await clients('giver', 'taker')
    t.send(['get', g.userId, '/chr/Moria'])
    await waitUntil('the relay', () => relayCount() === 1)
    expect(await passToGive(g)).toEqual(['give', '/chr/Moria'])
    g.sendBinary(new Uint8Array(8))
    expect(await expectError(t, 'relay_failed')).toMatch(/instead of a manifest: a binary frame where a message was due/)
    await expectYours(t)
    expect(await expectClosedForProtocol(g)).toMatch(/binary frame/)
    await expectUsable([t])
  })

  it('bytes instead of a getlist: T is closed for protocol, G gets [] and its pass goes on', async () => {
    server = await startTestServer()
    const [g, t] = await clients('giver', 'taker')
    await askAndAnswer(g, t, { 'a.txt': 'h' })
    expect(await t.recv()).toEqual({ 'a.txt': 'h' })
    t.sendBinary(new Uint8Array(8))
    expect(await g.recv()).toEqual([])
    await deliveredUntilYours(g)
    expect(await expectClosedForProtocol(t)).toMatch(/taker sent bytes instead of a getlist/)
    await expectUsable([g])
  })
})

describe('a violator\'s later frames', () => {
  it('bytes instead of a getlist, a chat message right behind them: T is closed for protocol and its message is never served', async () => {
    server = await startTestServer()
    const [g, t] = await clients('giver', 'taker')
    await askAndAnswer(g, t, { 'a.txt': 'h' })
    expect(await t.recv()).toEqual({ 'a.txt': 'h' })
    t.sendRaw(Buffer.concat([encodeBinary(new Uint8Array(8)).subarray(), encodeJson(['message', 'after the violation'])]))
    expect(await g.recv()).toEqual([])
    await deliveredUntilYours(g)
    expect(await expectClosedForProtocol(t)).toMatch(/taker sent bytes instead of a getlist/)
    await expectUsable([g])
    expect(server.coordinator.getSnapshot().context.chat.map(([, text]) => text)).not.toContain('after the violation')
  })
})

describe('resumed files (§5 rev 2)', () => {
  it('[path, offset] answered with the 4-element header: only the rest moves, and the whole file checks out', async () => {
    server = await startTestServer()
    const [g, t] = await clients('giver', 'taker')
    const src = await tempDir('src-')
    const dest = await tempDir('dest-')
    const big = randomBytes(3 * MiB + 123)
    await writeTree(src, { 'shot/big.bin': big, 'small.txt': 'small\n' })
    const held = MiB + 7
    await writeFile(joinPath(dest, 'big.bin'), big.subarray(0, held)) // what an interrupted transfer left
    const manifest = {
      'shot/big.bin': { hash: sha256(big), size: big.byteLength },
      'small.txt': { hash: sha256('small\n'), size: 6 }
    }
    await askAndAnswer(g, t, manifest)
    expect(await t.recv()).toEqual(manifest)
    const getlist = [['shot/big.bin', held], 'small.txt']
    t.send(getlist)
    expect(await g.recv()).toEqual(getlist) // relayed as is

    g.send(['file', 'shot/big.bin', big.byteLength, held])
    let sent = await sendBytes(g, joinPath(src, 'shot', 'big.bin'), held)
    g.send(['file', 'small.txt', 6])
    sent += await sendBytes(g, joinPath(src, 'small.txt'), 0)
    expect(sent).toBe(big.byteLength - held + 6)

    expect(await receiveInto(t, joinPath(dest, 'big.bin'))).toEqual(['file', 'shot/big.bin', big.byteLength, held])
    expect(sha256(await readFile(joinPath(dest, 'big.bin')))).toBe(manifest['shot/big.bin'].hash)
    t.send(['ok', 'shot/big.bin'])
    expect(await receiveInto(t, joinPath(dest, 'small.txt'))).toEqual(['file', 'small.txt', 6])
    t.send(['ok', 'small.txt'])
    expect(await g.recv()).toEqual(['ok', 'shot/big.bin'])
    expect(await g.recv()).toEqual(['ok', 'small.txt'])
    await expectYours(t)
    await expectYours(g)
    const served = server.lines.find((l) => l.startsWith('served | /chr/Moria |'))
    expect(served).toContain(`| files | 2 | bytes | ${big.byteLength - held + 6} |`)
    await expectUsable([g, t])
  })

  it('G may answer an offset with the whole file (3-element header), or resume at the very end (offset = size)', async () => {
    server = await startTestServer()
    const [g, t] = await clients('giver', 'taker')
    const dir = await tempDir('files-')
    const content = randomBytes(100_000)
    await writeFile(joinPath(dir, 'changed.bin'), content)
    await askAndAnswer(g, t, { 'changed.bin': sha256(content), 'done.bin': 'h' })
    await t.recv()
    t.send([['changed.bin', 5_000], ['done.bin', 42]])
    await g.recv()
    g.send(['file', 'changed.bin', content.byteLength]) // the giver's file changed: the whole file
    await sendBytes(g, joinPath(dir, 'changed.bin'), 0)
    g.send(['file', 'done.bin', 42, 42])
    const got = joinPath(dir, 'got.bin')
    expect(await receiveInto(t, got)).toEqual(['file', 'changed.bin', content.byteLength])
    expect((await stat(got)).size).toBe(content.byteLength)
    expect(sha256(await readFile(got))).toBe(sha256(content))
    expect(await t.recv()).toEqual(['file', 'done.bin', 42, 42])
    t.send(['ok', 'changed.bin'])
    t.send(['ok', 'done.bin'])
    expect(await g.recv()).toEqual(['ok', 'changed.bin'])
    expect(await g.recv()).toEqual(['ok', 'done.bin'])
    await expectYours(t)
    await expectYours(g)
    await expectUsable([g, t])
  })

  /** Each way a resumed header can be wrong: G is closed for protocol, T gets relay_failed and its turn. */
  const violations: Array<{ name: string, getlist: JsonValue, send: (g: WireClient) => void, why: RegExp }> = [
    {
      name: 'an offset other than the one asked',
      getlist: [['a.bin', 10]],
      send: (g) => { g.send(['file', 'a.bin', 100, 20]); g.sendBinary(new Uint8Array(80)) },
      why: /offset 20 where the taker asked for 10/
    },
    {
      name: 'an offset past the size',
      getlist: [['a.bin', 150]],
      send: (g) => { g.send(['file', 'a.bin', 100, 150]) },
      why: /offset 150 is past its size of 100 bytes/
    },
    {
      name: 'a 4-element header where the whole file was asked',
      getlist: ['a.bin'],
      send: (g) => { g.send(['file', 'a.bin', 100, 0]); g.sendBinary(new Uint8Array(100)) },
      why: /where the taker asked for the whole file/
    },
    {
      name: 'more bytes than size − offset',
      getlist: [['a.bin', 60]],
      send: (g) => { g.send(['file', 'a.bin', 100, 60]); g.sendBinary(new Uint8Array(30)); g.sendBinary(new Uint8Array(30)) },
      why: /binary frames of a\.bin exceed the 40 bytes its header announced/
    },
    {
      name: 'fewer bytes than size − offset, then the next header',
      getlist: [['a.bin', 60], 'b.bin'],
      send: (g) => { g.send(['file', 'a.bin', 100, 60]); g.sendBinary(new Uint8Array(30)); g.send(['file', 'b.bin', 1]); g.sendBinary(new Uint8Array(1)) },
      why: /a JSON frame where 10 bytes of a\.bin were expected/
    }
  ]
  for (const v of violations) {
    it(`${v.name}: G gets a protocol error and is closed, T gets relay_failed`, async () => {
      server = await startTestServer()
      const [g, t] = await clients('giver', 'taker')
      await askAndAnswer(g, t, { 'a.bin': 'h', 'b.bin': 'h' })
      await t.recv()
      t.send(v.getlist)
      expect(await g.recv()).toEqual(v.getlist)
      v.send(g)
      // T may get the header and some bytes first; then the error and its turn.
      while (true) {
        const f = await t.frame()
        if (f.kind === 'json' && Array.isArray(f.value) && f.value[0] === 'error') {
          expect(f.value[1]).toBe('relay_failed')
          expect(f.value[2]).toMatch(v.why)
          break
        }
      }
      await expectYours(t)
      expect(await expectClosedForProtocol(g)).toMatch(v.why)
      await waitUntil('the failure logged', () => failedLine() !== undefined)
      expect(failedLine()).toMatch(v.why)
      await expectUsable([t])
    })
  }
})

describe('a giver without the folder (§5 rev 2)', () => {
  it('["missing", folder, reason]: T gets no_such_folder and its turn; G\'s pass goes on to its next give', async () => {
    server = await startTestServer()
    const [g, t1, t2] = await clients('giver', 't1', 't2')
    t1.send(['get', g.userId, '/chr/Nobody'])
    await waitUntil('1 relay', () => relayCount() === 1)
    t2.send(['get', g.userId, '/chr/Moria'])
    await waitUntil('2 relays', () => relayCount() === 2)
    expect(await passToGive(g)).toEqual(['give', '/chr/Nobody'])
    g.send(['missing', '/chr/Nobody', 'not served here'])
    expect(await expectError(t1, 'no_such_folder')).toBe('not served here')
    await expectYours(t1)
    // The same pass goes on: the second give comes before any "yours".
    expect(await g.recv()).toEqual(['give', '/chr/Moria'])
    g.send({ 'a.txt': 'h' })
    expect(await t2.recv()).toEqual({ 'a.txt': 'h' })
    t2.send([])
    expect(await g.recv()).toEqual([])
    await deliveredUntilYours(g)
    await expectYours(t2)
    expect(server.lines.some((l) => l.startsWith(`relay failed | /chr/Nobody | from | ${g.userId} | to | ${t1.userId} | giver has no such folder: not served here`))).toBe(true)
    expect(g.closed).toBe(false)
    await expectUsable([g, t1, t2])
  })

  it('a "missing" for another folder, or without a reason, is a protocol violation', async () => {
    server = await startTestServer()
    for (const answer of [['missing', '/chr/Other', 'x'], ['missing', '/chr/Moria'], ['missing', '/chr/Moria', 7]] as JsonValue[]) {
      const [g, t] = await clients('giver', 'taker')
      await askAndAnswer(g, t, answer)
      await expectError(t, 'relay_failed')
      await expectYours(t)
      expect(await expectClosedForProtocol(g)).toMatch(/missing/)
      await expectUsable([t])
      t.close()
      await waitUntil('both gone', () => server.connectionCount() === 0)
    }
  })
})

describe('bad getlist entries (§5 rev 2)', () => {
  it('a negative or fractional offset, a file listed twice (also as [k, 0] and k): T gets bad_request, G gets []', async () => {
    server = await startTestServer()
    const [g, t] = await clients('giver', 'taker')
    const getlists: JsonValue[] = [
      [['a.txt', -1]], [['a.txt', 1.5]], [['a.txt', '1']], [['a.txt', 0], 'a.txt'], ['a.txt', ['a.txt', 3]], [['a.txt']], [['a.txt', 0, 1]], [['nope.txt', 0]]
    ]
    for (const getlist of getlists) {
      await askAndAnswer(g, t, { 'a.txt': 'h', 'b.txt': { hash: 'h', size: 1 } })
      await t.recv()
      t.send(getlist)
      await expectError(t, 'bad_request')
      await expectYours(t)
      expect(await g.recv()).toEqual([])
      await deliveredUntilYours(g)
      await waitUntil('no relay', () => relayCount() === 0)
    }
    expect(server.lines.filter((l) => l.startsWith('relay failed | ') && l.includes('bad getlist'))).toHaveLength(getlists.length)
    await expectUsable([g, t])
  })
})
