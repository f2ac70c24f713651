import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { EndedRelay } from '../../actors/coordinator.ts'
import type { RelayPipeInput } from '../../actors/giver.ts'
import type { FramePort } from '../../actors/ports.ts'
import type { RequestType } from '../../protocol/messages.ts'
import { newRelayProgress, type RelayProgress } from '../relay-pipe.ts'
import type { RunningServer, ServerTelemetry } from '../server.ts'

/** A relay the byte pipe is running, with its counters. */
export interface LiveProgress {
  readonly progress: RelayProgress
  /** performance.now() when its pipe started. */
  readonly startedAt: number
}

export interface FinishedRelay extends EndedRelay {
  /** When it ended (ms since the epoch). */
  readonly endedAt: number
  /** The users' names when it ended ('' for one already gone). */
  readonly giverName: string
  readonly takerName: string
}

/** How the last write of the store went. */
export interface PersistenceState {
  readonly lastWriteAt?: number
  /** Set while writes fail: the last error. */
  readonly failing?: string
}

const KEEP_FINISHED = 20
const REQUEST_KINDS: ReadonlyArray<RequestType | 'refused'> = ['pass', 'story', 'analytics', 'assets', 'users', 'at', 'message', 'get', 'refused']

/**
 * What the server tells the status page and `/metrics`, gathered as it runs:
 * prom-client counters bumped by the hooks (one call per request, plain
 * counters per relay piece), the last finished relays and how persistence
 * goes. Gauges are read from the running server only when scraped.
 */
export class Telemetry implements ServerTelemetry {
  readonly registry = new Registry()
  readonly finished: FinishedRelay[] = []
  persistence: PersistenceState = {}
  private server: RunningServer | undefined
  private readonly live = new WeakMap<FramePort, LiveProgress>()
  private readonly passes: Counter
  private readonly requestsByKind: Map<string, Counter.Internal>
  private readonly relaysTotal: Counter<'outcome'>
  private readonly persistWrite: Histogram
  /** Bytes of relays that ended, and what the relay-bytes counter has been told so far. */
  private endedBytes = 0
  private reportedBytes = 0

  constructor () {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    this.passes = new Counter({ name: 'multiuser_passes_total', help: 'Passes ("yours" from a client holding the turn)', registers })
    const requests = new Counter({ name: 'multiuser_requests_total', help: 'Requests from clients holding the turn, by kind (refused: not a valid request)', labelNames: ['kind'], registers })
    // Children made once: counting a request is one call, no label lookup.
    this.requestsByKind = new Map(REQUEST_KINDS.map((k) => [k, requests.labels(k)]))
    for (const child of this.requestsByKind.values()) child.inc(0)
    this.relaysTotal = new Counter({ name: 'multiuser_relays_total', help: 'Relays that ended, by outcome (ok, failed, timeout, withdrawn)', labelNames: ['outcome'], registers })
    for (const outcome of ['ok', 'failed', 'timeout', 'withdrawn']) this.relaysTotal.labels(outcome).inc(0)
    this.persistWrite = new Histogram({
      name: 'multiuser_persist_write_seconds',
      help: 'Time to write one file of the data dir durably (atomic replace with fsync)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers
    })
    const self = this
    new Gauge({
      name: 'multiuser_users',
      help: 'Users connected (handshake done)',
      registers,
      collect () { this.set(self.server === undefined ? 0 : self.server.coordinator.getSnapshot().context.users.size) }
    })
    new Gauge({
      name: 'multiuser_connections',
      help: 'Client connections open, handshaking ones included',
      registers,
      collect () { this.set(self.server?.connectionCount() ?? 0) }
    })
    new Gauge({
      name: 'multiuser_relays_active',
      help: 'Relays whose giver has started serving',
      registers,
      collect () { this.set(self.activeRelays().length) }
    })
    new Gauge({
      name: 'multiuser_relays_waiting',
      help: 'Relays asked for whose giver has not started yet',
      registers,
      collect () {
        const all = self.server === undefined ? 0 : self.server.coordinator.getSnapshot().context.relays.size
        this.set(all - self.activeRelays().length)
      }
    })
    new Counter({
      name: 'multiuser_relay_bytes_total',
      help: 'File bytes relayed from givers to takers',
      registers,
      collect () {
        let now = self.endedBytes
        for (const r of self.activeRelays()) now += self.progressOf(r.giver)?.progress.bytesDone ?? 0
        // Relays that ended since the last scrape are in endedBytes: the total only grows.
        if (now > self.reportedBytes) {
          this.inc(now - self.reportedBytes)
          self.reportedBytes = now
        }
      }
    })
    new Gauge({
      name: 'multiuser_output_buffered_bytes',
      help: 'Bytes written to client sockets and not yet sent, all clients together',
      registers,
      collect () {
        let n = 0
        for (const c of self.server?.connections() ?? []) n += c.bufferedBytes
        this.set(n)
      }
    })
  }

  /** The running server the gauges read. */
  attach (server: RunningServer): void {
    this.server = server
    server.coordinator.on('relayEnded', (e) => this.relayEnded(e.relay))
  }

  readonly countRequest = (kind: RequestType | 'refused'): void => {
    this.requestsByKind.get(kind)?.inc()
    if (kind === 'pass') this.passes.inc()
  }

  readonly relayProgress = (input: RelayPipeInput): RelayProgress => {
    const progress = newRelayProgress()
    // A user serves one relay at a time (§5): its port names the relay it serves.
    this.live.set(input.giverPort, { progress, startedAt: performance.now() })
    return progress
  }

  /** The counters of the relay `giver` is serving, if its pipe runs. */
  progressOf (giver: string): LiveProgress | undefined {
    const port = this.server?.coordinator.getSnapshot().context.users.get(giver)?.port
    return port === undefined ? undefined : this.live.get(port)
  }

  /** Wraps the store's `writeFile`: times each write and remembers whether writes work. */
  timedWrite (write: (path: string, data: Uint8Array) => Promise<void>): (path: string, data: Uint8Array) => Promise<void> {
    return async (path, data) => {
      const end = this.persistWrite.startTimer()
      try {
        await write(path, data)
        end()
        this.persistence = { lastWriteAt: Date.now() }
      } catch (err) {
        this.persistence = { ...this.persistence, failing: `cannot save ${path}: ${(err as Error).message}` }
        throw err
      }
    }
  }

  private activeRelays (): Array<{ giver: string }> {
    if (this.server === undefined) return []
    return [...this.server.coordinator.getSnapshot().context.relays.values()].filter((r) => r.started)
  }

  private relayEnded (relay: EndedRelay): void {
    this.relaysTotal.labels(relay.outcome).inc()
    this.endedBytes += relay.bytes
    const users = this.server?.coordinator.getSnapshot().context.users
    const name = (id: string): string => users?.get(id)?.username ?? ''
    this.finished.unshift({ ...relay, endedAt: Date.now(), giverName: name(relay.giver), takerName: name(relay.taker) })
    if (this.finished.length > KEEP_FINISHED) this.finished.pop()
  }
}
