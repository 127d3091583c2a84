// Benchmark 3: throughput of bursts of 2,000 concurrent tiny_mlp runs (batch 1):
// `await Promise.all(2000 × session.run(feeds))`, timed per burst.
//
// Inputs are 2,000 distinct tensors per library, built once before timing.
// Each output is dropped as it arrives. The contenders alternate burst by
// burst (their order rotated each round); reported: median runs/s of bursts.
import { performance } from 'node:perf_hooks'

import { MODELS, QUICK, checkSharedLibrary, cleanRound, loadBoth, log, now, randomFloats, rotate, round, summarize } from './util.mjs'

const RUNS = 2000
const BURSTS = QUICK ? 5 : 60
const WARMUP_BURSTS = QUICK ? 2 : 5
const noop = () => {}

export async function run() {
  const { ort, ox } = await loadBoth()
  const ortOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' }
  const ortSession = await ort.InferenceSession.create(MODELS.tinyMlp, ortOptions)
  const ox1 = await ox.Session.create(MODELS.tinyMlp, { poolSize: 1, intraOpThreads: 1 })
  const ox2 = await ox.Session.create(MODELS.tinyMlp, { poolSize: 2, intraOpThreads: 1 })
  const ox1Async = await ox.Session.create(MODELS.tinyMlp, { poolSize: 1, intraOpThreads: 1, inlineThresholdMicros: 0 })
  const ox2Async = await ox.Session.create(MODELS.tinyMlp, { poolSize: 2, intraOpThreads: 1, inlineThresholdMicros: 0 })
  // Dynamic batching: queued single-row runs merged into batches of up to 64 rows.
  const ox1Batch = await ox.Session.create(MODELS.tinyMlp, { poolSize: 1, intraOpThreads: 1, batching: { maxBatchSize: 64 } })
  // The defaults, as users run them (issue #12 measures targets here).
  const oxDefault = await ox.Session.create(MODELS.tinyMlp)
  const oxDefaultBatch = await ox.Session.create(MODELS.tinyMlp, { batching: { maxBatchSize: 64 } })
  const library = checkSharedLibrary(ox)

  const data = Array.from({ length: RUNS }, (_, i) => randomFloats(16, i + 1))
  const oxFeeds = data.map((x) => ({ x: new ox.Tensor('float32', x, [1, 16]) }))
  const ortFeeds = data.map((x) => ({ x: new ort.Tensor('float32', x, [1, 16]) }))

  const burstOf = (session, feeds) => () => Promise.all(feeds.map((f) => session.run(f).then(noop)))
  const contenders = [
    { key: 'oxinferDefault', label: `oxinfer defaults (poolSize ${oxDefault.poolSize} chosen)`, burst: burstOf(oxDefault, oxFeeds) },
    { key: 'oxinferDefaultBatch64', label: 'oxinfer defaults, batching maxBatchSize 64', burst: burstOf(oxDefaultBatch, oxFeeds) },
    { key: 'oxinferPool1', label: 'oxinfer poolSize 1, intraOpThreads 1', burst: burstOf(ox1, oxFeeds) },
    { key: 'oxinferPool2', label: 'oxinfer poolSize 2, intraOpThreads 1', burst: burstOf(ox2, oxFeeds) },
    { key: 'oxinferPool1Inline0', label: 'oxinfer poolSize 1, inlineThresholdMicros 0', burst: burstOf(ox1Async, oxFeeds) },
    { key: 'oxinferPool2Inline0', label: 'oxinfer poolSize 2, inlineThresholdMicros 0', burst: burstOf(ox2Async, oxFeeds) },
    { key: 'oxinferPool1Batch64', label: 'oxinfer poolSize 1, batching maxBatchSize 64', burst: burstOf(ox1Batch, oxFeeds) },
    { key: 'ortNode', label: 'onnxruntime-node intraOpNumThreads 1', burst: burstOf(ortSession, ortFeeds) },
  ]

  log(`throughput: warm-up (${WARMUP_BURSTS} bursts each)`)
  for (let i = 0; i < WARMUP_BURSTS; i++) for (const c of contenders) await c.burst()

  const rates = Object.fromEntries(contenders.map((c) => [c.key, []]))
  const roundNoise = []
  const extra = Object.fromEntries(contenders.map((c) => [c.key, []]))
  for (let b = 0; b < BURSTS; b++) {
    const { result, foreignCores, discarded } = await cleanRound(`throughput round ${b + 1}`, async () => {
      const r = {}
      for (const c of rotate(contenders, b)) {
        const e0 = performance.eventLoopUtilization()
        const c0 = process.cpuUsage()
        const t0 = now()
        await c.burst()
        const dt = now() - t0
        const cpu = process.cpuUsage(c0)
        const elu = performance.eventLoopUtilization(e0)
        r[c.key] = {
          rate: (RUNS * 1000) / dt,
          // Event-loop utilisation: the share of the burst the JS thread was busy.
          elu: elu.utilization,
          jsUsPerRun: (elu.active * 1000) / RUNS,
          // CPU of the whole process (all threads) per run.
          cpuUsPerRun: (cpu.user + cpu.system) / RUNS,
        }
      }
      return r
    })
    roundNoise.push({ foreignCores, discarded })
    for (const c of contenders) {
      rates[c.key].push(result[c.key].rate)
      extra[c.key].push(result[c.key])
    }
  }

  await Promise.all([oxDefault.dispose(), oxDefaultBatch.dispose(), ox1.dispose(), ox2.dispose(), ox1Async.dispose(), ox2Async.dispose(), ox1Batch.dispose(), ortSession.release()])

  const ortMedian = summarize(rates.ortNode).median
  const out = contenders.map((c) => {
    const s = summarize(rates[c.key])
    const sortedRates = Float64Array.from(rates[c.key]).sort()
    const q = (p) => sortedRates[Math.min(sortedRates.length - 1, Math.floor(p * (sortedRates.length - 1)))]
    log(`throughput: ${c.key}: median ${round(s.median, 0)} runs/s`)
    // Ratio to the onnxruntime-node burst of the same round (same noise), median over rounds.
    const paired = rates[c.key].map((r, i) => r / rates.ortNode[i])
    return {
      key: c.key,
      label: c.label,
      pairedVsOrtNode: round(summarize(paired).median, 3),
      eventLoopUtilization: round(summarize(extra[c.key].map((x) => x.elu)).median, 3),
      jsThreadUsPerRun: round(summarize(extra[c.key].map((x) => x.jsUsPerRun)).median, 2),
      cpuUsPerRun: round(summarize(extra[c.key].map((x) => x.cpuUsPerRun)).median, 2),
      runsPerSec: { median: round(s.median, 0), p10: round(q(0.1), 0), p90: round(q(0.9), 0), all: rates[c.key].map((r) => round(r, 0)) },
      vsOrtNode: round(s.median / ortMedian, 3),
    }
  })
  // Targets are judged at the defaults (issue #12): unbatched ≥ 2×, batched ≥ 5×.
  const byKey = (k) => out.find((c) => c.key === k)
  const best = byKey('oxinferDefault').vsOrtNode
  const bestPaired = byKey('oxinferDefault').pairedVsOrtNode
  const batched = byKey('oxinferDefaultBatch64')
  return {
    batchedRatio: batched?.vsOrtNode,
    batchedPairedRatio: batched?.pairedVsOrtNode,
    batchedAtLeast5x: batched?.vsOrtNode >= 5,
    library,
    config: { runs: RUNS, bursts: BURSTS, warmupBursts: WARMUP_BURSTS },
    roundNoise,
    contenders: out,
    bestRatio: best,
    bestPairedRatio: bestPaired,
    targets: { atLeast2x: best >= 2, pairedAtLeast2x: bestPaired >= 2 },
  }
}
