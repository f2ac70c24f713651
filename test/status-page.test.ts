/**
 * The status page in a real headless browser: Debian's chromium driven by
 * playwright-core (its own browser download is not used). Every request the
 * page makes outside loopback is blocked, and the test fails if one is tried.
 * Screenshots go to test-output/.
 */
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join as joinPath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { deliveredUntilYours, MiB, manifestOf, removeTempDirs, sendFile, takeFolder, tempDir, writeTree } from './helpers/relay-peers.ts'
import { startTestApp, type TestApp } from './helpers/app.ts'
import { join, type WireClient } from './helpers/wire-client.ts'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const OUT = fileURLToPath(new URL('../test-output/', import.meta.url))
const SECRET = 'browser-secret-81b2'
/** How long the page may take to show a change: the "at most 1 s behind". */
const LIVE_MS = 1_000

const isLoopback = (hostname: string): boolean =>
  /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname) || hostname === '[::1]' || hostname === 'localhost'

interface Browser {
  readonly context: BrowserContext
  readonly page: Page
  /** Requests the page tried outside loopback (blocked). */
  readonly outside: string[]
  /** Every URL the page requested. */
  readonly requested: string[]
}

async function launch (options: { httpCredentials?: { username: string, password: string } } = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium; .ci/run does) or set CHROMIUM_PATH`)
  }
  const context = await chromium.launchPersistentContext(await tempDir('chromium-profile-'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 1000 },
    ...options
  })
  const outside: string[] = []
  const requested: string[] = []
  await context.route('**/*', async (route) => {
    const url = new URL(route.request().url())
    if (isLoopback(url.hostname)) return await route.continue()
    outside.push(url.href)
    return await route.abort('blockedbyclient')
  })
  const page = context.pages()[0] ?? await context.newPage()
  page.on('request', (r) => requested.push(r.url()))
  return { context, page, outside, requested }
}

/** The relay's progress bar value, once it is at least `min`. */
async function progressAtLeast (page: Page, min: number): Promise<number> {
  await page.waitForFunction((m) => {
    const bar = document.querySelector<HTMLProgressElement>('.relay progress')
    return bar !== null && bar.value >= m
  }, min, { timeout: LIVE_MS })
  return await page.$eval('.relay progress', (bar) => (bar as HTMLProgressElement).value)
}

/** bob's pass, up to the `give` of the relay it serves. */
async function passUntilGive (giver: WireClient): Promise<string> {
  giver.send('yours')
  for (;;) {
    const m = await giver.recv()
    if (Array.isArray(m) && m[0] === 'give') return m[1] as string
    if (m === 'yours') throw new Error('the pass ended without a give')
  }
}

describe('status page in a headless browser', () => {
  let app: TestApp
  let browser: Browser

  beforeAll(async () => {
    await mkdir(OUT, { recursive: true })
    app = await startTestApp()
    browser = await launch()
  })
  afterAll(async () => {
    await browser?.context.close()
    await app?.close()
    await removeTempDirs()
  })

  it('shows users as they join, a relay advancing then finished, and the machines with a selected user\'s state', async () => {
    const { page } = browser
    const response = await page.goto(app.url)
    expect(response?.status()).toBe(200)
    await page.waitForSelector('#live.ok', { timeout: 5_000 })
    expect(await page.textContent('#project')).toBe('Test Film')
    expect(await page.textContent('#address')).toBe(`127.0.0.1:${app.port}`)

    // A user who joins shows within 1 s.
    const { client: ann } = await join(app.port, 'Test Film', { username: 'ann', story: [{ title: 'Test Film', scenes: 12 }, '2024/05/01-09:30:00'] })
    await page.waitForSelector(`tr[data-user-id="${ann.userId}"]`, { timeout: LIVE_MS })
    expect(await page.textContent(`tr[data-user-id="${ann.userId}"] .username`)).toBe('ann')
    const { client: bob } = await join(app.port, 'Test Film', { username: 'bob' })
    await page.waitForSelector(`tr[data-user-id="${bob.userId}"]`, { timeout: LIVE_MS })

    // A relay of four files, which bob serves one at a time: the bar advances with each.
    const giverRoot = await tempDir('page-giver-')
    const takerRoot = await tempDir('page-taker-')
    const files = Object.fromEntries(['f1.bin', 'f2.bin', 'f3.bin', 'f4.bin'].map((name, i) => [name, Buffer.alloc(MiB / 4, i + 1)]))
    await writeTree(giverRoot, files)
    const taken = takeFolder(ann, bob.userId, '/plates', takerRoot)
    await page.waitForSelector('.relay.waiting', { timeout: LIVE_MS })
    expect(await passUntilGive(bob)).toBe('/plates')
    bob.send(await manifestOf(giverRoot))
    const getlist = await bob.recv() as string[]
    expect(getlist).toHaveLength(4)
    const seen: number[] = []
    for (const [i, rel] of getlist.entries()) {
      await sendFile(bob, giverRoot, rel)
      if (i < getlist.length - 1) seen.push(await progressAtLeast(page, (i + 1) / getlist.length))
      if (i === 1) {
        expect(await page.textContent('.relay .who')).toBe('bob → ann')
        await page.screenshot({ path: joinPath(OUT, 'status-page-relay.png'), fullPage: true })
      }
    }
    for (let i = 0; i < getlist.length; i++) expect(await bob.recv()).toEqual(['ok', getlist[i]])
    await deliveredUntilYours(bob)
    const result = await taken
    expect(Object.values(result.results)).toEqual(['ok', 'ok', 'ok', 'ok'])
    expect(seen).toEqual([...seen].sort((a, b) => a - b))
    expect(seen[0]).toBeGreaterThan(0)
    expect(seen[0]).toBeLessThan(seen[seen.length - 1])
    await page.waitForSelector('tr.finished-relay[data-outcome="ok"]', { timeout: LIVE_MS })
    expect(await page.$$('.relay')).toHaveLength(0)
    expect(await page.textContent('tr.finished-relay td:nth-child(4)')).toBe('4')
    expect(await page.textContent('tr.finished-relay td:nth-child(2)')).toBe('bob → ann')

    // The machines: drawn, counted, and the selected user's state highlighted.
    // Laid out once per process in a worker thread, on the page's first request: give it time.
    await page.waitForSelector('svg[data-machine="taker"] g.state', { state: 'attached', timeout: 30_000 })
    for (const m of ['session', 'coordinator', 'giver', 'taker']) {
      expect(await page.$$(`svg[data-machine="${m}"] g.state`), m).not.toHaveLength(0)
    }
    expect((await page.$$('svg[data-machine="session"] g.state')).length).toBeGreaterThan(30)
    ann.send(['at', '/plates', '2024/05/01-10:00:00'])
    expect(await ann.recv()).toBe('yours')
    bob.send(['message', 'plates for shot 12 are on the farm'])
    expect(await bob.recv()).toBe('yours')
    await page.waitForSelector('#chat li:nth-child(2)', { timeout: LIVE_MS })
    expect(await page.textContent('#story-facts')).toContain(`owner ${ann.userId} (ann)`)
    await page.click(`tr[data-user-id="${ann.userId}"]`)
    const holds = 'svg[data-machine="session"] g.state[data-state="turnTaking.clientHolds"]'
    await page.waitForSelector(`${holds}.current`, { timeout: LIVE_MS })
    await page.waitForFunction((sel) => document.querySelector(`${sel} .count`)?.textContent === '2', holds, { timeout: LIVE_MS })
    const current = await page.$$eval('svg[data-machine="session"] g.state.current', (gs) => gs.map((g) => g.getAttribute('data-state')))
    expect(current.sort()).toEqual(['turnTaking', 'turnTaking.clientHolds'])
    expect(await page.textContent('#selected-user')).toBe(`ann (${ann.userId}) is in turnTaking.clientHolds`)
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === '/plates (2024/05/01-10:00:00)',
      `tr[data-user-id="${ann.userId}"] .at`, { timeout: LIVE_MS })
    await page.screenshot({ path: joinPath(OUT, 'status-page.png'), fullPage: true })
    await (await page.$('#machine-session'))?.screenshot({ path: joinPath(OUT, 'status-machine-session.png') })

    // Everything came from the server itself.
    expect(browser.outside).toEqual([])
    const origin = new URL(app.url).origin
    expect(browser.requested.filter((u) => !u.startsWith(origin))).toEqual([])
    expect(browser.requested).toEqual(expect.arrayContaining([`${origin}/assets/status.js`, `${origin}/assets/status.css`, `${origin}/api/events`, `${origin}/api/machines`]))
    // Live by server-sent events on one stream, nothing polled.
    expect(browser.requested.filter((u) => u === `${origin}/api/events`)).toHaveLength(1)
    expect(browser.requested.filter((u) => u.startsWith(`${origin}/api/status`))).toEqual([])
    ann.close()
    bob.close()
  })
})

describe('status page exposed (127.0.0.2 counts as exposed), in a headless browser', () => {
  let app: TestApp
  beforeAll(async () => { app = await startTestApp(['--http-host', '127.0.0.2', '--secret', SECRET]) })
  afterAll(async () => {
    await app?.close()
    await removeTempDirs()
  })

  it('refuses a browser without the secret and serves one that logs in with it', async () => {
    // Without the secret, or with a wrong one, the server answers 401 and the browser gives up on the page.
    for (const credentials of [undefined, { username: 'td', password: 'not-the-secret' }]) {
      const stranger = await launch(credentials === undefined ? {} : { httpCredentials: credentials })
      try {
        const answers: Array<{ url: string, status: number }> = []
        stranger.page.on('response', (r) => answers.push({ url: r.url(), status: r.status() }))
        // Chromium either shows the 401 page or gives up with ERR_INVALID_AUTH_CREDENTIALS: the page is not served either way.
        const outcome = await stranger.page.goto(app.url).then((r) => `HTTP ${r?.status() ?? 0}`, (err: Error) => err.message)
        expect(outcome).toMatch(/^HTTP 401$|ERR_INVALID_AUTH_CREDENTIALS/)
        expect(answers.length).toBeGreaterThan(0)
        expect(answers.every((a) => a.url === app.url && a.status === 401)).toBe(true)
        expect(stranger.requested.every((u) => u === app.url)).toBe(true)
        expect(stranger.outside).toEqual([])
      } finally {
        await stranger.context.close()
      }
    }
    const td = await launch({ httpCredentials: { username: 'td', password: SECRET } })
    try {
      const response = await td.page.goto(app.url)
      expect(response?.status()).toBe(200)
      await td.page.waitForSelector('#live.ok', { timeout: 5_000 })
      expect(await td.page.textContent('#project')).toBe('Test Film')
      expect(td.outside).toEqual([])
    } finally {
      await td.context.close()
    }
  })
})
