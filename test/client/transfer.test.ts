import { randomBytes } from 'node:crypto'
import { chmod, readFile, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { GetError, type GiveProgress } from '../../src/client/index.ts'
import type { WireClient } from '../helpers/wire-client.ts'
import { awaitGive, listTree, Scene, sha256, writeTree } from './helpers.ts'

const scene = new Scene()
afterEach(async () => { await scene.cleanup() })
const raw = async (username: string): Promise<WireClient> => await scene.raw(username)

/** Every byte a reference giver sent for its gives, added up from its `give` progress. */
function bytesSentBy (c: { on: (e: 'give', l: (p: GiveProgress) => void) => unknown }): () => number {
  let sent = 0
  c.on('give', (p) => { if (p.stage === 'done') sent += p.bytesDone })
  return () => sent
}

const MiB = 1024 * 1024

/** A giver that dies after sending `sent` bytes of `content` as `shot/big.bin`: the taker keeps a part of that many bytes. */
async function interruptedGet (takerRoot: string, content: Buffer, sent: number): Promise<void> {
  const t = await scene.client('tom', { root: takerRoot })
  const dying = await raw('dying')
  const got = t.get(dying.userId, '/shot')
  await awaitGive(dying)
  dying.send({ 'big.bin': { hash: sha256(content), size: content.length } })
  expect(await dying.recv()).toEqual(['big.bin'])
  dying.send(['file', 'big.bin', content.length])
  for (let at = 0; at < sent; at += MiB) dying.sendBinary(content.subarray(at, Math.min(sent, at + MiB)))
  // The giver's socket ends after its last byte: the server relays every byte it read, then relay_failed.
  dying.socket.end()
  await expect(got).rejects.toMatchObject({ code: 'relay_failed' })
  t.destroy()
}

describe('resume', () => {
  it('after the giver dies mid-file, the next get asks only for the remainder and checks the whole file', async () => {
    await scene.start()
    const takerRoot = await scene.dir()
    const giverRoot = await scene.dir()
    const content = randomBytes(6 * MiB + 1234)
    const half = 3 * MiB
    await interruptedGet(takerRoot, content, half)
    const part = join(takerRoot, 'shot/.big.bin.vcmu-part')
    const kept = (await stat(part)).size
    expect(kept).toBe(half)

    await writeTree(giverRoot, { 'shot/big.bin': content })
    const g = await scene.client('gina', { root: giverRoot })
    const sent = bytesSentBy(g)
    const t = await scene.client('tom2', { root: takerRoot })
    const result = await t.get(g.userId, '/shot')
    expect(result).toMatchObject({ files: 1, resumed: 1, bytesResumed: kept, bytes: content.length - kept, failed: [] })
    expect(sent()).toBe(content.length - kept)
    expect(Buffer.compare(await readFile(join(takerRoot, 'shot/big.bin')), content)).toBe(0)
    expect(await listTree(join(takerRoot, 'shot'))).toEqual(['big.bin']) // the part is gone
  })

  it('is refused when the giver\'s file changed: the useless part goes and the whole file comes', async () => {
    await scene.start()
    const takerRoot = await scene.dir()
    const giverRoot = await scene.dir()
    const old = randomBytes(4 * MiB)
    await interruptedGet(takerRoot, old, 2 * MiB)
    const changed = randomBytes(4 * MiB)
    await writeTree(giverRoot, { 'shot/big.bin': changed })
    const g = await scene.client('gina', { root: giverRoot })
    const sent = bytesSentBy(g)
    const t = await scene.client('tom2', { root: takerRoot })
    const result = await t.get(g.userId, '/shot')
    expect(result).toMatchObject({ files: 1, resumed: 0, bytesResumed: 0, bytes: changed.length, failed: [] })
    expect(sent()).toBe(changed.length)
    expect(Buffer.compare(await readFile(join(takerRoot, 'shot/big.bin')), changed)).toBe(0)
    expect(await listTree(join(takerRoot, 'shot'))).toEqual(['big.bin'])
  })

  it('a corrupted part fails the whole-file check, is removed, and the next get starts over', async () => {
    await scene.start()
    const takerRoot = await scene.dir()
    const giverRoot = await scene.dir()
    const content = randomBytes(2 * MiB)
    await interruptedGet(takerRoot, content, MiB)
    const part = join(takerRoot, 'shot/.big.bin.vcmu-part')
    await writeFile(part, randomBytes(MiB)) // same length, other bytes
    await writeTree(giverRoot, { 'shot/big.bin': content })
    const g = await scene.client('gina', { root: giverRoot })
    const t = await scene.client('tom2', { root: takerRoot })
    const first = await t.get(g.userId, '/shot')
    expect(first.files).toBe(0)
    expect(first.failed).toEqual([{ path: 'big.bin', reason: expect.stringContaining('hash mismatch after resuming') }])
    expect(await listTree(join(takerRoot, 'shot'))).toEqual([])
    expect(await t.get(g.userId, '/shot')).toMatchObject({ files: 1, resumed: 0, failed: [] })
    expect(Buffer.compare(await readFile(join(takerRoot, 'shot/big.bin')), content)).toBe(0)
  })

  it('a part of a file the giver no longer offers is removed by the next get', async () => {
    await scene.start()
    const takerRoot = await scene.dir()
    const giverRoot = await scene.dir()
    await interruptedGet(takerRoot, randomBytes(2 * MiB), MiB)
    expect(await listTree(join(takerRoot, 'shot'))).toEqual(['.big.bin.vcmu-part'])
    await writeTree(giverRoot, { 'shot/other.txt': 'other' })
    const g = await scene.client('gina', { root: giverRoot })
    const t = await scene.client('tom2', { root: takerRoot })
    expect(await t.get(g.userId, '/shot')).toMatchObject({ files: 1, failed: [] })
    expect(await listTree(join(takerRoot, 'shot'))).toEqual(['other.txt'])
  })

  it('an unrecorded part beside a file already here, or beside a new file, is removed by the next get', async () => {
    await scene.start()
    const takerRoot = await scene.dir()
    const giverRoot = await scene.dir()
    await writeTree(giverRoot, { 'shot/same.txt': 'same', 'shot/new.txt': 'new' })
    const g = await scene.client('gina', { root: giverRoot })
    const t = await scene.client('tom', { root: takerRoot })
    await writeTree(takerRoot, { 'shot/same.txt': 'same', 'shot/.same.txt.vcmu-part': 'sa', 'shot/.new.txt.vcmu-part': 'ne' })
    expect(await t.get(g.userId, '/shot')).toMatchObject({ files: 1, skipped: 1, resumed: 0, failed: [] })
    expect(await listTree(join(takerRoot, 'shot'))).toEqual(['new.txt', 'same.txt'])
    expect(await readFile(join(takerRoot, 'shot/new.txt'), 'utf8')).toBe('new')
  })

  it('the giver answers an offset with the whole file when its file changed after the manifest', async () => {
    await scene.start()
    const giverRoot = await scene.dir()
    await writeTree(giverRoot, { 'shot/a.bin': 'first version' })
    const g = await scene.client('gina', { root: giverRoot })
    const t = await raw('taker')
    t.send(['get', g.userId, '/shot'])
    const manifest = await t.recv() as Record<string, { size: number }>
    expect(manifest['a.bin'].size).toBe(13)
    await writeFile(join(giverRoot, 'shot/a.bin'), 'second version, longer')
    t.send([['a.bin', 6]])
    expect(await t.recv()).toEqual(['file', 'a.bin', 22])
    const f = await t.frame()
    expect(f.kind === 'binary' && Buffer.from(f.bytes.subarray()).toString()).toBe('second version, longer')
    t.send(['failed', 'a.bin', 'hash mismatch'])
    expect(await t.recv()).toBe('yours')

    // Unchanged: the 4-element header and only the rest.
    const t2 = await raw('taker2')
    t2.send(['get', g.userId, '/shot'])
    await t2.recv()
    t2.send([['a.bin', 7]])
    expect(await t2.recv()).toEqual(['file', 'a.bin', 22, 7])
    const rest = await t2.frame()
    expect(rest.kind === 'binary' && Buffer.from(rest.bytes.subarray()).toString()).toBe('version, longer')
    t2.send(['ok', 'a.bin'])
    expect(await t2.recv()).toBe('yours')
  })
})

describe('nothing local is lost', () => {
  it('keeps a local edit as a conflict copy; a file untouched since the last get is just replaced', async () => {
    await scene.start()
    const giverRoot = await scene.dir()
    const takerRoot = await scene.dir()
    await writeTree(giverRoot, { 'shot/edited.txt': 'v1', 'shot/clean.txt': 'c1', 'shot/sub/scene.blend': 'b1' })
    await writeTree(takerRoot, { 'shot/sub/scene.blend': 'made here, never fetched' })
    const g = await scene.client('gina', { root: giverRoot })
    const t = await scene.client('tom', { root: takerRoot })
    const first = await t.get(g.userId, '/shot')
    expect(first.conflicts).toEqual([{ path: 'sub/scene.blend', copy: expect.stringMatching(/^sub\/scene\.conflict-gina-\d{8}-\d{6}\.blend$/) }])
    expect(await readFile(join(takerRoot, 'shot', first.conflicts[0].copy), 'utf8')).toBe('made here, never fetched')
    expect(await readFile(join(takerRoot, 'shot/sub/scene.blend'), 'utf8')).toBe('b1')

    await writeFile(join(takerRoot, 'shot/edited.txt'), 'edited here')
    await writeFile(join(giverRoot, 'shot/edited.txt'), 'v2')
    await writeFile(join(giverRoot, 'shot/clean.txt'), 'c2')
    const dry = await t.get(g.userId, '/shot', { dryRun: true })
    expect(dry.plan).toEqual({ new: [], changed: ['clean.txt'], conflict: ['edited.txt'], delete: [], upToDate: ['sub/scene.blend'] })
    const second = await t.get(g.userId, '/shot')
    expect(second).toMatchObject({ files: 2, skipped: 1, failed: [] })
    expect(second.conflicts).toEqual([{ path: 'edited.txt', copy: expect.stringMatching(/^edited\.conflict-gina-\d{8}-\d{6}\.txt$/) }])
    expect(await readFile(join(takerRoot, 'shot', second.conflicts[0].copy), 'utf8')).toBe('edited here')
    expect(await readFile(join(takerRoot, 'shot/edited.txt'), 'utf8')).toBe('v2')
    expect(await readFile(join(takerRoot, 'shot/clean.txt'), 'utf8')).toBe('c2')
    expect((await listTree(join(takerRoot, 'shot'))).filter((f) => f.includes('conflict'))).toHaveLength(2)
  })

  it('--delete moves what the giver no longer has into the trash inside the root, never unlinking', async () => {
    await scene.start()
    const giverRoot = await scene.dir()
    const takerRoot = await scene.dir()
    await writeTree(giverRoot, { 'shot/keep.txt': 'k', 'shot/gone.txt': 'g', 'shot/sub/gone2.txt': 'g2' })
    const g = await scene.client('gina', { root: giverRoot })
    const t = await scene.client('tom', { root: takerRoot })
    await t.get(g.userId, '/shot')
    await writeTree(takerRoot, { 'shot/mine.txt': 'only here', 'shot/mine.blend1': 'a Blender backup: ignored, never trashed' })
    await writeTree(giverRoot, {})
    const { rm } = await import('node:fs/promises')
    await rm(join(giverRoot, 'shot/gone.txt'))
    await rm(join(giverRoot, 'shot/sub'), { recursive: true })
    const plain = await t.get(g.userId, '/shot')
    expect(plain.deleted).toEqual([]) // without --delete nothing moves
    const dry = await t.get(g.userId, '/shot', { delete: true, dryRun: true })
    expect(dry.plan?.delete).toEqual(['gone.txt', 'mine.txt', 'sub/gone2.txt'])
    expect(await listTree(join(takerRoot, 'shot'))).toContain('gone.txt')
    const result = await t.get(g.userId, '/shot', { delete: true })
    expect(result.deleted.map((d) => d.path)).toEqual(['gone.txt', 'mine.txt', 'sub/gone2.txt'])
    expect(await listTree(join(takerRoot, 'shot'))).toEqual(['keep.txt', 'mine.blend1'])
    const trash = await listTree(join(takerRoot, '.vcmu/trash'))
    expect(trash).toEqual([expect.stringMatching(/^\d{8}-\d{6}\/shot\/gone\.txt$/), expect.stringMatching(/\/shot\/mine\.txt$/), expect.stringMatching(/\/shot\/sub\/gone2\.txt$/)])
    expect(await readFile(join(takerRoot, '.vcmu/trash', trash[1]), 'utf8')).toBe('only here')
  })

  it('--dry-run changes nothing: same files, contents, times; parts kept', async () => {
    await scene.start()
    const giverRoot = await scene.dir()
    const takerRoot = await scene.dir()
    await writeTree(giverRoot, { 'shot/new.txt': 'n', 'shot/changed.txt': 'c2', 'shot/same.txt': 's' })
    await writeTree(takerRoot, { 'shot/changed.txt': 'c1', 'shot/same.txt': 's', 'shot/extra.txt': 'e', 'shot/.other.vcmu-part': 'p' })
    const g = await scene.client('gina', { root: giverRoot })
    const t = await scene.client('tom', { root: takerRoot })
    const snapshot = async (): Promise<string[]> => await Promise.all((await listTree(takerRoot)).map(async (f) => {
      const s = await stat(join(takerRoot, f))
      return `${f}|${await readFile(join(takerRoot, f), 'utf8')}|${s.mtimeMs}|${s.mode}`
    }))
    const before = await snapshot()
    const dry = await t.get(g.userId, '/shot', { dryRun: true, delete: true })
    expect(dry.plan).toEqual({ new: ['new.txt'], changed: [], conflict: ['changed.txt'], delete: ['extra.txt'], upToDate: ['same.txt'] })
    expect(dry).toMatchObject({ files: 0, bytes: 0, deleted: [], conflicts: [] })
    expect(await snapshot()).toEqual(before)

    // Into a root that does not exist yet: all new, and still nothing created.
    const nowhere = join(await scene.dir(), 'not/yet')
    const fresh = await scene.client('newbie', { root: nowhere })
    expect((await fresh.get(g.userId, '/shot', { dryRun: true })).plan).toEqual({ new: ['changed.txt', 'new.txt', 'same.txt'], changed: [], conflict: [], delete: [], upToDate: [] })
    expect(await stat(nowhere).catch(() => null)).toBeNull()
  })
})

describe('metadata', () => {
  it('keeps the giver\'s mtime and execute bits', async () => {
    await scene.start()
    const giverRoot = await scene.dir()
    const takerRoot = await scene.dir()
    await writeTree(giverRoot, { 'tools/render.sh': '#!/bin/sh\necho hi\n', 'tools/notes.txt': 'plain' })
    await chmod(join(giverRoot, 'tools/render.sh'), 0o755)
    await chmod(join(giverRoot, 'tools/notes.txt'), 0o640)
    const when = new Date('2021-03-04T05:06:07.000Z')
    await utimes(join(giverRoot, 'tools/render.sh'), when, when)
    const g = await scene.client('gina', { root: giverRoot })
    const t = await scene.client('tom', { root: takerRoot })
    expect(await t.get(g.userId, '/tools')).toMatchObject({ files: 2, failed: [] })
    const sh = await stat(join(takerRoot, 'tools/render.sh'))
    expect(sh.mtimeMs).toBe(when.getTime())
    expect(sh.mode & 0o100).toBe(0o100)
    const notes = await stat(join(takerRoot, 'tools/notes.txt'))
    expect(notes.mode & 0o111).toBe(0)
    expect(Math.abs(notes.mtimeMs - (await stat(join(giverRoot, 'tools/notes.txt'))).mtimeMs)).toBeLessThan(1)
  })
})

describe('ignore rules', () => {
  it('serve skips .multiuserignore patterns, Blender backups and the client\'s own files', async () => {
    await scene.start()
    const giverRoot = await scene.dir()
    await writeTree(giverRoot, {
      '.multiuserignore': '# caches\n*.tmp\ncache/\n!keep.tmp\n',
      'shot/a.blend': 'a', 'shot/a.blend1': '1', 'shot/a.blend32': '32', 'shot/a.blend33': 'not a backup',
      'shot/x.tmp': 't', 'shot/keep.tmp': 'k', 'shot/cache/y.bin': 'y', 'shot/sub/cache/z.bin': 'z',
      'shot/.a.blend.vcmu-part': 'part'
    })
    const g = await scene.client('gina', { root: giverRoot })
    const t = await raw('taker')
    t.send(['get', g.userId, '/'])
    const manifest = await t.recv() as Record<string, unknown>
    expect(Object.keys(manifest).sort()).toEqual(['.multiuserignore', 'shot/a.blend', 'shot/a.blend33', 'shot/keep.tmp'])
    expect(manifest['shot/a.blend']).toEqual({ hash: sha256('a'), size: 1, mtime: expect.any(Number), mode: expect.any(Number) })
    t.send([])
    expect(await t.recv()).toBe('yours')
    // The index lives in the root (SQLite, or JSON where better-sqlite3 could not be built), and is never served.
    expect((await stat(join(giverRoot, '.vcmu'))).isDirectory()).toBe(true)
    expect(g.hashCache.index.kind).toMatch(/^(sqlite|json)$/)
  })
})

describe('a busy giver', () => {
  it('makes its second taker wait, not fail, however long the first relay lasts', async () => {
    await scene.start({ relayTimeoutMs: 300 })
    const giverRoot = await scene.dir()
    await writeTree(giverRoot, { 'shot/a.txt': 'a' })
    const g = await scene.client('gina', { root: giverRoot })
    const first = await raw('slow-taker')
    first.send(['get', g.userId, '/shot'])
    expect(Object.keys(await first.recv() as object)).toEqual(['a.txt'])
    // The giver is busy with the first relay (waiting for its getlist) for well over the relay timeout.
    const second = await scene.client('tom')
    let settled = false
    const got = second.get(g.userId, '/shot').finally(() => { settled = true })
    const relays = (): number => scene.server.coordinator.getSnapshot().context.relays.size
    while (relays() < 2) await new Promise((resolve) => setImmediate(resolve))
    // A control pair asked after tom, whose giver holds its turn in silence: its relay timeout running out
    // proves a whole timeout has passed since tom asked; tom must still be waiting, not failed.
    const silent = await raw('silent-giver')
    const control = await raw('control-taker')
    control.send(['get', silent.userId, '/x'])
    const timedOut = await control.recv(20_000)
    expect(Array.isArray(timedOut) && timedOut[0] === 'error' && timedOut[1] === 'relay_timeout').toBe(true)
    expect(settled).toBe(false)
    first.send([])
    expect(await first.recv()).toBe('yours')
    expect(await got).toMatchObject({ files: 1, failed: [] })
    expect(await readFile(join(second.root, 'shot/a.txt'), 'utf8')).toBe('a')
  })

  it('a watcher answers every give with missing: the taker gets no_such_folder', async () => {
    await scene.start()
    const w = await scene.client('walt', { serve: false })
    const t = await scene.client('tom')
    const err = await t.get(w.userId, '/shot').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(GetError)
    expect(err).toMatchObject({ code: 'no_such_folder', detail: 'not serving' })
  })
})
