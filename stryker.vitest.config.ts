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
/** `MUTATION_SUITES=protocol`: only the pure protocol tests (for a quick run over protocol/ on a busy machine). */
const PROTOCOL_ONLY = process.env.MUTATION_SUITES === 'protocol'

export default defineConfig({
  test: {
    include: PROTOCOL_ONLY ? ['test/protocol/**/*.test.ts'] : [
      'test/protocol/**/*.test.ts',
      'test/shared-state.test.ts',
      'test/durability.test.ts',
      'test/persist.test.ts',
      'test/relay-pipe.test.ts',
      'test/relay-smoke.test.ts',
      'test/relay-failures.test.ts',
      'test/relay-files.test.ts',
      'test/smoke.test.ts'
    ],
    testNamePattern: '^(?!server restarts)',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    maxWorkers: 1
  }
})
