import { startApp, type App } from './app.ts'
import { parseCli } from './cli.ts'
import { createLog } from './log.ts'

const options = parseCli(process.argv)
const log = createLog({ format: options.logFormat, level: options.logLevel })

// Signals are taken before start-up, so a stop that arrives while starting is still orderly.
let app: App | undefined
let stopSignal: string | undefined
const stop = (signal: string): void => {
  stopSignal ??= signal
  if (app !== undefined) void app.stop(signal).then(() => process.exit(0))
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(signal))

app = await startApp(options, log, (code) => process.exit(code))
if (stopSignal !== undefined) stop(stopSignal)
