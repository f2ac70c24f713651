import { networkInterfaces } from 'node:os'

/** The machine's first non-internal IPv4 address, or 127.0.0.1 when it has none. */
export function firstExternalIPv4 (): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) {
      if (a.family === 'IPv4' && !a.internal) return a.address
    }
  }
  return '127.0.0.1'
}

/** §1: the TCP port clients assume when an announcement names none. */
export const DEFAULT_TCP_PORT = 64646

const WILDCARDS = new Set(['', '0.0.0.0', '::', '::0', '0:0:0:0:0:0:0:0'])

/**
 * §7: the `<ip>` or `<ip>:<port>` a discovery announcement gives: an address
 * clients can reach, which is the listen address, or the machine's own when
 * the server listens on all of them; the port only when it is not 64646.
 */
export function announcedAddress (host: string, port: number): string {
  const ip = WILDCARDS.has(host) ? firstExternalIPv4() : host
  if (port === DEFAULT_TCP_PORT) return ip
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
}
