import { createServer, type IncomingMessage } from 'node:http'
import type { WebSocket, WebSocketServer } from 'ws'
import type { AnyActorRef, InspectionEvent } from 'xstate'
import type { ServerLog } from './log.ts'
import { listenOrFail } from './operator-error.ts'

export interface Inspector {
  /** Pass as the actors' `inspect` option. */
  readonly inspect: (event: InspectionEvent) => void
  /** What to open in a browser. */
  readonly url: string
  readonly close: () => Promise<void>
}

/*
 * How it fits together (the way @statelyai/inspect's Node.js support is
 * meant to be used: a relay server, the package's WebSocket inspector in the
 * app, the hosted Stately inspector in a browser page of the relay):
 *
 *   actors --inspect--> sanitize --> createWebSocketInspector --ws--> relay (127.0.0.1:<port>)
 *                                                                      |
 *   browser: http://127.0.0.1:<port>/ = page with the Stately inspector <--ws--+
 *
 * The relay is ours, not the package's `createInspectorServer`: that one
 * listens on every interface and opens a browser; this one listens on
 * 127.0.0.1 only, refuses WebSocket connections from other web origins, and
 * replays the live actors to a browser that connects late.
 *
 * What is sent is sanitized first, before the package serializes anything:
 * no secret, no file bytes, no socket or port objects (summarised as a
 * string), and large values (story, analytics, chat, assets, a big frame)
 * summarised as `{ summary: 'object, 10 keys, ~12 KiB' }`.
 */

/** Hosted Stately inspector UI, loaded by the browser page (never by the server). */
const STATELY_INSPECTOR_URL = 'https://stately.ai/inspect'

/** A value bigger than this (as JSON, roughly) is summarised. */
const SUMMARY_THRESHOLD = 2 * 1024
const MAX_STRING = 256
const MAX_DEPTH = 6
/** Size estimates stop counting after this many values (a 10 000-line chat is fine). */
const ESTIMATE_NODE_BUDGET = 200_000
const RECENT_MESSAGES = 1_000
const MAX_LIVE_ACTORS = 10_000
/** A browser this far behind gets messages dropped rather than buffered without bound. */
const MAX_CLIENT_BUFFER = 16 * 1024 * 1024

// ---------------------------------------------------------------------------
// Sanitizing
// ---------------------------------------------------------------------------

const SECRET_KEY = /secret|password|passwd|token|api.?key/i
export const REDACTED = '[redacted]'

const isActorRef = (v: object): v is AnyActorRef =>
  typeof (v as { sessionId?: unknown }).sessionId === 'string' && typeof (v as { send?: unknown }).send === 'function'

const isPlain = (v: object): boolean => {
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null || Array.isArray(v)
}

function formatBytes (n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

/**
 * Turns anything an actor holds into small, plain JSON for the inspector.
 * One per inspector: it learns the secrets it redacts (the session context's
 * `secret`) and also hides them wherever else they show up (the handshake
 * frame that carries it, a chat line).
 */
export class Sanitizer {
  private readonly secrets = new Set<string>()
  private cache = new WeakMap<object, unknown>()
  private readonly sizes = new WeakMap<object, number>()

  /** A value, plain and small. `key` is the property it was found under. */
  value (v: unknown, depth = 0, key?: string): unknown {
    if (key !== undefined && SECRET_KEY.test(key) && v !== undefined && v !== null && v !== false) {
      if (typeof v === 'string' && v !== '') this.learnSecret(v)
      return REDACTED
    }
    switch (typeof v) {
      case 'undefined': case 'boolean': return v
      case 'number': return Number.isFinite(v) ? v : String(v)
      case 'bigint': return String(v)
      case 'symbol': return v.toString()
      case 'function': return `[function ${v.name !== '' ? v.name : 'anonymous'}]`
      case 'string': return this.string(v)
    }
    if (v === null) return null
    const o = v as object
    // Below the top level, the same object (a story, the chat) sanitizes the same way each time.
    if (depth === 0) return this.object(o, depth)
    const cached = this.cache.get(o)
    if (cached !== undefined) return cached
    const out = this.object(o, depth)
    this.cache.set(o, out)
    return out
  }

  learnSecret (secret: string): void {
    if (this.secrets.has(secret)) return
    this.secrets.add(secret)
    this.cache = new WeakMap() // what was cached before may hold it
  }

  private string (s: string): string {
    let out = s
    for (const secret of this.secrets) {
      // A secret of a few characters is only hidden where it is the whole string.
      if (out === secret) return REDACTED
      if (secret.length >= 4 && out.includes(secret)) out = out.split(secret).join(REDACTED)
    }
    return out.length > MAX_STRING ? `${out.slice(0, 80)}… (${out.length} chars)` : out
  }

  private object (o: object, depth: number): unknown {
    if (isActorRef(o)) return `[actor ${actorName(o as unknown as RefLike)}]`
    if (ArrayBuffer.isView(o)) return `[${o.byteLength} bytes]`
    if (o instanceof ArrayBuffer) return `[${o.byteLength} bytes]`
    if (o instanceof Error) return `${o.name}: ${this.string(o.message)}`
    if (o instanceof Date) return o.toISOString()
    let kind: string
    if (o instanceof Map) kind = `Map, ${o.size} entries`
    else if (o instanceof Set) kind = `Set, ${o.size} items`
    else if (Array.isArray(o)) kind = `array, ${o.length} items`
    else if (isPlain(o)) kind = `object, ${Object.keys(o).length} keys`
    else return `[${o.constructor?.name ?? 'object'}]` // sockets, FramePorts and other live objects: never serialized
    const { size, complete } = depth === 0 ? { size: 0, complete: true } : this.estimate(o)
    const big = size > SUMMARY_THRESHOLD
    // The top level (a context, an event) is always opened; in it, a big
    // record of a few fields (the story: owner, value, timestamp) is opened
    // so that its small fields stay visible.
    const fewFields = kind.startsWith('object') && Object.keys(o).length <= 8
    const open = depth === 0 || (!big && depth < MAX_DEPTH) || (big && depth === 1 && fewFields)
    if (!open) return { summary: `${kind}, ${complete ? '~' : 'over '}${formatBytes(size)}` }
    if (Array.isArray(o) || o instanceof Set) return [...o].map((val) => this.value(val, depth + 1))
    const result: Record<string, unknown> = {}
    const entries = o instanceof Map ? [...o].map(([k, val]) => [String(k), val] as const) : Object.entries(o)
    for (const [k, val] of entries) result[k] = this.value(val, depth + 1, k)
    return result
  }

  /** Roughly the JSON size of a value, cached per object; bounded work. */
  private estimate (root: object): { size: number, complete: boolean } {
    const known = this.sizes.get(root)
    if (known !== undefined) return { size: known, complete: true }
    let budget = ESTIMATE_NODE_BUDGET
    const walk = (v: unknown): number => {
      if (--budget < 0) return 0
      switch (typeof v) {
        case 'string': return v.length + 2
        case 'number': case 'bigint': case 'boolean': return 8
        case 'undefined': case 'function': case 'symbol': return 4
      }
      if (v === null) return 4
      const o = v as object
      const k = this.sizes.get(o)
      if (k !== undefined) return k
      if (ArrayBuffer.isView(o)) return o.byteLength
      if (!(o instanceof Map || o instanceof Set || isPlain(o)) || isActorRef(o)) return 16
      let n = 2
      if (o instanceof Map) for (const [key, val] of o) n += String(key).length + 4 + walk(val)
      else if (o instanceof Set || Array.isArray(o)) for (const val of o as Iterable<unknown>) n += 1 + walk(val)
      else for (const [key, val] of Object.entries(o)) n += key.length + 4 + walk(val)
      if (budget >= 0) this.sizes.set(o, n)
      return n
    }
    const size = walk(root)
    return { size, complete: budget >= 0 }
  }
}

/** Whether a state value (`'a'`, `{ a: 'b' }`) names a state whose key matches `pattern`. */
function stateValueMatches (value: unknown, pattern: RegExp): boolean {
  if (typeof value === 'string') return pattern.test(value)
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).some(([k, v]) => pattern.test(k) || stateValueMatches(v, pattern))
  }
  return false
}

interface SnapshotLike {
  readonly status?: string
  readonly value?: unknown
  readonly context?: unknown
  readonly children?: Record<string, AnyActorRef | undefined>
  readonly [key: string]: unknown
}

/** A snapshot as the inspector may see it: plain data, sanitized. */
function sanitizeSnapshot (s: Sanitizer, snapshot: unknown): Record<string, unknown> {
  if (snapshot === null || typeof snapshot !== 'object') return { status: 'active' }
  const snap = snapshot as SnapshotLike
  const out: Record<string, unknown> = {}
  for (const [key, val] of Object.entries(snap)) {
    if (typeof val === 'function' || key === 'machine' || key === '_nodes' || key === 'historyValue') continue
    if (key === 'children') {
      const children: Record<string, unknown> = {}
      for (const [id, ref] of Object.entries(val as Record<string, AnyActorRef | undefined>)) {
        if (ref !== undefined) children[id] = { xstate$$type: 1, id: ref.id }
      }
      out.children = children
    } else if (key === 'tags') {
      out.tags = [...(val as Iterable<string>)]
    } else if (key === 'status' || key === 'value') {
      out[key] = val
    } else if (key === 'error') {
      out.error = val === undefined ? undefined : s.value(val instanceof Error ? val : String(val))
    } else {
      out[key] = s.value(val, 0)
    }
  }
  return out
}

/** What the package reads of an actor ref; only sanitized data behind it. */
interface ActorFacade {
  readonly id: string
  readonly sessionId: string
  readonly _parent?: { readonly sessionId: string }
  readonly logic: unknown
  readonly getSnapshot: () => unknown
}

/**
 * The actor's name in the inspector: its id, or, for a root actor without
 * one, its machine's id and the user it serves (`session 127.0.0.1:50312`).
 */
function actorName (ref: RefLike): string {
  if (ref.id !== undefined && ref.id !== ref.sessionId) return ref.id
  const config = (ref.logic as { config?: { id?: unknown } } | undefined)?.config
  const machineId = typeof config?.id === 'string' ? config.id : ref.sessionId
  const context = (ref.getSnapshot() as { context?: { userId?: unknown } } | undefined)?.context
  return typeof context?.userId === 'string' ? `${machineId} ${context.userId}` : machineId
}

/** What this file reads of an actor ref (XState's `ActorRefLike` plus internals the package reads too). */
interface RefLike {
  readonly id?: string
  readonly sessionId: string
  readonly logic?: unknown
  readonly _parent?: { readonly sessionId: string }
  readonly getSnapshot: () => unknown
}

function facade (s: Sanitizer, actorRef: unknown): AnyActorRef {
  const ref = actorRef as RefLike
  const parent = ref._parent
  const f: ActorFacade = {
    get id () { return actorName(ref) },
    sessionId: ref.sessionId,
    _parent: parent === undefined ? undefined : { sessionId: parent.sessionId },
    logic: ref.logic,
    getSnapshot: () => sanitizeSnapshot(s, ref.getSnapshot())
  }
  return f as unknown as AnyActorRef
}

/**
 * Sanitizes one XState inspection event into one the package can convert and
 * send (an event of the same shape over sanitized data), or `undefined` for
 * kinds the Stately inspector does not show (`@xstate.action`, microsteps).
 */
export function sanitizeInspectionEvent (s: Sanitizer, event: InspectionEvent, redactedEvents: WeakSet<object>): InspectionEvent | undefined {
  switch (event.type) {
    case '@xstate.actor':
      return { ...event, actorRef: facade(s, event.actorRef) }
    case '@xstate.event': {
      // A frame answering `"secret?"` is the secret, right or wrong: never shown.
      const state = (event.actorRef.getSnapshot() as { value?: unknown } | undefined)?.value
      if (event.event.type === 'frame' && stateValueMatches(state, /secret/i)) redactedEvents.add(event.event)
      return {
        ...event,
        actorRef: facade(s, event.actorRef),
        sourceRef: event.sourceRef === undefined ? undefined : facade(s, event.sourceRef),
        event: sanitizeEvent(s, event.event, redactedEvents)
      }
    }
    case '@xstate.snapshot':
      return {
        ...event,
        actorRef: facade(s, event.actorRef),
        event: sanitizeEvent(s, event.event, redactedEvents),
        snapshot: sanitizeSnapshot(s, event.snapshot) as unknown as typeof event.snapshot
      }
    default:
      return undefined
  }
}

function sanitizeEvent (s: Sanitizer, e: { type: string }, redactedEvents: WeakSet<object>): { type: string } {
  if (redactedEvents.has(e)) return { type: e.type, value: REDACTED } as { type: string }
  return s.value(e, 0) as { type: string }
}

// ---------------------------------------------------------------------------
// The relay
// ---------------------------------------------------------------------------

function bridgePage (): string {
  // Like @statelyai/inspect/server's page: the hosted inspector in an iframe,
  // fed over postMessage with what arrives on the relay's WebSocket.
  return `<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>VCStudio multiuser · Stately inspector</title>
  <style>* { margin: 0; padding: 0; } html, body { height: 100%; } iframe { width: 100%; height: 100%; border: none; }</style>
</head>
<body>
  <iframe id="inspector" src="${STATELY_INSPECTOR_URL}"></iframe>
  <script>
    const iframe = document.getElementById('inspector');
    const buffer = [];
    let connected = false;
    window.addEventListener('message', (e) => {
      if (e.data && e.data.type === '@statelyai.connected') {
        connected = true;
        for (const event of buffer) iframe.contentWindow.postMessage(event, '*');
        buffer.length = 0;
      }
    });
    const ws = new WebSocket('ws://' + location.host);
    ws.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (connected) iframe.contentWindow.postMessage(data, '*');
      else buffer.push(data);
    };
  </script>
</body>
</html>
`
}

interface Relayed { readonly seq: number, readonly text: string }
interface LiveActor { readonly actor: Relayed, snapshot?: Relayed }

/**
 * Relays every message a client sends to every other client (the protocol of
 * @statelyai/inspect's relay), keeping the recent ones and the live actors
 * for a browser that connects later.
 */
class Relay {
  private seq = 0
  private readonly recent: Relayed[] = []
  private readonly live = new Map<string, LiveActor>()
  private readonly slow = new WeakSet<WebSocket>()

  constructor (private readonly wss: WebSocketServer, private readonly log: ServerLog) {}

  welcome (ws: WebSocket): void {
    const oldest = this.recent[0]?.seq ?? Infinity
    const replay: Relayed[] = []
    for (const a of this.live.values()) {
      if (a.actor.seq < oldest) {
        replay.push(a.actor)
        if (a.snapshot !== undefined && a.snapshot.seq < oldest) replay.push(a.snapshot)
      }
    }
    for (const m of [...replay, ...this.recent]) ws.send(m.text)
  }

  relay (from: WebSocket, text: string): void {
    const m: Relayed = { seq: this.seq++, text }
    this.remember(m)
    for (const client of this.wss.clients) {
      if (client === from || client.readyState !== client.OPEN) continue
      if (client.bufferedAmount > MAX_CLIENT_BUFFER) {
        if (!this.slow.has(client)) this.log.warn('inspector | a browser is too slow, dropping inspection events for it')
        this.slow.add(client)
        continue
      }
      client.send(text)
    }
  }

  private remember (m: Relayed): void {
    this.recent.push(m)
    if (this.recent.length > RECENT_MESSAGES) this.recent.shift()
    let parsed: { type?: unknown, sessionId?: unknown, snapshot?: { status?: unknown } }
    try { parsed = JSON.parse(m.text) } catch { return }
    if (typeof parsed.sessionId !== 'string') return
    if (parsed.type === '@xstate.actor') {
      this.live.set(parsed.sessionId, { actor: m })
      if (this.live.size > MAX_LIVE_ACTORS) this.live.delete(this.live.keys().next().value as string)
    } else if (parsed.type === '@xstate.snapshot') {
      const a = this.live.get(parsed.sessionId)
      if (a === undefined) return
      if (parsed.snapshot?.status !== 'active') this.live.delete(parsed.sessionId)
      else a.snapshot = m
    }
  }
}

/** Only this machine's pages (and non-browser clients) may connect: other sites open in the browser may not. */
function isAllowed (req: IncomingMessage, port: number): boolean {
  const local = new Set([`127.0.0.1:${port}`, `localhost:${port}`])
  if (!local.has(req.headers.host ?? '')) return false // DNS rebinding
  const origin = req.headers.origin
  return origin === undefined || local.has(origin.replace(/^https?:\/\//, ''))
}

/**
 * Starts the inspector relay on 127.0.0.1:`port` (0 picks a free one) and
 * the package's WebSocket inspector feeding it. Never opens a browser.
 */
export async function startInspector (port: number, log: ServerLog): Promise<Inspector> {
  // Loaded only when inspection is on.
  const [{ createWebSocketInspector }, { WebSocketServer }] = await Promise.all([import('@statelyai/inspect'), import('ws')])
  const http = createServer((req, res) => {
    if (!isAllowed(req, actualPort) || (req.url !== '/' && req.url !== '/index.html')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
      return
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(bridgePage())
  })
  let actualPort = port
  const wss = new WebSocketServer({
    server: http,
    maxPayload: 16 * 1024 * 1024,
    verifyClient: ({ req }: { req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string) => void) => {
      const ok = isAllowed(req, actualPort)
      if (ok) done(true)
      else done(false, 403, 'Forbidden')
    }
  })
  const relay = new Relay(wss, log)
  let appConnected: () => void = () => {}
  const appConnection = new Promise<void>((resolve) => { appConnected = resolve })
  wss.on('connection', (ws, req) => {
    log.debug(`inspector | connected | ${req.headers.origin ?? req.headers['user-agent'] ?? 'client'}`)
    if (req.headers.origin === undefined) appConnected()
    ws.on('error', (err) => log.debug(`inspector | socket error | ${err.message}`))
    ws.on('message', (data, isBinary) => { if (!isBinary) relay.relay(ws, data.toString()) })
    relay.welcome(ws)
  })
  // ws re-emits the HTTP server's errors (a taken port): without a listener that would throw.
  wss.on('error', (err) => log.debug(`inspector | ${err.message}`))
  try {
    await listenOrFail(http, port, '127.0.0.1', 'the inspector', 'choose another with --inspect <port>')
  } catch (err) {
    wss.close()
    throw err
  }
  const address = http.address()
  actualPort = typeof address === 'object' && address !== null ? address.port : port
  const url = `http://127.0.0.1:${actualPort}`

  // The package's Node.js client, pointed at our relay. It serializes and
  // sends only what `sanitizeInspectionEvent` made of each event.
  const client = createWebSocketInspector({ url: `ws://127.0.0.1:${actualPort}` })
  const bounded = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref())
  await Promise.race([appConnection, bounded(2_000)])

  const sanitizer = new Sanitizer()
  const redactedEvents = new WeakSet<object>()
  let closed = false
  const inspect = (event: InspectionEvent): void => {
    if (closed) return
    try {
      const clean = sanitizeInspectionEvent(sanitizer, event, redactedEvents)
      if (clean !== undefined) client.inspect.next?.(clean)
    } catch (err) {
      log.debug(`inspector | could not inspect ${event.type} | ${(err as Error).message}`)
    }
  }

  return {
    inspect,
    url,
    close: async () => {
      if (closed) return
      closed = true
      // Let the package's deferred sends (setTimeout 0) go out first.
      await bounded(20)
      // The package retries a socket that errors; it must not be left connecting.
      await Promise.race([appConnection, bounded(1_000)])
      client.stop()
      for (const ws of wss.clients) ws.close(1001, 'server stopping')
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    }
  }
}
