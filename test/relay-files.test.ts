/**
 * §5 relays of real folders: the giver reads them from disk, the taker writes
 * them into a temp dir and checks SHA-256. Pipelined and ack-waiting givers,
 * partial getlists, parallel relays, one giver serving two takers.
 */
import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { join, type WireClient } from './helpers/wire-client.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'
import {
  expectUsable, giveFolder, listFiles, manifestOf, MiB, pass, removeTempDirs, sameTree, takeFolder, tempDir, writeTree,
  type GiveOptions, type PassResult
} from './helpers/relay-peers.ts'

let server: TestServer
afterEach(async () => {
  await server?.close()
  await removeTempDirs()
})

/** The folder every test serves: nested, empty, exactly one chunk, many chunks, unicode names. */
async function sourceFolder (): Promise<string> {
  const root = await tempDir('src-')
  await writeTree(root, {
    'empty.txt': new Uint8Array(0),
    'one-chunk.bin': randomBytes(MiB),
    'big/multi-chunk.bin': randomBytes(8 * MiB + 12_345),
    'a/b/c/deep.txt': 'deep inside\n',
    'a/b/sibling.json': '{"x": 1}\n',
    'unicode/café ünïcødé/名前 🎬.txt': 'ünïcødé content ✓\n',
    'readme.md': '# Moria\n'
  })
  return root
}

async function waitForRelays (n: number): Promise<void> {
  const deadline = Date.now() + 5_000
  while (server.coordinator.getSnapshot().context.relays.size < n) {
    if (Date.now() > deadline) throw new Error(`fewer than ${n} relays registered`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

async function clients (...names: string[]): Promise<WireClient[]> {
  const out: WireClient[] = []
  for (const username of names) out.push((await join(server.port, 'Test Film', { username })).client)
  return out
}

/** T gets `folder` from G, G serving `src` on its next pass. */
async function relay (g: WireClient, t: WireClient, src: string, dest: string, folder: string, give: GiveOptions = {}) {
  const relaysBefore = server.coordinator.getSnapshot().context.relays.size
  const taking = takeFolder(t, g.userId, folder, dest)
  await waitForRelays(relaysBefore + 1)
  const [taken, passed] = await Promise.all([taking, pass(g, { onGive: (f) => giveFolder(g, src, f, give) })])
  return { taken, passed }
}

describe('relay of real folders', () => {
  it('pipelined giver: nested folders, an empty file, one exact chunk, 8 MiB+, unicode names', async () => {
    server = await startTestServer()
    const [g, t] = await clients('giver', 'taker')
    const src = await sourceFolder()
    const dest = await tempDir('dest-')
    const { taken, passed } = await relay(g, t, src, dest, '/chr/Moria', { mode: 'pipelined' })

    const all = await listFiles(src)
    expect(taken.error).toBeUndefined()
    expect(taken.manifest).toEqual(await manifestOf(src))
    expect([...taken.getlist].sort()).toEqual(all)
    for (const rel of all) expect(taken.results[rel]).toBe('ok')
    expect(await sameTree(src, dest)).toEqual({ missing: [], differ: [] })
    expect(passed.served).toHaveLength(1)
    expect(passed.served[0].answers).toEqual(taken.getlist.map((p) => ['ok', p]))

    const bytes = MiB + 8 * MiB + 12_345 + Buffer.byteLength('deep inside\n{"x": 1}\nünïcødé content ✓\n# Moria\n')
    expect(server.lines).toContain(`serving | /chr/Moria | from | ${g.userId} | to | ${t.userId}`)
    const served = server.lines.find((l) => l.startsWith(`served | /chr/Moria | from | ${g.userId} | to | ${t.userId} | files | ${all.length} | bytes | ${bytes} | seconds | `))
    expect(served, server.lines.join('\n')).toBeDefined()
    await expectUsable([g, t])
  })

  it('ack-waiting giver, 64 KiB chunks; the taker already holds some identical files', async () => {
    server = await startTestServer()
    const [g, t] = await clients('giver', 'taker')
    const src = await sourceFolder()
    const dest = await tempDir('dest-')
    const { readFile } = await import('node:fs/promises')
    const copy = async (rel: string): Promise<Buffer> => await readFile(`${src}/${rel}`)
    await writeTree(dest, {
      'one-chunk.bin': await copy('one-chunk.bin'),
      'a/b/c/deep.txt': await copy('a/b/c/deep.txt'),
      'unicode/café ünïcødé/名前 🎬.txt': await copy('unicode/café ünïcødé/名前 🎬.txt'),
      'readme.md': '# an older readme\n'
    })
    const { taken, passed } = await relay(g, t, src, dest, '/rnd/scene_1/shot_2', { mode: 'ackWaiting', chunk: 64 * 1024 })
    expect(taken.error).toBeUndefined()
    expect([...taken.getlist].sort()).toEqual(['a/b/sibling.json', 'big/multi-chunk.bin', 'empty.txt', 'readme.md'])
    expect(passed.served[0].getlist).toEqual(taken.getlist)
    expect(passed.served[0].answers).toEqual(taken.getlist.map((p) => ['ok', p]))
    expect(await sameTree(src, dest)).toEqual({ missing: [], differ: [] })
    expect(server.lines.some((l) => l.startsWith('served | /rnd/scene_1/shot_2 |') && l.includes('| files | 4 |'))).toBe(true)
    await expectUsable([g, t])
  })

  it('a getlist of nothing: G gets [] and its pass goes on, T gets "yours"', async () => {
    server = await startTestServer()
    const [g, t] = await clients('giver', 'taker')
    const src = await sourceFolder()
    const dest = await tempDir('dest-')
    t.send(['get', g.userId, '/chr/Moria'])
    await waitForRelays(1)
    g.send('yours')
    expect(await g.recv()).toBe('users')
    expect(await g.recv()).toEqual(['give', '/chr/Moria'])
    g.send(await manifestOf(src))
    expect(await t.recv()).toEqual(await manifestOf(src))
    t.send([])
    expect(await g.recv()).toEqual([])
    expect(await g.recv()).toBe('yours')
    expect(await t.recv()).toBe('yours')
    expect(await listFiles(dest)).toEqual([])
    expect(server.lines.some((l) => l.startsWith('served | /chr/Moria |') && l.includes('| files | 0 | bytes | 0 |'))).toBe(true)
    await expectUsable([g, t])
  })

  it('two relays between different pairs run at the same time', async () => {
    server = await startTestServer()
    const [g1, t1, g2, t2] = await clients('g1', 't1', 'g2', 't2')
    const src1 = await sourceFolder()
    const src2 = await tempDir('src2-')
    await writeTree(src2, { 'x/y.txt': 'second folder\n', 'z.bin': randomBytes(3 * MiB + 7) })
    const dest2 = await tempDir('dest2-')

    // Relay 1 is held open: T1 sends its getlist only once relay 2 has finished.
    t1.send(['get', g1.userId, '/one'])
    await waitForRelays(1)
    const giving1 = pass(g1, { onGive: (f) => giveFolder(g1, src1, f, { mode: 'pipelined' }) })
    const manifest1 = await t1.recv()
    expect(manifest1).toEqual(await manifestOf(src1))

    const { taken: taken2 } = await relay(g2, t2, src2, dest2, '/two', { mode: 'ackWaiting' })
    expect(taken2.error).toBeUndefined()
    expect(await sameTree(src2, dest2)).toEqual({ missing: [], differ: [] })

    // Now relay 1 goes on: T1 takes every file, checking each one's bytes.
    const paths = Object.keys(manifest1 as object)
    t1.send(paths)
    const { readFile } = await import('node:fs/promises')
    for (const rel of paths) {
      const h = await t1.recv()
      expect(h).toEqual(['file', rel, (await readFile(`${src1}/${rel}`)).byteLength])
      let got = 0
      const chunks: Buffer[] = []
      while (got < (h as [string, string, number])[2]) {
        const f = await t1.frame()
        if (f.kind !== 'binary') throw new Error('expected bytes')
        got += f.bytes.byteLength
        chunks.push(Buffer.from(f.bytes.subarray()))
      }
      expect(Buffer.concat(chunks).equals(await readFile(`${src1}/${rel}`))).toBe(true)
      t1.send(['ok', rel])
    }
    expect(await t1.recv()).toBe('yours')
    const passed1: PassResult = await giving1
    expect(passed1.served[0].answers).toEqual(paths.map((p) => ['ok', p]))
    await expectUsable([g1, t1, g2, t2])
  })

  it('one giver serves two takers one after the other on one pass', async () => {
    server = await startTestServer()
    const [g, t1, t2] = await clients('giver', 't1', 't2')
    const src = await sourceFolder()
    const [dest1, dest2] = [await tempDir('dest1-'), await tempDir('dest2-')]
    const taking1 = takeFolder(t1, g.userId, '/first', dest1)
    await waitForRelays(1)
    const taking2 = takeFolder(t2, g.userId, '/second', dest2)
    await waitForRelays(2)
    const folders: string[] = []
    const [taken1, taken2, passed] = await Promise.all([
      taking1, taking2,
      pass(g, { onGive: (f) => { folders.push(f); return giveFolder(g, src, f, { mode: f === '/first' ? 'pipelined' : 'ackWaiting' }) } })
    ])
    expect(folders).toEqual(['/first', '/second'])
    expect(passed.served).toHaveLength(2)
    expect(taken1.error).toBeUndefined()
    expect(taken2.error).toBeUndefined()
    expect(await sameTree(src, dest1)).toEqual({ missing: [], differ: [] })
    expect(await sameTree(src, dest2)).toEqual({ missing: [], differ: [] })
    expect(server.lines.filter((l) => l.startsWith('served | /first |') || l.startsWith('served | /second |'))).toHaveLength(2)
    await expectUsable([g, t1, t2])
  })
})
