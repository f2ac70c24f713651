/**
 * §5 revision 2 message shapes: manifests (hash strings or entry objects),
 * the answer to `give` (a manifest or `missing`), getlists with offsets, file
 * headers (3 and 4 elements) and the taker's answers.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  bytesFollowing, entryFields, parseRequest, requestKind, validateFileAck, validateFileHeader, validateGetlist, validateGive, validateGiveAnswer,
  validateManifest, validateManifestEntry, wantedEntry, type Manifest
} from '../../protocol/index.ts'
import { expectOk, expectRefused } from '../helpers/validated.ts'

const manifest: Manifest = {
  'render/0001.png': 'ab12',
  'render/0002.png': { hash: 'cd34', size: 10, mtime: 1700000000.25, mode: 0o644 },
  'scene.blend': '',
  'tex/木.jpg': { hash: 'ef', studio: { note: 'kept as is' } }
}

describe('give (§5)', () => {
  it('validateGive reads ["give", folder] and checks the folder', () => {
    expect(expectOk(validateGive(['give', '/chr/Moria']))).toBe('/chr/Moria')
    expectRefused(validateGive(['give', '../x']), 'bad_path', "'..'")
    for (const v of [['give'], ['give', '/a', 1], 'give', null, ['take', '/a']]) expectRefused(validateGive(v), 'bad_request', 'expected ["give", folder]')
  })
})

describe('manifest (§5 rev 2)', () => {
  it('accepts hash strings and entry objects, and keeps unknown keys as they are', () => {
    expect(expectOk(validateManifest({}))).toEqual({})
    expect(expectOk(validateManifest(manifest))).toBe(manifest)
    expect(expectOk(validateManifestEntry({ hash: 'h', size: 0, mtime: -1.5, mode: 0, x: [1, { y: null }] }, 'a'))).toEqual({ hash: 'h', size: 0, mtime: -1.5, mode: 0, x: [1, { y: null }] })
  })

  it('entryFields gives the known fields of either form', () => {
    expect(entryFields('abc')).toEqual({ hash: 'abc' })
    expect(entryFields({ hash: 'h', size: 3, mtime: 2.5, mode: 0o755, other: true })).toEqual({ hash: 'h', size: 3, mtime: 2.5, mode: 0o755 })
    expect(entryFields({ hash: 'h' })).toEqual({ hash: 'h' })
    // A field the entry lacks is absent, not present as undefined (`'size' in fields` is how a taker asks).
    expect(entryFields({ hash: 'h' })).toStrictEqual({ hash: 'h' })
    expect(Object.keys(entryFields({ hash: 'h', mode: 0 }))).toEqual(['hash', 'mode'])
    expect(Object.keys(entryFields({ hash: 'h', size: 0, mtime: 0 }))).toEqual(['hash', 'size', 'mtime'])
  })

  it('refuses a non-object with protocol', () => {
    for (const v of [null, [], ['render/0001.png'], 'manifest', 0]) expectRefused(validateManifest(v), 'protocol', 'manifest expects')
  })

  it('refuses a refused relative path with protocol, saying why', () => {
    expectRefused(validateManifest({ '/abs.png': 'h' }), 'protocol', 'manifest:', 'absolute')
    expectRefused(validateManifest({ '../x': 'h' }), 'protocol', "'..'")
    expectRefused(validateManifest({ 'a//b': 'h' }), 'protocol', 'empty segment')
    expectRefused(validateManifest({ '': 'h' }), 'protocol', 'empty')
    expectRefused(validateManifest({ 'C:/x': 'h' }), 'protocol', 'drive letter')
    expectRefused(validateManifest({ 'a\\b': 'h' }), 'protocol', 'backslash')
  })

  it('refuses an entry that is neither a hash string nor an object with a string "hash", naming the file', () => {
    for (const entry of [null, 1, [], ['h'], true, {}, { hash: 1 }, { hash: null }, { size: 1 }]) {
      expectRefused(validateManifest({ 'ok.png': 'h', 'render/0001.png': entry }), 'protocol', '"render/0001.png"', 'hash string or an object')
    }
  })

  it('refuses a size or mode that is not a non-negative integer, and an mtime that is not a number', () => {
    for (const size of [-1, 1.5, '10', null, Number.MAX_SAFE_INTEGER + 1, [1]]) {
      expectRefused(validateManifestEntry({ hash: 'h', size }, 'a'), 'protocol', '"size" of "a"', 'non-negative integer')
    }
    for (const mode of [-1, 0.5, '644', null, true]) {
      expectRefused(validateManifestEntry({ hash: 'h', mode }, 'a'), 'protocol', '"mode" of "a"', 'non-negative integer')
    }
    for (const mtime of ['2024', null, [1], {}, Infinity, NaN]) {
      expectRefused(validateManifestEntry({ hash: 'h', mtime }, 'a'), 'protocol', '"mtime" of "a"', 'must be a number')
    }
  })

  it('accepts every well-formed entry object (property)', () => {
    const entry = fc.record({
      hash: fc.string(),
      size: fc.option(fc.nat(), { nil: undefined }),
      mtime: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: undefined }),
      mode: fc.option(fc.nat(0o7777), { nil: undefined })
    }, { requiredKeys: ['hash'] })
    fc.assert(fc.property(entry, (e) => {
      const clean = Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined))
      expect(expectOk(validateManifestEntry(clean, 'f'))).toEqual(clean)
    }))
  })
})

describe('answer to give (§5 rev 2)', () => {
  it('a manifest, or ["missing", that folder, reason]', () => {
    expect(expectOk(validateGiveAnswer(manifest, '/chr/Moria'))).toEqual({ type: 'manifest', manifest })
    expect(expectOk(validateGiveAnswer(['missing', '/chr/Moria', 'not serving'], '/chr/Moria'))).toEqual({ type: 'missing', folder: '/chr/Moria', reason: 'not serving' })
  })

  it('refuses a missing for another folder, without a string reason, or a bad manifest, with protocol', () => {
    expectRefused(validateGiveAnswer(['missing', '/chr/Other', 'x'], '/chr/Moria'), 'protocol', '"/chr/Other"', '"/chr/Moria"')
    for (const v of [['missing', '/chr/Moria'], ['missing', '/chr/Moria', 1], ['missing', '/chr/Moria', 'x', 'y']]) {
      expectRefused(validateGiveAnswer(v, '/chr/Moria'), 'protocol', 'missing expects ["missing", folder, reason]')
    }
    expectRefused(validateGiveAnswer({ 'a.txt': 5 }, '/chr/Moria'), 'protocol', '"a.txt"')
    expectRefused(validateGiveAnswer(['file', 'a', 1], '/chr/Moria'), 'protocol', 'manifest expects')
  })

  it('a request sent out of turn (§4), well formed or not, is an answer of its own: never a manifest, never a violation', () => {
    expect(expectOk(validateGiveAnswer('users', '/chr/Moria'))).toEqual({ type: 'request', request: 'users' })
    expect(expectOk(validateGiveAnswer('yours', '/chr/Moria'))).toEqual({ type: 'request', request: 'pass' })
    expect(expectOk(validateGiveAnswer(['get', 'x', '/../y'], '/chr/Moria'))).toEqual({ type: 'request', request: 'get' })
    expect(expectOk(validateGiveAnswer(['at', 1], '/chr/Moria'))).toEqual({ type: 'request', request: 'at' })
    for (const v of ['give', 'toString', '__proto__', ['toString'], ['missing'], [], {}]) expect(requestKind(v)).toBeNull()
  })

  it('whatever the frame: a request exactly when parseRequest knows its name; else a manifest, missing, or a protocol refusal', () => {
    const requestish = fc.oneof(
      fc.constantFrom<unknown>('yours', 'story', 'analytics', 'assets', 'users', 'give', 'missing', 'file'),
      fc.tuple(fc.constantFrom('at', 'message', 'get', 'missing', 'file', 'ok', 'give'), fc.jsonValue({ maxDepth: 1 }), fc.jsonValue({ maxDepth: 1 })),
      fc.jsonValue({ maxDepth: 3 })
    )
    fc.assert(fc.property(requestish, (v) => {
      const answer = validateGiveAnswer(v, '/chr/Moria')
      const parsed = parseRequest(v)
      const isRequest = parsed.ok || parsed.code !== 'unknown_request'
      expect(answer.ok && answer.value.type === 'request').toBe(isRequest)
      if (!answer.ok) expect(answer.code).toBe('protocol')
    }), { numRuns: 500 })
  })
})

describe('getlist (§5 rev 2)', () => {
  it('accepts any duplicate-free subset of the manifest keys, each whole or from an offset, in any order', () => {
    expect(expectOk(validateGetlist([], manifest))).toEqual([])
    expect(expectOk(validateGetlist(['scene.blend', ['render/0001.png', 0], ['tex/木.jpg', 123456789]], manifest)))
      .toEqual([{ path: 'scene.blend' }, { path: 'render/0001.png', offset: 0 }, { path: 'tex/木.jpg', offset: 123456789 }])
    const keys = Object.keys(manifest)
    fc.assert(fc.property(fc.shuffledSubarray(keys), fc.array(fc.option(fc.nat(), { nil: undefined }), { minLength: keys.length, maxLength: keys.length }), (list, offsets) => {
      const wanted = list.map((path, i) => (offsets[i] === undefined ? { path } : { path, offset: offsets[i] }))
      expect(expectOk(validateGetlist(wanted.map(wantedEntry), manifest))).toEqual(wanted)
    }))
  })

  it('refuses an entry not in the manifest with bad_request, naming it', () => {
    expectRefused(validateGetlist(['render/0003.png'], manifest), 'bad_request', '"render/0003.png"', 'not in the manifest')
    expectRefused(validateGetlist([['render/0003.png', 5]], manifest), 'bad_request', '"render/0003.png"', 'not in the manifest')
    expectRefused(validateGetlist(['render/0001.png'], {}), 'bad_request', 'not in the manifest')
    expectRefused(validateGetlist(['toString'], manifest), 'bad_request', 'not in the manifest')
  })

  it('refuses a file listed twice, in either form, with bad_request, naming it', () => {
    expectRefused(validateGetlist(['scene.blend', 'render/0001.png', 'scene.blend'], manifest), 'bad_request', '"scene.blend"', 'twice')
    expectRefused(validateGetlist([['scene.blend', 0], 'scene.blend'], manifest), 'bad_request', '"scene.blend"', 'twice')
    expectRefused(validateGetlist(['scene.blend', ['scene.blend', 4]], manifest), 'bad_request', '"scene.blend"', 'twice')
  })

  it('refuses an offset that is not a non-negative integer with bad_request', () => {
    for (const offset of [-1, 1.5, '3', null, Number.MAX_SAFE_INTEGER + 1, [0]]) {
      expectRefused(validateGetlist([['scene.blend', offset]], manifest), 'bad_request', 'offset of "scene.blend"', 'non-negative integer')
    }
  })

  it('refuses bad paths and wrong shapes with bad_request', () => {
    expectRefused(validateGetlist(['/render/0001.png'], manifest), 'bad_request', 'getlist:', 'absolute')
    expectRefused(validateGetlist(['../x'], manifest), 'bad_request', "'..'")
    expectRefused(validateGetlist([['../x', 0]], manifest), 'bad_request', "'..'")
    for (const entry of [1, null, ['scene.blend'], ['scene.blend', 0, 1], { path: 'scene.blend' }]) {
      expectRefused(validateGetlist([entry], manifest), 'bad_request', 'getlist:')
    }
    for (const v of [null, {}, 'render/0001.png', manifest, 0]) expectRefused(validateGetlist(v, manifest), 'bad_request', 'getlist expects')
  })

  it('wantedEntry gives the wire form', () => {
    expect(wantedEntry({ path: 'a' })).toBe('a')
    expect(wantedEntry({ path: 'a', offset: 0 })).toEqual(['a', 0])
  })
})

describe('file headers (§5 rev 2)', () => {
  it('accepts ["file", expected path, non-negative integer size] for a whole file', () => {
    expect(expectOk(validateFileHeader(['file', 'render/0001.png', 1048576], 'render/0001.png'))).toEqual({ type: 'file', path: 'render/0001.png', size: 1048576 })
    expect(expectOk(validateFileHeader(['file', 'a', 0], { path: 'a' }))).toEqual({ type: 'file', path: 'a', size: 0 })
    expect(expectOk(validateFileHeader(['file', 'a', Number.MAX_SAFE_INTEGER], 'a'))).toMatchObject({ size: Number.MAX_SAFE_INTEGER })
  })

  it('answers a wanted offset with the 4-element header at that offset, or the 3-element one (the whole file)', () => {
    const h = expectOk(validateFileHeader(['file', 'a', 100, 40], { path: 'a', offset: 40 }))
    expect(h).toEqual({ type: 'file', path: 'a', size: 100, offset: 40 })
    expect(bytesFollowing(h as { size: number, offset?: number })).toBe(60)
    expect(expectOk(validateFileHeader(['file', 'a', 100, 100], { path: 'a', offset: 100 }))).toMatchObject({ offset: 100 })
    expect(expectOk(validateFileHeader(['file', 'a', 0, 0], { path: 'a', offset: 0 }))).toMatchObject({ size: 0, offset: 0 })
    const whole = expectOk(validateFileHeader(['file', 'a', 100], { path: 'a', offset: 40 }))
    expect(whole).toEqual({ type: 'file', path: 'a', size: 100 })
    expect(bytesFollowing(whole as { size: number })).toBe(100)
  })

  it('refuses an offset other than the one asked, past the size, or not asked for at all, with protocol', () => {
    expectRefused(validateFileHeader(['file', 'a', 100, 41], { path: 'a', offset: 40 }), 'protocol', 'offset 41', 'asked for 40')
    expectRefused(validateFileHeader(['file', 'a', 100, 0], { path: 'a', offset: 40 }), 'protocol', 'offset 0', 'asked for 40')
    expectRefused(validateFileHeader(['file', 'a', 30, 40], { path: 'a', offset: 40 }), 'protocol', 'offset 40 is past its size of 30')
    expectRefused(validateFileHeader(['file', 'a', 100, 0], 'a'), 'protocol', 'whole file')
    for (const offset of [-1, 1.5, '40', null]) {
      expectRefused(validateFileHeader(['file', 'a', 100, offset], { path: 'a', offset: 40 }), 'protocol', 'offset must be a non-negative integer')
    }
  })

  it('accepts ["missing", expected path, reason], also for a wanted offset', () => {
    expect(expectOk(validateFileHeader(['missing', 'render/0002.png', 'permission denied'], 'render/0002.png')))
      .toEqual({ type: 'missing', path: 'render/0002.png', reason: 'permission denied' })
    expect(expectOk(validateFileHeader(['missing', 'a', 'gone'], { path: 'a', offset: 3 }))).toMatchObject({ type: 'missing' })
  })

  it('refuses a header out of getlist order with protocol, naming both paths', () => {
    expectRefused(validateFileHeader(['file', 'render/0002.png', 10], 'render/0001.png'), 'protocol', '"render/0002.png"', '"render/0001.png"', 'next in the getlist')
    expectRefused(validateFileHeader(['file', 'render/0002.png', 10, 0], { path: 'render/0001.png', offset: 0 }), 'protocol', 'next in the getlist')
    expectRefused(validateFileHeader(['missing', 'render/0002.png', 'gone'], 'render/0001.png'), 'protocol', '"render/0002.png"', '"render/0001.png"')
    expectRefused(validateFileHeader(['file', 1, 10], 'a'), 'protocol', 'next in the getlist')
  })

  it('refuses a size that is not a non-negative integer with protocol', () => {
    for (const size of [-1, 1.5, '10', null, Number.MAX_SAFE_INTEGER + 1, 1e300, [10], -0.5]) {
      expectRefused(validateFileHeader(['file', 'a', size], 'a'), 'protocol', '"a"', 'non-negative integer')
      expectRefused(validateFileHeader(['file', 'a', size, 0], { path: 'a', offset: 0 }), 'protocol', '"a"', 'non-negative integer')
    }
  })

  it('refuses a "missing" without a string reason, and any other shape, with protocol', () => {
    for (const reason of [null, 1, ['x']]) expectRefused(validateFileHeader(['missing', 'a', reason], 'a'), 'protocol', 'missing expects')
    const shapes: unknown[] = [['file', 'a'], ['file', 'a', 1, 2, 3], ['missing', 'a'], ['ok', 'a'], [], 'file', null, { file: 'a' }, ['error', 'protocol', 'x']]
    for (const v of shapes) expectRefused(validateFileHeader(v, 'a'), 'protocol', 'expected ["file", path, size], ["file", path, size, offset] or ["missing", path, reason]', '"a"')
  })

  it('never throws, and accepts a 4-element header exactly when offset = asked ≤ size (property)', () => {
    fc.assert(fc.property(fc.nat(1000), fc.nat(1000), fc.nat(1000), (size, asked, offset) => {
      const r = validateFileHeader(['file', 'a', size, offset], { path: 'a', offset: asked })
      expect(r.ok).toBe(offset === asked && offset <= size)
    }))
    fc.assert(fc.property(fc.jsonValue(), (v) => { validateFileHeader(v, { path: 'a', offset: 1 }) }))
  })
})

describe('answers (§5)', () => {
  it('validateFileAck accepts ["ok", path] and ["failed", path, reason] for the expected path', () => {
    expect(expectOk(validateFileAck(['ok', 'render/0001.png'], 'render/0001.png'))).toEqual({ type: 'ok', path: 'render/0001.png' })
    expect(expectOk(validateFileAck(['failed', 'render/0001.png', 'disk full'], 'render/0001.png')))
      .toEqual({ type: 'failed', path: 'render/0001.png', reason: 'disk full' })
  })

  it('validateFileAck refuses another path or shape with bad_request, naming the expected path', () => {
    const values: unknown[] = [
      ['ok', 'render/0002.png'], ['ok'], ['ok', 'a', 'b'], ['failed', 'render/0002.png', 'x'], ['failed', 'render/0001.png'],
      ['failed', 'render/0001.png', 1], ['OK', 'render/0001.png'], 'ok', null, {}, ['file', 'render/0001.png', 1],
      // The right path with an extra element, or another head with a reason: still not an answer.
      ['ok', 'render/0001.png', 'extra'], ['failed', 'render/0001.png', 'disk full', 'extra'], ['nope', 'render/0001.png', 'disk full']
    ]
    for (const v of values) expectRefused(validateFileAck(v, 'render/0001.png'), 'bad_request', '"render/0001.png"', 'got')
  })
})
