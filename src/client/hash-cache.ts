import { createHash } from 'node:crypto'
import { createReadStream, type Stats } from 'node:fs'
import { stat } from 'node:fs/promises'
import { MAX_CHUNK } from '../../protocol/frame.ts'

interface Entry { readonly size: number, readonly mtimeMs: number, readonly ino: number, readonly hash: string }

const unchanged = (e: Entry, s: Stats): boolean => e.size === s.size && e.mtimeMs === s.mtimeMs && e.ino === s.ino

/**
 * SHA-256 hex of files, remembered by path + size + mtime (+ inode), so an
 * unchanged folder is not read again. One cache can be shared by several
 * clients; it lives in memory.
 */
export class HashCache {
  private readonly entries = new Map<string, Entry>()
  /** Files actually read and hashed (cache misses), for tests and stats. */
  hashed = 0
  /** Answers given from the cache. */
  hits = 0

  /** The hash of the regular file at `path` (absolute; give the real path). */
  async hash (path: string, known?: Stats): Promise<{ hash: string, size: number }> {
    const before = known ?? await stat(path)
    const cached = this.entries.get(path)
    if (cached !== undefined && unchanged(cached, before)) {
      this.hits++
      return { hash: cached.hash, size: cached.size }
    }
    const h = createHash('sha256')
    for await (const chunk of createReadStream(path, { highWaterMark: MAX_CHUNK })) h.update(chunk as Buffer)
    const hash = h.digest('hex')
    this.hashed++
    const after = await stat(path)
    // Only remember what did not change while it was read.
    if (unchanged({ size: before.size, mtimeMs: before.mtimeMs, ino: before.ino, hash }, after)) {
      this.entries.set(path, { size: after.size, mtimeMs: after.mtimeMs, ino: after.ino, hash })
    } else {
      this.entries.delete(path)
    }
    return { hash, size: after.size }
  }

  /** Records a hash already known (a file just received and verified). */
  remember (path: string, s: Stats, hash: string): void {
    this.entries.set(path, { size: s.size, mtimeMs: s.mtimeMs, ino: s.ino, hash })
  }

  forget (path: string): void {
    this.entries.delete(path)
  }

  get size (): number {
    return this.entries.size
  }
}
