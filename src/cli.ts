import { Command, InvalidArgumentError, Option } from 'commander'
import { DEFAULTS, type ServerOptions } from './server.ts'
import { LOG_LEVELS, type LogFormat, type LogLevel } from './log.ts'

export const DISCOVERY_PORT = 54545
export const LOOPBACK_BROADCAST = '127.255.255.255'
export const LAN_BROADCAST = '255.255.255.255'
export const DEFAULT_INSPECT_PORT = 8080

/** What the command line decides: the server's own options, and the app's around it. */
export interface CliOptions extends Omit<ServerOptions, 'restored' | 'inspect'> {
  readonly logFormat: LogFormat
  readonly logLevel: LogLevel
  readonly discovery: false | { readonly address: string, readonly port: number, readonly intervalMs: number }
  readonly persist: false | { readonly dataDir?: string }
  /** Inspector relay port, when `--inspect` was given. */
  readonly inspectPort?: number
}

const integer = (min: number, max: number) => (value: string): number => {
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`)
  return n
}
const seconds = (value: string): number => {
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number of seconds, 0 or more')
  return n
}
const positiveSeconds = (value: string): number => {
  const n = seconds(value)
  if (n <= 0) throw new InvalidArgumentError('expected a number of seconds greater than 0')
  return n
}

export function buildCli (): Command {
  return new Command('vcstudio-multiuser')
    .description('The VCStudio multiuser server (protocol v1): syncs story, assets and analytics\nbetween the studio\'s VCStudios and relays folders between their machines.')
    .argument('<project>', 'the project name clients must give in the handshake')
    .option('--host <address>', 'address to listen on', DEFAULTS.host)
    .option('--port <port>', 'TCP port to listen on (0 picks a free one)', integer(0, 65535), DEFAULTS.port)
    .option('--turn-hold <ms>', 'how long an idle pass may wait for news before "yours" (0 = at once; a request ends the wait)', integer(0, 3_600_000), DEFAULTS.turnHoldMs)
    .option('--idle-limit <s>', 'disconnect a client the server has waited on this long', positiveSeconds, DEFAULTS.idleLimitMs / 1000)
    .option('--relay-timeout <s>', 'withdraw a get whose giver holds its turn this long in all without starting it', positiveSeconds, DEFAULTS.relayTimeoutMs / 1000)
    .option('--max-frame <bytes>', 'largest frame accepted from a client', integer(1024, 2 ** 32 - 1), DEFAULTS.maxFrame)
    .option('--chat-limit <n>', 'chat messages kept (oldest dropped)', integer(1, 10_000_000), DEFAULTS.chatLimit)
    .option('--chat-bytes <bytes>', 'chat history kept, in bytes of JSON (oldest dropped; at least 512 KiB, so any message fits)', integer(512 * 1024, 256 * 1024 * 1024), DEFAULTS.chatBytes)
    .option('--output-limit <bytes>', 'disconnect a client with more than this waiting unsent for it, or output unsent for the idle limit (at least 8 MiB)', integer(8 * 1024 * 1024, 2 ** 40), DEFAULTS.outputLimit)
    .option('--max-connections <n>', 'clients at once; more are answered "busy"', integer(1, 1_000_000), DEFAULTS.maxConnections)
    .option('--secret <secret>', 'ask clients for this secret in the handshake, and require it in UDP aborts')
    .addOption(new Option('--log-format <format>', 'log output').choices(['pretty', 'json']).default('pretty'))
    .addOption(new Option('--log-level <level>', 'least important log level shown').choices([...LOG_LEVELS]).default('info'))
    .option('--data-dir <dir>', 'where story, analytics and chat are saved (default ./.multiuser/<project>/)')
    .option('--no-persist', 'keep everything in memory only')
    .option('--discovery-port <port>', 'UDP port for announcements, the terminal mirror and aborts', integer(1, 65535), DISCOVERY_PORT)
    .option('--discovery-address <address>', `where announcements go (default ${LOOPBACK_BROADCAST}, the loopback broadcast)`)
    .option('--lan', `announce to the LAN broadcast ${LAN_BROADCAST} instead of loopback`)
    .option('--announce-interval <s>', 'seconds between announcements (fractions allowed)', positiveSeconds, 1)
    .option('--no-discovery', 'no UDP at all: no announcements, no terminal mirror, no abort listener')
    .option('--inspect [port]', `serve the Stately inspector relay on 127.0.0.1 (default port ${DEFAULT_INSPECT_PORT})`)
    .showHelpAfterError()
}

interface RawOptions {
  host: string, port: number, turnHold: number, idleLimit: number, relayTimeout: number, maxFrame: number
  chatLimit: number, chatBytes: number, outputLimit: number, maxConnections: number, secret?: string, logFormat: LogFormat, logLevel: LogLevel
  dataDir?: string, persist: boolean, discoveryPort: number, discoveryAddress?: string, lan?: boolean
  announceInterval: number, discovery: boolean, inspect?: boolean | string
}

/** Parses argv (as `process.argv`), exiting with usage on bad input. */
export function parseCli (argv: readonly string[]): CliOptions {
  const command = buildCli()
  command.parse([...argv])
  const o = command.opts<RawOptions>()
  if (o.lan === true && o.discoveryAddress !== undefined) command.error('error: --lan and --discovery-address exclude each other')
  let inspectPort: number | undefined
  if (o.inspect !== undefined) {
    try {
      inspectPort = o.inspect === true ? DEFAULT_INSPECT_PORT : integer(0, 65535)(String(o.inspect))
    } catch (err) {
      command.error(`error: option '--inspect [port]' argument '${String(o.inspect)}' is invalid. ${(err as Error).message}`)
    }
  }
  return {
    projectName: command.args[0],
    host: o.host,
    port: o.port,
    turnHoldMs: o.turnHold,
    idleLimitMs: Math.round(o.idleLimit * 1000),
    relayTimeoutMs: Math.round(o.relayTimeout * 1000),
    maxFrame: o.maxFrame,
    chatLimit: o.chatLimit,
    chatBytes: o.chatBytes,
    outputLimit: o.outputLimit,
    maxConnections: o.maxConnections,
    secret: o.secret,
    logFormat: o.logFormat,
    logLevel: o.logLevel,
    discovery: o.discovery
      ? { address: o.lan === true ? LAN_BROADCAST : (o.discoveryAddress ?? LOOPBACK_BROADCAST), port: o.discoveryPort, intervalMs: Math.round(o.announceInterval * 1000) }
      : false,
    persist: o.persist ? { dataDir: o.dataDir } : false,
    inspectPort
  }
}
