/** Result of a check: the accepted value, or a precise reason. */
export type Checked<T> = { ok: true, value: T } | { ok: false, reason: string }

/** A segment like `C:` anywhere: a Windows client joining segments would jump to that drive. */
const DRIVE_LETTER = /(^|\/)[A-Za-z]:/

function commonRefusal (path: unknown, what: string): string | null {
  if (typeof path !== 'string') return `${what} must be a string`
  if (path.length === 0) return `${what} is empty`
  if (path.includes('\0')) return `${what} contains a NUL byte`
  if (path.includes('\\')) return `${what} contains a backslash`
  if (DRIVE_LETTER.test(path)) return `${what} has a drive letter`
  if (path.split('/').includes('..')) return `${what} has a '..' segment`
  return null
}

/** §2 project path: relative to the project root; a leading `/` means the root. */
export function checkProjectPath (path: unknown): Checked<string> {
  const refusal = commonRefusal(path, 'project path')
  if (refusal !== null) return { ok: false, reason: refusal }
  return { ok: true, value: path as string }
}

/** §2 relative file path inside a served folder: like a project path, no leading `/`. */
export function checkRelativePath (path: unknown): Checked<string> {
  const refusal = commonRefusal(path, 'relative file path')
  if (refusal !== null) return { ok: false, reason: refusal }
  const p = path as string
  if (p.startsWith('/')) return { ok: false, reason: `relative file path ${JSON.stringify(p)} is absolute` }
  // Empty and '.' segments would give one file two manifest keys ("a", "./a", "b//a").
  const segments = p.split('/')
  if (segments.includes('')) return { ok: false, reason: `relative file path ${JSON.stringify(p)} has an empty segment` }
  if (segments.includes('.')) return { ok: false, reason: `relative file path ${JSON.stringify(p)} has a '.' segment` }
  return { ok: true, value: p }
}
