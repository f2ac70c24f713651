/**
 * Bench only: runs the real server (src/main.ts) and profiles its CPU on
 * request: the first SIGUSR2 starts V8's sampling profiler, the second stops
 * it and writes `<dir>/server.cpuprofile` (dir from VCMU_PROFILE_DIR), so a
 * profile covers exactly the phase a bench measures, not start-up or joins.
 */
import { Session } from 'node:inspector/promises'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'

const dir = process.env.VCMU_PROFILE_DIR
if (dir === undefined) throw new Error('set VCMU_PROFILE_DIR')
const session = new Session()
session.connect()
let running = false
process.on('SIGUSR2', () => {
  void (async () => {
    if (!running) {
      running = true
      await session.post('Profiler.setSamplingInterval', { interval: 200 })
      await session.post('Profiler.enable')
      await session.post('Profiler.start')
      console.log('profiling | started')
      return
    }
    running = false
    const { profile } = await session.post('Profiler.stop')
    await writeFile(join(dir, 'server.cpuprofile'), JSON.stringify(profile))
    console.log('profiling | written')
  })()
})
await import('../src/main.ts')
