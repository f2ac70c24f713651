import { stat } from 'node:fs/promises'
import { userInfo } from 'node:os'
import { resolve } from 'node:path'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import type { UsersReply } from '../../protocol/messages.ts'
import { connect, DEFAULT_HOST, DEFAULT_PORT, type Client } from './client.ts'
import { ClientError } from './errors.ts'
import { ProgressView, summaryJson, summaryLine } from './progress.ts'
import { stayConnected } from './reconnect.ts'
import { GetError, type GetResult } from './take.ts'
import { formatTimestamp } from './timestamp.ts'

const NAME = 'vcstudio-multiuser-client'

/** Exit codes (docs/client.md): done, some files or the relay failed, usage/connection/handshake error, nothing to get. */
export const EXIT = { done: 0, failed: 1, usage: 2, nothing: 3 } as const

interface GlobalOptions {
  host: string
  port: number
  username: string
  project: string
  secret?: string
  root: string
  protocolRevision: 1 | 2
}

/** A failure the CLI reports on one line of stderr, exiting with `exitCode`. */
class CliFailure extends Error {
  constructor (message: string, readonly exitCode: number) {
    super(message)
  }
}

const port = (value: string): number => {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('expected a TCP port, 1 to 65535')
  return n
}

const revision = (value: string): 1 | 2 => {
  if (value !== '1' && value !== '2') throw new InvalidArgumentError('expected 1 or 2')
  return value === '1' ? 1 : 2
}

function defaultUsername (): string {
  try {
    return userInfo().username || 'vcstudio-client'
  } catch {
    return 'vcstudio-client'
  }
}

/** Where the user ran the command: npm runs scripts in the package folder and gives the user's folder as INIT_CWD. */
export function defaultRoot (env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): string {
  return env.INIT_CWD !== undefined && env.INIT_CWD !== '' ? env.INIT_CWD : cwd
}

const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim()

/** A connection; `stay` for serve and watch (they pass the turn to get notifications), else one that keeps its turn between requests. */
async function open (g: GlobalOptions, serve = false, stay = false): Promise<Client> {
  return await connect({
    host: g.host, port: g.port, username: g.username, project: g.project, secret: g.secret, root: resolve(g.root), serve,
    protocolRevision: g.protocolRevision, holdTurnWhenIdle: !stay
  })
}

/** Runs `body` with a connected client, closing it afterwards whatever happens. */
async function withClient<T> (g: GlobalOptions, body: (c: Client) => Promise<T>, serve = false): Promise<T> {
  const c = await open(g, serve)
  try {
    return await body(c)
  } finally {
    await c.close()
  }
}

/** Resolves on the first SIGINT/SIGTERM; `off()` stops listening. */
function signalled (): { stop: Promise<void>, off: () => void } {
  let off = (): void => {}
  const stop = new Promise<void>((resolve) => {
    const on = (): void => { off(); resolve() }
    off = () => { process.off('SIGINT', on); process.off('SIGTERM', on) }
    process.on('SIGINT', on)
    process.on('SIGTERM', on)
  })
  return { stop, off }
}

function userLine (id: string, u: UsersReply[string], self: string): string {
  const at = u.at === null ? '' : ` | at | ${u.at[0]} | ${u.at[1]}`
  return `${id} | ${u.username}${id === self ? ' (you)' : ''}${at}`
}

/** A user id as given, or the id of the one user with that name. */
function resolveUser (users: UsersReply, wanted: string, self: string): string {
  if (Object.hasOwn(users, wanted)) return wanted
  const named = Object.entries(users).filter(([id, u]) => u.username === wanted && id !== self).map(([id]) => id)
  if (named.length === 1) return named[0]
  if (named.length > 1) throw new CliFailure(`several users are named ${JSON.stringify(wanted)}: give a user id (${named.join(', ')})`, EXIT.usage)
  if (wanted.includes(':')) return wanted // let the server answer no_such_user
  throw new CliFailure(`no user named ${JSON.stringify(wanted)} is connected`, EXIT.nothing)
}

interface GetCommandOptions { delete?: boolean, dryRun?: boolean, json?: boolean }

const emptyResult: GetResult = { files: 0, bytes: 0, failed: [], skipped: 0, resumed: 0, bytesResumed: 0, conflicts: [], deleted: [] }

/** Lines for people after a get: conflicts, deletions, failures (the first 20), or a dry run's plan. */
function detailLines (r: GetResult): { out: string[], err: string[] } {
  const out: string[] = []
  if (r.plan !== undefined) {
    for (const [what, list] of [['new', r.plan.new], ['changed', r.plan.changed], ['conflict', r.plan.conflict], ['would delete', r.plan.delete]] as const) {
      for (const path of list) out.push(`${what} | ${path}`)
    }
  }
  for (const c of r.conflicts) out.push(`conflict | ${c.path} | your version is kept as ${c.copy}`)
  for (const d of r.deleted) out.push(`deleted | ${d.path} | moved to ${d.trash}`)
  const err = r.failed.slice(0, 20).map((f) => `failed | ${f.path} | ${oneLine(f.reason)}`)
  if (r.failed.length > 20) err.push(`failed | … and ${r.failed.length - 20} more`)
  return { out, err }
}

async function getCommand (g: GlobalOptions, user: string, folder: string, o: GetCommandOptions): Promise<number> {
  const mode = o.json === true ? 'json' : process.stderr.isTTY === true ? 'tty' : 'quiet'
  const view = new ProgressView(mode, (s) => (mode === 'json' ? process.stdout : process.stderr).write(s), process.stderr.columns ?? 100)
  const seconds = (): number => (performance.now() - view.startedAt) / 1000
  view.phase('connecting', `to ${g.host}:${g.port}`)
  let c: Client
  try {
    c = await open(g)
  } catch (err) {
    view.end()
    throw err
  }
  const { stop, off } = signalled()
  let interrupted = false
  void stop.then(() => { interrupted = true; c.destroy() })
  let giver = user
  try {
    giver = resolveUser(await c.users(), user, c.userId)
    const result = await c.get(giver, folder, { delete: o.delete, dryRun: o.dryRun, onProgress: (p) => view.update(p) })
    view.end()
    const code = result.failed.length > 0 ? EXIT.failed : EXIT.done
    const name = c.usersMap[giver]?.username ?? giver
    if (mode === 'json') {
      console.log(summaryJson(result, folder, giver, seconds(), code))
    } else {
      const lines = detailLines(result)
      for (const l of lines.out) console.log(l)
      for (const l of lines.err) process.stderr.write(`${l}\n`)
      if (result.plan !== undefined) {
        const p = result.plan
        console.log(`dry run: ${p.new.length} new | ${p.changed.length} changed | ${p.conflict.length} conflicts | ${p.delete.length} would be deleted` +
          ` | ${p.upToDate.length} up to date | ${result.failed.length} refused | nothing was changed`)
      } else {
        console.log(summaryLine(result, folder, name, seconds()))
      }
    }
    return code
  } catch (err) {
    view.end()
    const failure = getFailure(err, interrupted)
    if (mode === 'json') {
      const result = err instanceof GetError ? err.result : emptyResult
      const code = err instanceof ClientError ? err.code : 'failed'
      console.log(summaryJson(result, folder, giver, seconds(), failure.exitCode, { code, detail: failure.message }))
    } else if (err instanceof GetError) {
      for (const l of detailLines(err.result).err) process.stderr.write(`${l}\n`)
    }
    throw failure
  } finally {
    off()
    await c.close().catch(() => {})
  }
}

/** What a failed get says, and its exit code. */
function getFailure (err: unknown, interrupted: boolean): CliFailure {
  if (interrupted) return new CliFailure('interrupted: what arrived of the current file is kept, and the next get resumes it', EXIT.failed)
  if (err instanceof CliFailure) return err
  if (err instanceof ClientError) {
    if (err.code === 'no_such_folder') return new CliFailure(`nothing to get: ${err.detail}`, EXIT.nothing)
    if (err.code === 'no_such_user') return new CliFailure(`nothing to get: ${err.detail}`, EXIT.nothing)
    if (err.code === 'closed') return new CliFailure(`the connection was lost during the get: ${err.detail}`, EXIT.failed)
    return new CliFailure(reasonOf(err), exitCodeOf(err))
  }
  return new CliFailure((err as Error).message, EXIT.failed)
}

/** Refuses a root that is not an existing folder (serve would publish nothing, or the wrong thing). */
async function existingRoot (root: string): Promise<string> {
  const full = resolve(root)
  const s = await stat(full).catch(() => null)
  if (s === null) throw new CliFailure(`the root ${full} does not exist (give --root the project folder)`, EXIT.usage)
  if (!s.isDirectory()) throw new CliFailure(`the root ${full} is not a folder`, EXIT.usage)
  return full
}

/** serve and watch: stay connected (reconnecting), announce `at` on every connection, until Ctrl-C. */
async function stay (g: GlobalOptions, serve: boolean, at: string | undefined, setup: (c: Client) => void): Promise<void> {
  const { stop, off } = signalled()
  try {
    await stayConnected({
      open: async () => await open(g, serve, true),
      onConnected: async (c, reconnected) => {
        if (!reconnected) console.log(`${serve ? `serving ${resolve(g.root)}` : 'watching'} as ${c.userId} | Ctrl-C to stop`)
        setup(c)
        if (at !== undefined) await c.at(at, formatTimestamp())
      },
      say: (line) => console.log(line),
      stop
    })
  } finally {
    off()
  }
}

export function buildClientCli (): Command {
  const program = new Command(NAME)
    .description('Reference command-line client of the VCStudio multiuser server (protocol v1). Exit codes: 0 done, ' +
      '1 some files or the relay failed, 2 usage, connection or handshake error, 3 nothing to get.')
    .option('--host <address>', 'server address', DEFAULT_HOST)
    .option('--port <port>', 'server TCP port', port, DEFAULT_PORT)
    .option('--username <name>', 'your user name', defaultUsername())
    .requiredOption('--project <name>', 'the project the server serves')
    .option('--secret <secret>', 'the server\'s secret, if it asks for one')
    .option('--root <dir>', 'local project folder (what get writes into, what serve serves) (default: the folder you ran the command from)')
    .addOption(new Option('--protocol-revision <n>', 'the contract revision the server speaks (1: no resume, no metadata)')
      .default(2).argParser(revision))
    .showSuggestionAfterError()
    .exitOverride()
  const g = (): GlobalOptions => {
    const o = program.opts<Omit<GlobalOptions, 'root'> & { root?: string }>()
    return { ...o, root: o.root ?? defaultRoot() }
  }

  program.command('users').description('list the connected users').action(async () => {
    await withClient(g(), async (c) => {
      const users = await c.users()
      for (const [id, u] of Object.entries(users)) console.log(userLine(id, u, c.userId))
    })
  })

  program.command('say').description('send a chat message').argument('<text>', 'the message').action(async (text: string) => {
    await withClient(g(), async (c) => { await c.say(text) })
  })

  program.command('at').description('tell the others you are looking at a project path (now)').argument('<path>', 'e.g. /chr/Moria')
    .action(async (path: string) => {
      await withClient(g(), async (c) => { await c.at(path, formatTimestamp()) })
    })

  program.command('get').description('fetch a folder of another user into --root (only what changed; interrupted files resume)')
    .argument('<user>', 'user id (ip:port) or user name').argument('<folder>', 'project path, e.g. /chr/Moria')
    .option('--delete', 'move local files the giver does not have into the trash (<root>/.vcmu/trash/), never deleting them')
    .option('--dry-run', 'only list what a get would do (new, changed, conflict, would delete, up to date); change nothing')
    .option('--json', 'print progress events and a final summary as JSON lines on stdout')
    .action(async (user: string, folder: string, o: GetCommandOptions) => {
      const code = await getCommand(g(), user, folder, o)
      if (code !== EXIT.done) throw new CliFailure('', code)
    })

  program.command('serve').description('stay connected and serve --root to the others until Ctrl-C (reconnects by itself)')
    .option('--at <path>', 'tell the others you are looking at this project path, again after each reconnection')
    .action(async (o: { at?: string }) => {
      await existingRoot(g().root)
      await stay(g(), true, o.at, (c) => {
        c.on('give', (p) => {
          if (p.missing !== undefined) console.log(`give | ${p.folder} | missing | ${p.missing}`)
          else if (p.stage === 'manifest') console.log(`give | ${p.folder} | manifest | ${p.manifestFiles} files`)
          else if (p.stage === 'done') console.log(`give | ${p.folder} | sent | ${p.filesDone - p.failed.length} files | ${p.bytesDone} bytes | failed | ${p.failed.length}`)
        })
      })
    })

  program.command('watch').description('print notifications as they come until Ctrl-C (reconnects by itself; serves nothing)')
    .option('--at <path>', 'tell the others you are looking at this project path, again after each reconnection')
    .action(async (o: { at?: string }) => {
      await stay(g(), false, o.at, (c) => {
        let seen = c.history.length
        let first = true
        const name = (id: string): string => c.usersMap[id]?.username ?? id
        c.on('usersUpdated', (users) => console.log(`users | ${Object.entries(users).map(([id, u]) => `${u.username} (${id})`).join(', ')}`))
        c.on('at', (a) => console.log(`at | ${name(a.from)} | ${a.path} | ${a.timestamp}`))
        c.on('messages', (history) => {
          // The whole history comes each time; print what is new (the last line when the server dropped old ones).
          const fresh = first ? history.slice(-10) : history.length > seen ? history.slice(seen) : history.slice(-1)
          first = false
          seen = history.length
          for (const [who, text] of fresh) console.log(`message | ${who} | ${text}`)
        })
        c.on('story', (s) => console.log(`story | changed by | ${name(s.owner)}`))
        c.on('analytics', () => console.log('analytics | changed'))
        c.on('assets', (a) => console.log(`assets | ${Object.keys(a).length} entries`))
        c.on('give', (p) => console.log(`give | ${p.folder} | answered | not serving`))
      })
    })

  return program
}

function reasonOf (err: unknown): string {
  if (err instanceof ClientError) {
    switch (err.code) {
      case 'wrong_project': return `wrong project: ${err.detail}`
      case 'wrong_secret': return `wrong secret: ${err.detail}`
      case 'refused': case 'timeout': case 'closed': return err.detail
      default: return `server error ${err.code}: ${err.detail}`
    }
  }
  return (err as Error).message
}

/** The exit code of an error outside `get`'s own handling. */
function exitCodeOf (err: unknown): number {
  if (err instanceof CliFailure) return err.exitCode
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.done : EXIT.usage
  if (err instanceof ClientError) {
    if (err.code === 'no_such_user' || err.code === 'no_such_folder') return EXIT.nothing
    if (err.code === 'relay_failed' || err.code === 'relay_timeout' || err.code === 'would_deadlock') return EXIT.failed
    return EXIT.usage
  }
  return EXIT.failed
}

export async function main (argv: readonly string[]): Promise<number> {
  try {
    await buildClientCli().parseAsync([...argv])
    return EXIT.done
  } catch (err) {
    // Commander printed its own message (usage errors, --help).
    if (!(err instanceof CommanderError)) {
      const message = oneLine(reasonOf(err))
      if (message !== '') process.stderr.write(`${NAME}: ${message}\n`)
    }
    return exitCodeOf(err)
  }
}

process.exitCode = await main(process.argv)
// Nothing should keep running after a command; a stray timer must not hold the exit.
setTimeout(() => process.exit(), 100).unref()
