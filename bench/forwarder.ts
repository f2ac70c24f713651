/**
 * The bare forwarder bench/relay.ts measures the relay against: a child
 * process that takes one connection on each of two loopback ports and does
 * nothing but `src.pipe(dst)` (no framing, no checks).
 *
 *   node --import tsx bench/forwarder.ts [--hwm <bytes>]
 *
 * Prints `forwarding <srcPort> <dstPort>`, then `done <bytes>` when the
 * source ends; exits after that (or after 120 s, whatever happens).
 */
import { createServer, type Server, type Socket } from 'node:net'
import { once } from 'node:events'

const hwmArg = process.argv.indexOf('--hwm')
const highWaterMark = hwmArg > 0 ? Number(process.argv[hwmArg + 1]) : undefined
const options = highWaterMark !== undefined ? { highWaterMark, noDelay: true } : { noDelay: true }

setTimeout(() => process.exit(2), 120_000).unref()

function firstConnection (server: Server): Promise<Socket> {
  return new Promise((resolve) => server.once('connection', (s: Socket) => { server.close(); resolve(s) }))
}

const srcServer = createServer(options)
const dstServer = createServer(options)
srcServer.listen(0, '127.0.0.1')
dstServer.listen(0, '127.0.0.1')
await Promise.all([once(srcServer, 'listening'), once(dstServer, 'listening')])
const port = (s: Server): number => (s.address() as { port: number }).port
const src = firstConnection(srcServer)
const dst = firstConnection(dstServer)
console.log(`forwarding ${port(srcServer)} ${port(dstServer)}`)

const [a, b] = await Promise.all([src, dst])
a.on('error', () => {})
b.on('error', () => {})
a.pipe(b)
a.on('end', () => {
  console.log(`done ${a.bytesRead}`)
  b.end(() => process.exit(0))
})
