import { Logger } from 'tslog'

export type LogFormat = 'pretty' | 'json'
export const LOG_LEVELS = ['silly', 'trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const
export type LogLevel = typeof LOG_LEVELS[number]

/**
 * The server's log: `human` lines are the terminal lines of the original
 * server (also mirrored over UDP by discovery); the rest is detail for
 * operators, filtered by `--log-level`.
 */
export interface ServerLog {
  human: (line: string) => void
  debug: (message: unknown, ...rest: unknown[]) => void
  warn: (message: unknown, ...rest: unknown[]) => void
  error: (message: unknown, ...rest: unknown[]) => void
  /** Called with every human line; returns a function that detaches the listener. */
  onHumanLine: (listener: (line: string) => void) => () => void
}

export interface LogOptions {
  format?: LogFormat
  level?: LogLevel
  /** `hidden` writes nothing to stdout (tests), listeners still hear human lines. */
  silent?: boolean
}

export function createLog (options: LogOptions = {}): ServerLog {
  const logger = new Logger<unknown>({
    name: 'multiuser',
    type: options.silent === true ? 'hidden' : (options.format ?? 'pretty'),
    minLevel: (options.level ?? 'info').toUpperCase() as Uppercase<LogLevel>,
    stack: { capture: 'off' }
  })
  const listeners = new Set<(line: string) => void>()
  return {
    human: (line) => {
      logger.info(line)
      for (const listener of listeners) listener(line)
    },
    debug: (message, ...rest) => { logger.debug(String(message), ...rest) },
    warn: (message, ...rest) => { logger.warn(String(message), ...rest) },
    error: (message, ...rest) => { logger.error(String(message), ...rest) },
    onHumanLine: (listener) => {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    }
  }
}
