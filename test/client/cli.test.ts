import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Client } from '../../src/client/index.ts'
import { TIMESTAMP_PATTERN } from '../../protocol/messages.ts'
import { awaitGive, listTree, PROJECT, sampleFolder, Scene, sha256, waitFor, writeTree } from './helpers.ts'

const CWD = new URL('../..', import.meta.url).pathname
const CLI = ['--import', 'tsx', 'src/client/cli.ts']
const BIN = join(CWD, 'src/client/bin.js')

interface Run { code: number | null, stdout: string, stderr: string }

/** Runs the client; `cwd` and `env` as a user's shell would give them (the repository and npm's INIT_CWD by default). */
function cli (args: string[], o: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const argv = o.cwd === undefined ? [...CLI, ...args] : [BIN, ...args]
    execFile(process.execPath, argv, { cwd: o.cwd ?? CWD, env: o.env ?? process.env, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : -1), stdout, stderr })
    })
  })
}

const withoutInitCwd = (): NodeJS.ProcessEnv => {
  const env = { ...process.env }
  delete env.INIT_CWD
  return env
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
  watcher = await scene.client('walt', { serve: false })
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

  it('exit 2: usage, connection or handshake error, with a one-line reason', async () => {
    const wrong = await cli(['--port', String(scene.server.port), '--project', 'Other Film', 'users'])
    expect(wrong).toMatchObject({ code: 2, stdout: '' })
    expect(wrong.stderr).toMatch(/^vcstudio-multiuser-client: wrong project: [^\n]*"Other Film"\n$/)

    const badPath = await cli([...global, 'at', '/../etc'])
    expect(badPath.code).toBe(2)
    expect(badPath.stderr).toMatch(/^vcstudio-multiuser-client: server error bad_path: [^\n]*\n$/)

    const usage = await cli([...global, 'get', 'gina'])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toMatch(/missing required argument 'folder'/)

    const refused = await cli(['--port', '1', '--project', PROJECT, 'get', 'gina', '/chr'])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/connection refused by 127\.0\.0\.1:1/)

    const noRoot = await cli([...global, '--root', join(giverRoot, 'no/such/dir'), 'serve'])
    expect(noRoot.code).toBe(2)
    expect(noRoot.stderr).toMatch(/the root .*no\/such\/dir does not exist/)
  })

  it('exit 3: nothing to get (no such user, no such folder, giver not serving)', async () => {
    const nobody = await cli([...global, 'get', 'nobody', '/chr'])
    expect(nobody.code).toBe(3)
    expect(nobody.stderr).toMatch(/^vcstudio-multiuser-client: no user named "nobody" is connected\n$/)
    const noId = await cli([...global, 'get', '10.1.2.3:4', '/chr'])
    expect(noId.code).toBe(3)
    const noFolder = await cli([...global, '--root', await scene.dir(), 'get', 'gina', '/chr/Nobody'])
    expect(noFolder.code).toBe(3)
    expect(noFolder.stderr).toMatch(/nothing to get: no such folder/)
    const watching = await cli([...global, '--root', await scene.dir(), 'get', 'walt', '/chr'])
    expect(watching.code).toBe(3)
    expect(watching.stderr).toMatch(/nothing to get: not serving/)
  })

  it('exit 0 when already up to date; exit 1 when a file fails', async () => {
    const root = await scene.dir()
    expect((await cli([...global, '--root', root, 'get', 'gina', '/chr/Moria'])).code).toBe(0)
    const again = await cli([...global, '--root', root, 'get', 'gina', '/chr/Moria'])
    expect(again.code).toBe(0)
    expect(again.stdout).toMatch(/^got 0 files \(0 B\) .* \| 5 up to date \|/)

    const liar = await scene.raw('lena')
    try {
      const run = cli([...global, '--root', root, 'get', 'lena', '/f'])
      await awaitGive(liar)
      liar.send({ 'a.txt': sha256('a'), 'b.txt': sha256('b') })
      expect(await liar.recv()).toEqual(['a.txt', 'b.txt'])
      liar.send(['file', 'a.txt', 1])
      liar.sendBinary(new TextEncoder().encode('a'))
      liar.send(['missing', 'b.txt', 'locked by Blender'])
      const r = await run
      expect(r.code).toBe(1)
      expect(r.stdout).toMatch(/^got 1 files .* \| 1 failed \|/)
      expect(r.stderr).toMatch(/^failed \| b\.txt \| missing on the giver: locked by Blender\n/)
    } finally {
      liar.close()
    }
  })

  it('Ctrl-C in a get keeps the part (exit 1), and the next get resumes it from another giver', async () => {
    const root = await scene.dir()
    const big = randomBytes(4 * 1024 * 1024)
    await writeTree(giverRoot, { 'chr/Big/big.bin': big })
    const dying = await scene.raw('dina')
    const child = spawn(process.execPath, [...CLI, ...global, '--root', root, 'get', 'dina', '/chr/Big'], { cwd: CWD })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
    try {
      await awaitGive(dying)
      dying.send({ 'big.bin': { hash: sha256(big), size: big.length } })
      expect(await dying.recv()).toEqual(['big.bin'])
      dying.send(['file', 'big.bin', big.length])
      dying.sendBinary(big.subarray(0, 1024 * 1024))
      const part = join(root, 'chr/Big/.big.bin.vcmu-part')
      for (let i = 0; i < 200 && (await stat(part).catch(() => null))?.size !== 1024 * 1024; i++) await new Promise((resolve) => setTimeout(resolve, 50))
      child.kill('SIGINT')
      expect(await exited).toBe(1)
      expect(stderr).toMatch(/interrupted: what arrived of the current file is kept, and the next get resumes it/)
      expect((await stat(part)).size).toBe(1024 * 1024)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
    const again = await cli([...global, '--root', root, 'get', 'gina', '/chr/Big'])
    expect(again.code).toBe(0)
    expect(again.stdout).toMatch(/^got 1 files \(3\.0 MiB, 1 resumed\) of \/chr\/Big from gina \|/)
    expect(Buffer.compare(await readFile(join(root, 'chr/Big/big.bin')), big)).toBe(0)
  })

  it('--root defaults to INIT_CWD under npm, else to the current folder', async () => {
    const fromNpm = await scene.dir()
    const r = await cli([...global, 'get', 'gina', '/chr/Moria'], { env: { ...process.env, INIT_CWD: fromNpm } })
    expect(r.code).toBe(0)
    expect(await listTree(join(fromNpm, 'chr/Moria'))).toHaveLength(5)
    const here = await scene.dir()
    const plain = await cli([...global, 'get', 'gina', '/chr/Moria'], { cwd: here, env: withoutInitCwd() })
    expect(plain.code).toBe(0)
    expect(await listTree(join(here, 'chr/Moria'))).toHaveLength(5)
  })

  it('--json: phases, progress and a final summary as JSON lines; --dry-run lists and changes nothing', async () => {
    const root = await scene.dir()
    const r = await cli([...global, '--root', root, 'get', 'gina', '/chr/Moria', '--json'])
    expect(r.code).toBe(0)
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(events.filter((e) => e.event === 'phase').map((e) => e.phase)).toEqual(['connecting', 'waiting', 'checking', 'transferring', 'done'])
    expect(events.some((e) => e.event === 'progress' && e.phase === 'transferring' && typeof e.rate === 'number')).toBe(true)
    expect(events.at(-1)).toMatchObject({ event: 'summary', exitCode: 0, files: 5, upToDate: 0, failed: [], conflicts: [], deleted: [] })

    await writeFile(join(giverRoot, 'chr/Moria/readme.txt'), 'changed by gina\n')
    await writeFile(join(root, 'chr/Moria/extra.txt'), 'only here')
    const dry = await cli([...global, '--root', root, 'get', 'gina', '/chr/Moria', '--dry-run', '--delete'])
    expect(dry.code).toBe(0)
    expect(dry.stdout).toBe('changed | readme.txt\nwould delete | extra.txt\n' +
      'dry run: 0 new | 1 changed | 0 conflicts | 1 would be deleted | 4 up to date | 0 refused | nothing was changed\n')
    expect(await readFile(join(root, 'chr/Moria/readme.txt'), 'utf8')).toBe('Moria, the dwarf\n')
    expect(await listTree(join(root, 'chr/Moria'))).toContain('extra.txt')
  })

  it('--help tells the exit codes and the get options', async () => {
    const help = await cli(['get', '--help'])
    expect(help.code).toBe(0)
    for (const o of ['--delete', '--dry-run', '--json']) expect(help.stdout).toContain(o)
    const top = await cli(['--help'])
    top.stdout = top.stdout.replace(/\s+/g, ' ')
    expect(top.stdout).toMatch(/Exit codes: 0 done, 1 some files or the relay failed, 2 usage, connection or handshake error, 3 nothing to get/)
    expect(top.stdout).toMatch(/--root <dir>.*default: the folder you ran the command from/s)
  })
})
