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

/**
 * Characters that could forge or garble a log line: C0 and C1 controls (a
 * newline starts a fake line, ESC drives the terminal), DEL, and the Unicode
 * line and paragraph separators.
 */
// eslint-disable-next-line no-control-regex
const UNSAFE_IN_A_LINE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g
const SHORT_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/**
 * A log line as one line of plain text: every unsafe character written as an
 * escape (`\n`, `\u001b`). Client-supplied text (usernames, paths, folders,
 * project names, error details) reaches log lines, so every line goes through
 * this, in pretty and JSON logs and in the UDP terminal mirror.
 */
export function escapeLogText (text: string): string {
  UNSAFE_IN_A_LINE.lastIndex = 0
  if (!UNSAFE_IN_A_LINE.test(text)) return text
  return text.replace(UNSAFE_IN_A_LINE, (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
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
    human: (text) => {
      const line = escapeLogText(text)
      logger.info(line)
      for (const listener of listeners) listener(line)
    },
    debug: (message, ...rest) => { logger.debug(escapeLogText(String(message)), ...rest) },
    warn: (message, ...rest) => { logger.warn(escapeLogText(String(message)), ...rest) },
    error: (message, ...rest) => { logger.error(escapeLogText(String(message)), ...rest) },
    onHumanLine: (listener) => {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    }
  }
}
