import type { JsonValue } from '../../protocol/frame.ts'
import { T0, type WireClient } from './wire-client.ts'

export interface SyncAnswers {
  story?: [Record<string, JsonValue>, string]
  assets?: Record<string, [string, string]>
  analytics?: [JsonValue, string]
}

/**
 * Passes the turn and returns every JSON frame received up to and including
 * the closing `"yours"`, answering server-started sync exchanges on the way
 * (with `answers`, or empty values) and acking their replies.
 */
export async function pass (client: WireClient, answers: SyncAnswers = {}, timeoutMs = 20_000): Promise<JsonValue[]> {
  client.send('yours')
  return await untilYours(client, answers, timeoutMs)
}

export async function untilYours (client: WireClient, answers: SyncAnswers = {}, timeoutMs = 20_000): Promise<JsonValue[]> {
  const got: JsonValue[] = []
  while (true) {
    const v = await client.recv(timeoutMs)
    got.push(v)
    if (v === 'yours') return got
    if (v === 'story' || v === 'assets' || v === 'analytics') {
      client.send(v === 'story' ? (answers.story ?? [{}, T0]) : v === 'assets' ? (answers.assets ?? {}) : (answers.analytics ?? [{}, T0]))
      got.push(await client.recv(timeoutMs))
      client.send('ack')
    }
  }
}

/** Sends one request and returns what came back up to and including `"yours"`. */
export async function request (client: WireClient, value: unknown, answers: SyncAnswers = {}): Promise<JsonValue[]> {
  client.send(value)
  return await untilYours(client, answers)
}
