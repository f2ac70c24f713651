import type { Frame } from '../protocol/frame.ts'
import type { BorrowedFrames } from '../actors/ports.ts'

/** The borrower is behind when this many payload bytes are queued… */
const HIGH_WATER_BYTES = 1024 * 1024
/** …or this many frames (many small files). */
const HIGH_WATER_FRAMES = 256

const frameBytes = (frame: Frame): number => (frame.kind === 'binary' ? frame.bytes.byteLength : 64)

/**
 * A connection's incoming frames, handed to a relay while it runs.
 *
 * The producer (the connection's socket reader) calls `push`, which returns
 * false once the borrower is behind; the producer then stops reading the
 * socket (TCP backpressure to the sender) until `onRoom` is called, when the
 * borrower has taken half of what was queued.
 *
 * The borrower either iterates it (`for await`) or pulls: `shift()` for what
 * is there now, `wait()` for more (a relay uses this: no async generator per
 * frame, and a wait it gives up on takes no frame with it).
 */
export class FrameQueue implements BorrowedFrames {
  private frames: Frame[] = []
  private head = 0
  private bytes = 0
  private ended = false
  private released = false
  private discarding = false
  private full = false
  private failureError: Error | null = null
  private wakeReader: (() => void) | null = null

  constructor (
    private readonly onRelease: (leftover: Frame[]) => void,
    private readonly onRoom: () => void = () => {}
  ) {}

  /** Queues a frame; false when the borrower is behind and the producer should pause. */
  push (frame: Frame): boolean {
    if (this.ended || this.discarding) return true
    this.frames.push(frame)
    this.bytes += frameBytes(frame)
    this.wake()
    this.full = this.bytes >= HIGH_WATER_BYTES || this.frames.length - this.head >= HIGH_WATER_FRAMES
    return !this.full
  }

  /** The connection ended: the borrower sees the end (or the error) after what is queued. */
  end (failure?: Error): void {
    if (failure !== undefined && this.failureError === null) this.failureError = failure
    this.ended = true
    this.wake()
    this.roomNow()
  }

  /** Gives the frames back: what is queued, and what comes later, goes to `onRelease`'s owner. */
  release (): void {
    if (this.released) return
    this.released = true
    const leftover = this.discarding ? [] : this.frames.slice(this.head)
    this.clear()
    this.ended = true
    this.wake()
    this.onRelease(leftover)
    this.roomNow()
  }

  /**
   * Keeps the frames borrowed but drops them, queued and future, until the
   * connection ends: for a peer that broke the relay and is being closed, so
   * that nothing it still sends reaches its session.
   */
  discard (): void {
    if (this.released) return
    this.discarding = true
    this.clear()
    this.wake()
    this.roomNow()
  }

  // ------------------------------------------------------------ pulling

  /** The next frame, if one is queued. */
  shift (): Frame | undefined {
    if (this.head >= this.frames.length) return undefined
    const frame = this.frames[this.head]
    this.frames[this.head++] = undefined as unknown as Frame
    this.bytes -= frameBytes(frame)
    if (this.head >= this.frames.length) {
      this.frames = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.frames.length) {
      // A queue that never runs empty (a steady relay) must not grow a tail of taken slots.
      this.frames = this.frames.slice(this.head)
      this.head = 0
    }
    if (this.full && this.bytes < HIGH_WATER_BYTES / 2 && this.frames.length - this.head < HIGH_WATER_FRAMES / 2) this.roomNow()
    return frame
  }

  /** Nothing queued and nothing more will come. */
  get done (): boolean {
    return (this.ended || this.discarding) && this.head >= this.frames.length
  }

  /** Why the connection ended, when it was a protocol violation. */
  get failure (): Error | null {
    return this.failureError
  }

  /** Resolves when a frame is queued or the queue is done. */
  wait (): Promise<void> {
    if (this.head < this.frames.length || this.done) return Promise.resolve()
    return new Promise<void>((resolve) => { this.wakeReader = resolve })
  }

  async * [Symbol.asyncIterator] (): AsyncGenerator<Frame> {
    while (true) {
      const frame = this.shift()
      if (frame !== undefined) {
        yield frame
        continue
      }
      if (this.done) {
        if (this.failureError !== null && !this.discarding) throw this.failureError
        return
      }
      await this.wait()
    }
  }

  private clear (): void {
    this.frames = []
    this.head = 0
    this.bytes = 0
  }

  private wake (): void {
    const r = this.wakeReader
    this.wakeReader = null
    r?.()
  }

  private roomNow (): void {
    if (!this.full) return
    this.full = false
    this.onRoom()
  }
}
