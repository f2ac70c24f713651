import { describe, expect, it } from 'vitest'
import { bytesText, durationText, ProgressView, summaryJson, summaryLine } from '../../src/client/progress.ts'
import type { GetProgress, GetResult } from '../../src/client/index.ts'

const MiB = 1024 * 1024
const at = (bytesDone: number, extra: Partial<GetProgress> = {}): GetProgress =>
  ({ phase: 'transferring', giver: '127.0.0.1:5', folder: '/shot', path: 'render/0001.exr', filesTotal: 4, filesDone: 1, bytesDone, bytesTotal: 100 * MiB, ...extra })

const result: GetResult = {
  files: 3, bytes: 30 * MiB, failed: [{ path: 'x', reason: 'missing on the giver: gone' }], skipped: 7, resumed: 1, bytesResumed: MiB,
  conflicts: [{ path: 'a.blend', copy: 'a.conflict-alice-20240102-030405.blend' }], deleted: []
}

describe('progress for people and scripts', () => {
  it('on a TTY: phase, bar, %, bytes, files, rate, ETA and the current file on one redrawn line', async () => {
    let out = ''
    const view = new ProgressView('tty', (s) => { out += s }, 200)
    view.phase('connecting', 'to 127.0.0.1:64646')
    expect(out).toBe('\rconnecting to 127.0.0.1:64646…\x1b[K')
    view.update(at(0, { phase: 'checking', filesDone: 2, filesTotal: 10 }))
    expect(out.endsWith('\rchecking local files 2/10\x1b[K')).toBe(true)
    view.update(at(0))
    await new Promise((resolve) => setTimeout(resolve, 50))
    view.update(at(50 * MiB))
    const last = out.slice(out.lastIndexOf('\r') + 1)
    expect(last).toMatch(/^\[#{10}\.{10}\] 50\.0% \| 50\.0 MiB\/100\.0 MiB \| 1\/4 files \| [\d.]+ (MiB|GiB)\/s \| ETA \d+:\d\d \| render\/0001\.exr\x1b\[K$/)
    view.end()
    expect(out.endsWith('\r\x1b[K')).toBe(true)
  })

  it('with --json: one line per phase and a few per second of progress, each a JSON object', () => {
    const lines: string[] = []
    const view = new ProgressView('json', (s) => lines.push(s))
    view.phase('connecting')
    view.update(at(0, { phase: 'waiting' }))
    view.update(at(MiB))
    expect(lines.every((l) => l.endsWith('\n'))).toBe(true)
    const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(events.map((e) => `${String(e.event)}:${String(e.phase)}`)).toEqual(['phase:connecting', 'phase:waiting', 'progress:waiting', 'phase:transferring', 'progress:transferring'])
    expect(events[4]).toMatchObject({ bytesDone: MiB, bytesTotal: 100 * MiB, percent: 1, path: 'render/0001.exr' })
    expect(JSON.parse(summaryJson(result, '/shot', 'alice', 2, 1))).toMatchObject({
      event: 'summary', exitCode: 1, files: 3, bytes: 30 * MiB, upToDate: 7, resumed: 1, conflicts: result.conflicts, failed: result.failed
    })
  })

  it('the final line says what moved, what was up to date, conflicts, deletions, failures, time and rate', () => {
    expect(summaryLine(result, '/shot', 'alice', 2)).toBe(
      'got 3 files (30.0 MiB, 1 resumed) of /shot from alice | 7 up to date | 1 conflicts | 0 deleted | 1 failed | 2.0 s | 15.0 MiB/s')
    expect(bytesText(1536)).toBe('1.5 KiB')
    expect(durationText(3700)).toBe('1:01:40')
  })
})
