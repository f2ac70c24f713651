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

/**
 * Keeps the newest `limit` chat messages. §4 says the history starts with the
 * server's "Server Started" line: that line stays first and is not counted.
 */
export function capChat (chat: readonly ChatLine[], limit: number): readonly ChatLine[] {
  const [first] = chat
  const pinned = first !== undefined && first[0] === SERVER_CHAT_NAME && first[1] === INITIAL_CHAT[0][1] ? 1 : 0
  if (chat.length - pinned <= limit) return chat
  return [...chat.slice(0, pinned), ...chat.slice(chat.length - limit)]
}

/** Appends a line, dropping the oldest messages past `limit` (see capChat). */
export function appendChat (chat: readonly ChatLine[], line: ChatLine, limit: number): readonly ChatLine[] {
  return capChat([...chat, line], limit)
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
