import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream, type WriteStream } from 'node:fs'
import { lstat, mkdir, realpath, rename, stat, unlink } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import type { ErrorCode } from '../../protocol/errors.ts'
import type { JsonValue } from '../../protocol/frame.ts'
import { validateFileHeader } from '../../protocol/messages.ts'
import { ClientError, RequestError } from './errors.ts'
import { filePath, folderPath, isInside, mapLimit, realOrNull, realTarget } from './fs-safety.ts'
import type { HashCache } from './hash-cache.ts'
import { PART_SUFFIX } from './manifest.ts'
import { errorOf, unexpected, type Channel } from './wire.ts'

export interface FailedFile { readonly path: string, readonly reason: string }

/** What a `get` did. */
export interface GetResult {
  /** Files received, verified and put in place, and their bytes. */
  readonly files: number
  readonly bytes: number
  /** Files that are not in place (the old file, if any, is untouched), with the reason. */
  readonly failed: readonly FailedFile[]
  /** Manifest files already identical here, so not asked for. */
  readonly skipped: number
}

export interface GetProgress {
  readonly giver: string
  readonly folder: string
  /** The file being received, if any. */
  readonly path?: string
  /** Files asked for, and how many of them are finished (received or failed). */
  readonly filesTotal: number
  readonly filesDone: number
  /** Bytes received, and the sizes announced so far (the manifest has no sizes, so this grows). */
  readonly bytesDone: number
  readonly bytesTotal: number
}

/** A `get` that ended with a server error (e.g. `relay_failed`): what was done before it. */
export class GetError extends RequestError {
  constructor (code: ErrorCode, detail: string, readonly result: GetResult) {
    super(code, detail, 'get')
    this.name = 'GetError'
  }
}

const SHA256_HEX = /^[0-9a-f]{64}$/i
/** Progress for bytes is reported at most this often; file ends always are. */
const PROGRESS_EVERY_MS = 100
const HASH_CONCURRENCY = 8

interface Planned { readonly rel: string, readonly target: string, readonly hash: string }

/**
 * The taker side of §5 after `["get", giver, folder]` was sent: manifest,
 * getlist of the files that differ here, then each file streamed into a temp
 * file next to its target and renamed into place once its SHA-256 matches.
 */
export async function take (ch: Channel, o: {
  root: string, giver: string, folder: string, cache: HashCache, progress: (p: GetProgress) => void
}): Promise<GetResult> {
  const first = await ch.json()
  const refused = errorOf(first)
  if (refused !== null) {
    await ch.yours('an error')
    throw new GetError(refused.code, refused.detail, { files: 0, bytes: 0, failed: [], skipped: 0 })
  }
  if (typeof first !== 'object' || first === null || Array.isArray(first)) throw unexpected(first, 'a manifest')

  const dir = folderPath(o.root, o.folder)
  if (dir === null) throw new ClientError('bad_path', `folder ${JSON.stringify(o.folder)} is refused`)
  let rootReal: string
  try {
    await mkdir(o.root, { recursive: true })
    rootReal = await realpath(o.root)
  } catch (err) {
    // Nothing can be written: ask for nothing, and say why for every file.
    const reason = `cannot write the root: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
    ch.sendJson([])
    await ch.yours('an empty getlist')
    return { files: 0, bytes: 0, failed: Object.keys(first).map((path) => ({ path, reason })), skipped: 0 }
  }
  const rootResolved = resolve(o.root)

  const failed: FailedFile[] = []
  const candidates: Planned[] = []
  for (const [rel, hash] of Object.entries(first)) {
    const p = filePath(dir, rel)
    if (!p.ok) { failed.push({ path: rel, reason: `refused: ${p.reason}` }); continue }
    if (!isInside(rootResolved, p.path)) { failed.push({ path: rel, reason: 'refused: outside the root' }); continue }
    if (typeof hash !== 'string' || !SHA256_HEX.test(hash)) { failed.push({ path: rel, reason: 'refused: the hash is not SHA-256 hex' }); continue }
    candidates.push({ rel, target: p.path, hash: hash.toLowerCase() })
  }
  // What is already here (same hash) is not asked for; a target that really lies outside the root is refused.
  const verdicts = await mapLimit(candidates, HASH_CONCURRENCY, async (c): Promise<'same' | 'fetch' | 'escape'> => {
    const real = await realTarget(rootReal, c.target)
    if (real === null) return 'escape'
    const s = await stat(real).catch(() => null)
    if (s === null || !s.isFile()) return 'fetch'
    const local = await o.cache.hash(real, s).catch(() => null)
    return local?.hash === c.hash ? 'same' : 'fetch'
  })
  const wanted: Planned[] = []
  let skipped = 0
  candidates.forEach((c, i) => {
    if (verdicts[i] === 'same') skipped++
    else if (verdicts[i] === 'escape') failed.push({ path: c.rel, reason: 'refused: the target lies outside the root (symlink)' })
    else wanted.push(c)
  })

  ch.sendJson(wanted.map((w) => w.rel))
  let files = 0
  let bytes = 0
  let bytesTotal = 0
  let done = 0
  let lastReport = 0
  const report = (path: string | undefined, force: boolean): void => {
    const now = performance.now()
    if (!force && now - lastReport < PROGRESS_EVERY_MS) return
    lastReport = now
    o.progress({ giver: o.giver, folder: o.folder, path, filesTotal: wanted.length, filesDone: done, bytesDone: bytes, bytesTotal })
  }
  report(undefined, true)
  const result = (): GetResult => ({ files, bytes: Math.max(0, bytes), failed: [...failed], skipped })

  for (const [i, w] of wanted.entries()) {
    const h = await ch.json()
    const ended = errorOf(h)
    if (ended !== null) {
      // The relay ended (e.g. the giver left): nothing more comes but "yours".
      for (const rest of wanted.slice(i)) failed.push({ path: rest.rel, reason: `relay failed: ${ended.detail}` })
      await ch.yours('a relay error')
      throw new GetError(ended.code, ended.detail, result())
    }
    const header = validateFileHeader(h, w.rel)
    if (!header.ok) throw unexpected(h, `the header of ${JSON.stringify(w.rel)}`)
    if (header.value.type === 'missing') {
      const reason = `missing on the giver: ${header.value.reason}`
      failed.push({ path: w.rel, reason })
      ch.sendJson(['failed', w.rel, reason])
      done++
      report(undefined, true)
      continue
    }
    const size = header.value.size
    bytesTotal += size
    const sink = await openTemp(rootReal, w.target)
    const hash = createHash('sha256')
    let writeError: string | null = typeof sink === 'string' ? sink : null
    const ws = typeof sink === 'string' ? null : sink.stream
    ws?.on('error', (err) => { writeError ??= `cannot write: ${err.message}` })
    let remaining = size
    let relayError: { code: ErrorCode, detail: string } | null = null
    const tmp = typeof sink === 'string' ? null : sink.tmp
    try {
      while (remaining > 0) {
        const f = await ch.next()
        if (f.kind === 'json') {
          relayError = errorOf(f.value)
          if (relayError !== null) break
          throw unexpected(f.value, `${remaining} more bytes of ${JSON.stringify(w.rel)}`)
        }
        if (f.bytes.byteLength > remaining) throw new ClientError('bad_reply', `more bytes than announced for ${JSON.stringify(w.rel)}`)
        for (const chunk of f.bytes) {
          hash.update(chunk)
          if (ws !== null && writeError === null && !ws.write(chunk)) await drainOrError(ws)
        }
        remaining -= f.bytes.byteLength
        bytes += f.bytes.byteLength
        report(w.rel, false)
      }
    } catch (err) {
      // The connection broke mid-file: no temp file stays behind.
      ws?.destroy()
      if (tmp !== null) await unlink(tmp).catch(() => {})
      throw err
    }
    if (ws !== null) writeError = await closeStream(ws) ?? writeError
    if (relayError !== null) {
      if (tmp !== null) await unlink(tmp).catch(() => {})
      bytes -= size - remaining
      for (const rest of wanted.slice(i)) failed.push({ path: rest.rel, reason: `relay failed: ${relayError.detail}` })
      await ch.yours('a relay error')
      throw new GetError(relayError.code, relayError.detail, result())
    }
    const digest = hash.digest('hex')
    let reason: string | null = writeError
    if (reason === null && digest !== w.hash) reason = `hash mismatch: got ${digest.slice(0, 12)}…, the manifest says ${w.hash.slice(0, 12)}…`
    if (reason === null && tmp !== null) {
      // The target must still land inside the root (a folder may have become a symlink meanwhile).
      const real = await realTarget(rootReal, w.target)
      if (real === null) reason = 'refused: the target lies outside the root (symlink)'
      else {
        try {
          await rename(tmp, real)
          const s = await lstat(real)
          o.cache.remember(real, s, digest)
        } catch (err) {
          reason = `cannot put in place: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
        }
      }
    }
    if (reason === null) {
      files++
      ch.sendJson(['ok', w.rel])
    } else {
      if (tmp !== null) await unlink(tmp).catch(() => {})
      bytes -= size
      failed.push({ path: w.rel, reason })
      ch.sendJson(['failed', w.rel, reason])
    }
    done++
    report(w.rel, true)
  }
  const last: JsonValue = await ch.json()
  if (last !== 'yours') {
    const e = errorOf(last)
    if (e !== null) {
      await ch.yours('an error')
      throw new GetError(e.code, e.detail, result())
    }
    throw unexpected(last, '"yours" after the last file')
  }
  return result()
}

/** A temp file next to `target` (inside the root), or why there can't be one. */
async function openTemp (rootReal: string, target: string): Promise<{ tmp: string, stream: WriteStream } | string> {
  const real = await realTarget(rootReal, target)
  if (real === null) return 'refused: the target lies outside the root (symlink)'
  try {
    await mkdir(dirname(real), { recursive: true })
    // mkdir may have followed a symlink created meanwhile: check the parent again.
    const parent = await realOrNull(dirname(real))
    if (parent === null || !isInside(rootReal, parent)) return 'refused: the target lies outside the root (symlink)'
    const tmp = join(parent, `.${basename(real)}.${randomBytes(6).toString('hex')}${PART_SUFFIX}`)
    const stream = createWriteStream(tmp, { flags: 'wx', highWaterMark: 4 * 1024 * 1024 })
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => { stream.off('error', reject); resolve() })
      stream.once('error', reject)
    })
    return { tmp, stream }
  } catch (err) {
    return `cannot write: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
  }
}

function drainOrError (ws: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => { ws.off('drain', done); ws.off('error', done); ws.off('close', done); resolve() }
    ws.on('drain', done)
    ws.on('error', done)
    ws.on('close', done)
  })
}

/** Ends the stream and waits until its file is closed; the write error, if any. */
function closeStream (ws: WriteStream): Promise<string | null> {
  return new Promise((resolve) => {
    if (ws.closed) { resolve(ws.errored !== null ? `cannot write: ${ws.errored.message}` : null); return }
    let error: string | null = null
    ws.once('error', (err) => { error = `cannot write: ${err.message}` })
    ws.once('close', () => resolve(error))
    ws.end()
  })
}
