import type { JsonObject } from '../protocol/messages.ts'

/** A story shaped like VCStudio's, about `bytes` of JSON: scenes of shots of small script blocks, arrows between scenes. */
export function bigStory (bytes: number): JsonObject {
  const scenes: JsonObject = {}
  let size = 0
  let i = 0
  while (size < bytes) {
    const shots = Array.from({ length: 20 }, (_, k) => ['shot_block', `shot_${k}`, [
      ['text', `Moria walks into room ${i}, looking at the old clock on the wall. It is late. `],
      ['frase', 'MORIA', 'Where is everyone? I thought we agreed on eight.'],
      ['image', `/rnd/scene_${i}/shot_${k}/storyboard.png`]
    ]])
    const scene = { fraction: 0.5, position: [i * 10, (i % 7) * 30], size: [100, 40], shots }
    scenes[`scene_${i}`] = scene
    size += JSON.stringify(scene).length
    i++
  }
  return { scenes, arrows: Array.from({ length: i }, (_, j) => [[j - 1, `scene_${j - 1}`], [j, `scene_${j}`]]), links: [], camera: [0, 0] }
}
