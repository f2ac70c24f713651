import type { Frame } from '../protocol/frame.ts'

/**
 * What a session's connection offers the actors, implemented over a socket in
 * `src/connection.ts`. Machines call it only through provided actions and
 * actors, so the same machines run without sockets.
 */
export interface FramePort {
  /**
   * Queues one JSON message. With `shareKey` (an immutable value the message
   * is built from, like the chat history), one encoding serves every
   * connection that sends it while that value lives.
   */
  sendJson: (value: unknown, shareKey?: object) => void
  /** Waits until the socket can take more (backpressure). */
  drained: () => Promise<void>
  /** Writes raw bytes as one binary frame; resolves when the socket can take more. */
  sendBinary: (chunks: Iterable<Uint8Array>, byteLength: number) => Promise<void>
  /**
   * Takes over this connection's incoming frames until `release()`: they go to
   * the returned stream instead of the session machine. The stream ends when
   * the connection closes.
   */
  borrowFrames: () => BorrowedFrames
  /** Ends the connection once what was queued has been written. */
  close: () => void
}

export interface BorrowedFrames extends AsyncIterable<Frame> {
  release: () => void
}
