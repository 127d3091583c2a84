// Benchmark 8 (issue #5): dynamic batching on tiny_mlp (x float32 [batch,16] -> y [batch,2]).
//
// Part 1, bursts: `Promise.all` of 2,000 concurrent single-row requests.
//   Contenders (all on the same libonnxruntime.so.1, one intra-op thread):
//     oxinfer batching { maxBatchSize: 64 }, poolSize 1
//     oxinfer batching { maxBatchSize: 256 }, poolSize 1
//     oxinfer batching { maxBatchSize: 64 }, poolSize 2
//     oxinfer without batching, poolSize 1
//     onnxruntime-node { intraOpNumThreads: 1, executionMode: 'sequential' }
//     JS-only floor: the same per-request JS work without inference: an oxinfer
//       Tensor and feeds object per request, a promise resolved on a later
//       microtask with a result object holding a fresh [1,2] float32 Tensor.
//   Every request builds its input Tensor inside the timed burst (from one of
//   2,000 Float32Arrays made beforehand), as a server would per request.
//   Each round runs, for every contender (order rotated per round), one plain
//   burst (throughput, event-loop utilisation, CPU) and one burst in which
//   every request is timed from its call to its settle (latency p50/p99).
//
// Part 2, closed loop: N callers, each sending its next request when its last
//   has returned, N = 1 … 256, ~1.5 s per N and contender (3 segments of
//   0.5 s, each after a 150 ms warm-up, the contenders interleaved segment by
//   segment). Contenders: batching { maxBatchSize: 32, maxDelayMicros: 500 }
//   (which turns inlining off), the same with inlining asked back
//   (inlineThresholdMicros 50), the same with maxDelayMicros 0, and no
//   batching. Throughput and p99 of the
//   call-to-settle latency per N. Writes benchmark/batching-closed-loop.svg.
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'

import { BENCH_DIR, MODELS, ORT_LIB, QUICK, ROOT, checkSharedLibrary, cleanRound, loadBoth, log, now, randomFloats, rotate, round, sorted, pct, summarize } from './util.mjs'

const RUNS = 2000
const BURSTS = QUICK ? 3 : 15
const WARMUP_BURSTS = QUICK ? 1 : 4
const CALLERS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
const SEGMENTS = QUICK ? 1 : 3
const SEGMENT_MS = QUICK ? 250 : 500
const SEGMENT_WARM_MS = QUICK ? 50 : 150
export const SVG_FILE = join(BENCH_DIR, 'batching-closed-loop.svg')

const noop = () => {}

export async function run() {
  const { ort, ox } = await loadBoth()
  const { Tensor } = ox
  const ortOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' }
  const ortSession = await ort.InferenceSession.create(MODELS.tinyMlp, ortOptions)
  const create = (o) => ox.Session.create(MODELS.tinyMlp, { intraOpThreads: 1, ...o })
  const sBatch64 = await create({ batching: { maxBatchSize: 64 } })
  const sBatch256 = await create({ batching: { maxBatchSize: 256 } })
  const sBatch64Pool2 = await create({ poolSize: 2, batching: { maxBatchSize: 64 } })
  const sBatch64Inline0 = await create({ inlineThresholdMicros: 0, batching: { maxBatchSize: 64 } })
  const sPlain = await create({})
  const sLoop500 = await create({ batching: { maxBatchSize: 32, maxDelayMicros: 500 } })
  const sLoop0 = await create({ batching: { maxBatchSize: 32 } })
  const sLoop500Inline50 = await create({ inlineThresholdMicros: 50, batching: { maxBatchSize: 32, maxDelayMicros: 500 } })
  const sLoopPlain = await create({})
  const library = checkSharedLibrary(ox)

  const data = Array.from({ length: RUNS }, (_, i) => randomFloats(16, i + 1))

  // Correctness: every batched result must equal onnxruntime-node's for the same row.
  const agreement = await checkAgreement({ ort, Tensor, data, ortSession, sessions: { sBatch64, sBatch256, sBatch64Pool2, sLoop500 } })
  log(`batching: results agree with onnxruntime-node: max |diff| ${agreement.maxAbsDiff}`)

  // --- Part 1: bursts ------------------------------------------------------
  const oxRun = (s) => (i) => s.run({ x: new Tensor('float32', data[i], [1, 16]) })
  const ortRun = (i) => ortSession.run({ x: new ort.Tensor('float32', data[i], [1, 16]) })
  const floorRun = (i) =>
    Promise.resolve({ x: new Tensor('float32', data[i], [1, 16]) }).then((feeds) => {
      const y = new Float32Array(2)
      y[0] = feeds.x.data[0]
      return { y: new Tensor('float32', y, [1, 2]) }
    })
  const contenders = [
    { key: 'batch64', label: 'oxinfer batching maxBatchSize 64', call: oxRun(sBatch64) },
    { key: 'batch256', label: 'oxinfer batching maxBatchSize 256', call: oxRun(sBatch256) },
    { key: 'batch64Pool2', label: 'oxinfer batching maxBatchSize 64, poolSize 2', call: oxRun(sBatch64Pool2) },
    { key: 'batch64Inline0', label: 'oxinfer batching maxBatchSize 64, inlineThresholdMicros 0', call: oxRun(sBatch64Inline0) },
    { key: 'plain', label: 'oxinfer without batching', call: oxRun(sPlain) },
    { key: 'ortNode', label: 'onnxruntime-node intraOpNumThreads 1', call: ortRun },
    { key: 'jsFloor', label: 'JS-only floor (tensors + promises, no inference)', call: floorRun },
  ]
  const plainBurst = (call) => {
    const ps = new Array(RUNS)
    for (let i = 0; i < RUNS; i++) ps[i] = call(i).then(noop)
    return Promise.all(ps)
  }
  const timedBurst = async (call) => {
    const lat = new Float64Array(RUNS)
    const ps = new Array(RUNS)
    for (let i = 0; i < RUNS; i++) {
      const t = now()
      ps[i] = call(i).then(() => {
        lat[i] = now() - t
      })
    }
    await Promise.all(ps)
    return lat
  }

  log(`batching: bursts: warm-up (${WARMUP_BURSTS} of each kind per contender)`)
  for (let w = 0; w < WARMUP_BURSTS; w++) {
    for (const c of contenders) {
      await plainBurst(c.call)
      await timedBurst(c.call)
    }
  }
  const per = Object.fromEntries(contenders.map((c) => [c.key, []]))
  const roundNoise = []
  for (let b = 0; b < BURSTS; b++) {
    const { result, foreignCores, discarded } = await cleanRound(`batching burst round ${b + 1}`, async () => {
      const r = {}
      for (const c of rotate(contenders, b)) {
        const e0 = performance.eventLoopUtilization()
        const c0 = process.cpuUsage()
        const t0 = now()
        await plainBurst(c.call)
        const dt = now() - t0
        const cpu = process.cpuUsage(c0)
        const elu = performance.eventLoopUtilization(e0)
        const lat = sorted(await timedBurst(c.call))
        r[c.key] = {
          rate: (RUNS * 1000) / dt,
          usPerRequest: (dt * 1000) / RUNS,
          elu: elu.utilization,
          jsUsPerRequest: (elu.active * 1000) / RUNS,
          cpuUsPerRequest: (cpu.user + cpu.system) / RUNS,
          p50Ms: pct(lat, 0.5),
          p99Ms: pct(lat, 0.99),
          maxMs: lat[lat.length - 1],
        }
      }
      return r
    })
    roundNoise.push({ foreignCores, discarded })
    for (const c of contenders) per[c.key].push(result[c.key])
    log(`batching: burst round ${b + 1}/${BURSTS}: ${contenders.map((c) => `${c.key} ${round(result[c.key].rate, 0)}/s`).join(', ')}`)
  }

  const med = (key, f) => summarize(per[key].map(f)).median
  const burstOut = contenders.map((c) => {
    const rates = per[c.key].map((x) => x.rate)
    const pairedOrt = per[c.key].map((x, i) => x.rate / per.ortNode[i].rate)
    const pairedFloor = per[c.key].map((x, i) => x.usPerRequest / per.jsFloor[i].usPerRequest)
    return {
      key: c.key,
      label: c.label,
      runsPerSec: { median: round(med(c.key, (x) => x.rate), 0), p10: round(pct(sorted(rates), 0.1), 0), p90: round(pct(sorted(rates), 0.9), 0), all: rates.map((r) => round(r, 0)) },
      usPerRequest: round(med(c.key, (x) => x.usPerRequest), 2),
      jsThreadUsPerRequest: round(med(c.key, (x) => x.jsUsPerRequest), 2),
      cpuUsPerRequest: round(med(c.key, (x) => x.cpuUsPerRequest), 2),
      eventLoopUtilization: round(med(c.key, (x) => x.elu), 3),
      latency: { p50Ms: round(med(c.key, (x) => x.p50Ms), 3), p99Ms: round(med(c.key, (x) => x.p99Ms), 3), maxMs: round(med(c.key, (x) => x.maxMs), 3) },
      vsOrtNode: round(med(c.key, (x) => x.rate) / med('ortNode', (x) => x.rate), 3),
      pairedVsOrtNode: round(summarize(pairedOrt).median, 3),
      vsFloorCost: round(med(c.key, (x) => x.usPerRequest) / med('jsFloor', (x) => x.usPerRequest), 3),
      pairedVsFloorCost: round(summarize(pairedFloor).median, 3),
    }
  })
  for (const c of burstOut) log(`batching: ${c.key}: ${c.runsPerSec.median} runs/s, ${c.usPerRequest} µs/request, p50 ${c.latency.p50Ms} ms, p99 ${c.latency.p99Ms} ms`)
  await Promise.all([sBatch64.dispose(), sBatch256.dispose(), sBatch64Pool2.dispose(), sBatch64Inline0.dispose(), sPlain.dispose()])

  const delivery = await deliveryDiagnostic(library.mappings[0]?.path ?? ORT_LIB)

  // --- Part 2: closed loop -------------------------------------------------
  const loopContenders = [
    { key: 'batch32Delay500', label: 'oxinfer batching maxBatchSize 32, maxDelayMicros 500', call: oxRun(sLoop500) },
    { key: 'batch32Delay500Inline50', label: 'oxinfer batching maxBatchSize 32, maxDelayMicros 500, inlineThresholdMicros 50', call: oxRun(sLoop500Inline50) },
    { key: 'batch32Delay0', label: 'oxinfer batching maxBatchSize 32, maxDelayMicros 0', call: oxRun(sLoop0) },
    { key: 'plain', label: 'oxinfer without batching', call: oxRun(sLoopPlain) },
  ]
  log(`batching: closed loop warm-up`)
  for (const c of loopContenders) await closedLoop(c.call, 32, 50, 200)
  const cells = Object.fromEntries(loopContenders.map((c) => [c.key, Object.fromEntries(CALLERS.map((n) => [n, []]))]))
  const loopNoise = []
  for (let s = 0; s < SEGMENTS; s++) {
    for (const n of CALLERS) {
      const { result, foreignCores, discarded } = await cleanRound(`batching closed loop N=${n} segment ${s + 1}`, async () => {
        const r = {}
        for (const c of rotate(loopContenders, s + n)) r[c.key] = await closedLoop(c.call, n, SEGMENT_WARM_MS, SEGMENT_MS)
        return r
      })
      loopNoise.push({ n, segment: s + 1, foreignCores, discarded })
      for (const c of loopContenders) cells[c.key][n].push(result[c.key])
      log(`batching: closed loop segment ${s + 1}/${SEGMENTS} N=${n}: ${loopContenders.map((c) => `${c.key} ${round(result[c.key].count / result[c.key].seconds, 0)}/s p99 ${round(pct(sorted(result[c.key].lat), 0.99), 3)} ms`).join(', ')}`)
    }
  }
  const closedOut = loopContenders.map((c) => ({
    key: c.key,
    label: c.label,
    points: CALLERS.map((n) => {
      const segs = cells[c.key][n]
      const count = segs.reduce((a, x) => a + x.count, 0)
      const seconds = segs.reduce((a, x) => a + x.seconds, 0)
      const lat = sorted(segs.flatMap((x) => Array.from(x.lat)))
      const cpu = segs.reduce((a, x) => a + x.cpuUs, 0)
      const elu = segs.reduce((a, x) => a + x.eluActiveMs, 0)
      return {
        n,
        runsPerSec: round(count / seconds, 0),
        segmentRunsPerSec: segs.map((x) => round(x.count / x.seconds, 0)),
        requests: count,
        p50Ms: round(pct(lat, 0.5), 3),
        p99Ms: round(pct(lat, 0.99), 3),
        maxMs: round(lat[lat.length - 1], 3),
        segmentP99Ms: segs.map((x) => round(pct(sorted(x.lat), 0.99), 3)),
        cpuUsPerRequest: round(cpu / count, 2),
        jsThreadUsPerRequest: round((elu * 1000) / count, 2),
      }
    }),
  }))
  await Promise.all([sLoop500.dispose(), sLoop500Inline50.dispose(), sLoop0.dispose(), sLoopPlain.dispose(), ortSession.release()])

  const byKey = (k) => burstOut.find((c) => c.key === k)
  const batched = ['batch64', 'batch256', 'batch64Pool2', 'batch64Inline0'].map(byKey)
  const best = batched.reduce((a, c) => (c.runsPerSec.median > a.runsPerSec.median ? c : a))
  const loop500 = closedOut[0].points
  const at32 = loop500.find((p) => p.n === 32)
  const upTo32 = loop500.filter((p) => p.n <= 32)
  const rising = upTo32.every((p, i) => i === 0 || p.runsPerSec > upTo32[i - 1].runsPerSec)
  const result = {
    library,
    agreement,
    config: {
      runs: RUNS,
      bursts: BURSTS,
      warmupBursts: WARMUP_BURSTS,
      callers: CALLERS,
      segments: SEGMENTS,
      segmentMs: SEGMENT_MS,
      segmentWarmMs: SEGMENT_WARM_MS,
    },
    bursts: { roundNoise, contenders: burstOut },
    delivery,
    closedLoop: { noise: loopNoise, contenders: closedOut },
    targets: {
      bestBatched: best.key,
      bestVsOrtNode: best.vsOrtNode,
      bestPairedVsOrtNode: best.pairedVsOrtNode,
      atLeast5xOrtNode: best.vsOrtNode >= 5,
      bestVsFloorCost: best.vsFloorCost,
      bestPairedVsFloorCost: best.pairedVsFloorCost,
      within2xFloor: best.vsFloorCost <= 2,
      p99AtN32Ms: at32.p99Ms,
      p99AtMost2MsAtN32: at32.p99Ms <= 2,
      throughputRisingToBatchSize: rising,
    },
  }
  if (QUICK) log(`batching: quick mode, not writing ${SVG_FILE}`)
  else {
    writeFileSync(SVG_FILE, renderSvg(result))
    log(`batching: wrote ${SVG_FILE}`)
  }
  return result
}

async function checkAgreement({ ort, Tensor, data, ortSession, sessions }) {
  const n = 512
  const ref = []
  for (let i = 0; i < n; i++) ref.push((await ortSession.run({ x: new ort.Tensor('float32', data[i], [1, 16]) })).y.data)
  let maxAbsDiff = 0
  const shapes = new Set()
  for (const s of Object.values(sessions)) {
    const outs = await Promise.all(Array.from({ length: n }, (_, i) => s.run({ x: new Tensor('float32', data[i], [1, 16]) })))
    outs.forEach((o, i) => {
      shapes.add(o.y.dims.join('x'))
      for (let k = 0; k < 2; k++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(o.y.data[k] - ref[i][k]))
    })
  }
  if (maxAbsDiff > 1e-5 || shapes.size !== 1 || !shapes.has('1x2')) throw new Error(`batched results differ from onnxruntime-node: max |diff| ${maxAbsDiff}, shapes ${[...shapes]}`)
  return { requests: n, sessions: Object.keys(sessions).length, maxAbsDiff, outputShapes: [...shapes] }
}

/**
 * Diagnostic: how merged batches form and come back, driving the addon's
 * NativeSession/NativeHub directly. A burst of 2,000 single-row runs is handed
 * over in one `submitMany` call (as `Session.run` does per turn); every
 * completion's timing says how many requests its batch merged, so the number
 * of batches is the sum of 1/batchRequests.
 */
async function deliveryDiagnostic(lib) {
  const binding = createRequire(import.meta.url)(join(ROOT, 'binding.js'))
  let calls = []
  let remaining = 0
  let done = noop
  /** batchRequests from a payload's header (see crates/oxinfer-node/src/payload.rs). */
  const batchRequests = (payload, shared) => {
    const [buf, off] = typeof payload === 'number' ? [shared, payload] : [payload[1], 0]
    const h = new Float64Array(buf, off, (buf.byteLength - off) >> 3)
    let i = 2
    for (let k = 0; k < h[1]; k++) i += 4 + h[i + 3]
    return h[i + 5]
  }
  const hub = new binding.NativeHub((ev, shared) => {
    const sizes = []
    for (let i = 0; i < ev.length; i += 2) {
      const p = ev[i + 1]
      // Strings are errors; undefined ends a dispose.
      if (typeof p === 'number' || Array.isArray(p)) sizes.push(batchRequests(p, shared))
    }
    calls.push(sizes)
    remaining -= ev.length / 2
    if (remaining <= 0) done()
  })
  hub.ref()
  const x = randomFloats(16, 7)
  const out = []
  let id = 1
  for (const [maxBatchSize, poolSize] of [[64, 1], [256, 1], [64, 2]]) {
    const s = await binding.createSession(hub, MODELS.tinyMlp, { intraOpThreads: 1, interOpThreads: 1, graphOptimization: 'all', device: 'cpu', poolSize, intraOpSpinning: false, workerPriority: 'low', maxBatchSize, maxQueue: 0, priorityLevels: 1, maxDelayMicros: 0, maxPaddingWaste: 0.25, zeroCopy: false, autoThreads: false }, lib)
    const bursts = []
    for (let b = 0; b < (QUICK ? 2 : 8); b++) {
      calls = []
      remaining = RUNS
      const finished = new Promise((r) => (done = r))
      const list = []
      for (let i = 0; i < RUNS; i++) list.push(id++, ['x', 1, x, [1, 16]], null, 0, undefined)
      const t0 = now()
      // Refused runs would come back through the hub as error strings.
      s.submitMany(list)
      const submitUs = ((now() - t0) * 1000) / RUNS
      await finished
      if (calls.flat().length !== RUNS) throw new Error(`submitMany: ${RUNS - calls.flat().length} runs refused`)
      const ms = now() - t0
      const sizes = calls.flat()
      const batches = sizes.reduce((a, n) => a + 1 / n, 0)
      bursts.push({ ms: round(ms, 2), submitUsPerRequest: round(submitUs, 2), hubCalls: calls.length, batches: Math.round(batches), meanRowsPerBatch: round(RUNS / batches, 1), largestBatch: Math.max(...sizes), largestHubCall: Math.max(...calls.map((m) => m.length)) })
    }
    remaining = 1
    await new Promise((r) => {
      done = r
      s.dispose(id++)
    })
    const m = (k) => summarize(bursts.map((b) => b[k])).median
    out.push({ maxBatchSize, poolSize, median: { ms: m('ms'), submitUsPerRequest: m('submitUsPerRequest'), hubCalls: m('hubCalls'), batches: m('batches'), meanRowsPerBatch: m('meanRowsPerBatch') }, bursts })
    log(`batching: delivery diagnostic maxBatchSize ${maxBatchSize} poolSize ${poolSize}: hub calls per burst ${bursts.map((b) => b.hubCalls).join(' ')}, batches ${bursts.map((b) => b.batches).join(' ')}, submit µs/run ${bursts.map((b) => b.submitUsPerRequest).join(' ')}`)
  }
  hub.unref()
  return out
}

/**
 * N callers, each sending its next request when its last settles. After
 * `warmMs`, completions are counted for `ms`; latencies (call to settle, ms)
 * of the requests settling in that window are kept.
 */
export async function closedLoop(call, n, warmMs, ms) {
  let stop = false
  let measuring = false
  let count = 0
  let lat = new Float64Array(1 << 16)
  const keep = (dt) => {
    if (count === lat.length) {
      const bigger = new Float64Array(lat.length * 2)
      bigger.set(lat)
      lat = bigger
    }
    lat[count++] = dt
  }
  let i = 0
  const caller = async () => {
    while (!stop) {
      const k = i++ % RUNS
      const t = now()
      await call(k)
      if (measuring) keep(now() - t)
    }
  }
  const callers = Array.from({ length: n }, caller)
  await new Promise((r) => setTimeout(r, warmMs))
  const e0 = performance.eventLoopUtilization()
  const c0 = process.cpuUsage()
  const t0 = now()
  measuring = true
  await new Promise((r) => setTimeout(r, ms))
  measuring = false
  const seconds = (now() - t0) / 1000
  const cpu = process.cpuUsage(c0)
  const elu = performance.eventLoopUtilization(e0)
  stop = true
  await Promise.all(callers)
  return { count, seconds, lat: lat.subarray(0, count), cpuUs: cpu.user + cpu.system, eluActiveMs: elu.active }
}

// --- The chart ---------------------------------------------------------------

const COLORS = { batch32Delay500: '#d62728', batch32Delay500Inline50: '#ff7f0e', batch32Delay0: '#1f77b4', plain: '#7f7f7f' }
const DASH = { batch32Delay500: '', batch32Delay500Inline50: '10 3 2 3', batch32Delay0: '6 3', plain: '2 3' }

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

function niceMax(v) {
  const e = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * e >= v) return m * e
  return 10 * e
}

/** Two panels sharing a log2 x-axis (callers): throughput (linear) and p99 latency (log10). */
export function renderSvg(result) {
  const series = result.closedLoop.contenders
  const ns = result.config.callers
  const W = 860
  const left = 80
  const right = 260
  const pw = W - left - right
  const ph = 220
  const top1 = 50
  const top2 = top1 + ph + 70
  const H = top2 + ph + 60
  const x = (n) => left + (pw * (Math.log2(n) - Math.log2(ns[0]))) / (Math.log2(ns[ns.length - 1]) - Math.log2(ns[0]))
  const maxRate = niceMax(Math.max(...series.flatMap((s) => s.points.map((p) => p.runsPerSec))))
  const y1 = (v) => top1 + ph - (ph * v) / maxRate
  const p99s = series.flatMap((s) => s.points.map((p) => p.p99Ms)).filter((v) => v > 0)
  const lo = 10 ** Math.floor(Math.log10(Math.min(...p99s, 2)))
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...p99s, 2)))
  const y2 = (v) => top2 + ph - (ph * (Math.log10(v) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo))
  const o = []
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`)
  o.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  o.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">oxinfer dynamic batching, closed loop of N callers (tiny_mlp, 1 row per request)</text>`)
  const panel = (top, title) => {
    o.push(`<text x="${left}" y="${top - 10}" font-size="13" font-weight="bold">${esc(title)}</text>`)
    o.push(`<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`)
    for (const n of ns) {
      o.push(`<line x1="${x(n)}" y1="${top}" x2="${x(n)}" y2="${top + ph}" stroke="#eee"/>`)
      o.push(`<text x="${x(n)}" y="${top + ph + 16}" text-anchor="middle">${n}</text>`)
    }
    o.push(`<text x="${left + pw / 2}" y="${top + ph + 34}" text-anchor="middle">callers N (log2 scale)</text>`)
  }
  panel(top1, 'Throughput (requests/s)')
  for (let k = 0; k <= 5; k++) {
    const v = (maxRate * k) / 5
    o.push(`<line x1="${left}" y1="${y1(v)}" x2="${left + pw}" y2="${y1(v)}" stroke="#eee"/>`)
    o.push(`<text x="${left - 6}" y="${y1(v) + 4}" text-anchor="end">${round(v / 1000, 1)}k</text>`)
  }
  panel(top2, 'p99 latency, call to settle (ms, log scale)')
  for (let e = Math.log10(lo); e <= Math.log10(hi) + 1e-9; e++) {
    const v = 10 ** e
    o.push(`<line x1="${left}" y1="${y2(v)}" x2="${left + pw}" y2="${y2(v)}" stroke="#ddd"/>`)
    o.push(`<text x="${left - 6}" y="${y2(v) + 4}" text-anchor="end">${v >= 1 ? v : round(v, 3)}</text>`)
  }
  o.push(`<line x1="${left}" y1="${y2(2)}" x2="${left + pw}" y2="${y2(2)}" stroke="#2ca02c" stroke-dasharray="8 4"/>`)
  o.push(`<text x="${left + 6}" y="${y2(2) - 5}" fill="#2ca02c">target: p99 ≤ 2 ms at N = 32</text>`)
  o.push(`<line x1="${x(32)}" y1="${top1}" x2="${x(32)}" y2="${top2 + ph}" stroke="#2ca02c" stroke-opacity="0.35"/>`)
  for (const s of series) {
    const c = COLORS[s.key] ?? '#000'
    const d = DASH[s.key] ?? ''
    const line = (f) => s.points.map((p, i) => `${i ? 'L' : 'M'}${round(x(p.n), 1)},${round(f(p), 1)}`).join(' ')
    o.push(`<path d="${line((p) => y1(p.runsPerSec))}" fill="none" stroke="${c}" stroke-width="2" stroke-dasharray="${d}"/>`)
    o.push(`<path d="${line((p) => y2(p.p99Ms))}" fill="none" stroke="${c}" stroke-width="2" stroke-dasharray="${d}"/>`)
    for (const p of s.points) {
      o.push(`<circle cx="${round(x(p.n), 1)}" cy="${round(y1(p.runsPerSec), 1)}" r="3" fill="${c}"><title>${esc(s.label)}: N=${p.n}, ${p.runsPerSec} req/s</title></circle>`)
      o.push(`<circle cx="${round(x(p.n), 1)}" cy="${round(y2(p.p99Ms), 1)}" r="3" fill="${c}"><title>${esc(s.label)}: N=${p.n}, p99 ${p.p99Ms} ms</title></circle>`)
    }
  }
  const lx = left + pw + 15
  series.forEach((s, k) => {
    const ly = top1 + 20 + k * 48
    o.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 26}" y2="${ly}" stroke="${COLORS[s.key] ?? '#000'}" stroke-width="2" stroke-dasharray="${DASH[s.key] ?? ''}"/>`)
    const words = s.label.replace(/^oxinfer /, '').split(', ')
    words.forEach((w, j) => o.push(`<text x="${lx + 32}" y="${ly + 4 + j * 14}">${esc(w)}</text>`))
  })
  const m = result.library
  o.push(`<text x="${left}" y="${H - 12}" fill="#555">poolSize 1, intraOpThreads 1; ONNX Runtime ${esc(m?.onnxruntimeVersion ?? '')}; ${result.config.segments} × ${result.config.segmentMs} ms per point; 2 vCPUs (shared VM)</text>`)
  o.push('</svg>')
  return o.join('\n') + '\n'
}
