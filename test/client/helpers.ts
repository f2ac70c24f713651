import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { connect, type Client, type ClientEvents, type ConnectOptions } from '../../src/client/index.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { join as joinRaw, type WireClient } from '../helpers/wire-client.ts'

export const PROJECT = 'Test Film'

/** Temp dirs and clients of one test, cleaned up by `cleanup()`. */
export class Scene {
  readonly dirs: string[] = []
  readonly clients: Client[] = []
  readonly raws: WireClient[] = []
  server!: TestServer

  async start (o: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
    // A realistic turn hold: idle passes wait on the server, not in a spin.
    this.server = await startTestServer({ turnHoldMs: 100, ...o })
    return this.server
  }

  async dir (): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), 'vcmu-client-'))
    this.dirs.push(d)
    return d
  }

  async client (username: string, o: Partial<ConnectOptions> = {}): Promise<Client> {
    const c = await connect({ host: '127.0.0.1', port: this.server.port, username, project: PROJECT, root: o.root ?? await this.dir(), ...o })
    this.clients.push(c)
    return c
  }

  /** A bare wire client, past the handshake, closed by `cleanup()`. */
  async raw (username: string): Promise<WireClient> {
    const { client } = await joinRaw(this.server.port, PROJECT, { username })
    this.raws.push(client)
    return client
  }

  async cleanup (): Promise<void> {
    for (const r of this.raws.splice(0)) r.close()
    for (const c of this.clients.splice(0)) c.destroy()
    await this.server?.close()
    for (const d of this.dirs.splice(0)) await rm(d, { recursive: true, force: true })
  }
}

/** The next `event` of `client` whose arguments pass `test`, within `timeoutMs`. */
export function waitFor<K extends keyof ClientEvents> (client: Client, event: K, test: (...args: ClientEvents[K]) => boolean = () => true, timeoutMs = 5_000): Promise<ClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const listener = (...args: ClientEvents[K]): void => {
      if (!test(...args)) return
      clearTimeout(timer)
      client.off(event, listener as never)
      resolve(args)
    }
    const timer = setTimeout(() => { client.off(event, listener as never); reject(new Error(`no matching ${String(event)} event within ${timeoutMs} ms`)) }, timeoutMs)
    client.on(event, listener as never)
  })
}

export const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex')

export async function writeTree (root: string, files: Record<string, Uint8Array | string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = join(root, rel)
    await mkdir(dirname(p), { recursive: true })
    await writeFile(p, content)
  }
}

/** Every file under `dir`, as relative paths (with `/`), sorted; the client's own `.vcmu` folder only with `withClientDir`. */
export async function listTree (dir: string, withClientDir = false): Promise<string[]> {
  const out: string[] = []
  const walk = async (d: string, prefix: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const rel = prefix === '' ? e.name : `${prefix}/${e.name}`
      if (rel === '.vcmu' && !withClientDir) continue
      if (e.isDirectory()) await walk(join(d, e.name), rel)
      else out.push(rel)
    }
  }
  await walk(dir, '')
  return out.sort()
}

/** A sample folder: nested subfolders, a 0-byte file, a multi-MiB file, a unicode name. */
export function sampleFolder (): Record<string, Uint8Array | string> {
  return {
    'readme.txt': 'Moria, the dwarf\n',
    'empty.blend': new Uint8Array(0),
    'render/0001.png': randomBytes(3 * 1024 * 1024 + 12345),
    'render/deep/er/still/notes.md': '# notes\n',
    'Mória/ñandú 🎬.txt': 'unicode ✓\n'
  }
}

/** A raw giver passes until the server hands it `["give", folder]`; returns the folder. */
export async function awaitGive (w: WireClient): Promise<string> {
  for (let round = 0; round < 200; round++) {
    w.send('yours')
    while (true) {
      const v = await w.recv(15_000)
      if (v === 'yours') break
      if (Array.isArray(v) && v[0] === 'give') return v[1] as string
      if (v === 'story' || v === 'assets' || v === 'analytics') {
        w.send(v === 'assets' ? {} : [{}, '0000/00/00-00:00:00'])
        await w.recv()
        w.send('ack')
      }
    }
  }
  throw new Error('no give came')
}

/**
 * Files as a studio has them: last changed an hour ago. A file changed in the
 * last instant is always hashed again (see HashCache), so tests that count
 * reads age their files, then let the clock pass the ctime utimes just set.
 */
export async function age (root: string, rels: readonly string[]): Promise<void> {
  const past = new Date(Date.now() - 3_600_000)
  for (const rel of rels) await utimes(join(root, rel), past, past)
  await new Promise((resolve) => setTimeout(resolve, 100))
}
