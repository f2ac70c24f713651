/**
 * A test model of protocol v1 (../../../shared/protocol-v1.md, §3-§6) from the
 * point of view of one client C, with one peer P whose actions reach C.
 *
 * This is NOT the server's session machine: it is what the contract promises
 * C, written as a small XState machine for `createTestModel` (xstate/graph).
 *
 * - Stable states are the points where C has to act (or where P acts) and
 *   where the test checks what C received. Transient states (`turn.passed`,
 *   `turn.deliver.next`, `turn.deliver.users|at|messages`) are taken within a
 *   step: one pass delivers users/at/messages without C doing anything.
 * - Events are C's requests and answers (`C_*`) and what P does (`P_*`).
 * - `context.flow` is what decides which events are enabled: P's presence,
 *   C's pending notifications (§4, coalesced), relay progress. Guards read
 *   only `flow`, and path generation keys states by `flow` alone.
 * - `context.data` is what the server holds (story, analytics, assets, chat,
 *   `at`s, camera), from which the exact frames are predicted.
 * - Every step sets `context.out` (what C sends) and `context.expect` (what C
 *   must receive, in order, before the next step); user ids are symbolic
 *   (`$C`, `$P`), error details are `ANY`.
 * - With input `{ hold: true }` the server runs with a turn hold: a pass with
 *   nothing pending waits in `turn.holding` until news arrives (delivered at
 *   once), C's next frame ends it (`"yours"` at once, then the frame is the
 *   next request), or the hold expires (`HOLD_EXPIRES`: C only waits).
 */
import { assign, setup } from 'xstate'
import type { JsonValue } from '../../protocol/frame.ts'

// ---------------------------------------------------------------- fixed values

export const PROJECT = 'Test Film'
export const T0 = '0000/00/00-00:00:00'
export const TS_C = '2025/01/01-00:00:01'
/** P's submissions are newer than C's: P wins whatever the order. */
export const TS_P = '2025/01/01-00:00:02'
export const NOBODY = '0.0.0.0:0000'
export const C_ID = '$C'
export const P_ID = '$P'
/** Stands for any string (error details). */
export const ANY = '<any string>'

export const C_NAME = 'c'
export const P_NAME = 'p'
export const C_STORY = { by: 'c', camera: [1, 2] }
export const P_STORY = { by: 'p' }
export const C_ANALYTICS = { by: 'c' }
export const P_ANALYTICS = { by: 'p' }
export const C_TEXT = 'hello from c'
export const P_TEXT = 'hi from p'
export const C_AT: [string, string] = ['/loc/c', TS_C]
export const SERVER_LINE: [string, string] = ['Multiuser Server', 'Server Started']

/** Asset entries: C's from its initial sync and its request, P's from its join and its push. */
export const ASSET_C_SYNC = '/chr/C'
export const ASSET_C_REQUEST = '/set/C'
export const ASSET_P_JOIN = '/chr/P'
export const ASSET_P_PUSH = '/set/P'

/** C gets this folder from P: one file. */
export const TAKE_FOLDER = '/chr/P'
export const P_FILE = { path: 'x.txt', content: 'hello', split: 2 }
export const P_MANIFEST = { 'x.txt': 'hash-x' }
/** P gets this folder from C: two files. */
export const GIVE_FOLDER = '/chr/C'
export const C_FILES = [{ path: 'a.txt', content: 'aaa' }, { path: 'b.txt', content: 'bbbb' }] as const
export const C_MANIFEST = { 'a.txt': 'hash-a', 'b.txt': 'hash-b' }

/** P's `n`-th `at`. */
export const pAt = (n: number): [string, string] => [`/loc/p${n}`, `2025/01/01-00:01:0${n}`]

// ---------------------------------------------------------------- context

export type Kind = 'users' | 'story' | 'analytics' | 'assets' | 'message' | 'at' | 'serve'
export type SyncKind = 'story' | 'analytics' | 'assets'

export interface Flow {
  /** The server holds an idle pass (turn hold > 0); fixed for a run. */
  readonly hold: boolean
  /** P never joined, is connected, or has left (P joins and leaves at most once). */
  readonly p: 'none' | 'here' | 'gone'
  /** P waits on a relay from C (its `get` is pending, or C is giving). */
  readonly pAsking: boolean
  /** C's pending notifications, oldest first, coalesced as §4 says. */
  readonly pending: readonly Kind[]
  /** How many of `pending` the current pass delivers (those pending when C passed). */
  readonly deliverable: number
  /** Giving: how many files C has sent. */
  readonly files: number
}

export interface Data {
  readonly cStory: boolean
  readonly pStory: boolean
  readonly cAnalytics: boolean
  readonly pAnalytics: boolean
  /** C's initial-sync asset is in the server's index. */
  readonly cSyncAsset: boolean
  readonly cRequestAsset: boolean
  readonly pPushAsset: boolean
  /** Chat lines after the server's first one. */
  readonly history: ReadonlyArray<readonly [string, string]>
  /** How many times P moved (its latest `at` is `pAt(pAts)`). */
  readonly pAts: number
  readonly cAt: readonly [string, string] | null
  readonly cCamera: readonly [number, number]
}

export type Expected =
  | { readonly json: JsonValue }
  /** Binary frames adding up to exactly these bytes (relays may cut frames differently). */
  | { readonly bytes: string }
  /** The server closes the connection (and sends nothing more). */
  | { readonly closed: true }

export type Outgoing =
  | { readonly json: JsonValue }
  /** One binary frame with these bytes (file content). */
  | { readonly binary: string }
  /** These bytes as they are on the wire (a broken frame). */
  | { readonly raw: readonly number[] }

export interface Ctx {
  readonly flow: Flow
  readonly data: Data
  /** What C sent in the last step. */
  readonly out: readonly Outgoing[]
  /** What C must have received after the last step, in order. */
  readonly expect: readonly Expected[]
}

export type ModelEventType =
  // C's handshake and sync answers
  | 'C_USERNAME' | 'C_BAD_USERNAME' | 'C_PROJECT' | 'C_WRONG_PROJECT' | 'C_ANSWER' | 'C_BAD_ANSWER' | 'C_ACK'
  // C's requests (§4) and bad input
  | 'C_PASS' | 'C_STORY' | 'C_ANALYTICS' | 'C_ASSETS' | 'C_USERS' | 'C_AT' | 'C_MESSAGE' | 'C_GET'
  | 'C_BAD_REQUEST' | 'C_VIOLATION'
  // C in a relay (§5)
  | 'C_MANIFEST' | 'C_FILE' | 'C_GETLIST' | 'C_GETLIST_EMPTY' | 'C_BAD_GETLIST' | 'C_OK'
  // C's request sent early (during a held pass), read where its answer to a give was due (§4)
  | 'C_EARLY_REQUEST'
  // P's actions
  | 'P_JOINS' | 'P_SAYS' | 'P_MOVES_AT' | 'P_PUSHES_STORY' | 'P_PUSHES_ANALYTICS' | 'P_PUSHES_ASSETS'
  | 'P_ASKS_C' | 'P_LEAVES'
  // P in a relay
  | 'P_GIVES' | 'P_SENDS_FILE' | 'P_SENDS_PART' | 'P_SENDS_REST' | 'P_GETLIST' | 'P_ANSWERS'
  // Nobody acts: C waits until the server's turn hold expires
  | 'HOLD_EXPIRES'

export type ModelEvent = { type: ModelEventType }

/** Which server the model describes: turn hold 0 (the default here) or a turn hold. */
export interface ModelInput { readonly hold?: boolean }

export const INITIAL_CONTEXT: Ctx = {
  flow: { hold: false, p: 'none', pAsking: false, pending: [], deliverable: 0, files: 0 },
  data: {
    cStory: false, pStory: false, cAnalytics: false, pAnalytics: false,
    cSyncAsset: false, cRequestAsset: false, pPushAsset: false,
    history: [], pAts: 0, cAt: null, cCamera: [0, 0]
  },
  out: [],
  expect: [{ json: 'username?' }]
}

// ---------------------------------------------------------------- what the server holds

export const storyReply = (d: Data): JsonValue =>
  d.pStory ? [P_ID, P_STORY] : d.cStory ? [C_ID, C_STORY] : [NOBODY, {}]

export const analyticsReply = (d: Data): JsonValue =>
  d.pAnalytics ? P_ANALYTICS : d.cAnalytics ? C_ANALYTICS : {}

export function assetsReply (c: Ctx): JsonValue {
  const out: Record<string, JsonValue> = {}
  if (c.data.cSyncAsset) out[ASSET_C_SYNC] = [C_ID, TS_C]
  if (c.data.cRequestAsset) out[ASSET_C_REQUEST] = [C_ID, TS_C]
  // §6: a leaver's entries go with it.
  if (c.flow.p === 'here') {
    out[ASSET_P_JOIN] = [P_ID, TS_P]
    if (c.data.pPushAsset) out[ASSET_P_PUSH] = [P_ID, TS_P]
  }
  return out
}

export function usersReply (c: Ctx): JsonValue {
  const out: Record<string, JsonValue> = {
    [C_ID]: { username: C_NAME, camera: [...c.data.cCamera], at: c.data.cAt === null ? null : [...c.data.cAt] }
  }
  if (c.flow.p === 'here') out[P_ID] = { username: P_NAME, camera: [0, 0], at: c.data.pAts === 0 ? null : pAt(c.data.pAts) }
  return out
}

const messagesFrame = (d: Data): JsonValue => ['messages', [SERVER_LINE, ...d.history.map((l) => [...l])]]
const atFrame = (d: Data): JsonValue => [P_ID, 'at', ...pAt(d.pAts)]
const errorFrame = (code: string): JsonValue => ['error', code, ANY]

const SYNC_ANSWER: Record<SyncKind, JsonValue> = { story: [{}, T0], assets: {}, analytics: [{}, T0] }
const REQUEST_ANSWER: Record<SyncKind, JsonValue> = {
  story: [C_STORY, TS_C],
  assets: { [ASSET_C_REQUEST]: ['someone else', TS_C] },
  analytics: [C_ANALYTICS, TS_C]
}
const INITIAL_SYNC_ANSWER: Record<SyncKind, JsonValue> = {
  story: [{}, T0],
  assets: { [ASSET_C_SYNC]: ['someone else', TS_C] },
  analytics: [{}, T0]
}
const MALFORMED_ANSWER: Record<SyncKind, JsonValue> = { story: { not: 'a pair' }, assets: ['not', 'a map'], analytics: 'no timestamp' }

// ---------------------------------------------------------------- context updates (pure)

type Fx = (c: Ctx) => Ctx

const withFlow = (c: Ctx, f: Partial<Flow>): Ctx => ({ ...c, flow: { ...c.flow, ...f } })
const withData = (c: Ctx, d: Partial<Data>): Ctx => ({ ...c, data: { ...c.data, ...d } })

/** Every step starts here: what C sends now; nothing expected yet. */
const sends = (...out: Outgoing[]): Fx => (c) => ({ ...c, out, expect: [] })
const sendsJson = (v: JsonValue): Fx => sends({ json: v })
const nothingSent: Fx = sends()
const receives = (...vs: Array<JsonValue | ((c: Ctx) => JsonValue)>): Fx => (c) => ({
  ...c, expect: [...c.expect, ...vs.map((v) => ({ json: typeof v === 'function' ? v(c) : v }))]
})
const receivesBytes = (bytes: string): Fx => (c) => ({ ...c, expect: [...c.expect, { bytes }] })
const isClosed: Fx = (c) => ({ ...c, expect: [...c.expect, { closed: true }] })
const data = (d: Partial<Data> | ((d: Data) => Partial<Data>)): Fx => (c) => withData(c, typeof d === 'function' ? d(c.data) : d)
const flow = (f: Partial<Flow> | ((f: Flow) => Partial<Flow>)): Fx => (c) => withFlow(c, typeof f === 'function' ? f(c.flow) : f)

/** §4: one of a kind pending at most (`at`: only P sends them, newest kept in place). */
const enqueue = (...kinds: Kind[]): Fx => (c) => {
  let pending = c.flow.pending
  for (const k of kinds) if (k === 'serve' || !pending.includes(k)) pending = [...pending, k]
  return withFlow(c, { pending })
}

const withdrawServe: Fx = (c) => {
  const i = c.flow.pending.indexOf('serve')
  if (i < 0) return c
  return withFlow(c, {
    pending: c.flow.pending.filter((_, j) => j !== i),
    deliverable: c.flow.deliverable - (i < c.flow.deliverable ? 1 : 0)
  })
}

const dequeue: Fx = (c) => withFlow(c, { pending: c.flow.pending.slice(1), deliverable: c.flow.deliverable - 1 })

/** §6: P's connection ends. Its assets go; C will hear `users` and `assets`; a pending serve is withdrawn. */
const pLeaves: Fx = (c) => enqueue('users', 'assets')(withdrawServe(withFlow(c, { p: 'gone', pAsking: false })))

// ---------------------------------------------------------------- guards (flow only)

type Test = (f: Flow) => boolean
const pIdle: Test = (f) => f.p === 'here' && !f.pAsking
/** Nothing but these kinds is pending. */
const only = (f: Flow, ...kinds: Kind[]): boolean => f.pending.every((k) => kinds.includes(k))
const empty: Test = (f) => f.pending.length === 0
const head = (k: Kind): Test => (f) => f.deliverable > 0 && f.pending[0] === k
const lastFile = (f: Flow): boolean => f.files === C_FILES.length

// ---------------------------------------------------------------- the machine

const model = setup({
  types: {
    context: {} as Ctx,
    events: {} as ModelEvent,
    input: {} as ModelInput
  },
  actions: {
    apply: assign(({ context }, params: { fx: readonly Fx[] }) => params.fx.reduce((c, f) => f(c), context))
  },
  guards: {
    when: ({ context }, params: { test: Test }) => params.test(context.flow)
  }
})

const go = (target: string | undefined, ...fx: Fx[]) => ({ target, actions: { type: 'apply' as const, params: { fx } } })
const when = (test: Test, target: string | undefined, ...fx: Fx[]) => ({ guard: { type: 'when' as const, params: { test } }, ...go(target, ...fx) })
const entry = (...fx: Fx[]) => ({ type: 'apply' as const, params: { fx } })

/** One sync exchange (§3 shapes) C takes part in: `asked` (C got the signal), `replied` (C got the merged reply). */
function exchange (kind: SyncKind, answer: JsonValue, effect: Fx, done: Parameters<typeof go>) {
  const reply = (c: Ctx): JsonValue => kind === 'story' ? storyReply(c.data) : kind === 'analytics' ? analyticsReply(c.data) : assetsReply(c)
  return {
    initial: 'asked' as const,
    states: {
      asked: { on: { C_ANSWER: go('replied', sendsJson(answer), effect, receives(reply)) } },
      replied: { on: { C_ACK: go(done[0], sendsJson(true), ...done.slice(1) as Fx[]) } }
    }
  }
}

/** The handshake's initial sync: same shapes, a malformed answer closes (§3). */
function initialSync (kind: SyncKind, effect: Fx, next: Parameters<typeof go>, extra: Record<string, unknown> = {}) {
  const x = exchange(kind, INITIAL_SYNC_ANSWER[kind], effect, next)
  return {
    ...x,
    states: {
      ...x.states,
      asked: {
        on: {
          ...x.states.asked.on,
          C_BAD_ANSWER: go('#wire.closed', sendsJson(MALFORMED_ANSWER[kind]), receives(errorFrame('bad_request')), isClosed),
          ...extra
        }
      }
    }
  }
}

const P_JOINS_EFFECT: Fx = (c) => enqueue('assets', 'users')(withFlow(c, { p: 'here' }))

/** C's `get` of P's folder, and every way it ends (§5, taker side). */
const relayFailed = receives(errorFrame('relay_failed'), 'yours')
const taking = {
  initial: 'asked' as const,
  states: {
    asked: {
      on: {
        P_GIVES: go('manifest', nothingSent, receives(P_MANIFEST)),
        // The giver disconnects before it starts.
        P_LEAVES: go('#wire.turn.clientHolds', nothingSent, pLeaves, relayFailed)
      }
    },
    manifest: {
      on: {
        C_GETLIST: [
          when((f) => f.p === 'here', 'getlistSent', sendsJson([P_FILE.path])),
          // The giver left while C was choosing: the relay fails when C has spoken.
          go('#wire.turn.clientHolds', sendsJson([P_FILE.path]), relayFailed)
        ],
        // Not taken once the giver has gone: the server then answers an empty getlist with "yours" alone
        // (nothing asked, nothing lost), where §5 says relay_failed; the contract is not explicit here.
        C_GETLIST_EMPTY: when((f) => f.p === 'here', '#wire.turn.clientHolds', sendsJson([]), receives('yours')),
        C_BAD_GETLIST: go('#wire.turn.clientHolds', sendsJson(['not-in-the-manifest.txt']), receives(errorFrame('bad_request'), 'yours')),
        P_LEAVES: when((f) => f.p === 'here', 'manifest', nothingSent, pLeaves)
      }
    },
    getlistSent: {
      on: {
        P_SENDS_FILE: go('file', nothingSent, receives(['file', P_FILE.path, P_FILE.content.length]), receivesBytes(P_FILE.content)),
        P_SENDS_PART: go('filePart', nothingSent, receives(['file', P_FILE.path, P_FILE.content.length]), receivesBytes(P_FILE.content.slice(0, P_FILE.split))),
        P_LEAVES: go('#wire.turn.clientHolds', nothingSent, pLeaves, relayFailed)
      }
    },
    filePart: {
      on: {
        P_SENDS_REST: go('file', nothingSent, receivesBytes(P_FILE.content.slice(P_FILE.split))),
        // Mid-file: a JSON frame where bytes were expected ends the relay.
        P_LEAVES: go('#wire.turn.clientHolds', nothingSent, pLeaves, relayFailed)
      }
    },
    file: {
      // No P_LEAVES here: a giver that leaves after its last bytes, before C's answer, ends the relay
      // with "yours" alone (every byte arrived), where §5 says relay_failed; not explicit either.
      on: {
        C_OK: go('#wire.turn.clientHolds', sendsJson(['ok', P_FILE.path]), receives('yours'))
      }
    }
  }
}

/** C serves P's `get` on its pass (§5, giver side), and every way it ends. */
const fileOut = (c: Ctx): Outgoing[] => {
  const f = C_FILES[c.flow.files]
  return [{ json: ['file', f.path, f.content.length] }, { binary: f.content }]
}
const sendsFile: Fx = (c) => flow((f) => ({ files: f.files + 1 }))(sends(...fileOut(c))(c))
const answer = (verdict: 'ok' | 'failed'): Fx => (c) => {
  const path = C_FILES[c.flow.files - 1].path
  return receives(verdict === 'ok' ? ['ok', path] : ['failed', path, 'taker disconnected'])(c)
}
/**
 * §4: C's request came where its answer to the give was due: refused, then
 * "yours"; the serve (if P still waits) is pending again, first, and the rest
 * of the pass waits with it for C's next pass.
 */
const serveAgainFirst: Fx = flow((f) => ({ pending: ['serve', ...f.pending], deliverable: 0 }))
const restOfPassLater: Fx = flow({ deliverable: 0 })
const earlyRequestRefused = [sendsJson('users'), receives(errorFrame('bad_request'), 'yours')] as const
/** The relay is over: C's pass goes on. */
const relayOver: Fx = flow({ pAsking: false, files: 0 })
const DELIVER = '#wire.turn.deliver'
/**
 * C sends a file to a taker that has gone: the server answers it `failed`
 * (two files: the first is sent from `getlist`, the second from `answered`).
 */
const firstFileToNobody = go('answered', sendsFile, answer('failed'))
const lastFileToNobody = go(DELIVER, sendsFile, answer('failed'), relayOver)
const giving = {
  initial: 'give' as const,
  states: {
    give: {
      on: {
        C_MANIFEST: [
          when((f) => f.p === 'here', 'manifestSent', sendsJson(C_MANIFEST)),
          // The taker left before the manifest: no getlist will come, C gets [] and its pass goes on.
          go(DELIVER, sendsJson(C_MANIFEST), receives([]), relayOver)
        ],
        P_LEAVES: when((f) => f.p === 'here', 'give', nothingSent, pLeaves),
        C_EARLY_REQUEST: [
          when((f) => f.p === 'here', '#wire.turn.clientHolds', ...earlyRequestRefused, restOfPassLater, serveAgainFirst),
          // P left before C answered: the relay ends; no give comes again.
          go('#wire.turn.clientHolds', ...earlyRequestRefused, restOfPassLater)
        ]
      }
    },
    manifestSent: {
      on: {
        P_GETLIST: go('getlist', nothingSent, receives(C_FILES.map((f) => f.path))),
        P_LEAVES: go(DELIVER, nothingSent, pLeaves, receives([]), relayOver)
      }
    },
    getlist: {
      on: {
        C_FILE: [when((f) => f.p === 'here', 'fileSent', sendsFile), firstFileToNobody],
        P_LEAVES: when((f) => f.p === 'here', 'getlist', nothingSent, pLeaves)
      }
    },
    fileSent: {
      on: {
        P_ANSWERS: [
          when(lastFile, DELIVER, nothingSent, answer('ok'), relayOver),
          go('answered', nothingSent, answer('ok'))
        ],
        // The taker left with C's file unanswered: the server answers it.
        P_LEAVES: [
          when(lastFile, DELIVER, nothingSent, pLeaves, answer('failed'), relayOver),
          go('answered', nothingSent, pLeaves, answer('failed'))
        ]
      }
    },
    answered: {
      on: {
        C_FILE: [when((f) => f.p === 'here', 'fileSent', sendsFile), lastFileToNobody],
        P_LEAVES: when((f) => f.p === 'here', 'answered', nothingSent, pLeaves)
      }
    }
  }
}

export const protocolModel = model.createMachine({
  id: 'wire',
  context: ({ input }) => ((input as ModelInput | undefined)?.hold === true ? withFlow(INITIAL_CONTEXT, { hold: true }) : INITIAL_CONTEXT),
  initial: 'handshake',
  states: {
    handshake: {
      initial: 'askedUsername',
      states: {
        askedUsername: {
          on: {
            C_USERNAME: go('askedProject', sendsJson(C_NAME), receives('project?')),
            C_BAD_USERNAME: go('#wire.closed', sendsJson(42), receives(errorFrame('bad_handshake')), isClosed)
          }
        },
        askedProject: {
          on: {
            C_PROJECT: go('#wire.sync', sendsJson(PROJECT), receives('story')),
            C_WRONG_PROJECT: go('#wire.closed', sendsJson('Other Film'), receives('wrong_project'), isClosed)
          }
        }
      }
    },
    sync: {
      initial: 'story',
      states: {
        // P may join while C syncs: C is a user already, what is queued for it waits for its first pass.
        story: initialSync('story', (c) => c, ['#wire.sync.assets', receives('assets')], {
          P_JOINS: when((f) => f.p === 'none', undefined, nothingSent, P_JOINS_EFFECT)
        }),
        assets: initialSync('assets', data({ cSyncAsset: true }), ['#wire.sync.analytics', receives('analytics')]),
        analytics: initialSync('analytics', (c) => c, ['#wire.turn.clientHolds', receives('yours'), enqueue('users')])
      }
    },
    turn: {
      initial: 'clientHolds',
      states: {
        clientHolds: {
          on: {
            C_PASS: go('passed', sendsJson('yours')),
            // C's requests other than pass and message are bounded too: they do not touch C's queue, so
            // they are taken where the queue is empty or holds what they interact with.
            C_STORY: when((f) => only(f, 'story'), 'request.story', sendsJson('story'), receives('story')),
            C_ANALYTICS: when((f) => only(f, 'analytics'), 'request.analytics', sendsJson('analytics'), receives('analytics')),
            C_ASSETS: when((f) => only(f, 'assets'), 'request.assets', sendsJson('assets'), receives('assets')),
            C_USERS: when((f) => f.pending.length <= 1, undefined, sendsJson('users'), receives(usersReply, 'yours')),
            C_AT: when(empty, undefined, sendsJson(['at', ...C_AT]), data({ cAt: C_AT }), receives('yours')),
            C_MESSAGE: go(undefined, sendsJson(['message', C_TEXT]), data((d) => ({ history: [...d.history, [C_NAME, C_TEXT]] })), enqueue('message'), receives('yours')),
            C_GET: [
              when((f) => only(f, 'message') && f.p !== 'here', undefined, sendsJson(['get', P_ID, TAKE_FOLDER]), receives(errorFrame('no_such_user'), 'yours')),
              when((f) => only(f, 'message', 'serve') && f.pAsking, undefined, sendsJson(['get', P_ID, TAKE_FOLDER]), receives(errorFrame('would_deadlock'), 'yours')),
              when((f) => only(f, 'message'), '#wire.taking', sendsJson(['get', P_ID, TAKE_FOLDER]))
            ],
            C_BAD_REQUEST: when(empty, undefined, sendsJson('dance'), receives(errorFrame('unknown_request'), 'yours')),
            // A frame of kind 0x07.
            C_VIOLATION: when(empty, '#wire.closed', sends({ raw: [0, 0, 0, 1, 7, 0] }), receives(errorFrame('protocol')), isClosed),

            // P's actions are bounded so that C's queue stays short (the model stays small): a sync
            // notification only into an empty queue (or coalescing), messages and `at`s among themselves.
            P_JOINS: when((f) => f.p === 'none' && only(f, 'users'), undefined, nothingSent, P_JOINS_EFFECT),
            P_SAYS: when((f) => pIdle(f) && only(f, 'message', 'at'), undefined, nothingSent,
              data((d) => ({ history: [...d.history, [P_NAME, P_TEXT]] })), enqueue('message')),
            P_MOVES_AT: when((f) => pIdle(f) && only(f, 'message', 'at'), undefined, nothingSent,
              data((d) => ({ pAts: d.pAts + 1 })), enqueue('at')),
            P_PUSHES_STORY: when((f) => pIdle(f) && only(f, 'story'), undefined, nothingSent,
              data({ pStory: true }), enqueue('story')),
            P_PUSHES_ANALYTICS: when((f) => pIdle(f) && only(f, 'analytics'), undefined, nothingSent,
              data({ pAnalytics: true }), enqueue('analytics')),
            P_PUSHES_ASSETS: when((f) => pIdle(f) && only(f, 'assets'), undefined, nothingSent,
              data({ pPushAsset: true }), enqueue('assets')),
            P_ASKS_C: when((f) => pIdle(f) && only(f), undefined, nothingSent, flow({ pAsking: true }), enqueue('serve')),
            // P leaves with nothing but its own `get` pending for C (a withdrawn serve); mid-relay leaves are below.
            P_LEAVES: when((f) => f.p === 'here' && only(f, 'serve'), undefined, nothingSent, pLeaves)
          }
        },
        request: {
          initial: 'story',
          states: {
            story: exchange('story', REQUEST_ANSWER.story, data({ cStory: true, cCamera: [1, 2] }), ['#wire.turn.clientHolds', receives('yours')]),
            analytics: exchange('analytics', REQUEST_ANSWER.analytics, data({ cAnalytics: true }), ['#wire.turn.clientHolds', receives('yours')]),
            assets: exchange('assets', REQUEST_ANSWER.assets, data({ cRequestAsset: true }), ['#wire.turn.clientHolds', receives('yours')])
          }
        },
        /** C passed: the server holds the turn and delivers what was pending then (or holds the pass, with a turn hold). */
        passed: {
          entry: entry(flow((f) => ({ deliverable: f.pending.length }))),
          always: [
            when((f) => f.hold && f.deliverable === 0, 'holding'),
            'deliver'
          ]
        },
        /**
         * §4, with a turn hold: C passed with nothing pending and waits. News is delivered at
         * once (then "yours"); a frame from C ends the hold ("yours" at once) and is taken as
         * its next request; else the hold expires with "yours". P's news here is one
         * notification at a time, so that every one is delivered in this pass.
         */
        holding: {
          on: {
            HOLD_EXPIRES: go('clientHolds', nothingSent, receives('yours')),
            P_SAYS: when(pIdle, 'passed', nothingSent, data((d) => ({ history: [...d.history, [P_NAME, P_TEXT]] })), enqueue('message')),
            P_MOVES_AT: when(pIdle, 'passed', nothingSent, data((d) => ({ pAts: d.pAts + 1 })), enqueue('at')),
            P_PUSHES_STORY: when(pIdle, 'passed', nothingSent, data({ pStory: true }), enqueue('story')),
            P_ASKS_C: when(pIdle, 'passed', nothingSent, flow({ pAsking: true }), enqueue('serve')),
            C_PASS: go('passed', sendsJson('yours'), receives('yours')),
            C_STORY: go('request.story', sendsJson('story'), receives('yours', 'story')),
            C_USERS: go('clientHolds', sendsJson('users'), receives('yours', usersReply, 'yours')),
            C_AT: go('clientHolds', sendsJson(['at', ...C_AT]), receives('yours'), data({ cAt: C_AT }), receives('yours')),
            C_MESSAGE: go('clientHolds', sendsJson(['message', C_TEXT]), receives('yours'),
              data((d) => ({ history: [...d.history, [C_NAME, C_TEXT]] })), enqueue('message'), receives('yours')),
            C_BAD_REQUEST: go('clientHolds', sendsJson('dance'), receives('yours', errorFrame('unknown_request'), 'yours'))
          }
        },
        deliver: {
          initial: 'next',
          states: {
            next: {
              always: [
                when((f) => f.deliverable === 0, '#wire.turn.clientHolds', receives('yours')),
                when(head('users'), 'users', dequeue),
                when(head('at'), 'at', dequeue),
                when(head('message'), 'messages', dequeue),
                when(head('story'), 'story', dequeue),
                when(head('analytics'), 'analytics', dequeue),
                when(head('assets'), 'assets', dequeue),
                when(head('serve'), '#wire.giving', dequeue, receives(['give', GIVE_FOLDER]))
              ]
            },
            users: { entry: entry(receives('users')), always: 'next' },
            at: { entry: entry(receives((c) => atFrame(c.data))), always: 'next' },
            messages: { entry: entry(receives((c) => messagesFrame(c.data))), always: 'next' },
            story: { ...exchange('story', SYNC_ANSWER.story, (c) => c, ['#wire.turn.deliver.next']), entry: entry(receives('story')) },
            analytics: { ...exchange('analytics', SYNC_ANSWER.analytics, (c) => c, ['#wire.turn.deliver.next']), entry: entry(receives('analytics')) },
            assets: { ...exchange('assets', SYNC_ANSWER.assets, (c) => c, ['#wire.turn.deliver.next']), entry: entry(receives('assets')) }
          }
        }
      }
    },
    giving,
    taking,
    closed: { type: 'final' }
  }
})

export type ProtocolModel = typeof protocolModel
