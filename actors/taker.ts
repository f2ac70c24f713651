import { assign, enqueueActions, sendTo, setup, type AnyActorRef } from 'xstate'
import type { ErrorCode } from '../protocol/errors.ts'
import type { RelayOutcome } from './giver.ts'

export interface TakerInput {
  readonly relayId: number
  readonly taker: AnyActorRef
  readonly coordinator: AnyActorRef
  readonly relayTimeoutMs: number
}

interface TakerContext extends TakerInput {
  readonly error: { readonly code: ErrorCode, readonly detail: string } | null
  readonly violation: string | null
}

type TakerEvent =
  | { type: 'giver.started' }
  | { type: 'giver.left' }
  | { type: 'taker.left' }
  | { type: 'relay.withdrawn' }
  | { type: 'pipe.manifest', files: number }
  | { type: 'pipe.getlist', files: number }
  | { type: 'relay.outcome', outcome: RelayOutcome }

/**
 * The taker side of one relay: the taker is paused until the giver starts
 * (or the relay timeout withdraws the request), then follows the relay to its
 * end and hands the taker its turn back.
 */
export const takerMachine = setup({
  types: {
    context: {} as TakerContext,
    events: {} as TakerEvent,
    input: {} as TakerInput
  },
  delays: {
    relayTimeout: ({ context }) => context.relayTimeoutMs
  },
  guards: {
    relaySucceeded: ({ event }) => event.type === 'relay.outcome' && event.outcome.takerError === undefined && event.outcome.takerViolation === undefined
  },
  actions: {
    askCoordinatorToWithdraw: sendTo(({ context }) => context.coordinator, ({ context }) => ({ type: 'relay.timedOut', relayId: context.relayId })),
    // A taker that left (its session stopped) has nobody to tell.
    tellTakerRelayEnded: enqueueActions(({ context, enqueue }) => {
      if (context.taker.getSnapshot().status !== 'active') return
      enqueue.sendTo(context.taker, { type: 'relay.ended', error: context.error ?? undefined, violation: context.violation ?? undefined })
    }),
    keepOutcome: assign(({ event }) => event.type === 'relay.outcome'
      ? { error: event.outcome.takerError ?? null, violation: event.outcome.takerViolation ?? null }
      : {}),
    keepTimeoutError: assign({
      error: ({ context }) => ({ code: 'relay_timeout' as const, detail: `the giver did not start within ${context.relayTimeoutMs / 1000} s` })
    }),
    keepGiverLeftError: assign({
      error: () => ({ code: 'relay_failed' as const, detail: 'the giver disconnected before the relay started' })
    })
  }
}).createMachine({
  id: 'taker',
  context: ({ input }) => ({ ...input, error: null, violation: null }),
  initial: 'waitingForGiver',
  states: {
    waitingForGiver: {
      after: { relayTimeout: 'timingOut' },
      on: {
        'giver.started': 'relaying',
        'giver.left': 'giverLeft',
        'taker.left': 'abandoned'
      }
    },
    timingOut: {
      entry: 'askCoordinatorToWithdraw',
      on: {
        'relay.withdrawn': 'timedOut',
        'giver.started': 'relaying',
        'giver.left': 'giverLeft',
        'taker.left': 'abandoned'
      }
    },
    relaying: {
      initial: 'manifest',
      states: {
        manifest: { on: { 'pipe.manifest': 'getlist' } },
        getlist: { on: { 'pipe.getlist': 'streaming' } },
        streaming: {}
      },
      on: {
        'relay.outcome': [
          { guard: 'relaySucceeded', target: 'done' },
          { target: 'failed', actions: 'keepOutcome' }
        ]
      }
    },
    done: { type: 'final', entry: 'tellTakerRelayEnded' },
    failed: { type: 'final', entry: 'tellTakerRelayEnded' },
    timedOut: {
      type: 'final',
      entry: ['keepTimeoutError', 'tellTakerRelayEnded']
    },
    giverLeft: {
      type: 'final',
      entry: ['keepGiverLeftError', 'tellTakerRelayEnded']
    },
    abandoned: { type: 'final' }
  }
})
