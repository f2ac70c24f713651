import { spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, describe, expect, it, vi } from 'vitest'
import type { DurableState } from '../actors/coordinator.ts'
import { INITIAL_ANALYTICS, INITIAL_CHAT, INITIAL_STORY } from '../actors/shared-state.ts'
import type { ServerLog } from '../src/log.ts'
import { atomicWrite, createStore, fileSafeName, FILES, LOCK_NAME, PID_NAME, serializeJson, StoreSetupError, type FileStoreTuning, type Store } from '../src/store.ts'
import { PROJECT, startServerProcess } from './helpers/server-process.ts'
import { untilYours } from './helpers/turns.ts'
import { join as joinServer, T0, type WireClient } from './helpers/wire-client.ts'


const temps: string[] = []
function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'persist-test-'))
  temps.push(dir)
  return dir
}
afterAll(() => { for (const dir of temps) rmSync(dir, { recursive: true, force: true }) })

// ------------------------------------------------------------ helpers

interface Logged { level: 'human' | 'debug' | 'warn' | 'error', line: string }

function memoryLog (): ServerLog & { lines: Logged[], text: () => string } {
  const lines: Logged[] = []
  const add = (level: Logged['level']) => (message: unknown): void => { lines.push({ level, line: String(message) }) }
  return {
    lines,
    text: () => lines.map((l) => `${l.level} ${l.line}`).join('\n'),
    human: add('human'),
    debug: add('debug'),
    warn: add('warn'),
    error: add('error'),
    onHumanLine: () => () => {}
  }
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function until (check: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

const state = (n: number, chat: DurableState['chat'] = INITIAL_CHAT): DurableState => ({
  story: { owner: '127.0.0.1:1', value: { n }, timestamp: `2024/01/01-00:00:${String(n % 60).padStart(2, '0')}` },
  analytics: INITIAL_ANALYTICS,
  chat
})

function fileStore (dir: string, tuning: Partial<FileStoreTuning> = {}, chatLimit?: number): { store: Store, log: ReturnType<typeof memoryLog> } {
  const log = memoryLog()
  return { store: createStore({ projectName: PROJECT, persist: { dataDir: dir }, chatLimit, tuning }, log), log }
}

/** A writeFile that records calls and only finishes when released. */
function gatedWriter (): {
  writeFile: FileStoreTuning['writeFile']
  calls: Array<{ path: string, data: string }>
  inFlight: () => number
  maxInFlight: () => number
  release: () => void
} {
  const calls: Array<{ path: string, data: string }> = []
  const gates: Array<() => void> = []
  let inFlight = 0
  let maxInFlight = 0
  return {
    calls,
    inFlight: () => inFlight,
    maxInFlight: () => maxInFlight,
    release: () => { for (const g of gates.splice(0)) g() },
    writeFile: async (path, data) => {
      calls.push({ path, data: Buffer.from(data).toString('utf8') })
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      await new Promise<void>((resolve) => gates.push(resolve))
      inFlight--
    }
  }
}

// ------------------------------------------------------------ the store, in process

describe('serializeJson', () => {
  it('gives the bytes of JSON.stringify, sliced or not', async () => {
    await fc.assert(fc.asyncProperty(fc.jsonValue({ maxDepth: 6 }), async (value) => {
      const want = JSON.stringify(value)
      expect((await serializeJson(value, 1)).toString('utf8')).toBe(want)
      expect((await serializeJson(value, 0)).toString('utf8')).toBe(want)
    }), { numRuns: 200 })
  })

  it('handles big values: long strings cut at surrogate pairs, deep and wide trees', async () => {
    const big = {
      text: 'é😀"\\\n'.repeat(200_000),
      odd: `x${'😀'.repeat(300_000)}`,
      wide: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, [i, `v${i}`, { deep: [[[i]]] }]])),
      list: Array.from({ length: 5_000 }, (_, i) => ({ i, s: 'lorem ipsum '.repeat(i % 20) })),
      '__proto__': 1
    }
    const got = await serializeJson(big, 1)
    expect(got.equals(Buffer.from(JSON.stringify(big)))).toBe(true)
    expect(JSON.parse(got.toString('utf8'))).toEqual(big)
  })
})

describe('fileSafeName', () => {
  it('keeps safe names and marks changed ones with a hash', () => {
    expect(fileSafeName('Test Film')).toBe('Test Film')
    expect(fileSafeName('Мория 2')).toBe('Мория 2')
    expect(fileSafeName('a/b')).toMatch(/^a_b-[0-9a-f]{8}$/)
    expect(fileSafeName('a/b')).not.toBe(fileSafeName('a_b'))
    expect(fileSafeName('a:b')).not.toBe(fileSafeName('a/b'))
    expect(fileSafeName('..')).toMatch(/^project-[0-9a-f]{8}$/)
    expect(fileSafeName('')).toMatch(/^project-[0-9a-f]{8}$/)
    expect(fileSafeName('CON')).toMatch(/^_CON-/)
    expect(fileSafeName('../../etc')).not.toContain('/')
  })
})


describe('file store', () => {
  it('coalesces: one write in flight per file, the newest state wins, unchanged files are not rewritten', async () => {
    const w = gatedWriter()
    const { store } = fileStore(tempDir(), { writeFile: w.writeFile, delayMs: 20 })
    expect(await store.load()).toBeUndefined()
    const states = Array.from({ length: 81 }, (_, n) => state(n))
    for (let n = 1; n <= 50; n++) store.save(states[n], n)
    await until(() => w.calls.length === 1, 2_000, 'the first write')
    expect(w.calls[0].path.endsWith(FILES.story)).toBe(true)
    expect(JSON.parse(w.calls[0].data).value).toEqual({ n: 50 })

    // Changes while that write is in flight: one more write after it, with the newest.
    for (let n = 51; n <= 80; n++) store.save(states[n], n)
    await sleep(60)
    expect(w.calls.length).toBe(1)
    w.release()
    await until(() => w.calls.length === 2, 2_000, 'the second write')
    expect(JSON.parse(w.calls[1].data).value).toEqual({ n: 80 })
    w.release()
    await sleep(60)
    expect(w.calls.length).toBe(2)
    expect(w.maxInFlight()).toBe(1)

    // The coordinator passes the same story object when only the chat changed: only chat.json is written.
    store.save({ ...states[80], chat: [...INITIAL_CHAT, ['ann', 'hi']] }, 81)
    await until(() => w.calls.length === 3, 2_000, 'the chat write')
    expect(w.calls[2].path.endsWith(FILES.chat)).toBe(true)
    expect(JSON.parse(w.calls[2].data).lines).toEqual([...INITIAL_CHAT, ['ann', 'hi']])
    w.release()
    await store.flush()
    expect(w.calls.length).toBe(3)
  })

  it('writes real, versioned files, reports the change committed once they are on disk, and loads them back (chat trimmed to the limit)', async () => {
    const dir = join(tempDir(), 'nested', 'data')
    const { store } = fileStore(dir)
    expect(await store.load()).toBeUndefined()
    const chat = Array.from({ length: 30 }, (_, i) => ['ann', `line ${i}`] as const)
    const s: DurableState = {
      story: { owner: '127.0.0.1:5', value: { scenes: { s1: { text: 'é😀' } } }, timestamp: '2024/02/02-02:02:02' },
      analytics: { value: [1, 2, { h: 3 }], timestamp: '2024/02/02-02:02:03' },
      chat
    }
    const onDisk = (): boolean => Object.values(FILES).every((f) => existsSync(join(dir, f)))
    const committed = new Promise<number>((resolve) => store.onCommitted(resolve))
    store.save(s, 1)
    expect(await committed).toBe(1)
    expect(onDisk()).toBe(true)
    const story = JSON.parse(readFileSync(join(dir, FILES.story), 'utf8'))
    expect(story).toMatchObject({ format: 'vcstudio-multiuser/story', version: 1, owner: '127.0.0.1:5', timestamp: '2024/02/02-02:02:02' })
    expect(JSON.parse(readFileSync(join(dir, FILES.chat), 'utf8'))).toMatchObject({ format: 'vcstudio-multiuser/chat', version: 1 })
    await store.close()

    writeFileSync(join(dir, 'story.json.123456789'), 'half a temp file left by a kill')
    const again = fileStore(dir, {}, 10)
    const loaded = await again.store.load()
    expect(loaded?.story).toEqual(s.story)
    expect(loaded?.analytics).toEqual(s.analytics)
    expect(loaded?.chat).toEqual(chat.slice(20))
    expect(existsSync(join(dir, 'story.json.123456789'))).toBe(false)
    // The loaded values are what the files hold: saving them again writes nothing.
    const committedAgain = new Promise<number>((resolve) => again.store.onCommitted(resolve))
    again.store.save(loaded as DurableState, 1)
    expect(await committedAgain).toBe(1) // at once: nothing to write
    await again.store.close()
    expect(again.log.lines.filter((l) => l.line.includes('| saved |'))).toEqual([])
  })

  it('a failing write is logged once per streak, retried with backoff, and the newest state is written when it works', async () => {
    let failuresLeft = 4
    const attempts: number[] = []
    const written: string[] = []
    const committed: number[] = []
    const { store, log } = fileStore(tempDir(), {
      delayMs: 5,
      retryMs: 10,
      sliceMs: 0,
      writeFile: async (path, data) => {
        if (!path.endsWith(FILES.story)) return // not loaded: the first save writes the empty analytics and chat too
        attempts.push(Date.now())
        if (failuresLeft-- > 0) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
        written.push(Buffer.from(data).toString('utf8'))
      }
    })
    store.onCommitted((v) => committed.push(v))
    // A fake clock: the backoff is checked exactly, with no real waiting (the data dir's mkdir is real I/O, it takes no fake time).
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] })
    try {
      const runClock = async (done: () => boolean): Promise<void> => {
        for (let ms = 0; ms < 10_000 && !done(); ms++) {
          await vi.advanceTimersByTimeAsync(1)
          while (vi.getTimerCount() === 0 && !done()) await new Promise((resolve) => setImmediate(resolve))
        }
      }
      const t0 = Date.now()
      store.save(state(1), 1)
      await runClock(() => attempts.length === 2)
      store.save(state(2), 2)
      await runClock(() => written.length === 1)
      expect(JSON.parse(written[0]).value).toEqual({ n: 2 })
      expect(attempts.map((t) => t - t0)).toEqual([5, 15, 35, 75, 155]) // after the delay, then backing off: 10, 20, 40, 80 ms
      expect(committed).toEqual([2])
      const warnings = log.lines.filter((l) => l.level === 'warn')
      expect(warnings.map((l) => l.line)).toEqual([
        expect.stringMatching(/cannot save .*story\.json \(ENOSPC: no space left on device\)/),
        expect.stringMatching(/saving .*story\.json works again, after 4 failed attempts/)
      ])

      // A second streak is logged again, and its backoff starts over.
      failuresLeft = 1
      const t1 = Date.now()
      store.save(state(3), 3)
      await runClock(() => written.length === 2)
      expect(attempts.slice(5).map((t) => t - t1)).toEqual([5, 15])
      expect(log.lines.filter((l) => l.level === 'warn' && l.line.includes('cannot save'))).toHaveLength(2)
      expect(committed).toEqual([2, 3])
    } finally {
      vi.useRealTimers()
    }
    await store.flush()
  })

  it('flush writes at once, and resolves (logging an error) when the disk keeps failing', async () => {
    const written: string[] = []
    const ok = fileStore(tempDir(), { delayMs: 60_000, writeFile: async (_p, d) => { written.push(Buffer.from(d).toString('utf8')) } })
    await ok.store.load()
    ok.store.save(state(7), 1)
    await ok.store.flush()
    expect(written.map((d) => JSON.parse(d).value)).toEqual([{ n: 7 }])

    const bad = fileStore(tempDir(), {
      delayMs: 1,
      retryMs: 60_000,
      writeFile: async () => { throw Object.assign(new Error('read-only file system'), { code: 'EROFS' }) }
    })
    await bad.store.load()
    bad.store.save(state(8), 1)
    await until(() => bad.log.lines.some((l) => l.line.includes('cannot save')), 2_000, 'the first failure')
    await bad.store.flush() // cuts the 60 s backoff short (or the test times out)
    expect(bad.log.lines.filter((l) => l.level === 'error').map((l) => l.line)).toEqual([expect.stringMatching(/could not save .*story\.json/)])
    expect(bad.log.lines.filter((l) => l.line.includes('cannot save'))).toHaveLength(1)
  })

  it('a corrupt or unknown-version file is moved aside, never overwritten; the other parts still load', async () => {
    const dir = tempDir()
    const garbage = '{"format":"vcstudio-multiuser/story","version":1,"owner":"x","value":{"scen'
    writeFileSync(join(dir, FILES.story), garbage)
    writeFileSync(join(dir, FILES.analytics), JSON.stringify({ format: 'vcstudio-multiuser/analytics', version: 99, timestamp: T0, value: 1 }))
    writeFileSync(join(dir, FILES.chat), JSON.stringify({ format: 'vcstudio-multiuser/chat', version: 1, savedAt: '', lines: [['old', 'line']] }))
    const { store, log } = fileStore(dir)
    const loaded = await store.load()
    expect(loaded).toEqual({ story: INITIAL_STORY, analytics: INITIAL_ANALYTICS, chat: [['old', 'line']] })
    const warnings = log.lines.filter((l) => l.level === 'warn').map((l) => l.line)
    expect(warnings).toEqual([
      expect.stringMatching(/story\.json is not JSON .* moved aside as story\.json\.corrupt-\S+ \| starting with an empty story/),
      expect.stringMatching(/analytics\.json is format version 99, this server reads 1 .* moved aside as analytics\.json\.corrupt-/)
    ])
    const aside = readdirSync(dir).filter((n) => n.startsWith('story.json.corrupt-'))
    expect(aside).toHaveLength(1)
    expect(readFileSync(join(dir, aside[0]), 'utf8')).toBe(garbage)
    expect(existsSync(join(dir, FILES.story))).toBe(false)

    store.save({ ...(loaded as DurableState), story: { owner: 'o', value: { fresh: true }, timestamp: '2024/03/03-03:03:03' } }, 1)
    await store.flush()
    expect(JSON.parse(readFileSync(join(dir, FILES.story), 'utf8')).value).toEqual({ fresh: true })
    expect(readFileSync(join(dir, aside[0]), 'utf8')).toBe(garbage)
  })
})

describe('file store: §8 commits', () => {
  const committedIn = (store: Store): number[] => {
    const seen: number[] = []
    store.onCommitted((v) => seen.push(v))
    return seen
  }

  it('group commit: changes made while a write is in flight share the next write, and are committed only once it is done', async () => {
    const w = gatedWriter()
    const { store } = fileStore(tempDir(), { writeFile: w.writeFile })
    await store.load()
    const committed = committedIn(store)
    store.save(state(1), 1)
    await until(() => w.calls.length === 1, 2_000, 'the first write')
    for (let n = 2; n <= 10; n++) store.save(state(n), n)
    expect(committed).toEqual([])
    w.release()
    await until(() => w.calls.length === 2, 2_000, 'the group write')
    expect(committed).toEqual([1])
    expect(JSON.parse(w.calls[1].data).value).toEqual({ n: 10 })
    w.release()
    await until(() => committed.length === 2, 2_000, 'the group commit')
    expect(committed).toEqual([1, 10])
    expect(w.calls).toHaveLength(2)
    await store.close()
  })

  it('a change is committed only when every older change of every file is on disk', async () => {
    const story = gatedWriter()
    const others: string[] = []
    const { store } = fileStore(tempDir(), {
      writeFile: async (path, data) => { if (path.endsWith(FILES.story)) await story.writeFile(path, data); else others.push(path) }
    })
    await store.load()
    const committed = committedIn(store)
    const first = state(1)
    store.save(first, 1)
    await until(() => story.calls.length === 1, 2_000, 'the story write')
    store.save({ ...first, chat: [...INITIAL_CHAT, ['ann', 'hi']] }, 2) // the same story object: only chat.json changes
    await until(() => others.length === 1, 2_000, 'the chat write')
    expect(others[0].endsWith(FILES.chat)).toBe(true)
    expect(committed).toEqual([]) // change 2 is on disk, but change 1 is not yet
    story.release()
    await until(() => committed.length > 0, 2_000, 'the commit')
    expect(committed).toEqual([2])
    await store.close()
  })

  it('a save is atomic: the old file is replaced, never written over (a hard link to it keeps the old content)', async () => {
    const dir = tempDir()
    const { store } = fileStore(dir)
    await store.load()
    const committed = committedIn(store)
    store.save(state(1), 1)
    await until(() => committed.includes(1), 5_000, 'the first commit')
    linkSync(join(dir, FILES.story), join(dir, 'old-story-link'))
    store.save(state(2), 2)
    await until(() => committed.includes(2), 5_000, 'the second commit')
    expect(JSON.parse(readFileSync(join(dir, 'old-story-link'), 'utf8')).value).toEqual({ n: 1 })
    expect(JSON.parse(readFileSync(join(dir, FILES.story), 'utf8')).value).toEqual({ n: 2 })
    await store.close()
  })

  it('a save requested while a failing write is in flight reaches the disk', async () => {
    const dir = tempDir()
    const gate = gatedWriter()
    let failNext = true
    const { store } = fileStore(dir, {
      retryMs: 5,
      writeFile: async (path, data) => {
        if (failNext && path.endsWith(FILES.story)) {
          failNext = false
          await gate.writeFile(path, data)
          throw Object.assign(new Error('input/output error'), { code: 'EIO' })
        }
        await atomicWrite(path, data)
      }
    })
    await store.load()
    const committed = committedIn(store)
    store.save(state(1), 1)
    await until(() => gate.inFlight() === 1, 2_000, 'the failing write')
    store.save(state(2), 2)
    gate.release()
    await until(() => committed.includes(2), 5_000, 'the commit of the newer save')
    expect(committed).toEqual([2])
    expect(JSON.parse(readFileSync(join(dir, FILES.story), 'utf8')).value).toEqual({ n: 2 })
    await store.close()
  })

  it('a data file holding JSON deeper than 256 levels or a non-finite number is moved aside like a corrupt one', async () => {
    const dir = tempDir()
    const deep = '['.repeat(300) + ']'.repeat(300)
    writeFileSync(join(dir, FILES.story), `{"format":"vcstudio-multiuser/story","version":1,"owner":"x","timestamp":"${LATE}","value":{"a":${deep}}}`)
    writeFileSync(join(dir, FILES.analytics), `{"format":"vcstudio-multiuser/analytics","version":1,"timestamp":"${LATE}","value":{"hours":1e400}}`)
    const { store, log } = fileStore(dir)
    expect(await store.load()).toBeUndefined()
    const warnings = log.lines.filter((l) => l.level === 'warn').map((l) => l.line)
    expect(warnings).toEqual([
      expect.stringMatching(/story\.json is refused by §1 \(JSON nested over 256 levels deep\) \| moved aside as story\.json\.corrupt-/),
      expect.stringMatching(/analytics\.json is refused by §1 \(JSON holds a number that is not a finite double \(Infinity\)\) \| moved aside as analytics\.json\.corrupt-/)
    ])
    await store.close()

    // At the limit is fine: 255 brackets inside the story object make 256 levels.
    const dir2 = tempDir()
    const ok = '['.repeat(255) + ']'.repeat(255)
    writeFileSync(join(dir2, FILES.story), `{"format":"vcstudio-multiuser/story","version":1,"owner":"x","timestamp":"${LATE}","value":{"a":${ok}}}`)
    const again = fileStore(dir2)
    expect((await again.store.load())?.story.owner).toBe('x')
    await again.store.close()
  })
})

describe('file store: the data dir', () => {
  it('one store per data dir: a second one is refused, naming the pid that holds it; close releases it', async () => {
    const dir = tempDir()
    const first = fileStore(dir)
    await first.store.load()
    expect(JSON.parse(readFileSync(join(dir, PID_NAME), 'utf8'))).toEqual({ pid: process.pid, host: hostname() })
    const second = fileStore(dir)
    const err = await second.store.load().then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(StoreSetupError)
    expect((err as Error).message).toContain(`in use by another server, pid ${process.pid}`)
    await first.store.close()
    expect(existsSync(join(dir, LOCK_NAME))).toBe(false)
    expect(existsSync(join(dir, PID_NAME))).toBe(false)
    const third = fileStore(dir)
    await third.store.load()
    await third.store.close()
  })

  it('the lock of a server that is gone (its pid is dead) is taken over at once, with a warning', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, LOCK_NAME))
    const dead = spawnSync(process.execPath, ['-e', '']).pid as number
    writeFileSync(join(dir, PID_NAME), JSON.stringify({ pid: dead, host: hostname() }))
    const { store, log } = fileStore(dir)
    await store.load()
    expect(log.lines.filter((l) => l.level === 'warn').map((l) => l.line)).toEqual([expect.stringMatching(new RegExp(`taking over the lock .* pid ${dead}, is gone`))])
    expect(JSON.parse(readFileSync(join(dir, PID_NAME), 'utf8')).pid).toBe(process.pid)
    await store.close()
  })

  it('a data dir that cannot be created is a StoreSetupError naming it and the cause', async () => {
    const base = tempDir()
    writeFileSync(join(base, 'a-file'), 'not a directory')
    const { store } = fileStore(join(base, 'a-file', 'data'))
    const err = await store.load().then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(StoreSetupError)
    expect((err as Error).message).toMatch(/cannot create the data dir .*a-file\/data \(ENOTDIR/)
  })
})

// ------------------------------------------------------------ real server processes

const STORY = { scenes: { scene_1: { shots: [['text', 'Moria looks at the clock. ✨']] } }, arrows: [[[-1, 'start'], [0, 'scene_1']]] }
const LATE = '2024/05/01-10:00:00'

/** Sends a chat message, then passes until the `messages` notification; returns its lines. */
async function sayAndRead (client: WireClient, text: string): Promise<unknown> {
  client.send(['message', text])
  expect(await untilYours(client)).toEqual(['yours'])
  client.send('yours')
  const got = await untilYours(client)
  const messages = got.find((v) => Array.isArray(v) && v[0] === 'messages') as [string, unknown] | undefined
  if (messages === undefined) throw new Error(`no messages in ${JSON.stringify(got)}`)
  return messages[1]
}

describe('server restarts', () => {
  it('an orderly restart keeps story, analytics and chat', async () => {
    const dir = join(tempDir(), 'data')
    let server = await startServerProcess(['--data-dir', dir])
    const ann = await joinServer(server.port, PROJECT, { username: 'ann', story: [STORY, LATE], analytics: [{ hours: 3.5 }, LATE] })
    expect(ann.story).toEqual([ann.client.userId, STORY])
    const annId = ann.client.userId
    await sayAndRead(ann.client, 'hello')
    ann.client.close()
    expect(await server.stop()).toBe(0)
    expect(readdirSync(dir).sort()).toEqual(['analytics.json', 'chat.json', 'story.json'])

    server = await startServerProcess(['--data-dir', dir])
    const bob = await joinServer(server.port, PROJECT, { username: 'bob' })
    expect(bob.story).toEqual([annId, STORY])
    expect(bob.analytics).toEqual({ hours: 3.5 })
    expect(await sayAndRead(bob.client, 'again')).toEqual([['Multiuser Server', 'Server Started'], ['ann', 'hello'], ['bob', 'again']])
    bob.client.close()
    expect(await server.stop()).toBe(0)
  })

  it('a SIGKILL right after acknowledged changes keeps them (§8)', async () => {
    const dir = join(tempDir(), 'data')
    let server = await startServerProcess(['--data-dir', dir])
    const ann = await joinServer(server.port, PROJECT, { username: 'ann' })
    const annId = ann.client.userId
    const newer = { ...STORY, version: 2 }
    ann.client.send('story')
    expect(await ann.client.recv()).toBe('story')
    ann.client.send([newer, LATE])
    expect(await ann.client.recv()).toEqual([ann.client.userId, newer])
    ann.client.send('ack')
    expect(await ann.client.recv()).toBe('yours')
    ann.client.send(['message', 'just before the kill'])
    expect(await ann.client.recv()).toBe('yours')
    await server.kill()
    ann.client.close()

    server = await startServerProcess(['--data-dir', dir])
    const bob = await joinServer(server.port, PROJECT, { username: 'bob' })
    expect(bob.story).toEqual([annId, newer])
    expect(await sayAndRead(bob.client, 'after')).toEqual([['Multiuser Server', 'Server Started'], ['ann', 'just before the kill'], ['bob', 'after']])
    bob.client.close()
    expect(await server.stop()).toBe(0)
  })

  it('a corrupt file is moved aside with one log line, and the server starts', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, FILES.story), 'this is not JSON')
    const server = await startServerProcess(['--data-dir', dir])
    const warnings = server.output().split('\n').filter((l) => l.includes('story.json'))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/WARN.*is not JSON .*moved aside as story\.json\.corrupt-/)
    const aside = readdirSync(dir).filter((n) => n.startsWith('story.json.corrupt-'))
    expect(aside).toHaveLength(1)
    expect(readFileSync(join(dir, aside[0]), 'utf8')).toBe('this is not JSON')
    const ann = await joinServer(server.port, PROJECT, { username: 'ann' })
    expect(ann.story).toEqual(['0.0.0.0:0000', {}])
    ann.client.close()
    expect(await server.stop()).toBe(0)
  })

  it('an unusable data dir stops the start with one clear line and exit code 1', async () => {
    const base = tempDir()
    writeFileSync(join(base, 'a-file'), 'not a directory')
    const dir = join(base, 'a-file', 'data') // fails even for root: ENOTDIR
    const err = await startServerProcess(['--data-dir', dir]).then(() => undefined, (e: unknown) => e as Error)
    expect(err?.message).toMatch(/server exited with 1/)
    const lines = (err?.message ?? '').split('\n').filter((l) => /ERROR/.test(l))
    expect(lines).toEqual([expect.stringMatching(/cannot start \| cannot create the data dir .*a-file\/data \(ENOTDIR/)])
    expect(err?.message).not.toMatch(/\n\s+at /) // no stack trace
  })

  it('--no-persist writes nothing; without --data-dir the files go to ./.multiuser/<project>/', async () => {
    const cwd = tempDir()
    let server = await startServerProcess(['--no-persist'], cwd)
    const ann = await joinServer(server.port, PROJECT, { username: 'ann', story: [STORY, LATE], analytics: [{ a: 1 }, LATE] })
    await sayAndRead(ann.client, 'hello')
    ann.client.close()
    expect(await server.stop()).toBe(0)
    expect(readdirSync(cwd)).toEqual([])

    server = await startServerProcess([], cwd)
    const bob = await joinServer(server.port, PROJECT, { username: 'bob', story: [STORY, LATE] })
    bob.client.close()
    expect(await server.stop()).toBe(0)
    expect(readdirSync(join(cwd, '.multiuser', PROJECT)).sort()).toEqual(['story.json'])
  })
})
