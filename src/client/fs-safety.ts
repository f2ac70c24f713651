import { lstat, realpath } from 'node:fs/promises'
import { basename, dirname, isAbsolute, relative, resolve, sep } from 'node:path'
import { checkProjectPath, checkRelativePath } from '../../protocol/paths.ts'

/** True when `child` is `parent` or below it (both absolute, normalised). */
export function isInside (parent: string, child: string): boolean {
  // The common case without path.relative's work: a normalised child below the parent.
  if (child.startsWith(parent) && child.charAt(parent.length) === sep && !child.includes(`${sep}..`) && !child.includes(`${sep}.${sep}`) &&
    !child.endsWith(`${sep}.`) && !child.includes(`${sep}${sep}`)) return true
  const rel = relative(parent, child)
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel))
}

/**
 * The local folder of a §2 project path: `root/<folder>`, a leading `/` being
 * the root itself. Null when the path is refused by §2 or would leave `root`.
 */
export function folderPath (root: string, folder: string): string | null {
  const checked = checkProjectPath(folder)
  if (!checked.ok) return null
  const base = resolve(root)
  const dir = resolve(base, checked.value.replace(/^\/+/, '') || '.')
  return isInside(base, dir) ? dir : null
}

/** `dir/<rel>` for a §2 relative file path, or why it is refused. */
export function filePath (dir: string, rel: string): { ok: true, path: string } | { ok: false, reason: string } {
  const checked = checkRelativePath(rel)
  if (!checked.ok) return { ok: false, reason: checked.reason }
  const path = resolve(dir, checked.value)
  if (path === dir || !isInside(dir, path)) return { ok: false, reason: `${JSON.stringify(rel)} leaves its folder` }
  return { ok: true, path }
}

/** realpath, or null when the path does not exist (or cannot be resolved). */
export async function realOrNull (path: string): Promise<string | null> {
  try {
    return await realpath(path)
  } catch {
    return null
  }
}

/**
 * Where writing `path` would really land, following every symlink on the way:
 * the real path of its deepest existing ancestor, joined with the rest.
 * Refuses (null) when that is outside `rootReal`, so a symlinked folder cannot
 * carry a write out of the root.
 */
export async function realTarget (rootReal: string, path: string): Promise<string | null> {
  let existing = path
  const rest: string[] = []
  while (true) {
    const real = await realOrNull(existing)
    if (real !== null) {
      const target = resolve(real, ...rest.reverse())
      return isInside(rootReal, target) ? target : null
    }
    // A dangling symlink: its target does not exist, and following it could still leave the root.
    if (await lstat(existing).then((s) => s.isSymbolicLink(), () => false)) return null
    const parent = dirname(existing)
    if (parent === existing) return null
    rest.push(basename(existing))
    existing = parent
  }
}

/** Runs `task` over `items` with at most `limit` at a time, keeping order in the results. */
export async function mapLimit<T, R> (items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      results[i] = await task(items[i], i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}
