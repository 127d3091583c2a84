// One replica's capacity curve, the autoscaling simulation's input: the
// native server (`oxinfer serve`, benchmark/server-peer.mjs) serving the
// penguins pipeline, one row per request, loaded by wrk at concurrency 1 to
// 128; req/s, p50 and p99 (wrk --latency), and the server process's CPU
// (from /proc, as a share of this machine's cores, which is what a pod's CPU
// limit would be). Writes benchmark/scale/capacity.json.
//
// Usage: node benchmark/scale/capacity.mjs [seconds per level, default 8]
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'

import { freePort, luaScript, requestBody, runWrk, start } from '../server.mjs'
import { BENCH_DIR, ROOT, log } from '../util.mjs'

const seconds = Number(process.argv[2] ?? 8)
const LEVELS = [1, 2, 4, 8, 16, 32, 64, 128]
const TICK = 100 // clock ticks per second (USER_HZ)

/** utime + stime of a process and its threads, in seconds. */
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ')
  return (Number(rest[11]) + Number(rest[12])) / TICK
}

const port = await freePort()
const { child, url } = await start('oxinfer', port)
const points = []
try {
  const script = luaScript(mkdtempSync(join(tmpdir(), 'oxinfer-capacity-')), requestBody(1))
  const target = `${url}/v2/models/penguins/infer`
  runWrk(target, script, 16, '3s')
  for (const c of LEVELS) {
    const before = cpuSeconds(child.pid)
    const t0 = performance.now()
    const r = runWrk(target, script, c, `${seconds}s`)
    const wall = (performance.now() - t0) / 1000
    const cpu = (cpuSeconds(child.pid) - before) / wall
    points.push({ concurrency: c, rps: r.rps, p50: r.p50, p99: r.p99, cpuCores: Math.round(cpu * 100) / 100, errors: r.non2xx })
    log(`capacity c=${c}: ${r.rps} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, server CPU ${cpu.toFixed(2)} cores`)
  }
} finally {
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))
}
let commit = ''
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
} catch {
  // not a checkout
}
const out = { method: `wrk (1 thread, --latency) against oxinfer serve on the example repository's penguins pipeline, 1 row per request, ${seconds} s per level, same machine`, machine: `${cpus().length} cores, ${cpus()[0]?.model ?? ''}`, commit, date: new Date().toISOString(), points }
writeFileSync(join(BENCH_DIR, 'scale', 'capacity.json'), JSON.stringify(out, null, 1) + '\n')
log(`capacity: wrote benchmark/scale/capacity.json`)
