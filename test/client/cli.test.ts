import { execFile, spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Client } from '../../src/client/index.ts'
import { TIMESTAMP_PATTERN } from '../../protocol/messages.ts'
import { listTree, PROJECT, sampleFolder, Scene, waitFor, writeTree } from './helpers.ts'

const CWD = new URL('../..', import.meta.url).pathname
const CLI = ['--import', 'tsx', 'src/client/cli.ts']

interface Run { code: number | null, stdout: string, stderr: string }

function cli (args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...CLI, ...args], { cwd: CWD, timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : -1), stdout, stderr })
    })
  })
}

const scene = new Scene()
let giver: Client
let watcher: Client
let giverRoot: string
let global: string[]

beforeAll(async () => {
  await scene.start()
  giverRoot = await scene.dir()
  await writeTree(join(giverRoot, 'chr/Moria'), sampleFolder())
  giver = await scene.client('gina', { root: giverRoot })
  watcher = await scene.client('walt')
  global = ['--host', '127.0.0.1', '--port', String(scene.server.port), '--project', PROJECT]
})
afterAll(async () => { await scene.cleanup() })

describe('command-line client', () => {
  it('users: lists who is connected', async () => {
    const r = await cli([...global, '--username', 'cli-user', 'users'])
    expect(r).toMatchObject({ code: 0, stderr: '' })
    expect(r.stdout).toContain(`${giver.userId} | gina`)
    expect(r.stdout).toContain(`${watcher.userId} | walt`)
    expect(r.stdout).toMatch(/\| cli-user \(you\)/)
  })

  it('say: the others get the message', async () => {
    const heard = waitFor(watcher, 'messages', (h) => h.some(([u, t]) => u === 'sayer' && t === 'hello from the CLI'), 15_000)
    const r = await cli([...global, '--username', 'sayer', 'say', 'hello from the CLI'])
    expect(r).toMatchObject({ code: 0, stderr: '' })
    await heard
  })

  it('at: the others learn where the user looks, stamped now', async () => {
    const seen = waitFor(watcher, 'at', (a) => a.path === '/rnd/scene_1', 15_000)
    const r = await cli([...global, 'at', '/rnd/scene_1'])
    expect(r).toMatchObject({ code: 0, stderr: '' })
    const [at] = await seen
    expect(at.timestamp).toMatch(TIMESTAMP_PATTERN)
  })

  it('get: fetches a folder by user name into --root', async () => {
    const root = await scene.dir()
    const r = await cli([...global, '--root', root, 'get', 'gina', '/chr/Moria'])
    expect(r).toMatchObject({ code: 0, stderr: '' })
    expect(r.stdout).toMatch(/^got 5 files \(3\.0 MiB\) of \/chr\/Moria from gina \| 0 up to date \| 0 conflicts \| 0 deleted \| 0 failed \| [\d.]+ s \| [\d.]+ \S+\/s\n$/)
    const files = sampleFolder()
    expect(await listTree(join(root, 'chr/Moria'))).toEqual(Object.keys(files).sort())
    expect(await readFile(join(root, 'chr/Moria/Mória/ñandú 🎬.txt'), 'utf8')).toBe(files['Mória/ñandú 🎬.txt'])
  })

  it('serve: serves --root until SIGINT, then exits 0', async () => {
    const root = await scene.dir()
    await writeTree(root, { 'shared/x.txt': 'served by the CLI' })
    const child = spawn(process.execPath, [...CLI, ...global, '--username', 'server-cli', '--root', root, 'serve'], { cwd: CWD })
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    try {
      let out = ''
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 15_000)
        child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('serving')) { clearTimeout(t); resolve() } })
      })
      const id = /as (\S+) \|/.exec(out)?.[1] ?? ''
      const taker = await scene.client('taker')
      expect(await taker.get(id, '/shared')).toMatchObject({ files: 1, failed: [] })
      expect(await readFile(join(taker.root, 'shared/x.txt'), 'utf8')).toBe('served by the CLI')
      child.kill('SIGINT')
      expect(await exited).toBe(0)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  })

  it('fails with a non-zero exit and a one-line reason', async () => {
    const wrong = await cli(['--port', String(scene.server.port), '--project', 'Other Film', 'users'])
    expect(wrong.code).not.toBe(0)
    expect(wrong.stdout).toBe('')
    expect(wrong.stderr).toMatch(/^vcstudio-multiuser-client: wrong project: [^\n]*"Other Film"\n$/)

    const nobody = await cli([...global, 'get', 'nobody', '/chr'])
    expect(nobody.code).not.toBe(0)
    expect(nobody.stderr).toMatch(/^vcstudio-multiuser-client: no user named "nobody" is connected\n$/)

    const badPath = await cli([...global, 'at', '/../etc'])
    expect(badPath.code).not.toBe(0)
    expect(badPath.stderr).toMatch(/^vcstudio-multiuser-client: server error bad_path: [^\n]*\n$/)
  })
})
