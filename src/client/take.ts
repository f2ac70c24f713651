import { createHash, type Hash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import type { Stats } from 'node:fs'
import { lstat, mkdir, open, realpath, rename, stat, truncate, unlink, type FileHandle } from 'node:fs/promises'
import { dirname, relative, sep } from 'node:path'
import type { ErrorCode } from '../../protocol/errors.ts'
import { MAX_CHUNK, type JsonValue } from '../../protocol/frame.ts'
import { ClientError, RequestError } from './errors.ts'
import { folderPath, isInside, realOrNull, realTarget } from './fs-safety.ts'
import type { HashCache } from './hash-cache.ts'
import { keepAsConflict, moveToTrash, trashOf } from './local-changes.ts'
import { makePlan, type Action, type PlannedFile } from './plan.ts'
import { errorOf, unexpected, type Channel } from './wire.ts'

export interface FailedFile { readonly path: string, readonly reason: string }

/** What a `get` did (or, for a dry run, would do). */
export interface GetResult {
  /** Files received, verified and put in place, and the bytes received for them. */
  readonly files: number
  readonly bytes: number
  /** Files that are not in place (the old file, if any, is untouched), with the reason. */
  readonly failed: readonly FailedFile[]
  /** Manifest files already identical here, so not asked for. */
  readonly skipped: number
  /** Files that went on from an interrupted transfer, and the bytes they did not need again. */
  readonly resumed: number
  readonly bytesResumed: number
  /** Local edits kept beside the new file: the file, and its copy (relative to the folder). */
  readonly conflicts: ReadonlyArray<{ readonly path: string, readonly copy: string }>
  /** `--delete`: local files the giver no longer has, moved to the trash (relative to the folder, and the trash path). */
  readonly deleted: ReadonlyArray<{ readonly path: string, readonly trash: string }>
  /** A dry run: what a `get` would do to each file (nothing was changed). */
  readonly plan?: DryRun
}

export interface DryRun {
  readonly new: readonly string[]
  readonly changed: readonly string[]
  readonly conflict: readonly string[]
  readonly delete: readonly string[]
  readonly upToDate: readonly string[]
}

export type GetPhase = 'waiting' | 'checking' | 'transferring' | 'done'

export interface GetProgress {
  readonly phase: GetPhase
  readonly giver: string
  readonly folder: string
  /** The file being received, if any. */
  readonly path?: string
  /** Files asked for, and how many of them are finished (received or failed); while checking, the local files checked. */
  readonly filesTotal: number
  readonly filesDone: number
  /** Bytes received, and the bytes to receive (from the manifest's sizes, else the headers so far). */
  readonly bytesDone: number
  readonly bytesTotal: number
}

export interface TakeOptions {
  root: string
  giver: string
  /** The giver's name for conflict copies (default: its id). */
  giverName?: string
  folder: string
  cache: HashCache
  /** Move local files the giver does not have to the trash. */
  delete?: boolean
  /** Only say what would be done. */
  dryRun?: boolean
  /** Ask interrupted files for the rest (§5 revision 2; default true). */
  resume?: boolean
  progress: (p: GetProgress) => void
}

/** A `get` that ended with a server error (e.g. `relay_failed`, `no_such_folder`): what was done before it. */
export class GetError extends RequestError {
  constructor (code: ErrorCode, detail: string, readonly result: GetResult) {
    super(code, detail, 'get')
    this.name = 'GetError'
  }
}

/** Parts of files at least this large are recorded as they start, to resume even after a crash (smaller ones just start over). */
const RECORD_PARTS_FROM = 1024 * 1024
/** Files put in place at the same time (while the next ones arrive). */
const MAX_PLACING = 16
/**
 * Files put in place are recorded in the index this many at a time (one
 * transaction), and at the end of the get. A crash loses at most these records:
 * the files are in place, and the next get hashes them again.
 */
const RECORD_PLACED_EVERY = 64
/** Progress for bytes is reported at most this often; phases and file ends always are. */
const PROGRESS_EVERY_MS = 100

const emptyResult = (): GetResult => ({ files: 0, bytes: 0, failed: [], skipped: 0, resumed: 0, bytesResumed: 0, conflicts: [], deleted: [] })

/**
 * The taker side of §5 after `["get", giver, folder]` was sent: manifest (or
 * `missing`, which the server turns into `no_such_folder`), a plan against the
 * local files, the getlist (resumed files with their offset), then each file
 * streamed into its part file beside the target and renamed into place once
 * the whole file's SHA-256 matches; a local edit is kept as a conflict copy
 * first. An interrupted file keeps its part to resume from.
 */
export async function take (ch: Channel, o: TakeOptions): Promise<GetResult> {
  const t = new Take(ch, o)
  try {
    return await t.run()
  } finally {
    t.recordPlaced()
  }
}

class Take {
  private files = 0
  /** Bytes received in all, and those of files put in place. */
  private bytes = 0
  private bytesPlaced = 0
  private bytesTotal = 0
  private done = 0
  private wanted: PlannedFile[] = []
  private resumed = 0
  private bytesResumed = 0
  private skipped = 0
  private lastReport = 0
  private readonly failed: FailedFile[] = []
  private readonly conflicts: Array<{ path: string, copy: string }> = []
  private readonly deleted: Array<{ path: string, trash: string }> = []
  private readonly started = new Date()
  private readonly folders = new Map<string, Promise<string | null>>()
  /** Answers of files being put in place, in getlist order. */
  private answers: Promise<void> = Promise.resolve()
  private unanswered = 0
  private relayEnded = false
  /** Files in place whose index records are not written yet (see RECORD_PLACED_EVERY). */
  private placed: Array<{ real: string, part: string, s: Stats, hash: string }> = []

  constructor (private readonly ch: Channel, private readonly o: TakeOptions) {}

  /** Writes the index records of the files put in place so far (one transaction). */
  recordPlaced (): void {
    const batch = this.placed
    this.placed = []
    try {
      this.o.cache.placed(batch)
    } catch {
      // The index is a cache: a record it could not keep only costs a hash at the next get.
    }
  }

  private result (): GetResult {
    return {
      files: this.files, bytes: this.bytesPlaced, failed: [...this.failed], skipped: this.skipped, resumed: this.resumed,
      bytesResumed: this.bytesResumed, conflicts: [...this.conflicts], deleted: [...this.deleted]
    }
  }

  private report (phase: GetPhase, path: string | undefined, force: boolean, checking?: { checked: number, total: number }): void {
    const now = performance.now()
    if (!force && now - this.lastReport < PROGRESS_EVERY_MS) return
    this.lastReport = now
    this.o.progress({
      phase, giver: this.o.giver, folder: this.o.folder, path,
      filesTotal: checking?.total ?? this.wanted.length, filesDone: checking?.checked ?? this.done,
      bytesDone: this.bytes, bytesTotal: this.bytesTotal
    })
  }

  /** A server error ends the exchange with `"yours"`: read it, then reject with what was done. */
  private async fail (e: { code: ErrorCode, detail: string }): Promise<never> {
    await this.ch.yours('an error')
    throw new GetError(e.code, e.detail, this.result())
  }

  async run (): Promise<GetResult> {
    this.report('waiting', undefined, true)
    const first = await this.ch.json()
    const refused = errorOf(first)
    if (refused !== null) return await this.fail(refused)
    if (typeof first !== 'object' || first === null || Array.isArray(first)) throw unexpected(first, 'a manifest')

    const dir = folderPath(this.o.root, this.o.folder)
    if (dir === null) throw new ClientError('bad_path', `folder ${JSON.stringify(this.o.folder)} is refused`)
    let rootReal: string
    try {
      if (this.o.dryRun !== true) await mkdir(this.o.root, { recursive: true })
      rootReal = await realpath(this.o.root)
    } catch (err) {
      if (this.o.dryRun === true) {
        // No root yet: everything would be new.
        const all = Object.keys(first)
        return { ...await this.endEarly(), plan: { new: all, changed: [], conflict: [], delete: [], upToDate: [] } }
      }
      // Nothing can be written: ask for nothing, and say why for every file.
      const reason = `cannot write the root: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
      for (const path of Object.keys(first)) this.failed.push({ path, reason })
      return await this.endEarly()
    }

    this.report('checking', undefined, true, { checked: 0, total: Object.keys(first).length })
    const plan = await makePlan({
      manifest: first, rootReal, dir, folder: this.o.folder, cache: this.o.cache,
      withExtra: this.o.delete === true, tidy: this.o.dryRun !== true,
      onChecked: (checked, total) => this.report('checking', undefined, checked === total, { checked, total })
    })
    this.failed.push(...plan.failed)
    this.skipped = plan.files.filter((f) => f.action === 'up to date').length
    if (this.o.dryRun === true) {
      const of = (a: Action): string[] => plan.files.filter((f) => f.action === a).map((f) => f.rel)
      const result = await this.endEarly()
      return {
        ...result,
        plan: { new: of('new'), changed: of('changed'), conflict: of('conflict'), upToDate: of('up to date'), delete: plan.extra.map((e) => e.rel) }
      }
    }

    this.wanted = plan.files.filter((f) => f.action !== 'up to date').map((f) => this.o.resume === false ? { ...f, offset: 0 } : f)
    this.bytesTotal = this.wanted.reduce((n, f) => n + Math.max(0, (f.offered.size ?? 0) - f.offset), 0)
    this.ch.sendJson(this.wanted.map((w) => w.offset > 0 ? [w.rel, w.offset] : w.rel))
    this.report('transferring', undefined, true)
    for (const w of this.wanted) {
      if (this.unanswered >= MAX_PLACING) await this.answers
      const ended = await this.receive(w, rootReal)
      if (ended !== null) {
        // The relay ended (e.g. the giver left): nothing more comes but "yours", and no answer may follow.
        this.relayEnded = true
        await this.answers
        for (const rest of this.wanted.slice(this.done)) this.failed.push({ path: rest.rel, reason: `relay failed: ${ended.detail}` })
        return await this.fail(ended)
      }
    }
    await this.answers
    const last: JsonValue = await this.ch.json()
    if (last !== 'yours') {
      const e = errorOf(last)
      if (e !== null) return await this.fail(e)
      throw unexpected(last, '"yours" after the last file')
    }
    if (this.o.delete === true) await this.trash(plan.extra, rootReal)
    this.report('done', undefined, true)
    return this.result()
  }

  /** An empty getlist: the giver's pass goes on and `"yours"` comes back. */
  private async endEarly (): Promise<GetResult> {
    this.ch.sendJson([])
    const v = await this.ch.json()
    if (v !== 'yours') {
      const e = errorOf(v)
      if (e !== null) return await this.fail(e)
      throw unexpected(v, '"yours" after an empty getlist')
    }
    this.report('done', undefined, true)
    return this.result()
  }

  private async trash (extra: ReadonlyArray<{ rel: string, real: string }>, rootReal: string): Promise<void> {
    const trash = trashOf(rootReal, this.started)
    for (const e of extra) {
      try {
        const fromRoot = relative(rootReal, e.real).split(sep).join('/')
        const dest = await moveToTrash(e.real, trash, fromRoot)
        this.o.cache.forget(e.real)
        this.deleted.push({ path: e.rel, trash: dest })
      } catch (err) {
        this.failed.push({ path: e.rel, reason: `cannot move to the trash: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` })
      }
    }
  }

  /**
   * One file of the getlist: header, bytes into the part, check, put in place.
   * Returns the relay's error when the relay ended instead; throws when the connection broke.
   */
  private async receive (w: PlannedFile, rootReal: string): Promise<{ code: ErrorCode, detail: string } | null> {
    const h = await this.ch.json()
    const ended = errorOf(h)
    if (ended !== null) return ended
    const header = readHeader(h, w)
    if (typeof header === 'string') throw new ClientError('bad_reply', header)
    if (header.missing !== undefined) {
      this.queueAnswer(w, Promise.resolve(`missing on the giver: ${header.missing}`))
      return null
    }
    const { size, offset } = header
    if (w.offered.size === undefined) this.bytesTotal += size - offset
    else if (offset < w.offset) this.bytesTotal += w.offset - offset // the giver would not resume: the whole file comes
    const sink = await this.openPart(w, rootReal, offset)
    let writeError: string | null = typeof sink === 'string' ? sink : null
    const fh = typeof sink === 'string' ? null : sink.fh
    const hash = typeof sink === 'string' ? createHash('sha256') : sink.hash
    // One write in flight while the next frame is read and hashed.
    let pending: Promise<void> = Promise.resolve()
    let at = offset
    let remaining = size - offset
    let relayError: { code: ErrorCode, detail: string } | null = null
    try {
      while (remaining > 0) {
        const f = await this.ch.next()
        if (f.kind === 'json') {
          relayError = errorOf(f.value)
          if (relayError !== null) break
          throw unexpected(f.value, `${remaining} more bytes of ${JSON.stringify(w.rel)}`)
        }
        if (f.bytes.byteLength > remaining) throw new ClientError('bad_reply', `more bytes than announced for ${JSON.stringify(w.rel)}`)
        const chunks = [...f.bytes]
        for (const chunk of chunks) hash.update(chunk)
        await pending
        if (fh !== null && writeError === null) {
          const position = at
          pending = writeAll(fh, chunks, position).catch((err: NodeJS.ErrnoException) => { writeError ??= `cannot write: ${err.code ?? err.message}` })
        }
        at += f.bytes.byteLength
        remaining -= f.bytes.byteLength
        this.bytes += f.bytes.byteLength
        this.report('transferring', w.rel, false)
      }
    } finally {
      // Interrupted or not, what was written stays in the part (recorded when it was opened) to resume from.
      await pending
      if (fh !== null) {
        if (remaining === 0 && writeError === null && w.offered.mtime !== undefined) {
          await fh.utimes(new Date(), w.offered.mtime).catch(() => {})
        }
        await fh.close().catch((err: NodeJS.ErrnoException) => { writeError ??= `cannot write: ${err.code ?? err.message}` })
      }
    }
    if (relayError !== null) return relayError
    if (offset > 0) { this.resumed++; this.bytesResumed += offset }
    const digest = hash.digest('hex')
    let reason: string | null = writeError
    if (reason === null && digest !== w.offered.hash) {
      reason = `hash mismatch${offset > 0 ? ' after resuming' : ''}: got ${digest.slice(0, 12)}…, the manifest says ${w.offered.hash.slice(0, 12)}…`
    }
    // Put in place while the next file arrives; the answers still go in getlist order.
    this.queueAnswer(w, (async () => {
      if (reason === null) reason = await this.putInPlace(w, digest)
      if (reason === null) this.bytesPlaced += size - offset
      else {
        // A part that failed its check is useless: it goes.
        await unlink(w.part).catch(() => {})
        this.o.cache.forgetPart(w.part)
      }
      return reason
    })())
    return null
  }

  /** Answers `w` once `outcome` settles (null: in place), after the files before it. */
  private queueAnswer (w: PlannedFile, outcome: Promise<string | null>): void {
    this.unanswered++
    this.answers = this.answers.then(async () => {
      const reason = await outcome
      this.unanswered--
      this.done++
      if (reason === null) this.files++
      else this.failed.push({ path: w.rel, reason })
      // After the relay ended the server reads no answer: the file is in place (or not) all the same.
      if (!this.relayEnded && this.ch.socket.writable) this.ch.sendJson(reason === null ? ['ok', w.rel] : ['failed', w.rel, reason])
      this.report('transferring', w.rel, true)
    })
  }

  /** The part file, written from `offset` (the bytes before it hashed again), or why it cannot be. */
  private async openPart (w: PlannedFile, rootReal: string, offset: number): Promise<{ fh: FileHandle, hash: Hash } | string> {
    try {
      const folder = await this.folderInside(rootReal, dirname(w.part))
      if (folder !== dirname(w.part)) return 'refused: the target lies outside the root (symlink)'
      const hash = createHash('sha256')
      if (offset > 0) {
        await truncate(w.part, offset)
        for await (const chunk of createReadStream(w.part, { start: 0, end: offset - 1, highWaterMark: MAX_CHUNK })) hash.update(chunk as Buffer)
      }
      // Recorded before the first byte, so even a killed client leaves a part the next get can resume.
      if ((w.offered.size ?? Infinity) - offset >= RECORD_PARTS_FROM) this.o.cache.setPart(w.part, { hash: w.offered.hash, bytes: offset })
      // Executable there: created executable here (the umask decides for whom). A resumed part has its mode already.
      const mode = w.offered.mode !== undefined && (w.offered.mode & 0o111) !== 0 ? 0o777 : 0o666
      const fh = await open(w.part, offset > 0 ? 'r+' : 'w', mode)
      return { fh, hash }
    } catch (err) {
      return `cannot write: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
    }
  }

  /**
   * The real path of `dir` (created if needed), checked once per folder and
   * get: null when it lies outside the root (a symlink on the way).
   */
  private folderInside (rootReal: string, dir: string): Promise<string | null> {
    let known = this.folders.get(dir)
    if (known === undefined) {
      known = (async () => {
        if (await realTarget(rootReal, dir) === null) return null
        await mkdir(dir, { recursive: true })
        // mkdir may have followed a symlink created meanwhile: check again.
        const real = await realOrNull(dir)
        return real !== null && isInside(rootReal, real) ? real : null
      })()
      this.folders.set(dir, known)
    }
    return known
  }

  /** The local edit kept as a conflict copy, then the part renamed over the target, and the index told. */
  private async putInPlace (w: PlannedFile, digest: string): Promise<string | null> {
    const real = w.target
    try {
      // The folder must still be where it was (not swapped for a symlink meanwhile).
      if (await realOrNull(dirname(real)) !== dirname(real)) return 'refused: the target lies outside the root (symlink)'
      const local = await lstat(real).catch(() => null)
      if (local !== null && local.isFile()) {
        // Checked again now: the file may have been edited since the plan.
        const mine = await this.o.cache.hash(real, local).catch(() => null)
        if (mine?.hash !== digest && (mine === null || this.o.cache.fetched(real) !== mine.hash)) {
          const copy = await keepAsConflict(real, this.o.giverName ?? this.o.giver, this.started)
          this.conflicts.push({ path: w.rel, copy: copyRel(w.rel, copy) })
        }
      } else if (local !== null) {
        return 'refused: something that is not a file is in the way'
      }
      await rename(w.part, real)
      this.placed.push({ real, part: w.part, s: await stat(real), hash: digest })
      if (this.placed.length >= RECORD_PLACED_EVERY) this.recordPlaced()
      return null
    } catch (err) {
      return `cannot put in place: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
    }
  }
}

/** The conflict copy's path relative to the folder: beside `rel`. */
function copyRel (rel: string, copy: string): string {
  const slash = rel.lastIndexOf('/')
  const name = copy.slice(copy.lastIndexOf(sep) + 1)
  return slash < 0 ? name : `${rel.slice(0, slash)}/${name}`
}

/** Writes all of `chunks` at `position` (writev may write less than asked). */
async function writeAll (fh: FileHandle, chunks: Uint8Array[], position: number): Promise<void> {
  let list = chunks
  let at = position
  while (list.length > 0) {
    const { bytesWritten } = await fh.writev(list, at)
    at += bytesWritten
    let n = bytesWritten
    while (list.length > 0 && n >= list[0].byteLength) { n -= list[0].byteLength; list = list.slice(1) }
    if (n > 0) list = [list[0].subarray(n), ...list.slice(1)]
  }
}

/** §5 revision 2 header for `w`: `["file", path, size]`, `["file", path, size, offset]` (the offset asked), or `["missing", path, reason]`. */
function readHeader (v: JsonValue, w: PlannedFile): { size: number, offset: number, missing?: undefined } | { missing: string } | string {
  const bad = `expected the header of ${JSON.stringify(w.rel)}, got ${JSON.stringify(v)?.slice(0, 120)}`
  if (!Array.isArray(v) || v[1] !== w.rel) return bad
  if (v[0] === 'missing' && v.length === 3 && typeof v[2] === 'string') return { missing: v[2] }
  if (v[0] !== 'file' || (v.length !== 3 && v.length !== 4)) return bad
  const size = v[2]
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return bad
  if (v.length === 3) return { size, offset: 0 }
  if (v[3] !== w.offset || w.offset > size) return `${bad} (offset ${w.offset} was asked)`
  return { size, offset: w.offset }
}
