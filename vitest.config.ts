import { defineConfig } from 'vitest/config'

/**
 * The suites that start server processes (and the crash test's bursts and
 * kills) run after the in-process ones, not beside them: on 2 cores their
 * start-ups starve an in-process server under load (the 200-client scale
 * test), and they are the slower half anyway.
 */
const CHILD_PROCESS_SUITES = [
  'test/cli.test.ts',
  'test/crash.test.ts',
  'test/discovery.test.ts',
  'test/inspector.test.ts',
  'test/log-escaping.test.ts',
  'test/operator.test.ts',
  'test/persist.test.ts',
  'test/status-page.test.ts',
  'test/client/cli.test.ts',
  'test/client/cli-reconnect.test.ts'
]

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores here and in CI: real servers and sockets per file, so keep files parallel but bounded.
    maxWorkers: 2,
    // In CI, also a JSON report, from which .ci/run prints a plain "N passed, N failed" line.
    reporters: process.env.CI === 'true' ? ['default', 'json'] : ['default'],
    outputFile: { json: 'test-results.json' },
    projects: [
      { extends: true, test: { name: 'in-process', include: ['test/**/*.test.ts'], exclude: CHILD_PROCESS_SUITES, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'child-processes', include: CHILD_PROCESS_SUITES, sequence: { groupOrder: 1 } } }
    ]
  }
})
