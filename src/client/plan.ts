import { lstatSync, readdirSync, type Stats } from 'node:fs'
import { stat, unlink } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import type { JsonValue } from '../../protocol/frame.ts'
import { filePath, isInside, mapLimit, realTarget } from './fs-safety.ts'
import type { PartRecord } from './file-index.ts'
import type { HashCache } from './hash-cache.ts'
import { IgnoreRules, PART_SUFFIX } from './ignore-rules.ts'
import { folderRelOf, walkFolder } from './manifest.ts'

const SHA256_HEX = /^[0-9a-f]{64}$/i
const HASH_CONCURRENCY = 8

/** What `get` does with one file of the manifest. */
export type Action = 'new' | 'changed' | 'conflict' | 'up to date'

/** One manifest entry as the taker reads it (§5 revision 2: a hash string, or an object with a hash). */
export interface Offered {
  readonly hash: string
  readonly size?: number
  /** Seconds since the epoch. */
  readonly mtime?: number
  readonly mode?: number
}

export interface PlannedFile {
  readonly rel: string
  /** Where it lands (real path, inside the root). */
  readonly target: string
  readonly offered: Offered
  readonly action: Action
  /** The part file kept from an interrupted transfer, and how many bytes to ask no more (0: the whole file). */
  readonly part: string
  readonly offset: number
}

export interface Plan {
  readonly files: PlannedFile[]
  /** Local files the giver does not have (only with `delete`): relative to the folder, and real paths. */
  readonly extra: Array<{ rel: string, real: string }>
  readonly failed: Array<{ path: string, reason: string }>
}

/** The part file of `target`: beside it (same file system, so renaming it into place is atomic). */
export const partOf = (target: string): string => join(dirname(target), `.${basename(target)}${PART_SUFFIX}`)

const isObject = (v: unknown): v is Record<string, JsonValue> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A manifest entry read leniently: unknown keys ignored, bad optional values dropped; null without a SHA-256 hash. */
export function readEntry (v: JsonValue): Offered | null {
  const hash = typeof v === 'string' ? v : isObject(v) && typeof v.hash === 'string' ? v.hash : null
  if (hash === null || !SHA256_HEX.test(hash)) return null
  if (!isObject(v)) return { hash: hash.toLowerCase() }
  const int = (x: JsonValue | undefined): number | undefined => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x : undefined
  const mtime = typeof v.mtime === 'number' && Number.isFinite(v.mtime) && v.mtime >= 0 ? v.mtime : undefined
  return { hash: hash.toLowerCase(), size: int(v.size), mtime, mode: int(v.mode) }
}

/**
 * Compares the giver's manifest with the local folder `dir` of `rootReal`:
 * what is new, changed (the local file is what `get` last put there),
 * a conflict (the local file was edited here, or never came from a `get`),
 * up to date; which interrupted transfers can resume (the part belongs to
 * the same giver hash); and, with `withExtra`, local files the giver lacks.
 * Parts that can no longer serve are removed.
 */
export async function makePlan (o: {
  manifest: Record<string, JsonValue>
  rootReal: string
  dir: string
  folder: string
  cache: HashCache
  withExtra: boolean
  /** Remove parts that can no longer serve (false for a dry run, which changes nothing). */
  tidy: boolean
  onChecked: (checked: number, total: number) => void
}): Promise<Plan> {
  const failed: Plan['failed'] = []
  const rootResolved = resolve(o.cache.root)
  const candidates: Array<{ rel: string, path: string, offered: Offered }> = []
  for (const [rel, value] of Object.entries(o.manifest)) {
    const p = filePath(o.dir, rel)
    if (!p.ok) { failed.push({ path: rel, reason: `refused: ${p.reason}` }); continue }
    if (!isInside(rootResolved, p.path)) { failed.push({ path: rel, reason: 'refused: outside the root' }); continue }
    const offered = readEntry(value)
    if (offered === null) { failed.push({ path: rel, reason: 'refused: the entry has no SHA-256 hex hash' }); continue }
    candidates.push({ rel, path: p.path, offered })
  }
  let checked = 0
  const dirs = new Map<string, Promise<Folder | null>>()
  const folderOf = (dir: string): Promise<Folder | null> => {
    let known = dirs.get(dir)
    if (known === undefined) {
      known = realTarget(o.rootReal, dir).then(async (real) => {
        if (real === null) return null
        const exists = await stat(real).then((s) => s.isDirectory(), () => false)
        return { real, exists, names: exists ? namesIn(real) : null }
      })
      dirs.set(dir, known)
    }
    return known
  }
  // Interrupted transfers are few: read them once rather than asking the index for every file.
  const parts = new Map(o.cache.index.parts().map((p) => [p.path, p]))
  const planned = await mapLimit(candidates, HASH_CONCURRENCY, async (c): Promise<PlannedFile | string> => {
    try {
      return await planOne(o.rootReal, o.cache, parts, c.rel, c.path, c.offered, o.tidy, await folderOf(dirname(c.path)))
    } finally {
      o.onChecked(++checked, candidates.length)
    }
  })
  const files: PlannedFile[] = []
  planned.forEach((p, i) => {
    if (typeof p === 'string') failed.push({ path: candidates[i].rel, reason: p })
    else files.push(p)
  })
  if (o.tidy) await removeStrayParts(o.rootReal, o.dir, o.cache, files)
  const extra: Plan['extra'] = []
  if (o.withExtra) {
    const dirReal = await realTarget(o.rootReal, o.dir)
    if (dirReal !== null && await stat(dirReal).then((s) => s.isDirectory(), () => false)) {
      const offered = new Set(Object.keys(o.manifest))
      for (const f of await walkFolder(o.rootReal, dirReal, folderRelOf(o.folder), IgnoreRules.load(o.rootReal))) {
        if (!offered.has(f.rel)) extra.push({ rel: f.rel, real: join(dirReal, ...f.rel.split('/')) })
      }
    }
  }
  return { files, extra, failed }
}

/** A folder files land in: its real path, whether it exists, and the names in it (null when unknown). */
interface Folder { readonly real: string, readonly exists: boolean, readonly names: ReadonlySet<string> | null }

/** The names in a folder, read once per folder: a part file is looked for only where its name is listed. */
function namesIn (dir: string): ReadonlySet<string> | null {
  try {
    return new Set(readdirSync(dir))
  } catch {
    return null
  }
}

/** Synchronous, as in the walk (manifest.ts): a local lstat is far quicker than a trip through the thread pool. */
function lstatOrNull (path: string): Stats | null {
  try {
    // No exception for the usual "not there" (no part, a new file): thousands of them cost more than the lstats.
    return lstatSync(path, { throwIfNoEntry: false }) ?? null
  } catch {
    return null
  }
}

/** Where `path` lands: its folder's real path (resolved once per folder) joined with its name; a symlink is followed only inside the root. */
async function landing (rootReal: string, path: string, folder: Folder | null): Promise<{ target: string, local: Stats | null } | null> {
  if (folder === null) return null
  const target = join(folder.real, basename(path))
  // A folder that does not exist yet holds no file.
  if (!folder.exists) return { target, local: null }
  const l = lstatOrNull(target)
  // Not a symlink: that lstat is the local file's (one lstat per file, not two).
  if (l === null || !l.isSymbolicLink()) return { target, local: l }
  const real = await realTarget(rootReal, target)
  return real === null ? null : { target: real, local: lstatOrNull(real) }
}

async function planOne (rootReal: string, cache: HashCache, parts: ReadonlyMap<string, PartRecord>, rel: string, path: string, offered: Offered, tidy: boolean,
  folder: Folder | null): Promise<PlannedFile | string> {
  const landed = await landing(rootReal, path, folder)
  if (landed === null) return 'refused: the target lies outside the root (symlink)'
  const { target, local } = landed
  const part = partOf(target)
  let action: Action = 'new'
  if (local !== null) {
    if (!local.isFile()) return 'refused: something that is not a file is in the way'
    const mine = cache.known(target, local) ?? await cache.hash(target, local).catch(() => null)
    if (mine === null) action = 'conflict'
    else if (mine.hash === offered.hash) action = 'up to date'
    else action = cache.fetched(target) === mine.hash ? 'changed' : 'conflict'
  }
  let offset = 0
  const partKey = cache.key(part)
  const kept = partKey === null ? undefined : parts.get(partKey)
  const partStat = folder?.exists === true && folder.names?.has(basename(part)) !== false ? lstatOrNull(part) : null
  const partSize = partStat?.isFile() === true ? partStat.size : -1
  if (action !== 'up to date' && kept?.hash === offered.hash && partSize > 0 && (offered.size === undefined || partSize <= offered.size)) {
    offset = partSize
  } else if (tidy && (kept !== undefined || partSize >= 0)) {
    // A part of another version of the file, or of one already here: useless now.
    if (partSize >= 0) await unlink(part).catch(() => {})
    cache.forgetPart(part)
  }
  return { rel, target, offered, action, part, offset }
}

/** Parts recorded below `dir` for files the giver no longer offers (or that are refused now) can never serve: removed. */
async function removeStrayParts (rootReal: string, dir: string, cache: HashCache, files: readonly PlannedFile[]): Promise<void> {
  const dirReal = await realTarget(rootReal, dir)
  if (dirReal === null) return
  const under = cache.key(dirReal)
  if (under === null) return
  const planned = new Set(files.map((f) => cache.key(f.part)))
  for (const p of cache.index.parts()) {
    if (planned.has(p.path) || !(under === '' || p.path.startsWith(`${under}/`))) continue
    await unlink(join(rootReal, ...p.path.split('/'))).catch(() => {})
    cache.index.forgetPart(p.path)
  }
}
