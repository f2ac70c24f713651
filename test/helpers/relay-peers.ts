/**
 * A test giver and a test taker for §5 relays, on top of WireClient: the giver
 * serves a real folder from disk, the taker writes into a real folder and
 * checks every file's SHA-256 against the manifest.
 */
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join as joinPath, relative, sep } from 'node:path'
import type { JsonValue } from '../../protocol/frame.ts'
import { T0, type WireClient } from './wire-client.ts'

export const MiB = 1024 * 1024

export type Manifest = Record<string, string>

const tempDirs: string[] = []

/** A fresh directory under the OS temp dir, removed by `removeTempDirs()`. */
export async function tempDir (prefix = 'relay-'): Promise<string> {
  const dir = await mkdtemp(joinPath(tmpdir(), `vcs-${prefix}`))
  tempDirs.push(dir)
  return dir
}

export async function removeTempDirs (): Promise<void> {
  for (const dir of tempDirs.splice(0)) await rm(dir, { recursive: true, force: true })
}

/** Writes `files` (relative path with `/` → content) under `root`, creating folders. */
export async function writeTree (root: string, files: Record<string, Uint8Array | string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const path = joinPath(root, ...rel.split('/'))
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, content)
  }
}

export function sha256 (bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex')
}

export async function hashFile (path: string): Promise<string> {
  return sha256(await readFile(path))
}

/** Every file under `root`, as relative paths with `/`, sorted. */
export async function listFiles (root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true })
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(root, joinPath(e.parentPath, e.name)).split(sep).join('/'))
    .sort()
}

/** `{relative path: sha256 hex}` of every file under `root`. */
export async function manifestOf (root: string): Promise<Manifest> {
  const out: Manifest = {}
  for (const rel of await listFiles(root)) out[rel] = await hashFile(joinPath(root, ...rel.split('/')))
  return out
}

// ---------------------------------------------------------------- turn-taking

export interface PassResult {
  /** Everything the pass delivered (sync exchanges are answered and listed by their signal). */
  readonly delivered: JsonValue[]
  /** What each `give` served. */
  readonly served: GiveResult[]
}

export interface PassOptions {
  /** Called on `["give", folder]`; must run the giver side of the relay. */
  readonly onGive?: (folder: string) => Promise<GiveResult>
  readonly timeoutMs?: number
}

/**
 * Passes the turn and takes everything the pass delivers until `"yours"`:
 * sync exchanges are answered with nothing newer, gives are served by `onGive`.
 */
export async function pass (c: WireClient, o: PassOptions = {}): Promise<PassResult> {
  c.send('yours')
  return deliveredUntilYours(c, o)
}

/** Like `pass`, for a client whose turn is already on its way back. */
export async function deliveredUntilYours (c: WireClient, o: PassOptions = {}): Promise<PassResult> {
  const delivered: JsonValue[] = []
  const served: GiveResult[] = []
  while (true) {
    const m = await c.recv(o.timeoutMs)
    if (m === 'yours') return { delivered, served }
    delivered.push(m)
    if (m === 'story' || m === 'analytics') {
      c.send([{}, T0]); await c.recv(o.timeoutMs); c.send(true)
    } else if (m === 'assets') {
      c.send({}); await c.recv(o.timeoutMs); c.send(true)
    } else if (Array.isArray(m) && m[0] === 'give') {
      if (o.onGive === undefined) throw new Error(`unexpected ${JSON.stringify(m)}`)
      served.push(await o.onGive(m[1] as string))
    }
  }
}

/**
 * Proves a set of clients holding the turn can still talk: each says
 * something (answered by `"yours"`), then each passes and sees every line.
 */
export async function expectUsable (clients: readonly WireClient[], tag = 'ping'): Promise<void> {
  const texts = clients.map((c, i) => `${tag} ${i} ${c.userId}`)
  for (const [i, c] of clients.entries()) {
    c.send(['message', texts[i]])
    const r = await c.recv()
    if (r !== 'yours') throw new Error(`${c.userId}: expected "yours" after a message, got ${JSON.stringify(r)}`)
  }
  for (const c of clients) {
    const { delivered } = await pass(c)
    const history = delivered.filter((m): m is ['messages', Array<[string, string]>] => Array.isArray(m) && m[0] === 'messages').at(-1)
    if (history === undefined) throw new Error(`${c.userId}: no messages on its pass: ${JSON.stringify(delivered)}`)
    const seen = history[1].map(([, text]) => text)
    for (const t of texts) if (!seen.includes(t)) throw new Error(`${c.userId}: ${JSON.stringify(t)} missing from ${JSON.stringify(seen)}`)
  }
}

// ---------------------------------------------------------------- giver

export interface GiveOptions {
  /** `pipelined`: every file without waiting for answers; `ackWaiting`: each answer before the next file. */
  readonly mode?: 'pipelined' | 'ackWaiting'
  /** Binary frame size (default 1 MiB). */
  readonly chunk?: number
  /** Sent instead of the folder's real manifest. */
  readonly manifest?: Manifest
}

export interface GiveResult {
  readonly folder: string
  readonly getlist: string[]
  /** The taker's answers as relayed, in order. */
  readonly answers: JsonValue[]
}

async function writeWithBackpressure (c: WireClient, send: () => void): Promise<void> {
  send()
  if (c.socket.writableNeedDrain) await once(c.socket, 'drain')
}

/** Sends one file from disk as `["file", path, size]` and binary frames of `chunk` bytes. */
export async function sendFile (c: WireClient, root: string, rel: string, chunk = MiB): Promise<void> {
  const path = joinPath(root, ...rel.split('/'))
  const size = (await stat(path)).size
  c.send(['file', rel, size])
  const fh = await open(path, 'r')
  try {
    let at = 0
    while (at < size) {
      const buf = Buffer.allocUnsafe(Math.min(chunk, size - at))
      const { bytesRead } = await fh.read(buf, 0, buf.byteLength, at)
      if (bytesRead !== buf.byteLength) throw new Error(`short read of ${rel}`)
      at += bytesRead
      await writeWithBackpressure(c, () => c.sendBinary(buf))
    }
  } finally {
    await fh.close()
  }
}

/** The giver side of a relay, from `["give", folder]` on: serves `root`. */
export async function giveFolder (c: WireClient, root: string, folder: string, o: GiveOptions = {}): Promise<GiveResult> {
  const manifest = o.manifest ?? await manifestOf(root)
  c.send(manifest)
  const getlist = await c.recv()
  if (!Array.isArray(getlist)) throw new Error(`expected a getlist, got ${JSON.stringify(getlist)}`)
  const paths = getlist as string[]
  const answers: JsonValue[] = []
  for (const rel of paths) {
    await sendFile(c, root, rel, o.chunk)
    if (o.mode === 'ackWaiting') answers.push(await c.recv())
  }
  while (answers.length < paths.length) answers.push(await c.recv())
  return { folder, getlist: paths, answers }
}

// ---------------------------------------------------------------- taker

export interface TakeOptions {
  /** Sent instead of the computed getlist (files whose hash differs from `dest`'s). */
  readonly getlist?: JsonValue
  /** Waits this long before each answer (a slow taker). */
  readonly answerDelayMs?: number
}

export interface TakeResult {
  readonly manifest: Manifest
  readonly getlist: string[]
  /** Per file: `ok`, or why not. */
  readonly results: Record<string, string>
  /** What came instead of the files, when the relay failed: the error frame. */
  readonly error?: JsonValue
}

/** The manifest keys whose file in `dest` is missing or differs. */
async function wanted (dest: string, manifest: Manifest): Promise<string[]> {
  const out: string[] = []
  for (const [rel, hash] of Object.entries(manifest)) {
    const have = await hashFile(joinPath(dest, ...rel.split('/'))).catch(() => null)
    if (have !== hash) out.push(rel)
  }
  return out
}

const isError = (v: JsonValue): boolean => Array.isArray(v) && v[0] === 'error'

/**
 * The taker side of a whole relay: `["get", giver, folder]`, then the
 * manifest, a getlist of what `dest` lacks, every file written into `dest`
 * and checked by SHA-256, and the final `"yours"`.
 */
export async function takeFolder (c: WireClient, giver: string, folder: string, dest: string, o: TakeOptions = {}): Promise<TakeResult> {
  c.send(['get', giver, folder])
  const first = await c.recv(20_000)
  if (isError(first)) {
    await expectYours(c)
    return { manifest: {}, getlist: [], results: {}, error: first }
  }
  const manifest = first as Manifest
  const getlist = o.getlist ?? await wanted(dest, manifest)
  c.send(getlist)
  const results: Record<string, string> = {}
  const paths = Array.isArray(getlist) ? getlist as string[] : []
  for (const rel of paths) {
    const h = await c.recv(20_000)
    if (isError(h)) {
      await expectYours(c)
      return { manifest, getlist: paths, results, error: h }
    }
    if (!Array.isArray(h) || h[1] !== rel) throw new Error(`expected a header for ${rel}, got ${JSON.stringify(h)}`)
    let answer: JsonValue
    if (h[0] === 'missing') {
      results[rel] = `missing: ${String(h[2])}`
      answer = ['failed', rel, 'giver could not read it']
    } else {
      const got = await receiveFile(c, dest, rel, h[2] as number)
      if (got.error !== undefined) {
        await expectYours(c)
        return { manifest, getlist: paths, results, error: got.error }
      }
      const onDisk = await hashFile(joinPath(dest, ...rel.split('/')))
      results[rel] = got.hash === manifest[rel] && onDisk === got.hash ? 'ok' : `hash mismatch ${got.hash}`
      answer = results[rel] === 'ok' ? ['ok', rel] : ['failed', rel, 'hash mismatch']
    }
    if (o.answerDelayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, o.answerDelayMs))
    c.send(answer)
  }
  const end = await c.recv(20_000)
  if (isError(end)) {
    await expectYours(c)
    return { manifest, getlist: paths, results, error: end }
  }
  if (end !== 'yours') throw new Error(`expected "yours" after the last file, got ${JSON.stringify(end)}`)
  return { manifest, getlist: paths, results }
}

/** Receives `size` bytes of binary frames into `dest/rel`; a JSON frame instead ends it (the relay failed). */
async function receiveFile (c: WireClient, dest: string, rel: string, size: number): Promise<{ hash?: string, error?: JsonValue }> {
  const path = joinPath(dest, ...rel.split('/'))
  await mkdir(dirname(path), { recursive: true })
  const fh = await open(path, 'w')
  const hash = createHash('sha256')
  try {
    let remaining = size
    while (remaining > 0) {
      const f = await c.frame(20_000)
      if (f.kind === 'json') return { error: f.value }
      for (const buf of f.bytes) {
        hash.update(buf)
        await fh.write(buf)
      }
      remaining -= f.bytes.byteLength
      if (remaining < 0) throw new Error(`${rel}: ${-remaining} bytes more than its size`)
    }
  } finally {
    await fh.close()
  }
  return { hash: hash.digest('hex') }
}

export async function expectYours (c: WireClient, timeoutMs?: number): Promise<void> {
  const m = await c.recv(timeoutMs)
  if (m !== 'yours') throw new Error(`${c.userId}: expected "yours", got ${JSON.stringify(m)}`)
}

/** Every file of `src` is in `dest` with the same SHA-256. */
export async function sameTree (src: string, dest: string): Promise<{ missing: string[], differ: string[] }> {
  const missing: string[] = []
  const differ: string[] = []
  for (const rel of await listFiles(src)) {
    const theirs = await hashFile(joinPath(dest, ...rel.split('/'))).catch(() => null)
    if (theirs === null) missing.push(rel)
    else if (theirs !== await hashFile(joinPath(src, ...rel.split('/')))) differ.push(rel)
  }
  return { missing, differ }
}
