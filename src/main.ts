import { parseCli } from './cli.ts'
import { createLog } from './log.ts'
import { firstExternalIPv4 } from './net-info.ts'
import { startServer } from './server.ts'

const options = parseCli(process.argv)
const log = createLog({ format: options.logFormat, level: options.logLevel })

const server = await startServer(options, log)
log.human(`multiuser server | started | ${firstExternalIPv4()} | ${options.projectName}`)
log.debug(`listening on ${server.host}:${server.port}`)

let stopping = false
async function shutdown (why: string): Promise<void> {
  if (stopping) return
  stopping = true
  log.human(`multiuser server | stopping | ${why}`)
  await server.close()
  process.exit(0)
}
process.on('SIGINT', () => { void shutdown('SIGINT') })
process.on('SIGTERM', () => { void shutdown('SIGTERM') })
