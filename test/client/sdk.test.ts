import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { formatTimestamp } from '../../src/client/index.ts'
import { age, listTree, PROJECT, sampleFolder, Scene, waitFor, writeTree } from './helpers.ts'

const scene = new Scene()
afterEach(async () => { await scene.cleanup() })

describe('SDK: handshake, chat, at, users, story', () => {
  it('chats both ways', async () => {
    await scene.start()
    const a = await scene.client('ann')
    const b = await scene.client('bob')
    const bGets = waitFor(b, 'messages', (h) => h.some(([u, t]) => u === 'ann' && t === 'hello from ann'))
    await a.say('hello from ann')
    const [history] = await bGets
    expect(history[0]).toEqual(['Multiuser Server', 'Server Started'])
    const aGets = waitFor(a, 'messages', (h) => h.some(([u, t]) => u === 'bob' && t === 'hi ann'))
    await b.say('hi ann')
    await aGets
    expect(a.history.slice(-2)).toEqual([['ann', 'hello from ann'], ['bob', 'hi ann']])
  })

  it('sends "at" to the others and lists users with where they are', async () => {
    await scene.start()
    const a = await scene.client('ann')
    const b = await scene.client('bob')
    const ts = formatTimestamp(new Date(2024, 0, 2, 3, 4, 5))
    expect(ts).toBe('2024/01/02-03:04:05')
    const bGets = waitFor(b, 'at')
    await a.at('/chr/Moria', ts)
    expect((await bGets)[0]).toEqual({ from: a.userId, path: '/chr/Moria', timestamp: ts })
    const users = await b.users()
    expect(users[a.userId]).toEqual({ username: 'ann', camera: [0, 0], at: ['/chr/Moria', ts] })
    expect(users[b.userId]).toMatchObject({ username: 'bob', at: null })
    expect(b.usersMap).toEqual(users)
  })

  it('refreshes its users map by itself after a "users" notification', async () => {
    await scene.start()
    const a = await scene.client('ann')
    const refreshed = waitFor(a, 'usersUpdated', (u) => Object.values(u).some((x) => x.username === 'carol'))
    const c = await scene.client('carol')
    await refreshed
    expect(Object.keys(a.usersMap).sort()).toEqual([a.userId, c.userId].sort())
  })

  it('rejects a refused request with a typed error and goes on', async () => {
    await scene.start()
    const a = await scene.client('ann')
    await expect(a.at('/../etc', formatTimestamp())).rejects.toMatchObject({ name: 'RequestError', code: 'bad_path' })
    await expect(a.get('10.9.9.9:1', '/chr')).rejects.toMatchObject({ code: 'no_such_user' })
    await a.say('still here')
    expect(a.history.length).toBeGreaterThanOrEqual(0)
  })

  it('pushes a story change that reaches the other user; syncs use the local state', async () => {
    await scene.start()
    const a = await scene.client('ann', { state: { story: [{ title: 'old' }, '2020/01/01-00:00:00'] } })
    expect(a.story).toEqual({ owner: a.userId, story: { title: 'old' } })
    const b = await scene.client('bob')
    expect(b.story.story).toEqual({ title: 'old' })
    const bGets = waitFor(b, 'story', (s) => s.story.title === 'new')
    const reply = await a.pushStory({ title: 'new', camera: [3, 4] }, '2024/05/06-07:08:09')
    expect(reply).toEqual({ owner: a.userId, story: { title: 'new', camera: [3, 4] } })
    expect((await bGets)[0]).toEqual({ owner: a.userId, story: { title: 'new', camera: [3, 4] } })
    expect((await b.users())[a.userId].camera).toEqual([3, 4])
    // Analytics and assets the same way.
    const bAnalytics = waitFor(b, 'analytics', (v) => JSON.stringify(v) === '{"shots":7}')
    expect(await a.pushAnalytics({ shots: 7 }, '2024/05/06-07:08:09')).toEqual({ shots: 7 })
    await bAnalytics
    const bAssets = waitFor(b, 'assets', (v) => Object.hasOwn(v, '/chr/Moria'))
    const merged = await a.pushAssets({ '/chr/Moria': ['anyone', '2024/05/06-07:08:09'] })
    expect(merged['/chr/Moria']).toEqual([a.userId, '2024/05/06-07:08:09'])
    await bAssets
  })

  it('fails to connect with a precise reason', async () => {
    await scene.start()
    await expect(scene.client('ann', { project: 'Other Film' })).rejects.toMatchObject({ name: 'ClientError', code: 'wrong_project' })
    const port = scene.server.port
    await scene.server.close()
    await expect(scene.client('ann', { port })).rejects.toMatchObject({ code: 'refused' })
  })

  it('sends queued requests one per turn, in call order', async () => {
    await scene.start()
    const a = await scene.client('ann')
    const texts = ['one', 'two', 'three', 'four']
    const [, , users] = await Promise.all([a.say(texts[0]), a.say(texts[1]), a.users(), a.say(texts[2]), a.at('/x', formatTimestamp()), a.say(texts[3])])
    expect(users[a.userId].at).toBeNull() // the at was queued after the users request
    if (a.history.length < 5) await waitFor(a, 'messages', (h) => h.length >= 5)
    expect(a.history.slice(1).map(([, t]) => t)).toEqual(texts)
  })

  it('gives the secret when the server asks for one', async () => {
    await scene.start({ secret: 's3cret' })
    const a = await scene.client('ann', { secret: 's3cret' })
    expect(a.userId).toMatch(/^127\.0\.0\.1:\d+$/)
    await expect(scene.client('eve')).rejects.toMatchObject({ code: 'wrong_secret' })
    await expect(scene.client('eve', { secret: 'guess' })).rejects.toMatchObject({ code: 'wrong_secret' })
  })

  it('reports the end of the connection and rejects later requests', async () => {
    await scene.start()
    const a = await scene.client('ann')
    const closed = waitFor(a, 'close')
    await scene.server.close()
    const [info] = await closed
    expect(info.error?.code).toBe('closed')
    await expect(a.say('anyone?')).rejects.toMatchObject({ code: 'closed' })
  })
})

describe('SDK: folders end to end', () => {
  it('fetches a folder (nested, empty, multi-MiB, unicode), then only what changed', async () => {
    await scene.start()
    const giverRoot = await scene.dir()
    const takerRoot = await scene.dir()
    const files = sampleFolder()
    await writeTree(join(giverRoot, 'chr/Moria'), files)
    await age(join(giverRoot, 'chr/Moria'), Object.keys(files))
    const g = await scene.client('giver', { root: giverRoot })
    const t = await scene.client('taker', { root: takerRoot })

    const gives: string[] = []
    g.on('give', (p) => gives.push(p.stage))
    let lastProgress = { filesDone: 0, filesTotal: 0, bytesDone: 0 }
    const result = await t.get(g.userId, '/chr/Moria', { onProgress: (p) => { lastProgress = p } })
    expect(result).toMatchObject({ files: 5, bytes: 3 * 1024 * 1024 + 12345 + 17 + 8 + 12, failed: [], skipped: 0, conflicts: [], deleted: [] })
    expect(lastProgress).toMatchObject({ filesDone: 5, filesTotal: 5, bytesDone: result.bytes })
    expect(gives).toContain('done')
    const dest = join(takerRoot, 'chr/Moria')
    expect(await listTree(dest)).toEqual(Object.keys(files).sort())
    for (const [rel, content] of Object.entries(files)) {
      expect(Buffer.compare(await readFile(join(dest, rel)), Buffer.from(content))).toBe(0)
    }
    expect(scene.server.lines.some((l) => l.startsWith(`served | /chr/Moria | from | ${g.userId} | to | ${t.userId} | files | 5 |`))).toBe(true)

    // Change one file: the second get relays only that one, and the giver re-hashes only that one.
    const hashedBefore = g.hashCache.hashed
    await writeFile(join(giverRoot, 'chr/Moria/readme.txt'), 'Moria, changed\n')
    const again = await t.get(g.userId, '/chr/Moria')
    expect(again).toMatchObject({ files: 1, bytes: 15, failed: [], skipped: 4, conflicts: [] })
    expect(g.hashCache.hashed - hashedBefore).toBe(1)
    expect(await readFile(join(dest, 'readme.txt'), 'utf8')).toBe('Moria, changed\n')
    expect(scene.server.lines.some((l) => l.startsWith(`served | /chr/Moria | from | ${g.userId} | to | ${t.userId} | files | 1 |`))).toBe(true)

    // Nothing changed: an empty getlist, nothing relayed.
    expect(await t.get(g.userId, '/chr/Moria')).toMatchObject({ files: 0, bytes: 0, failed: [], skipped: 5 })
    // A folder the giver does not have: no_such_folder (§5 revision 2 `missing`).
    await expect(t.get(g.userId, '/nothing/here')).rejects.toMatchObject({ name: 'GetError', code: 'no_such_folder', detail: 'no such folder' })
  })

  it('serves the whole root for "/" and a client with serve: false answers "not serving"', async () => {
    await scene.start()
    const giverRoot = await scene.dir()
    await writeTree(giverRoot, { 'a.txt': 'a', 'b/c.txt': 'c' })
    const g = await scene.client('giver', { root: giverRoot })
    const quiet = await scene.client('quiet', { root: giverRoot, serve: false })
    const t = await scene.client('taker')
    expect(await t.get(g.userId, '/')).toMatchObject({ files: 2, failed: [] })
    expect(await listTree(t.root)).toEqual(['a.txt', 'b/c.txt'])
    await expect(t.get(quiet.userId, '/')).rejects.toMatchObject({ code: 'no_such_folder', detail: 'not serving' })
  })

  it('rejects a local folder path that would leave the root, without asking the server', async () => {
    await scene.start()
    const t = await scene.client('taker')
    await expect(t.get('127.0.0.1:1', '/a/../../x')).rejects.toMatchObject({ code: 'bad_path' })
    void PROJECT
  })
})
