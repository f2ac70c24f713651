/**
 * The clients of bench/persist, in their own process so that their work does
 * not count in the server's event loop: `tsx bench/persist-clients.ts <port>
 * <clients> <ms> <story bytes>`. Each client joins, then updates the story
 * as fast as the server acknowledges (`"story"`, `[story, newer timestamp]`,
 * merged reply, ack, `"yours"`) until the time is up, never passing (so no
 * notification exchanges). Prints one JSON line: acknowledged updates (the
 * merged reply was the client's own story) and refused ones (a newer update
 * of another client got there first).
 */
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { Uint8ArrayList } from 'uint8arraylist'
import { encodeJson, HEADER_BYTES } from '../protocol/frame.ts'
import { bigStory } from './story.ts'

const [port, clients, durationMs, storyBytes] = process.argv.slice(2).map(Number)
const storyJson = Buffer.from(JSON.stringify(bigStory(storyBytes)))
let clock = 0
/** Strictly increasing across all clients of this process (a day of updates at most: the bench runs seconds). */
const nextTimestamp = (): string => {
  const n = ++clock
  const two = (x: number): string => String(x).padStart(2, '0')
  return `2030/01/01-${two(Math.floor(n / 3600))}:${two(Math.floor(n / 60) % 60)}:${two(n % 60)}`
}

/** A bare frame reader: big payloads are not parsed, only their first bytes are looked at. */
class Peer {
  private readonly buf = new Uint8ArrayList()
  private waiting: (() => void) | undefined
  constructor (readonly socket: Socket) {
    socket.on('data', (d: Buffer) => { this.buf.append(d); this.waiting?.() })
  }

  async frame (): Promise<Buffer> {
    for (;;) {
      if (this.buf.byteLength >= HEADER_BYTES) {
        const length = this.buf.getUint32(0)
        if (this.buf.byteLength >= HEADER_BYTES + length) {
          const payload = Buffer.from(this.buf.subarray(HEADER_BYTES, HEADER_BYTES + length))
          this.buf.consume(HEADER_BYTES + length)
          return payload
        }
      }
      await new Promise<void>((resolve) => { this.waiting = resolve })
    }
  }

  async expect (text: string): Promise<void> {
    const got = (await this.frame()).toString('utf8', 0, 200)
    if (got !== JSON.stringify(text)) throw new Error(`expected ${text}, got ${got}`)
  }

  send (value: unknown): void { this.socket.write(encodeJson(value)) }
}

async function client (i: number, deadline: number): Promise<{ acked: number, refused: number }> {
  const socket = connect({ port, host: '127.0.0.1', noDelay: true })
  await once(socket, 'connect')
  const peer = new Peer(socket)
  await peer.expect('username?')
  peer.send(`artist${i}`)
  await peer.expect('project?')
  peer.send('Bench')
  for (const kind of ['story', 'assets', 'analytics']) {
    await peer.expect(kind)
    peer.send(kind === 'assets' ? {} : [{}, '0000/00/00-00:00:00'])
    await peer.frame()
    peer.send(true)
  }
  await peer.expect('yours')
  const me = JSON.stringify(`127.0.0.1:${socket.localPort ?? 0}`)
  let acked = 0
  let refused = 0
  while (Date.now() < deadline) {
    peer.send('story')
    await peer.expect('story')
    const tail = Buffer.from(`,${JSON.stringify(nextTimestamp())}]`)
    const payload = Buffer.concat([Buffer.from('['), storyJson, tail])
    const header = Buffer.alloc(HEADER_BYTES)
    header.writeUInt32BE(payload.byteLength, 0)
    socket.write(Buffer.concat([header, payload]))
    const reply = (await peer.frame()).toString('utf8', 0, me.length + 1)
    if (reply === `[${me}`) acked++
    else refused++
    peer.send(true)
    await peer.expect('yours')
  }
  socket.destroy()
  return { acked, refused }
}

const deadline = Date.now() + durationMs
const results = await Promise.all(Array.from({ length: clients }, async (_, i) => await client(i, deadline)))
console.log(JSON.stringify({
  acked: results.reduce((n, r) => n + r.acked, 0),
  refused: results.reduce((n, r) => n + r.refused, 0)
}))
