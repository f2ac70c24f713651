import type { Dirent } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { checkRelativePath } from '../../protocol/paths.ts'
import { folderPath, isInside, mapLimit, realOrNull } from './fs-safety.ts'
import type { HashCache } from './hash-cache.ts'

/** Temp files of downloads in progress end with this; they are never served. */
export const PART_SUFFIX = '.vcmu-part'

/** How many files are hashed at once. */
const HASH_CONCURRENCY = 8

export interface ManifestEntry {
  /** The real path of the file that was hashed. */
  readonly real: string
  readonly hash: string
  readonly size: number
}

export interface BuiltManifest {
  /** §5 manifest: `{relative file path: SHA-256 hex}`. */
  readonly manifest: Record<string, string>
  readonly entries: Map<string, ManifestEntry>
  /** The folder served, as a real path (null: it does not exist or is refused: empty manifest). */
  readonly dirReal: string | null
}

/**
 * The manifest of `root/<folder>`: every regular file below it, recursively,
 * hashed through `cache`. Symlinks are followed only when their target is
 * inside the root (and each real folder is walked once); names §2 cannot
 * carry (a backslash, a `C:` segment) and download temp files are left out.
 * A missing folder gives an empty manifest.
 */
export async function buildManifest (root: string, folder: string, cache: HashCache): Promise<BuiltManifest> {
  const empty: BuiltManifest = { manifest: {}, entries: new Map(), dirReal: null }
  const dir = folderPath(root, folder)
  const rootReal = await realOrNull(root)
  if (dir === null || rootReal === null) return empty
  const dirReal = await realOrNull(dir)
  if (dirReal === null || !isInside(rootReal, dirReal)) return empty
  if (!(await stat(dirReal).then((s) => s.isDirectory(), () => false))) return empty

  const files: Array<{ rel: string, real: string }> = []
  const visited = new Set<string>([dirReal])
  const walk = async (real: string, prefix: string): Promise<void> => {
    let list: Dirent[]
    try {
      list = await readdir(real, { withFileTypes: true })
    } catch {
      return
    }
    list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const d of list) {
      const rel = prefix === '' ? d.name : `${prefix}/${d.name}`
      if (d.name.endsWith(PART_SUFFIX) || !checkRelativePath(rel).ok) continue
      let full = join(real, d.name)
      let isDir = d.isDirectory()
      let isFile = d.isFile()
      if (d.isSymbolicLink()) {
        const target = await realOrNull(full)
        if (target === null || !isInside(rootReal, target)) continue
        const s = await stat(target).catch(() => null)
        if (s === null) continue
        full = target
        isDir = s.isDirectory()
        isFile = s.isFile()
      }
      if (isDir) {
        if (visited.has(full)) continue
        visited.add(full)
        await walk(full, rel)
      } else if (isFile) {
        files.push({ rel, real: full })
      }
    }
  }
  await walk(dirReal, '')

  const hashed = await mapLimit(files, HASH_CONCURRENCY, async (f) => await cache.hash(f.real).catch(() => null))
  const manifest: Record<string, string> = {}
  const entries = new Map<string, ManifestEntry>()
  files.forEach((f, i) => {
    const h = hashed[i]
    if (h === null) return
    // defineProperty, so a file named "__proto__" is a key like any other.
    Object.defineProperty(manifest, f.rel, { value: h.hash, enumerable: true, writable: true, configurable: true })
    entries.set(f.rel, { real: f.real, hash: h.hash, size: h.size })
  })
  return { manifest, entries, dirReal }
}
