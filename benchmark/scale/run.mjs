// The autoscaling simulation (issue #18): one replica's measured capacity
// curve (capacity.json, from capacity.mjs; --measure measures it first),
// checked against the simulated replica at constant loads, then a cluster
// under a diurnal load with a spike, scaled by an HPA on CPU (what users
// configure by default) and on requests in flight (deploy/k8s/base/hpa.yaml).
// Writes results.json and replicas.svg here and prints the RESULTS.md table.
//
// Usage: node benchmark/scale/run.mjs [--measure]
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { freePort, start } from '../server.mjs'
import { BENCH_DIR, log } from '../util.mjs'
import { cluster, constantLoad, replicaModel } from './model.mjs'

const here = join(BENCH_DIR, 'scale')
if (process.argv.includes('--measure') || !existsSync(join(here, 'capacity.json'))) execFileSync(process.execPath, [join(here, 'capacity.mjs')], { stdio: 'inherit' })
const capacity = JSON.parse(readFileSync(join(here, 'capacity.json'), 'utf8'))
const model = replicaModel(capacity)

// 1. The simulated replica against the measured curve, at each measured throughput as a constant load.
const check = capacity.points.map((p) => {
  const s = constantLoad(model, p.rps)
  return { concurrency: p.concurrency, measuredRps: p.rps, simRps: Math.round(s.rps), simInFlight: Math.round(s.inFlight * 10) / 10, measuredP99: p.p99, simP99: Math.round(s.p99 * 1000) / 1000, p99Error: Math.round((s.p99 / p.p99 - 1) * 1000) / 10 }
})
for (const c of check) log(`scale check c=${c.concurrency}: ${c.measuredRps} req/s -> simulated in flight ${c.simInFlight}, ${c.simRps} req/s, p99 ${c.simP99} ms (measured ${c.measuredP99} ms, ${c.p99Error}%)`)

// 2. How long a new replica takes: the server's own start to ready, measured
//    here, plus 15 s for scheduling and the container's start (image cached).
const port = await freePort()
const t0 = performance.now()
const { child, url } = await start('oxinfer', port)
// start() waits for /v2/health/live; a replica takes traffic once ready.
while ((await fetch(`${url}/v2/health/ready`).catch(() => ({ status: 0 }))).status !== 200) await new Promise((r) => setTimeout(r, 20))
const serverReadyS = (performance.now() - t0) / 1000
child.kill('SIGTERM')
await new Promise((r) => child.once('exit', r))
const startup = 15 + serverReadyS
log(`scale: server ready in ${serverReadyS.toFixed(2)} s; replica start-up ${startup.toFixed(1)} s`)

// 3. The load: one compressed day (an hour) from 0.6 to 3 replicas' full
//    capacity, and a flash crowd: three times the load for 3 minutes (10 s ramps).
const X = model.xMax
const DURATION = 3600
const rate = (t) => {
  const diurnal = X * (0.6 + 2.4 * ((1 - Math.cos((2 * Math.PI * t) / DURATION)) / 2))
  const ramp = (a, b) => Math.max(0, Math.min(1, (t - a) / (b - a)))
  const spike = 1 + 2 * (ramp(2100, 2110) - ramp(2280, 2290))
  return diurnal * spike
}
const SLO_MS = 5
// Queue-depth targets: the in-flight count at which a replica's CPU reads
// 70% (the same resting headroom as the CPU policy), and at 70% of its
// measured capacity (cheaper: the curve's CPU is concave, so 70% CPU is well
// below 70% of capacity).
const atCpu = Math.round(model.inFlightAtCpu(0.7))
const target = Math.round(model.inFlightAt(0.7 * X))
const policies = [
  { name: 'CPU 70%', metric: 'cpu', target: 0.7 },
  { name: `in flight ${atCpu}`, metric: 'inflight', target: atCpu },
  { name: `in flight ${target}`, metric: 'inflight', target },
  { name: `in flight ${atCpu}, capped at ${2 * atCpu}`, metric: 'inflight', target: atCpu, clamp: 2 * atCpu },
].map((p) => ({ ...p, min: 2, max: 40, startup, sloMs: SLO_MS }))
const runs = policies.map((p) => ({ policy: p, ...cluster(model, p, rate, DURATION) }))
for (const r of runs) log(`scale ${r.policy.name}: peak ${r.peakReplicas} replicas, ${r.replicaHours.toFixed(2)} replica-hours, dropped ${(r.droppedShare * 100).toFixed(3)}%, over ${SLO_MS} ms ${(r.slowShare * 100).toFixed(2)}%, worst window p99 ${r.worstP99.toFixed(1)} ms`)

// 4. The chart: load (in replicas' capacity) and replicas over time, and each window's p99.
function chart() {
  const W = 900
  const H = 260
  const P = 44
  const colors = ['#d62728', '#1f77b4', '#2ca02c', '#9467bd']
  const x = (t) => P + ((W - 2 * P) * t) / DURATION
  const maxR = Math.max(...runs.map((r) => r.peakReplicas), Math.ceil(rate(2200) / X))
  const y = (v) => H - P - ((H - 2 * P) * v) / maxR
  const p99Max = Math.min(1000, Math.max(...runs.flatMap((r) => r.timeline.map((p) => p.p99))))
  const y2 = (v) => 2 * H - P - ((H - 2 * P) * Math.log10(Math.max(v, 0.1) / 0.1)) / Math.log10(p99Max / 0.1)
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H}" font-family="sans-serif" font-size="11">`, `<rect width="${W}" height="${2 * H}" fill="white"/>`]
  const load = []
  for (let t = 0; t <= DURATION; t += 10) load.push(`${x(t).toFixed(1)},${y(rate(t) / X).toFixed(1)}`)
  parts.push(`<polyline fill="none" stroke="#999" stroke-dasharray="4 3" points="${load.join(' ')}"/>`)
  runs.forEach((r, i) => {
    parts.push(`<polyline fill="none" stroke="${colors[i]}" stroke-width="1.5" points="${r.timeline.map((p) => `${x(p.t).toFixed(1)},${y(p.ready).toFixed(1)}`).join(' ')}"/>`)
    parts.push(`<polyline fill="none" stroke="${colors[i]}" stroke-width="1.2" points="${r.timeline.map((p) => `${x(p.t).toFixed(1)},${y2(Math.min(p.p99, p99Max)).toFixed(1)}`).join(' ')}"/>`)
    parts.push(`<text x="${W - P - 200}" y="${P + 14 * i}" fill="${colors[i]}">${r.policy.name}: ready replicas, p99</text>`)
  })
  parts.push(`<text x="${W - P - 200}" y="${P + 14 * runs.length}" fill="#777">load, in replicas of capacity (dashed)</text>`)
  parts.push(`<line x1="${P}" y1="${H - P}" x2="${W - P}" y2="${H - P}" stroke="#333"/><line x1="${P}" y1="${P}" x2="${P}" y2="${H - P}" stroke="#333"/>`)
  for (let v = 0; v <= maxR; v += 5) parts.push(`<text x="${P - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`)
  parts.push(`<text x="${P}" y="${P - 10}">replicas (ready) and offered load</text>`)
  parts.push(`<line x1="${P}" y1="${2 * H - P}" x2="${W - P}" y2="${2 * H - P}" stroke="#333"/><line x1="${P}" y1="${H + P}" x2="${P}" y2="${2 * H - P}" stroke="#333"/>`)
  for (const v of [0.1, 1, 10, 100, 1000].filter((v) => v <= p99Max)) parts.push(`<text x="${P - 6}" y="${y2(v) + 4}" text-anchor="end">${v}</text>`)
  parts.push(`<line x1="${P}" y1="${y2(SLO_MS)}" x2="${W - P}" y2="${y2(SLO_MS)}" stroke="#999" stroke-dasharray="2 2"/><text x="${W - P}" y="${y2(SLO_MS) - 3}" text-anchor="end" fill="#777">SLO ${SLO_MS} ms</text>`)
  parts.push(`<text x="${P}" y="${H + P - 10}">worst p99 per 15 s window (ms, log scale)</text>`)
  for (let t = 0; t <= DURATION; t += 600) parts.push(`<text x="${x(t)}" y="${2 * H - P + 14}" text-anchor="middle">${t / 60} min</text>`)
  parts.push('</svg>')
  return parts.join('\n')
}
writeFileSync(join(here, 'replicas.svg'), chart() + '\n')
const summary = runs.map((r) => ({ policy: r.policy.name, peakReplicas: r.peakReplicas, replicaHours: Math.round(r.replicaHours * 100) / 100, dropped: r.dropped, droppedPct: Math.round(r.droppedShare * 1e5) / 1e3, overSloPct: Math.round(r.slowShare * 1e4) / 100, worstWindowP99: Math.round(r.worstP99 * 10) / 10 }))
writeFileSync(join(here, 'results.json'), JSON.stringify({ capacity: { method: capacity.method, machine: capacity.machine, commit: capacity.commit }, serverReadyS, startup, sloMs: SLO_MS, inflightTargets: { atCpu70: atCpu, atCapacity70: target }, check, summary, timelines: Object.fromEntries(runs.map((r) => [r.policy.name, r.timeline])) }, null, 1) + '\n')
console.log('| policy | peak replicas | replica-hours | dropped | requests over SLO | worst 15 s p99 |\n|---|---|---|---|---|---|')
for (const s of summary) console.log(`| ${s.policy} | ${s.peakReplicas} | ${s.replicaHours} | ${s.dropped} (${s.droppedPct}%) | ${s.overSloPct}% | ${s.worstWindowP99} ms |`)
