import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { PROJECT, Scene, writeTree } from './helpers.ts'

const CWD = new URL('../..', import.meta.url).pathname
const scene = new Scene()
const children: ChildProcessWithoutNullStreams[] = []
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL')
  await scene.cleanup()
})

/** A running CLI command and its output so far, line by line. */
function run (args: string[]): { child: ChildProcessWithoutNullStreams, lines: string[], line: (test: RegExp) => Promise<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/client/cli.ts', ...args], { cwd: CWD })
  children.push(child)
  const lines: string[] = []
  const waiting: Array<{ test: RegExp, resolve: (l: string) => void }> = []
  let buffer = ''
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString()
    const parts = buffer.split('\n')
    buffer = parts.pop() ?? ''
    for (const l of parts) {
      lines.push(l)
      for (const w of waiting.splice(0)) if (w.test.test(l)) w.resolve(l); else waiting.push(w)
    }
  })
  const line = (test: RegExp): Promise<string> => new Promise((resolve, reject) => {
    const seen = lines.find((l) => test.test(l))
    if (seen !== undefined) { resolve(seen); return }
    const t = setTimeout(() => reject(new Error(`no line ${String(test)} in:\n${lines.join('\n')}`)), 30_000)
    waiting.push({ test, resolve: (l) => { clearTimeout(t); resolve(l) } })
  })
  return { child, lines, line }
}

describe('staying connected', () => {
  it('serve and watch reconnect after the server restarts, say so, re-announce at, and serve again', async () => {
    const server = await scene.start()
    const port = server.port
    const root = await scene.dir()
    await writeTree(root, { 'shot/x.txt': 'still served' })
    const global = ['--host', '127.0.0.1', '--port', String(port), '--project', PROJECT]
    const serve = run([...global, '--username', 'sera', '--root', root, 'serve', '--at', '/shot'])
    const watch = run([...global, '--username', 'wade', 'watch'])
    await serve.line(/^serving .* as \S+ \| Ctrl-C to stop$/)
    await watch.line(/^watching as \S+ \| Ctrl-C to stop$/)

    await server.close()
    await serve.line(/^connection lost \(.*\) \| reconnecting in \d+\.\d s \| attempt 1$/)
    await watch.line(/^connection lost \(.*\) \| reconnecting in \d+\.\d s \| attempt 1$/)
    await scene.start({ port })
    const back = await serve.line(/^reconnected as \S+$/)
    await watch.line(/^reconnected as \S+$/)
    const id = back.split(' ')[2]

    const taker = await scene.client('tom')
    const users = await taker.users()
    expect(users[id]).toMatchObject({ username: 'sera', at: ['/shot', expect.any(String)] })
    expect(await taker.get(id, '/shot')).toMatchObject({ files: 1, failed: [] })
    expect(await readFile(join(taker.root, 'shot/x.txt'), 'utf8')).toBe('still served')

    for (const c of [serve.child, watch.child]) {
      const exited = new Promise<number | null>((resolve) => c.on('exit', resolve))
      c.kill('SIGINT')
      expect(await exited).toBe(0)
    }
  })
})
