import { createHash, timingSafeEqual } from 'node:crypto'

/** Addresses that keep the HTTP side on this machine; any other, other loopback addresses included, exposes it. */
const PRIVATE_HOSTS = new Set(['127.0.0.1', '::1'])

export const isExposed = (host: string): boolean => !PRIVATE_HOSTS.has(host)

/** The refusal when the page would be exposed without a secret (the CLI and startHttp both say it). */
export function exposedWithoutSecret (host: string): string {
  return `--http-host ${host} exposes the status page beyond this machine, and then it requires the server's secret: ` +
    'start the server with --secret too (viewers log in with it as password), or keep --http-host 127.0.0.1'
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest()
const same = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b))

/**
 * Whether an `Authorization` header carries the secret: HTTP Basic with the
 * secret as password (any user name, so a browser's login box works), or
 * `Bearer <secret>` (scrapers, scripts).
 */
export function hasSecret (authorization: string | undefined, secret: string): boolean {
  if (authorization === undefined) return false
  const [scheme, value = ''] = authorization.trim().split(/\s+/, 2)
  switch (scheme.toLowerCase()) {
    case 'bearer':
      return same(value, secret)
    case 'basic': {
      const decoded = Buffer.from(value, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      return colon >= 0 && same(decoded.slice(colon + 1), secret)
    }
    default:
      return false
  }
}

/**
 * The Host headers a page served on loopback answers to: its own address and
 * `localhost`, on its port. Any other name is a web page trying to read it
 * through DNS rebinding.
 */
export function loopbackHosts (host: string, port: number): Set<string> {
  const own = host.includes(':') ? `[${host}]` : host
  return new Set([`${own}:${port}`, `localhost:${port}`])
}
