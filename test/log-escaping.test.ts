/**
 * §2 rev 2 and issue 12: client-supplied text never forges a log line, in the
 * pretty log, the JSON log or the UDP terminal mirror.
 */
import { spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { escapeLogText } from '../src/log.ts'
import { join, WireClient } from './helpers/wire-client.ts'
import { request } from './helpers/turns.ts'

const PROJECT = 'Test Film'
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const TERMINAL = 'VCStudio MULTIUSER SERVER TERMINAL | '
/** What a hostile client would like to see as a line of its own. */
const FORGED = 'boss | connected | 10.0.0.1:1'
const HOSTILE_PATH = `/chr/a\n${FORGED}\r\u001b[2J\u0085\u2028x`

const cleanups: Array<() => unknown> = []
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c() })

async function until (what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** A loopback UDP listener on an ephemeral port, collecting datagram texts. */
async function udpListener (): Promise<{ port: number, texts: string[] }> {
  const s = createSocket({ type: 'udp4', reuseAddr: true })
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
  cleanups.push(async () => { await new Promise<void>((resolve) => s.close(resolve)) })
  const texts: string[] = []
  s.on('message', (m) => texts.push(m.toString('utf8')))
  return { port: s.address().port, texts }
}

/** The real app as a child process; its stdout, as text. */
async function startChild (format: 'pretty' | 'json', udpPort: number): Promise<{ port: number, out: () => string }> {
  const child = spawn(process.execPath, [
    '--import', 'tsx', 'src/main.ts', PROJECT, '--port', '0', '--host', '127.0.0.1', '--no-persist', '--no-http',
    '--log-level', 'debug', '--log-format', format, '--discovery-port', String(udpPort), '--discovery-address', '127.0.0.1'
  ], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (b: Buffer) => { out += b.toString('utf8') })
  child.stderr.on('data', (b: Buffer) => { out += b.toString('utf8') })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  let port = 0
  await until('listening line', () => {
    const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out)
    if (m !== null) port = Number(m[1])
    return m !== null || child.exitCode !== null
  })
  if (port === 0) throw new Error(`server exited early:\n${out}`)
  return { port, out: () => out }
}

describe('log lines are escaped', () => {
  it('escapeLogText writes controls, DEL, C1 and line separators as escapes, and leaves the rest', () => {
    expect(escapeLogText('a\nb\rc\td\u0000e\u001bf\u007fg\u0085h\u2028i\u2029j')).toBe('a\\nb\\rc\\td\\u0000e\\u001bf\\u007fg\\u0085h\\u2028i\\u2029j')
    expect(escapeLogText('Zoë | /chr/Moria | 日本 | 😀 | 100%')).toBe('Zoë | /chr/Moria | 日本 | 😀 | 100%')
  })

  for (const format of ['pretty', 'json'] as const) {
    it(`a path with a newline and terminal escapes stays on its line (${format} log and UDP mirror)`, async () => {
      const udp = await udpListener()
      const child = await startChild(format, udp.port)
      const { client } = await join(child.port, PROJECT, { username: 'ann' })
      cleanups.push(() => client.close())
      expect(await request(client, ['at', HOSTILE_PATH, '2025/01/01-00:00:00'])).toEqual(['yours'])
      const escaped = '/chr/a\\nboss | connected | 10.0.0.1:1\\r\\u001b[2J\\u0085\\u2028x'
      const mirrored = `${TERMINAL}${client.userId} | at | ${escaped} | time | 2025/01/01-00:00:00`
      await until('mirrored at line', () => udp.texts.includes(mirrored))
      await until('logged at line', () => child.out().includes(format === 'json' ? JSON.stringify(mirrored.slice(TERMINAL.length)).slice(1, -1) : escaped))
      const lines = child.out().split('\n')
      // No line of the log, and no datagram, starts (after its prefix) with the forged text.
      expect(lines.filter((l) => l.includes(FORGED) && !l.includes(' | at | '))).toEqual([])
      expect(child.out()).not.toContain('\u001b[2J')
      expect(udp.texts.filter((t) => t.startsWith(TERMINAL + FORGED))).toEqual([])
      expect(udp.texts.every((t) => !/[\n\r\u001b\u0085\u2028]/.test(t))).toBe(true)
    })
  }

  it('a username with a control character is refused at the handshake (§2)', async () => {
    const udp = await udpListener()
    const child = await startChild('pretty', udp.port)
    const c = await WireClient.connect(child.port)
    cleanups.push(() => c.close())
    expect(await c.recv()).toBe('username?')
    c.send(`ann\n${FORGED}`)
    expect(await c.recv()).toEqual(['error', 'bad_handshake', expect.stringContaining('U+000a')])
    await c.waitClosed()
    expect(child.out()).not.toContain(`\n${FORGED}`)
  })
})
