import { fromCallback, type EventObject } from 'xstate'
import type { Frame } from '../protocol/frame.ts'
import { validateFileAck, validateFileHeader, validateGetlist, validateManifest } from '../protocol/messages.ts'
import type { RelayOutcome, RelayPipeEvent, RelayPipeInput } from '../actors/giver.ts'
import type { BorrowedFrames } from '../actors/ports.ts'

/** What reading the next frame of one side gave. */
type Next =
  | { readonly kind: 'frame', readonly frame: Frame }
  | { readonly kind: 'gone' }
  | { readonly kind: 'broken', readonly detail: string }
  | { readonly kind: 'idle' }

class Side {
  private readonly iterator: AsyncIterator<Frame>
  constructor (readonly frames: BorrowedFrames, private readonly idleLimitMs: number) {
    this.iterator = frames[Symbol.asyncIterator]()
  }

  /** The next frame, or why there is none (closed, protocol violation, idle limit). */
  async next (): Promise<Next> {
    let timer: NodeJS.Timeout | undefined
    const idle = new Promise<Next>((resolve) => { timer = setTimeout(() => resolve({ kind: 'idle' }), this.idleLimitMs) })
    try {
      const read = this.iterator.next().then(
        (r): Next => (r.done === true ? { kind: 'gone' } : { kind: 'frame', frame: r.value }),
        (err: Error): Next => ({ kind: 'broken', detail: err.message })
      )
      return await Promise.race([read, idle])
    } finally {
      clearTimeout(timer)
    }
  }
}

function deferred (): { promise: Promise<void>, resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => { resolve = r })
  return { promise, resolve }
}

/**
 * The bytes of one §5 relay, outside the state machines: `give`, manifest,
 * getlist, then files giver → taker and answers taker → giver at the same
 * time, each direction with backpressure. Checks everything it relays and
 * reports decisions (not chunks) to the giver actor.
 */
export async function runRelay (input: RelayPipeInput, report: (e: RelayPipeEvent) => void): Promise<RelayOutcome> {
  const { folder, giverPort, takerPort, idleLimitMs } = input
  const started = performance.now()
  const giver = new Side(giverPort.borrowFrames(), idleLimitMs)
  const taker = new Side(takerPort.borrowFrames(), idleLimitMs)
  let files = 0
  let bytes = 0
  const end = (o: Omit<RelayOutcome, 'files' | 'bytes' | 'durationMs'> = {}): RelayOutcome =>
    ({ files, bytes, durationMs: performance.now() - started, ...o })
  const giverFailed = (n: Next, during: string): Omit<RelayOutcome, 'files' | 'bytes' | 'durationMs'> => {
    const detail = n.kind === 'gone'
      ? `giver disconnected ${during}`
      : n.kind === 'idle' ? `giver idle for ${idleLimitMs / 1000} s ${during}` : `giver broke the protocol ${during}: ${n.kind === 'broken' ? n.detail : 'unexpected frame'}`
    return {
      failure: detail,
      takerError: { code: 'relay_failed', detail },
      giverViolation: n.kind === 'gone' ? undefined : detail
    }
  }

  try {
    giverPort.sendJson(['give', folder])
    const m = await giver.next()
    if (m.kind !== 'frame' || m.frame.kind !== 'json') return end(giverFailed(m, 'instead of a manifest'))
    const manifest = validateManifest(m.frame.value)
    if (!manifest.ok) return end(giverFailed({ kind: 'broken', detail: manifest.detail }, 'in its manifest'))
    takerPort.sendJson(manifest.value)
    report({ type: 'pipe.manifest', files: Object.keys(manifest.value).length })

    const l = await taker.next()
    if (l.kind !== 'frame' || l.frame.kind !== 'json') {
      giverPort.sendJson([])
      if (l.kind === 'gone') return end({ failure: 'taker disconnected before its getlist' })
      const detail = l.kind === 'idle' ? `taker idle for ${idleLimitMs / 1000} s before its getlist` : 'taker sent no getlist'
      return end({ failure: detail, takerViolation: detail })
    }
    const getlist = validateGetlist(l.frame.value, manifest.value)
    if (!getlist.ok) {
      giverPort.sendJson([])
      return end({ failure: `bad getlist: ${getlist.detail}`, takerError: { code: 'bad_request', detail: getlist.detail } })
    }
    giverPort.sendJson(getlist.value)
    report({ type: 'pipe.getlist', files: getlist.value.length })
    if (getlist.value.length === 0) return end()

    return await stream(getlist.value)
  } finally {
    giver.frames.release()
    taker.frames.release()
  }

  async function stream (paths: readonly string[]): Promise<RelayOutcome> {
    const received = paths.map(() => deferred())
    let headersSent = 0
    let takerGone = false
    let takerViolation: string | undefined
    let giverFailure: ReturnType<typeof giverFailed> | undefined

    const failGiver = (failure: ReturnType<typeof giverFailed>): void => {
      giverFailure = failure
      taker.frames.release()
      for (const d of received) d.resolve()
    }

    const forwardFiles = async (): Promise<void> => {
      for (const [i, path] of paths.entries()) {
        const h = await giver.next()
        if (h.kind !== 'frame' || h.frame.kind !== 'json') return failGiver(giverFailed(h, `before the header of ${path}`))
        const header = validateFileHeader(h.frame.value, path)
        if (!header.ok) return failGiver(giverFailed({ kind: 'broken', detail: header.detail }, `at ${path}`))
        if (!takerGone) takerPort.sendJson(h.frame.value)
        headersSent = i + 1
        if (header.value.type === 'file') {
          let remaining = header.value.size
          while (remaining > 0) {
            const b = await giver.next()
            if (b.kind !== 'frame') return failGiver(giverFailed(b, `with ${remaining} bytes of ${path} to go`))
            if (b.frame.kind !== 'binary') {
              return failGiver(giverFailed({ kind: 'broken', detail: `a JSON frame where ${remaining} bytes of ${path} were expected` }, `in ${path}`))
            }
            const n = b.frame.bytes.byteLength
            if (n > remaining) return failGiver(giverFailed({ kind: 'broken', detail: `binary frames of ${path} exceed its size of ${header.value.size} bytes` }, `in ${path}`))
            remaining -= n
            bytes += n
            if (!takerGone) await takerPort.sendBinary(b.frame.bytes, n)
          }
          files++
          report({ type: 'pipe.file', path, bytes: header.value.size })
        }
        received[i].resolve()
      }
    }

    const forwardAnswers = async (): Promise<void> => {
      for (const [i, path] of paths.entries()) {
        while (!takerGone) {
          const a = await taker.next()
          if (giverFailure !== undefined) return
          if (a.kind === 'gone') { takerGone = true; break }
          if (a.kind !== 'frame' || a.frame.kind !== 'json') {
            takerViolation = a.kind === 'idle' ? `taker idle for ${idleLimitMs / 1000} s` : `taker sent ${a.kind === 'broken' ? a.detail : 'bytes'} instead of an answer for ${path}`
            takerGone = true
            break
          }
          const ack = validateFileAck(a.frame.value, path)
          if (!ack.ok || i >= headersSent) {
            takerViolation = ack.ok ? `taker answered for ${path} before it was sent` : ack.detail
            takerGone = true
            break
          }
          giverPort.sendJson(a.frame.value)
          break
        }
        if (takerGone) {
          await received[i].promise
          if (giverFailure !== undefined) return
          giverPort.sendJson(['failed', path, 'taker disconnected'])
        }
      }
    }

    await Promise.all([forwardFiles(), forwardAnswers()])
    if (giverFailure !== undefined) return end(giverFailure)
    if (takerViolation !== undefined) return end({ failure: takerViolation, takerViolation })
    if (takerGone) return end({ failure: 'taker disconnected' })
    return end()
  }
}

/** The giver actor's `relayPipe`: runs the relay and reports back. */
export const relayPipe = fromCallback<EventObject, RelayPipeInput>(({ input, sendBack }) => {
  runRelay(input, sendBack).then(
    (outcome) => sendBack({ type: 'pipe.done', outcome }),
    (err: Error) => sendBack({
      type: 'pipe.done',
      outcome: { files: 0, bytes: 0, durationMs: 0, failure: `relay crashed: ${err.message}`, takerError: { code: 'relay_failed', detail: 'internal relay error' } }
    })
  )
})
