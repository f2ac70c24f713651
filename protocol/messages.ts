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
// Stryker disable next-line StringLiteral: equivalent: Buffer.byteLength's default encoding is UTF-8
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

const ARRAY_REQUESTS: ReadonlySet<string> = new Set(['at', 'message', 'get'])

/**
 * §4: the request a frame is meant as, well formed or not (a name
 * `parseRequest` knows: it would answer `bad_request` or `bad_path`, never
 * `unknown_request`); null for a frame that is no request at all.
 */
export function requestKind (v: unknown): RequestType | null {
  if (typeof v === 'string') return Object.hasOwn(SIMPLE_REQUESTS, v) ? SIMPLE_REQUESTS[v].type : null
  if (Array.isArray(v) && typeof v[0] === 'string' && ARRAY_REQUESTS.has(v[0])) return v[0] as RequestType
  return null
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

/** `["give", folder]`, the server's request to a giver. */
export function validateGive (v: unknown): Validated<string> {
  if (!Array.isArray(v) || v.length !== 2 || v[0] !== 'give') return refuse('bad_request', `expected ["give", folder], got ${describe(v)}`)
  const folder = checkProjectPath(v[1])
  if (!folder.ok) return refuse('bad_path', `give: ${folder.reason}`)
  return accept(folder.value)
}

/**
 * §5 revision 2: a manifest entry as an object. `hash` is required; `size`,
 * `mtime` and `mode` are optional; other keys are relayed as they are.
 */
export interface ManifestEntryObject {
  readonly hash: string
  /** Bytes, a non-negative integer. */
  readonly size?: number
  /** Seconds since the Unix epoch. */
  readonly mtime?: number
  /** POSIX permission bits, a non-negative integer (takers apply `mode & 0o7777`). */
  readonly mode?: number
  readonly [key: string]: JsonValue | undefined
}

/** A manifest entry: a hash string (revision 1) or an object (revision 2). */
export type ManifestEntry = string | ManifestEntryObject

/** `{relative file path: entry}` as the giver sent it. */
export type Manifest = Readonly<Record<string, ManifestEntry>>

/** An entry's known fields, whichever form it came in. */
export interface EntryFields {
  readonly hash: string
  readonly size?: number
  readonly mtime?: number
  readonly mode?: number
}

/** The known fields of a (validated) manifest entry: a string is `{ hash }`. */
export function entryFields (entry: ManifestEntry): EntryFields {
  if (typeof entry === 'string') return { hash: entry }
  const out: { hash: string, size?: number, mtime?: number, mode?: number } = { hash: entry.hash }
  if (entry.size !== undefined) out.size = entry.size
  if (entry.mtime !== undefined) out.mtime = entry.mtime
  if (entry.mode !== undefined) out.mode = entry.mode
  return out
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

/** One manifest entry, for the file `path` (named in the refusal). */
export function validateManifestEntry (v: unknown, path: string): Validated<ManifestEntry> {
  const name = JSON.stringify(path)
  if (typeof v === 'string') return accept(v)
  if (!isObject(v) || typeof v.hash !== 'string') {
    return refuse('protocol', `manifest: the entry of ${name} must be a hash string or an object with a string "hash", got ${describe(v)}`)
  }
  if (Object.hasOwn(v, 'size') && !isCount(v.size)) return refuse('protocol', `manifest: "size" of ${name} must be a non-negative integer, got ${describe(v.size)}`)
  if (Object.hasOwn(v, 'mtime') && (typeof v.mtime !== 'number' || !Number.isFinite(v.mtime))) {
    return refuse('protocol', `manifest: "mtime" of ${name} must be a number, got ${describe(v.mtime)}`)
  }
  if (Object.hasOwn(v, 'mode') && !isCount(v.mode)) return refuse('protocol', `manifest: "mode" of ${name} must be a non-negative integer, got ${describe(v.mode)}`)
  return accept(v as ManifestEntryObject)
}

export function validateManifest (v: unknown): Validated<Manifest> {
  if (!isObject(v)) return refuse('protocol', `manifest expects {relative file path: entry}, got ${describe(v)}`)
  for (const [path, entry] of Object.entries(v)) {
    const checked = checkRelativePath(path)
    if (!checked.ok) return refuse('protocol', `manifest: ${checked.reason}`)
    const e = validateManifestEntry(entry, path)
    if (!e.ok) return e
  }
  return accept(v as Manifest)
}

/** What a giver answers to `["give", folder]`. */
export type GiveAnswer =
  | { readonly type: 'manifest', readonly manifest: Manifest }
  /** The giver has no such folder (or cannot read it): the taker gets `no_such_folder`. */
  | { readonly type: 'missing', readonly folder: string, readonly reason: string }
  /**
   * A request the giver sent out of turn (§4 rev 2: frames are read in order,
   * so one sent during a held pass is read here when a `serve` came first).
   * No manifest and no `missing` is a request: it is refused, not a violation.
   */
  | { readonly type: 'request', readonly request: RequestType }

/**
 * The giver's answer to `["give", folder]`: a manifest, `["missing", folder,
 * reason]` for that same folder, or a request sent out of turn (well formed
 * or not); anything else is a protocol violation.
 */
export function validateGiveAnswer (v: unknown, folder: string): Validated<GiveAnswer> {
  if (Array.isArray(v) && v[0] === 'missing') {
    if (v.length !== 3 || typeof v[2] !== 'string') return refuse('protocol', `missing expects ["missing", folder, reason], got ${describe(v)}`)
    if (v[1] !== folder) return refuse('protocol', `missing names ${describe(v[1])} where ${JSON.stringify(folder)} was asked for`)
    return accept({ type: 'missing', folder, reason: v[2] })
  }
  const request = requestKind(v)
  if (request !== null) return accept({ type: 'request', request })
  const manifest = validateManifest(v)
  return manifest.ok ? accept({ type: 'manifest', manifest: manifest.value }) : manifest
}

/** One getlist entry: a manifest key, and the offset T asks it from (absent: the whole file). */
export interface Wanted {
  readonly path: string
  readonly offset?: number
}

/** A getlist entry on the wire: `path`, or `[path, offset]` to resume. */
export type WantedEntry = string | readonly [string, number]

/** The wire form of a getlist entry. */
export function wantedEntry (w: Wanted): WantedEntry {
  return w.offset === undefined ? w.path : [w.path, w.offset]
}

function parseWanted (v: unknown): Validated<Wanted> {
  if (typeof v === 'string') {
    const checked = checkRelativePath(v)
    return checked.ok ? accept({ path: checked.value }) : refuse('bad_request', `getlist: ${checked.reason}`)
  }
  if (Array.isArray(v) && v.length === 2) {
    const checked = checkRelativePath(v[0])
    if (!checked.ok) return refuse('bad_request', `getlist: ${checked.reason}`)
    if (!isCount(v[1])) return refuse('bad_request', `getlist: the offset of ${JSON.stringify(v[0])} must be a non-negative integer, got ${describe(v[1])}`)
    return accept({ path: checked.value, offset: v[1] })
  }
  return refuse('bad_request', `getlist: an entry must be a relative file path or [path, offset], got ${describe(v)}`)
}

/** The taker's getlist: manifest keys, each as a key or `[key, offset]`, each at most once. */
export function validateGetlist (v: unknown, manifest: Manifest): Validated<readonly Wanted[]> {
  if (!Array.isArray(v)) return refuse('bad_request', `getlist expects [relative file path or [path, offset], …], got ${describe(v)}`)
  const seen = new Set<string>()
  const out: Wanted[] = []
  for (const entry of v) {
    const w = parseWanted(entry)
    if (!w.ok) return w
    const path = w.value.path
    if (!Object.hasOwn(manifest, path)) return refuse('bad_request', `getlist: ${JSON.stringify(path)} is not in the manifest`)
    if (seen.has(path)) return refuse('bad_request', `getlist: ${JSON.stringify(path)} is listed twice`)
    seen.add(path)
    out.push(w.value)
  }
  return accept(out)
}

export type FileHeader =
  /** `offset` present: a resumed file, `size - offset` bytes follow; absent: the whole file, `size` bytes. */
  | { readonly type: 'file', readonly path: string, readonly size: number, readonly offset?: number }
  | { readonly type: 'missing', readonly path: string, readonly reason: string }

/** How many bytes of binary frames follow a file header. */
export function bytesFollowing (header: { readonly size: number, readonly offset?: number }): number {
  return header.size - (header.offset ?? 0)
}

/**
 * The giver's header for the next getlist entry, `expected` (a path: the
 * whole file was asked for). A wanted offset may be answered with the
 * 4-element header carrying that offset, or the 3-element one (the whole
 * file); a 4-element header answers only a wanted offset.
 */
export function validateFileHeader (v: unknown, expected: string | Wanted): Validated<FileHeader> {
  const want: Wanted = typeof expected === 'string' ? { path: expected } : expected
  const name = JSON.stringify(want.path)
  if (Array.isArray(v) && (v.length === 3 || v.length === 4) && v[0] === 'file') {
    if (v[1] !== want.path) return refuse('protocol', `file header for ${describe(v[1])} where ${name} was next in the getlist`)
    const size = v[2]
    if (!isCount(size)) return refuse('protocol', `file ${name}: size must be a non-negative integer, got ${describe(size)}`)
    if (v.length === 3) return accept({ type: 'file', path: want.path, size })
    const offset = v[3]
    if (!isCount(offset)) return refuse('protocol', `file ${name}: offset must be a non-negative integer, got ${describe(offset)}`)
    if (want.offset === undefined) return refuse('protocol', `file ${name}: a resumed header (offset ${offset}) where the taker asked for the whole file`)
    if (offset !== want.offset) return refuse('protocol', `file ${name}: offset ${offset} where the taker asked for ${want.offset}`)
    if (offset > size) return refuse('protocol', `file ${name}: offset ${offset} is past its size of ${size} bytes`)
    return accept({ type: 'file', path: want.path, size, offset })
  }
  if (Array.isArray(v) && v.length === 3 && v[0] === 'missing') {
    if (v[1] !== want.path) return refuse('protocol', `missing header for ${describe(v[1])} where ${name} was next in the getlist`)
    if (typeof v[2] !== 'string') return refuse('protocol', 'missing expects ["missing", path, reason]')
    return accept({ type: 'missing', path: want.path, reason: v[2] })
  }
  return refuse('protocol', `expected ["file", path, size], ["file", path, size, offset] or ["missing", path, reason] for ${name}, got ${describe(v)}`)
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
export type MissingFolderMessage = readonly ['missing', folder: string, reason: string]

/** The bare-string prompts and signals the server sends. */
export type ServerSignal =
  | 'username?' | 'project?' | 'secret?' | 'wrong_project' | 'wrong_secret'
  | 'story' | 'assets' | 'analytics' | 'users' | 'yours'
