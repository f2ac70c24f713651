import { describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { parseCli } from '../src/cli.ts'

const run = promisify(execFile)
const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url))
const argv = (...args: string[]): string[] => ['node', 'main.ts', ...args]

describe('command line', () => {
  it('has the documented defaults', () => {
    const o = parseCli(argv('My Film'))
    expect(o).toMatchObject({
      projectName: 'My Film', host: '0.0.0.0', port: 64646, turnHoldMs: 2_000, idleLimitMs: 120_000,
      relayTimeoutMs: 60_000, maxFrame: 64 * 1024 * 1024, chatLimit: 10_000,
      chatBytes: 1024 * 1024, outputLimit: 64 * 1024 * 1024, logFormat: 'pretty', logLevel: 'info',
      discovery: { address: '127.255.255.255', port: 54545, intervalMs: 1000 },
      persist: { dataDir: undefined }
    })
    expect(o.inspectPort).toBeUndefined()
    expect(o.secret).toBeUndefined()
  })

  it('parses every option', () => {
    const o = parseCli(argv('P', '--port', '0', '--host', '127.0.0.1', '--turn-hold', '0', '--idle-limit', '0.5',
      '--relay-timeout', '2', '--max-frame', '4096', '--chat-limit', '5', '--chat-bytes', '600000', '--output-limit', '10000000', '--secret', 's', '--log-format', 'json',
      '--log-level', 'debug', '--no-persist', '--discovery-port', '50000', '--announce-interval', '0.2', '--inspect'))
    expect(o).toMatchObject({
      port: 0, host: '127.0.0.1', turnHoldMs: 0, idleLimitMs: 500, relayTimeoutMs: 2000, maxFrame: 4096, chatLimit: 5, chatBytes: 600_000, outputLimit: 10_000_000,
      secret: 's', logFormat: 'json', logLevel: 'debug', persist: false,
      discovery: { address: '127.255.255.255', port: 50000, intervalMs: 200 }, inspectPort: 8080
    })
    expect(parseCli(argv('P', '--inspect', '9000')).inspectPort).toBe(9000)
    expect(parseCli(argv('P', '--no-discovery')).discovery).toBe(false)
    expect(parseCli(argv('P', '--data-dir', '/tmp/x')).persist).toEqual({ dataDir: '/tmp/x' })
  })

  it('refuses bad values with a clear message and a non-zero exit', async () => {
    for (const bad of [['--port', 'abc'], ['--port', '70000'], ['--turn-hold', '-1'], ['--log-format', 'xml'], ['--idle-limit', '0'], ['--chat-bytes', '1000'], ['--output-limit', 'lots'], ['--output-limit', '65536']]) {
      const err = await run(process.execPath, ['--import', 'tsx', MAIN, 'P', ...bad]).then(() => null, (e: { code: number, stderr: string }) => e)
      expect(err?.code).not.toBe(0)
      expect(err?.stderr).toMatch(/error: option/)
    }
    const missing = await run(process.execPath, ['--import', 'tsx', MAIN]).then(() => null, (e: { code: number, stderr: string }) => e)
    expect(missing?.stderr).toMatch(/missing required argument 'project'/)
  })

  it('--help lists every option', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', MAIN, '--help'])
    for (const flag of ['--host', '--port', '--turn-hold', '--idle-limit', '--relay-timeout', '--max-frame', '--chat-limit',
      '--chat-bytes', '--output-limit', '--max-connections', '--secret', '--log-format', '--log-level', '--data-dir', '--no-persist', '--discovery-port',
      '--discovery-address', '--lan', '--announce-interval', '--no-discovery', '--inspect']) {
      expect(stdout).toContain(flag)
    }
  })
})
