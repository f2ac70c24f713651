/**
 * Issue 12, §4 output limit: one client pipelines chat messages and passes
 * and never reads. The server reads its requests one at a time and
 * disconnects it once more than the output limit waits unsent, so its
 * memory stays bounded whatever the client sends. Prints the server's peak
 * RSS growth against the output limit, for two sizes of hog input (same run),
 * and whether a client connected meanwhile is still served.
 *
 * `npx tsx bench/hog.ts`
 */
import { startServerProcess } from './server-process.ts'
import { isMain, markdownTable, type Row } from './run.ts'
import { join } from '../test/helpers/wire-client.ts'

const MiB = 1024 * 1024
const OUTPUT_LIMIT = 64 * MiB
const MESSAGE = 'y'.repeat(60_000)

async function hogOnce (messages: number): Promise<Row> {
  const server = await startServerProcess(['--turn-hold', '0', '--output-limit', String(OUTPUT_LIMIT)])
  try {
    const witness = (await join(server.port, 'Bench', { username: 'witness' })).client
    const before = server.rss()
    let peak = before
    const sampler = setInterval(() => { peak = Math.max(peak, server.rss()) }, 10)
    const hog = (await join(server.port, 'Bench', { username: 'hog' })).client
    hog.socket.pause() // never reads again
    for (let i = 0; i < messages; i++) { hog.send(['message', MESSAGE]); hog.send('yours') }
    // Until everything the hog wrote has left it (the server read it, or reset the connection), bounded.
    const deadline = Date.now() + 60_000
    while (hog.socket.writableLength > 0 && !hog.socket.destroyed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    await new Promise((resolve) => setTimeout(resolve, 500))
    clearInterval(sampler)
    witness.send(['message', 'still served?'])
    const served = await witness.recv(10_000).then((m) => m === 'yours', () => false)
    witness.close()
    hog.close()
    return {
      'hog input (MiB)': (messages * (MESSAGE.length + 20) / MiB).toFixed(0),
      'server peak RSS growth (MiB)': ((peak - before) / MiB).toFixed(0),
      'growth ÷ output limit': ((peak - before) / OUTPUT_LIMIT).toFixed(2),
      'other client served': served ? 'yes' : 'NO'
    }
  } finally {
    await server.stop()
  }
}

export async function benchHog (): Promise<Row[]> {
  return [await hogOnce(1_000), await hogOnce(4_000)]
}

if (isMain(import.meta.url)) {
  benchHog().then((rows) => console.log(markdownTable(rows)), (err: unknown) => { console.error(err); process.exitCode = 1 })
}
