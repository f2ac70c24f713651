import { assign, emit, enqueueActions, sendTo, setup, type ActorRefFrom, type AnyActorRef } from 'xstate'
import type { JsonValue } from '../protocol/frame.ts'
import { errorMessage, type ErrorCode } from '../protocol/errors.ts'
import {
  parseRequest, validateAnalyticsSubmission, validateAssetsSubmission, validateHandshakeString,
  validateStorySubmission, validateUsername, type AnalyticsSubmission, type AssetIndex, type Request, type RequestType,
  type ServerSignal, type StorySubmission, type UserId
} from '../protocol/messages.ts'
import type { CoordinatorReply, ExchangeOrigin } from './coordinator.ts'
import { enqueueNotification, withdrawServe, type Notification, type NotificationKind } from './notifications.ts'
import type { FramePort } from './ports.ts'
import { SessionClock, sessionClock, type SessionClockEvent } from './session-clock.ts'

/**
 * Tag of the states that take the client's next frame (§4: frames are read
 * in order, each as what the server expects next). The connection hands the
 * session a frame only in such a state; meanwhile it waits in TCP.
 */
export const READS_FRAME = 'readsFrame'

export interface SessionConfig {
  readonly projectName: string
  /** When set, the handshake asks `"secret?"` (§3). */
  readonly secret?: string
  /** §4 turn hold in ms; 0 answers an idle pass at once. */
  readonly turnHoldMs: number
  /** §4 idle limit in ms. */
  readonly idleLimitMs: number
  /** Counts each request by kind (`pass`, `story`, …, `refused`) for metrics; one call, nothing else. */
  readonly countRequest?: (kind: RequestType | 'refused') => void
}

export interface SessionInput extends SessionConfig {
  readonly userId: UserId
  readonly coordinator: AnyActorRef
  readonly port: FramePort
}

export interface SessionContext extends SessionInput {
  readonly username: string | null
  readonly joined: boolean
  /** Notifications waiting for this client's pass, oldest first, coalesced (§4). */
  readonly pending: readonly Notification[]
  /** How many of `pending` this pass delivers: those pending when the client passed. */
  readonly deliverable: number
  readonly relayId: number | null
  readonly closeReason: string
  /** §4 idle limit (runs while the server waits on the client, see waitsOnClient) and turn hold. */
  readonly clock: SessionClock
}

/** §4 requests, raised once a frame from the client holding the turn has been parsed. */
export type RequestEvent =
  | { type: 'request.pass' }
  | { type: 'request.story' }
  | { type: 'request.analytics' }
  | { type: 'request.assets' }
  | { type: 'request.users' }
  | { type: 'request.at', path: string, timestamp: string }
  | { type: 'request.message', text: string }
  | { type: 'request.get', giver: UserId, folder: string }
  | { type: 'request.refused', code: ErrorCode, detail: string }

/** §3 sync answers, raised once the client's frame has been validated. */
export type SubmissionEvent =
  | { type: 'submission.accepted', submission: StorySubmission | AnalyticsSubmission | AssetIndex }
  | { type: 'submission.refused', code: ErrorCode, detail: string }

export type SessionEvent =
  | { type: 'frame', value: JsonValue }
  | RequestEvent
  | SubmissionEvent
  | { type: 'frame.binary' }
  | { type: 'protocol.violation', detail: string }
  | { type: 'socket.closed', reason: string }
  | { type: 'server.shutdown' }
  | SessionClockEvent
  | CoordinatorReply

export type SessionEmitted = { type: 'log', line: string }

type SyncKind = 'story' | 'analytics' | 'assets'

const SUBMISSION_VALIDATORS = {
  story: validateStorySubmission,
  analytics: validateAnalyticsSubmission,
  assets: validateAssetsSubmission
} as const

const shareKeyOf = (v: JsonValue): object | undefined => (typeof v === 'object' && v !== null ? v : undefined)
const toRequestEvent = (r: Request): RequestEvent => ({ ...r, type: `request.${r.type}` }) as RequestEvent
const frameValue = (event: SessionEvent): JsonValue | undefined => (event.type === 'frame' ? event.value : undefined)
const isString = (v: unknown): v is string => typeof v === 'string'
const isPlain = (n: Notification | undefined): boolean => n?.kind === 'users' || n?.kind === 'at' || n?.kind === 'message'
/** §4 deliveries that need no answer: the `users` signal, an `at` report, the chat history. */
function sendPlain (port: FramePort, n: Notification | undefined): void {
  if (n?.kind === 'users') port.sendJson('users')
  else if (n?.kind === 'at') port.sendJson([n.from, 'at', n.path, n.timestamp])
  else if (n?.kind === 'message') port.sendJson(['messages', n.history], n.history)
}

export const sessionSetup = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
    input: {} as SessionInput,
    emitted: {} as SessionEmitted
  },
  actors: { sessionClock },
  guards: {
    isValidUsername: ({ event }) => validateUsername(frameValue(event)).ok,
    answerIsNotString: ({ event }) => !isString(frameValue(event)),
    isOtherProject: ({ context, event }) => frameValue(event) !== context.projectName,
    secretRequired: ({ context }) => context.secret !== undefined,
    isWrongSecret: ({ context, event }) => frameValue(event) !== context.secret,
    nothingToDeliver: ({ context }) => context.deliverable === 0,
    /** What is left to deliver needs no answer from the client: it all goes out in this step. */
    onlyPlainDeliveriesLeft: ({ context }) => {
      for (let i = 0; i < context.deliverable; i++) if (!isPlain(context.pending[i])) return false
      return true
    },
    /** News that needs no answer (users, at, messages). */
    isPlainNews: ({ event }) => event.type === 'notify' && isPlain(event.notification),
    /** §4: the request is a pass (`"yours"`); anything else is parsed and raised. */
    isPass: ({ event }) => frameValue(event) === 'yours',
    isPassWithNews: ({ context, event }) => frameValue(event) === 'yours' && context.pending.length > 0,
    isPassAnsweredAtOnce: ({ context, event }) => frameValue(event) === 'yours' && context.turnHoldMs <= 0,
    nextDeliveryIs: ({ context }, params: { kind: NotificationKind }) => context.pending[0]?.kind === params.kind,
    isServeNotification: ({ event }) => event.type === 'notify' && event.notification.kind === 'serve',
    takerBrokeTheRelay: ({ event }) => event.type === 'relay.ended' && event.violation !== undefined,
    giverBrokeTheRelay: ({ event }) => event.type === 'serve.ended' && event.violation !== undefined
  },
  actions: {
    say: ({ context }, params: { signal: ServerSignal }) => context.port.sendJson(params.signal),
    sendYours: ({ context }) => context.port.sendJson('yours'),
    startIdleClock: ({ context }) => context.clock.startIdle(),
    stopIdleClock: ({ context }) => context.clock.stopIdle(),
    startTurnHold: ({ context }) => context.clock.startHold(),
    stopTurnHold: ({ context }) => context.clock.stopHold(),
    /** §4: the frame that ended a held pass is the next request, taken where requests are. */
    takeFrameAgain: enqueueActions(({ event, enqueue }) => { if (event.type === 'frame') enqueue.raise(event) }),
    sendError: ({ context }, params: { code: ErrorCode, detail: string }) => context.port.sendJson(errorMessage(params.code, params.detail)),
    /** At "username?" the username's rules say what is wrong; at "project?" and "secret?" (username kept), that it is no string. */
    refuseHandshake: ({ context, event }) => {
      const checked = context.username === null ? validateUsername(frameValue(event)) : undefined
      const detail = checked !== undefined && !checked.ok ? checked.detail : `expected a string, got ${JSON.stringify(frameValue(event))?.slice(0, 80)}`
      context.port.sendJson(errorMessage('bad_handshake', detail))
    },
    refuseSubmission: ({ context, event }) => {
      if (event.type === 'submission.refused') context.port.sendJson(errorMessage(event.code, event.detail))
    },
    /** Validates the client's sync answer once and raises it as accepted or refused. */
    raiseSubmission: enqueueActions(({ event, enqueue }, params: { kind: SyncKind }) => {
      const checked = SUBMISSION_VALIDATORS[params.kind](frameValue(event))
      enqueue.raise(checked.ok
        ? { type: 'submission.accepted', submission: checked.value }
        : { type: 'submission.refused', code: checked.code, detail: checked.detail })
    }),
    refuseRequest: ({ context, event }) => {
      if (event.type === 'request.refused') context.port.sendJson(errorMessage(event.code, event.detail))
    },
    refuseBinary: ({ context }) => context.port.sendJson(errorMessage('protocol', 'a binary frame arrived outside a relay')),
    refuseProtocol: ({ context, event }) => {
      if (event.type === 'protocol.violation') context.port.sendJson(errorMessage('protocol', event.detail))
    },
    keepUsername: assign({ username: ({ event }) => (frameValue(event) as string) }),
    noteCloseReason: assign({ closeReason: (_, params: { reason: string }) => params.reason }),
    noteSocketClosed: assign({ closeReason: ({ event }) => (event.type === 'socket.closed' ? event.reason : 'closed') }),
    noteViolation: assign({ closeReason: ({ event }) => (event.type === 'protocol.violation' ? `protocol | ${event.detail}` : 'protocol') }),

    joinCoordinator: sendTo(({ context }) => context.coordinator, ({ context, self }) => ({
      type: 'user.join', userId: context.userId, username: context.username ?? '', session: self, port: context.port
    })),
    markJoined: assign({ joined: true }),
    tellCoordinatorSynced: sendTo(({ context }) => context.coordinator, ({ context }) => ({ type: 'user.synced', userId: context.userId })),
    submitToCoordinator: sendTo(({ context }) => context.coordinator, ({ context, event }, params: { kind: SyncKind, origin: ExchangeOrigin }) => ({
      type: `${params.kind}.submit`,
      userId: context.userId,
      submission: event.type === 'submission.accepted' ? event.submission : null,
      origin: params.origin
    })),
    sendMergedReply: ({ context, event }) => {
      if (event.type === 'story.current') context.port.sendJson([event.owner, event.story], event.story)
      if (event.type === 'analytics.current') context.port.sendJson(event.analytics, shareKeyOf(event.analytics))
      if (event.type === 'assets.current') context.port.sendJson(event.assets, event.assets)
    },
    requestUsers: sendTo(({ context }) => context.coordinator, ({ context }) => ({ type: 'users.request', userId: context.userId })),
    sendUsersReply: ({ context, event }) => { if (event.type === 'users.current') context.port.sendJson(event.users) },
    /** Metrics (status page): a pass is a request too, told from the frame without parsing. */
    countPass: ({ context }) => context.countRequest?.('pass'),
    /**
     * A pass answered at once (turn hold 0, nothing pending): counted, `"yours"`, and the idle
     * clock restarted, as one action: XState's cost per action is most of a pass's.
     */
    passTurnBackAtOnce: ({ context }) => {
      context.countRequest?.('pass')
      context.port.sendJson('yours')
      context.clock.startIdle()
    },
    /** Parses the frame once and raises it as the request it is (or its refusal). */
    raiseRequest: enqueueActions(({ context, event, enqueue }) => {
      const r = parseRequest(frameValue(event))
      context.countRequest?.(r.ok ? r.value.type : 'refused')
      enqueue.raise(r.ok ? toRequestEvent(r.value) : { type: 'request.refused', code: r.code, detail: r.detail })
    }),
    reportAt: sendTo(({ context }) => context.coordinator, ({ context }, at: { path: string, timestamp: string }) => ({
      type: 'at.report', userId: context.userId, path: at.path, timestamp: at.timestamp
    })),
    sayMessage: sendTo(({ context }) => context.coordinator, ({ context }, message: { text: string }) => ({
      type: 'message.say', userId: context.userId, text: message.text
    })),
    requestRelay: sendTo(({ context }) => context.coordinator, ({ context }, get: { giver: UserId, folder: string }) => ({
      type: 'relay.request', userId: context.userId, giver: get.giver, folder: get.folder
    })),
    sendRefusal: ({ context, event }) => { if (event.type === 'relay.refused') context.port.sendJson(errorMessage(event.code, event.detail)) },
    keepRelayId: assign({ relayId: ({ event }) => (event.type === 'relay.accepted' ? event.relayId : null) }),

    enqueueNotification: assign({
      pending: ({ context, event }) => (event.type === 'notify' ? enqueueNotification(context.pending, event.notification) : context.pending)
    }),
    withdrawServe: assign(({ context, event }) => {
      if (event.type !== 'serve.withdraw') return {}
      const index = context.pending.findIndex((n) => n.kind === 'serve' && n.relayId === event.relayId)
      if (index < 0) return {}
      return { pending: withdrawServe(context.pending, event.relayId), deliverable: context.deliverable - (index < context.deliverable ? 1 : 0) }
    }),
    markDeliverable: assign({ deliverable: ({ context }) => context.pending.length }),
    /** News during a held pass that needs an answer: queued and deliverable now (one context update). */
    enqueueDeliverable: assign(({ context, event }) => {
      const pending = event.type === 'notify' ? enqueueNotification(context.pending, event.notification) : context.pending
      return { pending, deliverable: pending.length }
    }),
    dropDelivered: assign({ pending: ({ context }) => context.pending.slice(1), deliverable: ({ context }) => context.deliverable - 1 }),
    /**
     * §4: news during a held pass that needs no answer goes out as it comes (nothing else is
     * pending in a hold), then `"yours"`: one action, as XState's cost per action is most of a step's.
     */
    sendNewsThenYours: ({ context, event }) => {
      if (event.type === 'notify') sendPlain(context.port, event.notification)
      context.port.sendJson('yours')
    },
    /** Sends every deliverable notification that needs no answer (users, at, messages), in order. */
    sendPlainDeliveries: ({ context }) => {
      for (let i = 0; i < context.deliverable; i++) sendPlain(context.port, context.pending[i])
    },
    dropAllDelivered: assign(({ context }) => ({ pending: context.pending.slice(context.deliverable), deliverable: 0 })),
    sendUsersSignal: ({ context }) => context.port.sendJson('users'),
    sendAt: ({ context }) => { if (context.pending[0]?.kind === 'at') sendPlain(context.port, context.pending[0]) },
    sendMessages: ({ context }) => { if (context.pending[0]?.kind === 'message') sendPlain(context.port, context.pending[0]) },
    // §5: the relay timeout counts only while a giver holds its turn; said only while a serve is pending for it.
    tellCoordinatorTurnHeldIfServePending: enqueueActions(({ context, enqueue }) => {
      if (context.pending.some((n) => n.kind === 'serve')) enqueue.sendTo(context.coordinator, { type: 'turn.held', userId: context.userId })
    }),
    tellCoordinatorTurnHeld: sendTo(({ context }) => context.coordinator, ({ context }) => ({ type: 'turn.held', userId: context.userId })),
    tellCoordinatorTurnReleasedIfServePending: enqueueActions(({ context, enqueue }) => {
      if (context.pending.some((n) => n.kind === 'serve')) enqueue.sendTo(context.coordinator, { type: 'turn.released', userId: context.userId })
    }),
    /** §4: the request the giver sent out of turn, read where its answer to `give` was due, is refused (then "yours"). */
    refuseRequestInsteadOfGiveAnswer: ({ context, event }) => {
      if (event.type !== 'serve.returned') return
      context.countRequest?.('refused')
      context.port.sendJson(errorMessage('bad_request', event.detail))
    },
    /** The serve is pending again, first: delivered on the next pass; the rest of this pass waits for it too. */
    returnServeToHead: assign(({ context, event }) => event.type === 'serve.returned' && event.serve !== undefined
      ? { pending: [event.serve, ...context.pending], deliverable: 0 }
      : { deliverable: 0 }),
    // Stryker disable next-line OptionalChaining: runs only when the next delivery is a serve (nextDeliveryIs)
    keepServeRelayId: assign({ relayId: ({ context }) => { const n = context.pending[0]; return n?.kind === 'serve' ? n.relayId : null } }),
    tellCoordinatorServeBegins: sendTo(({ context }) => context.coordinator, ({ context }) => ({ type: 'serve.begin', userId: context.userId, relayId: context.relayId })),
    sendRelayError: ({ context, event }) => {
      if (event.type === 'relay.ended' && event.error !== undefined) context.port.sendJson(errorMessage(event.error.code, event.error.detail))
    },
    sendRelayViolation: ({ context, event }) => {
      const detail = event.type === 'relay.ended' || event.type === 'serve.ended' ? event.violation : undefined
      if (detail !== undefined) context.port.sendJson(errorMessage('protocol', detail))
    },
    leaveCoordinatorIfJoined: enqueueActions(({ context, enqueue }) => {
      if (context.joined) enqueue.sendTo(context.coordinator, { type: 'user.leave', userId: context.userId })
    }),
    closeConnection: ({ context }) => context.port.close(),
    logDisconnect: emit(({ context }) => ({
      type: 'log' as const,
      line: `${context.username ?? '(no username)'} | disconnected | ${context.userId} | ${context.closeReason}`
    }))
  }
})

const idle = { 'idle.limit': { target: '#session.closed', actions: { type: 'noteCloseReason', params: { reason: 'idle limit' } } } } as const
type StateConfig = Parameters<typeof sessionSetup.createStateConfig>[0]
const asList = <T>(x: T | readonly T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? [...x] : [x as T])

/**
 * A state where the server waits on its client (§4 idle limit): it takes the
 * client's next frame (READS_FRAME), runs the idle clock while it lasts, and
 * closes the connection on `idle.limit`.
 */
function waitsOnClient (config: StateConfig): StateConfig {
  return {
    ...config,
    tags: [READS_FRAME, ...asList(config.tags)],
    entry: ['startIdleClock', ...asList(config.entry)],
    exit: [...asList(config.exit), 'stopIdleClock'],
    on: { ...idle, ...config.on }
  } as StateConfig
}

/**
 * One §3 sync exchange: `S: "<kind>"`, `C: submission`, `S: merged`, `C: ack`.
 * In the initial sync a malformed answer closes the connection; later it is
 * answered with `bad_request` and the turn goes on.
 */
function syncExchange (kind: SyncKind, origin: ExchangeOrigin) {
  const refusal = origin === 'sync'
    ? { target: '#session.closed', actions: ['refuseSubmission', { type: 'noteCloseReason', params: { reason: `bad ${kind} sync answer` } }] }
    : { target: 'done', actions: 'refuseSubmission' }
  return sessionSetup.createStateConfig({
    initial: 'awaitingSubmission',
    states: {
      awaitingSubmission: waitsOnClient({
        entry: { type: 'say', params: { signal: kind } },
        on: {
          frame: { actions: { type: 'raiseSubmission', params: { kind } } },
          'submission.accepted': { target: 'awaitingMerge', actions: { type: 'submitToCoordinator', params: { kind, origin } } },
          'submission.refused': refusal as never
        }
      }),
      // The coordinator's reply; §8: when the submission changed the value, it comes once that is on disk.
      awaitingMerge: { on: { [`${kind}.current`]: { target: 'awaitingAck', actions: 'sendMergedReply' } } },
      awaitingAck: waitsOnClient({ on: { frame: 'done' } }),
      done: { type: 'final' }
    }
  })
}

const deliver = (kind: NotificationKind) => ({ type: 'nextDeliveryIs', params: { kind } }) as const

export const sessionMachine = sessionSetup.createMachine({
  id: 'session',
  context: ({ input }) => ({
    // Stryker disable next-line BooleanLiteral,StringLiteral: a leave of a session that never joined is dropped (coordinator's isKnownUser); the empty closeReason is never logged, every way into closed notes one
    ...input, username: null, joined: false, pending: [], deliverable: 0, relayId: null, closeReason: '', clock: new SessionClock()
  }),
  invoke: { src: 'sessionClock', input: ({ context }) => ({ clock: context.clock, idleLimitMs: context.idleLimitMs, turnHoldMs: context.turnHoldMs }) },
  initial: 'handshake',
  on: {
    'frame.binary': { target: '.closed', actions: ['refuseBinary', { type: 'noteCloseReason', params: { reason: 'binary frame outside a relay' } }] },
    'protocol.violation': { target: '.closed', actions: ['refuseProtocol', 'noteViolation'] },
    'socket.closed': { target: '.closed', actions: 'noteSocketClosed' },
    'server.shutdown': { target: '.closed', actions: { type: 'noteCloseReason', params: { reason: 'server shutting down' } } },
    notify: { actions: 'enqueueNotification' },
    'serve.withdraw': { actions: 'withdrawServe' }
  },
  states: {
    handshake: {
      initial: 'username',
      states: {
        username: waitsOnClient({
          entry: { type: 'say', params: { signal: 'username?' } },
          on: {
            frame: [
              { guard: 'isValidUsername', target: 'project', actions: 'keepUsername' },
              { target: '#session.closed', actions: ['refuseHandshake', { type: 'noteCloseReason', params: { reason: 'bad handshake' } }] }
            ]
          }
        }),
        project: waitsOnClient({
          entry: { type: 'say', params: { signal: 'project?' } },
          on: {
            frame: [
              { guard: 'answerIsNotString', target: '#session.closed', actions: ['refuseHandshake', { type: 'noteCloseReason', params: { reason: 'bad handshake' } }] },
              { guard: 'isOtherProject', target: '#session.closed', actions: [{ type: 'say', params: { signal: 'wrong_project' } }, { type: 'noteCloseReason', params: { reason: 'wrong project' } }] },
              { guard: 'secretRequired', target: 'secret' },
              { target: '#session.syncing' }
            ]
          }
        }),
        secret: waitsOnClient({
          entry: { type: 'say', params: { signal: 'secret?' } },
          on: {
            frame: [
              { guard: 'answerIsNotString', target: '#session.closed', actions: ['refuseHandshake', { type: 'noteCloseReason', params: { reason: 'bad handshake' } }] },
              { guard: 'isWrongSecret', target: '#session.closed', actions: [{ type: 'say', params: { signal: 'wrong_secret' } }, { type: 'noteCloseReason', params: { reason: 'wrong secret' } }] },
              { target: '#session.syncing' }
            ]
          }
        })
      }
    },
    syncing: {
      entry: ['joinCoordinator', 'markJoined'],
      initial: 'story',
      states: {
        story: { ...syncExchange('story', 'sync'), onDone: 'assets' },
        assets: { ...syncExchange('assets', 'sync'), onDone: 'analytics' },
        analytics: { ...syncExchange('analytics', 'sync'), onDone: 'synced' },
        synced: { type: 'final' }
      },
      onDone: { target: 'turnTaking', actions: ['sendYours', 'tellCoordinatorSynced'] }
    },
    turnTaking: {
      initial: 'clientHolds',
      states: {
        clientHolds: waitsOnClient({
          entry: 'tellCoordinatorTurnHeldIfServePending',
          exit: 'tellCoordinatorTurnReleasedIfServePending',
          on: {
            // A pass, nearly every turn's request, is told from the frame at once; any other request is parsed and raised.
            frame: [
              { guard: 'isPassWithNews', target: 'delivering', actions: ['countPass', 'markDeliverable'] },
              // The turn comes straight back (turn hold 0, nothing pending): it stays here, its idle clock restarted.
              { guard: 'isPassAnsweredAtOnce', actions: 'passTurnBackAtOnce' },
              { guard: 'isPass', target: 'holding', actions: 'countPass' },
              { actions: 'raiseRequest' }
            ],
            notify: [
              { guard: 'isServeNotification', actions: ['enqueueNotification', 'tellCoordinatorTurnHeld'] },
              { actions: 'enqueueNotification' }
            ],
            'request.story': 'story',
            'request.analytics': 'analytics',
            'request.assets': 'assets',
            'request.users': 'users',
            'request.at': {
              target: 'clientHolds',
              reenter: true,
              actions: [{ type: 'reportAt', params: ({ event }) => ({ path: event.path, timestamp: event.timestamp }) }, 'sendYours']
            },
            'request.message': { target: 'storing', actions: { type: 'sayMessage', params: ({ event }) => ({ text: event.text }) } },
            'request.get': { target: 'getting', actions: { type: 'requestRelay', params: ({ event }) => ({ giver: event.giver, folder: event.folder }) } },
            'request.refused': { target: 'clientHolds', reenter: true, actions: ['refuseRequest', 'sendYours'] }
          }
        }),
        story: { ...syncExchange('story', 'request'), onDone: { target: 'clientHolds', actions: 'sendYours' } },
        analytics: { ...syncExchange('analytics', 'request'), onDone: { target: 'clientHolds', actions: 'sendYours' } },
        assets: { ...syncExchange('assets', 'request'), onDone: { target: 'clientHolds', actions: 'sendYours' } },
        // §8: the "yours" that ends a message request waits until the line is stored (on disk, with persistence on).
        storing: { on: { 'message.stored': { target: 'clientHolds', actions: 'sendYours' } } },
        users: {
          entry: 'requestUsers',
          on: { 'users.current': { target: 'clientHolds', actions: ['sendUsersReply', 'sendYours'] } }
        },
        getting: {
          on: {
            'relay.accepted': { target: '#session.paused', actions: 'keepRelayId' },
            'relay.refused': { target: 'clientHolds', actions: ['sendRefusal', 'sendYours'] }
          }
        },
        holding: {
          tags: READS_FRAME,
          entry: 'startTurnHold',
          exit: 'stopTurnHold',
          on: {
            'turn.hold.over': { target: 'clientHolds', actions: 'sendYours' },
            // §4: what arrives meanwhile is delivered at once, then "yours".
            notify: [
              { guard: 'isPlainNews', target: 'clientHolds', actions: 'sendNewsThenYours' },
              { target: 'delivering', actions: 'enqueueDeliverable' }
            ],
            // §4: a frame ends the hold: "yours" at once, and the frame is the next request.
            frame: { target: 'clientHolds', actions: ['sendYours', 'takeFrameAgain'] }
          }
        },
        delivering: {
          initial: 'next',
          states: {
            next: {
              always: [
                { guard: 'nothingToDeliver', target: '#session.turnTaking.clientHolds', actions: 'sendYours' },
                // The common case (news of users, at, messages): all of it and "yours" in one step.
                { guard: 'onlyPlainDeliveriesLeft', target: '#session.turnTaking.clientHolds', actions: ['sendPlainDeliveries', 'dropAllDelivered', 'sendYours'] },
                { guard: deliver('users'), target: 'next', reenter: true, actions: ['sendUsersSignal', 'dropDelivered'] },
                { guard: deliver('at'), target: 'next', reenter: true, actions: ['sendAt', 'dropDelivered'] },
                { guard: deliver('message'), target: 'next', reenter: true, actions: ['sendMessages', 'dropDelivered'] },
                { guard: deliver('story'), target: 'story', actions: 'dropDelivered' },
                { guard: deliver('analytics'), target: 'analytics', actions: 'dropDelivered' },
                { guard: deliver('assets'), target: 'assets', actions: 'dropDelivered' },
                { guard: deliver('serve'), target: '#session.serving', actions: ['keepServeRelayId', 'dropDelivered'] }
              ]
            },
            story: { ...syncExchange('story', 'notification'), onDone: 'next' },
            analytics: { ...syncExchange('analytics', 'notification'), onDone: 'next' },
            assets: { ...syncExchange('assets', 'notification'), onDone: 'next' }
          }
        }
      }
    },
    paused: {
      on: {
        'relay.ended': [
          { guard: 'takerBrokeTheRelay', target: 'closed', actions: ['sendRelayViolation', { type: 'noteCloseReason', params: { reason: 'protocol | broke the relay as taker' } }] },
          { target: 'turnTaking.clientHolds', actions: ['sendRelayError', 'sendYours'] }
        ]
      }
    },
    serving: {
      entry: 'tellCoordinatorServeBegins',
      on: {
        'serve.ended': [
          { guard: 'giverBrokeTheRelay', target: 'closed', actions: ['sendRelayViolation', { type: 'noteCloseReason', params: { reason: 'protocol | broke the relay as giver' } }] },
          { target: 'turnTaking.delivering' }
        ],
        // §4: the answer to give was a request sent out of turn: refused, then "yours" as after any error.
        'serve.returned': { target: 'turnTaking.clientHolds', actions: ['refuseRequestInsteadOfGiveAnswer', 'returnServeToHead', 'sendYours'] }
      }
    },
    closed: {
      type: 'final',
      entry: ['leaveCoordinatorIfJoined', 'closeConnection', 'logDisconnect']
    }
  }
})

export type SessionRef = ActorRefFrom<typeof sessionMachine>
