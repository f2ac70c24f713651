import { startApp, type App } from './app.ts'
import { parseCli } from './cli.ts'
import { createLog } from './log.ts'
import { OperatorError } from './operator-error.ts'

const options = parseCli(process.argv)
const log = createLog({ format: options.logFormat, level: options.logLevel })

// Signals are taken before start-up: once started, a stop is orderly (sessions
// closed, store flushed, lock released); during start-up (which may wait on a
// data dir that does not answer) nothing is served yet and the process exits.
let app: App | undefined
const stop = (signal: string): void => {
  if (app !== undefined) {
    void app.stop(signal).then(() => process.exit(0))
    return
  }
  log.human(`multiuser server | stopping | ${signal} during start-up`)
  process.exit(0)
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(signal))

try {
  app = await startApp(options, log, (code) => process.exit(code))
} catch (err) {
  // What the operator can fix is one line; anything else is a bug, with its stack.
  if (err instanceof OperatorError) log.error(`multiuser server | cannot start | ${err.message}`)
  else log.error(`multiuser server | cannot start | ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  process.exit(1)
}
