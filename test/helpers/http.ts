import { request, type IncomingHttpHeaders } from 'node:http'

export interface HttpResult {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/** A GET with exactly these headers (node:http, so that Host can be anything). */
export function get (url: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

export const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

/**
 * Opens a server-sent event stream and calls `onStatus` with the data of each
 * `status` event; returns a function that closes it.
 */
export function openEvents (url: string, onStatus: (data: string) => void, onError: (err: Error) => void = () => {}): () => void {
  const req = request(url, (res) => {
    if (res.statusCode !== 200) { onError(new Error(`events: HTTP ${res.statusCode ?? 0}`)); req.destroy(); return }
    res.setEncoding('utf8')
    let buffer = ''
    res.on('data', (d: string) => {
      buffer += d
      let end: number
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const lines = buffer.slice(0, end).split('\n')
        buffer = buffer.slice(end + 2)
        if (lines.includes('event: status')) onStatus(lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n'))
      }
    })
  })
  req.on('error', (err) => { if (!req.destroyed) onError(err) })
  req.end()
  return () => req.destroy()
}

/**
 * Reads a server-sent event stream until `done` holds for the `status`
 * events received so far (bounded by `timeoutMs`); returns them.
 */
export function readEvents (url: string, done: (statuses: unknown[]) => boolean, timeoutMs = 10_000): Promise<{ raw: string, statuses: unknown[] }> {
  return new Promise((resolve, reject) => {
    const statuses: unknown[] = []
    let raw = ''
    const timer = setTimeout(() => { close(); reject(new Error(`events: condition not met within ${timeoutMs} ms (${statuses.length} status events)`)) }, timeoutMs)
    const close = openEvents(url, (data) => {
      raw += `${data}\n`
      statuses.push(JSON.parse(data))
      if (done(statuses)) { clearTimeout(timer); close(); resolve({ raw, statuses }) }
    }, (err) => { clearTimeout(timer); reject(err) })
  })
}
