import { readdirSync, realpathSync, statSync, type Dirent, type Stats } from 'node:fs'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { checkRelativePath } from '../../protocol/paths.ts'
import { folderPath, isInside, mapLimit, realOrNull } from './fs-safety.ts'
import type { HashCache } from './hash-cache.ts'
import { IgnoreRules, PART_SUFFIX } from './ignore-rules.ts'

export { PART_SUFFIX }

/** How many files are hashed at once. */
const HASH_CONCURRENCY = 8

/** §5 revision 2 manifest entry as this client sends it. */
export interface WireEntry {
  hash: string
  size: number
  /** Seconds since the Unix epoch (fractional). */
  mtime: number
  /** POSIX permission bits. */
  mode: number
}

export interface ManifestEntry {
  /** The real path of the file that was hashed. */
  readonly real: string
  readonly hash: string
  readonly size: number
  readonly mtimeMs: number
  readonly ino: number
}

export interface BuiltManifest {
  /** §5 manifest: `{relative file path: {hash, size, mtime, mode}}`. */
  readonly manifest: Record<string, WireEntry>
  readonly entries: Map<string, ManifestEntry>
  /** The folder served and the root, as real paths; null when it is missing, and `missing` says why. */
  readonly dirReal: string | null
  readonly rootReal: string
  readonly missing?: string
}

export interface LocalFile {
  /** Relative to the folder, with `/`. */
  readonly rel: string
  readonly real: string
  readonly stats: Stats
}

/** The folder of `root` a §2 project path names, as a real path, or why there is none. */
export async function realFolder (root: string, folder: string): Promise<{ rootReal: string, dirReal: string } | string> {
  const dir = folderPath(root, folder)
  if (dir === null) return 'the folder path is refused'
  const rootReal = await realOrNull(root)
  if (rootReal === null) return 'the root does not exist'
  const dirReal = await realOrNull(dir)
  if (dirReal === null) return 'no such folder'
  if (!isInside(rootReal, dirReal)) return 'the folder lies outside the root'
  if (!(await stat(dirReal).then((s) => s.isDirectory(), () => false))) return 'not a folder'
  return { rootReal, dirReal }
}

/**
 * Every regular file below `dirReal`, recursively, sorted by path. Symlinks are
 * followed only when their target is inside the root (each real folder is
 * walked once); names §2 cannot carry (a backslash, a `C:` segment) and what
 * `rules` ignores (paths from the root: `folderRel/<rel>`) are left out.
 *
 * The walk uses synchronous calls, as rsync does: a stat of a local file takes
 * microseconds, far less than a trip through libuv's thread pool, and the
 * client has nothing else to do meanwhile (its socket keeps buffering).
 */
const realOrNullSync = (path: string): string | null => {
  try {
    return realpathSync(path)
  } catch {
    return null
  }
}

export async function walkFolder (rootReal: string, dirReal: string, folderRel: string, rules: IgnoreRules): Promise<LocalFile[]> {
  const files: LocalFile[] = []
  const visited = new Set<string>([dirReal])
  const fromRoot = (rel: string): string => folderRel === '' ? rel : `${folderRel}/${rel}`
  const walk = (real: string, prefix: string): void => {
    let list: Dirent[]
    try {
      list = readdirSync(real, { withFileTypes: true })
    } catch {
      return
    }
    list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const d of list) {
      const rel = prefix === '' ? d.name : `${prefix}/${d.name}`
      if (!checkRelativePath(rel).ok) continue
      const full = join(real, d.name)
      const target = d.isSymbolicLink() ? realOrNullSync(full) : full
      if (target === null || !isInside(rootReal, target)) continue
      let s: Stats | undefined
      try {
        s = statSync(target, { throwIfNoEntry: false })
      } catch {
        continue
      }
      if (s === undefined) continue
      if (s.isDirectory()) {
        if (visited.has(target) || rules.ignores(`${fromRoot(rel)}/`)) continue
        visited.add(target)
        walk(target, rel)
      } else if (s.isFile() && !rules.ignores(fromRoot(rel))) {
        files.push({ rel, real: target, stats: s })
      }
    }
  }
  walk(dirReal, '')
  return files
}

/** The folder's path from the root, without leading or trailing `/` ('' for the root). */
export const folderRelOf = (folder: string): string => folder.replace(/^\/+/, '').replace(/\/+$/, '')

/**
 * The manifest of `root/<folder>`: every file `walkFolder` lists, hashed
 * through `cache` (unchanged files come from the index, unread), with size,
 * mtime and mode. A missing folder gives `missing` (answered with §5's
 * `["missing", folder, reason]`).
 */
export async function buildManifest (root: string, folder: string, cache: HashCache,
  onHashed?: (done: number, total: number) => void): Promise<BuiltManifest> {
  const where = await realFolder(root, folder)
  if (typeof where === 'string') return { manifest: {}, entries: new Map(), dirReal: null, rootReal: '', missing: where }
  const { rootReal, dirReal } = where
  const files = await walkFolder(rootReal, dirReal, folderRelOf(folder), IgnoreRules.load(rootReal))

  // Unchanged files are answered by the index at once; only the others are read, a few at a time.
  const hashed: Array<{ hash: string, size: number } | null> = files.map((f) => cache.known(f.real, f.stats) ?? null)
  const toRead = files.flatMap((f, i) => hashed[i] === null ? [i] : [])
  let done = files.length - toRead.length
  if (done > 0) onHashed?.(done, files.length)
  await mapLimit(toRead, HASH_CONCURRENCY, async (i) => {
    hashed[i] = await cache.hash(files[i].real, files[i].stats).catch(() => null)
    onHashed?.(++done, files.length)
  })
  const manifest: Record<string, WireEntry> = {}
  const entries = new Map<string, ManifestEntry>()
  files.forEach((f, i) => {
    const h = hashed[i]
    if (h === null) return
    const entry: WireEntry = { hash: h.hash, size: h.size, mtime: f.stats.mtimeMs / 1000, mode: f.stats.mode & 0o777 }
    // defineProperty, so a file named "__proto__" is a key like any other.
    Object.defineProperty(manifest, f.rel, { value: entry, enumerable: true, writable: true, configurable: true })
    entries.set(f.rel, { real: f.real, hash: h.hash, size: h.size, mtimeMs: f.stats.mtimeMs, ino: f.stats.ino })
  })
  return { manifest, entries, dirReal, rootReal }
}
