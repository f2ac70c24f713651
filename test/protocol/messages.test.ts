import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  ERROR_CODES, MAX_MESSAGE_BYTES, MAX_USERNAME_BYTES, NOBODY, TIMESTAMP_PATTERN, ZERO_TIMESTAMP,
  errorMessage, isErrorCode, isNewer, isTimestamp, parseErrorMessage, parseRequest,
  validateAnalyticsSubmission, validateAssetsSubmission, validateHandshakeString, validateStorySubmission, validateUsername
} from '../../protocol/index.ts'
import { expectOk, expectRefused } from '../helpers/validated.ts'

// ------------------------------------------------------------------ helpers

const TS = '2024/05/17-13:45:09'
const TS2 = '2024/05/17-13:45:10'
const badTimestamps: unknown[] = [
  '', '2024/05/17', '2024-05-17-13:45:09', '2024/05/17 13:45:09', '24/05/17-13:45:09', '2024/5/17-13:45:09',
  '2024/05/17-13:45:09Z', ' 2024/05/17-13:45:09', '2024/05/17-13:45:09\n', '２０２４/05/17-13:45:09',
  1715953509, null, ['2024/05/17-13:45:09'], {}
]
const notObjects: unknown[] = [null, 0, 'story', true, [], [1, 2]]

const tsArb = fc.tuple(
  fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 99 }), fc.integer({ min: 0, max: 99 }),
  fc.integer({ min: 0, max: 99 }), fc.integer({ min: 0, max: 99 }), fc.integer({ min: 0, max: 99 })
).map(([y, mo, d, h, mi, s]) => {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0')
  return `${p(y, 4)}/${p(mo)}/${p(d)}-${p(h)}:${p(mi)}:${p(s)}`
})

// ------------------------------------------------------------------ §2 common values

describe('timestamps and errors (§2)', () => {
  it('isTimestamp accepts YYYY/MM/DD-HH:MM:SS only', () => {
    for (const t of [TS, ZERO_TIMESTAMP, '9999/99/99-99:99:99']) expect(isTimestamp(t)).toBe(true)
    for (const t of badTimestamps) expect(isTimestamp(t)).toBe(false)
    fc.assert(fc.property(tsArb, (t) => { expect(isTimestamp(t)).toBe(true); expect(TIMESTAMP_PATTERN.test(t)).toBe(true) }))
  })

  it('isNewer is strict plain string comparison', () => {
    expect(isNewer(TS2, TS)).toBe(true)
    expect(isNewer(TS, TS2)).toBe(false)
    expect(isNewer(TS, TS)).toBe(false)
    expect(isNewer(TS, ZERO_TIMESTAMP)).toBe(true)
    expect(isNewer(ZERO_TIMESTAMP, ZERO_TIMESTAMP)).toBe(false)
    expect(isNewer('2024/12/01-00:00:00', '2024/02/01-00:00:00')).toBe(true)
    fc.assert(fc.property(tsArb, tsArb, (a, b) => {
      expect(isNewer(a, b)).toBe(a > b)
      expect(isNewer(a, b) && isNewer(b, a)).toBe(false)
      if (a !== b) expect(isNewer(a, b) || isNewer(b, a)).toBe(true)
    }))
  })

  it('the initial values are the contract ones', () => {
    expect(ZERO_TIMESTAMP).toBe('0000/00/00-00:00:00')
    expect(NOBODY).toBe('0.0.0.0:0000')
  })

  it('knows exactly the eleven error codes of §2', () => {
    expect([...ERROR_CODES].sort()).toEqual([
      'bad_handshake', 'bad_path', 'bad_request', 'busy', 'no_such_folder', 'no_such_user', 'protocol',
      'relay_failed', 'relay_timeout', 'unknown_request', 'would_deadlock'
    ])
    for (const c of ERROR_CODES) expect(isErrorCode(c)).toBe(true)
    for (const c of ['', 'error', 'PROTOCOL', 'timeout', 1, null]) expect(isErrorCode(c)).toBe(false)
    expect(errorMessage('busy', 'full')).toEqual(['error', 'busy', 'full'])
  })

  it('parseErrorMessage recognises ["error", code, detail] for every code', () => {
    for (const code of ERROR_CODES) {
      expect(expectOk(parseErrorMessage(['error', code, 'why']))).toEqual({ code, detail: 'why' })
      expect(expectOk(parseErrorMessage(errorMessage(code, '')))).toEqual({ code, detail: '' })
    }
  })

  it('parseErrorMessage refuses everything else', () => {
    const bad: unknown[] = [
      'error', ['error'], ['error', 'protocol'], ['error', 'protocol', 'x', 'y'], ['error', 'nope', 'x'],
      ['error', 'protocol', 1], ['err', 'protocol', 'x'], { error: 'protocol' }, null, 'yours', ['yours']
    ]
    for (const v of bad) expectRefused(parseErrorMessage(v), 'bad_request', 'not an error message')
  })
})

// ------------------------------------------------------------------ §3 handshake

describe('handshake (§3)', () => {
  it('validateUsername accepts 1..256 bytes', () => {
    for (const name of ['a', 'Blender Guru', 'ä', '😀', 'x'.repeat(256), 'é'.repeat(128), '😀'.repeat(64), '日'.repeat(85) + 'a']) {
      expect(expectOk(validateUsername(name))).toBe(name)
    }
  })

  it('validateUsername counts bytes, not characters', () => {
    expectRefused(validateUsername(''), 'bad_handshake', '1..256 bytes', 'got 0')
    expectRefused(validateUsername('x'.repeat(257)), 'bad_handshake', 'got 257')
    expectRefused(validateUsername('é'.repeat(129)), 'bad_handshake', 'got 258') // 129 chars, 258 bytes
    expectRefused(validateUsername('😀'.repeat(65)), 'bad_handshake', 'got 260') // 130 UTF-16 units, 260 bytes
    expectRefused(validateUsername('日'.repeat(86)), 'bad_handshake', 'got 258') // 86 chars, 258 bytes
    expect(MAX_USERNAME_BYTES).toBe(256)
  })

  it('validateUsername agrees with the UTF-8 byte length of any string', () => {
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), (name) => {
      const n = new TextEncoder().encode(name).byteLength
      expect(validateUsername(name).ok).toBe(n >= 1 && n <= 256 && !/[\u0000-\u001f\u007f-\u009f]/.test(name))
    }))
  })

  it('validateUsername refuses control characters (U+0000–U+001F, U+007F–U+009F), and only those (§2 rev 2)', () => {
    for (const code of [0x00, 0x0a, 0x0d, 0x1b, 0x1f, 0x7f, 0x85, 0x9f]) {
      expectRefused(validateUsername(`ann${String.fromCharCode(code)}bob`), 'bad_handshake', `U+${code.toString(16).padStart(4, '0')}`)
    }
    for (const name of ['ann bob', 'ann\u00a0bob', 'Zoë', 'ann~', '\u2028', 'ann\\n']) expect(validateUsername(name).ok).toBe(true)
  })

  it('validateUsername refuses a non-string with bad_handshake', () => {
    for (const v of [null, 1, true, [], ['me'], { name: 'me' }]) expectRefused(validateUsername(v), 'bad_handshake', 'username must be a string')
  })

  it('validateHandshakeString accepts any string, the empty one too', () => {
    for (const what of ['project', 'secret'] as const) {
      for (const s of ['', 'MyProject', 'проект', 'x'.repeat(10000)]) expect(expectOk(validateHandshakeString(s, what))).toBe(s)
    }
  })

  it('validateHandshakeString refuses a non-string with bad_handshake, naming the step', () => {
    for (const what of ['project', 'secret'] as const) {
      for (const v of [null, 0, false, [], ['p'], {}]) expectRefused(validateHandshakeString(v, what), 'bad_handshake', `${what} must be a string`)
    }
  })
})

// ------------------------------------------------------------------ §3 syncs

describe('syncs (§3)', () => {
  it('validateStorySubmission accepts [object, timestamp]', () => {
    expect(expectOk(validateStorySubmission([{}, TS]))).toEqual({ story: {}, timestamp: TS })
    const story = { scenes: { s1: 'text' }, links: [[1, 2]], camera: 'not a camera' }
    expect(expectOk(validateStorySubmission([story, ZERO_TIMESTAMP]))).toEqual({ story, timestamp: ZERO_TIMESTAMP })
  })

  it('validateStorySubmission extracts the camera only when it is two numbers', () => {
    expect(expectOk(validateStorySubmission([{ camera: [1.5, -2] }, TS])).camera).toEqual([1.5, -2])
    expect(expectOk(validateStorySubmission([{ camera: [0, 0], other: 1 }, TS])).camera).toEqual([0, 0])
    const notCameras: unknown[] = [[1], [1, 2, 3], ['1', 2], [1, '2'], [null, 0], [], {}, { x: 1, y: 2 }, 5, null, [[1], [2]], [true, false]]
    for (const camera of notCameras) {
      const value = expectOk(validateStorySubmission([{ camera }, TS]))
      expect(value.camera).toBeUndefined()
      expect('camera' in value).toBe(false)
    }
    expect('camera' in expectOk(validateStorySubmission([{}, TS]))).toBe(false)
  })

  it('validateStorySubmission extracts any two numbers as a camera', () => {
    fc.assert(fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.double({ noNaN: true, noDefaultInfinity: true }), tsArb, (x, y, ts) => {
      const story = JSON.parse(JSON.stringify({ camera: [x, y] }))
      expect(expectOk(validateStorySubmission([story, ts])).camera).toEqual(story.camera)
    }))
  })

  it('validateStorySubmission refuses a story that is not an object (our reading) with bad_request', () => {
    for (const story of notObjects) expectRefused(validateStorySubmission([story, TS]), 'bad_request', 'story expects [story object, timestamp]')
  })

  it('validateStorySubmission refuses a bad timestamp or a wrong shape with bad_request', () => {
    for (const ts of badTimestamps) expectRefused(validateStorySubmission([{}, ts]), 'bad_request', 'story expects')
    const shapes: unknown[] = [null, {}, 'story', [], [{}], [{}, TS, 1], { story: {}, ts: TS }, [TS, {}]]
    for (const v of shapes) expectRefused(validateStorySubmission(v), 'bad_request', 'story expects', 'got')
  })

  it('validateAnalyticsSubmission accepts [any JSON, timestamp]', () => {
    for (const analytics of [{}, [], null, 0, 'x', { days: [1, 2, 3] }, [[1]]]) {
      expect(expectOk(validateAnalyticsSubmission([analytics, TS]))).toEqual({ analytics, timestamp: TS })
    }
    fc.assert(fc.property(fc.jsonValue(), tsArb, (analytics, ts) => {
      expect(expectOk(validateAnalyticsSubmission([analytics, ts]))).toEqual({ analytics, timestamp: ts })
    }))
  })

  it('validateAnalyticsSubmission refuses a wrong shape or timestamp with bad_request', () => {
    for (const ts of badTimestamps) expectRefused(validateAnalyticsSubmission([{}, ts]), 'bad_request', 'analytics expects [analytics, timestamp]')
    for (const v of [null, {}, 'analytics', [], [{}], [{}, TS, TS], { analytics: {}, ts: TS }]) {
      expectRefused(validateAnalyticsSubmission(v), 'bad_request', 'analytics expects', 'got')
    }
  })

  it('validateAssetsSubmission accepts {project path: [user id, timestamp]}', () => {
    expect(expectOk(validateAssetsSubmission({}))).toEqual({})
    const assets = {
      '/chr/Moria': ['127.0.0.1:5000', TS],
      '/rnd/scene_1/shot_2': ['10.0.0.2:41000', ZERO_TIMESTAMP],
      '/loc/Café': ['whoever', TS2]
    }
    expect(expectOk(validateAssetsSubmission(assets))).toEqual(assets)
  })

  it('validateAssetsSubmission copies entries (what it returns is not the client object)', () => {
    const entry = ['u', TS]
    const value = expectOk(validateAssetsSubmission({ '/a': entry }))
    expect(value['/a']).toEqual(entry)
    expect(value['/a']).not.toBe(entry)
  })

  it('validateAssetsSubmission keeps an asset named "__proto__" as an own entry', () => {
    const parsed = JSON.parse(`{"__proto__": ["u", "${TS}"], "/a": ["v", "${TS2}"]}`) as unknown
    const value = expectOk(validateAssetsSubmission(parsed))
    expect(Object.keys(value)).toEqual(['__proto__', '/a'])
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
    expect(JSON.parse(JSON.stringify(value))).toEqual(parsed)
  })

  it('validateAssetsSubmission refuses a refused project path with bad_request, naming it', () => {
    for (const p of ['', '/chr/../x', 'C:/x', 'a\\b', 'a\0b']) {
      expectRefused(validateAssetsSubmission({ [p]: ['u', TS] }), 'bad_request', 'assets:', JSON.stringify(p))
    }
  })

  it('validateAssetsSubmission refuses a malformed entry with bad_request, naming the asset', () => {
    const entries: unknown[] = [null, 'u', [], ['u'], ['u', TS, 1], [1, TS], ['u', 'yesterday'], { user: 'u', ts: TS }, [TS, 'u']]
    for (const entry of entries) {
      expectRefused(validateAssetsSubmission({ '/ok': ['u', TS], '/chr/Moria': entry }), 'bad_request', '"/chr/Moria"', 'expects [user id, timestamp]')
    }
  })

  it('validateAssetsSubmission refuses a non-object with bad_request', () => {
    for (const v of [null, [], [['/a', ['u', TS]]], 'assets', 1]) expectRefused(validateAssetsSubmission(v), 'bad_request', 'assets expects')
  })
})

// ------------------------------------------------------------------ §4 requests

describe('refusal details name what was sent (§2: a human-readable detail)', () => {
  it('words each kind of value: null, an array by its length, a short string quoted, a long one not, an object, a number, a boolean', () => {
    const detailOf = (v: unknown): string => {
      const r = validateStorySubmission(v)
      if (r.ok) throw new Error('accepted')
      return r.detail.replace('story expects [story object, timestamp], got ', '')
    }
    expect(detailOf(null)).toBe('null')
    expect(detailOf([1, 2, 3])).toBe('an array of 3')
    expect(detailOf([])).toBe('an array of 0')
    expect(detailOf('x'.repeat(40))).toBe(`"${'x'.repeat(40)}"`)
    expect(detailOf('x'.repeat(41))).toBe('a long string')
    expect(detailOf({ story: 1 })).toBe('an object')
    expect(detailOf(7)).toBe('number 7')
    expect(detailOf(true)).toBe('boolean true')
  })

  it('an array request whose head is no string is described as the array, not by its head', () => {
    expect(parseRequest([5, 'x'])).toEqual({ ok: false, code: 'unknown_request', detail: 'unknown request an array of 2' })
    expect(parseRequest([])).toEqual({ ok: false, code: 'unknown_request', detail: 'unknown request an array of 0' })
    expect(parseRequest(['frobnicate'])).toEqual({ ok: false, code: 'unknown_request', detail: 'unknown request "frobnicate"' })
  })
})

describe('parseRequest (§4)', () => {
  it('accepts the five simple requests', () => {
    expect(expectOk(parseRequest('yours'))).toEqual({ type: 'pass' })
    expect(expectOk(parseRequest('story'))).toEqual({ type: 'story' })
    expect(expectOk(parseRequest('analytics'))).toEqual({ type: 'analytics' })
    expect(expectOk(parseRequest('assets'))).toEqual({ type: 'assets' })
    expect(expectOk(parseRequest('users'))).toEqual({ type: 'users' })
  })

  it('refuses unknown strings with unknown_request, naming them', () => {
    for (const v of ['', 'Yours', 'yours ', 'pass', 'give', 'get', 'at', 'message', 'username?', 'constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      expectRefused(parseRequest(v), 'unknown_request', 'unknown request')
    }
    expectRefused(parseRequest('frobnicate'), 'unknown_request', '"frobnicate"')
  })

  it('refuses unknown arrays and other values with unknown_request', () => {
    const values: unknown[] = [
      [], ['yours'], ['story'], ['users'], ['frobnicate', 1], ['give', '/x'], ['ok', 'a'], [1, 2], [null], [['at']],
      null, 0, true, {}, { at: ['/x', TS] }
    ]
    for (const v of values) expectRefused(parseRequest(v), 'unknown_request', 'unknown request')
    expectRefused(parseRequest(['frobnicate', 1]), 'unknown_request', '"frobnicate"')
  })

  it('accepts ["at", project path, timestamp]', () => {
    expect(expectOk(parseRequest(['at', '/chr/Moria', TS]))).toEqual({ type: 'at', path: '/chr/Moria', timestamp: TS })
    expect(expectOk(parseRequest(['at', '/rnd/scene_1/shot_2', ZERO_TIMESTAMP]))).toEqual({ type: 'at', path: '/rnd/scene_1/shot_2', timestamp: ZERO_TIMESTAMP })
    expect(expectOk(parseRequest(['at', '/set/Café', TS]))).toMatchObject({ path: '/set/Café' })
  })

  it('refuses a malformed "at" with bad_request', () => {
    const shapes: unknown[] = [['at'], ['at', '/x'], ['at', '/x', TS, 1], ['at', 1, TS], ['at', null, TS], ['at', ['/x'], TS], ...badTimestamps.map((t) => ['at', '/x', t])]
    for (const v of shapes) expectRefused(parseRequest(v), 'bad_request', 'at expects')
  })

  it('refuses a refused path in "at" with bad_path (our reading), saying why', () => {
    expectRefused(parseRequest(['at', '', TS]), 'bad_path', 'at:', 'empty')
    expectRefused(parseRequest(['at', '/chr/../../x', TS]), 'bad_path', 'at:', "'..'")
    expectRefused(parseRequest(['at', 'C:/x', TS]), 'bad_path', 'drive letter')
    expectRefused(parseRequest(['at', '/C:/x', TS]), 'bad_path', 'drive letter')
    expectRefused(parseRequest(['at', 'a\\b', TS]), 'bad_path', 'backslash')
    expectRefused(parseRequest(['at', 'a\0b', TS]), 'bad_path', 'NUL')
  })

  it('accepts ["message", text] up to 64 KiB of UTF-8', () => {
    expect(MAX_MESSAGE_BYTES).toBe(65536)
    for (const text of ['', 'hello', 'привет 😀', 'x'.repeat(65536), 'é'.repeat(32768), '😀'.repeat(16384)]) {
      expect(expectOk(parseRequest(['message', text]))).toEqual({ type: 'message', text })
    }
  })

  it('refuses a message over 64 KiB of bytes, even when under 64 Ki characters, with bad_request', () => {
    expectRefused(parseRequest(['message', 'x'.repeat(65537)]), 'bad_request', 'over 65536 bytes')
    expectRefused(parseRequest(['message', 'é'.repeat(32769)]), 'bad_request', 'over 65536 bytes') // 32769 chars
    expectRefused(parseRequest(['message', '😀'.repeat(16385)]), 'bad_request', 'over 65536 bytes')
  })

  it('refuses a malformed "message" with bad_request', () => {
    for (const v of [['message'], ['message', 1], ['message', null], ['message', ['hi']], ['message', 'a', 'b']]) {
      expectRefused(parseRequest(v), 'bad_request', 'message expects [string]')
    }
  })

  it('accepts ["get", user id, project path]', () => {
    expect(expectOk(parseRequest(['get', '127.0.0.1:50012', '/chr/Moria']))).toEqual({ type: 'get', giver: '127.0.0.1:50012', folder: '/chr/Moria' })
    expect(expectOk(parseRequest(['get', '', '/rnd/scene_1/shot_2']))).toEqual({ type: 'get', giver: '', folder: '/rnd/scene_1/shot_2' })
  })

  it('refuses a malformed "get" with bad_request', () => {
    const shapes: unknown[] = [['get'], ['get', 'u'], ['get', 'u', '/x', 1], ['get', 1, '/x'], ['get', 'u', 1], ['get', null, '/x'], ['get', 'u', null], ['get', ['u'], '/x']]
    for (const v of shapes) expectRefused(parseRequest(v), 'bad_request', 'get expects [user id, project path]')
  })

  it('refuses a refused folder in "get" with bad_path, saying why', () => {
    expectRefused(parseRequest(['get', 'u', '']), 'bad_path', 'get:', 'empty')
    expectRefused(parseRequest(['get', 'u', '/..']), 'bad_path', 'get:', "'..'")
    expectRefused(parseRequest(['get', 'u', '../../etc']), 'bad_path', "'..'")
    expectRefused(parseRequest(['get', 'u', 'D:/secrets']), 'bad_path', 'drive letter')
    expectRefused(parseRequest(['get', 'u', '/chr\\x']), 'bad_path', 'backslash')
    expectRefused(parseRequest(['get', 'u', '/x\0']), 'bad_path', 'NUL')
  })

  it('never throws and always gives a contract error code, whatever the input', () => {
    fc.assert(fc.property(fc.oneof(fc.jsonValue(), fc.tuple(fc.constantFrom('at', 'message', 'get'), fc.jsonValue(), fc.jsonValue())), (v) => {
      const r = parseRequest(v)
      if (!r.ok) {
        expect(['unknown_request', 'bad_request', 'bad_path']).toContain(r.code)
        expect(r.detail.length).toBeGreaterThan(0)
      }
    }), { numRuns: 500 })
  })
})

