import { resolve } from 'node:path'
import { VERSION, type CliOptions } from './cli.ts'
import { startDiscovery, type Discovery } from './discovery.ts'
import type { HttpServer } from './http/server.ts'
import type { Telemetry } from './http/telemetry.ts'
import { startInspector, type Inspector } from './inspector.ts'
import type { ServerLog } from './log.ts'
import { announcedAddress } from './net-info.ts'
import { startServer, type RunningServer } from './server.ts'
import { atomicWrite, createStore, defaultDataDir, type FileStoreTuning } from './store.ts'

export interface App {
  readonly server: RunningServer
  /** The status page, when the HTTP side is on and could listen. */
  readonly http?: HttpServer
  /** Metrics and status hooks, when the HTTP side is on. */
  readonly telemetry?: Telemetry
  /** Orderly stop: close sessions, flush the store and release its lock, stop UDP, the inspector and the HTTP side. */
  readonly stop: (why: string) => Promise<void>
}

/**
 * Everything `npm start` runs, wired together. `onExit` is called once the
 * app stopped by itself (a UDP abort). A start-up that fails (an
 * OperatorError: data dir, port) undoes what it had started and rejects.
 */
export async function startApp (
  options: CliOptions,
  log: ServerLog,
  onExit: (code: number) => void,
  /** Tests and benches only: knobs of the file store (see FileStoreTuning). */
  storeTuning?: Partial<FileStoreTuning>
): Promise<App> {
  const startedAt = Date.now()
  // Metrics and the status page's hooks exist only with the HTTP side: without it the server pays nothing
  // (Fastify, prom-client and the page are not even loaded).
  const telemetry = options.http === false ? undefined : new (await import('./http/telemetry.ts')).Telemetry()
  const tuning = telemetry === undefined ? storeTuning : { writeFile: telemetry.timedWrite(storeTuning?.writeFile ?? atomicWrite), ...storeTuning }
  const store = createStore({ projectName: options.projectName, persist: options.persist, chatLimit: options.chatLimit, tuning }, log)
  const restored = await store.load()

  let inspector: Inspector | undefined
  let server: RunningServer | undefined
  let discovery: Discovery | undefined
  let http: HttpServer | undefined
  let stopping: Promise<void> | undefined
  /** §7: where clients reach this server, as announced and logged. */
  let reachAt = ''
  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log.human(`multiuser server | stopping | ${why}`)
      await server?.close()
      await store.close()
      await discovery?.close()
      await inspector?.close()
      await http?.close()
    })()
    return stopping
  }

  try {
    if (options.inspectPort !== undefined) {
      inspector = await startInspector(options.inspectPort, log)
      log.human(`inspector | open ${inspector.url}`)
    }
    // §8: with a durable store, acknowledgements wait for `durable.committed`.
    server = await startServer({ ...options, restored, inspect: inspector?.inspect, awaitCommit: store.durable, telemetry }, log)
    reachAt = announcedAddress(options.host, server.port)
    const coordinator = server.coordinator
    coordinator.on('durableStateChanged', (e) => store.save(e.state, e.version))
    telemetry?.attach(server)
    if (store.durable) {
      store.onCommitted((version) => {
        // The final flush at stop commits after the coordinator stopped: nobody is waiting any more.
        if (coordinator.getSnapshot().status === 'active') coordinator.send({ type: 'durable.committed', version })
      })
    }

    if (options.discovery !== false) {
      discovery = await startDiscovery(
        { projectName: options.projectName, secret: options.secret, ...options.discovery, announce: reachAt },
        log,
        () => { void stop('abort').then(() => onExit(0)) }
      )
    }

    if (options.http !== false && telemetry !== undefined) {
      const dataDir = options.persist === false ? undefined : resolve(options.persist.dataDir ?? defaultDataDir(options.projectName))
      const { startHttp } = await import('./http/server.ts')
      http = await startHttp(
        { ...options.http, secret: options.secret },
        { project: options.projectName, version: VERSION, server, telemetry, dataDir, secret: options.secret, startedAt },
        log
      )
      if (http !== undefined) log.human(`status page | open ${http.url}`)
    }
  } catch (err) {
    await http?.close()
    await server?.close()
    await store.close()
    await inspector?.close()
    throw err
  }

  // After discovery, so the terminal mirror carries this line too.
  log.human(`multiuser server | started | ${reachAt} | ${options.projectName}`)
  log.debug(`listening on ${server.host}:${server.port}`)

  return { server, http, telemetry, stop }
}
