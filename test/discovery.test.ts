import { spawn, type ChildProcess } from 'node:child_process'
import { createSocket, type Socket } from 'node:dgram'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { startDiscovery, type Discovery } from '../src/discovery.ts'
import { createLog, type ServerLog } from '../src/log.ts'
import { announcedAddress, firstExternalIPv4 } from '../src/net-info.ts'
import { join, WireClient } from './helpers/wire-client.ts'
import { request } from './helpers/turns.ts'

// Loopback only: announcements go to the loopback broadcast, aborts to 127.0.0.1,
// on high ports picked per test (never the default 54545).
const LOOPBACK_BROADCAST = '127.255.255.255'
const PROJECT = 'Test Film'
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ANNOUNCE = `VCStudio MULTIUSER SERVER | ${firstExternalIPv4()} | ${PROJECT}`
const TERMINAL = 'VCStudio MULTIUSER SERVER TERMINAL | '

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** A UDP port nobody uses right now (bound exclusively, then released). */
async function freeUdpPort (): Promise<number> {
  const s = createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
  const { port } = s.address()
  await new Promise<void>((resolve) => s.close(resolve))
  return port
}

async function bind (port: number, reuseAddr: boolean): Promise<Socket> {
  const s = createSocket({ type: 'udp4', reuseAddr })
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject)
    s.bind(port, '0.0.0.0', () => { s.off('error', reject); resolve() })
  })
  return s
}

/** A socket on `port` (address reuse, like a VCStudio client) collecting datagram texts. */
async function listen (port: number): Promise<{ texts: string[], until: (pred: (texts: string[]) => boolean, ms: number) => Promise<boolean> }> {
  const s = await bind(port, true)
  cleanups.push(async () => { await new Promise<void>((resolve) => s.close(resolve)) })
  const texts: string[] = []
  s.on('message', (m) => texts.push(m.toString('utf8')))
  return {
    texts,
    until: async (pred, ms) => {
      const deadline = Date.now() + ms
      while (!pred(texts)) {
        if (Date.now() > deadline) return false
        await sleep(10)
      }
      return true
    }
  }
}

async function sendUdp (text: string | Buffer, port: number, address = '127.0.0.1'): Promise<void> {
  const s = createSocket('udp4')
  if (address === LOOPBACK_BROADCAST) {
    await new Promise<void>((resolve) => s.bind(0, resolve))
    s.setBroadcast(true)
  }
  await new Promise<void>((resolve, reject) => s.send(text, port, address, (err) => { err != null ? reject(err) : resolve() }))
  await new Promise<void>((resolve) => s.close(resolve))
}

interface TestLog extends ServerLog {
  /** Human-line listeners attached right now. */
  readonly attached: () => number
  readonly warns: string[]
  readonly debugs: string[]
  readonly humans: string[]
}
function testLog (): TestLog {
  const inner = createLog({ silent: true })
  const warns: string[] = []
  const debugs: string[] = []
  const humans: string[] = []
  inner.onHumanLine((l) => humans.push(l))
  let attached = 0
  return {
    ...inner,
    onHumanLine: (listener) => {
      const detach = inner.onHumanLine(listener)
      attached++
      return () => { attached--; detach() }
    },
    attached: () => attached,
    warn: (m) => { warns.push(String(m)) },
    debug: (m) => { debugs.push(String(m)) },
    warns,
    debugs,
    humans
  }
}

async function discovery (o: { port: number, address?: string, intervalMs?: number, secret?: string, announce?: string }, log: ServerLog, onAbort = (): void => {}): Promise<Discovery> {
  const d = await startDiscovery({ projectName: PROJECT, address: o.address ?? LOOPBACK_BROADCAST, port: o.port, intervalMs: o.intervalMs ?? 100, secret: o.secret, announce: o.announce }, log, onAbort)
  cleanups.push(d.close)
  return d
}

interface Child {
  readonly process: ChildProcess
  readonly port: number
  readonly output: () => string
  readonly exited: (ms: number) => Promise<number | null | 'running'>
}

/** The real app as a child process on 127.0.0.1, TCP port picked by the OS. */
async function startChild (args: string[]): Promise<Child> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', PROJECT, '--port', '0', '--host', '127.0.0.1', '--no-persist', '--no-http', '--log-level', 'debug', '--log-format', 'pretty', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout.on('data', (b: Buffer) => { out += b.toString('utf8') })
  child.stderr.on('data', (b: Buffer) => { out += b.toString('utf8') })
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await Promise.race([exit, sleep(2_000)])
    }
  })
  const deadline = Date.now() + 10_000
  let port: number | undefined
  while (port === undefined) {
    const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out)
    if (m !== null) port = Number(m[1])
    else if (child.exitCode !== null) throw new Error(`server exited early (${child.exitCode}):\n${out}`)
    else if (Date.now() > deadline) throw new Error(`server did not start:\n${out}`)
    else await sleep(20)
  }
  return {
    process: child,
    port,
    output: () => out,
    exited: async (ms) => await Promise.race([exit, sleep(ms).then(() => 'running' as const)])
  }
}

describe('discovery (direct)', () => {
  it('announces at once and then again and again, exactly as §7 says', async () => {
    const port = await freeUdpPort()
    const rx = await listen(port)
    const log = testLog()
    const d = await discovery({ port, intervalMs: 100 }, log)
    expect(log.attached()).toBe(1)
    // Waits for the announcements themselves: the first at once, then more on the interval.
    expect(await rx.until((t) => t.length >= 4, 10_000)).toBe(true)
    const got = rx.texts.slice()
    log.human('last words')
    await d.close()
    expect(log.attached()).toBe(0)
    // A line logged just before close still leaves.
    expect(await rx.until((t) => t.includes(`${TERMINAL}last words`), 1_000)).toBe(true)
    expect(new Set(got)).toEqual(new Set([ANNOUNCE]))
    expect(log.warns).toEqual([])
    // Closed: nothing more.
    const n = rx.texts.length
    await sleep(250)
    expect(rx.texts.length).toBe(n)
  })

  it('announces the address it is given (§7: reachable, with the port when not 64646)', async () => {
    const port = await freeUdpPort()
    const rx = await listen(port)
    await discovery({ port, intervalMs: 100, announce: '127.0.0.1:5000' }, testLog())
    expect(await rx.until((t) => t.includes(`VCStudio MULTIUSER SERVER | 127.0.0.1:5000 | ${PROJECT}`), 5_000)).toBe(true)
  })

  it('announcedAddress: the listen address, or the machine\'s own for a wildcard; the port unless 64646', () => {
    expect(announcedAddress('127.0.0.1', 64646)).toBe('127.0.0.1')
    expect(announcedAddress('127.0.0.1', 6000)).toBe('127.0.0.1:6000')
    expect(announcedAddress('0.0.0.0', 64646)).toBe(firstExternalIPv4())
    expect(announcedAddress('0.0.0.0', 7000)).toBe(`${firstExternalIPv4()}:7000`)
    expect(announcedAddress('::', 64646)).toBe(firstExternalIPv4())
    expect(announcedAddress('::1', 7000)).toBe('[::1]:7000')
  })

  it('holds the port with address reuse; mirrors human lines; ignores its own datagrams and junk', async () => {
    const port = await freeUdpPort()
    const rx = await listen(port)
    const log = testLog()
    let aborts = 0
    await discovery({ port, intervalMs: 50 }, log, () => { aborts++ })
    // The abort listener is there: an exclusive bind fails.
    await expect(bind(port, false)).rejects.toMatchObject({ code: 'EADDRINUSE' })
    log.human('ann | connected | 127.0.0.1:1234')
    expect(await rx.until((t) => t.includes(`${TERMINAL}ann | connected | 127.0.0.1:1234`), 2_000)).toBe(true)
    // To the loopback broadcast, so that both sockets on the port hear it (unicast reaches only one).
    await sendUdp('VCStudio ABORT MULTIUSERS', port, LOOPBACK_BROADCAST)
    await sendUdp('hello', port, LOOPBACK_BROADCAST)
    await sendUdp(Buffer.alloc(2_000, 'VCStudio ABORT MULTIUSER'), port, LOOPBACK_BROADCAST)
    await sleep(200)
    expect(aborts).toBe(0)
    expect(log.warns).toEqual([])
    expect(log.debugs.filter((l) => l.includes('abort'))).toHaveLength(1) // only the near miss is noted
    await sendUdp('VCStudio ABORT MULTIUSER\n', port, LOOPBACK_BROADCAST)
    await sendUdp('VCStudio ABORT MULTIUSER', port, LOOPBACK_BROADCAST)
    const deadline = Date.now() + 2_000
    while (aborts === 0 && Date.now() < deadline) await sleep(10)
    await sleep(100)
    expect(aborts).toBe(1)
    expect(log.humans).toContain('recieved abort message | closing')
  })

  it('a port taken without reuse: warns once, keeps announcing', async () => {
    const port = await freeUdpPort()
    const taker = await bind(port, false)
    cleanups.push(async () => { await new Promise<void>((resolve) => taker.close(resolve)) })
    const texts: string[] = []
    taker.on('message', (m) => texts.push(m.toString('utf8')))
    const log = testLog()
    await discovery({ port, intervalMs: 50 }, log)
    await sleep(300)
    expect(log.warns).toHaveLength(1)
    expect(log.warns[0]).toMatch(/cannot listen on port \d+/)
    expect(texts).toContain(ANNOUNCE)
  })

  it('sends that fail are warned about once and never throw', async () => {
    const port = await freeUdpPort()
    const log = testLog()
    // An IPv6 address on an IPv4 socket: every send fails locally (EINVAL), nothing leaves the machine.
    const d = await discovery({ port, address: '::1', intervalMs: 20 }, log)
    log.human('a line')
    await sleep(300)
    await d.close()
    expect(log.warns).toHaveLength(1)
    expect(log.warns[0]).toMatch(/cannot send to ::1/)
  })
})

describe('discovery (the app as a child process)', () => {
  it('mirrors terminal lines of a connect and an at request', async () => {
    const udp = await freeUdpPort()
    const rx = await listen(udp)
    const child = await startChild(['--discovery-port', String(udp), '--announce-interval', '0.2'])
    const { client } = await join(child.port, PROJECT, { username: 'ann' })
    cleanups.push(() => client.close())
    expect(await request(client, ['at', '/rnd/Scene_1', '2024/01/02-03:04:05'])).toEqual(['yours'])
    const connected = `${TERMINAL}ann | connected | ${client.userId}`
    const at = `${TERMINAL}${client.userId} | at | /rnd/Scene_1 | time | 2024/01/02-03:04:05`
    expect(await rx.until((t) => t.includes(connected) && t.includes(at), 3_000)).toBe(true)
    // §7: the server listens on 127.0.0.1 and not on 64646, so that is what it announces.
    const announce = `VCStudio MULTIUSER SERVER | 127.0.0.1:${child.port} | ${PROJECT}`
    expect(await rx.until((t) => t.includes(announce), 3_000)).toBe(true)
    expect(rx.texts.every((t) => t === announce || t.startsWith(TERMINAL))).toBe(true)
    expect(rx.texts).toContain(`${TERMINAL}multiuser server | started | 127.0.0.1:${child.port} | ${PROJECT}`)
    // The lines of an abort (sent to the loopback broadcast, so both sockets on the port hear it)
    // still leave before the sockets close.
    await sendUdp('VCStudio ABORT MULTIUSER', udp, LOOPBACK_BROADCAST)
    expect(await child.exited(5_000)).toBe(0)
    expect(await rx.until((t) => t.includes(`${TERMINAL}recieved abort message | closing`) && t.includes(`${TERMINAL}multiuser server | stopping | abort`), 1_000)).toBe(true)
  })

  it('an abort datagram stops the server: clients see the close, exit code 0', async () => {
    const udp = await freeUdpPort()
    const child = await startChild(['--discovery-port', String(udp), '--announce-interval', '0.2'])
    const { client } = await join(child.port, PROJECT)
    cleanups.push(() => client.close())
    await sendUdp('VCStudio ABORT MULTIUSER', udp)
    await client.waitClosed(5_000)
    expect(await child.exited(5_000)).toBe(0)
    expect(child.output()).toContain('recieved abort message | closing')
  })

  it('with --secret, only the abort carrying it is obeyed', async () => {
    const udp = await freeUdpPort()
    const child = await startChild(['--discovery-port', String(udp), '--announce-interval', '0.2', '--secret', 's'])
    const { client } = await join(child.port, PROJECT, { secret: 's' })
    cleanups.push(() => client.close())
    await sendUdp('VCStudio ABORT MULTIUSER', udp)
    await sendUdp('VCStudio ABORT MULTIUSER | wrong', udp)
    expect(await child.exited(500)).toBe('running')
    expect(client.closed).toBe(false)
    expect(child.output()).not.toContain('recieved abort message')
    await sendUdp('VCStudio ABORT MULTIUSER | s', udp)
    await client.waitClosed(5_000)
    expect(await child.exited(5_000)).toBe(0)
    expect(child.output()).toContain('recieved abort message | closing')
  })

  it('--no-discovery: nothing is sent and no abort listener exists', async () => {
    const udp = await freeUdpPort()
    const rx = await listen(udp)
    const child = await startChild(['--discovery-port', String(udp), '--announce-interval', '0.1', '--no-discovery'])
    const { client } = await join(child.port, PROJECT)
    cleanups.push(() => client.close())
    await sendUdp('VCStudio ABORT MULTIUSER', udp)
    await sleep(1_000)
    expect(rx.texts).toEqual(['VCStudio ABORT MULTIUSER']) // only our own abort, heard by our listener
    expect(await child.exited(0)).toBe('running')
    expect(client.closed).toBe(false)
    // Nobody but our listener holds the port: once it is closed, an exclusive bind succeeds.
    for (const c of cleanups.splice(0, 1)) await c()
    const exclusive = await bind(udp, false)
    await new Promise<void>((resolve) => exclusive.close(resolve))
  })
})
