import type { Server } from 'node:net'

/**
 * A start-up failure the operator can fix (a taken port, an unusable data
 * dir): src/main.ts prints its message as one line and exits 1, no stack.
 */
export class OperatorError extends Error {
  override readonly name: string = 'OperatorError'
}

const LISTEN_PROBLEMS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the port is already in use (another server running?)',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'the address is not one of this machine\'s'
}

/**
 * `server.listen(port, host)`, resolved once listening; an OperatorError
 * naming `what`, the address and the cause when it cannot (`hint`: how to
 * choose another port).
 */
export async function listenOrFail (server: Server, port: number, host: string, what: string, hint: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening)
      const problem = LISTEN_PROBLEMS[err.code ?? ''] ?? err.message
      reject(new OperatorError(`${what} cannot listen on ${host}:${port}: ${problem}; ${hint}`))
    }
    const onListening = (): void => {
      server.off('error', onError)
      resolve()
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen(port, host)
  })
}
