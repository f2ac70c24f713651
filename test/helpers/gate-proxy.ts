import { once } from 'node:events'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { FrameDecoder } from '../../protocol/decoder.ts'
import type { JsonValue } from '../../protocol/frame.ts'

/**
 * A TCP proxy on 127.0.0.1 for one client connection, whose server-to-client
 * direction can be held back (`gate`) and let through later (`release`):
 * it makes the client see the server's frames late, so a test can put a
 * client's frame behind a server frame it has not seen yet, deterministically.
 */
export class GateProxy {
  private upstream: Socket | null = null
  private downstream: Socket | null = null
  private gated = false
  private held: Buffer[] = []
  private onHeld: (() => void) | null = null

  private constructor (private readonly server: Server, readonly port: number, private readonly target: number) {}

  static async start (targetPort: number): Promise<GateProxy> {
    const server = createServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('no port')
    const proxy = new GateProxy(server, address.port, targetPort)
    server.on('connection', (s) => proxy.accept(s))
    return proxy
  }

  private accept (down: Socket): void {
    const up = connect({ host: '127.0.0.1', port: this.target })
    this.downstream = down
    this.upstream = up
    down.on('data', (d) => up.write(d))
    up.on('data', (d) => {
      if (!this.gated) {
        down.write(d)
        return
      }
      this.held.push(d)
      this.onHeld?.()
    })
    down.on('end', () => up.end())
    up.on('end', () => { if (this.gated) this.held.push(Buffer.alloc(0)); else down.end() })
    down.on('error', () => up.destroy())
    up.on('error', () => down.destroy())
    down.on('close', () => up.destroy())
  }

  /** The client's user id as the server sees it: the proxy's side of the connection. */
  get userId (): string {
    return `127.0.0.1:${this.upstream?.localPort ?? 0}`
  }

  /** From now on, what the server sends waits here. */
  gate (): void {
    this.gated = true
  }

  /** The messages held so far, decoded (binary frames left out). */
  heldMessages (): JsonValue[] {
    const decoder = new FrameDecoder()
    return [...decoder.push(Buffer.concat(this.held))].flatMap((f) => (f.kind === 'json' ? [f.value] : []))
  }

  /** Resolves once at least `count` messages are held. */
  async holds (count: number): Promise<JsonValue[]> {
    while (this.heldMessages().length < count) await new Promise<void>((resolve) => { this.onHeld = resolve })
    this.onHeld = null
    return this.heldMessages()
  }

  /** Sends on what was held, and everything after it as it comes. */
  release (): void {
    this.gated = false
    const down = this.downstream
    const held = this.held.splice(0)
    for (const d of held) {
      if (d.byteLength === 0) down?.end()
      else down?.write(d)
    }
  }

  async close (): Promise<void> {
    this.upstream?.destroy()
    this.downstream?.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
