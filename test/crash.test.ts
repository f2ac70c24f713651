/**
 * §8 under `kill -9`: a real server process, a client that records every
 * acknowledged story update and chat line of a burst, SIGKILL at a random
 * moment, a restart on the same data dir: every acknowledged update (or a
 * newer one) is there. Ten kills; each restart is the next round's server.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { JsonValue } from '../protocol/frame.ts'
import { PROJECT, startServerProcess } from './helpers/server-process.ts'
import { join as joinServer, type WireClient } from './helpers/wire-client.ts'

const ROUNDS = 10
const temps: string[] = []
afterAll(() => { for (const dir of temps) rmSync(dir, { recursive: true, force: true }) })

/** Strictly increasing timestamps: update n of round r. */
const timestamp = (round: number, n: number): string =>
  `2024/01/${String(round + 1).padStart(2, '0')}-${String(Math.floor(n / 3600)).padStart(2, '0')}:${String(Math.floor(n / 60) % 60).padStart(2, '0')}:${String(n % 60).padStart(2, '0')}`

/** A story of about 64 KiB, so that writes take a while and kills land in the middle of them too. */
const story = (round: number, n: number): Record<string, JsonValue> => ({ round, n, scenes: { text: `scene ${n} `.repeat(6_000) } })

interface Acknowledged { story: { round: number, n: number } | null, lines: string[] }

/**
 * Updates the story and says a line, alternately, until the connection dies;
 * records each change once its acknowledgement arrived.
 */
async function burst (client: WireClient, round: number, acked: Acknowledged): Promise<void> {
  try {
    for (let n = 1; ; n++) {
      if (n % 2 === 1) {
        client.send('story')
        await expectFrame(client, 'story')
        client.send([story(round, n), timestamp(round, n)])
        const reply = await client.recv()
        const value = Array.isArray(reply) ? reply[1] as { round?: number, n?: number } : undefined
        if (value?.round !== round || value.n !== n) throw new Error(`unexpected merged reply for update ${n}`)
        acked.story = { round, n }
        client.send('ack')
        await expectFrame(client, 'yours')
      } else {
        const line = `round ${round} line ${n}`
        client.send(['message', line])
        await expectFrame(client, 'yours')
        acked.lines.push(line)
      }
    }
  } catch (err) {
    if (!client.closed) throw err
  }
}

async function expectFrame (client: WireClient, want: JsonValue): Promise<void> {
  const got = await client.recv()
  if (got !== want) throw new Error(`expected ${JSON.stringify(want)}, got ${JSON.stringify(got)?.slice(0, 100)}`)
}

/** The history, from a message of our own and the `messages` notification on the next pass (which ends with "yours"). */
async function history (client: WireClient): Promise<string[]> {
  client.send(['message', 'checking'])
  await expectFrame(client, 'yours')
  client.send('yours')
  let lines: string[] | undefined
  for (let f = await client.recv(); f !== 'yours'; f = await client.recv()) {
    if (Array.isArray(f) && f[0] === 'messages') lines = (f[1] as Array<[string, string]>).map(([, text]) => text)
    else if (f !== 'users') throw new Error(`unexpected ${JSON.stringify(f)?.slice(0, 100)}`)
  }
  if (lines === undefined) throw new Error('no messages on the pass')
  return lines
}

describe('crash: SIGKILL at a random moment loses nothing acknowledged', () => {
  it(`${ROUNDS} kills in a row, each restart on the same data dir`, async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'crash-test-')), 'data')
    temps.push(dir)
    const delays: number[] = []
    let server = await startServerProcess(['--data-dir', dir, '--turn-hold', '0'])
    let previous: Acknowledged | undefined
    for (let round = 0; round <= ROUNDS; round++) {
      const { client, story: current } = await joinServer(server.port, PROJECT, { username: `artist${round}` })
      if (previous?.story != null) {
        const got = (current as [string, { round: number, n: number }])[1]
        const where = `round ${round - 1} (kill after ${delays.at(-1)} ms): acknowledged update ${previous.story.n}`
        expect(got.round, where).toBe(previous.story.round)
        expect(got.n, where).toBeGreaterThanOrEqual(previous.story.n)
      }
      if (previous !== undefined) {
        const lines = await history(client)
        for (const line of previous.lines) expect(lines, `round ${round - 1}: acknowledged chat line`).toContain(line)
      }
      if (round === ROUNDS) {
        client.close()
        expect(await server.stop()).toBe(0)
        break
      }
      const acked: Acknowledged = { story: null, lines: [] }
      const delay = Math.floor(Math.random() * 400)
      delays.push(delay)
      const running = burst(client, round, acked)
      await new Promise((resolve) => setTimeout(resolve, delay))
      await server.kill()
      await running
      client.close()
      previous = acked
      server = await startServerProcess(['--data-dir', dir, '--turn-hold', '0'])
    }
  }, 120_000) // eleven server starts: about 20 s on a quiet machine, more when it is shared
})
