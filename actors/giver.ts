import { assign, enqueueActions, fromCallback, sendTo, setup, type AnyActorRef, type EventObject } from 'xstate'
import type { ErrorCode } from '../protocol/errors.ts'
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

export interface RelayPipeInput {
  readonly folder: string
  readonly giverPort: FramePort
  readonly takerPort: FramePort
  readonly idleLimitMs: number
}

/** Progress the byte plumbing reports; the relay's decisions, never its chunks. */
export type RelayPipeEvent =
  | { type: 'pipe.manifest', files: number }
  | { type: 'pipe.getlist', files: number }
  | { type: 'pipe.file', path: string, bytes: number }
  | { type: 'pipe.done', outcome: RelayOutcome }

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
  readonly filesDone: number
  readonly outcome: RelayOutcome | null
}

type GiverEvent =
  | { type: 'giver.turn' }
  | { type: 'giver.left' }
  | { type: 'taker.left' }
  | { type: 'relay.withdrawn' }
  | RelayPipeEvent

/**
 * The giver side of one relay: waits for the giver's turn, then runs the byte
 * plumbing (`relayPipe`, provided by src/) and reports how it ended.
 */
export const giverMachine = setup({
  types: {
    context: {} as GiverContext,
    events: {} as GiverEvent,
    input: {} as GiverInput
  },
  actors: {
    relayPipe: fromCallback<EventObject, RelayPipeInput>(({ sendBack }) => {
      sendBack({ type: 'pipe.done', outcome: { files: 0, bytes: 0, durationMs: 0, failure: 'no relay pipe provided', takerError: { code: 'relay_failed', detail: 'server has no relay pipe' } } })
    })
  },
  actions: {
    forwardProgressToTaker: sendTo(({ context }) => context.takerActor, ({ event }) => event),
    countFile: assign({ filesDone: ({ context }) => context.filesDone + 1 }),
    keepOutcome: assign({ outcome: ({ event }) => (event.type === 'pipe.done' ? event.outcome : null) }),
    // A giver that left (its session stopped) has nobody to tell.
    tellGiverSessionServeEnded: enqueueActions(({ context, enqueue }) => {
      if (context.giver.getSnapshot().status !== 'active') return
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
  context: ({ input }) => ({ ...input, filesDone: 0, outcome: null }),
  initial: 'waitingForTurn',
  states: {
    waitingForTurn: {
      on: {
        'giver.turn': 'relaying',
        'relay.withdrawn': 'withdrawn',
        'giver.left': 'withdrawn',
        'taker.left': 'withdrawn'
      }
    },
    relaying: {
      invoke: {
        src: 'relayPipe',
        input: ({ context }) => ({
          folder: context.folder, giverPort: context.giverPort, takerPort: context.takerPort,
          idleLimitMs: context.idleLimitMs ?? 120_000
        })
      },
      initial: 'manifest',
      states: {
        manifest: { on: { 'pipe.manifest': { target: 'getlist', actions: 'forwardProgressToTaker' } } },
        getlist: { on: { 'pipe.getlist': { target: 'streaming', actions: 'forwardProgressToTaker' } } },
        streaming: { on: { 'pipe.file': { actions: 'countFile' } } }
      },
      on: {
        'pipe.done': {
          target: 'finished',
          actions: 'keepOutcome'
        }
      }
    },
    finished: {
      type: 'final',
      entry: ['tellGiverSessionServeEnded', 'tellTakerActorOutcome', 'tellCoordinatorFinished']
    },
    withdrawn: { type: 'final' }
  }
})
