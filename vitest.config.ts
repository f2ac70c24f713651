import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores here and in CI: real servers and sockets per file, so keep files parallel but bounded.
    maxWorkers: 2
  }
})
