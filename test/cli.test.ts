import { describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseCli, SECRET_ENV } from '../src/cli.ts'

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
    expect(o.http).toEqual({ host: '127.0.0.1', port: 64647 })
  })

  it('configures the HTTP side: --http, --no-http, --http-host (exposed only with --secret)', async () => {
    expect(parseCli(argv('P', '--http', '0')).http).toEqual({ host: '127.0.0.1', port: 0 })
    expect(parseCli(argv('P', '--http', '8000', '--http-host', '::1')).http).toEqual({ host: '::1', port: 8000 })
    expect(parseCli(argv('P', '--no-http')).http).toBe(false)
    expect(parseCli(argv('P', '--http-host', '0.0.0.0', '--secret', 's')).http).toEqual({ host: '0.0.0.0', port: 64647 })
    // Other loopback addresses count as exposed too.
    for (const host of ['0.0.0.0', '127.0.0.2', '::']) {
      const err = await run(process.execPath, ['--import', 'tsx', MAIN, 'P', '--http-host', host]).then(() => null, (e: { code: number, stderr: string }) => e)
      expect(err?.code).toBe(1)
      expect(err?.stderr).toContain(`error: --http-host ${host} exposes the status page beyond this machine`)
      expect(err?.stderr).toContain('--secret')
    }
    const bad = await run(process.execPath, ['--import', 'tsx', MAIN, 'P', '--http', '70000']).then(() => null, (e: { code: number, stderr: string }) => e)
    expect(bad?.stderr).toMatch(/error: option '--http <port>' argument '70000' is invalid/)
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
      '--chat-bytes', '--output-limit', '--max-connections', '--secret', '--secret-file', SECRET_ENV, '--version', '--log-format', '--log-level', '--data-dir', '--no-persist', '--discovery-port',
      '--discovery-address', '--lan', '--announce-interval', '--no-discovery', '--inspect', '--http <port>', '--no-http', '--http-host']) {
      expect(stdout).toContain(flag)
    }
  })

  it('takes the secret from --secret, --secret-file or the environment, in that order; both options at once are refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-test-'))
    try {
      const file = join(dir, 'secret')
      writeFileSync(file, 'from file\r\nnot this\n')
      const env = { [SECRET_ENV]: 'from env' }
      expect(parseCli(argv('P'), {}).secret).toBeUndefined()
      expect(parseCli(argv('P'), { [SECRET_ENV]: '' }).secret).toBeUndefined()
      expect(parseCli(argv('P'), env).secret).toBe('from env')
      expect(parseCli(argv('P', '--secret-file', file), env).secret).toBe('from file')
      expect(parseCli(argv('P', '--secret', 'given'), env).secret).toBe('given')

      const fails = async (args: string[]): Promise<string> => {
        const err = await run(process.execPath, ['--import', 'tsx', MAIN, 'P', '--no-discovery', '--no-persist', ...args])
          .then(() => null, (e: { code: number, stderr: string }) => e)
        expect(err?.code).toBe(1)
        return err?.stderr ?? ''
      }
      expect(await fails(['--secret', 'a', '--secret-file', file])).toMatch(/--secret and --secret-file exclude each other/)
      expect(await fails(['--secret-file', join(dir, 'missing')])).toMatch(/cannot read --secret-file .*missing \(ENOENT\)/)
      writeFileSync(join(dir, 'empty'), '\n')
      expect(await fails(['--secret-file', join(dir, 'empty')])).toMatch(/first line of --secret-file .*empty is empty/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
