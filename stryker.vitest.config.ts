import { defineConfig } from 'vitest/config'

/**
 * The test files Stryker runs per mutant (stryker.config.mjs): the fast
 * in-process suites that exercise protocol/, actors/, src/relay-pipe.ts and
 * src/store.ts. Left out, to keep a mutant's run to seconds on 2 shared
 * cores: the child-process suites (crash, operator, cli, persist's
 * restarts) and the slow in-process ones (model paths, server-core,
 * relay-idle and relay-backpressure, which wait on real timers). Mutants
 * only those suites would kill show up as survivors: docs/mutation.md
 * lists the ones we checked.
 */
/**
 * Quicker runs of one area on a busy machine (docs/mutation.md has the
 * command for each): `MUTATION_SUITES=protocol` (the pure protocol tests),
 * `store` (the store's tests and the §8 ones), `relay` (src/relay-pipe.ts,
 * actors/giver.ts and actors/taker.ts: the in-process relay tests over fake
 * ports, whose idle limits are 0.1 s, and the quick TCP relay suites; the
 * multi-MiB relay-files suite stays out), `pure` (actors/shared-state.ts and actors/notifications.ts:
 * their unit tests), `session` (actors/session.ts, actors/coordinator.ts and
 * actors/session-clock.ts: the in-process suites that drive a real server's
 * sessions and coordinator over real sockets, about 15 s in all: a surviving
 * mutant runs all of them; docs/mutation-actors.md).
 */
const FOCUSED: Record<string, string[]> = {
  protocol: ['test/protocol/**/*.test.ts'],
  store: ['test/persist.test.ts', 'test/durability.test.ts', 'test/store-edges.test.ts'],
  relay: [
    'test/relay-pipe.test.ts',
    'test/relay-smoke.test.ts',
    'test/relay-failures.test.ts',
    'test/relay-rev2.test.ts'
  ],
  pure: ['test/shared-state.test.ts', 'test/notifications.test.ts'],
  // actors/giver.ts and actors/taker.ts: the relay set with the relay timeout and the out-of-turn give answers.
  'relay-actors': [
    'test/relay-pipe.test.ts',
    'test/relay-smoke.test.ts',
    'test/relay-failures.test.ts',
    'test/relay-rev2.test.ts',
    'test/relay-timeout.test.ts',
    'test/relay-out-of-turn.test.ts'
  ],
  session: [
    'test/server-core.test.ts',
    'test/pinning.test.ts',
    'test/robustness.test.ts',
    'test/relay-out-of-turn.test.ts',
    'test/relay-failures.test.ts',
    'test/relay-rev2.test.ts',
    'test/relay-timeout.test.ts',
    'test/durability.test.ts',
    'test/actors/**/*.test.ts'
  ]
}
const focused = FOCUSED[process.env.MUTATION_SUITES ?? '']

export default defineConfig({
  test: {
    include: focused ?? [
      'test/protocol/**/*.test.ts',
      'test/shared-state.test.ts',
      'test/durability.test.ts',
      'test/persist.test.ts',
      'test/store-edges.test.ts',
      'test/relay-pipe.test.ts',
      'test/relay-smoke.test.ts',
      'test/relay-failures.test.ts',
      'test/relay-files.test.ts',
      'test/smoke.test.ts'
    ],
    testNamePattern: process.env.MUTATION_SUITES === 'session'
      // Out of the session set, to keep a surviving mutant's run short: three tests of the connection
      // and the server's socket (200 clients at once, TCP flow control, the busy release) that wait seconds.
      ? '^(?!.*(200 clients connected at once|reads at most one frame ahead|a busy refusal releases its socket))'
      : '^(?!server restarts)',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    maxWorkers: 1
  }
})
