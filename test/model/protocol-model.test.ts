import { describe, expect, it } from 'vitest'
import { HELD_TURN_HOLD_MS, PathRun, runPath } from './harness.ts'
import { describePath, generateHeldPaths, generatePaths, inventory, replay, transitionName } from './paths.ts'

const generated = generatePaths()
const held = generateHeldPaths()
/** Per path: how many of its events ran and were checked. */
const completed = new Map<number, number>()
const completedHeld = new Map<number, number>()

describe.concurrent('protocol model: every generated path against a real server', () => {
  generated.paths.forEach((events, i) => {
    it(`path ${i}: ${describePath(events)}`, async () => {
      const run = new PathRun()
      try {
        await run.start()
        await runPath(events, run)
      } finally {
        completed.set(i, run.completedSteps)
        await run.stop()
      }
    })
  })
})

describe.concurrent(`protocol model with a turn hold of ${HELD_TURN_HOLD_MS} ms: held passes against a real server`, () => {
  held.forEach((events, i) => {
    it(`held path ${i}: ${describePath(events)}`, async () => {
      const run = new PathRun(HELD_TURN_HOLD_MS)
      try {
        await run.start()
        await runPath(events, run)
      } finally {
        completedHeld.set(i, run.completedSteps)
        await run.stop()
      }
    })
  })
})

describe('protocol model: coverage', () => {
  it('every state and every transition of the model is reached by the executed paths', () => {
    const { states, transitions } = inventory()
    const seenStates = new Set<unknown>()
    const seenTransitions = new Set<unknown>()
    const runs = [
      ...[...completed].map(([i, n]) => ({ events: generated.paths[i], n, hold: false })),
      ...[...completedHeld].map(([i, n]) => ({ events: held[i], n, hold: true }))
    ]
    for (const { events, n, hold } of runs) {
      if (n < 0) continue
      const r = replay(events.slice(0, n), { hold })
      for (const s of r.initialNodes) seenStates.add(s)
      for (const v of r.visited) {
        for (const s of v.nodes) seenStates.add(s)
        for (const t of v.transitions) seenTransitions.add(t)
      }
    }
    const s = states.filter((x) => seenStates.has(x)).length
    const t = transitions.filter((x) => seenTransitions.has(x)).length
    console.log(`model coverage: ${completed.size} + ${completedHeld.size} held paths, ${s}/${states.length} states, ${t}/${transitions.length} transitions`)
    expect(states.filter((x) => !seenStates.has(x)).map((x) => `#${x.id}`), 'states never reached').toEqual([])
    expect(transitions.filter((x) => !seenTransitions.has(x)).map(transitionName), 'transitions never taken').toEqual([])
  })
})
