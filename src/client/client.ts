import { EventEmitter, once } from 'node:events'
import { connect as netConnect, type Socket } from 'node:net'
import { DEFAULT_MAX_FRAME, type JsonValue } from '../../protocol/frame.ts'
import {
  isTimestamp, validateAnalyticsSubmission, validateAssetsSubmission, validateStorySubmission, ZERO_TIMESTAMP,
  type AssetEntry, type AssetIndex, type ChatLine, type JsonObject, type Timestamp, type UserId, type UsersReply
} from '../../protocol/messages.ts'
import { ClientError, RequestError } from './errors.ts'
import { folderPath } from './fs-safety.ts'
import { give, type GiveProgress } from './give.ts'
import { HashCache } from './hash-cache.ts'
import { buildManifest, realFolder } from './manifest.ts'
import { take, type GetProgress, type GetResult } from './take.ts'
import { Channel, errorOf, unexpected } from './wire.ts'

export const DEFAULT_PORT = 64646
export const DEFAULT_HOST = '127.0.0.1'

/**
 * What this client answers when a sync asks for it (§3): the story and the
 * analytics with their timestamps, and the asset index. Absent parts are
 * empty and as old as can be (`"0000/00/00-00:00:00"`), so the server's win.
 */
export interface LocalState {
  story?: [JsonObject, Timestamp]
  assets?: Record<string, AssetEntry>
  analytics?: [JsonValue, Timestamp]
}

export interface ConnectOptions {
  /** Default 127.0.0.1. */
  host?: string
  /** Default 64646. */
  port?: number
  username: string
  project: string
  /** Only if the server asks for one. */
  secret?: string
  /** The local project folder: what `get` writes into and what is served. */
  root: string
  state?: LocalState
  /** Serve `root` when another user asks (default true); false answers every give with `missing` ("not serving"). */
  serve?: boolean
  /**
   * The root's index of hashes (default: one opened on `root`, persisted in
   * `<root>/.vcmu/index.sqlite`, closed with the client). Share one between
   * clients of the same root.
   */
  hashCache?: HashCache
  /**
   * The contract revision the server speaks (default 2). With 1, manifests
   * carry bare hashes (no size, mtime, mode), interrupted files start over,
   * and a missing folder is answered with an empty manifest.
   */
  protocolRevision?: 1 | 2
  /** After a `"users"` notification, ask for the users list on the next turn (default true). */
  autoRefreshUsers?: boolean
  /**
   * Least time between two idle passes, in ms (default 250). The server holds
   * an idle pass for its turn hold anyway; this only matters with a server
   * whose hold is 0, so the client never spins.
   */
  idlePassIntervalMs?: number
  /**
   * Keep the turn while idle instead of passing it (default false): requests
   * then go out at once with no pass in the way at all, but notifications and
   * gives wait until the next request. For short-lived clients that only make
   * requests (the CLI's users, say, at, get): unlike `sendDuringHeldPass`, no
   * news can race their requests. The turn is still passed every 30 s (the
   * server's idle limit is 120 s by default).
   */
  holdTurnWhenIdle?: boolean
  /**
   * Send a request at once when the app makes it during a held pass (the
   * client passed and has received nothing since: the server may hold its
   * `"yours"` for its turn hold), instead of waiting for the end of the hold
   * (§4 rev 2: a frame ends a held pass). Default: true with revision 2,
   * false with 1. See docs/client.md, "Requests during a held pass", for the
   * race with news that needs an answer (a sync, a give) and how the client
   * recovers from it.
   */
  sendDuringHeldPass?: boolean
  /** Connecting plus handshake plus initial sync, in ms (default 10 000). */
  timeoutMs?: number
  /** Largest frame accepted from the server (default 64 MiB). */
  maxFrame?: number
}

export interface GetOptions {
  onProgress?: (p: GetProgress) => void
  /** Move local files the giver does not have into `<root>/.vcmu/trash/<time>/` (never deleted). */
  delete?: boolean
  /** Change nothing: the result's `plan` says what a get would do. */
  dryRun?: boolean
  /** Used in conflict copies' names (default: the giver's user name, else its id). */
  giverName?: string
}

export interface StoryState { readonly owner: UserId, readonly story: JsonObject }
export interface AtEvent { readonly from: UserId, readonly path: string, readonly timestamp: Timestamp }
export interface CloseInfo {
  readonly reason: string
  /** Why the connection ended, when it was not `close()`/`destroy()`. */
  readonly error?: ClientError
}

/** Every event of a Client, with its arguments. */
export interface ClientEvents {
  /** The server says the user list changed (§4 `users` notification). */
  users: []
  /** The users map was refreshed (automatically after `users`, or by `users()`). */
  usersUpdated: [users: UsersReply]
  /** Another user is looking at `path`. */
  at: [at: AtEvent]
  /** The chat changed: the whole history, oldest first. */
  messages: [history: readonly ChatLine[]]
  /** Another user changed the story (the server-started sync is answered and acked already). */
  story: [story: StoryState]
  analytics: [analytics: JsonValue]
  assets: [assets: AssetIndex]
  /** Serving a folder to another user: after the manifest, after each file, at the end. */
  give: [progress: GiveProgress]
  /** Progress of a `get` of this client. */
  getProgress: [progress: GetProgress]
  /** The connection ended; the client is unusable. */
  close: [info: CloseInfo]
}

type EventMapOf<T> = { [K in keyof T]: T[K] extends unknown[] ? T[K] : never }

/**
 * One queued request: its first frame, then the rest of its exchange, read
 * once the server serves it. `early` says whether the frame may go out
 * during a held pass (see `Client.pass`).
 */
interface Job {
  readonly early: boolean
  /** Sends the request's first frame (a failure fails the job too). */
  readonly send: () => void
  /** Reads the rest of the exchange and settles the job; throws only what broke the connection. */
  readonly run: () => Promise<void>
  readonly fail: (err: ClientError) => void
}

/** What a pass ended with: how many notifications came, and the job sent during it, whose reply comes next. */
interface PassOutcome { readonly delivered: number, readonly early: Job | null }

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Connects, runs the handshake and the initial sync from `state`, and
 * returns a client that runs the turn loop by itself (§4).
 */
export async function connect (options: ConnectOptions): Promise<Client> {
  const host = options.host ?? DEFAULT_HOST
  const port = options.port ?? DEFAULT_PORT
  const timeoutMs = options.timeoutMs ?? 10_000
  const socket = netConnect({ host, port })
  socket.setNoDelay(true)
  let timedOut = false
  const timer = setTimeout(() => { timedOut = true; socket.destroy() }, timeoutMs)
  try {
    try {
      await once(socket, 'connect')
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      if (timedOut) throw new ClientError('timeout', `no connection to ${host}:${port} within ${timeoutMs} ms`)
      if (e.code === 'ECONNREFUSED') throw new ClientError('refused', `connection refused by ${host}:${port} (is the server running?)`)
      throw new ClientError('refused', `cannot connect to ${host}:${port}: ${e.message}`)
    }
    const ch = new Channel(socket, options.maxFrame ?? DEFAULT_MAX_FRAME)
    const state: LocalState = { ...options.state }
    const initial = await handshake(ch, options, state).catch((err: unknown) => {
      if (timedOut) throw new ClientError('timeout', `the server at ${host}:${port} did not finish the handshake within ${timeoutMs} ms`)
      throw err
    })
    return new Client(ch, options, state, initial)
  } catch (err) {
    socket.destroy()
    throw err
  } finally {
    clearTimeout(timer)
  }
}

interface Initial { story: StoryState, assets: AssetIndex, analytics: JsonValue }

async function handshake (ch: Channel, o: ConnectOptions, state: LocalState): Promise<Initial> {
  const expect = async (want: string): Promise<JsonValue> => {
    const v = await ch.json()
    if (v === 'wrong_project') throw new ClientError('wrong_project', `the server does not serve project ${JSON.stringify(o.project)}`)
    if (v === 'wrong_secret') {
      throw new ClientError('wrong_secret', o.secret === undefined ? 'the server asks for a secret and none was given' : 'the server refused the secret')
    }
    if (v !== want && want !== '*') throw unexpected(v, JSON.stringify(want))
    return v
  }
  await expect('username?')
  ch.sendJson(o.username)
  await expect('project?')
  ch.sendJson(o.project)
  const next = await expect('*')
  if (next === 'secret?') {
    ch.sendJson(o.secret ?? '')
    await expect('story')
  } else if (next !== 'story') {
    throw unexpected(next, '"story"')
  }
  const story = storyReply(await syncAnswer(ch, 'story', state))
  await expect('assets')
  const assets = assetsReply(await syncAnswer(ch, 'assets', state))
  await expect('analytics')
  const analytics = await syncAnswer(ch, 'analytics', state)
  await expect('yours')
  return { story, assets, analytics }
}

type SyncKind = 'story' | 'assets' | 'analytics'

function submission (kind: SyncKind, state: LocalState): JsonValue {
  if (kind === 'story') return state.story ?? [{}, ZERO_TIMESTAMP]
  if (kind === 'analytics') return state.analytics ?? [{}, ZERO_TIMESTAMP]
  return (state.assets ?? {}) as unknown as JsonValue
}

/** After the server said `kind`: our submission, its merged reply, our ack. An error reply is thrown (no ack is due). */
async function syncAnswer (ch: Channel, kind: SyncKind, state: LocalState): Promise<JsonValue> {
  ch.sendJson(submission(kind, state))
  const reply = await ch.json()
  const e = errorOf(reply)
  if (e !== null) throw new RequestError(e.code, e.detail, kind)
  ch.sendJson('ack')
  return reply
}

function storyReply (v: JsonValue): StoryState {
  if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || !isObject(v[1])) throw unexpected(v, '[owner, story]')
  return { owner: v[0], story: v[1] }
}

function assetsReply (v: JsonValue): AssetIndex {
  if (!isObject(v)) throw unexpected(v, 'the asset index')
  return v as unknown as AssetIndex
}

/**
 * A connected VCStudio client (§3–§5). Requests are queued and sent one per
 * turn, in order; between requests the client passes and handles what the
 * server delivers: notifications become events, server-started syncs are
 * answered from the local state, gives are served from `root`.
 *
 * After a `users` notification the client asks for the users list on its
 * next free turn (unless `autoRefreshUsers: false`) and emits `usersUpdated`;
 * `usersMap` holds the latest list.
 */
export class Client extends EventEmitter<EventMapOf<ClientEvents>> {
  readonly userId: UserId
  readonly username: string
  readonly project: string
  readonly root: string
  readonly hashCache: HashCache
  /** The latest the server said (initial sync, requests, notifications). */
  story: StoryState
  assets: AssetIndex
  analytics: JsonValue
  usersMap: UsersReply = {}
  history: readonly ChatLine[] = []
  /** Resolves once the connection has ended, however it ended. */
  readonly closed: Promise<CloseInfo>

  private readonly ch: Channel
  private readonly state: LocalState
  private readonly serve: boolean
  private readonly autoRefreshUsers: boolean
  private readonly idlePassIntervalMs: number
  private readonly queue: Job[] = []
  private usersStale = false
  /** Sync notifications a request sent during a pass was taken for: caught up on the next free turn. */
  private readonly skippedSyncs: SyncKind[] = []
  private closing = false
  private destroyed = false
  private wakeUp: (() => void) | null = null
  private readonly ownsCache: boolean
  private readonly revision: 1 | 2
  private readonly holdTurnWhenIdle: boolean
  private readonly sendDuringHeldPass: boolean

  constructor (ch: Channel, o: ConnectOptions, state: LocalState, initial: Initial) {
    super()
    this.ch = ch
    this.state = state
    const s = ch.socket
    this.userId = `${(s.localAddress ?? '0.0.0.0').replace(/^::ffff:/, '')}:${s.localPort ?? 0}`
    this.username = o.username
    this.project = o.project
    this.root = o.root
    this.hashCache = o.hashCache ?? new HashCache(o.root)
    this.ownsCache = o.hashCache === undefined
    this.revision = o.protocolRevision ?? 2
    this.holdTurnWhenIdle = o.holdTurnWhenIdle ?? false
    this.sendDuringHeldPass = o.sendDuringHeldPass ?? this.revision >= 2
    this.serve = o.serve ?? true
    this.autoRefreshUsers = o.autoRefreshUsers ?? true
    this.idlePassIntervalMs = o.idlePassIntervalMs ?? 250
    this.story = initial.story
    this.assets = initial.assets
    this.analytics = initial.analytics
    // Start after the caller's `await connect()` went on, so its listeners are in place.
    this.closed = new Promise((resolve) => setImmediate(() => { void this.loop().then(resolve) }))
  }

  /** What this client answers to syncs; `pushStory` and friends update it. */
  get localState (): Readonly<LocalState> {
    return this.state
  }

  /** Replaces parts of the local state without telling the server (the next sync sends them). */
  setLocalState (part: LocalState): void {
    Object.assign(this.state, part)
  }

  // ------------------------------------------------------------ requests (§4)

  /** The connected users; also refreshes `usersMap`. */
  users (): Promise<UsersReply> {
    return this.enqueue(() => 'users', async () => await this.usersReply())
  }

  /** Tells the others this user is looking at `path` (§2 project path). */
  at (path: string, timestamp: Timestamp): Promise<void> {
    return this.enqueue(() => ['at', path, timestamp], async () => await this.simpleReply('at'))
  }

  /** Sends a chat message (everyone, this user too, gets the new history). */
  say (text: string): Promise<void> {
    // ["message", <timestamp>] is also a valid analytics submission: never sent where it could be read as one.
    return this.enqueue(() => ['message', text], async () => await this.simpleReply('message'), !isTimestamp(text))
  }

  /** Makes `story` (as of `timestamp`) the local story and syncs it; resolves with the server's story and its owner. */
  pushStory (story: JsonObject, timestamp: Timestamp): Promise<StoryState> {
    const checked = validateStorySubmission([story, timestamp])
    if (!checked.ok) return Promise.reject(new ClientError(checked.code, checked.detail))
    this.state.story = [story, timestamp]
    return this.enqueue(() => 'story', async () => storyReply(await this.syncReply('story')))
  }

  /** Makes `analytics` (as of `timestamp`) the local analytics and syncs them; resolves with the server's. */
  pushAnalytics (analytics: JsonValue, timestamp: Timestamp): Promise<JsonValue> {
    const checked = validateAnalyticsSubmission([analytics, timestamp])
    if (!checked.ok) return Promise.reject(new ClientError(checked.code, checked.detail))
    this.state.analytics = [analytics, timestamp]
    return this.enqueue(() => 'analytics', async () => await this.syncReply('analytics'))
  }

  /** Merges `assets` into the local asset index and syncs it; resolves with the server's merged index. */
  pushAssets (assets: Record<string, AssetEntry>): Promise<AssetIndex> {
    const merged = { ...this.state.assets, ...assets }
    const checked = validateAssetsSubmission(merged)
    if (!checked.ok) return Promise.reject(new ClientError(checked.code, checked.detail))
    this.state.assets = merged
    return this.enqueue(() => 'assets', async () => assetsReply(await this.syncReply('assets')))
  }

  /**
   * Fetches `folder` of user `userId` into `root/<folder>` (§5): only files
   * whose SHA-256 differs from the local copy are asked for (interrupted ones
   * from where they stopped); each lands through a part file and is renamed
   * into place once the whole file's hash matches, with the giver's mtime and
   * execute bits. A local file edited here is kept as a conflict copy first.
   * Resolves with what was done; a server error (`no_such_folder`,
   * `relay_failed`…) rejects with a GetError carrying the partial result.
   */
  get (userId: UserId, folder: string, options: GetOptions = {}): Promise<GetResult> {
    if (folderPath(this.root, folder) === null) {
      return Promise.reject(new ClientError('bad_path', `folder ${JSON.stringify(folder)} is not a project path inside the root`))
    }
    return this.getAfterIndexing(userId, folder, options)
  }

  /**
   * The local folder is indexed first, outside the turn: on a first get into
   * a large folder that is not indexed yet, hashing it must not happen while
   * the server waits for the getlist (its idle limit would end the connection).
   */
  private async getAfterIndexing (userId: UserId, folder: string, options: GetOptions): Promise<GetResult> {
    let lastReport = 0
    // Once a folder is indexed, the plan finds the few files changed since: no need to walk it twice.
    const where = await realFolder(this.root, folder)
    const key = typeof where === 'string' ? null : this.hashCache.key(where.dirReal)
    if (key === null || !this.hashCache.index.hasUnder(key)) {
      await buildManifest(this.root, folder, this.hashCache, (done, total) => {
        const now = performance.now()
        if (done !== total && now - lastReport < 100) return
        lastReport = now
        const p: GetProgress = { phase: 'checking', giver: userId, folder, filesDone: done, filesTotal: total, bytesDone: 0, bytesTotal: 0 }
        options.onProgress?.(p)
        this.emit('getProgress', p)
      }).catch(() => {})
    }
    // The giver's name goes into conflict copies' names: learn it first if this client does not know it yet.
    let lookUp = false
    const request = (): JsonValue => {
      lookUp = options.giverName === undefined && this.usersMap[userId] === undefined
      return lookUp ? 'users' : ['get', userId, folder]
    }
    return await this.enqueue(request, async () => {
      if (lookUp) {
        await this.usersReply()
        this.ch.sendJson(['get', userId, folder])
      }
      return await take(this.ch, {
        root: this.root,
        giver: userId,
        giverName: options.giverName ?? this.usersMap[userId]?.username,
        folder,
        cache: this.hashCache,
        delete: options.delete,
        dryRun: options.dryRun,
        resume: this.revision >= 2,
        progress: (p) => { options.onProgress?.(p); this.emit('getProgress', p) }
      })
    })
  }

  /** Finishes the requests already queued, then disconnects. */
  async close (): Promise<void> {
    this.closing = true
    this.wake()
    await this.closed
  }

  /** Disconnects at once; queued requests reject with `closed`. */
  destroy (): void {
    this.closing = true
    this.destroyed = true
    this.ch.socket.destroy()
    this.wake()
  }

  // ------------------------------------------------------------ the turn loop

  /**
   * Queues a request: `request` is its first frame (computed when it is
   * sent), `reply` reads the rest of its exchange once the server serves it.
   * `early`: the frame may go out during a held pass (see `pass`).
   */
  private enqueue<T> (request: () => JsonValue, reply: () => Promise<T>, early = true): Promise<T> {
    if (this.closing) return Promise.reject(new ClientError('closed', 'the client is closed'))
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        early,
        send: () => {
          try {
            this.ch.sendJson(request())
          } catch (err) {
            reject(err)
            throw err
          }
        },
        run: async () => {
          try {
            resolve(await reply())
          } catch (err) {
            reject(err)
            // A server error ends with "yours": the turn loop goes on. Anything else broke the connection.
            if (!(err instanceof RequestError)) throw err
          }
        },
        fail: reject
      })
      this.wake()
    })
  }

  private wake (): void {
    const w = this.wakeUp
    this.wakeUp = null
    w?.()
  }

  private async loop (): Promise<CloseInfo> {
    let info: CloseInfo
    try {
      while (!(this.closing && this.queue.length === 0)) {
        const job = this.queue.shift()
        if (job !== undefined) {
          job.send()
          await job.run()
          continue
        }
        if (this.usersStale && !this.closing) {
          this.usersStale = false
          this.ch.sendJson('users')
          await this.usersReply()
          continue
        }
        const skipped = this.skippedSyncs.shift()
        if (skipped !== undefined && !this.closing) {
          await this.catchUpSync(skipped)
          continue
        }
        if (this.holdTurnWhenIdle && !this.closing && await this.idleHoldingTurn()) continue
        const started = performance.now()
        const passed = await this.pass()
        if (passed.early !== null) {
          // The request sent during the pass: the server serves it now, right after its "yours".
          await passed.early.run()
          continue
        }
        const left = this.idlePassIntervalMs - (performance.now() - started)
        if (passed.delivered === 0 && left > 0 && this.queue.length === 0 && !this.closing) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(() => { this.wakeUp = null; resolve() }, left)
            this.wakeUp = () => { clearTimeout(t); resolve() }
          })
        }
      }
      info = { reason: 'closed by the client' }
      await this.endSocket()
    } catch (err) {
      const error = err instanceof ClientError ? err : new ClientError('closed', (err as Error).message)
      info = this.destroyed ? { reason: 'destroyed by the client' } : { reason: error.message, error }
      this.closing = true
      this.ch.socket.destroy()
    }
    const gone = info.error ?? new ClientError('closed', info.reason)
    for (const job of this.queue.splice(0)) job.fail(gone)
    if (this.ownsCache) this.hashCache.close()
    this.emit('close', info)
    return info
  }

  /** Waits, holding the turn, for a request or close (true) or 30 s (false: time to pass). */
  private async idleHoldingTurn (): Promise<boolean> {
    if (this.queue.length > 0) return true
    return await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => { this.wakeUp = null; resolve(false) }, 30_000)
      this.wakeUp = () => { clearTimeout(t); resolve(true) }
    })
  }

  private async endSocket (): Promise<void> {
    const s = this.ch.socket
    if (s.destroyed) return
    const closed = once(s, 'close').catch(() => {})
    s.end()
    const t = setTimeout(() => s.destroy(), 2_000)
    await closed
    clearTimeout(t)
  }

  /**
   * Passes the turn; handles what the server delivers until `"yours"`.
   *
   * A held pass (nothing received since the pass) is where the server may
   * hold its `"yours"` for its turn hold. A request the app makes then is
   * sent at once (§4 rev 2: a frame ends a held pass; the server answers
   * `"yours"`, then serves it), and its reply is read after this pass's
   * `"yours"`. Only one such request is in flight.
   *
   * The server reads frames in order, each as what it expects next: if news
   * that needs an answer (a sync, a give) reached the server just before the
   * early frame, that frame is taken as the answer. The client sees it from
   * the order (the exchange's prompt arrives before `"yours"`), does not
   * answer again, reads the server's verdict, and recovers: the request is
   * sent again on the next turn, the skipped sync is caught up by a sync
   * request of its own. See docs/client.md, "Requests during a held pass".
   */
  private async pass (): Promise<PassOutcome> {
    this.ch.sendJson('yours')
    let delivered = 0
    let next = this.ch.json()
    let early: Job | null = null
    if (this.sendDuringHeldPass) {
      const held = await this.whilePassIsHeld(next)
      if (held === 'closing') {
        next.catch(() => {})
        return { delivered, early: null }
      }
      early = held
    }
    while (true) {
      const v = await next
      if (v === 'yours') return { delivered, early }
      delivered++
      if (v === 'users') {
        if (this.autoRefreshUsers) this.usersStale = true
        this.emit('users')
      } else if (v === 'story' || v === 'assets' || v === 'analytics') {
        if (early === null) await this.notifiedSync(v)
        else await this.earlyFrameTakenAsSubmission(v, early)
        early = null
      } else if (Array.isArray(v) && v.length === 2 && v[0] === 'messages' && Array.isArray(v[1])) {
        this.history = v[1] as unknown as ChatLine[]
        this.emit('messages', this.history)
      } else if (Array.isArray(v) && v.length === 4 && v[1] === 'at' && typeof v[0] === 'string' && typeof v[2] === 'string' && typeof v[3] === 'string') {
        this.emit('at', { from: v[0], path: v[2], timestamp: v[3] })
      } else if (Array.isArray(v) && v.length === 2 && v[0] === 'give' && typeof v[1] === 'string') {
        if (early === null) await give(this.ch, { root: this.root, folder: v[1], cache: this.hashCache, serve: this.serve, revision: this.revision }, (p) => this.emit('give', p))
        else await this.earlyFrameTakenAsGiveAnswer(v[1], early)
        early = null
      } else {
        throw unexpected(v, 'a notification or "yours"')
      }
      next = this.ch.json()
    }
  }

  /**
   * While nothing has come since the pass: sends the first queued request at
   * once (the job, whose reply comes after the pass), or gives up the pass
   * when the client closes with nothing queued ('closing'). Null once
   * something arrives, or when the next request may not go out early.
   */
  private async whilePassIsHeld (reading: Promise<JsonValue>): Promise<Job | 'closing' | null> {
    while (true) {
      const job = this.queue[0]
      if (job !== undefined) {
        if (!job.early) return null
        this.queue.shift()
        job.send()
        return job
      }
      if (this.closing && !this.destroyed) return 'closing'
      const woken = await new Promise<boolean>((resolve) => {
        this.wakeUp = () => resolve(true)
        reading.then(() => resolve(false), () => resolve(false))
      })
      if (!woken) {
        this.wakeUp = null
        return null
      }
    }
  }

  /**
   * A sync prompt came after a request was sent during the pass: the server
   * read that request as this sync's submission. No request is a valid
   * submission (say() keeps a timestamp-like text out), so it refuses it and
   * the sync is skipped; the request goes back to the head of the queue.
   */
  private async earlyFrameTakenAsSubmission (kind: SyncKind, early: Job): Promise<void> {
    this.queue.unshift(early)
    const verdict = await this.ch.json()
    if (errorOf(verdict) === null) {
      throw new ClientError('bad_reply', `the server took a request sent during a held pass as its ${kind} submission, and did not refuse it: ${JSON.stringify(verdict).slice(0, 120)}`)
    }
    if (!this.skippedSyncs.includes(kind)) this.skippedSyncs.push(kind)
  }

  /**
   * A give came after a request was sent during the pass: the server reads
   * that request as this client's answer to the give. A server that refuses
   * it and goes on (an error other than `protocol`) only delays the give;
   * one that treats it as a bad manifest closes the connection (§5).
   */
  private async earlyFrameTakenAsGiveAnswer (folder: string, early: Job): Promise<void> {
    this.queue.unshift(early)
    const verdict = await this.ch.json()
    const e = errorOf(verdict)
    if (e !== null && e.code !== 'protocol') return
    throw new ClientError(e === null ? 'bad_reply' : 'protocol',
      `the server took a request sent during a held pass as the answer to ["give", ${JSON.stringify(folder)}]` +
      (e === null ? '' : ` and closed the connection: ${e.detail}`))
  }

  /** A sync the server started on a pass: answered from the local state; a refusal only skips it. */
  private async notifiedSync (kind: SyncKind): Promise<void> {
    let reply: JsonValue
    try {
      reply = await syncAnswer(this.ch, kind, this.state)
    } catch (err) {
      if (err instanceof RequestError) return
      throw err
    }
    this.syncedFromOthers(kind, reply)
  }

  /** A sync notification skipped on a pass, made up for by a sync request: the same exchange, started by this client. */
  private async catchUpSync (kind: SyncKind): Promise<void> {
    this.ch.sendJson(kind)
    let reply: JsonValue
    try {
      reply = await this.syncReply(kind)
    } catch (err) {
      if (err instanceof RequestError) return
      throw err
    }
    this.syncedFromOthers(kind, reply)
  }

  private syncedFromOthers (kind: SyncKind, reply: JsonValue): void {
    if (kind === 'story') {
      this.story = storyReply(reply)
      this.emit('story', this.story)
    } else if (kind === 'assets') {
      this.assets = assetsReply(reply)
      this.emit('assets', this.assets)
    } else {
      this.analytics = reply
      this.emit('analytics', reply)
    }
  }

  /** The exchange of a sync request, once `kind` was sent. */
  private async syncReply (kind: SyncKind): Promise<JsonValue> {
    const prompt = await this.ch.json()
    const e = errorOf(prompt)
    if (e !== null) {
      await this.ch.yours('an error')
      throw new RequestError(e.code, e.detail, kind)
    }
    if (prompt !== kind) throw unexpected(prompt, JSON.stringify(kind))
    let reply: JsonValue
    try {
      reply = await syncAnswer(this.ch, kind, this.state)
    } catch (err) {
      if (err instanceof RequestError) await this.ch.yours('an error')
      throw err
    }
    await this.ch.yours(kind)
    if (kind === 'story') this.story = storyReply(reply)
    else if (kind === 'assets') this.assets = assetsReply(reply)
    else this.analytics = reply
    return reply
  }

  /** The reply to `"users"`, once it was sent. */
  private async usersReply (): Promise<UsersReply> {
    const v = await this.ch.json()
    const e = errorOf(v)
    if (e !== null) {
      await this.ch.yours('an error')
      throw new RequestError(e.code, e.detail, 'users')
    }
    if (!isObject(v)) throw unexpected(v, 'the users list')
    await this.ch.yours('users')
    this.usersMap = v as unknown as UsersReply
    this.emit('usersUpdated', this.usersMap)
    return this.usersMap
  }

  /** The reply to a request whose only answer is `"yours"` (or an error, then `"yours"`), once it was sent. */
  private async simpleReply (name: string): Promise<void> {
    const v = await this.ch.json()
    if (v === 'yours') return
    const e = errorOf(v)
    if (e === null) throw unexpected(v, '"yours"')
    await this.ch.yours('an error')
    throw new RequestError(e.code, e.detail, name)
  }
}

export type { GiveProgress, GetProgress, GetResult }
