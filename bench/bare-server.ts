/**
 * The floor bench/targets.ts measures the server's turn-taking against: a
 * bare Node server of the protocol (§1, §3, §4, §6) with no actors and no
 * framework, as bench/forwarder.ts is the floor of the relay. One object per
 * connection, a switch on what it expects next; frames split by hand from
 * Buffers; validation with the same pure protocol/ functions the server
 * uses; writes of one read corked together; one turn-hold timer per held pass
 * and one idle sweep for all connections. No relay (a `get` is refused).
 *
 *   node --import tsx bench/bare-server.ts [--port 0] [--turn-hold 250] [--idle-limit 120]
 *
 * Prints `listening on 127.0.0.1:<port>`; exits on SIGTERM/SIGINT.
 */
import { createServer, type Socket } from 'node:net'
import { encodeJson, HEADER_BYTES, KIND_JSON, type JsonValue } from '../protocol/frame.ts'
import {
  parseRequest, validateAnalyticsSubmission, validateAssetsSubmission, validateStorySubmission, validateUsername,
  type AssetIndex, type ChatLine
} from '../protocol/messages.ts'
import { appendChat, INITIAL_ANALYTICS, INITIAL_CHAT, INITIAL_STORY, mergeAnalytics, mergeAssets, mergeStory } from '../actors/shared-state.ts'

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}
const PROJECT = process.argv[2] ?? 'Bench'
const TURN_HOLD_MS = arg('--turn-hold', 250)
const IDLE_LIMIT_MS = arg('--idle-limit', 120) * 1000
const CHAT_LIMIT = 10_000

type Kind = 'users' | 'story' | 'analytics' | 'assets' | 'message' | 'at'
type SyncKind = 'story' | 'assets' | 'analytics'
/** What the connection expects next from its client (or `held`: the server holds its pass). */
type Phase = 'username' | 'project' | 'answer' | 'ack' | 'turn' | 'held' | 'closed'
/** Where a sync exchange returns: the initial sync's next step, the turn, or the delivery. */
type Origin = 'sync' | 'request' | 'notification'

const YOURS = encodeJson('yours')
const USERS = encodeJson('users')
const SYNC_SIGNAL: Record<SyncKind, Uint8Array> = { story: encodeJson('story'), assets: encodeJson('assets'), analytics: encodeJson('analytics') }

let story = INITIAL_STORY
let analytics = INITIAL_ANALYTICS
let assets: AssetIndex = {}
let chat: readonly ChatLine[] = INITIAL_CHAT
let chatFrame: Uint8Array | null = null
const connections = new Set<Conn>()

class Conn {
  readonly id: string
  username = ''
  phase: Phase = 'username'
  sync: SyncKind = 'story'
  origin: Origin = 'sync'
  joined = false
  pending: Kind[] = []
  ats = new Map<string, Uint8Array>()
  deliverable = 0
  heardAt = Date.now()
  hold: NodeJS.Timeout | null = null
  private rest: Buffer | null = null

  constructor (readonly socket: Socket) {
    this.id = `${(socket.remoteAddress ?? '').replace(/^::ffff:/, '')}:${socket.remotePort ?? 0}`
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.read(chunk))
    socket.on('close', () => this.leave())
    socket.on('error', () => {})
    this.send(encodeJson('username?'))
  }

  send (frame: Uint8Array): void { if (this.socket.writable) this.socket.write(frame) }

  private read (chunk: Buffer): void {
    let buf = this.rest === null ? chunk : Buffer.concat([this.rest, chunk])
    this.rest = null
    this.socket.cork()
    try {
      while (buf.byteLength >= HEADER_BYTES && this.phase !== 'closed') {
        const length = buf.readUInt32BE(0)
        if (buf.byteLength < HEADER_BYTES + length) break
        if (buf[4] !== KIND_JSON) { this.fail('protocol', 'only JSON frames here'); return }
        let value: JsonValue
        try {
          value = JSON.parse(buf.toString('utf8', HEADER_BYTES, HEADER_BYTES + length)) as JsonValue
        } catch {
          this.fail('protocol', 'JSON does not parse')
          return
        }
        buf = buf.subarray(HEADER_BYTES + length)
        this.heardAt = Date.now()
        this.frame(value)
      }
      if (buf.byteLength > 0) this.rest = Buffer.from(buf)
    } finally {
      this.socket.uncork()
    }
  }

  private frame (v: JsonValue): void {
    switch (this.phase) {
      case 'username': {
        const u = validateUsername(v)
        if (!u.ok) return this.fail('bad_handshake', u.detail)
        this.username = u.value
        this.phase = 'project'
        return this.send(encodeJson('project?'))
      }
      case 'project':
        if (v !== PROJECT) { this.send(encodeJson('wrong_project')); return this.close() }
        this.joined = true
        return this.startSync('story', 'sync')
      case 'answer': return this.answer(v)
      case 'ack': return this.acked()
      case 'held':
        // §4 rev. 2: a frame during a held pass ends the hold, then is the next request.
        this.endHold()
        this.send(YOURS)
        this.phase = 'turn'
        return this.request(v)
      case 'turn': return this.request(v)
      default:
    }
  }

  private request (v: JsonValue): void {
    const r = parseRequest(v)
    if (!r.ok) { this.send(encodeJson(['error', r.code, r.detail])); return this.send(YOURS) }
    const q = r.value
    switch (q.type) {
      case 'pass':
        if (this.pending.length === 0 && TURN_HOLD_MS > 0) {
          this.phase = 'held'
          this.hold = setTimeout(() => { this.hold = null; this.phase = 'turn'; this.send(YOURS) }, TURN_HOLD_MS)
          return
        }
        this.deliverable = this.pending.length
        return this.deliver()
      case 'story': case 'analytics': case 'assets':
        return this.startSync(q.type, 'request')
      case 'users': {
        const out: Record<string, JsonValue> = {}
        for (const c of connections) if (c.joined) out[c.id] = { username: c.username, camera: [0, 0], at: null }
        this.send(encodeJson(out))
        return this.send(YOURS)
      }
      case 'at': {
        const frame = encodeJson([this.id, 'at', q.path, q.timestamp])
        for (const c of connections) if (c !== this && c.joined) c.notify('at', this.id, frame)
        return this.send(YOURS)
      }
      case 'message':
        chat = appendChat(chat, [this.username, q.text], CHAT_LIMIT)
        chatFrame = null
        this.send(YOURS)
        for (const c of connections) if (c.joined) c.notify('message')
        return
      case 'get':
        this.send(encodeJson(['error', 'no_such_user', 'the bare server does not relay']))
        return this.send(YOURS)
    }
  }

  private startSync (kind: SyncKind, origin: Origin): void {
    this.sync = kind
    this.origin = origin
    this.phase = 'answer'
    this.send(SYNC_SIGNAL[kind])
  }

  private answer (v: JsonValue): void {
    const kind = this.sync
    let changed = false
    if (kind === 'story') {
      const s = validateStorySubmission(v)
      if (!s.ok) return this.refuseAnswer(s.detail)
      const merged = mergeStory(story, s.value, this.id)
      changed = merged !== story
      story = merged
      this.send(encodeJson([story.owner, story.value]))
    } else if (kind === 'analytics') {
      const a = validateAnalyticsSubmission(v)
      if (!a.ok) return this.refuseAnswer(a.detail)
      const merged = mergeAnalytics(analytics, a.value)
      changed = merged !== analytics
      analytics = merged
      this.send(encodeJson(analytics.value))
    } else {
      const a = validateAssetsSubmission(v)
      if (!a.ok) return this.refuseAnswer(a.detail)
      const m = mergeAssets(assets, a.value, this.id)
      changed = m.changed
      assets = m.merged
      this.send(encodeJson(assets))
    }
    if (changed || this.origin === 'request') for (const c of connections) if (c !== this && c.joined) c.notify(kind)
    this.phase = 'ack'
  }

  private refuseAnswer (detail: string): void {
    this.send(encodeJson(['error', 'bad_request', detail]))
    if (this.origin === 'sync') return this.close()
    this.acked()
  }

  private acked (): void {
    if (this.origin === 'sync') {
      if (this.sync === 'story') return this.startSync('assets', 'sync')
      if (this.sync === 'assets') return this.startSync('analytics', 'sync')
      this.phase = 'turn'
      this.send(YOURS)
      for (const c of connections) if (c.joined) c.notify('users')
      return
    }
    if (this.origin === 'request') { this.phase = 'turn'; return this.send(YOURS) }
    this.deliver()
  }

  /** §4: queue a notification, coalesced; a held pass delivers it at once. */
  notify (kind: Kind, from?: string, atFrame?: Uint8Array): void {
    if (kind === 'at' && from !== undefined && atFrame !== undefined) {
      if (!this.ats.has(from)) this.pending.push('at')
      this.ats.set(from, atFrame)
    } else if (!this.pending.includes(kind)) {
      this.pending.push(kind)
    }
    if (this.phase === 'held') {
      this.endHold()
      this.deliverable = this.pending.length
      this.deliver()
    }
  }

  /** Delivers what was pending at the pass, then `"yours"`. */
  private deliver (): void {
    while (this.deliverable > 0) {
      const kind = this.pending.shift() as Kind
      this.deliverable--
      if (kind === 'users') this.send(USERS)
      else if (kind === 'message') this.send(chatFrame ??= encodeJson(['messages', chat]))
      else if (kind === 'at') {
        const [from, frame] = this.ats.entries().next().value as [string, Uint8Array]
        this.ats.delete(from)
        this.send(frame)
      } else return this.startSync(kind, 'notification')
    }
    this.phase = 'turn'
    this.send(YOURS)
  }

  private endHold (): void {
    if (this.hold !== null) clearTimeout(this.hold)
    this.hold = null
  }

  private fail (code: string, detail: string): void {
    this.send(encodeJson(['error', code, detail]))
    this.close()
  }

  close (): void {
    if (this.phase === 'closed') return
    this.phase = 'closed'
    this.endHold()
    this.socket.end()
    setTimeout(() => this.socket.destroy(), 2_000).unref()
  }

  private leave (): void {
    this.phase = 'closed'
    this.endHold()
    if (!connections.delete(this) || !this.joined) return
    const before = Object.keys(assets).length
    assets = Object.fromEntries(Object.entries(assets).filter(([, [owner]]) => owner !== this.id))
    const dropped = Object.keys(assets).length < before
    for (const c of connections) {
      if (!c.joined) continue
      c.notify('users')
      if (dropped) c.notify('assets')
    }
  }
}

/** One sweep for every connection: a client the server waits on for the idle limit is closed. */
setInterval(() => {
  const now = Date.now()
  for (const c of connections) if (c.phase !== 'held' && now - c.heardAt >= IDLE_LIMIT_MS) c.close()
}, 1_000).unref()

const server = createServer({ noDelay: true }, (socket) => { connections.add(new Conn(socket)) })
server.listen(arg('--port', 0), '127.0.0.1', () => {
  const address = server.address()
  console.log(`listening on 127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`)
})
const stop = (): void => {
  server.close()
  for (const c of connections) c.socket.destroy()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
