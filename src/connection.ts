import type { Socket } from 'node:net'
import { pipe } from 'it-pipe'
import type { AnyActorRef } from 'xstate'
import { decodeFrames } from '../protocol/decoder.ts'
import { binaryHeader, encodeJson, ProtocolError, type Frame } from '../protocol/frame.ts'
import type { BorrowedFrames, FramePort } from '../actors/ports.ts'
import { FrameQueue } from './frame-queue.ts'

/** How long a closing connection may take to flush before it is destroyed. */
const CLOSE_GRACE_MS = 2_000

/** §2 user id: the client's `ip:port`, without the IPv4-mapped prefix. */
export function userIdOf (socket: Socket): string {
  const ip = (socket.remoteAddress ?? '0.0.0.0').replace(/^::ffff:/, '')
  return `${ip}:${socket.remotePort ?? 0}`
}

/**
 * One client's socket, as the actors see it: frames in (to the session
 * machine, or to a relay that borrowed them), frames out with backpressure.
 */
export class Connection implements FramePort {
  private session: AnyActorRef | null = null
  private borrowed: FrameQueue | null = null
  private closing = false

  constructor (readonly socket: Socket, private readonly maxFrame: number) {
    socket.setNoDelay(true)
  }

  get isOpen (): boolean {
    return !this.socket.destroyed && !this.closing
  }

  /** Starts reading; resolves when the connection has ended. */
  async run (session: AnyActorRef): Promise<void> {
    this.session = session
    let reason = 'client closed the connection'
    try {
      // destroyOnReturn: false, or a violation would destroy the socket before its error frame is sent.
      await pipe(this.socket.iterator({ destroyOnReturn: false }), decodeFrames({ maxFrame: this.maxFrame }), async (frames) => {
        for await (const frame of frames) {
          if (this.borrowed !== null) await this.borrowed.put(frame)
          else this.toSession(frame)
        }
      })
    } catch (err) {
      if (err instanceof ProtocolError) {
        reason = `protocol | ${err.detail}`
        if (this.borrowed !== null) this.borrowed.end(err)
        else this.tell({ type: 'protocol.violation', detail: err.detail })
      } else {
        reason = `connection error | ${(err as Error).message}`
      }
    } finally {
      this.borrowed?.end()
      this.tell({ type: 'socket.closed', reason })
      // Let what was queued (an error frame) flush before the socket goes.
      this.close()
    }
  }

  sendJson (value: unknown): void {
    if (!this.socket.writable) return
    this.socket.write(encodeJson(value))
  }

  async sendBinary (chunks: Iterable<Uint8Array>, byteLength: number): Promise<void> {
    if (!this.socket.writable) return
    this.socket.cork()
    this.socket.write(binaryHeader(byteLength))
    for (const chunk of chunks) this.socket.write(chunk)
    this.socket.uncork()
    await this.drained()
  }

  drained (): Promise<void> {
    const s = this.socket
    if (!s.writableNeedDrain || s.destroyed) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => { s.off('drain', done); s.off('close', done); resolve() }
      s.on('drain', done)
      s.on('close', done)
    })
  }

  borrowFrames (): BorrowedFrames {
    const queue = new FrameQueue((leftover) => {
      if (this.borrowed === queue) this.borrowed = null
      for (const frame of leftover) this.toSession(frame)
    })
    if (this.socket.destroyed) queue.end()
    this.borrowed = queue
    return queue
  }

  close (): void {
    if (this.closing) return
    this.closing = true
    this.socket.end()
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref()
  }

  private toSession (frame: Frame): void {
    this.tell(frame.kind === 'json' ? { type: 'frame', value: frame.value } : { type: 'frame.binary' })
  }

  private tell (event: { type: string, [k: string]: unknown }): void {
    if (this.session !== null && this.session.getSnapshot().status === 'active') this.session.send(event)
  }
}
