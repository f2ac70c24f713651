import type { JsonValue } from '../protocol/frame.ts'
import {
  isNewer, NOBODY, SERVER_CHAT_NAME, ZERO_TIMESTAMP,
  type AnalyticsSubmission, type AssetEntry, type AssetIndex, type ChatLine, type JsonObject,
  type StorySubmission, type Timestamp, type UserId
} from '../protocol/messages.ts'

/** The merge rules of §3, as pure functions over the coordinator's values. */

export interface StoryState { readonly owner: UserId, readonly value: JsonObject, readonly timestamp: Timestamp }
export interface AnalyticsState { readonly value: JsonValue, readonly timestamp: Timestamp }

export const INITIAL_STORY: StoryState = { owner: NOBODY, value: {}, timestamp: ZERO_TIMESTAMP }
export const INITIAL_ANALYTICS: AnalyticsState = { value: {}, timestamp: ZERO_TIMESTAMP }
export const INITIAL_CHAT: readonly ChatLine[] = [[SERVER_CHAT_NAME, 'Server Started']]

/** Strictly newer wins; the winner's connection becomes the owner. */
export function mergeStory (current: StoryState, submitted: StorySubmission, submitter: UserId): StoryState {
  return isNewer(submitted.timestamp, current.timestamp)
    ? { owner: submitter, value: submitted.story, timestamp: submitted.timestamp }
    : current
}

export function mergeAnalytics (current: AnalyticsState, submitted: AnalyticsSubmission): AnalyticsState {
  return isNewer(submitted.timestamp, current.timestamp)
    ? { value: submitted.analytics, timestamp: submitted.timestamp }
    : current
}

/**
 * Per entry: taken when the server has none or the submitted one is strictly
 * newer, and then stamped with the submitter's own id.
 */
export function mergeAssets (current: AssetIndex, submitted: AssetIndex, submitter: UserId): { merged: AssetIndex, changed: boolean } {
  const taken: Array<[string, AssetEntry]> = []
  for (const [path, [, timestamp]] of Object.entries(submitted)) {
    const mine = Object.hasOwn(current, path) ? current[path] : undefined
    if (mine === undefined || isNewer(timestamp, mine[1])) taken.push([path, [submitter, timestamp]])
  }
  // fromEntries, not indexing: a path named "__proto__" must stay an entry.
  return taken.length === 0
    ? { merged: current, changed: false }
    : { merged: Object.fromEntries([...Object.entries(current), ...taken]), changed: true }
}

/** §6: a leaver's entries go with it. */
export function dropAssetsOf (assets: AssetIndex, user: UserId): { assets: AssetIndex, changed: boolean } {
  const kept = Object.entries(assets).filter(([, [owner]]) => owner !== user)
  return kept.length === Object.keys(assets).length
    ? { assets, changed: false }
    : { assets: Object.fromEntries(kept), changed: true }
}

/** §4: the chat history's default cap in bytes, as the JSON of `[[username, text], …]`. */
export const DEFAULT_CHAT_BYTES = 1024 * 1024

const lineBytes = new WeakMap<ChatLine, number>()
/** Bytes of one line in the history's JSON (cached: a line is immutable). */
function bytesOfLine (line: ChatLine): number {
  let n = lineBytes.get(line)
  if (n === undefined) {
    n = Buffer.byteLength(JSON.stringify(line), 'utf8')
    lineBytes.set(line, n)
  }
  return n
}

const historyBytes = new WeakMap<readonly ChatLine[], number>()
/** Bytes of the whole history's JSON: `[` lines joined by `,` `]` (cached per history). */
export function bytesOfChat (chat: readonly ChatLine[]): number {
  let n = historyBytes.get(chat)
  if (n === undefined) {
    n = 2 + Math.max(0, chat.length - 1)
    for (const line of chat) n += bytesOfLine(line)
    historyBytes.set(chat, n)
  }
  return n
}

const isServerFirstLine = (line: ChatLine | undefined): boolean =>
  line !== undefined && line[0] === SERVER_CHAT_NAME && line[1] === INITIAL_CHAT[0][1]

/**
 * Keeps the newest chat messages within `limit` lines and `maxBytes` bytes
 * of JSON. §4 says the history starts with the server's "Server Started"
 * line: that line stays first and is not counted among the `limit` lines.
 */
export function capChat (chat: readonly ChatLine[], limit: number, maxBytes = Number.POSITIVE_INFINITY): readonly ChatLine[] {
  const pinned = isServerFirstLine(chat[0]) ? 1 : 0
  let drop = Math.max(0, chat.length - pinned - limit)
  let bytes = bytesOfChat(chat)
  // Each dropped line takes its comma with it.
  for (let i = pinned; i < pinned + drop; i++) bytes -= bytesOfLine(chat[i]) + 1
  while (bytes > maxBytes && pinned + drop < chat.length) bytes -= bytesOfLine(chat[pinned + drop++]) + 1
  if (drop === 0) return chat
  const kept = [...chat.slice(0, pinned), ...chat.slice(pinned + drop)]
  historyBytes.set(kept, kept.length === 0 ? 2 : bytes)
  return kept
}

/** Appends a line, dropping the oldest messages past `limit` lines or `maxBytes` (see capChat). */
export function appendChat (chat: readonly ChatLine[], line: ChatLine, limit: number, maxBytes = Number.POSITIVE_INFINITY): readonly ChatLine[] {
  const longer = [...chat, line]
  historyBytes.set(longer, bytesOfChat(chat) + bytesOfLine(line) + (chat.length > 0 ? 1 : 0))
  return capChat(longer, limit, maxBytes)
}

/**
 * §5 would_deadlock: would `taker` waiting on `giver` close a cycle of waits?
 * `waitsOn` maps each waiting taker to the giver it waits on.
 */
export function wouldDeadlock (waitsOn: ReadonlyMap<UserId, UserId>, taker: UserId, giver: UserId): boolean {
  const seen = new Set<UserId>()
  for (let at: UserId | undefined = giver; at !== undefined; at = waitsOn.get(at)) {
    if (at === taker) return true
    if (seen.has(at)) return false
    seen.add(at)
  }
  return false
}
