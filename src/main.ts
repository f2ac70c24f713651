import { startApp } from './app.ts'
import { parseCli } from './cli.ts'
import { createLog } from './log.ts'

const options = parseCli(process.argv)
const log = createLog({ format: options.logFormat, level: options.logLevel })
const app = await startApp(options, log, (code) => process.exit(code))

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => { void app.stop(signal).then(() => process.exit(0)) })
}
