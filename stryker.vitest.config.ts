import { defineConfig } from 'vitest/config'

/**
 * The test files Stryker runs per mutant (stryker.config.mjs): those that
 * exercise protocol/, actors/, src/relay-pipe.ts and src/store.ts in process.
 * The suites that start child processes (crash, operator, cli, persist's
 * restarts) stay out: far too slow per mutant.
 */
export default defineConfig({
  test: {
    include: [
      'test/protocol/**/*.test.ts',
      'test/shared-state.test.ts',
      'test/server-core.test.ts',
      'test/durability.test.ts',
      'test/persist.test.ts',
      'test/relay-*.test.ts',
      'test/model/*.test.ts',
      'test/smoke.test.ts'
    ],
    testNamePattern: '^(?!server restarts)',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    maxWorkers: 1
  }
})
