/**
 * The store's edges that mutation testing found unpinned (issue 12, see
 * docs/mutation.md): the memory store, names of data dirs, the serializer on
 * values JSON.stringify treats specially, every way a data file can be bad,
 * leftover temp files, locks held by others, a part that cannot be moved
 * aside, a data dir that vanishes, and retries after a flush. Real files in a
 * temp dir; no durations asserted (the backoff runs on a fake clock).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import type { DurableState } from '../actors/coordinator.ts'
import { INITIAL_ANALYTICS, INITIAL_CHAT, INITIAL_STORY } from '../actors/shared-state.ts'
import { createStore, defaultDataDir, FILES, fileSafeName, LOCK_NAME, PID_NAME, serializeJson, StoreSetupError } from '../src/store.ts'
import { committedIn, fileStoreIn, memoryLog, numberedState, tempDirs, until } from './helpers/store-fixture.ts'

const { tempDir, removeTempDirs } = tempDirs('store-edges-')
afterAll(removeTempDirs)

const LATE = '2024/05/01-10:00:00'

describe('the memory store (--no-persist)', () => {
  it('is not durable, reports each change committed at once with its number, and keeps the last state', async () => {
    const log = memoryLog()
    const store = createStore({ projectName: 'Test Film', persist: false }, log)
    expect(store.durable).toBe(false)
    expect(await store.load()).toBeUndefined()
    const committed = committedIn(store)
    store.save(numberedState(1), 1)
    store.save(numberedState(2), 2)
    expect(committed).toEqual([1, 2])
    expect((await store.load())?.story.value).toEqual({ n: 2 })
    await store.flush()
    await store.close()
    expect(log.at('debug')).toEqual([expect.stringContaining('persistence | off')])
  })

  it('a file store is durable', () => {
    expect(fileStoreIn(tempDir()).store.durable).toBe(true)
  })
})

describe('names of data dirs', () => {
  it('the default data dir is ./.multiuser/<file-safe name>', () => {
    expect(defaultDataDir('Test Film')).toBe(join('.multiuser', 'Test Film'))
    expect(defaultDataDir('a/b')).toBe(join('.multiuser', fileSafeName('a/b')))
  })

  it('trims dots and spaces at the ends, cuts at 100 characters, guards every reserved Windows name, and normalizes to NFC', () => {
    expect(fileSafeName(' .Film. ')).toMatch(/^Film-[0-9a-f]{8}$/)
    expect(fileSafeName('a.b c_d-e')).toBe('a.b c_d-e')
    const long = 'x'.repeat(150)
    expect(fileSafeName(long)).toMatch(new RegExp(`^${'x'.repeat(100)}-[0-9a-f]{8}$`))
    expect(fileSafeName('x'.repeat(100))).toBe('x'.repeat(100))
    for (const reserved of ['con', 'PRN', 'Aux', 'nul', 'com1', 'LPT9', 'con.txt', 'nul.tar.gz']) {
      expect(fileSafeName(reserved)).toMatch(new RegExp(`^_${reserved.replace(/\./g, '\\.')}-[0-9a-f]{8}$`))
    }
    for (const fine of ['console', 'icon', 'com', 'lpt', 'auxiliary', 'xcon']) expect(fileSafeName(fine)).toBe(fine)
    const nfc = 'Caf\u00e9'
    expect(fileSafeName(nfc)).toBe(nfc)
    const nfd = 'Cafe\u0301'
    expect(fileSafeName(nfd)).toMatch(new RegExp(`^${nfc}-[0-9a-f]{8}$`))
    expect(fileSafeName(nfd)).not.toBe(fileSafeName(nfc))
  })
})

describe('serializeJson: what JSON.stringify does specially', () => {
  const heavy = (n: number): Record<string, unknown> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]))

  it('undefined, functions and symbols: null in arrays, left out of objects (also as the first key), undefined alone is null', async () => {
    const odd = [undefined, () => 1, Symbol('s'), 1]
    // Heavy enough that the sliced walk handles the containers itself, light parts natively.
    const value = {
      first: undefined,
      f: () => 2,
      s: Symbol('t'),
      list: [...odd, ...Array.from({ length: 3_000 }, (_, i) => i)],
      wide: { gone: undefined, ...heavy(3_000), last: undefined },
      small: { gone: undefined, a: 1, f: () => 3, b: [undefined] },
      // A string under the piece size inside a walked container: written whole, as a string.
      mid: 'm'.repeat(10_000)
    }
    const want = JSON.stringify(value)
    expect((await serializeJson(value, 1)).toString('utf8')).toBe(want)
    expect((await serializeJson(value, 0)).toString('utf8')).toBe(want)
    expect((await serializeJson(undefined, 0)).toString('utf8')).toBe('null')
    expect((await serializeJson(undefined, 1)).toString('utf8')).toBe('null')
    expect((await serializeJson([undefined, ...Array.from({ length: 3_000 }, () => 0)], 1)).toString('utf8').slice(0, 7)).toBe('[null,0')
  })

  it('a long string is cut between pieces, never inside a surrogate pair, whichever pair sits at the cut', async () => {
    // 256 Ki characters a piece: put the first and the last high surrogate there.
    for (const pair of ['\ud800\udc00', '\udbff\udfff', '\ud83d\ude00']) {
      const s = `${'a'.repeat(256 * 1024 - 1)}${pair}${'b'.repeat(10)}`
      const got = await serializeJson({ s }, 1)
      expect(got.toString('utf8')).toBe(JSON.stringify({ s }))
    }
    // A lone low surrogate at the cut is no pair: it is cut there, escaped as JSON.stringify does.
    const lone = `${'a'.repeat(256 * 1024 - 1)}\udc00${'b'.repeat(10)}`
    expect((await serializeJson([lone], 1)).toString('utf8')).toBe(JSON.stringify([lone]))
    // A lone high surrogate at the very end: the last piece ends there (a broken walk would loop on it).
    const end = `${'a'.repeat(300_000)}\ud800`
    expect((await serializeJson([end], 1)).toString('utf8')).toBe(JSON.stringify([end]))
  })
})

describe('bad data files: each is moved aside, named with its problem, and the part starts empty', () => {
  const story = (fields: Record<string, unknown>): string => JSON.stringify({ format: 'vcstudio-multiuser/story', version: 1, savedAt: '', ...fields })
  const analytics = (fields: Record<string, unknown>): string => JSON.stringify({ format: 'vcstudio-multiuser/analytics', version: 1, savedAt: '', ...fields })
  const chat = (lines: unknown): string => JSON.stringify({ format: 'vcstudio-multiuser/chat', version: 1, savedAt: '', lines })
  const cases: Array<[string, keyof typeof FILES, string, RegExp]> = [
    ['not an object', 'story', '[1,2]', /is not a vcstudio-multiuser\/story file/],
    ['null', 'analytics', 'null', /is not a vcstudio-multiuser\/analytics file/],
    ['another part\'s file', 'story', analytics({ timestamp: LATE, value: 1 }), /is not a vcstudio-multiuser\/story file/],
    ['no version', 'chat', JSON.stringify({ format: 'vcstudio-multiuser/chat', lines: [] }), /is format version undefined, this server reads 1/],
    ['an owner that is no string', 'story', story({ owner: 7, timestamp: LATE, value: {} }), /is bad owner \|/],
    ['a timestamp that is no string', 'story', story({ owner: 'o', timestamp: 1, value: {} }), /is bad timestamp \|/],
    ['a story value that is no object', 'story', story({ owner: 'o', timestamp: LATE, value: [1] }), /is bad value \(not an object\)/],
    ['a null story value', 'story', story({ owner: 'o', timestamp: LATE, value: null }), /is bad value \(not an object\)/],
    ['a string story value', 'story', story({ owner: 'o', timestamp: LATE, value: 'x' }), /is bad value \(not an object\)/],
    ['analytics without a timestamp', 'analytics', analytics({ value: 1 }), /analytics\.json is bad timestamp \|/],
    // The §1 check refuses a missing value first (so decode's own "bad value (missing)" is never reached).
    ['analytics without a value', 'analytics', analytics({ timestamp: LATE }), /is refused by §1 \(not a JSON value/],
    ['chat lines that are no list', 'chat', chat({ 0: ['a', 'b'] }), /is bad lines \(not a list of \[username, text\]\)/],
    ['a chat line of three', 'chat', chat([['a', 'b'], ['a', 'b', 'c']]), /is bad lines/],
    ['a chat line of one', 'chat', chat([['a']]), /is bad lines/],
    ['a chat line that is no list', 'chat', chat(['ab']), /is bad lines/],
    ['a chat line with a number for its user', 'chat', chat([[1, 'b']]), /is bad lines/],
    ['a chat line with a number for its text', 'chat', chat([['a', 2]]), /is bad lines/],
    ['chat lines deeper than §1 allows', 'chat', chat([['a', 'b'], ['[[', 'x']]).replace('"[["', '['.repeat(300) + ']'.repeat(300)), /refused by §1/]
  ]
  it.each(cases)('%s', async (_what, part, text, problem) => {
    const dir = tempDir()
    writeFileSync(join(dir, FILES[part]), text)
    const { store, log } = fileStoreIn(dir)
    expect(await store.load()).toBeUndefined()
    expect(log.at('warn')).toEqual([expect.stringMatching(problem)])
    expect(log.at('warn')[0]).toContain(`starting with an empty ${part}`)
    const aside = readdirSync(dir).filter((n) => n.startsWith(`${FILES[part]}.corrupt-`))
    expect(aside).toHaveLength(1)
    // Named for the time, with no ':' (not allowed in Windows file names).
    expect(aside[0].slice(FILES[part].length)).toMatch(/^\.corrupt-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/)
    expect(readFileSync(join(dir, aside[0]), 'utf8')).toBe(text)
    await store.close()
  })

  it('good files of each part load, analytics whose value is null included', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, FILES.story), story({ owner: 'o', timestamp: LATE, value: { a: 1 } }))
    writeFileSync(join(dir, FILES.analytics), analytics({ timestamp: LATE, value: null }))
    writeFileSync(join(dir, FILES.chat), chat([...INITIAL_CHAT, ['ann', 'hi']]))
    const { store, log } = fileStoreIn(dir) // no chat limit: the history is kept as it is
    expect(await store.load()).toEqual({
      story: { owner: 'o', timestamp: LATE, value: { a: 1 } },
      analytics: { timestamp: LATE, value: null },
      chat: [...INITIAL_CHAT, ['ann', 'hi']]
    })
    expect(log.at('warn')).toEqual([])
    await store.close()
  })

  it('any one part alone is restored, the others start as new', async () => {
    for (const [part, text] of [['story', story({ owner: 'o', timestamp: LATE, value: { a: 1 } })], ['analytics', analytics({ timestamp: LATE, value: 5 })], ['chat', chat([['ann', 'hi']])]] as const) {
      const dir = tempDir()
      writeFileSync(join(dir, FILES[part]), text)
      const { store } = fileStoreIn(dir)
      const loaded = await store.load()
      expect(loaded).toBeDefined()
      expect(Object.keys(loaded ?? {}).sort()).toEqual(['analytics', 'chat', 'story'])
      expect(loaded?.story).toEqual(part === 'story' ? { owner: 'o', timestamp: LATE, value: { a: 1 } } : INITIAL_STORY)
      expect(loaded?.analytics).toEqual(part === 'analytics' ? { timestamp: LATE, value: 5 } : INITIAL_ANALYTICS)
      expect(loaded?.chat).toEqual(part === 'chat' ? [['ann', 'hi']] : INITIAL_CHAT)
      await store.close()
    }
  })

  it('an unreadable file (a directory where the file should be) is named with its error code and moved aside', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, FILES.analytics))
    const { store, log } = fileStoreIn(dir)
    expect(await store.load()).toBeUndefined()
    expect(log.at('warn')).toEqual([expect.stringMatching(/analytics\.json is unreadable \(EISDIR: .*\) \| moved aside as analytics\.json\.corrupt-/)])
    expect(log.at('warn')[0]).not.toContain('EISDIR: EISDIR') // Node's message already starts with its code
    expect(existsSync(join(dir, FILES.analytics))).toBe(false)
    await store.close()
  })
})

describe('the data dir', () => {
  it('removes the temp files a killed server left, of every part, and nothing else', async () => {
    const dir = tempDir()
    const leftovers = ['story.json.1', 'analytics.json.4294967295', 'chat.json.77']
    const kept = ['story.json.tmp', 'story.json.1x', 'notes.json.1', 'xchat.json.1', 'chat.json.', 'chat.json']
    for (const name of [...leftovers, ...kept]) writeFileSync(join(dir, name), name === 'chat.json' ? JSON.stringify({ format: 'vcstudio-multiuser/chat', version: 1, lines: [] }) : 'x')
    const { store } = fileStoreIn(dir)
    await store.load()
    const left = readdirSync(dir)
    for (const name of leftovers) expect(left).not.toContain(name)
    for (const name of kept) expect(left).toContain(name)
    await store.close()
  })

  it('a lock whose owner is on another host is refused, naming that host; one whose owner is unknown is refused as fresh', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, LOCK_NAME))
    writeFileSync(join(dir, PID_NAME), JSON.stringify({ pid: 999_999_999, host: 'render-farm-7' }))
    const refused = async (): Promise<string> => {
      const { store } = fileStoreIn(dir)
      const err = await store.load().then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(StoreSetupError)
      return (err as Error).message
    }
    expect(await refused()).toContain('in use by another server, pid 999999999 on render-farm-7')
    const { store } = fileStoreIn(dir)
    expect(await store.load().catch((e: Error) => e.name)).toBe('StoreSetupError')
    for (const owner of ['{"pid":"12","host":"h"}', '{"pid":12}', '{"host":"h"}', 'not json']) {
      writeFileSync(join(dir, PID_NAME), owner)
      expect(await refused()).toMatch(/is in use by another server \(its lock .*server\.lock is fresh\)/)
    }
    rmSync(join(dir, PID_NAME))
    expect(await refused()).toMatch(/lock .* is fresh/)
    expect(existsSync(join(dir, LOCK_NAME))).toBe(true) // a refused server takes nothing over
  })

  it('a part whose bad file cannot be moved aside is never written (the file is kept), and its changes still count as committed', async () => {
    const dir = tempDir()
    const garbage = '{"not json'
    writeFileSync(join(dir, FILES.story), garbage)
    const at = new Date('2025-06-01T12:00:00.000Z')
    // The name it would be moved aside as is taken by a directory: the rename fails.
    mkdirSync(join(dir, `${FILES.story}.corrupt-2025-06-01T12-00-00-000Z`))
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(at)
    let loaded: DurableState | undefined
    const { store, log } = fileStoreIn(dir)
    try {
      loaded = await store.load()
    } finally {
      vi.useRealTimers()
    }
    expect(loaded).toBeUndefined()
    expect(log.at('error')).toEqual([expect.stringMatching(/story\.json is not JSON .* could not be moved aside \(.*\) \| starting with an empty story, which will NOT be saved/)])
    expect(log.at('warn')).toEqual([])
    const committed = committedIn(store)
    store.save({ ...numberedState(1), chat: [...INITIAL_CHAT, ['ann', 'hi']] }, 1)
    await until(() => committed.includes(1), 'the commit')
    await store.flush()
    expect(readFileSync(join(dir, FILES.story), 'utf8')).toBe(garbage)
    expect(JSON.parse(readFileSync(join(dir, FILES.chat), 'utf8')).lines.at(-1)).toEqual(['ann', 'hi'])
    expect(log.at('error')).toHaveLength(1) // its flush does not complain: the part is not meant to be saved
    await store.close()
  })

  it('a data dir removed while the server runs is made again by the next write', async () => {
    const dir = join(tempDir(), 'data')
    const { store, log } = fileStoreIn(dir, { retryMs: 1, maxRetryMs: 1 })
    expect(await store.load()).toBeUndefined()
    rmSync(dir, { recursive: true, force: true })
    const committed = committedIn(store)
    store.save(numberedState(3), 3)
    await until(() => committed.includes(3), 'the commit after the data dir was made again')
    expect(JSON.parse(readFileSync(join(dir, FILES.story), 'utf8')).value).toEqual({ n: 3 })
    const warnings = log.at('warn')
    expect(warnings[0]).toMatch(/cannot save .*story\.json \(ENOENT/)
    expect(warnings.at(-1)).toMatch(/saving .*story\.json works again, after \d+ failed attempts/)
    await store.close()
  })

  it('a save before any load creates the data dir (with its parents) for its write', async () => {
    const dir = join(tempDir(), 'a', 'b')
    const { store, log } = fileStoreIn(dir)
    const committed = committedIn(store)
    store.save(numberedState(4), 4)
    await until(() => committed.includes(4), 'the commit')
    expect(Object.values(FILES).every((f) => existsSync(join(dir, f)))).toBe(true)
    expect(log.at('warn')).toEqual([]) // made before the first write, not after it failed
  })
})

describe('flush, close and retries', () => {
  it('flush waits for a write already in flight; close of a store never loaded, or closed twice, resolves', async () => {
    const gates: Array<() => void> = []
    let calls = 0
    const { store } = fileStoreIn(tempDir(), {
      writeFile: async () => { calls++; await new Promise<void>((resolve) => gates.push(resolve)) }
    })
    await store.load()
    store.save(numberedState(1), 1)
    await until(() => calls === 1, 'the write')
    let flushed = false
    const flushing = store.flush().then(() => { flushed = true })
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
    expect(flushed).toBe(false) // the write is still held
    for (const g of gates.splice(0)) g()
    await flushing
    expect(calls).toBe(1)
    await store.close()
    await store.close()
    await fileStoreIn(tempDir()).store.close()
  })

  it('an error without a code is logged by its message alone', async () => {
    let fail = true
    const { store, log } = fileStoreIn(tempDir(), {
      retryMs: 1,
      writeFile: async () => { if (fail) { fail = false; throw new Error('the disk said no') } }
    })
    await store.load()
    const committed = committedIn(store)
    store.save(numberedState(2), 1)
    await until(() => committed.includes(1), 'the commit')
    expect(log.at('warn')[0]).toMatch(/cannot save .*story\.json \(the disk said no\) \|/)
    await store.close()
  })

  it('what a flush could not write is retried afterwards, with no new change', async () => {
    let failing = true
    const written: string[] = []
    const { store, log } = fileStoreIn(tempDir(), {
      retryMs: 1,
      maxRetryMs: 1,
      writeFile: async (path, data) => {
        if (failing) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
        written.push(path)
        expect(JSON.parse(Buffer.from(data).toString('utf8')).format).toMatch(/^vcstudio-multiuser\//)
      }
    })
    await store.load()
    const committed = committedIn(store)
    store.save(numberedState(5), 1)
    await store.flush()
    expect(log.at('error')).toEqual(expect.arrayContaining([expect.stringMatching(/could not save .*story\.json/)]))
    expect(committed).toEqual([])
    failing = false
    await until(() => committed.includes(1), 'the retry after the flush')
    expect(written.some((p) => p.endsWith(FILES.story))).toBe(true)

    // After a flush, a new streak of failures is still retried (the flush's own no-retry rule is over).
    failing = true
    store.save(numberedState(6), 2)
    await until(() => log.at('warn').filter((l) => l.includes('cannot save')).length === 2, 'the second streak')
    failing = false
    await until(() => committed.includes(2), 'the retry of the second streak')
    await store.close()
  })

  it('the backoff doubles from retryMs up to maxRetryMs, no further (fake clock)', async () => {
    let failuresLeft = 5
    const attempts: number[] = []
    const { store } = fileStoreIn(tempDir(), {
      delayMs: 5,
      retryMs: 10,
      maxRetryMs: 30,
      sliceMs: 0,
      writeFile: async (path) => {
        if (!path.endsWith(FILES.story)) return
        attempts.push(Date.now())
        if (failuresLeft-- > 0) throw Object.assign(new Error('input/output error'), { code: 'EIO' })
      }
    })
    const committed = committedIn(store)
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] })
    try {
      const t0 = Date.now()
      store.save(numberedState(1), 1)
      for (let ms = 0; ms < 10_000 && !committed.includes(1); ms++) {
        await vi.advanceTimersByTimeAsync(1)
        while (vi.getTimerCount() === 0 && !committed.includes(1)) await new Promise((resolve) => setImmediate(resolve))
      }
      expect(attempts.map((t) => t - t0)).toEqual([5, 15, 35, 65, 95, 125]) // 10, 20, then 30 and 30 and 30
    } finally {
      vi.useRealTimers()
    }
    await store.close()
  })
})
