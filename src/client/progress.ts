import type { GetPhase, GetProgress, GetResult } from './take.ts'

export type Phase = 'connecting' | GetPhase

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB']

/** 1536 → "1.5 KiB". */
export function bytesText (n: number): string {
  let v = n
  let u = 0
  while (v >= 1024 && u < UNITS.length - 1) { v /= 1024; u++ }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`
}

/** 75 → "1:15", 3700 → "1:01:40". */
export function durationText (seconds: number): string {
  const s = Math.max(0, Math.round(seconds))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`
}

const PHASE_TEXT: Record<Phase, string> = {
  connecting: 'connecting',
  waiting: 'waiting for the giver',
  checking: 'checking local files',
  transferring: 'transferring',
  done: 'done'
}

/** Bytes per second over the last few seconds (a sliding window), so the ETA follows the current speed. */
class Rate {
  private readonly samples: Array<{ t: number, bytes: number }> = []
  constructor (private readonly windowMs = 5_000) {}

  add (t: number, bytes: number): number {
    this.samples.push({ t, bytes })
    while (this.samples.length > 2 && t - this.samples[0].t > this.windowMs) this.samples.shift()
    const first = this.samples[0]
    const dt = (t - first.t) / 1000
    return dt > 0 ? (bytes - first.bytes) / dt : 0
  }
}

export interface ProgressSnapshot extends GetProgress {
  readonly percent: number | null
  /** Bytes per second, and seconds left at that rate (null while unknown). */
  readonly rate: number
  readonly eta: number | null
}

/**
 * What `get` shows while it runs: on a TTY one line redrawn in place (phase,
 * bar, %, bytes, rate, ETA, current file); with `--json` one JSON line per
 * phase change and at most a few per second while transferring; otherwise
 * nothing until the final line.
 */
export class ProgressView {
  private readonly rate = new Rate()
  private lastPhase: Phase | null = null
  private lastJson = 0
  private drawn = false
  readonly startedAt = performance.now()

  constructor (private readonly mode: 'tty' | 'json' | 'quiet', private readonly write: (s: string) => void, private readonly width = 100) {}

  phase (phase: Phase, detail?: string): void {
    if (phase === this.lastPhase) return
    this.lastPhase = phase
    if (this.mode === 'json') this.write(`${JSON.stringify({ event: 'phase', phase, ...(detail === undefined ? {} : { detail }) })}\n`)
    else if (this.mode === 'tty') this.draw(`${PHASE_TEXT[phase]}${detail === undefined ? '' : ` ${detail}`}…`)
  }

  update (p: GetProgress): void {
    const now = performance.now()
    const rate = this.rate.add(now, p.bytesDone)
    const snap = snapshot(p, rate)
    const phaseChanged = p.phase !== this.lastPhase
    if (phaseChanged) this.phase(p.phase)
    if (this.mode === 'json') {
      if (!phaseChanged && now - this.lastJson < 500 && p.filesDone !== p.filesTotal) return
      this.lastJson = now
      this.write(`${JSON.stringify({ event: 'progress', ...snap })}\n`)
    } else if (this.mode === 'tty') {
      this.draw(line(snap))
    }
  }

  /** Clears the TTY line before the final lines are printed. */
  end (): void {
    if (this.mode === 'tty' && this.drawn) this.write('\r\x1b[K')
    this.drawn = false
  }

  private draw (text: string): void {
    this.drawn = true
    this.write(`\r${text.length > this.width ? `${text.slice(0, this.width - 1)}…` : text}\x1b[K`)
  }
}

function snapshot (p: GetProgress, rate: number): ProgressSnapshot {
  const percent = p.bytesTotal > 0 ? Math.min(100, (100 * p.bytesDone) / p.bytesTotal) : p.filesTotal > 0 ? (100 * p.filesDone) / p.filesTotal : null
  const left = p.bytesTotal - p.bytesDone
  const eta = rate > 0 && left >= 0 ? left / rate : null
  return { ...p, percent: percent === null ? null : Math.round(percent * 10) / 10, rate: Math.round(rate), eta: eta === null ? null : Math.round(eta) }
}

function line (s: ProgressSnapshot): string {
  if (s.phase === 'checking') return `${PHASE_TEXT.checking} ${s.filesDone}/${s.filesTotal}`
  if (s.phase !== 'transferring') return PHASE_TEXT[s.phase]
  const width = 20
  const ratio = (s.percent ?? 0) / 100
  const filled = Math.round(ratio * width)
  const file = s.path === undefined ? '' : ` | ${s.path.length > 40 ? `…${s.path.slice(-39)}` : s.path}`
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${s.percent?.toFixed(1) ?? '?'}% | ${bytesText(s.bytesDone)}/${bytesText(s.bytesTotal)}` +
    ` | ${s.filesDone}/${s.filesTotal} files | ${bytesText(s.rate)}/s | ETA ${s.eta === null ? '?' : durationText(s.eta)}${file}`
}

/** The final line for people: moved, up to date, conflicts, deleted, failed, time, rate. */
export function summaryLine (r: GetResult, folder: string, giver: string, seconds: number): string {
  const rate = seconds > 0 ? r.bytes / seconds : 0
  return `got ${r.files} files (${bytesText(r.bytes)}${r.resumed > 0 ? `, ${r.resumed} resumed` : ''}) of ${folder} from ${giver}` +
    ` | ${r.skipped} up to date | ${r.conflicts.length} conflicts | ${r.deleted.length} deleted | ${r.failed.length} failed` +
    ` | ${seconds.toFixed(1)} s | ${bytesText(rate)}/s`
}

/** The final JSON line of `--json`. */
export function summaryJson (r: GetResult, folder: string, giver: string, seconds: number, exitCode: number, error?: { code: string, detail: string }): string {
  return JSON.stringify({
    event: 'summary', folder, giver, exitCode, seconds: Math.round(seconds * 1000) / 1000,
    files: r.files, bytes: r.bytes, upToDate: r.skipped, resumed: r.resumed, bytesResumed: r.bytesResumed,
    conflicts: r.conflicts, deleted: r.deleted, failed: r.failed, ...(r.plan === undefined ? {} : { plan: r.plan }),
    ...(error === undefined ? {} : { error })
  })
}
