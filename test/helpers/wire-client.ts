import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { FrameDecoder } from '../../protocol/decoder.ts'
import { encodeBinary, encodeJson, type Frame, type JsonValue } from '../../protocol/frame.ts'

/**
 * A bare client speaking the wire contract frame by frame, for tests that
 * check exactly what the server sends.
 */
export class WireClient {
  private readonly decoder = new FrameDecoder()
  private readonly frames: Frame[] = []
  private waiter: (() => void) | null = null
  private closedFlag = false
  readonly socket: Socket

  private constructor (socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk) => {
      try {
        for (const f of this.decoder.push(chunk)) this.frames.push(f)
      } catch {
        socket.destroy()
      }
      this.wake()
    })
    socket.on('close', () => { this.closedFlag = true; this.wake() })
    socket.on('error', () => {})
  }

  static async connect (port: number, host = '127.0.0.1'): Promise<WireClient> {
    const socket = connect({ port, host })
    await once(socket, 'connect')
    return new WireClient(socket)
  }

  /** This client's user id as the server sees it. */
  get userId (): string {
    return `127.0.0.1:${this.socket.localPort ?? 0}`
  }

  get closed (): boolean { return this.closedFlag }

  send (value: unknown): void { this.socket.write(encodeJson(value)) }
  sendBinary (bytes: Uint8Array): void { for (const b of encodeBinary(bytes)) this.socket.write(b) }
  sendRaw (bytes: Uint8Array): void { this.socket.write(bytes) }

  /** The next frame, waiting up to `timeoutMs` (a bound for a broken server, not a speed check: generous for loaded machines). */
  async frame (timeoutMs = 20_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs
    while (this.frames.length === 0) {
      if (this.closedFlag) throw new Error('connection closed while waiting for a frame')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiter = () => { clearTimeout(t); resolve() }
      })
    }
    return this.frames.shift() as Frame
  }

  /** The next frame, which must be JSON. */
  async recv (timeoutMs?: number): Promise<JsonValue> {
    const f = await this.frame(timeoutMs)
    if (f.kind !== 'json') throw new Error(`expected a JSON frame, got ${f.bytes.byteLength} binary bytes`)
    return f.value
  }

  /** Nothing arrives for `ms`. */
  async silentFor (ms: number): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, ms))
    return this.frames.length === 0
  }

  /** Resolves when the server has closed the connection. */
  async waitClosed (timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!this.closedFlag) {
      if (Date.now() > deadline) throw new Error('connection still open')
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  /** Frames received and not yet read. */
  get queued (): readonly Frame[] { return this.frames }

  close (): void { this.socket.destroy() }

  private wake (): void {
    const w = this.waiter
    this.waiter = null
    w?.()
  }
}

export interface JoinOptions {
  username?: string
  project?: string
  secret?: string
  story?: [Record<string, JsonValue>, string]
  assets?: Record<string, [string, string]>
  analytics?: [JsonValue, string]
}

export const T0 = '0000/00/00-00:00:00'

/**
 * Connects and runs the handshake and the three syncs, returning the client
 * holding the turn and what the server replied to each sync.
 */
export async function join (port: number, project: string, o: JoinOptions = {}): Promise<{
  client: WireClient, story: JsonValue, assets: JsonValue, analytics: JsonValue
}> {
  const client = await WireClient.connect(port)
  expectEq(await client.recv(), 'username?')
  client.send(o.username ?? 'tester')
  expectEq(await client.recv(), 'project?')
  client.send(o.project ?? project)
  if (o.secret !== undefined) {
    expectEq(await client.recv(), 'secret?')
    client.send(o.secret)
  }
  expectEq(await client.recv(), 'story')
  client.send(o.story ?? [{}, T0])
  const story = await client.recv()
  client.send(true)
  expectEq(await client.recv(), 'assets')
  client.send(o.assets ?? {})
  const assets = await client.recv()
  client.send(true)
  expectEq(await client.recv(), 'analytics')
  client.send(o.analytics ?? [{}, T0])
  const analytics = await client.recv()
  client.send(true)
  expectEq(await client.recv(), 'yours')
  return { client, story, assets, analytics }
}

function expectEq (got: unknown, want: unknown): void {
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`)
}
