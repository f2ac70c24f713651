import fc from 'fast-check'
import ignore from 'ignore'
import { describe, expect, it } from 'vitest'
import { DEFAULT_IGNORES, IgnoreRules, isDefaultIgnored } from '../../src/client/index.ts'

const segment = fc.oneof(
  fc.constantFrom('.vcmu', 'shot', 'a.blend', 'a.blend1', 'a.blend9', 'a.blend10', 'a.blend32', 'a.blend33', 'a.blend0', '.x.vcmu-part', 'x.vcmu-partial', 'blend1', 'render'),
  fc.stringMatching(/^[a-z0-9._-]{1,8}$/).filter((s) => s !== '.' && s !== '..')
)

describe('ignore rules', () => {
  it('the quick check of the defaults agrees with the ignore package given the same patterns', () => {
    const lib = ignore().add([...DEFAULT_IGNORES])
    fc.assert(fc.property(fc.array(segment, { minLength: 1, maxLength: 4 }), fc.boolean(), (parts, isDir) => {
      const rel = parts.join('/') + (isDir ? '/' : '')
      expect(isDefaultIgnored(rel)).toBe(lib.ignores(rel))
    }), { numRuns: 2000 })
  })

  it('a .multiuserignore adds to the defaults (gitignore syntax, negation included); comments alone change nothing', () => {
    const rules = new IgnoreRules('# caches\ncache/\n*.tmp\n!keep.tmp\n')
    expect(['cache/', 'a/cache/', 'x.tmp', 'a/b.tmp', 'a.blend3', '.vcmu/', 'b/.f.vcmu-part'].map((p) => rules.ignores(p))).toEqual([true, true, true, true, true, true, true])
    expect(['keep.tmp', 'a/keep.tmp', 'a.blend', 'render/x.png', ''].map((p) => rules.ignores(p))).toEqual([false, false, false, false, false])
    const comments = new IgnoreRules('# nothing here\n\n')
    expect([comments.ignores('x.tmp'), comments.ignores('a.blend2'), comments.ignores('.vcmu/')]).toEqual([false, true, true])
  })
})
