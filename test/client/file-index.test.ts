import { mkdtemp, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { buildManifest, HashCache } from '../../src/client/index.ts'
import { age, Scene, sha256, writeTree } from './helpers.ts'

const scene = new Scene()
afterEach(async () => { await scene.cleanup() })

describe.each(['sqlite', 'json'] as const)('persistent index in %s', (store) => {
  it('survives a restart of both sides: a no-change get reads no file, on the giver or the taker', async () => {
    await scene.start()
    const giverRoot = await scene.dir()
    const takerRoot = await scene.dir()
    const files: Record<string, string> = {}
    for (let i = 0; i < 40; i++) files[`shot/d${i % 4}/f${i}.txt`] = `content ${i}`
    await writeTree(giverRoot, files)
    await age(giverRoot, Object.keys(files))

    const reads = { giver: [] as string[], taker: [] as string[] }
    const g1 = await scene.client('gina', { root: giverRoot, hashCache: new HashCache(giverRoot, { store, onRead: (p) => reads.giver.push(p) }) })
    const t1 = await scene.client('tom', { root: takerRoot, hashCache: new HashCache(takerRoot, { store, onRead: (p) => reads.taker.push(p) }) })
    expect(await t1.get(g1.userId, '/shot')).toMatchObject({ files: 40, failed: [] })
    expect(reads.giver).toHaveLength(40)
    expect(reads.taker).toHaveLength(0) // received files are indexed as they land
    await g1.close()
    await t1.close()
    g1.hashCache.close()
    t1.hashCache.close()
    reads.giver.length = 0
    const g2 = await scene.client('gina', { root: giverRoot, hashCache: new HashCache(giverRoot, { store, onRead: (p) => reads.giver.push(p) }) })
    const t2 = await scene.client('tom', { root: takerRoot, hashCache: new HashCache(takerRoot, { store, onRead: (p) => reads.taker.push(p) }) })
    expect(await t2.get(g2.userId, '/shot')).toMatchObject({ files: 0, skipped: 40, failed: [] })
    expect(reads).toEqual({ giver: [], taker: [] })
    expect(g2.hashCache.hits).toBe(40)

    // One file changes: exactly that one is read again by the giver; the taker still reads nothing.
    await writeFile(join(giverRoot, 'shot/d1/f5.txt'), 'changed')
    expect(await t2.get(g2.userId, '/shot')).toMatchObject({ files: 1, skipped: 39 })
    expect(reads.giver).toEqual([join(giverRoot, 'shot/d1/f5.txt')])
    expect(reads.taker).toEqual([])
    g2.hashCache.close()
    t2.hashCache.close()
  })
})

type Op =
  | { kind: 'write', file: number, content: string, aged: boolean }
  | { kind: 'delete', file: number }
  | { kind: 'restart' }
  | { kind: 'check' }

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), file: fc.integer({ min: 0, max: 3 }), content: fc.string({ maxLength: 6 }), aged: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), file: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('check' as const) }) }
)

describe.each(['sqlite', 'json'] as const)('index in %s against the file system (property)', (store) => {
  it('every hash it gives is the SHA-256 of the file as it is now, through writes, same-size rewrites, deletions and restarts', async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), async (ops) => {
      const root = await mkdtemp(join(tmpdir(), 'vcmu-index-'))
      let cache = new HashCache(root, { store })
      const truth = new Map<string, string>()
      try {
        for (const o of ops) {
          if (o.kind === 'write') {
            const rel = `f${o.file}.txt`
            await writeFile(join(root, rel), o.content)
            // An old mtime, as a copy tool or an unzip leaves it: only size, ctime and inode tell the change.
            if (o.aged) await utimes(join(root, rel), new Date(1_600_000_000_000), new Date(1_600_000_000_000))
            truth.set(rel, o.content)
          } else if (o.kind === 'delete') {
            const rel = `f${o.file}.txt`
            if (truth.delete(rel)) await unlink(join(root, rel))
          } else if (o.kind === 'restart') {
            cache.close()
            cache = new HashCache(root, { store })
          } else {
            const built = await buildManifest(root, '/', cache)
            const got = Object.fromEntries(Object.entries(built.manifest).map(([rel, e]) => [rel, e.hash]))
            expect(got).toEqual(Object.fromEntries([...truth].sort().map(([rel, c]) => [rel, sha256(c)])))
            for (const [rel, c] of truth) expect(built.manifest[rel].size).toBe(Buffer.byteLength(c))
          }
        }
      } finally {
        cache.close()
        await rm(root, { recursive: true, force: true })
      }
    }), { numRuns: 40 })
  })

  it('records every file a get put in place, in batches, before the get resolves (more files than one batch)', async () => {
    await scene.start()
    const giverRoot = await scene.dir()
    const takerRoot = await scene.dir()
    const files: Record<string, string> = {}
    for (let i = 0; i < 150; i++) files[`shot/d${i % 3}/f${i}.txt`] = `content ${i}`
    await writeTree(giverRoot, files)
    const g = await scene.client('gina', { root: giverRoot })
    const t = await scene.client('tom', { root: takerRoot, hashCache: new HashCache(takerRoot, { store }) })
    expect(await t.get(g.userId, '/shot')).toMatchObject({ files: 150, failed: [] })
    await t.close()
    t.hashCache.close()
    // After a restart, every file is known with the hash it was fetched with: nothing is read again.
    const reads: string[] = []
    const again = new HashCache(takerRoot, { store, onRead: (p) => reads.push(p) })
    for (const [rel, content] of Object.entries(files)) {
      const real = join(again.root, rel)
      expect(again.index.fetched(rel)).toBe(sha256(content))
      expect((await again.hash(real)).hash).toBe(sha256(content))
    }
    expect(reads).toEqual([])
    again.close()
  })

  it('a file hashed long after its last change is answered from the index after a restart', async () => {
    const root = await scene.dir()
    await writeTree(root, { 'a.bin': 'abc' })
    await age(root, ['a.bin'])
    const first = new HashCache(root, { store })
    const real = join(root, 'a.bin')
    expect((await first.hash(real, await stat(real))).hash).toBe(sha256('abc'))
    expect(first.hashed).toBe(1)
    first.close()
    const second = new HashCache(root, { store })
    expect((await second.hash(real)).hash).toBe(sha256('abc'))
    expect({ hashed: second.hashed, hits: second.hits }).toEqual({ hashed: 0, hits: 1 })
    second.close()
  })

  it('known: the index\'s hash without reading, only for a file whose stat is the one hashed and not racy', async () => {
    const root = await scene.dir()
    await writeTree(root, { 'old.bin': 'abc', 'fresh.bin': 'new' })
    await age(root, ['old.bin'])
    const reads: string[] = []
    const cache = new HashCache(root, { store, onRead: (p) => reads.push(p) })
    const old = join(root, 'old.bin')
    const fresh = join(root, 'fresh.bin')
    // Last changed "later than" it is hashed (a clock ahead, or a change in the same instant): racy, whatever the machine's speed.
    const ahead = new Date(Date.now() + 600_000)
    await utimes(fresh, ahead, ahead)
    expect(cache.known(old, await stat(old))).toBeUndefined() // never hashed
    await cache.hash(old)
    await cache.hash(fresh)
    expect(cache.known(old, await stat(old))).toEqual({ hash: sha256('abc'), size: 3 })
    // It could change again unseen: read again.
    expect(cache.known(fresh, await stat(fresh))).toBeUndefined()
    await writeFile(old, 'xyz')
    await age(root, ['old.bin'])
    expect(cache.known(old, await stat(old))).toBeUndefined() // another stat: read again
    expect(reads).toHaveLength(2)
    // buildManifest answers from the index, reports progress up to the total, and reads only what changed.
    const progress: number[] = []
    const built = await buildManifest(root, '/', cache, (done, total) => { expect(total).toBe(2); progress.push(done) })
    expect(built.manifest['old.bin'].hash).toBe(sha256('xyz'))
    expect(progress.at(-1)).toBe(2)
    expect(reads.slice(2).sort()).toEqual([fresh, old].sort())
    cache.close()
  })
})
