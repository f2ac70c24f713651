import { readFile } from 'node:fs/promises'
import type { ServerResponse } from 'node:http'
import Fastify, { type FastifyInstance } from 'fastify'
import type { ServerLog } from '../log.ts'
import { exposedWithoutSecret, hasSecret, isExposed, loopbackHosts } from './auth.ts'
import { StatusBuilder, type StatusContext } from './status.ts'

export interface HttpOptions {
  readonly host: string
  /** 0 picks a free port. */
  readonly port: number
  /** Required when `host` exposes the page (anything but 127.0.0.1 and ::1). */
  readonly secret?: string
}

export interface HttpServer {
  readonly url: string
  readonly port: number
  readonly close: () => Promise<void>
}

/** The page's files, served from the package (no CDN: it works with the network unplugged). */
const ASSETS: Readonly<Record<string, { file: string, type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/assets/status.js': { file: 'status.js', type: 'text/javascript; charset=utf-8' },
  '/assets/status.css': { file: 'status.css', type: 'text/css; charset=utf-8' }
}
const ASSET_DIR = new URL('./assets/', import.meta.url)

/** How often the live page is checked for changes the coordinator does not see (session states, relay bytes). */
export const PUSH_INTERVAL_MS = 250
/** The least time between two pushes when the coordinator changes often. */
const MIN_GAP_MS = 50
const HEARTBEAT_MS = 15_000
/** A page that reads slower than the updates come gets skipped until it catches up. */
const MAX_PAGE_BACKLOG = 4 * 1024 * 1024

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store'
} as const

export class HttpConfigError extends Error {}

/**
 * Server-sent events: every page gets the status at once, then whenever it
 * changes. While at least one page is open: a change of the coordinator
 * (a user joins or leaves, says where it works, a relay starts or ends, …)
 * is pushed within MIN_GAP_MS, and everything else (session states, relay
 * bytes) is checked every PUSH_INTERVAL_MS. Nothing runs when nobody looks.
 */
class StatusStream {
  private readonly pages = new Set<ServerResponse>()
  private timer: NodeJS.Timeout | undefined
  private soonTimer: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined
  private last = ''
  private lastWrite = 0
  private lastBuild = 0
  private busy = false
  /** A change came while a build was running: build again after it. */
  private again = false

  constructor (
    private readonly builder: StatusBuilder,
    /** Calls its listener on each change of the coordinator; returns how to stop. */
    private readonly onCoordinatorChange: (listener: () => void) => () => void,
    private readonly log: ServerLog
  ) {}

  add (res: ServerResponse): void {
    this.pages.add(res)
    res.on('close', () => this.remove(res))
    if (this.last !== '') res.write(this.last)
    if (this.timer === undefined) {
      this.timer = setInterval(() => { void this.tick() }, PUSH_INTERVAL_MS)
      this.timer.unref()
      this.unsubscribe = this.onCoordinatorChange(() => this.soon())
    }
    void this.tick()
  }

  remove (res: ServerResponse): void {
    this.pages.delete(res)
    if (this.pages.size === 0) this.stop()
  }

  close (): void {
    for (const res of this.pages) res.end()
    this.pages.clear()
    this.stop()
  }

  private stop (): void {
    clearInterval(this.timer)
    clearTimeout(this.soonTimer)
    this.unsubscribe?.()
    this.timer = this.soonTimer = this.unsubscribe = undefined
    this.last = ''
  }

  /** A push soon, at most one per MIN_GAP_MS, however many changes. */
  private soon (): void {
    if (this.soonTimer !== undefined) return
    if (this.busy) { this.again = true; return }
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined
      void this.tick()
    }, Math.max(0, this.lastBuild + MIN_GAP_MS - Date.now()))
    this.soonTimer.unref()
  }

  private async tick (): Promise<void> {
    if (this.busy || this.pages.size === 0) return
    this.busy = true
    this.lastBuild = Date.now()
    try {
      const { uptimeSeconds: _, ...doc } = await this.builder.build()
      const message = `event: status\ndata: ${JSON.stringify(doc)}\n\n`
      const now = Date.now()
      if (message === this.last && now - this.lastWrite < HEARTBEAT_MS) return
      const changed = message !== this.last
      this.last = message
      this.lastWrite = now
      for (const res of this.pages) {
        if (res.writableLength > MAX_PAGE_BACKLOG) continue
        res.write(changed ? message : ': still here\n\n')
      }
    } catch (err) {
      this.log.debug(`status page | could not build the status | ${(err as Error).message}`)
    } finally {
      this.busy = false
      if (this.again) {
        this.again = false
        this.soon()
      }
    }
  }
}

/**
 * Starts the HTTP side: the status page, `/api/status`, `/api/events`,
 * `/api/machines`, `/metrics`, `/healthz`. A port it cannot listen on (taken)
 * is logged as one warning, and the server runs on without it: then this
 * resolves to undefined.
 */
export async function startHttp (options: HttpOptions, status: StatusContext, log: ServerLog): Promise<HttpServer | undefined> {
  const exposed = isExposed(options.host)
  const secret = options.secret
  if (exposed && (secret === undefined || secret === '')) throw new HttpConfigError(exposedWithoutSecret(options.host))

  const builder = new StatusBuilder(status)
  const stream = new StatusStream(builder, (listener) => {
    const subscription = status.server.coordinator.subscribe(listener)
    return () => subscription.unsubscribe()
  }, log)
  const app: FastifyInstance = Fastify({ logger: false, forceCloseConnections: true })
  let hosts = new Set<string>()

  app.addHook('onRequest', async (req, reply) => {
    if (exposed) {
      if (!hasSecret(req.headers.authorization, secret as string)) {
        log.debug(`status page | refused | ${req.ip} | ${req.headers.authorization === undefined ? 'no credentials' : 'wrong secret'}`)
        return await reply.code(401)
          .header('www-authenticate', 'Basic realm="vcstudio-multiuser status", charset="UTF-8"')
          .headers(SECURITY_HEADERS)
          .type('text/plain; charset=utf-8')
          .send('The status page needs the server\'s secret: log in with any user name and the secret as password, or send "Authorization: Bearer <secret>".\n')
      }
    } else if (!hosts.has(req.headers.host ?? '')) {
      return await reply.code(403).headers(SECURITY_HEADERS).type('text/plain; charset=utf-8')
        .send(`Host ${JSON.stringify(req.headers.host ?? '')} is not this server: open it as http://${[...hosts][0] ?? options.host}/\n`)
    }
  })
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.headers(SECURITY_HEADERS)
    return payload
  })

  for (const [path, asset] of Object.entries(ASSETS)) {
    app.get(path, async (_req, reply) => reply.type(asset.type).send(await readFile(new URL(asset.file, ASSET_DIR))))
  }
  app.get('/api/status', async () => await builder.build())
  // Laid out on the first request, once per process (elkjs is loaded only then).
  app.get('/api/machines', async () => await (await import('./machine-graph.ts')).machineSvgs())
  app.get('/api/events', (req, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    reply.raw.write(`retry: 1000\n\n`)
    req.raw.socket.setNoDelay(true)
    stream.add(reply.raw)
  })
  app.get('/metrics', async (_req, reply) => {
    const text = await status.telemetry.registry.metrics()
    return await reply.type(status.telemetry.registry.contentType).send(text)
  })
  app.get('/healthz', async (_req, reply) => {
    const health = await builder.health()
    return await reply.code(health.ok ? 200 : 503).send(health.ok ? { status: 'ok' } : { status: 'unhealthy', reasons: health.reasons })
  })

  try {
    await app.listen({ host: options.host, port: options.port })
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const why = e.code === 'EADDRINUSE' ? `port ${options.port} is taken` : `cannot listen on ${options.host}:${options.port} (${e.code ?? e.message})`
    log.warn(`status page | ${why} | the server runs on without it (pick a port with --http <port>, or --no-http)`)
    await app.close().catch(() => {})
    return undefined
  }
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : options.port
  hosts = loopbackHosts(options.host, port)
  const shown = options.host.includes(':') ? `[${options.host}]` : options.host
  return {
    url: `http://${shown}:${port}/`,
    port,
    close: async () => {
      stream.close()
      await app.close()
    }
  }
}
