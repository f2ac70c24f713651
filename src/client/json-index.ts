import { readFileSync } from 'node:fs'
import writeFileAtomic from 'write-file-atomic'
import type { FileIndex, IndexedFile, PartRecord, PlacedFile } from './file-index.ts'

/** Writes are gathered and flushed at most this often (and on close). */
const FLUSH_AFTER_MS = 1_000

interface Stored {
  version: 1
  files: Record<string, IndexedFile>
  fetched: Record<string, string>
  parts: Record<string, PartRecord>
}

const record = <T>(): Record<string, T> => Object.create(null) as Record<string, T>
const empty = (): Stored => ({ version: 1, files: record(), fetched: record(), parts: record() })

/**
 * The index as one JSON file, where better-sqlite3 could not be built: read
 * whole at open, kept in memory, written whole and atomically (temp file and
 * rename, write-file-atomic) a second after a change and on close. A crash
 * loses at most that second of records, which only costs hashing again (and
 * a part without its record starts over). `path` null: memory only.
 */
export class JsonIndex implements FileIndex {
  readonly kind = 'json'
  private readonly data: Stored
  private timer: NodeJS.Timeout | null = null

  constructor (private readonly path: string | null) {
    this.data = path === null ? empty() : load(path)
  }

  file (path: string): IndexedFile | undefined { return own(this.data.files, path) }
  setFile (path: string, f: IndexedFile): void { this.data.files[path] = f; this.changed() }
  forgetFile (path: string): void { delete this.data.files[path]; this.changed() }

  hasUnder (prefix: string): boolean {
    for (const key in this.data.files) if (prefix === '' || key.startsWith(`${prefix}/`)) return true
    return false
  }

  fetched (path: string): string | undefined { return own(this.data.fetched, path) }
  setFetched (path: string, hash: string): void { this.data.fetched[path] = hash; this.changed() }
  forgetFetched (path: string): void { delete this.data.fetched[path]; this.changed() }

  part (path: string): PartRecord | undefined { return own(this.data.parts, path) }
  setPart (path: string, p: PartRecord): void { this.data.parts[path] = p; this.changed() }
  forgetPart (path: string): void { delete this.data.parts[path]; this.changed() }
  parts (): Array<{ path: string } & PartRecord> { return Object.entries(this.data.parts).map(([path, p]) => ({ path, ...p })) }

  placed (files: readonly PlacedFile[]): void {
    for (const { path, part, f } of files) {
      this.data.files[path] = f
      this.data.fetched[path] = f.hash
      if (part !== null) delete this.data.parts[part]
    }
    this.changed()
  }

  close (): void {
    if (this.timer !== null) this.flush()
  }

  private changed (): void {
    if (this.path === null || this.timer !== null) return
    this.timer = setTimeout(() => this.flush(), FLUSH_AFTER_MS)
    this.timer.unref()
  }

  private flush (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    if (this.path === null) return
    try {
      writeFileAtomic.sync(this.path, JSON.stringify(this.data))
    } catch {
      // An index that cannot be written only costs hashing again next time.
    }
  }
}

function own<T> (record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined
}

function load (path: string): Stored {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<Stored>
    if (v.version !== 1 || typeof v.files !== 'object' || typeof v.fetched !== 'object' || typeof v.parts !== 'object') return empty()
    // Null-prototype records: a file named "__proto__" is a key like any other.
    return {
      version: 1,
      files: Object.assign(record<IndexedFile>(), v.files),
      fetched: Object.assign(record<string>(), v.fetched),
      parts: Object.assign(record<PartRecord>(), v.parts)
    }
  } catch {
    return empty()
  }
}
