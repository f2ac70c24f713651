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
  private readonly rules: Ignore

  constructor (extra: string) {
    this.rules = ignore().add([...DEFAULT_IGNORES]).add(extra)
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
    return rel !== '' && rel !== '/' && this.rules.ignores(rel)
  }
}
