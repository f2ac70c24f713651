import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { checkProjectPath, checkRelativePath, type Checked } from '../../protocol/index.ts'

function expectAccepted (result: Checked<string>, path: string): void {
  expect(result).toEqual({ ok: true, value: path })
}

function expectRefused (result: Checked<string>, ...fragments: string[]): void {
  expect(result.ok).toBe(false)
  if (result.ok) return
  expect(result.reason.length).toBeGreaterThan(0)
  for (const f of fragments) expect(result.reason).toContain(f)
}

const checks = [
  ['checkProjectPath', checkProjectPath, 'project path'],
  ['checkRelativePath', checkRelativePath, 'relative file path']
] as const

/** A path segment that is never `..` or `.` and holds no `/`, `\`, NUL or `:`. */
const segmentArb = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 })
  .filter((s) => s !== '..' && s !== '.' && !/[/\\\0:]/.test(s))

describe('refusals common to both kinds of path (§2)', () => {
  for (const [name, check, what] of checks) {
    describe(name, () => {
      it('refuses a non-string', () => {
        for (const v of [undefined, null, 0, 1, true, [], ['a'], {}, { path: 'a' }]) {
          expectRefused(check(v), what, 'must be a string')
        }
      })

      it('refuses the empty string', () => {
        expectRefused(check(''), 'empty')
      })

      it('refuses a `..` segment anywhere', () => {
        for (const p of ['..', '../x', 'a/..', 'a/../b', 'a/b/../../c', 'render/../../etc/passwd']) {
          expectRefused(check(p), "'..' segment")
        }
        for (const p of ['/..', '/../x', '/a/..', '/chr/../../etc']) {
          expectRefused(checkProjectPath(p), "'..' segment")
        }
      })

      it('refuses a NUL byte', () => {
        for (const p of ['\0', 'a\0', 'render/0001.png\0.txt', '\0/x']) expectRefused(check(p), 'NUL')
      })

      it('refuses a backslash', () => {
        for (const p of ['a\\b', '\\', '..\\x', 'render\\0001.png', '\\\\server\\share']) expectRefused(check(p), 'backslash')
      })

      it('refuses a drive letter, with or without leading slashes', () => {
        for (const p of ['C:', 'C:/x', 'c:x', 'z:', 'C:/Windows/System32']) expectRefused(check(p), 'drive letter')
        for (const p of ['/C:/x', '/C:', '//d:/x', '/c:']) expectRefused(checkProjectPath(p), 'drive letter')
      })
    })
  }
})

describe('checkProjectPath (§2)', () => {
  it('accepts the contract examples and ordinary VCStudio names', () => {
    for (const p of ['/chr/Moria', '/rnd/scene_1/shot_2', 'chr/Moria', '/', '/set/Café', '/chr/Мория', '/loc/東京/駅', '/obj/😀 emoji', '/a b/c.d', '/.hidden', '/chr/Moria/', '/x..y', '/...']) {
      expectAccepted(checkProjectPath(p), p)
    }
  })

  it('accepts a colon that is not a drive letter', () => {
    for (const p of ['/rnd/shot:2', '/ab:c', '/1:x']) expectAccepted(checkProjectPath(p), p)
  })

  it('accepts any path of ordinary segments, with or without a leading slash', () => {
    fc.assert(fc.property(fc.array(segmentArb, { minLength: 1, maxLength: 6 }), fc.boolean(), (segments, rooted) => {
      const p = (rooted ? '/' : '') + segments.join('/')
      expectAccepted(checkProjectPath(p), p)
    }))
  })
})

describe('checkRelativePath (§2)', () => {
  it('accepts the contract example and ordinary names', () => {
    for (const p of ['render/0001.png', '0001.png', 'render/Кадр 1.png', 'textures/木材.jpg', 'a/b/c/d.blend', '.blend1', 'x..y', '...']) {
      expectAccepted(checkRelativePath(p), p)
    }
  })

  it('refuses an absolute path', () => {
    for (const p of ['/x', '/render/0001.png', '/', '//x']) expectRefused(checkRelativePath(p), 'absolute')
  })

  it('refuses an empty segment (our reading: a file path names a file)', () => {
    for (const p of ['render//0001.png', 'render/', 'a/b/']) expectRefused(checkRelativePath(p), 'empty segment')
  })

  it('names the path in its refusal', () => {
    expectRefused(checkRelativePath('/etc/passwd'), '"/etc/passwd"')
  })

  it('accepts any path of ordinary segments without a leading slash', () => {
    fc.assert(fc.property(fc.array(segmentArb, { minLength: 1, maxLength: 6 }), (segments) => {
      const p = segments.join('/')
      expectAccepted(checkRelativePath(p), p)
    }))
  })
})

describe('properties (§2)', () => {
  const anySegment = fc.string({ unit: 'binary', maxLength: 10 }).filter((s) => !s.includes('/'))

  it('any path with a `..` segment is refused by both checks', () => {
    fc.assert(fc.property(
      fc.array(anySegment, { maxLength: 5 }),
      fc.array(anySegment, { maxLength: 5 }),
      fc.boolean(),
      (before, after, rooted) => {
        const p = (rooted ? '/' : '') + [...before, '..', ...after].join('/')
        expect(checkProjectPath(p).ok).toBe(false)
        expect(checkRelativePath(p).ok).toBe(false)
      }
    ), { numRuns: 500 })
  })

  it('any path with a NUL byte or a backslash is refused by both checks', () => {
    fc.assert(fc.property(
      fc.string({ unit: 'binary', maxLength: 20 }),
      fc.constantFrom('\0', '\\'),
      fc.string({ unit: 'binary', maxLength: 20 }),
      (a, bad, b) => {
        expect(checkProjectPath(a + bad + b).ok).toBe(false)
        expect(checkRelativePath(a + bad + b).ok).toBe(false)
      }
    ))
  })

  it('any path that starts with a drive letter (after leading slashes) is refused', () => {
    fc.assert(fc.property(
      fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'),
      fc.nat({ max: 3 }),
      fc.string({ maxLength: 20 }),
      (letter, slashes, rest) => {
        expect(checkProjectPath('/'.repeat(slashes) + letter + ':' + rest).ok).toBe(false)
        expect(checkRelativePath(letter + ':' + rest).ok).toBe(false)
      }
    ))
  })

  it('an accepted path is returned unchanged', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 30 }), (p) => {
      for (const check of [checkProjectPath, checkRelativePath]) {
        const r = check(p)
        if (r.ok) expect(r.value).toBe(p)
      }
    }))
  })

  it('whatever the relative check accepts, the project check accepts too', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 30 }), (p) => {
      if (checkRelativePath(p).ok) expect(checkProjectPath(p).ok).toBe(true)
    }))
  })
})

describe('readings beyond the letter of §2', () => {
  it('refuses a drive-letter segment anywhere, not only at the start', () => {
    for (const p of ['a/C:/x', '/chr/D:', 'render/z:/0001.png']) {
      expectRefused(checkProjectPath(p), 'drive letter')
      expectRefused(checkRelativePath(p.replace(/^\//, '')), 'drive letter')
    }
  })

  it('refuses `.` segments in a relative file path (one file, one manifest key)', () => {
    for (const p of ['./a', 'a/./b', 'a/.']) expectRefused(checkRelativePath(p), "'.' segment")
    expectAccepted(checkRelativePath('.hidden/file'), '.hidden/file')
  })
})
