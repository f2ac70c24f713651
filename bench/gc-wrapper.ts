/**
 * Bench only: runs the real server (src/main.ts) and lets the bench ask for
 * a full garbage collection with SIGUSR2, so RSS can be read without the
 * young generation's garbage in it. Needs node --expose-gc.
 */
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with --expose-gc')
process.on('SIGUSR2', () => { gc(); gc() })
await import('../src/main.ts')
