import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import type { CliOptions } from './cli.ts'
import { startDiscovery, type Discovery } from './discovery.ts'
import type { HttpServer } from './http/server.ts'
import type { Telemetry } from './http/telemetry.ts'
import { startInspector, type Inspector } from './inspector.ts'
import type { ServerLog } from './log.ts'
import { firstExternalIPv4 } from './net-info.ts'
import { startServer, type RunningServer } from './server.ts'
import { createStore, defaultDataDir, writeDurably } from './store.ts'

export interface App {
  readonly server: RunningServer
  /** The status page, when the HTTP side is on and could listen. */
  readonly http?: HttpServer
  /** Metrics and status hooks, when the HTTP side is on. */
  readonly telemetry?: Telemetry
  /** Orderly stop: close sessions, flush the store, stop UDP, the inspector and the HTTP side. */
  readonly stop: (why: string) => Promise<void>
}

export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

/**
 * Everything `npm start` runs, wired together. `onExit` is called once the
 * app stopped by itself (a UDP abort).
 */
export async function startApp (options: CliOptions, log: ServerLog, onExit: (code: number) => void): Promise<App> {
  const startedAt = Date.now()
  // Metrics and the status page's hooks exist only with the HTTP side: without it the server pays nothing
  // (Fastify, prom-client and the page are not even loaded).
  const telemetry = options.http === false ? undefined : new (await import('./http/telemetry.ts')).Telemetry()
  const store = createStore({
    projectName: options.projectName,
    persist: options.persist,
    chatLimit: options.chatLimit,
    tuning: telemetry === undefined ? undefined : { writeFile: telemetry.timedWrite(writeDurably) }
  }, log)
  const restored = await store.load()

  let inspector: Inspector | undefined
  if (options.inspectPort !== undefined) {
    inspector = await startInspector(options.inspectPort, log)
    log.human(`inspector | open ${inspector.url}`)
  }

  const server = await startServer({ ...options, restored, inspect: inspector?.inspect, telemetry }, log)
  server.coordinator.on('durableStateChanged', (e) => store.save(e.state))
  telemetry?.attach(server)

  let http: HttpServer | undefined
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

  let stopping: Promise<void> | undefined
  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log.human(`multiuser server | stopping | ${why}`)
      await server.close()
      await store.flush()
      await discovery?.close()
      await inspector?.close()
      await http?.close()
    })()
    return stopping
  }

  let discovery: Discovery | undefined
  if (options.discovery !== false) {
    discovery = await startDiscovery(
      { projectName: options.projectName, secret: options.secret, ...options.discovery },
      log,
      () => { void stop('abort').then(() => onExit(0)) }
    )
  }

  // After discovery, so the terminal mirror carries this line too.
  log.human(`multiuser server | started | ${firstExternalIPv4()} | ${options.projectName}`)
  log.debug(`listening on ${server.host}:${server.port}`)

  return { server, http, telemetry, stop }
}
