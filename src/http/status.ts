import { stat } from 'node:fs/promises'
import type { AnyActorRef } from 'xstate'
import type { JsonValue } from '../../protocol/frame.ts'
import type { Notification } from '../../actors/notifications.ts'
import type { RunningServer } from '../server.ts'
import type { MachineName } from './machine-graph.ts'
import { activeStates, leafState } from './states.ts'
import type { FinishedRelay, Telemetry } from './telemetry.ts'

/**
 * The status page's data (`/api/status`, and each server-sent `status`
 * event). Never in it: the secret, file bytes, story or analytics content
 * (only their owner, timestamp and size).
 */
export interface StatusDoc {
  readonly project: string
  readonly version: string
  readonly server: { readonly host: string, readonly port: number }
  /** ISO time the server started; the page counts the uptime from it. */
  readonly startedAt: string
  readonly uptimeSeconds: number
  readonly persistence: PersistenceStatus
  readonly health: Health
  readonly connections: number
  readonly users: readonly UserStatus[]
  readonly relays: readonly RelayStatus[]
  readonly finishedRelays: readonly FinishedRelay[]
  readonly chat: ReadonlyArray<{ readonly username: string, readonly text: string }>
  readonly story: { readonly owner: string, readonly timestamp: string, readonly bytes: number }
  readonly analytics: { readonly timestamp: string, readonly bytes: number }
  /** Per machine, how many actors are in each state (dotted id, compound states included). */
  readonly machines: Record<MachineName, Record<string, number>>
}

export interface UserStatus {
  readonly id: string
  readonly username: string
  /** §4: `[path, timestamp]`, or null before the user said where it works. */
  readonly at: readonly [string, string] | null
  readonly camera: readonly [number, number]
  readonly connectedSince: string
  /** The session machine's deepest state, dotted: `turnTaking.holding`. */
  readonly state: string
  /** Every state the session is in, ancestors included (what the diagram highlights). */
  readonly states: readonly string[]
  readonly pending: ReadonlyArray<{ readonly kind: Notification['kind'], readonly count: number }>
}

export interface RelayStatus {
  readonly id: number
  readonly folder: string
  readonly giver: string
  readonly taker: string
  readonly giverName: string
  readonly takerName: string
  /** Whether the giver started serving it (else the taker waits for the giver's turn). */
  readonly started: boolean
  readonly filesDone: number
  readonly filesTotal: number | null
  readonly bytesDone: number
  /** Bytes announced by the file headers so far: the whole total once every header came. */
  readonly bytesTotal: number
  readonly bytesTotalKnown: boolean
  /** 0 to 1, by bytes once the total is known, by files before. */
  readonly fraction: number
  /** Bytes per second over the last few seconds. */
  readonly rate: number
  readonly etaSeconds: number | null
  readonly giverStates: readonly string[]
  readonly takerStates: readonly string[]
}

export interface PersistenceStatus {
  readonly mode: 'on' | 'off'
  readonly dataDir?: string
  readonly lastWriteAt?: string
  readonly problem?: string
}

export interface Health {
  readonly ok: boolean
  readonly reasons: readonly string[]
}

export interface StatusContext {
  readonly project: string
  readonly version: string
  readonly server: RunningServer
  readonly telemetry: Telemetry
  /** Absolute path of the data dir, or undefined with --no-persist. */
  readonly dataDir?: string
  readonly secret?: string
  readonly startedAt: number
}

const RECENT_CHAT = 20
const RATE_WINDOW_MS = 3_000
const REDACTED = '[redacted]'

/** Sizes of story and analytics values, computed once per value (they are immutable). */
const sizes = new WeakMap<object, number>()
function jsonBytes (v: JsonValue): number {
  if (v === null || typeof v !== 'object') return Buffer.byteLength(JSON.stringify(v))
  let n = sizes.get(v)
  if (n === undefined) {
    n = Buffer.byteLength(JSON.stringify(v))
    sizes.set(v, n)
  }
  return n
}

function pendingKinds (pending: readonly Notification[]): UserStatus['pending'] {
  const counts = new Map<Notification['kind'], number>()
  for (const n of pending) counts.set(n.kind, (counts.get(n.kind) ?? 0) + 1)
  return [...counts].map(([kind, count]) => ({ kind, count }))
}

const statesOf = (ref: AnyActorRef | undefined): string[] => {
  const snap = ref?.getSnapshot() as { status?: string, value?: unknown } | undefined
  return snap?.status === 'active' ? activeStates(snap.value) : []
}

/** Byte samples per relay, for its rate. */
type Samples = Array<{ t: number, bytes: number }>

/** Builds status documents; keeps the recent byte counts of each relay for its rate. */
export class StatusBuilder {
  private readonly samples = new Map<number, Samples>()

  constructor (private readonly c: StatusContext) {}

  /** Hides the secret wherever a client could have written it (chat, usernames, paths). */
  private clean (s: string): string {
    const secret = this.c.secret
    if (secret === undefined || secret === '') return s
    if (s === secret) return REDACTED
    return secret.length >= 4 && s.includes(secret) ? s.split(secret).join(REDACTED) : s
  }

  async health (): Promise<Health> {
    const reasons: string[] = []
    if (!this.c.server.accepting()) reasons.push('not accepting clients: the server is stopping')
    for (const p of await this.persistenceProblems()) reasons.push(`persistence: ${p}`)
    return { ok: reasons.length === 0, reasons }
  }

  /** Why persistence is unhealthy: the data dir is not a usable folder, and/or the last write failed. */
  private async persistenceProblems (): Promise<string[]> {
    const dir = this.c.dataDir
    if (dir === undefined) return []
    const problems: string[] = []
    try {
      const s = await stat(dir)
      if (!s.isDirectory()) problems.push(`the data dir ${dir} is not a directory`)
    } catch (err) {
      problems.push(`the data dir ${dir} is unusable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
    const failing = this.c.telemetry.persistence.failing
    if (failing !== undefined) problems.push(failing)
    return problems
  }

  async build (): Promise<StatusDoc> {
    const { server, telemetry } = this.c
    const ctx = server.coordinator.getSnapshot().context
    const now = Date.now()
    const machines: StatusDoc['machines'] = { session: {}, coordinator: {}, giver: {}, taker: {} }
    const count = (machine: MachineName, states: readonly string[]): void => {
      const m = machines[machine]
      for (const s of states) m[s] = (m[s] ?? 0) + 1
    }
    count('coordinator', statesOf(server.coordinator))

    const since = new Map<string, number>()
    let connections = 0
    for (const c of server.connections()) {
      connections++
      since.set(c.userId, c.since)
      count('session', statesOf(c.session))
    }

    const users: UserStatus[] = []
    for (const [id, u] of ctx.users) {
      const snap = u.session.getSnapshot() as { value?: unknown, context?: { pending?: readonly Notification[] } }
      users.push({
        id,
        username: this.clean(u.username),
        at: u.at === null ? null : [this.clean(u.at[0]), u.at[1]],
        camera: u.camera,
        connectedSince: new Date(since.get(id) ?? now).toISOString(),
        state: leafState(snap.value),
        states: statesOf(u.session),
        pending: pendingKinds(snap.context?.pending ?? [])
      })
    }

    const relays: RelayStatus[] = []
    const seen = new Set<number>()
    for (const r of ctx.relays.values()) {
      const giverStates = statesOf(r.giverActor)
      const takerStates = statesOf(r.takerActor)
      count('giver', giverStates)
      count('taker', takerStates)
      const live = r.started ? telemetry.progressOf(r.giver) : undefined
      const p = live?.progress
      seen.add(r.id)
      const bytesDone = p?.bytesDone ?? 0
      const filesTotal = p?.filesTotal ?? null
      const bytesTotalKnown = filesTotal !== null && p !== undefined && p.headers >= filesTotal
      const bytesTotal = p?.bytesAnnounced ?? 0
      const rate = this.rate(r.id, bytesDone)
      // Headers come one per file, as each starts: until the last one, progress counts files.
      const fraction = bytesTotalKnown
        ? (bytesTotal === 0 ? 1 : bytesDone / bytesTotal)
        : filesTotal !== null && filesTotal > 0 ? (p?.filesDone ?? 0) / filesTotal : 0
      let eta: number | null = null
      if (bytesTotalKnown) eta = rate > 0 ? Math.max(0, (bytesTotal - bytesDone) / rate) : null
      else if (live !== undefined && filesTotal !== null && p !== undefined && p.filesDone > 0) {
        // Before the byte total is known: at the pace of the files so far.
        eta = (performance.now() - live.startedAt) / 1000 / p.filesDone * (filesTotal - p.filesDone)
      }
      relays.push({
        id: r.id,
        folder: this.clean(r.folder),
        giver: r.giver,
        taker: r.taker,
        giverName: this.clean(ctx.users.get(r.giver)?.username ?? ''),
        takerName: this.clean(ctx.users.get(r.taker)?.username ?? ''),
        started: r.started,
        filesDone: p?.filesDone ?? 0,
        filesTotal,
        bytesDone,
        bytesTotal,
        bytesTotalKnown,
        fraction,
        rate,
        etaSeconds: eta,
        giverStates,
        takerStates
      })
    }
    for (const id of this.samples.keys()) if (!seen.has(id)) this.samples.delete(id)

    const persistence = telemetry.persistence
    const health = await this.health()
    return {
      project: this.c.project,
      version: this.c.version,
      server: { host: server.host, port: server.port },
      startedAt: new Date(this.c.startedAt).toISOString(),
      uptimeSeconds: Math.round((now - this.c.startedAt) / 1000),
      persistence: this.c.dataDir === undefined
        ? { mode: 'off' }
        : {
            mode: 'on',
            dataDir: this.c.dataDir,
            lastWriteAt: persistence.lastWriteAt === undefined ? undefined : new Date(persistence.lastWriteAt).toISOString(),
            problem: health.reasons.filter((r) => r.startsWith('persistence: ')).map((r) => r.slice('persistence: '.length)).join('; ') || undefined
          },
      health,
      connections,
      users,
      relays,
      finishedRelays: telemetry.finished.map((f) => ({ ...f, folder: this.clean(f.folder), giverName: this.clean(f.giverName), takerName: this.clean(f.takerName) })),
      chat: ctx.chat.slice(-RECENT_CHAT).map(([username, text]) => ({ username: this.clean(username), text: this.clean(text) })),
      story: { owner: ctx.story.owner, timestamp: ctx.story.timestamp, bytes: jsonBytes(ctx.story.value) },
      analytics: { timestamp: ctx.analytics.timestamp, bytes: jsonBytes(ctx.analytics.value) },
      machines
    }
  }

  /** Bytes per second of relay `id` over the last few seconds of samples. */
  private rate (id: number, bytes: number): number {
    const t = performance.now()
    const s = this.samples.get(id) ?? []
    s.push({ t, bytes })
    while (s.length > 2 && t - s[0].t > RATE_WINDOW_MS) s.shift()
    this.samples.set(id, s)
    const first = s[0]
    const dt = (t - first.t) / 1000
    return dt > 0 ? (bytes - first.bytes) / dt : 0
  }
}
