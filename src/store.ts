import { createHash } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import lockfile from 'proper-lockfile'
import writeFileAtomic from 'write-file-atomic'
import type { DurableState } from '../actors/coordinator.ts'
import { capChat, INITIAL_ANALYTICS, INITIAL_CHAT, INITIAL_STORY, type AnalyticsState, type StoryState } from '../actors/shared-state.ts'
import type { JsonValue } from '../protocol/frame.ts'
import { checkJsonValue } from '../protocol/json-value.ts'
import type { ChatLine, JsonObject } from '../protocol/messages.ts'
import type { ServerLog } from './log.ts'
import { OperatorError } from './operator-error.ts'

/** Where story, analytics and chat survive restarts (issue: persistence; §8 acknowledged means durable). */
export interface Store {
  /** False for the memory store: nothing ever waits for a commit. */
  readonly durable: boolean
  /**
   * Sets the data dir up (creates it, takes its lock) and reads the saved
   * state, or undefined when there is none. Rejects with a StoreSetupError,
   * within `setupTimeoutMs`, when the data dir cannot be used.
   */
  load: () => Promise<DurableState | undefined>
  /**
   * Change number `version` (increasing from 1): written at once, or with the
   * next group when a write of that file is in flight (group commit).
   */
  save: (state: DurableState, version: number) => void
  /** `listener(v)` once every change numbered v or less is on disk (file and directory flushed). */
  onCommitted: (listener: (version: number) => void) => void
  /** Writes whatever is pending; resolves once it is on disk. */
  flush: () => Promise<void>
  /** Flushes, then releases the data dir's lock. */
  close: () => Promise<void>
}

/** The data dir cannot be used: the server must not start (the message is for the operator, one line). */
export class StoreSetupError extends OperatorError {
  override readonly name = 'StoreSetupError'
}

export interface StoreOptions {
  readonly projectName: string
  readonly persist: false | { readonly dataDir?: string }
  /** A restored chat keeps only its newest lines, this many (the coordinator's chat limit). */
  readonly chatLimit?: number
  /** Knobs of the file store; the defaults are what the server runs with (tests and the bench change them). */
  readonly tuning?: Partial<FileStoreTuning>
}

export interface FileStoreTuning {
  /** A first change waits this long before its write starts (0: at once; changes during a write go in the next one anyway). */
  readonly delayMs: number
  /** Creating and locking the data dir gives up after this long (a mount that never answers). */
  readonly setupTimeoutMs: number
  /**
   * Serialization runs on the main thread in slices of about this many ms,
   * yielding to the event loop between them; 0 = one JSON.stringify call.
   */
  readonly sliceMs: number
  /**
   * A file whose last write was at most this many bytes is serialized in one
   * JSON.stringify call: for a story of a few MiB that is a stall of a few ms
   * (less than parsing the client's frame was), while slicing would make its
   * write, and so its acknowledgement (§8), wait several turns of a busy loop.
   */
  readonly oneCallBytes: number
  /** First retry after a failed write; doubles per failure up to `maxRetryMs`. */
  readonly retryMs: number
  readonly maxRetryMs: number
  /** Atomic replace of `path` by `data` (default: write-file-atomic, fsync on). */
  readonly writeFile: (path: string, data: Uint8Array) => Promise<void>
}

export const DEFAULT_TUNING: Omit<FileStoreTuning, 'writeFile'> = {
  delayMs: 0, setupTimeoutMs: 5_000, sliceMs: 5, oneCallBytes: 2 * 1024 * 1024, retryMs: 250, maxRetryMs: 10_000
}

/** Beside the data files: the lock (a directory, proper-lockfile's) and who holds it. */
export const LOCK_NAME = 'server.lock'
export const PID_NAME = 'server.pid'

/** The on-disk format: one file per part, each a JSON envelope with these two fields first. */
export const FORMAT_VERSION = 1
export const FILES = { story: 'story.json', analytics: 'analytics.json', chat: 'chat.json' } as const
type Part = keyof typeof FILES

export function createStore (options: StoreOptions, log: ServerLog): Store {
  if (options.persist === false) {
    log.debug('persistence | off (--no-persist) | story, analytics and chat live in memory only')
    return createMemoryStore()
  }
  const dir = resolve(options.persist.dataDir ?? defaultDataDir(options.projectName))
  return createFileStore(dir, options, log)
}

/** Keeps the last saved state in memory; writes nothing anywhere, so every change counts as committed. */
export function createMemoryStore (): Store {
  let state: DurableState | undefined
  const listeners: Array<(version: number) => void> = []
  return {
    durable: false,
    load: async () => state,
    save: (s, version) => {
      state = s
      for (const l of listeners) l(version)
    },
    onCommitted: (listener) => { listeners.push(listener) },
    flush: async () => {},
    close: async () => {}
  }
}

// ------------------------------------------------------------ where files go

/** `./.multiuser/<project name made file-safe>/`, relative to the working directory. */
export function defaultDataDir (projectName: string): string {
  return join('.multiuser', fileSafeName(projectName))
}

const WINDOWS_RESERVED = /^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i

/**
 * A directory name for a project name: letters, digits, space, `.`, `_` and
 * `-` are kept, anything else becomes `_`. When anything had to change, a
 * short hash of the real name is appended, so "A/B" and "A_B" do not share
 * a directory.
 */
export function fileSafeName (projectName: string): string {
  let safe = projectName.normalize('NFC').replace(/[^\p{L}\p{N} ._-]/gu, '_').replace(/^[ .]+|[ .]+$/g, '').slice(0, 100)
  if (WINDOWS_RESERVED.test(safe)) safe = `_${safe}`
  if (safe === projectName && safe !== '') return safe
  const hash = createHash('sha256').update(projectName).digest('hex').slice(0, 8)
  return `${safe === '' ? 'project' : safe}-${hash}`
}

// ------------------------------------------------------------ serialization

const STRING_PIECE = 256 * 1024
/** Subtrees lighter than this (about 1 node per unit, 32 string chars per unit) go to JSON.stringify whole. */
const NATIVE_WEIGHT = 2048

/** False as soon as the container `value` weighs more than `cap` (so the cost is bounded by `cap`). */
// Stryker disable all: tuning only: isLight picks between JSON.stringify of a whole subtree and the walk, which give the same bytes (its mutants that crash are ignored with the rest; docs/mutation.md)
function isLight (value: object, cap: number): boolean {
  let budget = cap
  const stack: object[] = [value]
  const weigh = (v: unknown): void => {
    if (typeof v === 'string') budget -= v.length >> 5
    else if (typeof v === 'object' && v !== null) stack.push(v)
  }
  while (stack.length > 0) {
    const v = stack.pop() as object
    if (Array.isArray(v)) {
      budget -= 1 + v.length
      for (let i = 0; i < v.length && budget >= 0; i++) weigh(v[i])
    } else {
      const keys = Object.keys(v)
      budget -= 1 + 2 * keys.length
      for (let i = 0; i < keys.length && budget >= 0; i++) weigh((v as Record<string, unknown>)[keys[i]])
    }
    if (budget < 0) return false
  }
  return true
}
// Stryker restore all

type Frame =
  | { readonly array: readonly unknown[], i: number }
  | { readonly object: Readonly<Record<string, unknown>>, readonly keys: readonly string[], i: number, written: number }
  | { readonly string: string, i: number }

/**
 * JSON of `value` as UTF-8 bytes, the same bytes as `JSON.stringify` for
 * JSON data (what the coordinator holds), computed in slices of about
 * `sliceMs` of main-thread time with the event loop running in between, so
 * a 10 MiB story does not stall the sessions. The value must not change
 * meanwhile (the coordinator's values are immutable). `sliceMs` 0: one
 * `JSON.stringify` call.
 *
 * Why not a worker thread: handing the value to a worker clones it on the
 * main thread, which costs as much as JSON.stringify itself.
 */
export async function serializeJson (value: unknown, sliceMs: number): Promise<Buffer> {
  // Stryker disable next-line ConditionalExpression,EqualityOperator: tuning only: one JSON.stringify call or the sliced walk, the same bytes
  if (sliceMs <= 0) return Buffer.from(JSON.stringify(value) ?? 'null')
  const chunks: Buffer[] = []
  let out = ''
  const stack: Frame[] = []
  const open = (v: unknown): void => {
    // Stryker disable next-line StringLiteral: tuning only: a string walked in pieces or written whole, the same bytes
    if (typeof v === 'string' && v.length > STRING_PIECE) {
      out += '"'
      stack.push({ string: v, i: 0 })
    } else if (typeof v !== 'object' || v === null || isLight(v, NATIVE_WEIGHT)) {
      out += JSON.stringify(v) ?? 'null'
    } else if (Array.isArray(v)) {
      out += '['
      stack.push({ array: v, i: 0 })
    } else {
      out += '{'
      stack.push({ object: v as Record<string, unknown>, keys: Object.keys(v), i: 0, written: 0 })
    }
  }
  open(value)
  // Stryker disable next-line ArithmeticOperator: tuning only: where the first slice ends
  let deadline = performance.now() + sliceMs
  let steps = 0
  while (stack.length > 0) {
    const f = stack[stack.length - 1]
    if ('array' in f) {
      if (f.i === f.array.length) {
        out += ']'
        stack.pop()
      } else {
        if (f.i > 0) out += ','
        const v = f.array[f.i++]
        // Stryker disable next-line LogicalOperator,StringLiteral: equivalent: open() writes JSON.stringify(v) ?? 'null', which is null for these too
        open(v === undefined || typeof v === 'function' || typeof v === 'symbol' ? null : v)
      }
    } else if ('object' in f) {
      if (f.i === f.keys.length) {
        out += '}'
        stack.pop()
      } else {
        const key = f.keys[f.i++]
        const v = f.object[key]
        if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue
        if (f.written++ > 0) out += ','
        out += JSON.stringify(key) + ':'
        open(v)
      }
    } else {
      // Stryker disable next-line MethodExpression: equivalent: the piece is cut elsewhere, never inside a pair: the same bytes
      let end = Math.min(f.string.length, f.i + STRING_PIECE)
      const last = f.string.charCodeAt(end - 1)
      // Stryker disable next-line AssignmentOperator: equivalent: a piece one longer still ends after the pair, never inside it
      if (end < f.string.length && last >= 0xd800 && last <= 0xdbff) end -= 1 // keep a surrogate pair whole
      out += JSON.stringify(f.string.slice(f.i, end)).slice(1, -1)
      f.i = end
      if (end === f.string.length) {
        out += '"'
        stack.pop()
      }
    }
    // Stryker disable next-line ConditionalExpression,EqualityOperator,ArithmeticOperator: tuning only: the chunk size, the same bytes
    if (out.length >= 64 * 1024) {
      chunks.push(Buffer.from(out))
      out = ''
    }
    // Stryker disable next-line ConditionalExpression,LogicalOperator,EqualityOperator,UpdateOperator,BlockStatement: tuning only: when a slice yields, the same bytes
    if ((++steps & 7) === 0 && performance.now() >= deadline) {
      await new Promise((resolve) => setImmediate(resolve))
      // Stryker disable next-line ArithmeticOperator: tuning only: where the next slice ends
      deadline = performance.now() + sliceMs
    }
  }
  chunks.push(Buffer.from(out))
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
}

// ------------------------------------------------------------ file format

const formatOf = (part: Part): string => `vcstudio-multiuser/${part}`

interface Envelope { format: string, version: number, savedAt: string }

function envelope (part: Part, body: Record<string, unknown>): Envelope & Record<string, unknown> {
  return { format: formatOf(part), version: FORMAT_VERSION, savedAt: new Date().toISOString(), ...body }
}

const ENCODERS: { [P in Part]: (value: PartValue[P]) => unknown } = {
  story: (s) => envelope('story', { owner: s.owner, timestamp: s.timestamp, value: s.value }),
  analytics: (a) => envelope('analytics', { timestamp: a.timestamp, value: a.value }),
  chat: (lines) => envelope('chat', { lines })
}

interface PartValue { story: StoryState, analytics: AnalyticsState, chat: readonly ChatLine[] }

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** The part's value from a file's text, or a reason it is unusable. */
function decode<P extends Part> (part: P, text: string): { value: PartValue[P] } | { problem: string } {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    return { problem: `not JSON (${(err as Error).message})` }
  }
  if (!isObject(doc) || doc.format !== formatOf(part)) return { problem: `not a ${formatOf(part)} file` }
  if (doc.version !== FORMAT_VERSION) return { problem: `format version ${JSON.stringify(doc.version)}, this server reads ${FORMAT_VERSION}` }
  // §1: a value no client could have sent (too deep, or 1e400 read as Infinity) is never served.
  const limits = checkJsonValue(part === 'chat' ? doc.lines : doc.value)
  if (!limits.ok) return { problem: `refused by §1 (${limits.reason})` }
  const bad = (what: string): { problem: string } => ({ problem: `bad ${what}` })
  switch (part) {
    case 'story': {
      if (typeof doc.owner !== 'string') return bad('owner')
      if (typeof doc.timestamp !== 'string') return bad('timestamp')
      if (!isObject(doc.value)) return bad('value (not an object)')
      const story: StoryState = { owner: doc.owner, timestamp: doc.timestamp, value: doc.value as JsonObject }
      return { value: story as PartValue[P] }
    }
    case 'analytics': {
      if (typeof doc.timestamp !== 'string') return bad('timestamp')
      if (!('value' in doc)) return bad('value (missing)')
      const analytics: AnalyticsState = { timestamp: doc.timestamp, value: doc.value as JsonValue }
      return { value: analytics as PartValue[P] }
    }
    default: {
      const lines = doc.lines
      if (!Array.isArray(lines) || !lines.every((l) => Array.isArray(l) && l.length === 2 && typeof l[0] === 'string' && typeof l[1] === 'string')) {
        return bad('lines (not a list of [username, text])')
      }
      return { value: lines as readonly ChatLine[] as PartValue[P] }
    }
  }
}

// ------------------------------------------------------------ the file store

const describeError = (err: unknown): string => {
  const e = err as NodeJS.ErrnoException
  // Stryker disable next-line OptionalChaining: equivalent but for a thrown null, which nothing here throws
  const message = String(e?.message ?? err)
  // Stryker disable next-line OptionalChaining: equivalent but for a thrown null, which nothing here throws
  return e?.code !== undefined && !message.startsWith(e.code) ? `${e.code}: ${message}` : message
}

/** Makes a rename in `dir` durable (write-file-atomic syncs the file, not its directory). Best effort: not every OS can. */
async function syncDirectory (dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => undefined)
  try {
    await handle?.sync()
  } catch {
    // Directories cannot be synced everywhere (Windows); the file itself was.
  } finally {
    await handle?.close()
  }
}

/** The atomic replace the server runs with: temp file, fsync, rename, then fsync of the directory (§8). */
export async function atomicWrite (path: string, data: Uint8Array): Promise<void> {
  await writeFileAtomic(path, Buffer.from(data.buffer, data.byteOffset, data.byteLength), { fsync: true })
  await syncDirectory(dirname(path))
}

/** Temp files write-file-atomic leaves behind when the process dies mid-write: `<name>.<uint32>`. */
const LEFTOVER_TEMP = /^(story|analytics|chat)\.json\.\d+$/

/** `work`, or a StoreSetupError(`message`) after `ms` (the promise it abandons may never settle: a hung mount). */
async function withinTime<T> (work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new StoreSetupError(message)), ms)
  })
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}

interface LockOwner { readonly pid: number, readonly host: string }

async function readLockOwner (dir: string): Promise<LockOwner | undefined> {
  try {
    const owner = JSON.parse(await readFile(join(dir, PID_NAME), 'utf8')) as Partial<LockOwner>
    return typeof owner.pid === 'number' && typeof owner.host === 'string' ? { pid: owner.pid, host: owner.host } : undefined
  } catch {
    return undefined
  }
}

/** Whether a process with this pid runs on this machine (EPERM: it does, as another user). */
function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Takes the data dir's lock (proper-lockfile: a `server.lock` directory kept
 * fresh by its holder) and writes `server.pid` beside it. A lock left by a
 * server that was killed is taken over at once when its pid is dead on this
 * machine (proper-lockfile alone would wait until it is 10 s old).
 */
async function takeLock (dir: string, log: ServerLog): Promise<() => Promise<void>> {
  const options = {
    lockfilePath: join(dir, LOCK_NAME),
    // Stryker disable next-line BooleanLiteral: equivalent: the lock's path is given, absolute (lockfilePath)
    realpath: false,
    onCompromised: (err: Error) => {
      log.error(`persistence | lost the lock of the data dir ${dir} (${describeError(err)}) | another server may now use it too`)
    }
  }
  let release: () => Promise<void>
  try {
    release = await lockfile.lock(dir, options)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err
    const owner = await readLockOwner(dir)
    if (owner === undefined) {
      throw new StoreSetupError(`the data dir ${dir} is in use by another server (its lock ${join(dir, LOCK_NAME)} is fresh); stop it first, or give this one another --data-dir`)
    }
    if (owner.host !== hostname() || isAlive(owner.pid)) {
      throw new StoreSetupError(`the data dir ${dir} is in use by another server, pid ${owner.pid} on ${owner.host}; stop it first, or give this one another --data-dir`)
    }
    log.warn(`persistence | taking over the lock of the data dir ${dir} | its server, pid ${owner.pid}, is gone`)
    await rm(join(dir, LOCK_NAME), { recursive: true, force: true })
    release = await lockfile.lock(dir, options)
  }
  await writeFile(join(dir, PID_NAME), `${JSON.stringify({ pid: process.pid, host: hostname() })}\n`)
  return async () => {
    await unlink(join(dir, PID_NAME)).catch(() => {})
    await release().catch(() => {})
  }
}

type Versioned<T> = { readonly value: T, readonly version: number, readonly since: number }

/**
 * One JSON file per part under `dir` (story.json, analytics.json, chat.json),
 * so a big story change does not rewrite the chat. Each file is replaced
 * atomically (temp file, fsync, rename, directory fsync), at most one write
 * in flight per file; the changes made meanwhile go together in the next
 * write (group commit), newest state wins.
 */
export function createFileStore (dir: string, options: StoreOptions, log: ServerLog): Store {
  const tuning: FileStoreTuning = { ...DEFAULT_TUNING, writeFile: atomicWrite, ...options.tuning }
  const listeners: Array<(version: number) => void> = []
  /** The newest change number seen, and the newest reported committed. */
  let latest = 0
  let committed = 0
  const reportCommitted = (): void => {
    let oldestDirty = Infinity
    for (const w of Object.values(writers)) oldestDirty = Math.min(oldestDirty, w.dirtySince())
    const now = oldestDirty === Infinity ? latest : oldestDirty - 1
    if (now <= committed) return
    committed = now
    for (const l of listeners) l(now)
  }
  let dirReady = false
  const writeInDir = async (path: string, data: Uint8Array): Promise<void> => {
    if (!dirReady) {
      await mkdir(dir, { recursive: true })
      // Stryker disable next-line BooleanLiteral: tuning only: false costs one more mkdir per write
      dirReady = true
    }
    try {
      await tuning.writeFile(path, data)
    } catch (err) {
      dirReady = false
      throw err
    }
  }
  const writers = {
    story: new PartWriter<StoryState>('story', dir, ENCODERS.story, tuning, writeInDir, reportCommitted, log),
    analytics: new PartWriter<AnalyticsState>('analytics', dir, ENCODERS.analytics, tuning, writeInDir, reportCommitted, log),
    chat: new PartWriter<readonly ChatLine[]>('chat', dir, ENCODERS.chat, tuning, writeInDir, reportCommitted, log)
  }
  let releaseLock: (() => Promise<void>) | undefined

  async function loadPart<P extends Part> (part: P): Promise<PartValue[P] | undefined> {
    const path = join(dir, FILES[part])
    let text: string
    try {
      // Stryker disable next-line StringLiteral: tuning only: a Buffer, which JSON.parse reads as UTF-8 anyway
      text = await readFile(path, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
      return await moveAside(part, `unreadable (${describeError(err)})`)
    }
    const decoded = decode(part, text)
    if ('problem' in decoded) return await moveAside(part, decoded.problem)
    writers[part].lastBytes = text.length
    return decoded.value
  }

  /** Never silently overwritten: a bad file is renamed `<name>.corrupt-<time>` and the part starts empty. */
  async function moveAside (part: Part, problem: string): Promise<undefined> {
    const name = FILES[part]
    const aside = `${name}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`
    try {
      await rename(join(dir, name), join(dir, aside))
      log.warn(`persistence | ${join(dir, name)} is ${problem} | moved aside as ${aside} | starting with an empty ${part}`)
    } catch (err) {
      writers[part].blocked = true
      log.error(`persistence | ${join(dir, name)} is ${problem} and could not be moved aside (${describeError(err)}) | starting with an empty ${part}, which will NOT be saved, to keep the file`)
    }
    return undefined
  }

  /** Creates the data dir, takes its lock and removes temp files a killed server left. */
  async function setUp (): Promise<void> {
    try {
      // Directories made now must survive a power cut themselves, or the files in them would go with them.
      const first = await mkdir(dir, { recursive: true })
      for (let made = dir; first !== undefined; made = dirname(made)) {
        await syncDirectory(dirname(made))
        if (made === first || dirname(made) === made) break
      }
    } catch (err) {
      throw new StoreSetupError(`cannot create the data dir ${dir} (${describeError(err)})`)
    }
    releaseLock = await takeLock(dir, log).catch((err: unknown) => {
      throw err instanceof StoreSetupError ? err : new StoreSetupError(`cannot lock the data dir ${dir} (${describeError(err)})`)
    })
    dirReady = true
    for (const name of await readdir(dir)) {
      if (LEFTOVER_TEMP.test(name)) await unlink(join(dir, name)).catch(() => {})
    }
    // Stryker disable next-line StringLiteral: debug log text only
    log.debug(`persistence | data dir | ${dir} | locked by pid ${process.pid}`)
  }

  const flush = async (): Promise<void> => {
    await Promise.all([writers.story.flush(), writers.analytics.flush(), writers.chat.flush()])
  }

  return {
    durable: true,
    load: async () => {
      // Stryker disable next-line StringLiteral: debug log text only
      log.debug(`persistence | setting up the data dir ${dir}`)
      const setUpDone = setUp()
      try {
        await withinTime(setUpDone, tuning.setupTimeoutMs,
          `the data dir ${dir} could not be set up within ${tuning.setupTimeoutMs / 1000} s (creating or locking it did not answer)`)
      } catch (err) {
        // A late lock (the mount answered after all) is released, not kept by a server that did not start.
        void setUpDone.then(async () => await releaseLock?.(), () => {})
        throw err
      }
      const story = await loadPart('story')
      const analytics = await loadPart('analytics')
      let chat = await loadPart('chat')
      if (chat !== undefined && options.chatLimit !== undefined) chat = capChat(chat, options.chatLimit)
      const restored: DurableState = { story: story ?? INITIAL_STORY, analytics: analytics ?? INITIAL_ANALYTICS, chat: chat ?? INITIAL_CHAT }
      writers.story.written(restored.story)
      writers.analytics.written(restored.analytics)
      writers.chat.written(restored.chat)
      if (story === undefined && analytics === undefined && chat === undefined) return undefined
      // Stryker disable StringLiteral: debug log text only
      log.debug(`persistence | restored | story of ${restored.story.timestamp} by ${restored.story.owner}` +
        ` | analytics of ${restored.analytics.timestamp} | chat of ${restored.chat.length} lines`)
      // Stryker restore StringLiteral
      return restored
    },
    save: (state, version) => {
      latest = Math.max(latest, version)
      writers.story.save(state.story, version)
      writers.analytics.save(state.analytics, version)
      writers.chat.save(state.chat, version)
      reportCommitted()
    },
    onCommitted: (listener) => { listeners.push(listener) },
    flush,
    close: async () => {
      await flush()
      await releaseLock?.()
      releaseLock = undefined
    }
  }
}

/**
 * The writes of one file. A change starts a write after `delayMs` (0: at
 * once); changes made while a write is in flight are written together right
 * after it (group commit), newest value only. A failed write is retried with
 * backoff (newer values replace the failed one), logged once per streak of
 * failures. `committed` is called after every successful write.
 */
class PartWriter<T> {
  /** The file could not be moved aside at load: never write it (its changes count as committed, as with --no-persist). */
  blocked = false
  /** Size of the file's last write (or of the file loaded); unknown: Infinity. */
  lastBytes = Infinity
  private last: T | undefined
  private writing: Versioned<T> | undefined
  private pending: Versioned<T> | undefined
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private wake: (() => void) | undefined
  private failures = 0
  private flushing = false
  private readonly path: string

  constructor (
    part: Part,
    dir: string,
    private readonly encode: (value: T) => unknown,
    private readonly tuning: FileStoreTuning,
    private readonly write: (path: string, data: Uint8Array) => Promise<void>,
    private readonly committed: () => void,
    private readonly log: ServerLog
  ) {
    this.path = join(dir, FILES[part])
  }

  /** `value` is what the file holds (loaded): saving the very same value writes nothing. */
  written (value: T): void { this.last = value }

  /** The oldest change number not yet on disk, Infinity when all are. */
  dirtySince (): number {
    return this.writing?.since ?? this.pending?.since ?? Infinity
  }

  save (value: T, version: number): void {
    // The coordinator sends the whole state on every change: skip the parts that did not change.
    if (this.blocked || value === (this.pending?.value ?? this.writing?.value ?? this.last)) return
    this.pending = { value, version, since: this.pending?.since ?? version }
    // Stryker disable next-line LogicalOperator: equivalent: a second timer only calls start(), which does nothing while a write runs
    if (this.running === undefined && this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined
        this.start()
      }, this.tuning.delayMs)
    }
  }

  async flush (): Promise<void> {
    this.flushing = true
    try {
      // Stryker disable next-line ConditionalExpression,EqualityOperator,BlockStatement: equivalent: a timer left set only calls start(), which does nothing while a write runs or with nothing pending
      if (this.timer !== undefined) {
        clearTimeout(this.timer)
        this.timer = undefined
      }
      this.wake?.()
      if (this.running !== undefined) await this.running
      // Stryker disable next-line LogicalOperator: equivalent: start() with nothing pending or blocked writes nothing
      if (this.pending !== undefined && !this.blocked) await this.start()
      if (this.pending !== undefined && !this.blocked) {
        this.log.error(`persistence | could not save ${this.path} | its latest changes are not on disk`)
      }
    } finally {
      this.flushing = false
    }
    // Stryker disable next-line LogicalOperator: equivalent: a stale retry timer only calls start(), which writes nothing then
    if (this.pending !== undefined && !this.blocked && this.running === undefined) this.retryLater()
  }

  private start (): Promise<void> {
    this.running ??= this.pump().finally(() => { this.running = undefined })
    return this.running
  }

  private async pump (): Promise<void> {
    while (this.pending !== undefined && !this.blocked) {
      const job = this.pending
      this.pending = undefined
      this.writing = job
      const t0 = performance.now()
      try {
        // Stryker disable next-line ConditionalExpression,EqualityOperator: tuning only: one JSON.stringify call or slices, the same bytes
        const data = await serializeJson(this.encode(job.value), this.lastBytes <= this.tuning.oneCallBytes ? 0 : this.tuning.sliceMs)
        await this.write(this.path, data)
        this.last = job.value
        this.lastBytes = data.byteLength
        this.writing = undefined
        if (this.failures > 0) this.log.warn(`persistence | saving ${this.path} works again, after ${this.failures} failed attempts`)
        this.failures = 0
        // Stryker disable next-line StringLiteral,ArithmeticOperator: debug log text only (its duration included)
        this.log.debug(`persistence | saved | ${this.path} | ${data.byteLength} bytes | ${(performance.now() - t0).toFixed(1)} ms`)
        this.committed()
      } catch (err) {
        // Not on disk: what changed since `job.since` still waits, in the next write (a newer value, if any).
        this.pending = { ...(this.pending ?? job), since: job.since }
        this.writing = undefined
        this.failures += 1
        if (this.failures === 1) {
          this.log.warn(`persistence | cannot save ${this.path} (${describeError(err)}) | acknowledgements of changes wait; retrying with backoff, logged again once it works`)
        }
        if (this.flushing) return
        await this.sleep(this.backoff())
      }
    }
  }

  private backoff (): number {
    return Math.min(this.tuning.maxRetryMs, this.tuning.retryMs * 2 ** Math.min(this.failures - 1, 30))
  }

  /** A retry wait; `flush` cuts it short. Unref'd: a pending retry alone does not keep the process alive. */
  private async sleep (ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { this.wake = undefined; resolve() }, ms)
      t.unref()
      this.wake = () => { clearTimeout(t); this.wake = undefined; resolve() }
    })
  }

  private retryLater (): void {
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.start()
    }, this.backoff())
    this.timer.unref()
  }
}
