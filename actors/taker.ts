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
  /** Time the giver has held its turn with this serve pending, before the current hold. */
  readonly heldMs: number
  /** performance.now() when the current hold began, while the relay timeout clock runs. */
  readonly heldSince: number | null
  readonly error: { readonly code: ErrorCode, readonly detail: string } | null
  readonly violation: string | null
}

type TakerEvent =
  /** The giver holds its turn with this serve pending: the relay timeout clock runs. */
  | { type: 'giver.holdsTurn' }
  /** The giver left its turn (a pass, a request, its own get): the clock stops. */
  | { type: 'giver.busy' }
  | { type: 'giver.started' }
  /** The giver answered `give` with a request sent out of turn: the serve waits for its next pass (§4). */
  | { type: 'giver.deferred' }
  | { type: 'giver.left' }
  | { type: 'taker.left' }
  | { type: 'relay.withdrawn' }
  | { type: 'relay.offered', files: number }
  | { type: 'relay.outcome', outcome: RelayOutcome }

/**
 * The taker side of one relay: the taker is paused until the giver starts
 * (or the relay timeout withdraws the request), then follows the relay to its
 * end and hands the taker its turn back.
 *
 * §5: the relay timeout measures the giver's silence, not its queue, so its
 * clock runs only while the giver holds its turn (`giverHoldsTurn`), adding up
 * over the holds; a giver busy in a pass (serving other relays) keeps this
 * taker waiting, not failing. The giver's session says when it holds the turn
 * only while a serve is pending for it, so ordinary passes cost nothing.
 */
export const takerMachine = setup({
  types: {
    context: {} as TakerContext,
    events: {} as TakerEvent,
    input: {} as TakerInput
  },
  delays: {
    relayTimeout: ({ context }) => Math.max(0, context.relayTimeoutMs - context.heldMs)
  },
  guards: {
    // Stryker disable next-line StringLiteral: an event type never matched makes the guard false, and done and failed then end the same (keepOutcome keeps null and null for a success)
    relaySucceeded: ({ event }) => event.type === 'relay.outcome' && event.outcome.takerError === undefined && event.outcome.takerViolation === undefined
  },
  actions: {
    startClock: assign({ heldSince: () => performance.now() }),
    stopClock: assign(({ context }) => context.heldSince === null
      ? {}
      : { heldMs: context.heldMs + performance.now() - context.heldSince, heldSince: null }),
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
      error: ({ context }) => ({
        code: 'relay_timeout' as const,
        detail: `the giver held its turn for ${context.relayTimeoutMs / 1000} s without starting the relay`
      })
    }),
    keepGiverLeftError: assign({
      error: () => ({ code: 'relay_failed' as const, detail: 'the giver disconnected before the relay started' })
    })
  }
}).createMachine({
  id: 'taker',
  context: ({ input }) => ({ ...input, heldMs: 0, heldSince: null, error: null, violation: null }),
  initial: 'waitingForGiver',
  states: {
    waitingForGiver: {
      initial: 'giverBusy',
      states: {
        giverBusy: {
          on: { 'giver.holdsTurn': 'giverHoldsTurn' }
        },
        giverHoldsTurn: {
          entry: 'startClock',
          exit: 'stopClock',
          after: { relayTimeout: '#taker.timingOut' },
          on: { 'giver.busy': 'giverBusy' }
        }
      },
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
      initial: 'awaitingManifest',
      states: {
        /** Until the giver's manifest reaches the taker (or the giver turns out to have no such folder). */
        awaitingManifest: {
          on: {
            'relay.offered': 'taking',
            // Not started after all: the clock goes on from where it stopped.
            'giver.deferred': '#taker.waitingForGiver'
          }
        },
        /** The taker chooses its getlist and receives the files. */
        taking: {}
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
