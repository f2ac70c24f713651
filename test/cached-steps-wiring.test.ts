/**
 * How the server runs its sessions (src/server.ts): on cached steps
 * (src/cached-steps/), unless an inspector is attached, when XState's own
 * interpreter reports every microstep. Over real TCP: a client joins and
 * passes; the session that serves it is looked at.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { AnyActorRef } from 'xstate'
import { sessionMachine } from '../actors/session.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'
import { pass } from './helpers/turns.ts'
import { join } from './helpers/wire-client.ts'

let server: TestServer | undefined
afterEach(async () => { await server?.close(); server = undefined })

/** The logic the one connected client's session runs on, once the client has joined and passed. */
async function sessionLogic (s: TestServer): Promise<unknown> {
  const { client } = await join(s.port, 'Test Film')
  // The first pass delivers the client's own join (`users`), then `"yours"`.
  expect(await pass(client)).toEqual(['users', 'yours'])
  const [connection] = [...s.connections()]
  const logic = (connection.session as AnyActorRef & { logic: unknown }).logic
  client.close()
  return logic
}

describe('sessions run on cached steps unless inspected', () => {
  it('without an inspector: the session machine with cached steps, which answered the pass', async () => {
    server = await startTestServer()
    const logic = await sessionLogic(server)
    expect(logic).not.toBe(sessionMachine)
    expect(Object.getPrototypeOf(logic)).toBe(sessionMachine)
    expect(Object.hasOwn(logic as object, 'transition')).toBe(true)
  })

  it('with an inspector: XState\'s own interpreter of the session machine, which reports every microstep', async () => {
    const microsteps: string[] = []
    server = await startTestServer({ inspect: (e) => { if (e.type === '@xstate.microstep') microsteps.push(e.type) } })
    expect(await sessionLogic(server)).toBe(sessionMachine)
    expect(microsteps.length).toBeGreaterThan(0)
  })
})
