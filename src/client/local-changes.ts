import { constants } from 'node:fs'
import { copyFile, link, lstat, mkdir, rename, unlink } from 'node:fs/promises'
import { basename, dirname, extname, join } from 'node:path'
import { CLIENT_DIR } from './file-index.ts'

export const TRASH_DIR = 'trash'

const pad = (n: number): string => String(n).padStart(2, '0')

/** `YYYYMMDD-HHMMSS` in local time. */
export function stamp (d: Date): string {
  return `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`
}

/** A user name or id made safe for a file name (no `:` or `/`, which some systems refuse). */
export const safeName = (s: string): string => s.replace(/[^\p{L}\p{N}._-]+/gu, '_').slice(0, 64) || 'giver'

/** `<name>.conflict-<giver>-<YYYYMMDD-HHMMSS><ext>` beside `target`. */
export function conflictName (target: string, giver: string, when: Date, n = 1): string {
  const ext = extname(target)
  const name = basename(target, ext)
  return join(dirname(target), `${name}.conflict-${safeName(giver)}-${stamp(when)}${n > 1 ? `-${n}` : ''}${ext}`)
}

/**
 * Keeps the local `target` under its conflict name, before the new file
 * replaces it: a hard link (the content never has a moment without a name),
 * or a copy where links are not possible. Never replaces another file: a
 * taken name moves on to the next number. Returns the copy's path.
 */
export async function keepAsConflict (target: string, giver: string, when: Date): Promise<string> {
  return await keepUnder(target, (n) => conflictName(target, giver, when, n), true)
}

/** The trash folder of one `get --delete`: `<root>/.vcmu/trash/<YYYYMMDD-HHMMSS>`. */
export const trashOf = (rootReal: string, when: Date): string => join(rootReal, CLIENT_DIR, TRASH_DIR, stamp(when))

/** Moves `real` into `trash/<fromRoot>`; never unlinks content and never replaces a name in the trash. */
export async function moveToTrash (real: string, trash: string, fromRoot: string): Promise<string> {
  const dest = join(trash, ...fromRoot.split('/'))
  await mkdir(dirname(dest), { recursive: true })
  return await keepUnder(real, (n) => n === 1 ? dest : `${dest}.${n}`, false)
}

async function keepUnder (from: string, nameOf: (n: number) => string, keepOriginal: boolean): Promise<string> {
  for (let n = 1; n <= 100; n++) {
    const to = nameOf(n)
    try {
      await link(from, to)
      if (!keepOriginal) await unlink(from)
      return to
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EEXIST') continue
      // No hard links here (another file system, FAT, some shares): copy or move, still never onto a taken name.
      if (keepOriginal) await copyFile(from, to, constants.COPYFILE_EXCL)
      else if (await lstat(to).then(() => true, () => false)) continue
      else await rename(from, to)
      return to
    }
  }
  throw new Error(`no free name for ${from}`)
}
