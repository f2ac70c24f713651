import { mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { buildManifest, GetError, HashCache } from '../../src/client/index.ts'
import type { WireClient } from '../helpers/wire-client.ts'
import { age, awaitGive, listTree, Scene, sha256, writeTree } from './helpers.ts'

const scene = new Scene()
afterEach(async () => { await scene.cleanup() })
const raw = async (username: string): Promise<WireClient> => await scene.raw(username)

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('taker side against a malicious or failing giver', () => {
  it('refuses a file whose bytes do not match the manifest hash: old file untouched, failure reported', async () => {
    await scene.start()
    const root = await scene.dir()
    await writeTree(root, { 'f/a.txt': 'old content', 'f/b.txt': 'bbb' })
    const t = await scene.client('taker', { root })
    const liar = await raw('liar')
    const got = t.get(liar.userId, '/f')
    expect(await awaitGive(liar)).toBe('/f')
    liar.send({ 'a.txt': sha256('good content'), 'b.txt': sha256('bbb') })
    expect(await liar.recv()).toEqual(['a.txt'])
    liar.send(['file', 'a.txt', 12])
    liar.sendBinary(enc('good contenX')) // one byte corrupted in transit
    expect(await liar.recv()).toEqual(['failed', 'a.txt', expect.stringContaining('hash mismatch')])
    expect(await liar.recv()).toBe('yours')
    const result = await got
    expect(result).toMatchObject({ files: 0, bytes: 0, skipped: 1 })
    expect(result.failed).toEqual([{ path: 'a.txt', reason: expect.stringContaining('hash mismatch') }])
    expect(await readFile(join(root, 'f/a.txt'), 'utf8')).toBe('old content')
    expect(await listTree(join(root, 'f'))).toEqual(['a.txt', 'b.txt']) // no temp file left
  })

  it('keeps the old file, and what arrived as a part to resume, when the giver disconnects mid-file (relay_failed)', async () => {
    await scene.start()
    const root = await scene.dir()
    await writeTree(root, { 'f/big.bin': 'previous version' })
    const t = await scene.client('taker', { root })
    const g = await raw('flaky')
    const got = t.get(g.userId, '/f')
    await awaitGive(g)
    g.send({ 'a.txt': sha256('aaa'), 'big.bin': sha256('x'.repeat(1000)) })
    expect(await g.recv()).toEqual(['a.txt', 'big.bin'])
    g.send(['file', 'a.txt', 3])
    g.sendBinary(enc('aaa'))
    g.send(['file', 'big.bin', 1000])
    g.sendBinary(enc('x'.repeat(100)))
    expect(await g.recv()).toEqual(['ok', 'a.txt'])
    g.close()
    const err = await got.then(() => null, (e: unknown) => e)
    expect(err).toBeInstanceOf(GetError)
    expect(err).toMatchObject({ code: 'relay_failed', result: { files: 1, bytes: 3, failed: [{ path: 'big.bin' }] } })
    expect(await readFile(join(root, 'f/big.bin'), 'utf8')).toBe('previous version')
    expect(await listTree(join(root, 'f'))).toEqual(['.big.bin.vcmu-part', 'a.txt', 'big.bin'])
    expect(await readFile(join(root, 'f/.big.bin.vcmu-part'), 'utf8')).toBe('x'.repeat(100))
    // The client goes on.
    await t.say('still connected')
  })

  it('never writes through a symlink that leaves the root, and the server refuses "../" keys', async () => {
    await scene.start()
    const root = await scene.dir()
    const outside = await scene.dir()
    await writeFile(join(outside, 'passwd'), 'outside, untouched')
    await mkdir(join(root, 'f'), { recursive: true })
    await symlink(outside, join(root, 'f/link'))
    await symlink(join(outside, 'passwd'), join(root, 'f/passwd'))
    const t = await scene.client('taker', { root })
    const g = await raw('evil')
    const got = t.get(g.userId, '/f')
    await awaitGive(g)
    g.send({ 'link/evil.txt': sha256('evil'), passwd: sha256('evil'), 'ok.txt': sha256('ok') })
    expect(await g.recv()).toEqual(['ok.txt'])
    g.send(['file', 'ok.txt', 2])
    g.sendBinary(enc('ok'))
    expect(await g.recv()).toEqual(['ok', 'ok.txt'])
    expect(await g.recv()).toBe('yours')
    const result = await got
    expect(result.files).toBe(1)
    expect(result.failed.map((f) => f.path).sort()).toEqual(['link/evil.txt', 'passwd'])
    for (const f of result.failed) expect(f.reason).toMatch(/outside the root/)
    expect(await readdir(outside)).toEqual(['passwd'])
    expect(await readFile(join(outside, 'passwd'), 'utf8')).toBe('outside, untouched')

    // A manifest key with "..": the server closes the giver, the taker gets relay_failed and writes nothing.
    const g2 = await raw('evil2')
    const got2 = t.get(g2.userId, '/f')
    await awaitGive(g2)
    g2.send({ '../../escape.txt': sha256('x') })
    await expect(got2).rejects.toMatchObject({ code: 'relay_failed' })
    await g2.waitClosed()
    expect(await listTree(root)).toEqual(['f/link', 'f/ok.txt', 'f/passwd'])
  })
})

describe('giver side never reads outside its root', () => {
  it('leaves escaping symlinks out of the manifest and answers "missing" for a file swapped for one', async () => {
    await scene.start()
    const root = await scene.dir()
    const outside = await scene.dir()
    await writeFile(join(outside, 'secret'), 'TOP SECRET')
    await writeTree(root, { 'f/secret.txt': 'harmless', 'f/sub/x.txt': 'x' })
    await symlink(join(outside, 'secret'), join(root, 'f/escape.txt'))
    await symlink(outside, join(root, 'f/escape-dir'))
    await symlink(join(root, 'f/secret.txt'), join(root, 'f/inside-link.txt'))
    const g = await scene.client('giver', { root })
    const t = await raw('taker')
    t.send(['get', g.userId, '/f'])
    const manifest = await t.recv() as Record<string, { hash: string }>
    expect(Object.keys(manifest).sort()).toEqual(['inside-link.txt', 'secret.txt', 'sub/x.txt'])
    expect(manifest['secret.txt'].hash).toBe(sha256('harmless'))
    // Between manifest and getlist the file becomes a symlink out of the root.
    await rm(join(root, 'f/secret.txt'))
    await symlink(join(outside, 'secret'), join(root, 'f/secret.txt'))
    t.send(['secret.txt', 'sub/x.txt'])
    expect(await t.recv()).toEqual(['missing', 'secret.txt', 'outside the served root'])
    t.send(['failed', 'secret.txt', 'missing'])
    expect(await t.recv()).toEqual(['file', 'sub/x.txt', 1])
    const f = await t.frame()
    expect(f.kind === 'binary' && Buffer.from(f.bytes.subarray()).toString()).toBe('x')
    t.send(['ok', 'sub/x.txt'])
    expect(await t.recv()).toBe('yours')
  })

  it('hashes an unchanged folder once (cache by path, size, mtime)', async () => {
    const root = await scene.dir()
    const files: Record<string, string> = {}
    for (let i = 0; i < 300; i++) files[`d${i % 7}/f${i}.txt`] = `file ${i}`
    await writeTree(root, files)
    await age(root, Object.keys(files))
    const cache = new HashCache(root)
    const first = await buildManifest(root, '/', cache)
    expect(Object.keys(first.manifest)).toHaveLength(300)
    expect(cache.hashed).toBe(300)
    const second = await buildManifest(root, '/', cache)
    expect(second.manifest).toEqual(first.manifest)
    expect(cache.hashed).toBe(300)
    expect(await buildManifest(root, '/missing', cache)).toMatchObject({ manifest: {} })
  })
})
