import { createServer, type Server, type Socket } from 'node:net'
import { createActor, type InspectionEvent, type Observer } from 'xstate'
import { coordinatorMachine, type CoordinatorRef, type DurableState } from '../actors/coordinator.ts'
import { giverMachine } from '../actors/giver.ts'
import { sessionMachine, type SessionRef } from '../actors/session.ts'
import { encodeJson } from '../protocol/frame.ts'
import { errorMessage } from '../protocol/errors.ts'
import { withCachedSteps } from './cached-steps/index.ts'
import { Connection, userIdOf } from './connection.ts'
import { relayPipe, relayPipeWith, type RelayProgress } from './relay-pipe.ts'
import { listenOrFail } from './operator-error.ts'
import type { RelayPipeInput } from '../actors/giver.ts'
import type { RequestType } from '../protocol/messages.ts'
import type { ServerLog } from './log.ts'

/** What the status page and metrics hook into: cheap calls, no events (issue: status page). */
export interface ServerTelemetry {
  /** Once per request a client makes, by kind. */
  readonly countRequest: (kind: RequestType | 'refused') => void
  /** The counters a starting relay's byte pipe keeps up to date. */
  readonly relayProgress: (input: RelayPipeInput) => RelayProgress
}

/** One client connection, as the status page sees it. */
export interface ConnectionInfo {
  readonly userId: string
  /** When the socket was accepted (ms since the epoch). */
  readonly since: number
  readonly session: SessionRef
  /** Bytes written to the socket and not yet sent. */
  readonly bufferedBytes: number
}

export interface ServerOptions {
  readonly projectName: string
  readonly host: string
  readonly port: number
  readonly secret?: string
  readonly turnHoldMs: number
  readonly idleLimitMs: number
  readonly relayTimeoutMs: number
  readonly maxFrame: number
  readonly chatLimit: number
  /** §4: the chat history's cap in bytes of JSON. */
  readonly chatBytes: number
  /** §4: a client with more than this waiting unsent for it is disconnected. */
  readonly outputLimit: number
  readonly maxConnections: number
  /** State a store loaded at start (issue: persistence). */
  readonly restored?: DurableState
  /** §8: hold acknowledgements of changes until the store commits them (`durable.committed`). */
  readonly awaitCommit?: boolean
  /** XState inspection observer (issue: inspector). */
  readonly inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void)
  /** Status page and metrics hooks (issue: status page). */
  readonly telemetry?: ServerTelemetry
}

export const DEFAULTS = {
  host: '0.0.0.0',
  port: 64646,
  /**
   * §4 turn hold. Revision 2 lets a request end a held pass, so a client that
   * sends its request when it has one waits for nothing; what a longer hold
   * changes is how often an idle client's pass comes round: 1,000 idle
   * clients cost 500 passes/s at 2 s instead of 4,000 at 250 ms.
   */
  turnHoldMs: 2_000,
  idleLimitMs: 120_000,
  relayTimeoutMs: 60_000,
  maxFrame: 64 * 1024 * 1024,
  chatLimit: 10_000,
  chatBytes: 1024 * 1024,
  outputLimit: 64 * 1024 * 1024,
  maxConnections: 10_000
} as const

export interface RunningServer {
  readonly host: string
  readonly port: number
  readonly coordinator: CoordinatorRef
  /** How many client connections are open. */
  readonly connectionCount: () => number
  /** Every open client connection, handshaking ones included. */
  readonly connections: () => IterableIterator<ConnectionInfo>
  /** Whether it accepts clients (false once closing). */
  readonly accepting: () => boolean
  /** Stops accepting, closes every session, waits for their sockets (bounded), stops the actors. */
  readonly close: () => Promise<void>
}

/** §3: a busy refusal's socket is destroyed this long after the refusal, closed or not. */
const BUSY_RELEASE_MS = 1_000

/**
 * Sessions run their steps with XState's per-step work cached (src/cached-steps/):
 * the same machine, transitions, guards and actions, a fraction of the cost per pass.
 * With an inspector attached they run on XState's own interpreter, which reports every microstep.
 */
const SESSION_WITH_CACHED_STEPS = withCachedSteps(sessionMachine)

/** Socket reads of up to 1 MiB cut per-chunk overhead on large relays. */
const READ_HIGH_WATER = 1024 * 1024

export async function startServer (options: ServerOptions, log: ServerLog): Promise<RunningServer> {
  const inspect = options.inspect
  const telemetry = options.telemetry
  const pipe = telemetry === undefined ? relayPipe : relayPipeWith(telemetry.relayProgress)
  const coordinator = createActor(
    coordinatorMachine.provide({ actors: { giver: giverMachine.provide({ actors: { relayPipe: pipe } }) } }),
    {
      input: {
        chatLimit: options.chatLimit,
        chatBytes: options.chatBytes,
        relayTimeoutMs: options.relayTimeoutMs,
        idleLimitMs: options.idleLimitMs,
        restored: options.restored,
        awaitCommit: options.awaitCommit
      },
      inspect
    }
  )
  coordinator.on('log', (e) => log.human(e.line))
  coordinator.start()

  const sessions = new Map<Socket, SessionRef>()
  const accepted = new WeakMap<Socket, { readonly userId: string, readonly since: number }>()
  let closing = false
  const ended = new Set<Promise<void>>()

  const server: Server = createServer({ highWaterMark: READ_HIGH_WATER, noDelay: true }, (socket) => {
    socket.on('error', (err) => log.debug(`socket error | ${userIdOf(socket)} | ${err.message}`))
    if (sessions.size >= options.maxConnections) {
      log.human(`refused | ${userIdOf(socket)} | busy`)
      socket.end(encodeJson(errorMessage('busy', `the server is at its limit of ${options.maxConnections} connections`)))
      // §3: released within 2 s even if the client never closes its side.
      const release = setTimeout(() => socket.destroy(), BUSY_RELEASE_MS)
      release.unref()
      socket.once('close', () => clearTimeout(release))
      return
    }
    const connection = new Connection(socket, { maxFrame: options.maxFrame, outputLimit: options.outputLimit, idleLimitMs: options.idleLimitMs })
    const session = createActor(inspect === undefined ? SESSION_WITH_CACHED_STEPS : sessionMachine, {
      input: {
        userId: userIdOf(socket),
        projectName: options.projectName,
        secret: options.secret,
        turnHoldMs: options.turnHoldMs,
        idleLimitMs: options.idleLimitMs,
        countRequest: telemetry?.countRequest,
        coordinator,
        port: connection
      },
      inspect
    })
    session.on('log', (e) => log.human(e.line))
    sessions.set(socket, session)
    accepted.set(socket, { userId: userIdOf(socket), since: Date.now() })
    log.debug(`accepted | ${userIdOf(socket)}`)
    session.start()
    const done = connection.run(session).finally(() => {
      sessions.delete(socket)
      session.stop()
      ended.delete(done)
    })
    ended.add(done)
  })
  try {
    await listenOrFail(server, options.port, options.host, 'the multiuser server', 'choose another with --port')
  } catch (err) {
    coordinator.stop()
    throw err
  }
  server.on('error', (err) => log.error(`server error | ${err.message}`))
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : options.port

  return {
    host: options.host,
    port,
    coordinator,
    connectionCount: () => sessions.size,
    connections: function * () {
      for (const [socket, session] of sessions) {
        const a = accepted.get(socket) ?? { userId: userIdOf(socket), since: 0 }
        yield { userId: a.userId, since: a.since, session, bufferedBytes: socket.writableLength }
      }
    },
    accepting: () => !closing && server.listening,
    close: async () => {
      closing = true
      server.close()
      for (const session of sessions.values()) {
        if (session.getSnapshot().status === 'active') session.send({ type: 'server.shutdown' })
      }
      const deadline = new Promise((resolve) => setTimeout(resolve, 3_000).unref())
      await Promise.race([Promise.all([...ended]), deadline])
      for (const socket of sessions.keys()) socket.destroy()
      coordinator.stop()
    }
  }
}
