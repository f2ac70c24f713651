import { assign, emit, enqueueActions, setup, stopChild, type ActorRefFrom, type AnyActorRef, type DoneActorEvent } from 'xstate'
import type { JsonValue } from '../protocol/frame.ts'
import type { ErrorCode } from '../protocol/errors.ts'
import type {
  AnalyticsSubmission, AssetIndex, ChatLine, Camera, JsonObject, StorySubmission,
  Timestamp, UserId, UsersReply
} from '../protocol/messages.ts'
import type { Notification } from './notifications.ts'
import type { FramePort } from './ports.ts'
import {
  appendChat, capChat, DEFAULT_CHAT_BYTES, dropAssetsOf, INITIAL_ANALYTICS, INITIAL_CHAT, INITIAL_STORY, mergeAnalytics, mergeAssets,
  mergeStory, wouldDeadlock, type AnalyticsState, type StoryState
} from './shared-state.ts'
import { giverMachine, type RelayOutcome } from './giver.ts'
import { takerMachine } from './taker.ts'

/** Where a sync exchange came from: it decides who else hears of a change. */
export type ExchangeOrigin = 'sync' | 'request' | 'notification'

export interface UserRecord {
  readonly username: string
  readonly camera: Camera
  readonly at: readonly [string, Timestamp] | null
  readonly session: AnyActorRef
  readonly port: FramePort
}

export interface RelayRecord {
  readonly id: number
  readonly taker: UserId
  readonly giver: UserId
  readonly folder: string
  readonly started: boolean
  readonly giverActor: ActorRefFrom<typeof giverMachine>
  readonly takerActor: ActorRefFrom<typeof takerMachine>
}

/** What survives a restart (issue: persistence). */
export interface DurableState {
  readonly story: StoryState
  readonly analytics: AnalyticsState
  readonly chat: readonly ChatLine[]
}

export interface CoordinatorInput {
  readonly chatLimit: number
  /** §4: the history's cap in bytes of JSON (default 1 MiB). */
  readonly chatBytes?: number
  /**
   * §8 acknowledged means durable: a change's acknowledgement (the merged
   * story/analytics reply, `message.stored`) waits for `durable.committed`
   * of its change number. False (no persistence): it goes out at once.
   */
  readonly awaitCommit?: boolean
  readonly relayTimeoutMs: number
  /** §4 idle limit, applied by relays to the side they wait on (default: the giver machine's). */
  readonly idleLimitMs?: number
  readonly restored?: DurableState
}

/** An acknowledgement held until its change is on disk. */
export interface HeldAcknowledgement {
  readonly version: number
  readonly userId: UserId
  readonly reply: CoordinatorReply
}

export interface CoordinatorContext extends DurableState {
  readonly chatLimit: number
  readonly chatBytes: number
  readonly awaitCommit: boolean
  /** Number of the last change of story, analytics or chat (the store's `version`). */
  readonly changeVersion: number
  /** Acknowledgements waiting for their change to be committed, oldest first. */
  readonly held: readonly HeldAcknowledgement[]
  readonly relayTimeoutMs: number
  readonly idleLimitMs?: number
  readonly users: ReadonlyMap<UserId, UserRecord>
  readonly assets: AssetIndex
  readonly relays: ReadonlyMap<number, RelayRecord>
  readonly nextRelayId: number
}

export type CoordinatorEvent =
  | { type: 'user.join', userId: UserId, username: string, session: AnyActorRef, port: FramePort }
  | { type: 'user.synced', userId: UserId }
  | { type: 'user.leave', userId: UserId }
  | { type: 'story.submit', userId: UserId, submission: StorySubmission, origin: ExchangeOrigin }
  | { type: 'analytics.submit', userId: UserId, submission: AnalyticsSubmission, origin: ExchangeOrigin }
  | { type: 'assets.submit', userId: UserId, submission: AssetIndex, origin: ExchangeOrigin }
  | { type: 'users.request', userId: UserId }
  | { type: 'at.report', userId: UserId, path: string, timestamp: Timestamp }
  | { type: 'message.say', userId: UserId, text: string }
  | { type: 'relay.request', userId: UserId, giver: UserId, folder: string }
  | { type: 'serve.begin', userId: UserId, relayId: number }
  /** The giver answered `give` with a request sent out of turn (§4): the serve goes back to its pending notifications. */
  | { type: 'serve.deferred', relayId: number, detail: string }
  /** The user holds its turn (or left it) while a serve is pending for it: the relay timeout clock of those relays. */
  | { type: 'turn.held', userId: UserId }
  | { type: 'turn.released', userId: UserId }
  | { type: 'relay.timedOut', relayId: number }
  | { type: 'relay.finished', relayId: number, outcome: RelayOutcome }
  /** From the store: every change numbered `version` or less is on disk. */
  | { type: 'durable.committed', version: number }
  | DoneActorEvent<unknown, string>

/** What the coordinator sends a session. */
export type CoordinatorReply =
  | { type: 'notify', notification: Notification }
  | { type: 'story.current', owner: UserId, story: JsonObject }
  | { type: 'analytics.current', analytics: JsonValue }
  | { type: 'assets.current', assets: AssetIndex }
  | { type: 'users.current', users: UsersReply }
  /** The chat line of a `message` request is stored (on disk, with persistence on). */
  | { type: 'message.stored' }
  | { type: 'relay.accepted', relayId: number }
  | { type: 'relay.refused', code: ErrorCode, detail: string }
  | { type: 'relay.ended', error?: { code: ErrorCode, detail: string }, violation?: string }
  | { type: 'serve.withdraw', relayId: number }
  | { type: 'serve.ended', violation?: string }
  /**
   * The giver's request came where its answer to `give` was due: it is refused
   * with `detail`, and `serve` (absent when the relay ended meanwhile) is
   * pending again, first.
   */
  | { type: 'serve.returned', detail: string, serve?: Notification }

type Ctx = CoordinatorContext

const waitsOn = (relays: ReadonlyMap<number, RelayRecord>): Map<UserId, UserId> =>
  new Map([...relays.values()].map((r) => [r.taker, r.giver]))

function usersReply (users: ReadonlyMap<UserId, UserRecord>): UsersReply {
  const out: Record<UserId, UsersReply[string]> = {}
  for (const [id, u] of users) out[id] = { username: u.username, camera: u.camera, at: u.at }
  return out
}

/** The part of an action's `enqueue` that acknowledge uses. */
interface ChangeEnqueuer {
  assign: (values: Partial<CoordinatorContext>) => void
  emit: (event: CoordinatorEmitted) => void
  sendTo: (to: AnyActorRef, event: CoordinatorReply) => void
}

/**
 * Sends `reply` to the user who submitted; when the submission made `change`
 * to the durable state, records it first (assigns it, tells the store) and
 * (§8) holds the reply until the change is committed, if the store is durable.
 */
function acknowledge (context: CoordinatorContext, enqueue: ChangeEnqueuer, userId: UserId, reply: CoordinatorReply, change?: DurableState): void {
  const user = context.users.get(userId)
  let holdUntil: number | undefined
  if (change !== undefined) {
    const version = context.changeVersion + 1
    enqueue.assign({ ...change, changeVersion: version })
    enqueue.emit({ type: 'durableStateChanged', state: change, version })
    if (context.awaitCommit) holdUntil = version
  }
  if (user === undefined) return
  if (holdUntil === undefined) enqueue.sendTo(user.session, reply)
  else enqueue.assign({ held: [...context.held, { version: holdUntil, userId, reply }] })
}

/** What the coordinator tells the world outside the actors (subscribe with `actor.on`). */
export type CoordinatorEmitted =
  /** A human log line, as the original server printed them. */
  | { type: 'log', line: string }
  /** Story, analytics or chat changed (change number `version`): a store saves them, then sends `durable.committed`. */
  | { type: 'durableStateChanged', state: DurableState, version: number }
  /** A relay is over (the status page and metrics): how, and what went through. */
  | { type: 'relayEnded', relay: EndedRelay }

export interface EndedRelay {
  readonly id: number
  readonly folder: string
  readonly giver: UserId
  readonly taker: UserId
  /** `ok`/`failed`: it ran; `timeout`: the giver did not start in time; `withdrawn`: one side left before it started. */
  readonly outcome: 'ok' | 'failed' | 'timeout' | 'withdrawn'
  readonly files: number
  readonly bytes: number
  readonly durationMs: number
  readonly failure?: string
}

const endedUnstarted = (r: RelayRecord, outcome: 'timeout' | 'withdrawn'): CoordinatorEmitted =>
  ({ type: 'relayEnded', relay: { id: r.id, folder: r.folder, giver: r.giver, taker: r.taker, outcome, files: 0, bytes: 0, durationMs: 0 } })

export const coordinatorMachine = setup({
  types: {
    context: {} as CoordinatorContext,
    events: {} as CoordinatorEvent,
    input: {} as CoordinatorInput,
    emitted: {} as CoordinatorEmitted
  },
  actors: { giver: giverMachine, taker: takerMachine },
  guards: {
    isKnownUser: ({ context, event }) => 'userId' in event && context.users.has(event.userId)
  },
  actions: {

    addUser: assign({
      users: ({ context, event }) => {
        if (event.type !== 'user.join') return context.users
        const users = new Map(context.users)
        users.set(event.userId, { username: event.username, camera: [0, 0], at: null, session: event.session, port: event.port })
        return users
      }
    }),
    removeUser: assign(({ context, event }) => {
      if (event.type !== 'user.leave') return {}
      const users = new Map(context.users)
      users.delete(event.userId)
      return { users, assets: dropAssetsOf(context.assets, event.userId).assets }
    }),
    notifyEveryoneOfUsers: enqueueActions(({ context, enqueue }) => {
      for (const u of context.users.values()) enqueue.sendTo(u.session, { type: 'notify', notification: { kind: 'users' } })
    }),
    /** §6: `users` to everyone left, and `assets` only when the leaver's entries were dropped. Runs before removeUser. */
    notifyOthersOfLeaving: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'user.leave') return
      const assetsDropped = dropAssetsOf(context.assets, event.userId).changed
      for (const [id, u] of context.users) {
        if (id === event.userId) continue
        enqueue.sendTo(u.session, { type: 'notify', notification: { kind: 'users' } })
        if (assetsDropped) enqueue.sendTo(u.session, { type: 'notify', notification: { kind: 'assets' } })
      }
    }),
    endRelaysOfLeaver: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'user.leave') return
      for (const r of context.relays.values()) {
        if (r.giver === event.userId) {
          enqueue.sendTo(r.takerActor, { type: 'giver.left' })
          enqueue.sendTo(r.giverActor, { type: 'giver.left' })
        }
        if (r.taker === event.userId) {
          enqueue.sendTo(r.giverActor, { type: 'taker.left' })
          enqueue.sendTo(r.takerActor, { type: 'taker.left' })
          if (!r.started) {
            const giver = context.users.get(r.giver)
            if (giver !== undefined) enqueue.sendTo(giver.session, { type: 'serve.withdraw', relayId: r.id })
          }
        }
        if (!r.started && (r.giver === event.userId || r.taker === event.userId)) enqueue.emit(endedUnstarted(r, 'withdrawn'))
      }
    }),
    forgetUnstartedRelaysOfLeaver: assign({
      relays: ({ context, event }) => {
        if (event.type !== 'user.leave') return context.relays
        return new Map([...context.relays].filter(([, r]) => r.started || (r.taker !== event.userId && r.giver !== event.userId)))
      }
    }),

    mergeSubmittedStory: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'story.submit') return
      const story = mergeStory(context.story, event.submission, event.userId)
      const user = context.users.get(event.userId)
      const camera = event.submission.camera
      enqueue.assign({
        users: user !== undefined && camera !== undefined
          ? new Map(context.users).set(event.userId, { ...user, camera })
          : context.users
      })
      const reply: CoordinatorReply = { type: 'story.current', owner: story.owner, story: story.value }
      const changed = story !== context.story
      acknowledge(context, enqueue, event.userId, reply, changed ? { story, analytics: context.analytics, chat: context.chat } : undefined)
      if (changed || event.origin === 'request') {
        for (const [id, u] of context.users) {
          if (id !== event.userId) enqueue.sendTo(u.session, { type: 'notify', notification: { kind: 'story' } })
        }
      }
    }),
    mergeSubmittedAnalytics: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'analytics.submit') return
      const analytics = mergeAnalytics(context.analytics, event.submission)
      const reply: CoordinatorReply = { type: 'analytics.current', analytics: analytics.value }
      const changed = analytics !== context.analytics
      acknowledge(context, enqueue, event.userId, reply, changed ? { story: context.story, analytics, chat: context.chat } : undefined)
      if (changed || event.origin === 'request') {
        for (const [id, u] of context.users) {
          if (id !== event.userId) enqueue.sendTo(u.session, { type: 'notify', notification: { kind: 'analytics' } })
        }
      }
    }),
    mergeSubmittedAssets: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'assets.submit') return
      const { merged, changed } = mergeAssets(context.assets, event.submission, event.userId)
      enqueue.assign({ assets: merged })
      const user = context.users.get(event.userId)
      if (user !== undefined) enqueue.sendTo(user.session, { type: 'assets.current', assets: merged })
      if (changed || event.origin === 'request') {
        for (const [id, u] of context.users) {
          if (id !== event.userId) enqueue.sendTo(u.session, { type: 'notify', notification: { kind: 'assets' } })
        }
      }
    }),
    replyUsers: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'users.request') return
      const user = context.users.get(event.userId)
      if (user !== undefined) enqueue.sendTo(user.session, { type: 'users.current', users: usersReply(context.users) })
    }),
    recordAt: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'at.report') return
      const user = context.users.get(event.userId)
      if (user === undefined) return
      enqueue.assign({ users: new Map(context.users).set(event.userId, { ...user, at: [event.path, event.timestamp] }) })
      enqueue.emit({ type: 'log', line: `${event.userId} | at | ${event.path} | time | ${event.timestamp}` })
      const notification: Notification = { kind: 'at', from: event.userId, path: event.path, timestamp: event.timestamp }
      for (const [id, u] of context.users) if (id !== event.userId) enqueue.sendTo(u.session, { type: 'notify', notification })
    }),
    appendMessage: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'message.say') return
      const user = context.users.get(event.userId)
      if (user === undefined) return
      const chat = appendChat(context.chat, [user.username, event.text], context.chatLimit, context.chatBytes)
      acknowledge(context, enqueue, event.userId, { type: 'message.stored' }, { story: context.story, analytics: context.analytics, chat })
      const notification: Notification = { kind: 'message', history: chat }
      for (const u of context.users.values()) enqueue.sendTo(u.session, { type: 'notify', notification })
    }),
    releaseCommittedAcknowledgements: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'durable.committed') return
      const due = context.held.filter((h) => h.version <= event.version)
      if (due.length === 0) return
      enqueue.assign({ held: context.held.filter((h) => h.version > event.version) })
      for (const h of due) {
        const user = context.users.get(h.userId)
        if (user !== undefined) enqueue.sendTo(user.session, h.reply)
      }
    }),

    decideRelay: enqueueActions(({ context, event, enqueue, self }) => {
      if (event.type !== 'relay.request') return
      const taker = context.users.get(event.userId)
      if (taker === undefined) return
      const giver = context.users.get(event.giver)
      const refuse = (code: ErrorCode, detail: string): void => enqueue.sendTo(taker.session, { type: 'relay.refused', code, detail })
      if (giver === undefined) return refuse('no_such_user', `${event.giver} is not connected`)
      if (event.giver === event.userId) return refuse('no_such_user', 'you cannot get a folder from yourself')
      if (wouldDeadlock(waitsOn(context.relays), event.userId, event.giver)) {
        return refuse('would_deadlock', `${event.giver} is waiting, directly or through a chain, on a relay from you`)
      }
      const id = context.nextRelayId
      enqueue.assign(({ spawn }) => {
        const takerActor = spawn('taker', {
          id: `relay-${id}-taker`,
          input: { relayId: id, taker: taker.session, coordinator: self, relayTimeoutMs: context.relayTimeoutMs }
        })
        const giverActor = spawn('giver', {
          id: `relay-${id}-giver`,
          input: {
            relayId: id, folder: event.folder, giver: giver.session, taker: taker.session,
            giverPort: giver.port, takerPort: taker.port, takerActor, coordinator: self, idleLimitMs: context.idleLimitMs
          }
        })
        const relays = new Map(context.relays)
        relays.set(id, { id, taker: event.userId, giver: event.giver, folder: event.folder, started: false, giverActor, takerActor })
        return { relays, nextRelayId: id + 1 }
      })
      enqueue.sendTo(taker.session, { type: 'relay.accepted', relayId: id })
      enqueue.sendTo(giver.session, { type: 'notify', notification: { kind: 'serve', relayId: id, folder: event.folder, taker: event.userId } })
    }),
    startRelay: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'serve.begin') return
      const relay = context.relays.get(event.relayId)
      if (relay === undefined || relay.started) {
        // Withdrawn meanwhile (timeout, taker gone): the giver's pass goes on.
        const giver = context.users.get(event.userId)
        if (giver !== undefined) enqueue.sendTo(giver.session, { type: 'serve.ended' })
        return
      }
      enqueue.assign({ relays: new Map(context.relays).set(relay.id, { ...relay, started: true }) })
      enqueue.emit({ type: 'log', line: `serving | ${relay.folder} | from | ${relay.giver} | to | ${relay.taker}` })
      enqueue.sendTo(relay.takerActor, { type: 'giver.started' })
      enqueue.sendTo(relay.giverActor, { type: 'giver.turn' })
    }),
    /**
     * §4 vs §5: the giver answered `give` with a request sent out of turn. The
     * relay is not started any more: its serve goes back to the head of the
     * giver's pending notifications and the taker waits on (its relay timeout
     * clock goes on from where it was). A side that left meanwhile (its leave
     * found the relay started) ends it as before a start.
     */
    deferStartedRelay: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'serve.deferred') return
      const relay = context.relays.get(event.relayId)
      if (relay === undefined) return
      const giver = context.users.get(relay.giver)
      const bothHere = giver !== undefined && context.users.has(relay.taker)
      const relays = new Map(context.relays)
      enqueue.sendTo(relay.takerActor, { type: 'giver.deferred' })
      if (giver !== undefined) {
        const serve: Notification = { kind: 'serve', relayId: relay.id, folder: relay.folder, taker: relay.taker }
        enqueue.sendTo(giver.session, { type: 'serve.returned', detail: event.detail, serve: bothHere ? serve : undefined })
      }
      const what = `${relay.folder} | from | ${relay.giver} | to | ${relay.taker}`
      if (bothHere) {
        enqueue.assign({ relays: relays.set(relay.id, { ...relay, started: false }) })
        enqueue.emit({ type: 'log', line: `give deferred | ${what} | a request came where the answer to give was due` })
        return
      }
      relays.delete(relay.id)
      enqueue.assign({ relays })
      const left = giver === undefined ? 'giver.left' : 'taker.left'
      enqueue.sendTo(relay.takerActor, { type: left })
      enqueue.sendTo(relay.giverActor, { type: left })
      enqueue.emit(endedUnstarted(relay, 'withdrawn'))
    }),
    tellWaitingTakersGiverHoldsTurn: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'turn.held') return
      for (const r of context.relays.values()) {
        if (r.giver === event.userId && !r.started) enqueue.sendTo(r.takerActor, { type: 'giver.holdsTurn' })
      }
    }),
    tellWaitingTakersGiverBusy: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'turn.released') return
      for (const r of context.relays.values()) {
        if (r.giver === event.userId && !r.started) enqueue.sendTo(r.takerActor, { type: 'giver.busy' })
      }
    }),
    withdrawTimedOutRelay: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'relay.timedOut') return
      const relay = context.relays.get(event.relayId)
      if (relay === undefined || relay.started) return
      const relays = new Map(context.relays)
      relays.delete(relay.id)
      enqueue.assign({ relays })
      const giver = context.users.get(relay.giver)
      if (giver !== undefined) enqueue.sendTo(giver.session, { type: 'serve.withdraw', relayId: relay.id })
      enqueue.sendTo(relay.takerActor, { type: 'relay.withdrawn' })
      enqueue.sendTo(relay.giverActor, { type: 'relay.withdrawn' })
      enqueue.emit({ type: 'log', line: `relay timeout | ${relay.folder} | from | ${relay.giver} | to | ${relay.taker}` })
      enqueue.emit(endedUnstarted(relay, 'timeout'))
    }),
    stopFinishedRelayActor: stopChild(({ event }) => ('actorId' in event ? event.actorId : '')),
    forgetFinishedRelay: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'relay.finished') return
      const relay = context.relays.get(event.relayId)
      if (relay === undefined) return
      const relays = new Map(context.relays)
      relays.delete(relay.id)
      enqueue.assign({ relays })
      const o = event.outcome
      const what = `${relay.folder} | from | ${relay.giver} | to | ${relay.taker}`
      enqueue.emit({
        type: 'log',
        line: o.failure === undefined
          ? `served | ${what} | files | ${o.files} | bytes | ${o.bytes} | seconds | ${(o.durationMs / 1000).toFixed(2)}`
          : `relay failed | ${what} | ${o.failure}`
      })
      enqueue.emit({
        type: 'relayEnded',
        relay: {
          id: relay.id, folder: relay.folder, giver: relay.giver, taker: relay.taker, outcome: o.failure === undefined ? 'ok' : 'failed',
          files: o.files, bytes: o.bytes, durationMs: o.durationMs, failure: o.failure
        }
      })
    })
  }
}).createMachine({
  id: 'coordinator',
  context: ({ input }) => ({
    chatLimit: input.chatLimit,
    chatBytes: input.chatBytes ?? DEFAULT_CHAT_BYTES,
    awaitCommit: input.awaitCommit ?? false,
    changeVersion: 0,
    held: [],
    relayTimeoutMs: input.relayTimeoutMs,
    idleLimitMs: input.idleLimitMs,
    story: input.restored?.story ?? INITIAL_STORY,
    analytics: input.restored?.analytics ?? INITIAL_ANALYTICS,
    chat: capChat(input.restored?.chat ?? INITIAL_CHAT, input.chatLimit, input.chatBytes ?? DEFAULT_CHAT_BYTES),
    users: new Map(),
    assets: {},
    relays: new Map(),
    nextRelayId: 1
  }),
  initial: 'running',
  states: {
    running: {
      on: {
        'user.join': {
          actions: ['addUser', emit(({ event }) => ({ type: 'log' as const, line: `${event.username} | connected | ${event.userId}` }))]
        },
        'user.synced': { actions: 'notifyEveryoneOfUsers' },
        'user.leave': { guard: 'isKnownUser', actions: ['endRelaysOfLeaver', 'forgetUnstartedRelaysOfLeaver', 'notifyOthersOfLeaving', 'removeUser'] },
        'story.submit': { actions: 'mergeSubmittedStory' },
        'analytics.submit': { actions: 'mergeSubmittedAnalytics' },
        'assets.submit': { actions: 'mergeSubmittedAssets' },
        'users.request': { actions: 'replyUsers' },
        'at.report': { actions: 'recordAt' },
        'message.say': { actions: 'appendMessage' },
        'durable.committed': { actions: 'releaseCommittedAcknowledgements' },
        'relay.request': { actions: 'decideRelay' },
        'serve.begin': { actions: 'startRelay' },
        'serve.deferred': { actions: 'deferStartedRelay' },
        'turn.held': { actions: 'tellWaitingTakersGiverHoldsTurn' },
        'turn.released': { actions: 'tellWaitingTakersGiverBusy' },
        'relay.timedOut': { actions: 'withdrawTimedOutRelay' },
        'relay.finished': { actions: 'forgetFinishedRelay' },
        // A relay actor reached its final state: remove it, or every relay would leave two behind.
        'xstate.done.actor.*': { actions: 'stopFinishedRelayActor' }
      }
    }
  }
})

export type CoordinatorRef = ActorRefFrom<typeof coordinatorMachine>
