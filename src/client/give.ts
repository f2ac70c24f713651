import type { Stats } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { MAX_CHUNK, type JsonValue } from '../../protocol/frame.ts'
import { validateFileAck } from '../../protocol/messages.ts'
import { ClientError } from './errors.ts'
import { filePath, folderPath, isInside, realOrNull } from './fs-safety.ts'
import type { HashCache } from './hash-cache.ts'
import { buildManifest } from './manifest.ts'
import { unexpected, type Channel } from './wire.ts'

/** Progress of a folder this client serves (§5, giver side). */
export interface GiveProgress {
  readonly folder: string
  /** `manifest`: sent, waiting for the getlist; `file`: one more file answered; `done`: the give is over. */
  readonly stage: 'manifest' | 'file' | 'done'
  /** Files in the manifest. */
  readonly manifestFiles: number
  /** Files the taker asked for, and how many of them it has answered. */
  readonly filesTotal: number
  readonly filesDone: number
  /** Bytes sent so far, and the sizes of the files announced so far. */
  readonly bytesDone: number
  readonly bytesTotal: number
  /** Files the taker refused or that could not be read, with the reason. */
  readonly failed: ReadonlyArray<{ readonly path: string, readonly reason: string }>
  /** Set when the folder was answered with `missing`: why. */
  readonly missing?: string
}

interface Wanted { readonly path: string, readonly offset?: number }

/** §5 revision 2 getlist: manifest keys, or `[key, offset]`; null when it is not one. */
function parseGetlist (v: JsonValue, manifest: Record<string, unknown>): Wanted[] | null {
  if (!Array.isArray(v)) return null
  const out: Wanted[] = []
  for (const w of v) {
    if (typeof w === 'string' && Object.hasOwn(manifest, w)) out.push({ path: w })
    else if (Array.isArray(w) && w.length === 2 && typeof w[0] === 'string' && Object.hasOwn(manifest, w[0]) &&
      typeof w[1] === 'number' && Number.isSafeInteger(w[1]) && w[1] >= 0) out.push({ path: w[0], offset: w[1] })
    else return null
  }
  return out
}

const ZEROS = new Uint8Array(MAX_CHUNK)
/** Files of the getlist opened ahead of the one being sent. */
const LOOKAHEAD = 8

/** A file opened to be sent: its handle and stat, and its bytes already when it is small. */
interface Opened { readonly fh: FileHandle, readonly size: number, readonly stats: Stats, readonly head?: Buffer }
/** Opened, or why the file cannot be sent. */
type Prepared = Opened | string

async function prepareFile (root: string, rootReal: string, folder: string, rel: string): Promise<Prepared> {
  const opened = await openInside(root, rootReal, folder, rel)
  if (typeof opened === 'string') return opened
  const { fh, stats } = opened
  try {
    if (stats.size > MAX_CHUNK) return { fh, size: stats.size, stats }
    const chunks: Uint8Array[] = []
    for await (const c of readFrom(fh, 0, stats.size)) chunks.push(c)
    return { fh, size: stats.size, stats, head: Buffer.concat(chunks) }
  } catch (err) {
    await fh.close().catch(() => {})
    return `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
  }
}

/**
 * The giver side of §5, once `["give", folder]` arrived on a pass: manifest,
 * getlist, then the files in getlist order, pipelined (the next file goes out
 * before the taker's answer to the previous one), answers read at the same
 * time. Never reads outside `root`.
 */
export async function give (ch: Channel, o: { root: string, folder: string, cache: HashCache, serve: boolean, revision: 1 | 2 },
  progress: (p: GiveProgress) => void): Promise<GiveProgress> {
  const { root, folder, cache, serve } = o
  let state: GiveProgress = { folder, stage: 'manifest', manifestFiles: 0, filesTotal: 0, filesDone: 0, bytesDone: 0, bytesTotal: 0, failed: [] }
  const built = serve ? await buildManifest(root, folder, cache) : null
  if (built === null || built.missing !== undefined) {
    // §5 revision 2: no such folder here (or not serving at all); the taker gets no_such_folder.
    const reason = built?.missing ?? 'not serving'
    // Revision 1 has no way to say so: an empty manifest.
    ch.sendJson(o.revision >= 2 ? ['missing', folder, reason] : {})
    state = { ...state, stage: 'done', missing: reason }
    progress(state)
    return state
  }
  const manifestFiles = built.entries.size
  ch.sendJson(o.revision >= 2 ? built.manifest : Object.fromEntries([...built.entries].map(([rel, e]) => [rel, e.hash])))
  state = { ...state, manifestFiles }
  progress(state)

  const raw = await ch.json()
  const list = parseGetlist(raw, built.manifest)
  if (list === null) throw unexpected(raw, 'a getlist of manifest paths')
  const failed: Array<{ path: string, reason: string }> = []
  state = { ...state, filesTotal: list.length }
  let bytesDone = 0
  let bytesTotal = 0

  // The next files are opened (and small ones read) while this one goes out, so the disk's latency overlaps the network's.
  const prepared = new Map<number, Promise<Prepared>>()
  const prepare = (i: number): Promise<Prepared> => {
    let p = prepared.get(i)
    if (p === undefined) {
      p = prepareFile(root, built.rootReal, folder, list[i].path)
      prepared.set(i, p)
    }
    return p
  }

  const sendFiles = async (): Promise<void> => {
    for (const [i, { path, offset: asked }] of list.entries()) {
      for (let j = i + 1; j <= i + LOOKAHEAD && j < list.length; j++) void prepare(j)
      const file = await prepare(i)
      prepared.delete(i)
      if (typeof file === 'string') {
        ch.sendJson(['missing', path, file])
        continue
      }
      try {
        const { size, stats: s } = file
        // Resume only the very file the manifest describes (hashed with these size, mtime and inode).
        const known = built.entries.get(path)
        const resumable = asked !== undefined && asked <= size && known !== undefined && known.size === size &&
          known.mtimeMs === s.mtimeMs && known.ino === s.ino
        const offset = resumable ? asked : 0
        ch.sendJson(resumable ? ['file', path, size, offset] : ['file', path, size])
        bytesTotal += size - offset
        let remaining = size - offset
        if (remaining > 0) {
          try {
            const source = file.head !== undefined && offset === 0 ? [file.head] : readFrom(file.fh, offset, size)
            for await (const chunk of source) {
              const n = Math.min(chunk.byteLength, remaining)
              if (n === 0) break
              await ch.sendBinary(n === chunk.byteLength ? chunk : chunk.subarray(0, n), (chunk as { release?: () => void }).release)
              remaining -= n
              bytesDone += n
            }
          } catch (err) {
            if (err instanceof ClientError) throw err
            // A read error after the header: the taker's hash check will refuse the padding below.
          }
        }
        // The file shrank or failed mid-read: the header promised `size` bytes, so send zeros to keep §5 framing.
        while (remaining > 0) {
          const n = Math.min(remaining, MAX_CHUNK)
          await ch.sendBinary(ZEROS.subarray(0, n))
          remaining -= n
          bytesDone += n
        }
      } finally {
        await file.fh.close().catch(() => {})
      }
    }
  }

  const readAnswers = async (): Promise<void> => {
    for (const { path } of list) {
      const a: JsonValue = await ch.json()
      const ack = validateFileAck(a, path)
      if (!ack.ok) throw unexpected(a, `["ok"|"failed", ${JSON.stringify(path)}]`)
      if (ack.value.type === 'failed') failed.push({ path, reason: ack.value.reason })
      state = { ...state, stage: 'file', filesDone: state.filesDone + 1, bytesDone, bytesTotal, failed: [...failed] }
      progress(state)
    }
  }

  if (list.length > 0) {
    let firstError: unknown = null
    const stop = (err: unknown): void => {
      if (firstError === null) firstError = err
      // One side failed: the connection is unusable, end it so the other side stops waiting.
      ch.socket.destroy()
    }
    await Promise.all([sendFiles().catch(stop), readAnswers().catch(stop)])
    // Files opened ahead of a failure are closed.
    for (const p of prepared.values()) void p.then((f) => typeof f === 'string' ? undefined : f.fh.close().catch(() => {}))
    if (firstError !== null) throw firstError
  }
  state = { ...state, stage: 'done', bytesDone, bytesTotal, failed: [...failed] }
  progress(state)
  return state
}

/** Opens `root/<folder>/<rel>` for reading, or says why not; refuses whatever really lies outside the root. */
async function openInside (root: string, rootReal: string, folder: string, rel: string): Promise<{ fh: FileHandle, stats: Stats } | string> {
  const dir = folderPath(root, folder)
  if (dir === null) return 'folder refused'
  const p = filePath(dir, rel)
  if (!p.ok) return p.reason
  const real = await realOrNull(p.path)
  if (real === null) return 'no such file'
  if (!isInside(rootReal, real)) return 'outside the served root'
  let fh: FileHandle
  try {
    fh = await open(real, 'r')
  } catch (err) {
    return `cannot open: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
  }
  const s = await fh.stat().catch(() => null)
  if (s === null || !s.isFile()) {
    await fh.close().catch(() => {})
    return 'not a regular file'
  }
  return { fh, stats: s }
}

/** The bytes of `fh` from `start` to `end` (exclusive): one read for a small file, a stream for a large one. */
async function * readFrom (fh: FileHandle, start: number, end: number): AsyncGenerator<Uint8Array> {
  if (end - start <= MAX_CHUNK) {
    const buf = Buffer.allocUnsafe(end - start)
    let filled = 0
    while (filled < buf.byteLength) {
      const { bytesRead } = await fh.read(buf, filled, buf.byteLength - filled, start + filled)
      if (bytesRead === 0) break
      filled += bytesRead
    }
    yield buf.subarray(0, filled)
    return
  }
  // A large file: read into buffers that come back once the socket has taken them (no garbage per MiB).
  // Never more than announced, even if the file grew meanwhile.
  for (let at = start; at < end;) {
    const buf = SEND_BUFFERS.pop() ?? Buffer.allocUnsafe(MAX_CHUNK)
    const { bytesRead } = await fh.read(buf, 0, Math.min(MAX_CHUNK, end - at), at)
    if (bytesRead === 0) { SEND_BUFFERS.push(buf); return }
    at += bytesRead
    yield Object.assign(buf.subarray(0, bytesRead), { release: () => { if (SEND_BUFFERS.length < 8) SEND_BUFFERS.push(buf) } })
  }
}

/** Buffers of large files' reads, back from the socket. */
const SEND_BUFFERS: Buffer[] = []
