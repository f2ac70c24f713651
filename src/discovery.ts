import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { timingSafeEqual } from 'node:crypto'
import type { ServerLog } from './log.ts'
import { firstExternalIPv4 } from './net-info.ts'

export interface DiscoveryOptions {
  readonly projectName: string
  readonly secret?: string
  /** Where announcements and terminal lines go. */
  readonly address: string
  /** The UDP port: announcements are sent to it, aborts are received on it. */
  readonly port: number
  readonly intervalMs: number
  /** §7 `<ip>` or `<ip>:<port>` to announce (see announcedAddress); default the machine's own address. */
  readonly announce?: string
}

export interface Discovery {
  close: () => Promise<void>
}

/** §7 datagram prefixes. */
export const ANNOUNCE_PREFIX = 'VCStudio MULTIUSER SERVER | '
export const TERMINAL_PREFIX = 'VCStudio MULTIUSER SERVER TERMINAL | '
export const ABORT_MESSAGE = 'VCStudio ABORT MULTIUSER'
export const ABORT_LOG_LINE = 'recieved abort message | closing' // sic, as the contract spells it

/** Datagrams larger than this are dropped unread (an abort is a few dozen bytes). */
export const MAX_CONTROL_DATAGRAM = 1024
/** Text put in one datagram is cut to this many UTF-16 units (≤ 3 bytes each in UTF-8, well under 64 KiB). */
const MAX_TEXT_UNITS = 8000
/** How long close() waits for datagrams still being sent (the last terminal lines). */
const CLOSE_FLUSH_MS = 250

/**
 * §7: announces the server, mirrors the human log lines and listens for a
 * remote abort, all over UDP on `options.port`. Never throws and never stops
 * the server for UDP trouble: a failing bind or send is logged once (warn).
 */
export async function startDiscovery (options: DiscoveryOptions, log: ServerLog, onAbort: () => void): Promise<Discovery> {
  const warned = new Set<string>()
  const warnOnce = (key: string, message: string): void => {
    if (warned.has(key)) { log.debug(message); return }
    warned.add(key)
    log.warn(message)
  }

  let closed = false
  const inFlight = new Set<Promise<void>>()

  // Sender: an ephemeral port, broadcast allowed.
  const sender = await bindSocket({ port: 0 }, (err) => warnOnce('sender-bind', `UDP discovery | cannot open a sending socket | ${err.message} | no announcements, no terminal mirror`))
  sender?.on('error', (err) => warnOnce('sender', `UDP discovery | socket error | ${err.message}`))
  if (sender !== undefined) {
    try {
      sender.setBroadcast(true)
    } catch (err) {
      warnOnce('broadcast', `UDP discovery | cannot enable broadcast | ${(err as Error).message}`)
    }
  }

  const send = (text: string): void => {
    if (closed || sender === undefined) return
    const sent = new Promise<void>((resolve) => {
      try {
        sender.send(Buffer.from(text, 'utf8'), options.port, options.address, (err) => {
          if (err != null) warnOnce('send', `UDP discovery | cannot send to ${options.address}:${options.port} | ${err.message}`)
          resolve()
        })
      } catch (err) {
        warnOnce('send', `UDP discovery | cannot send to ${options.address}:${options.port} | ${(err as Error).message}`)
        resolve()
      }
    })
    inFlight.add(sent)
    void sent.then(() => inFlight.delete(sent))
  }

  // Announcer: one at once, then every interval.
  const where = options.announce ?? firstExternalIPv4()
  const announce = (): void => { send(`${ANNOUNCE_PREFIX}${where} | ${cut(options.projectName)}`) }
  announce()
  const timer = setInterval(announce, Math.max(1, options.intervalMs))
  timer.unref()

  // Terminal mirror.
  const detach = log.onHumanLine((line) => { send(TERMINAL_PREFIX + cut(line)) })

  // Abort listener: 0.0.0.0 so both broadcasts and unicast to any local address arrive.
  const loopbackOnly = isLoopback(options.address)
  const expected = Buffer.from(options.secret === undefined ? ABORT_MESSAGE : `${ABORT_MESSAGE} | ${options.secret}`, 'utf8')
  const bare = Buffer.from(ABORT_MESSAGE, 'utf8')
  let aborted = false
  const onMessage = (msg: Buffer, from: RemoteInfo): void => {
    if (closed || aborted || msg.length > MAX_CONTROL_DATAGRAM) return
    const body = withoutNewline(msg)
    // Everything that is not an abort (our own announcements and terminal lines included) is ignored quietly.
    if (!startsWith(body, bare)) return
    if (loopbackOnly && !isLoopback(from.address)) {
      log.debug(`UDP abort ignored | from ${from.address}:${from.port} | discovery is loopback-only`)
      return
    }
    if (!sameBytes(body, expected)) {
      log.debug(`UDP abort ignored | from ${from.address}:${from.port} | ${options.secret === undefined ? 'not the abort message' : 'missing or wrong secret'}`)
      return
    }
    aborted = true
    log.human(ABORT_LOG_LINE)
    onAbort()
  }
  const listener = await bindSocket(
    { port: options.port, address: '0.0.0.0' },
    (err) => warnOnce('listener-bind', `UDP discovery | cannot listen on port ${options.port} | ${err.message} | remote abort unavailable`)
  )
  if (listener !== undefined) {
    listener.on('error', (err) => warnOnce('listener', `UDP discovery | abort listener error | ${err.message}`))
    listener.on('message', onMessage)
  }

  let closing: Promise<void> | undefined
  return {
    close: () => {
      closing ??= (async () => {
        clearInterval(timer)
        detach()
        // Let the last lines (e.g. "stopping") leave, bounded.
        if (inFlight.size > 0) {
          let t: NodeJS.Timeout | undefined
          await Promise.race([Promise.all(inFlight), new Promise((resolve) => { t = setTimeout(resolve, CLOSE_FLUSH_MS) })])
          clearTimeout(t)
        }
        closed = true
        await Promise.all([closeSocket(sender), closeSocket(listener)])
      })()
      return closing
    }
  }
}

/** A UDP socket bound as asked, with address reuse; undefined (after `onError`) when binding fails. */
async function bindSocket (where: { port: number, address?: string }, onError: (err: Error) => void): Promise<Socket | undefined> {
  let socket: Socket
  try {
    socket = createSocket({ type: 'udp4', reuseAddr: true })
  } catch (err) {
    onError(err as Error)
    return undefined
  }
  return await new Promise((resolve) => {
    const fail = (err: Error): void => {
      try { socket.close() } catch {}
      onError(err)
      resolve(undefined)
    }
    socket.once('error', fail)
    try {
      socket.bind(where, () => {
        socket.off('error', fail)
        socket.unref()
        resolve(socket)
      })
    } catch (err) {
      fail(err as Error)
    }
  })
}

async function closeSocket (socket: Socket | undefined): Promise<void> {
  if (socket === undefined) return
  await new Promise<void>((resolve) => {
    try {
      socket.close(() => resolve())
    } catch {
      resolve()
    }
  })
}

function isLoopback (address: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address) || address === 'localhost' || address === '::1' || address === '::ffff:127.0.0.1'
}

/** Tolerates one trailing newline (`echo … | nc -u`). */
function withoutNewline (msg: Buffer): Buffer {
  let end = msg.length
  if (end > 0 && msg[end - 1] === 0x0a) end--
  if (end > 0 && msg[end - 1] === 0x0d) end--
  return msg.subarray(0, end)
}

function startsWith (msg: Buffer, prefix: Buffer): boolean {
  return msg.length >= prefix.length && msg.compare(prefix, 0, prefix.length, 0, prefix.length) === 0
}

function sameBytes (a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}

/** Keeps a datagram's text within UDP limits without splitting a surrogate pair. */
function cut (text: string): string {
  if (text.length <= MAX_TEXT_UNITS) return text
  let end = MAX_TEXT_UNITS
  const last = text.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end--
  return `${text.slice(0, end)}…`
}
