import { assign, enqueueActions, fromCallback, sendTo, setup, type AnyActorRef } from 'xstate'
import type { JsonValue } from '../protocol/frame.ts'
import type { ErrorCode } from '../protocol/errors.ts'
import { validateGetlist, validateGiveAnswer, type Manifest, type RequestType, type Wanted } from '../protocol/messages.ts'
import type { FramePort } from './ports.ts'

/** How a relay ended, from both sides (§5). */
export interface RelayOutcome {
  readonly files: number
  readonly bytes: number
  readonly durationMs: number
  /** For the log; absent on success. */
  readonly failure?: string
  /** What the taker gets before its `"yours"`; absent when the relay succeeded. */
  readonly takerError?: { readonly code: ErrorCode, readonly detail: string }
  /** The giver broke §5: it gets `["error","protocol",…]` and is closed. */
  readonly giverViolation?: string
  /** The taker broke §5 mid-stream: it gets `["error","protocol",…]` and is closed. */
  readonly takerViolation?: string
}

/** How a relay failed: an outcome without the counts. */
export type RelayFailure = Omit<RelayOutcome, 'files' | 'bytes' | 'durationMs'>

export interface RelayPipeInput {
  readonly folder: string
  readonly giverPort: FramePort
  readonly takerPort: FramePort
  readonly idleLimitMs: number
}

/** Why reading one side gave no JSON message. */
export type ReadFailure =
  | { readonly kind: 'gone' }
  | { readonly kind: 'broken', readonly detail: string }
  | { readonly kind: 'idle' }
  | { readonly kind: 'binary' }

/** What the giver machine asks of the byte plumbing. */
export type RelayPipeCommand =
  /** Read the giver's next message (its answer to `give`). */
  | { type: 'pipe.readGiver' }
  /** Read the taker's next message (its getlist). */
  | { type: 'pipe.readTaker' }
  /** Relay the files of `wanted` giver → taker and the answers taker → giver, at once. */
  | { type: 'pipe.stream', wanted: readonly Wanted[] }
  /** Give each side's frames back to its session, or drop them for a side that broke §5 (it is being closed). */
  | { type: 'pipe.close', dropGiver: boolean, dropTaker: boolean }

/** What the byte plumbing reports: messages to decide on, file boundaries (never chunks), the end of the files. */
export type RelayPipeEvent =
  | { type: 'giver.message', value: JsonValue }
  | { type: 'giver.failed', failure: ReadFailure }
  | { type: 'taker.message', value: JsonValue }
  | { type: 'taker.failed', failure: ReadFailure }
  /**
   * Files through since the last report (all their bytes relayed, or `missing`
   * relayed), `relayed` of them whole with `bytes` in all. File boundaries are
   * reported batched, at most once per event-loop turn: thousands of small
   * files cost tens of events, never one per chunk.
   */
  | { type: 'files.through', files: number, relayed: number, bytes: number }
  /** Answers relayed to the giver since the last report (the taker's, or "failed" for a gone taker). */
  | { type: 'files.answered', files: number }
  /** Both directions are done; `failure` is null when every file went through and was answered. */
  | { type: 'files.ended', failure: RelayFailure | null }

/** §5 decisions on the messages read, raised once each is validated. */
type DecisionEvent =
  | { type: 'give.manifest', manifest: Manifest }
  | { type: 'give.missing', reason: string }
  | { type: 'give.outOfTurn', request: RequestType }
  | { type: 'give.refused', detail: string }
  | { type: 'getlist.accepted', wanted: readonly Wanted[], getlist: JsonValue }
  | { type: 'getlist.refused', detail: string }

export interface GiverInput {
  readonly relayId: number
  readonly folder: string
  readonly giver: AnyActorRef
  readonly taker: AnyActorRef
  readonly giverPort: FramePort
  readonly takerPort: FramePort
  readonly takerActor: AnyActorRef
  readonly coordinator: AnyActorRef
  readonly idleLimitMs?: number
}

interface GiverContext extends GiverInput {
  readonly startedAt: number
  /** Times the giver answered `give` with a request sent out of turn, the serve deferred to its next pass. */
  readonly deferrals: number
  readonly manifest: Manifest | null
  readonly wanted: readonly Wanted[]
  /** Files through (bytes relayed, or `missing`), files answered. */
  readonly filesThrough: number
  readonly filesAnswered: number
  /** Files relayed whole, and their bytes. */
  readonly files: number
  readonly bytes: number
  readonly failure: RelayFailure | null
  readonly outcome: RelayOutcome | null
}

type GiverEvent =
  | { type: 'giver.turn' }
  | { type: 'giver.left' }
  | { type: 'taker.left' }
  | { type: 'relay.withdrawn' }
  | RelayPipeEvent
  | DecisionEvent

const DEFAULT_IDLE_LIMIT_MS = 120_000

/**
 * §4 vs §5: a request read where the answer to `give` was due was sent out of
 * turn (a race with the serve, at most a few in a row); the serve is deferred
 * to the giver's next pass. A giver that answers `give` with a request this
 * many times in a row for one relay does not serve: §5, it is closed.
 */
export const MAX_GIVE_DEFERRALS = 10

/** What the giver's session tells its client when its request came where the answer to `give` was due. */
export const outOfTurnDetail = (request: RequestType, folder: string): string =>
  `a request (${request === 'pass' ? '"yours"' : JSON.stringify(request)}) came where the answer to ["give", ${JSON.stringify(folder)}] was due: ` +
  'it was not served (send it again); the give comes again on your next pass'

const idleFor = (ms: number | undefined): string => `${(ms ?? DEFAULT_IDLE_LIMIT_MS) / 1000} s`

/** The giver failed `during` a step: T gets `relay_failed`; a giver that broke §5 (not one that left) is closed. */
export function giverFailure (f: ReadFailure, during: string, idleLimitMs?: number): RelayFailure {
  const detail = f.kind === 'gone'
    ? `giver disconnected ${during}`
    : f.kind === 'idle'
      ? `giver idle for ${idleFor(idleLimitMs)} ${during}`
      : `giver broke the protocol ${during}: ${f.kind === 'broken' ? f.detail : 'a binary frame where a message was due'}`
  return { failure: detail, takerError: { code: 'relay_failed', detail }, giverViolation: f.kind === 'gone' ? undefined : detail }
}

/** The taker failed before its getlist: a gone taker is no violation, any other failure is. */
function takerFailureBeforeGetlist (f: ReadFailure, idleLimitMs?: number): RelayFailure {
  if (f.kind === 'gone') return { failure: 'taker disconnected before its getlist' }
  const detail = f.kind === 'idle'
    ? `taker idle for ${idleFor(idleLimitMs)} before its getlist`
    : f.kind === 'broken' ? `taker broke the protocol before its getlist: ${f.detail}` : 'taker sent bytes instead of a getlist'
  return { failure: detail, takerViolation: detail }
}

/**
 * The giver side of one §5 relay. It waits for the giver's turn, then leads
 * the exchange step by step — `give`, the manifest or `missing`, the getlist,
 * the files and their answers — deciding each step here and leaving the bytes,
 * the idle clocks and the per-file checks to `relayPipe` (provided by src/).
 * It reports how the relay ended to both sessions and the coordinator.
 */
export const giverMachine = setup({
  types: {
    context: {} as GiverContext,
    events: {} as GiverEvent,
    input: {} as GiverInput
  },
  actors: {
    relayPipe: fromCallback<RelayPipeCommand, RelayPipeInput>(({ sendBack }) => {
      sendBack({ type: 'giver.failed', failure: { kind: 'broken', detail: 'the server has no relay pipe' } })
    })
  },
  guards: {
    getlistIsEmpty: ({ event }) => event.type === 'getlist.accepted' && event.wanted.length === 0,
    giverKeepsAnsweringGiveWithRequests: ({ context }) => context.deferrals + 1 >= MAX_GIVE_DEFERRALS,
    // Stryker disable next-line StringLiteral,ArithmeticOperator: the files region only stops counting once final: a guard that holds later or never (`-`, an event type never matched) counts the same (streaming ends on files.ended)
    areTheLastFiles: ({ context, event }) => event.type === 'files.through' && context.filesThrough + event.files >= context.wanted.length,
    // Stryker disable next-line all: the answers region decides nothing: streaming ends on the pipe's files.ended, which comes after every answer (src/relay-pipe.ts), and filesAnswered is read only here
    areTheLastAnswers: ({ context, event }) => event.type === 'files.answered' && context.filesAnswered + event.files >= context.wanted.length
  },
  actions: {
    noteStart: assign({ startedAt: () => performance.now() }),
    sendGive: ({ context }) => context.giverPort.sendJson(['give', context.folder]),
    readGiver: sendTo('pipe', { type: 'pipe.readGiver' }),
    readTaker: sendTo('pipe', { type: 'pipe.readTaker' }),
    /** Validates G's answer to `give` once and raises it as a manifest, `missing`, or a refusal. */
    raiseGiveAnswer: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'giver.message') return
      const answer = validateGiveAnswer(event.value, context.folder)
      if (!answer.ok) enqueue.raise({ type: 'give.refused', detail: answer.detail })
      else if (answer.value.type === 'missing') enqueue.raise({ type: 'give.missing', reason: answer.value.reason })
      else if (answer.value.type === 'request') enqueue.raise({ type: 'give.outOfTurn', request: answer.value.request })
      else enqueue.raise({ type: 'give.manifest', manifest: answer.value.manifest })
    }),
    keepManifest: assign({ manifest: ({ event }) => (event.type === 'give.manifest' ? event.manifest : null) }),
    relayManifestToTaker: ({ context, event }) => { if (event.type === 'give.manifest') context.takerPort.sendJson(event.manifest) },
    tellTakerActorFilesOffered: sendTo(({ context }) => context.takerActor, ({ event }) => ({
      // Stryker disable next-line all: relay.offered only moves the taker actor from awaitingManifest to taking, which differ in giver.deferred alone, and that cannot come after a manifest; its files is read by nothing
      type: 'relay.offered', files: event.type === 'give.manifest' ? Object.keys(event.manifest).length : 0
    })),
    /** Validates T's getlist once against the manifest and raises it as accepted or refused. */
    raiseGetlist: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'taker.message') return
      const getlist = validateGetlist(event.value, context.manifest ?? {})
      enqueue.raise(getlist.ok
        ? { type: 'getlist.accepted', wanted: getlist.value, getlist: event.value }
        : { type: 'getlist.refused', detail: getlist.detail })
    }),
    relayGetlistToGiver: ({ context, event }) => { if (event.type === 'getlist.accepted') context.giverPort.sendJson(event.getlist) },
    sendEmptyGetlistToGiver: ({ context }) => context.giverPort.sendJson([]),
    // Stryker disable next-line ArrayDeclaration: unreachable fallback: keepWanted runs only on getlist.accepted
    keepWanted: assign({ wanted: ({ event }) => (event.type === 'getlist.accepted' ? event.wanted : []) }),
    streamFiles: sendTo('pipe', ({ context }) => ({ type: 'pipe.stream', wanted: context.wanted })),
    countFilesThrough: assign(({ context, event }) => event.type === 'files.through'
      ? { filesThrough: context.filesThrough + event.files, files: context.files + event.relayed, bytes: context.bytes + event.bytes }
      : {}),
    // Stryker disable next-line all: filesAnswered is read only by areTheLastAnswers, whose region decides nothing (see there)
    countAnswers: assign({ filesAnswered: ({ context, event }) => context.filesAnswered + (event.type === 'files.answered' ? event.files : 0) }),

    keepNoSuchFolder: assign({
      failure: ({ event }) => {
        const reason = event.type === 'give.missing' ? event.reason : ''
        return { failure: `giver has no such folder: ${reason}`, takerError: { code: 'no_such_folder' as const, detail: reason } }
      }
    }),
    keepBadManifest: assign({
      failure: ({ context, event }) => giverFailure({ kind: 'broken', detail: event.type === 'give.refused' ? event.detail : '' }, 'in its manifest', context.idleLimitMs)
    }),
    countDeferral: assign({ deferrals: ({ context }) => context.deferrals + 1 }),
    /** The serve goes back to the head of the giver's pending notifications; the coordinator tells its session and the taker. */
    tellCoordinatorServeDeferred: sendTo(({ context }) => context.coordinator, ({ context, event }) => ({
      type: 'serve.deferred',
      relayId: context.relayId,
      detail: outOfTurnDetail(event.type === 'give.outOfTurn' ? event.request : 'pass', context.folder)
    })),
    keepRequestsInsteadOfManifest: assign({
      failure: ({ context }) => giverFailure(
        { kind: 'broken', detail: `answered ["give", ${JSON.stringify(context.folder)}] with a request ${MAX_GIVE_DEFERRALS} times in a row` },
        'instead of a manifest', context.idleLimitMs)
    }),
    keepGiverFailure: assign({
      // Stryker disable next-line ObjectLiteral: unreachable fallback: keepGiverFailure runs only on giver.failed
      failure: ({ context, event }) => giverFailure(event.type === 'giver.failed' ? event.failure : { kind: 'gone' }, 'instead of a manifest', context.idleLimitMs)
    }),
    keepBadGetlist: assign({
      failure: ({ event }) => {
        const detail = event.type === 'getlist.refused' ? event.detail : ''
        return { failure: `bad getlist: ${detail}`, takerError: { code: 'bad_request' as const, detail } }
      }
    }),
    keepTakerFailure: assign({
      // Stryker disable next-line ObjectLiteral: unreachable fallback: keepTakerFailure runs only on taker.failed
      failure: ({ context, event }) => takerFailureBeforeGetlist(event.type === 'taker.failed' ? event.failure : { kind: 'gone' }, context.idleLimitMs)
    }),
    keepFilesFailure: assign({ failure: ({ event }) => (event.type === 'files.ended' ? event.failure : null) }),
    settleOutcome: assign({
      outcome: ({ context }) => ({
        files: context.files,
        bytes: context.bytes,
        durationMs: context.startedAt === 0 ? 0 : performance.now() - context.startedAt,
        ...context.failure
      })
    }),
    /** A side that broke §5 is being closed: its frames are dropped, not given back to its session. */
    closePipe: sendTo('pipe', ({ context }) => ({
      type: 'pipe.close',
      dropGiver: context.failure?.giverViolation !== undefined,
      dropTaker: context.failure?.takerViolation !== undefined
    })),

    // A giver that left (its session stopped) has nobody to tell.
    tellGiverSessionServeEnded: enqueueActions(({ context, enqueue }) => {
      if (context.giver.getSnapshot().status !== 'active') return
      // Stryker disable next-line OptionalChaining: settleOutcome sets the outcome first, in the same entry
      enqueue.sendTo(context.giver, { type: 'serve.ended', violation: context.outcome?.giverViolation })
    }),
    tellTakerActorOutcome: sendTo(({ context }) => context.takerActor, ({ context }) => ({
      type: 'relay.outcome', outcome: context.outcome
    })),
    tellCoordinatorFinished: sendTo(({ context }) => context.coordinator, ({ context }) => ({
      type: 'relay.finished', relayId: context.relayId, outcome: context.outcome
    }))
  }
}).createMachine({
  id: 'giver',
  context: ({ input }) => ({
    // Stryker disable next-line ArrayDeclaration: wanted is read only in streaming, which keepWanted sets before
    ...input, startedAt: 0, deferrals: 0, manifest: null, wanted: [], filesThrough: 0, filesAnswered: 0, files: 0, bytes: 0, failure: null, outcome: null
  }),
  initial: 'waitingForTurn',
  states: {
    /** Until the giver's session reaches the serve on a pass (again, after a deferral). */
    waitingForTurn: {
      on: {
        'giver.turn': 'relaying',
        'relay.withdrawn': 'withdrawn',
        'giver.left': 'withdrawn',
        'taker.left': 'withdrawn'
      }
    },
    relaying: {
      entry: 'noteStart',
      // However the relay is left, the pipe gives the frames back (or drops a violator's) before it stops.
      exit: 'closePipe',
      invoke: {
        id: 'pipe',
        src: 'relayPipe',
        input: ({ context }) => ({
          folder: context.folder, giverPort: context.giverPort, takerPort: context.takerPort,
          idleLimitMs: context.idleLimitMs ?? DEFAULT_IDLE_LIMIT_MS
        })
      },
      initial: 'asking',
      states: {
        /** S→G `["give", folder]`; G answers with a manifest (relayed to T as is) or `["missing", folder, reason]`. */
        asking: {
          entry: ['sendGive', 'readGiver'],
          on: {
            'giver.message': { actions: 'raiseGiveAnswer' },
            'give.manifest': { target: 'choosing', actions: ['keepManifest', 'relayManifestToTaker', 'tellTakerActorFilesOffered'] },
            'give.missing': { target: '#giver.relaying.ended', actions: 'keepNoSuchFolder' },
            // §4: a request sent out of turn, not a bad manifest: the serve waits for G's next pass, T keeps waiting.
            'give.outOfTurn': [
              { guard: 'giverKeepsAnsweringGiveWithRequests', target: '#giver.relaying.ended', actions: 'keepRequestsInsteadOfManifest' },
              { target: '#giver.waitingForTurn', actions: ['countDeferral', 'tellCoordinatorServeDeferred'] }
            ],
            'give.refused': { target: '#giver.relaying.ended', actions: 'keepBadManifest' },
            'giver.failed': { target: '#giver.relaying.ended', actions: 'keepGiverFailure' }
          }
        },
        /** T→S its getlist, relayed to G as is; a bad one gets T `bad_request` and G `[]`. */
        choosing: {
          entry: 'readTaker',
          on: {
            'taker.message': { actions: 'raiseGetlist' },
            'getlist.accepted': [
              { guard: 'getlistIsEmpty', target: '#giver.relaying.ended', actions: 'relayGetlistToGiver' },
              { target: 'streaming', actions: ['keepWanted', 'relayGetlistToGiver'] }
            ],
            'getlist.refused': { target: '#giver.relaying.ended', actions: ['sendEmptyGetlistToGiver', 'keepBadGetlist'] },
            'taker.failed': { target: '#giver.relaying.ended', actions: ['sendEmptyGetlistToGiver', 'keepTakerFailure'] }
          }
        },
        /** Files G→T in getlist order and T's answers T→G, both at once. */
        streaming: {
          entry: 'streamFiles',
          type: 'parallel',
          states: {
            files: {
              initial: 'relaying',
              states: {
                /** Headers in getlist order, each followed by exactly the bytes it announced. */
                relaying: {
                  on: {
                    'files.through': [
                      { guard: 'areTheLastFiles', target: 'allThrough', actions: 'countFilesThrough' },
                      { actions: 'countFilesThrough' }
                    ]
                  }
                },
                allThrough: { type: 'final' }
              }
            },
            answers: {
              initial: 'awaitingAnswers',
              states: {
                /** One answer per file, in getlist order, relayed to G as it comes. */
                awaitingAnswers: {
                  on: {
                    'files.answered': [
                      { guard: 'areTheLastAnswers', target: 'allAnswered', actions: 'countAnswers' },
                      { actions: 'countAnswers' }
                    ]
                  }
                },
                allAnswered: { type: 'final' }
              }
            }
          },
          on: {
            'files.ended': { target: '#giver.relaying.ended', actions: 'keepFilesFailure' }
          }
        },
        /** The relay is decided. */
        ended: { type: 'final' }
      },
      onDone: 'finished'
    },
    finished: {
      type: 'final',
      entry: ['settleOutcome', 'tellGiverSessionServeEnded', 'tellTakerActorOutcome', 'tellCoordinatorFinished']
    },
    withdrawn: { type: 'final' }
  }
})
