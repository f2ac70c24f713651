import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { createMachine } from 'xstate'
import { ARCHITECTURE_MD, MACHINES_MD, renderDiagrams, renderMachine, updateSessionBlock } from '../scripts/diagrams.ts'

const STALE = 'out of date with the machines: run `npm run diagrams` and commit the result'

describe('state diagrams', () => {
  it(`docs/machines.md is not ${STALE}`, () => {
    expect(readFileSync(MACHINES_MD, 'utf8'), STALE).toBe(renderDiagrams())
  })

  it(`the session diagram in docs/architecture.md is not ${STALE}`, () => {
    const page = readFileSync(ARCHITECTURE_MD, 'utf8')
    expect(page, STALE).toBe(updateSessionBlock(page))
  })

  it('draws every machine, nested states, initial and final states and each kind of transition', () => {
    const doc = renderDiagrams()
    for (const title of ['session', 'coordinator', 'giver', 'taker']) expect(doc).toContain(`## ${title}\n`)
    expect(doc.match(/```mermaid\nstateDiagram-v2\n/g)?.length).toBeGreaterThanOrEqual(4)

    const machine = createMachine({
      id: 'demo',
      initial: 'a',
      on: { reset: '.a' },
      states: {
        a: { after: { 1000: 'b' }, on: { go: { target: 'b', guard: 'ok', actions: ['x', { type: 'y', params: { n: 1 } }] } } },
        b: {
          entry: 'enterB',
          initial: 'b1',
          states: { b1: { always: 'b2' }, b2: { type: 'final' } },
          onDone: 'c'
        },
        c: { type: 'final' }
      }
    })
    const d = renderMachine(machine).overview
    expect(d).toContain('[*] --> a')
    expect(d).toContain('state "b" as b {')
    expect(d).toContain('    [*] --> b__b1')
    expect(d).toContain('    b__b1 --> b__b2 : always')
    expect(d).toContain('    b__b2 --> [*]')
    expect(d).toContain('a --> b : go [ok] / x, y(1)')
    expect(d).toContain('a --> b : after 1000 ms')
    expect(d).toContain('b --> c : onDone')
    expect(d).toContain('any_state --> a : reset')
    expect(d).toContain('c --> [*]')
    expect(d).toMatch(/note left of b\n\s+entry \/ enterB\n\s+end note/)
  })
})
