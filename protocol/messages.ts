import type { JsonValue } from './frame.ts'
import { accept, refuse, isErrorCode, type ErrorCode, type Validated } from './errors.ts'
import { checkProjectPath, checkRelativePath } from './paths.ts'

/** §2 timestamp: `"YYYY/MM/DD-HH:MM:SS"`, compared as a plain string. */
export type Timestamp = string
export type UserId = string
export type JsonObject = { [key: string]: JsonValue }

export const TIMESTAMP_PATTERN = /^\d{4}\/\d{2}\/\d{2}-\d{2}:\d{2}:\d{2}$/
export const ZERO_TIMESTAMP: Timestamp = '0000/00/00-00:00:00'
export const NOBODY: UserId = '0.0.0.0:0000'
export const MAX_USERNAME_BYTES = 256
export const MAX_MESSAGE_BYTES = 64 * 1024
export const SERVER_CHAT_NAME = 'Multiuser Server'

/** Strictly newer, as §2 says: plain string comparison. */
export const isNewer = (candidate: Timestamp, current: Timestamp): boolean => candidate > current

export const isTimestamp = (v: unknown): v is Timestamp => typeof v === 'string' && TIMESTAMP_PATTERN.test(v)

const describe = (v: unknown): string => {
  if (v === null) return 'null'
  if (Array.isArray(v)) return `an array of ${v.length}`
  if (typeof v === 'string') return v.length > 40 ? 'a long string' : `"${v}"`
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v)
const byteLength = (s: string): number => Buffer.byteLength(s, 'utf8')

// ---------------------------------------------------------------- §3 handshake

/** §2: the control characters a username may not hold (C0, DEL, C1). */
// eslint-disable-next-line no-control-regex
export const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/

export function validateUsername (v: unknown): Validated<string> {
  if (typeof v !== 'string') return refuse('bad_handshake', `username must be a string, got ${describe(v)}`)
  const n = byteLength(v)
  if (n < 1 || n > MAX_USERNAME_BYTES) return refuse('bad_handshake', `username must be 1..${MAX_USERNAME_BYTES} bytes, got ${n}`)
  const control = CONTROL_CHARACTER.exec(v)
  if (control !== null) {
    const code = control[0].charCodeAt(0).toString(16).padStart(4, '0')
    return refuse('bad_handshake', `username must not contain a control character (U+${code} at ${control.index})`)
  }
  return accept(v)
}

/** The answer to `"project?"` or `"secret?"`: any string (its value is checked by the caller). */
export function validateHandshakeString (v: unknown, what: 'project' | 'secret'): Validated<string> {
  if (typeof v !== 'string') return refuse('bad_handshake', `${what} must be a string, got ${describe(v)}`)
  return accept(v)
}

// ---------------------------------------------------------------- §3 syncs

export type Camera = readonly [number, number]

export interface StorySubmission {
  readonly story: JsonObject
  readonly timestamp: Timestamp
  /** Present when the story carried `"camera": [x, y]`. */
  readonly camera?: Camera
}

export function validateStorySubmission (v: unknown): Validated<StorySubmission> {
  if (!Array.isArray(v) || v.length !== 2 || !isObject(v[0]) || !isTimestamp(v[1])) {
    return refuse('bad_request', `story expects [story object, timestamp], got ${describe(v)}`)
  }
  const story = v[0]
  const cam = story.camera
  const camera = Array.isArray(cam) && cam.length === 2 && typeof cam[0] === 'number' && typeof cam[1] === 'number'
    ? [cam[0], cam[1]] as const
    : undefined
  return accept(camera === undefined ? { story, timestamp: v[1] } : { story, timestamp: v[1], camera })
}

export interface AnalyticsSubmission {
  readonly analytics: JsonValue
  readonly timestamp: Timestamp
}

export function validateAnalyticsSubmission (v: unknown): Validated<AnalyticsSubmission> {
  if (!Array.isArray(v) || v.length !== 2 || !isTimestamp(v[1])) {
    return refuse('bad_request', `analytics expects [analytics, timestamp], got ${describe(v)}`)
  }
  return accept({ analytics: v[0] as JsonValue, timestamp: v[1] })
}

/** One asset index entry: who has the newest version, and its timestamp. */
export type AssetEntry = readonly [UserId, Timestamp]
export type AssetIndex = Readonly<Record<string, AssetEntry>>

export function validateAssetsSubmission (v: unknown): Validated<AssetIndex> {
  if (!isObject(v)) return refuse('bad_request', `assets expects {project path: [user id, timestamp]}, got ${describe(v)}`)
  const out: Array<[string, AssetEntry]> = []
  for (const [path, entry] of Object.entries(v)) {
    const checked = checkProjectPath(path)
    if (!checked.ok) return refuse('bad_request', `assets: ${checked.reason}: ${JSON.stringify(path)}`)
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || !isTimestamp(entry[1])) {
      return refuse('bad_request', `assets: entry ${JSON.stringify(path)} expects [user id, timestamp], got ${describe(entry)}`)
    }
    out.push([path, [entry[0], entry[1]]])
  }
  // fromEntries defines own properties, so an asset named "__proto__" is kept, not turned into a prototype.
  return accept(Object.fromEntries(out))
}

// ---------------------------------------------------------------- §4 requests

export type Request =
  | { readonly type: 'pass' }
  | { readonly type: 'story' }
  | { readonly type: 'analytics' }
  | { readonly type: 'assets' }
  | { readonly type: 'users' }
  | { readonly type: 'at', readonly path: string, readonly timestamp: Timestamp }
  | { readonly type: 'message', readonly text: string }
  | { readonly type: 'get', readonly giver: UserId, readonly folder: string }

export type RequestType = Request['type']

const SIMPLE_REQUESTS: Readonly<Record<string, Request>> = {
  yours: { type: 'pass' },
  story: { type: 'story' },
  analytics: { type: 'analytics' },
  assets: { type: 'assets' },
  users: { type: 'users' }
}

/** §4: a request sent by the client holding the turn. */
export function parseRequest (v: unknown): Validated<Request> {
  if (typeof v === 'string') {
    const simple = Object.hasOwn(SIMPLE_REQUESTS, v) ? SIMPLE_REQUESTS[v] : undefined
    return simple !== undefined ? accept(simple) : refuse('unknown_request', `unknown request ${describe(v)}`)
  }
  if (!Array.isArray(v) || v.length === 0 || typeof v[0] !== 'string') {
    return refuse('unknown_request', `unknown request ${describe(v)}`)
  }
  switch (v[0]) {
    case 'at': {
      if (v.length !== 3 || typeof v[1] !== 'string' || !isTimestamp(v[2])) {
        return refuse('bad_request', 'at expects [string, timestamp]')
      }
      const path = checkProjectPath(v[1])
      if (!path.ok) return refuse('bad_path', `at: ${path.reason}`)
      return accept({ type: 'at', path: path.value, timestamp: v[2] })
    }
    case 'message': {
      if (v.length !== 2 || typeof v[1] !== 'string') return refuse('bad_request', 'message expects [string]')
      if (byteLength(v[1]) > MAX_MESSAGE_BYTES) return refuse('bad_request', `message is over ${MAX_MESSAGE_BYTES} bytes`)
      return accept({ type: 'message', text: v[1] })
    }
    case 'get': {
      if (v.length !== 3 || typeof v[1] !== 'string' || typeof v[2] !== 'string') {
        return refuse('bad_request', 'get expects [user id, project path]')
      }
      const folder = checkProjectPath(v[2])
      if (!folder.ok) return refuse('bad_path', `get: ${folder.reason}`)
      return accept({ type: 'get', giver: v[1], folder: folder.value })
    }
    default:
      return refuse('unknown_request', `unknown request ${JSON.stringify(v[0])}`)
  }
}

// ---------------------------------------------------------------- §5 relay

/** `{relative file path: hash}` as the giver sent it. */
export type Manifest = Readonly<Record<string, string>>

export function validateManifest (v: unknown): Validated<Manifest> {
  if (!isObject(v)) return refuse('protocol', `manifest expects {relative file path: hash}, got ${describe(v)}`)
  for (const [path, hash] of Object.entries(v)) {
    const checked = checkRelativePath(path)
    if (!checked.ok) return refuse('protocol', `manifest: ${checked.reason}`)
    if (typeof hash !== 'string') return refuse('protocol', `manifest: hash of ${JSON.stringify(path)} must be a string`)
  }
  return accept(v as Manifest)
}

/** The taker's getlist: manifest keys only, no duplicates. */
export function validateGetlist (v: unknown, manifest: Manifest): Validated<readonly string[]> {
  if (!Array.isArray(v)) return refuse('bad_request', `getlist expects [relative file path, …], got ${describe(v)}`)
  const seen = new Set<string>()
  for (const path of v) {
    const checked = checkRelativePath(path)
    if (!checked.ok) return refuse('bad_request', `getlist: ${checked.reason}`)
    if (!Object.hasOwn(manifest, checked.value)) return refuse('bad_request', `getlist: ${JSON.stringify(path)} is not in the manifest`)
    if (seen.has(checked.value)) return refuse('bad_request', `getlist: ${JSON.stringify(path)} is listed twice`)
    seen.add(checked.value)
  }
  return accept(v as string[])
}

export type FileHeader =
  | { readonly type: 'file', readonly path: string, readonly size: number }
  | { readonly type: 'missing', readonly path: string, readonly reason: string }

/** The giver's header for the next getlist entry, `expected`. */
export function validateFileHeader (v: unknown, expected: string): Validated<FileHeader> {
  if (Array.isArray(v) && v.length === 3 && v[0] === 'file') {
    if (v[1] !== expected) return refuse('protocol', `file header for ${describe(v[1])} where ${JSON.stringify(expected)} was next in the getlist`)
    if (typeof v[2] !== 'number' || !Number.isSafeInteger(v[2]) || v[2] < 0) {
      return refuse('protocol', `file ${JSON.stringify(expected)}: size must be a non-negative integer, got ${describe(v[2])}`)
    }
    return accept({ type: 'file', path: expected, size: v[2] })
  }
  if (Array.isArray(v) && v.length === 3 && v[0] === 'missing') {
    if (v[1] !== expected) return refuse('protocol', `missing header for ${describe(v[1])} where ${JSON.stringify(expected)} was next in the getlist`)
    if (typeof v[2] !== 'string') return refuse('protocol', 'missing expects ["missing", path, reason]')
    return accept({ type: 'missing', path: expected, reason: v[2] })
  }
  return refuse('protocol', `expected ["file", path, size] or ["missing", path, reason] for ${JSON.stringify(expected)}, got ${describe(v)}`)
}

export type FileAck =
  | { readonly type: 'ok', readonly path: string }
  | { readonly type: 'failed', readonly path: string, readonly reason: string }

/** The taker's answer for a file, `expected` being the one it was sent. */
export function validateFileAck (v: unknown, expected: string): Validated<FileAck> {
  if (Array.isArray(v) && v.length === 2 && v[0] === 'ok' && v[1] === expected) return accept({ type: 'ok', path: expected })
  if (Array.isArray(v) && v.length === 3 && v[0] === 'failed' && v[1] === expected && typeof v[2] === 'string') {
    return accept({ type: 'failed', path: expected, reason: v[2] })
  }
  return refuse('bad_request', `expected ["ok", ${JSON.stringify(expected)}] or ["failed", ${JSON.stringify(expected)}, reason], got ${describe(v)}`)
}

/** For clients: recognise `["error", code, detail]`. */
export function parseErrorMessage (v: unknown): Validated<{ code: ErrorCode, detail: string }> {
  if (Array.isArray(v) && v.length === 3 && v[0] === 'error' && isErrorCode(v[1]) && typeof v[2] === 'string') {
    return accept({ code: v[1], detail: v[2] })
  }
  return refuse('bad_request', `not an error message: ${describe(v)}`)
}

// ---------------------------------------------------------------- server → client shapes

export interface UserInfo {
  readonly username: string
  readonly camera: Camera
  readonly at: readonly [string, Timestamp] | null
}
export type UsersReply = Readonly<Record<UserId, UserInfo>>
export type ChatLine = readonly [username: string, text: string]
export type AtNotification = readonly [from: UserId, 'at', path: string, timestamp: Timestamp]
export type MessagesNotification = readonly ['messages', readonly ChatLine[]]
export type StoryReply = readonly [owner: UserId, story: JsonObject]
export type GiveMessage = readonly ['give', folder: string]

/** The bare-string prompts and signals the server sends. */
export type ServerSignal =
  | 'username?' | 'project?' | 'secret?' | 'wrong_project' | 'wrong_secret'
  | 'story' | 'assets' | 'analytics' | 'users' | 'yours'
