/**
 * Operator errors (issue 12, item 7), each against the real server process:
 * clear one-line errors and exit code 1 instead of hangs and stack traces,
 * one server per data dir, --version, and the secret kept off the command line.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { SECRET_ENV } from '../src/cli.ts'
import { LOCK_NAME, PID_NAME } from '../src/store.ts'
import { PROJECT, spawnServer, startServerProcess, type SpawnedServer } from './helpers/server-process.ts'
import { join as joinServer, WireClient } from './helpers/wire-client.ts'

const temps: string[] = []
function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'operator-test-'))
  temps.push(dir)
  return dir
}
afterAll(() => { for (const dir of temps) rmSync(dir, { recursive: true, force: true }) })

/** The server's lines at level ERROR; and that no stack trace was printed. */
function errorLines (server: SpawnedServer): string[] {
  expect(server.output()).not.toMatch(/\n\s+at /)
  return server.output().split('\n').filter((l) => l.includes('ERROR'))
}

async function takenPort (): Promise<{ port: number, blocker: Server }> {
  const blocker = createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  const address = blocker.address()
  return { port: typeof address === 'object' && address !== null ? address.port : 0, blocker }
}

describe('operator errors', () => {
  it('a second server on the same data dir refuses to start and names the first one\'s pid', async () => {
    const dir = join(tempDir(), 'data')
    const first = await startServerProcess(['--data-dir', dir])
    expect(JSON.parse(readFileSync(join(dir, PID_NAME), 'utf8')).pid).toBe(first.child.pid)
    const second = spawnServer(['--data-dir', dir])
    expect(await second.exited).toBe(1)
    expect(errorLines(second)).toEqual([expect.stringMatching(new RegExp(`cannot start \\| the data dir .*data is in use by another server, pid ${first.child.pid} on `))])
    // The first one is unharmed and still serves; its orderly stop releases the data dir.
    const ann = await joinServer(first.port, PROJECT, { username: 'ann' })
    ann.client.close()
    expect(await first.stop()).toBe(0)
    expect(existsSync(join(dir, LOCK_NAME))).toBe(false)
    expect(existsSync(join(dir, PID_NAME))).toBe(false)
  })

  it('a data dir where mkdir never answers (/proc) gives a clear error and exit code 1, not a hang', async () => {
    const server = spawnServer(['--data-dir', '/proc/vcstudio-nope/data'])
    expect(await server.exited).toBe(1)
    expect(errorLines(server)).toEqual([expect.stringMatching(/cannot start \| (the data dir \/proc\/vcstudio-nope\/data could not be set up within 5 s \(creating or locking it did not answer\)|cannot create the data dir \/proc\/vcstudio-nope\/data)/)])
  })

  it('Ctrl-C during a start-up that waits on the data dir stops the server at once', async () => {
    const server = spawnServer(['--data-dir', '/proc/vcstudio-nope/data'])
    await server.waitFor(/setting up the data dir/)
    server.child.kill('SIGINT')
    const code = await server.exited
    if (code === 0) {
      expect(server.output()).toMatch(/stopping \| SIGINT during start-up/)
    } else {
      // Where mkdir in /proc answers at once (ENOENT), the start may have failed before the signal came.
      expect(code).toBe(1)
      expect(server.output()).toMatch(/cannot create the data dir/)
    }
  })

  it('a taken TCP port is one clear line and exit code 1, and the data dir is released', async () => {
    const { port, blocker } = await takenPort()
    const dir = join(tempDir(), 'data')
    try {
      const server = spawnServer(['--data-dir', dir, '--port', String(port)])
      expect(await server.exited).toBe(1)
      expect(errorLines(server)).toEqual([expect.stringMatching(new RegExp(`cannot start \\| the multiuser server cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use .*; choose another with --port`))])
      expect(existsSync(join(dir, LOCK_NAME))).toBe(false)
      expect(existsSync(join(dir, PID_NAME))).toBe(false)
    } finally {
      blocker.close()
    }
  })

  it('a taken inspector port is one clear line and exit code 1', async () => {
    const { port, blocker } = await takenPort()
    try {
      const server = spawnServer(['--no-persist', '--inspect', String(port)])
      expect(await server.exited).toBe(1)
      expect(errorLines(server)).toEqual([expect.stringMatching(new RegExp(`cannot start \\| the inspector cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use .*; choose another with --inspect <port>`))])
    } finally {
      blocker.close()
    }
  })

  it('--version prints the package version', async () => {
    const server = spawnServer(['--version'])
    expect(await server.exited).toBe(0)
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
    expect(server.output().trim()).toBe(version)
  })
})

describe('the secret off the command line', () => {
  async function handshakeAsks (port: number, secret: string): Promise<unknown[]> {
    const c = await WireClient.connect(port)
    const got: unknown[] = [await c.recv()]
    c.send('ann')
    got.push(await c.recv())
    c.send(PROJECT)
    got.push(await c.recv())
    c.send(secret)
    got.push(await c.recv())
    c.close()
    return got
  }

  it(`from ${SECRET_ENV}: clients are asked for it, a wrong one is refused`, async () => {
    const server = await startServerProcess(['--no-persist'], undefined, { ...process.env, [SECRET_ENV]: 'from the environment' })
    expect(server.child.spawnargs.join(' ')).not.toContain('from the environment')
    expect(await handshakeAsks(server.port, 'from the environment')).toEqual(['username?', 'project?', 'secret?', 'story'])
    expect(await handshakeAsks(server.port, 'wrong')).toEqual(['username?', 'project?', 'secret?', 'wrong_secret'])
    expect(await server.stop()).toBe(0)
  })

  it('from --secret-file (its first line)', async () => {
    const file = join(tempDir(), 'secret.txt')
    writeFileSync(file, 'from a file\nsecond line ignored\n')
    const server = await startServerProcess(['--no-persist', '--secret-file', file])
    expect(await handshakeAsks(server.port, 'from a file')).toEqual(['username?', 'project?', 'secret?', 'story'])
    expect(await server.stop()).toBe(0)
  })
})
