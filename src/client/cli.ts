import { userInfo } from 'node:os'
import { resolve } from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import type { UsersReply } from '../../protocol/messages.ts'
import { connect, DEFAULT_HOST, DEFAULT_PORT, type Client } from './client.ts'
import { ClientError } from './errors.ts'
import type { GetProgress } from './take.ts'
import { formatTimestamp } from './timestamp.ts'

const NAME = 'vcstudio-multiuser-client'

interface GlobalOptions {
  host: string
  port: number
  username: string
  project: string
  secret?: string
  root: string
}

/** A failure the CLI reports on one line of stderr, exiting 1. */
class CliFailure extends Error {}

const port = (value: string): number => {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('expected a TCP port, 1 to 65535')
  return n
}

function defaultUsername (): string {
  try {
    return userInfo().username || 'vcstudio-client'
  } catch {
    return 'vcstudio-client'
  }
}

const mib = (n: number): string => `${(n / (1024 * 1024)).toFixed(1)} MiB`
const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim()

async function open (g: GlobalOptions, serve = false): Promise<Client> {
  return await connect({
    host: g.host, port: g.port, username: g.username, project: g.project, secret: g.secret, root: resolve(g.root), serve
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

/** Until SIGINT/SIGTERM (resolves) or the connection ends (rejects with why). */
async function untilSignal (c: Client): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve() }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
    void c.closed.then((info) => reject(info.error ?? new CliFailure(info.reason)))
  })
  const t = setTimeout(() => c.destroy(), 3_000)
  await c.close()
  clearTimeout(t)
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
  if (named.length > 1) throw new CliFailure(`several users are named ${JSON.stringify(wanted)}: give a user id (${named.join(', ')})`)
  if (wanted.includes(':')) return wanted // let the server answer no_such_user
  throw new CliFailure(`no user named ${JSON.stringify(wanted)} is connected`)
}

function progressBar (p: GetProgress): string {
  const width = 24
  const ratio = p.filesTotal === 0 ? 1 : p.filesDone / p.filesTotal
  const filled = Math.round(ratio * width)
  return `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.filesDone}/${p.filesTotal} files | ${mib(p.bytesDone)}` +
    (p.path !== undefined ? ` | ${p.path.length > 40 ? `…${p.path.slice(-39)}` : p.path}` : '') + '\x1b[K'
}

export function buildClientCli (): Command {
  const program = new Command(NAME)
    .description('Reference command-line client of the VCStudio multiuser server (protocol v1).')
    .option('--host <address>', 'server address', DEFAULT_HOST)
    .option('--port <port>', 'server TCP port', port, DEFAULT_PORT)
    .option('--username <name>', 'your user name', defaultUsername())
    .requiredOption('--project <name>', 'the project the server serves')
    .option('--secret <secret>', 'the server\'s secret, if it asks for one')
    .option('--root <dir>', 'local project folder (what get writes into, what serve serves)', process.cwd())
    .showSuggestionAfterError()
  const g = (): GlobalOptions => program.opts<GlobalOptions>()

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

  program.command('get').description('fetch a folder of another user into --root')
    .argument('<user>', 'user id (ip:port) or user name').argument('<folder>', 'project path, e.g. /chr/Moria')
    .action(async (user: string, folder: string) => {
      const tty = process.stderr.isTTY === true
      await withClient(g(), async (c) => {
        const giver = resolveUser(await c.users(), user, c.userId)
        const result = await c.get(giver, folder, { onProgress: tty ? (p) => process.stderr.write(progressBar(p)) : undefined })
          .finally(() => { if (tty) process.stderr.write('\n') })
        console.log(`got ${result.files} files (${mib(result.bytes)}) of ${folder} from ${giver}; ${result.skipped} already up to date; ${result.failed.length} failed`)
        if (result.failed.length > 0) {
          const list = result.failed.slice(0, 5).map((f) => `${f.path} (${oneLine(f.reason)})`).join(', ')
          throw new CliFailure(`${result.failed.length} files failed: ${list}${result.failed.length > 5 ? ', …' : ''}`)
        }
      })
    })

  program.command('serve').description('stay connected and serve --root to the others until Ctrl-C').action(async () => {
    const c = await open(g(), true)
    console.log(`serving ${resolve(g().root)} as ${c.userId} | Ctrl-C to stop`)
    c.on('give', (p) => {
      if (p.stage === 'manifest') console.log(`give | ${p.folder} | manifest | ${p.manifestFiles} files`)
      if (p.stage === 'done') console.log(`give | ${p.folder} | sent | ${p.filesDone - p.failed.length} files | ${p.bytesDone} bytes | failed | ${p.failed.length}`)
    })
    await untilSignal(c)
  })

  program.command('watch').description('print notifications as they come until Ctrl-C').action(async () => {
    const c = await open(g())
    console.log(`watching as ${c.userId} | Ctrl-C to stop`)
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
    await untilSignal(c)
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

export async function main (argv: readonly string[]): Promise<number> {
  try {
    await buildClientCli().parseAsync([...argv])
    return 0
  } catch (err) {
    process.stderr.write(`${NAME}: ${oneLine(reasonOf(err))}\n`)
    return 1
  }
}

process.exitCode = await main(process.argv)
// Nothing should keep running after a command; a stray timer must not hold the exit.
setTimeout(() => process.exit(), 100).unref()
