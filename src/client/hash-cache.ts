import { createHash } from 'node:crypto'
import { realpathSync, type Stats } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { relative, sep } from 'node:path'
import { MAX_CHUNK } from '../../protocol/frame.ts'
import { FileIndex, type IndexedFile, type PartRecord, type PlacedFile } from './file-index.ts'
import { isInside } from './fs-safety.ts'

const sameStat = (e: Omit<IndexedFile, 'hash' | 'hashedAt'>, s: Stats): boolean =>
  e.size === s.size && e.mtimeMs === s.mtimeMs && e.ctimeMs === s.ctimeMs && e.ino === s.ino

/**
 * A file changed again within the same tick of the file system's clock keeps
 * its size, mtime and ctime: an entry hashed that soon after the file's last
 * change cannot be trusted ("racy", as git calls it) and is hashed again.
 * File systems with whole-second times (FAT, HFS+, some shares) get 2 s.
 */
function racy (e: IndexedFile): boolean {
  const coarse = e.mtimeMs % 1000 === 0 && e.ctimeMs % 1000 === 0
  return e.hashedAt - Math.max(e.mtimeMs, e.ctimeMs) < (coarse ? 2_000 : 50)
}

/** Read buffers of the hashing, shared by every cache of the process (one per file being hashed at a time). */
const BUFFERS: Buffer[] = []

const recordOf = (s: Stats, hash: string, hashedAt: number): IndexedFile =>
  ({ size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, ino: s.ino, hash, hashedAt })

export interface HashCacheOptions {
  /** Keep the index in memory only (default: `<root>/.vcmu/index.sqlite`, memory when the root cannot be written). */
  inMemory?: boolean
  /** Which store keeps the index (default: SQLite when better-sqlite3 is installed, else JSON). */
  store?: FileIndex['kind']
  /** Called before each file is read to be hashed (tests count reads with it). */
  onRead?: (path: string) => void
}

/**
 * SHA-256 hex of the files of one root, remembered in the root's persistent
 * index (FileIndex) by path + size + mtime + ctime + inode, so an unchanged
 * file is never read again, also after a restart. Share one between clients
 * of the same root.
 */
export class HashCache {
  /** Files actually read and hashed (index misses), and their bytes, for tests and stats. */
  hashed = 0
  bytesHashed = 0
  /** Answers given from the index. */
  hits = 0

  private db: FileIndex | null = null
  private transient: FileIndex | null = null
  private rootReal: string | null = null
  private readonly onRead: ((path: string) => void) | undefined

  constructor (readonly root: string, private readonly options: HashCacheOptions = {}) {
    this.onRead = options.onRead
  }

  /** The index, opened on first use (the root may only appear with the first `get`). */
  get index (): FileIndex {
    if (this.db !== null) return this.db
    let real: string | null = null
    try {
      real = realpathSync(this.root)
    } catch {
      // No root yet: nothing to remember until it exists.
      this.transient ??= FileIndex.memory()
      return this.transient
    }
    this.rootReal = real
    try {
      this.db = this.options.inMemory === true ? FileIndex.memory() : FileIndex.open(real, this.options.store)
    } catch {
      this.db = FileIndex.memory()
    }
    return this.db
  }

  /** The index key of a real path: relative to the root's real path, with `/`; null outside the root. */
  key (real: string): string | null {
    const idx = this.index
    void idx
    const root = this.rootReal
    if (root === null) return null
    // The common case, a normalised path below the root, without path.relative's work.
    if (real.startsWith(root) && real.charAt(root.length) === sep && !real.includes(`${sep}..`) && !real.includes(`${sep}.${sep}`)) {
      const rest = real.slice(root.length + 1)
      return sep === '/' ? rest : rest.split(sep).join('/')
    }
    if (!isInside(root, real)) return null
    return relative(root, real).split(sep).join('/')
  }

  /**
   * The hash the index holds for the file at `path` (a real path) whose stat is
   * `s`, when it can be trusted; undefined when the file must be read. Synchronous:
   * a folder of unchanged files is checked without a promise per file.
   */
  known (path: string, s: Stats): { hash: string, size: number } | undefined {
    const key = this.key(path)
    const cached = key === null ? undefined : this.index.file(key)
    if (cached === undefined || !sameStat(cached, s) || racy(cached)) return undefined
    this.hits++
    return { hash: cached.hash, size: cached.size }
  }

  /** The hash of the regular file at `path` (absolute; give the real path). */
  async hash (path: string, known?: Stats): Promise<{ hash: string, size: number }> {
    const before = known ?? await stat(path)
    const hit = this.known(path, before)
    if (hit !== undefined) return hit
    const key = this.key(path)
    this.onRead?.(path)
    const hash = await this.sha256(path)
    this.hashed++
    const after = await stat(path)
    const hashedAt = Date.now()
    if (key !== null) {
      // Only remember what did not change while it was read.
      if (sameStat(before, after)) this.index.setFile(key, recordOf(after, hash, hashedAt))
      else this.index.forgetFile(key)
    }
    return { hash, size: after.size }
  }

  /** SHA-256 hex of the file at `path`, read through a reused buffer (no garbage per chunk). */
  private async sha256 (path: string): Promise<string> {
    const h = createHash('sha256')
    const buf = BUFFERS.pop() ?? Buffer.allocUnsafe(MAX_CHUNK)
    try {
      const fh = await open(path, 'r')
      try {
        while (true) {
          const { bytesRead } = await fh.read(buf, 0, buf.byteLength, null)
          if (bytesRead === 0) break
          h.update(buf.subarray(0, bytesRead))
          this.bytesHashed += bytesRead
        }
      } finally {
        await fh.close()
      }
    } finally {
      BUFFERS.push(buf)
    }
    return h.digest('hex')
  }

  /**
   * Records a hash already known: a file this client just wrote, verified and
   * stat'ed. Trusted at once (not racy): nobody else had it before that stat.
   */
  remember (path: string, s: Stats, hash: string): void {
    const key = this.key(path)
    if (key !== null) this.index.setFile(key, recordOf(s, hash, Math.max(Date.now(), Math.max(s.mtimeMs, s.ctimeMs) + 2_000)))
  }

  forget (path: string): void {
    const key = this.key(path)
    if (key !== null) this.index.forgetFile(key)
  }

  /**
   * Files `get` just put in place at `real` from `part`: indexed (trusted, see
   * `remember`), marked as fetched, their parts forgotten; one transaction for
   * them all (get records its files in batches, not one write per file).
   */
  placed (files: ReadonlyArray<{ real: string, part: string, s: Stats, hash: string }>): void {
    const now = Date.now()
    const records: PlacedFile[] = []
    for (const { real, part, s, hash } of files) {
      const key = this.key(real)
      if (key !== null) records.push({ path: key, part: this.key(part), f: recordOf(s, hash, Math.max(now, Math.max(s.mtimeMs, s.ctimeMs) + 2_000)) })
    }
    if (records.length > 0) this.index.placed(records)
  }

  /** The hash `get` last put in place at `path` (a real path), if any. */
  fetched (path: string): string | undefined {
    const key = this.key(path)
    return key === null ? undefined : this.index.fetched(key)
  }

  setFetched (path: string, hash: string): void {
    const key = this.key(path)
    if (key !== null) this.index.setFetched(key, hash)
  }

  part (path: string): PartRecord | undefined {
    const key = this.key(path)
    return key === null ? undefined : this.index.part(key)
  }

  setPart (path: string, p: PartRecord): void {
    const key = this.key(path)
    if (key !== null) this.index.setPart(key, p)
  }

  forgetPart (path: string): void {
    const key = this.key(path)
    if (key !== null) this.index.forgetPart(key)
  }

  close (): void {
    this.db?.close()
    this.transient?.close()
    this.db = null
    this.transient = null
  }
}
