import type { Frame } from '../protocol/frame.ts'
import type { BorrowedFrames } from '../actors/ports.ts'

/** How many frames a borrower may lag behind before the socket stops being read. */
const HIGH_WATER_FRAMES = 8

/**
 * A connection's incoming frames, handed to a relay while it runs. `put`
 * resolves only once the borrower has room, so a slow borrower stops the
 * socket from being read (TCP backpressure to the sender).
 */
export class FrameQueue implements BorrowedFrames {
  private readonly frames: Frame[] = []
  private ended = false
  private failure: Error | null = null
  private wakeReader: (() => void) | null = null
  private wakeWriter: (() => void) | null = null

  constructor (private readonly onRelease: (leftover: Frame[]) => void) {}

  async put (frame: Frame): Promise<void> {
    if (this.ended) return
    this.frames.push(frame)
    this.wake()
    while (this.frames.length >= HIGH_WATER_FRAMES && !this.ended) {
      await new Promise<void>((resolve) => { this.wakeWriter = resolve })
    }
  }

  /** The connection ended: the borrower sees the end (or the error) after what is queued. */
  end (failure?: Error): void {
    if (failure !== undefined) this.failure = failure
    this.ended = true
    this.wake()
  }

  release (): void {
    if (this.ended && this.frames.length === 0) return
    this.ended = true
    const leftover = this.frames.splice(0)
    this.wake()
    this.onRelease(leftover)
  }

  async * [Symbol.asyncIterator] (): AsyncGenerator<Frame> {
    while (true) {
      const frame = this.frames.shift()
      if (frame !== undefined) {
        if (this.frames.length < HIGH_WATER_FRAMES) this.wakeWriterNow()
        yield frame
        continue
      }
      if (this.ended) {
        if (this.failure !== null) throw this.failure
        return
      }
      await new Promise<void>((resolve) => { this.wakeReader = resolve })
    }
  }

  private wake (): void {
    const r = this.wakeReader
    this.wakeReader = null
    r?.()
    this.wakeWriterNow()
  }

  private wakeWriterNow (): void {
    const w = this.wakeWriter
    this.wakeWriter = null
    w?.()
  }
}
