/**
 * Fast raw peers for bench/relay.ts: a frame parser that counts binary
 * payloads instead of keeping them, and writers that send file content from
 * one reused buffer. Nothing here touches the disk.
 */
import { connect, type NetConnectOpts, type Socket } from 'node:net'
import { once } from 'node:events'
import { binaryHeader, encodeJson, HEADER_BYTES, KIND_BINARY, type JsonValue } from '../protocol/frame.ts'

export const MiB = 1024 * 1024
const T0 = '0000/00/00-00:00:00'

/** Bounded wait: rejects after `ms`. */
export async function within<T> (ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms) })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A frame reader over a socket: JSON frames are parsed and queued (or handed
 * to `onJson`), binary payloads are only counted, chunk by chunk, through
 * `onBinary` (the bytes are never copied or kept).
 */
export class FrameReader {
  private readonly header = Buffer.alloc(HEADER_BYTES)
  private headerHave = 0
  private binaryLeft = 0
  private json: Buffer | null = null
  private jsonHave = 0
  private readonly queue: JsonValue[] = []
  private waiter: (() => void) | null = null
  private closed = false
  /** Total binary payload bytes seen. */
  binaryBytes = 0
  /** When set, JSON frames go here instead of the queue. */
  onJson: ((v: JsonValue) => void) | null = null
  /** Called with the size of every slice of binary payload as it arrives. */
  onBinary: ((n: number) => void) | null = null
  /** When set, called with every slice of binary payload itself (a view into the received chunk), before `onBinary`. */
  onBinaryData: ((bytes: Buffer) => void) | null = null

  constructor (readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      socket.cork()
      try { this.push(chunk) } finally { socket.uncork() }
    })
    socket.on('close', () => { this.closed = true; this.wake() })
    socket.on('error', () => {})
  }

  private push (chunk: Buffer): void {
    let at = 0
    const end = chunk.byteLength
    while (at < end) {
      if (this.binaryLeft > 0) {
        const n = Math.min(this.binaryLeft, end - at)
        this.binaryLeft -= n
        at += n
        this.binaryBytes += n
        this.onBinaryData?.(chunk.subarray(at - n, at))
        this.onBinary?.(n)
        continue
      }
      if (this.json !== null) {
        const n = Math.min(this.json.byteLength - this.jsonHave, end - at)
        chunk.copy(this.json, this.jsonHave, at, at + n)
        this.jsonHave += n
        at += n
        if (this.jsonHave === this.json.byteLength) {
          const value = JSON.parse(this.json.toString('utf8')) as JsonValue
          this.json = null
          this.deliver(value)
        }
        continue
      }
      const n = Math.min(HEADER_BYTES - this.headerHave, end - at)
      chunk.copy(this.header, this.headerHave, at, at + n)
      this.headerHave += n
      at += n
      if (this.headerHave < HEADER_BYTES) continue
      this.headerHave = 0
      const length = this.header.readUInt32BE(0)
      if (this.header[4] === KIND_BINARY) {
        this.binaryLeft = length
      } else {
        this.json = Buffer.allocUnsafe(length)
        this.jsonHave = 0
        if (length === 0) throw new Error('empty JSON frame')
      }
    }
  }

  private deliver (value: JsonValue): void {
    if (this.onJson !== null) { this.onJson(value); return }
    this.queue.push(value)
    this.wake()
  }

  async recv (timeoutMs = 30_000): Promise<JsonValue> {
    const deadline = Date.now() + timeoutMs
    while (this.queue.length === 0) {
      if (this.closed) throw new Error('connection closed')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiter = () => { clearTimeout(t); resolve() }
      })
    }
    return this.queue.shift() as JsonValue
  }

  private wake (): void {
    const w = this.waiter
    this.waiter = null
    w?.()
  }
}

/** A bench peer: a socket, its reader, and the writes it needs. */
export class Peer {
  readonly reader: FrameReader
  private constructor (readonly socket: Socket) {
    socket.setNoDelay(true)
    this.reader = new FrameReader(socket)
  }

  static async connect (port: number): Promise<Peer> {
    const socket = connect({ port, host: '127.0.0.1', highWaterMark: MiB } as unknown as NetConnectOpts)
    await once(socket, 'connect')
    return new Peer(socket)
  }

  static wrap (socket: Socket): Peer { return new Peer(socket) }

  get userId (): string { return `127.0.0.1:${this.socket.localPort ?? 0}` }

  send (value: unknown): boolean { return this.socket.write(encodeJson(value)) }

  recv (timeoutMs?: number): Promise<JsonValue> { return this.reader.recv(timeoutMs) }

  async expect (want: JsonValue): Promise<void> {
    const got = await this.recv()
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`)
  }

  async drained (): Promise<void> {
    if (this.socket.writableNeedDrain) await once(this.socket, 'drain')
  }

  /** §3 handshake and the three syncs, ending with the turn. */
  async join (project: string, username: string): Promise<void> {
    await this.expect('username?'); this.send(username)
    await this.expect('project?'); this.send(project)
    await this.expect('story'); this.send([{}, T0]); await this.recv(); this.send(true)
    await this.expect('assets'); this.send({}); await this.recv(); this.send(true)
    await this.expect('analytics'); this.send([{}, T0]); await this.recv(); this.send(true)
    await this.expect('yours')
  }

  /** Passes until a `["give", folder]` arrives (the serve may not be queued yet). */
  async passUntilGive (): Promise<string> {
    for (let passes = 0; passes < 1000; passes++) {
      this.send('yours')
      while (true) {
        const m = await this.recv()
        if (Array.isArray(m) && m[0] === 'give') return m[1] as string
        if (m === 'yours') break
      }
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
    throw new Error('no give after 1000 passes')
  }

  close (): void { this.socket.destroy() }
}

/**
 * Writes `["file", path, size]` and `size` bytes as binary frames of
 * `payload.byteLength` bytes, all from the one reused `payload` buffer, with
 * backpressure.
 */
export async function writeBigFile (peer: Peer, path: string, size: number, payload: Buffer): Promise<void> {
  const s = peer.socket
  s.write(encodeJson(['file', path, size]))
  const fullHeader = binaryHeader(payload.byteLength)
  let left = size
  while (left > 0) {
    const n = Math.min(left, payload.byteLength)
    s.write(n === payload.byteLength ? fullHeader : binaryHeader(n))
    const ok = s.write(n === payload.byteLength ? payload : payload.subarray(0, n))
    left -= n
    if (!ok) await once(s, 'drain')
  }
}

/** Writes many small files `["file", path, n]` + one binary frame each, corked in batches, with backpressure. */
export async function writeSmallFiles (peer: Peer, paths: readonly string[], payload: Buffer): Promise<void> {
  const s = peer.socket
  const header = binaryHeader(payload.byteLength)
  const BATCH = 64
  for (let i = 0; i < paths.length; i += BATCH) {
    s.cork()
    let ok = true
    for (const p of paths.slice(i, i + BATCH)) {
      s.write(encodeJson(['file', p, payload.byteLength]))
      s.write(header)
      ok = s.write(payload)
    }
    s.uncork()
    if (!ok || s.writableNeedDrain) await once(s, 'drain')
  }
}
