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
