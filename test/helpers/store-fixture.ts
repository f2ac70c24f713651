import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DurableState } from '../../actors/coordinator.ts'
import { INITIAL_ANALYTICS, INITIAL_CHAT } from '../../actors/shared-state.ts'
import type { ServerLog } from '../../src/log.ts'
import { createStore, type FileStoreTuning, type Store } from '../../src/store.ts'

/** Temp dirs for one test file: `tempDir()` makes one, `removeTempDirs()` (afterAll) removes them all. */
export function tempDirs (prefix: string): { tempDir: () => string, removeTempDirs: () => void } {
  const made: string[] = []
  return {
    tempDir: () => {
      const dir = mkdtempSync(join(tmpdir(), prefix))
      made.push(dir)
      return dir
    },
    removeTempDirs: () => { for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true }) }
  }
}

export interface Logged { level: 'human' | 'debug' | 'warn' | 'error', line: string }

/** A ServerLog that keeps its lines, for tests to read. */
export function memoryLog (): ServerLog & { lines: Logged[], at: (level: Logged['level']) => string[] } {
  const lines: Logged[] = []
  const add = (level: Logged['level']) => (message: unknown): void => { lines.push({ level, line: String(message) }) }
  return {
    lines,
    at: (level) => lines.filter((l) => l.level === level).map((l) => l.line),
    human: add('human'),
    debug: add('debug'),
    warn: add('warn'),
    error: add('error'),
    onHumanLine: () => () => {}
  }
}

/** Polls `check` (every 5 ms) until it holds; throws naming `what` after `timeoutMs`. Waits for an event, asserts no duration. */
export async function until (check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** A durable state whose story value is `{ n }`. */
export const numberedState = (n: number, chat: DurableState['chat'] = INITIAL_CHAT): DurableState => ({
  story: { owner: '127.0.0.1:1', value: { n }, timestamp: `2024/01/01-00:00:${String(n % 60).padStart(2, '0')}` },
  analytics: INITIAL_ANALYTICS,
  chat
})

/** A file store over `dir` with a memory log. */
export function fileStoreIn (dir: string, tuning: Partial<FileStoreTuning> = {}, chatLimit?: number): { store: Store, log: ReturnType<typeof memoryLog> } {
  const log = memoryLog()
  return { store: createStore({ projectName: 'Test Film', persist: { dataDir: dir }, chatLimit, tuning }, log), log }
}

/** The change numbers `store` reports committed, in order. */
export function committedIn (store: Store): number[] {
  const seen: number[] = []
  store.onCommitted((v) => seen.push(v))
  return seen
}
