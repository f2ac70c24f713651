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
 * Reads a server-sent event stream until `done` holds for the `status`
 * events received so far (bounded by `timeoutMs`); returns the raw text.
 */
export function readEvents (url: string, done: (statuses: unknown[]) => boolean, timeoutMs = 10_000): Promise<{ raw: string, statuses: unknown[] }> {
  return new Promise((resolve, reject) => {
    let raw = ''
    const statuses: unknown[] = []
    const req = request(url, (res) => {
      if (res.statusCode !== 200) { reject(new Error(`events: HTTP ${res.statusCode ?? 0}`)); req.destroy(); return }
      res.setEncoding('utf8')
      let buffer = ''
      res.on('data', (d: string) => {
        raw += d
        buffer += d
        let end: number
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const lines = block.split('\n')
          if (lines.includes('event: status')) {
            statuses.push(JSON.parse(lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n')))
          }
        }
        if (done(statuses)) { clearTimeout(timer); req.destroy(); resolve({ raw, statuses }) }
      })
    })
    const timer = setTimeout(() => { req.destroy(); reject(new Error(`events: condition not met within ${timeoutMs} ms (${statuses.length} status events)`)) }, timeoutMs)
    req.on('error', (err) => { if (!req.destroyed) reject(err) })
    req.end()
  })
}
