import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import ignore, { type Ignore } from 'ignore'
import { CLIENT_DIR } from './file-index.ts'

/** The ignore file at a root, in gitignore syntax. */
export const IGNORE_FILE = '.multiuserignore'
/** Temp files of downloads in progress (and interrupted ones, kept to resume) end with this. */
export const PART_SUFFIX = '.vcmu-part'

/** Blender's numbered backups (`*.blend1` … `*.blend32`), the client's own folder (index, trash) and parts. */
export const DEFAULT_IGNORES: readonly string[] = [
  ...Array.from({ length: 32 }, (_, i) => `*.blend${i + 1}`),
  `/${CLIENT_DIR}/`,
  `*${PART_SUFFIX}`
]

/**
 * What a root does not share: the defaults plus the root's `.multiuserignore`
 * (gitignore syntax, through the `ignore` package). Paths are relative to the
 * root, with `/`; a folder is asked about with a trailing `/`.
 */
export class IgnoreRules {
  /** Null when the root has no rules of its own: the defaults are then checked by `isDefaultIgnored`, quicker. */
  private readonly rules: Ignore | null

  constructor (extra: string) {
    const own = extra.split(/\r?\n/).some((l) => l.trim() !== '' && !l.trimStart().startsWith('#'))
    this.rules = own ? ignore().add([...DEFAULT_IGNORES]).add(extra) : null
  }

  /** The rules of `rootReal` (the defaults alone when it has no ignore file). */
  static load (rootReal: string): IgnoreRules {
    let text = ''
    try {
      text = readFileSync(join(rootReal, IGNORE_FILE), 'utf8')
    } catch {
      // No ignore file: the defaults.
    }
    return new IgnoreRules(text)
  }

  /** True when `rel` (relative to the root; a folder ends with `/`) is not shared. */
  ignores (rel: string): boolean {
    if (rel === '' || rel === '/') return false
    return this.rules === null ? isDefaultIgnored(rel) : this.rules.ignores(rel)
  }
}

const BLEND_BACKUP = /\.blend([1-9]|[12][0-9]|3[0-2])$/

/** DEFAULT_IGNORES without the `ignore` package (a test checks both agree). */
export function isDefaultIgnored (rel: string): boolean {
  if (rel.startsWith(`${CLIENT_DIR}/`)) return true
  const path = rel.endsWith('/') ? rel.slice(0, -1) : rel
  // As gitignore: what lies below an ignored folder is ignored too.
  return path.split('/').some((name) => name.endsWith(PART_SUFFIX) || BLEND_BACKUP.test(name))
}
