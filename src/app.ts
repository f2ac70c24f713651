import type { CliOptions } from './cli.ts'
import { startDiscovery, type Discovery } from './discovery.ts'
import { startInspector, type Inspector } from './inspector.ts'
import type { ServerLog } from './log.ts'
import { announcedAddress } from './net-info.ts'
import { startServer, type RunningServer } from './server.ts'
import { createStore } from './store.ts'

export interface App {
  readonly server: RunningServer
  /** Orderly stop: close sessions, flush the store, stop UDP and the inspector. */
  readonly stop: (why: string) => Promise<void>
}

/**
 * Everything `npm start` runs, wired together. `onExit` is called once the
 * app stopped by itself (a UDP abort).
 */
export async function startApp (options: CliOptions, log: ServerLog, onExit: (code: number) => void): Promise<App> {
  const store = createStore({ projectName: options.projectName, persist: options.persist, chatLimit: options.chatLimit }, log)
  const restored = await store.load()

  let inspector: Inspector | undefined
  if (options.inspectPort !== undefined) {
    inspector = await startInspector(options.inspectPort, log)
    log.human(`inspector | open ${inspector.url}`)
  }

  const server = await startServer({ ...options, restored, inspect: inspector?.inspect }, log)
  server.coordinator.on('durableStateChanged', (e) => store.save(e.state))

  let stopping: Promise<void> | undefined
  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log.human(`multiuser server | stopping | ${why}`)
      await server.close()
      await store.flush()
      await discovery?.close()
      await inspector?.close()
    })()
    return stopping
  }

  const reachAt = announcedAddress(options.host, server.port)
  let discovery: Discovery | undefined
  if (options.discovery !== false) {
    discovery = await startDiscovery(
      { projectName: options.projectName, secret: options.secret, ...options.discovery, announce: reachAt },
      log,
      () => { void stop('abort').then(() => onExit(0)) }
    )
  }

  // After discovery, so the terminal mirror carries this line too.
  log.human(`multiuser server | started | ${reachAt} | ${options.projectName}`)
  log.debug(`listening on ${server.host}:${server.port}`)

  return { server, stop }
}
