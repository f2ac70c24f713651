import { mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import type Database from 'better-sqlite3'
import { JsonIndex } from './json-index.ts'

/** The client's own folder inside a root: index, trash. Never served, never deleted by `get --delete`. */
export const CLIENT_DIR = '.vcmu'
export const INDEX_FILE = 'index.sqlite'
/** The fallback's file, where better-sqlite3 could not be built (see FileIndex). */
export const JSON_INDEX_FILE = 'index.json'
const SCHEMA_VERSION = 1

/** What a file looked like when it was hashed. */
export interface IndexedFile {
  readonly size: number
  readonly mtimeMs: number
  readonly ctimeMs: number
  readonly ino: number
  readonly hash: string
  /** When it was hashed (ms since the epoch): a file changed in the same clock tick looks unchanged, see HashCache. */
  readonly hashedAt: number
}

/** A file `get` put in place (`path`), from its part file (`part`, null when none is indexed). */
export interface PlacedFile {
  readonly path: string
  readonly part: string | null
  readonly f: IndexedFile
}

/** An interrupted download: `bytes` of the file whose whole hash is `hash` are in the part file. */
export interface PartRecord {
  readonly hash: string
  readonly bytes: number
}

/**
 * The persistent per-root index: for each file (path relative to the root's
 * real path) the size, mtime, ctime and inode it had when hashed, and its
 * SHA-256; the hash each file had when `get` last put it in place; and the
 * interrupted downloads that can resume.
 *
 * Kept in SQLite (`<root>/.vcmu/index.sqlite`, better-sqlite3). better-sqlite3
 * is an optional dependency built from source at install: where it could not
 * be built (no compiler, no Node headers), the index is a JSON file
 * (`index.json`, JsonIndex) written atomically; `kind` says which.
 */
export interface FileIndex {
  /** Which store holds it. */
  readonly kind: 'sqlite' | 'json'
  file: (path: string) => IndexedFile | undefined
  setFile: (path: string, f: IndexedFile) => void
  forgetFile: (path: string) => void
  /** True when some file below the folder `prefix` (relative to the root, '' for the root) is indexed. */
  hasUnder: (prefix: string) => boolean
  /** The hash the file at `path` had when `get` last put it in place. */
  fetched: (path: string) => string | undefined
  setFetched: (path: string, hash: string) => void
  forgetFetched: (path: string) => void
  /** The interrupted download whose part file is `path`. */
  part: (path: string) => PartRecord | undefined
  setPart: (path: string, p: PartRecord) => void
  forgetPart: (path: string) => void
  parts: () => Array<{ path: string } & PartRecord>
  /** Files put in place by `get`: each one's record, the hash it was fetched with, and no more part; all at once (one transaction). */
  placed: (files: readonly PlacedFile[]) => void
  close: () => void
}

type SqliteModule = typeof Database
const sqlite: SqliteModule | Error = (() => {
  try {
    return createRequire(import.meta.url)('better-sqlite3') as SqliteModule
  } catch (err) {
    return err as Error
  }
})()

export const FileIndex = {
  /** Opens (creating it if needed) the index of the root whose real path is `rootReal`; `store` forces one (tests). */
  open (rootReal: string, store?: FileIndex['kind']): FileIndex {
    const dir = join(rootReal, CLIENT_DIR)
    mkdirSync(dir, { recursive: true })
    if (store === 'json') return new JsonIndex(join(dir, JSON_INDEX_FILE))
    // Same behaviour either way (only crash safety and speed on huge roots differ), so no noise on stderr: `kind` tells.
    if (sqlite instanceof Error) return new JsonIndex(join(dir, JSON_INDEX_FILE))
    return new SqliteIndex(new sqlite(join(dir, INDEX_FILE)))
  },

  /** An index that lives in memory only (a root the client cannot write). */
  memory (): FileIndex {
    return sqlite instanceof Error ? new JsonIndex(null) : new SqliteIndex(new sqlite(':memory:'))
  }
}

/**
 * The index in SQLite through better-sqlite3: it survives a crash mid-write
 * (journal), needs no server, and writes one row at a time; calls are
 * synchronous and short, so they do not hold the event loop.
 */
class SqliteIndex implements FileIndex {
  readonly kind = 'sqlite'
  private readonly db: Database.Database
  private readonly allFiles: Database.Statement<[], { path: string } & IndexedFile>
  private memory: Map<string, IndexedFile> | null = null
  private readonly putFile: Database.Statement<[string, number, number, number, number, string, number]>
  private readonly delFile: Database.Statement<[string]>
  private readonly getFetched: Database.Statement<[string], { hash: string }>
  private readonly putFetched: Database.Statement<[string, string]>
  private readonly delFetched: Database.Statement<[string]>
  private readonly getPart: Database.Statement<[string], PartRecord>
  private readonly putPart: Database.Statement<[string, string, number]>
  private readonly delPart: Database.Statement<[string]>
  private readonly allParts: Database.Statement<[], { path: string } & PartRecord>

  constructor (db: Database.Database) {
    this.db = db
    db.pragma('journal_mode = WAL')
    // An index is a cache of what the disk says: losing its last writes in a power cut only costs a re-hash.
    db.pragma('synchronous = NORMAL')
    db.pragma('busy_timeout = 5000')
    if (db.pragma('user_version', { simple: true }) !== SCHEMA_VERSION) {
      // Another layout (an older client): the index is only a cache, start it again.
      db.exec('DROP TABLE IF EXISTS files; DROP TABLE IF EXISTS fetched; DROP TABLE IF EXISTS parts;')
      db.pragma(`user_version = ${SCHEMA_VERSION}`)
    }
    db.exec(`
      CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ms REAL NOT NULL,
        ctime_ms REAL NOT NULL, ino INTEGER NOT NULL, hash TEXT NOT NULL, hashed_at REAL NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS fetched (path TEXT PRIMARY KEY, hash TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS parts (path TEXT PRIMARY KEY, hash TEXT NOT NULL, bytes INTEGER NOT NULL) WITHOUT ROWID;
    `)
    this.allFiles = db.prepare('SELECT path, size, mtime_ms AS mtimeMs, ctime_ms AS ctimeMs, ino, hash, hashed_at AS hashedAt FROM files')
    this.putFile = db.prepare('INSERT OR REPLACE INTO files (path, size, mtime_ms, ctime_ms, ino, hash, hashed_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
    this.delFile = db.prepare('DELETE FROM files WHERE path = ?')
    this.getFetched = db.prepare('SELECT hash FROM fetched WHERE path = ?')
    this.putFetched = db.prepare('INSERT OR REPLACE INTO fetched (path, hash) VALUES (?, ?)')
    this.delFetched = db.prepare('DELETE FROM fetched WHERE path = ?')
    this.getPart = db.prepare('SELECT hash, bytes FROM parts WHERE path = ?')
    this.putPart = db.prepare('INSERT OR REPLACE INTO parts (path, hash, bytes) VALUES (?, ?, ?)')
    this.delPart = db.prepare('DELETE FROM parts WHERE path = ?')
    this.allParts = db.prepare('SELECT path, hash, bytes FROM parts')
  }

  /**
   * The record of `path`. All records are read into memory at the first
   * lookup (one query instead of one per file), then kept in step with this
   * index's writes. Another process writing the same index meanwhile only
   * makes a record look stale: the file's stat then differs and it is hashed.
   */
  file (path: string): IndexedFile | undefined {
    if (this.memory === null) {
      this.memory = new Map(this.allFiles.all().map(({ path: p, ...f }) => [p, f]))
    }
    return this.memory.get(path)
  }

  hasUnder (prefix: string): boolean {
    this.file('')
    for (const key of this.memory?.keys() ?? []) if (prefix === '' || key.startsWith(`${prefix}/`)) return true
    return false
  }

  setFile (path: string, f: IndexedFile): void {
    this.putFile.run(path, f.size, f.mtimeMs, f.ctimeMs, f.ino, f.hash, f.hashedAt)
    this.memory?.set(path, f)
  }

  forgetFile (path: string): void {
    this.delFile.run(path)
    this.memory?.delete(path)
  }

  /** The hash the file at `path` had when `get` last put it in place. */
  fetched (path: string): string | undefined {
    return this.getFetched.get(path)?.hash
  }

  setFetched (path: string, hash: string): void {
    this.putFetched.run(path, hash)
  }

  forgetFetched (path: string): void {
    this.delFetched.run(path)
  }

  /** The interrupted download whose part file is `path`. */
  part (path: string): PartRecord | undefined {
    return this.getPart.get(path)
  }

  setPart (path: string, p: PartRecord): void {
    this.putPart.run(path, p.hash, p.bytes)
  }

  forgetPart (path: string): void {
    this.delPart.run(path)
  }

  placed (files: readonly PlacedFile[]): void {
    this.db.transaction(() => {
      for (const { path, part, f } of files) {
        this.setFile(path, f)
        this.setFetched(path, f.hash)
        if (part !== null) this.forgetPart(part)
      }
    })()
  }

  parts (): Array<{ path: string } & PartRecord> {
    return this.allParts.all()
  }

  close (): void {
    if (this.db.open) this.db.close()
  }
}
