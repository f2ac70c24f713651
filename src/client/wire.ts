import type { Socket } from 'node:net'
import { pipe } from 'it-pipe'
import { decodeFrames } from '../../protocol/decoder.ts'
import { binaryHeader, encodeJson, ProtocolError, type Frame, type JsonValue } from '../../protocol/frame.ts'
import type { ErrorCode } from '../../protocol/errors.ts'
import { parseErrorMessage } from '../../protocol/messages.ts'
import { ClientError } from './errors.ts'

const describe = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v)
  return s.length > 120 ? `${s.slice(0, 117)}...` : s
}

/**
 * One connection, frame by frame: a pull-based reader (reading is paused
 * while nobody asks for the next frame, so the socket applies backpressure to
 * the server) and writers that wait for 'drain'.
 */
export class Channel {
  private readonly frames: AsyncIterator<Frame>
  /** Why the socket failed, if it did (ECONNRESET…), for error messages. */
  private socketError: Error | null = null

  constructor (readonly socket: Socket, maxFrame: number) {
    socket.on('error', (err) => { this.socketError = err })
    this.frames = pipe(socket, decodeFrames({ maxFrame }))[Symbol.asyncIterator]()
  }

  /** The next frame; a ClientError when the connection ended or broke §1. */
  async next (): Promise<Frame> {
    let r: IteratorResult<Frame>
    try {
      r = await this.frames.next()
    } catch (err) {
      if (err instanceof ProtocolError) throw new ClientError('protocol', `the server broke the framing: ${err.detail}`)
      throw new ClientError('closed', `connection lost: ${(err as Error).message}`)
    }
    if (r.done === true) {
      throw new ClientError('closed', this.socketError !== null ? `connection lost: ${this.socketError.message}` : 'the server closed the connection')
    }
    return r.value
  }

  /** The next frame, which must be JSON. */
  async json (): Promise<JsonValue> {
    const f = await this.next()
    if (f.kind !== 'json') throw new ClientError('bad_reply', `${f.bytes.byteLength} bytes of file content where a message was expected`)
    return f.value
  }

  /** The next message, which must be `"yours"`. */
  async yours (after: string): Promise<void> {
    const v = await this.json()
    if (v !== 'yours') throw unexpected(v, `"yours" after ${after}`)
  }

  sendJson (value: unknown): void {
    if (!this.socket.writable) throw new ClientError('closed', 'the connection is closed')
    this.socket.write(encodeJson(value))
  }

  /**
   * One binary frame (≤ 1 MiB, the caller cuts), waiting for 'drain' when the
   * socket is full; `written` is called once the socket no longer needs `chunk`.
   */
  async sendBinary (chunk: Uint8Array, written?: () => void): Promise<void> {
    if (!this.socket.writable) throw new ClientError('closed', 'the connection is closed')
    this.socket.cork()
    this.socket.write(binaryHeader(chunk.byteLength))
    const ok = written === undefined ? this.socket.write(chunk) : this.socket.write(chunk, (err) => { if (err == null) written() })
    this.socket.uncork()
    if (!ok) await this.drained()
  }

  /** Resolves once what was written has left the socket's buffer; rejects if the socket closes first. */
  drained (): Promise<void> {
    const s = this.socket
    if (!s.writableNeedDrain) return Promise.resolve()
    if (s.destroyed) return Promise.reject(new ClientError('closed', 'the connection is closed'))
    return new Promise((resolve, reject) => {
      const done = (): void => { s.off('drain', done); s.off('close', gone); resolve() }
      const gone = (): void => { s.off('drain', done); s.off('close', gone); reject(new ClientError('closed', 'the connection closed while sending')) }
      s.on('drain', done)
      s.on('close', gone)
    })
  }
}

/** A ClientError for a reply the contract does not allow at this point; `["error", …]` keeps its code. */
export function unexpected (v: JsonValue, wanted: string): ClientError {
  const e = parseErrorMessage(v)
  if (e.ok) return new ClientError(e.value.code, e.value.detail)
  return new ClientError('bad_reply', `expected ${wanted}, got ${describe(v)}`)
}

/** `["error", code, detail]` as a value, or null for anything else. */
export function errorOf (v: JsonValue): { code: ErrorCode, detail: string } | null {
  const e = parseErrorMessage(v)
  return e.ok ? e.value : null
}
