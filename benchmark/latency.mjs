// Benchmark 1: sequential latency of tiny_mlp (batch 1), one run at a time.
//
// Contenders (all on the same libonnxruntime.so.1, one intra-op thread):
//   oxinfer            Session.create(m) at its defaults (the thread rule picks 1 intra-op thread per slot for this model; inline threshold 50 µs)
//   oxinfer inline=0   the same with inlineThresholdMicros: 0     (every run hops to a worker thread)
//   onnxruntime-node   { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' }
//   ort floor (Rust)   `ort` called directly (benchmark/rust-floor), same session options as oxinfer
//
// Each JS contender is timed per call (`await session.run(feeds)`) with
// performance.now(), in blocks of BLOCK calls, the contenders interleaved
// block by block and their order rotated each round. tinybench is run
// afterwards as an independent cross-check.
import { spawnSync } from 'node:child_process'
import { randomFill } from 'node:crypto'
import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { Bench } from 'tinybench'

import { MODELS, ORT_LIB, QUICK, ROOT, checkSharedLibrary, cleanRound, loadBoth, log, now, randomFloats, rotate, round, summarize } from './util.mjs'

export const FLOOR_BIN = join(ROOT, 'target', 'release', 'oxinfer-bench-floor')

const ROUNDS = QUICK ? 2 : 5
const PER_ROUND = QUICK ? 2_000 : 10_000
const BLOCK = 500
const WARMUP = QUICK ? 1_000 : 5_000

function runFloor(iterations, warmup, rounds) {
  const p = spawnSync(FLOOR_BIN, [ORT_LIB, MODELS.tinyMlp, String(iterations), String(warmup), String(rounds)], { encoding: 'utf8' })
  if (p.status !== 0) throw new Error(`floor benchmark failed: ${p.stderr}`)
  return JSON.parse(p.stdout)
}

export async function run() {
  const { ort, ox } = await loadBoth()
  const x = randomFloats(16, 1)

  const ortSession = await ort.InferenceSession.create(MODELS.tinyMlp, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  })
  const oxSession = await ox.Session.create(MODELS.tinyMlp)
  const oxSessionAsync = await ox.Session.create(MODELS.tinyMlp, { inlineThresholdMicros: 0 })
  const library = checkSharedLibrary(ox)

  // Diagnostic: the addon's own NativeSession, driven directly (no index.ts
  // wrapper), to split oxinfer's inline-path overhead into native and JS parts.
  const binding = createRequire(import.meta.url)(join(ROOT, 'binding.js'))
  const hub = new binding.NativeHub(() => {})
  const nativeSession = await binding.createSession(
    hub,
    MODELS.tinyMlp,
    { intraOpThreads: 1, interOpThreads: 1, graphOptimization: 'all', device: 'cpu', poolSize: 1, intraOpSpinning: false, workerPriority: 'low', maxBatchSize: 0, maxQueue: 0, priorityLevels: 1, maxDelayMicros: 0, maxPaddingWaste: 0.25, zeroCopy: false, autoThreads: false },
    library.mappings[0]?.path ?? ORT_LIB,
  )
  const nativeFlat = ['x', 1, x, [1, 16]]
  const rnd = new Uint8Array(16)

  // Feeds are built once per contender and reused: this measures run(), not tensor construction.
  const ortFeeds = { x: new ort.Tensor('float32', x, [1, 16]) }
  const oxFeeds = { x: new ox.Tensor('float32', x, [1, 16]) }

  // Same answer from all three (sanity).
  const a = (await ortSession.run(ortFeeds)).y.data
  const b = (await oxSession.run(oxFeeds)).y.data
  const c = (await oxSessionAsync.run(oxFeeds)).y.data
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] || a[i] !== c[i]) throw new Error(`outputs differ: ${a} vs ${b} vs ${c}`)
  }

  const contenders = [
    { key: 'oxinfer', label: 'oxinfer (defaults)', fn: () => oxSession.run(oxFeeds) },
    { key: 'oxinferInline0', label: 'oxinfer (defaults but inlineThresholdMicros 0)', fn: () => oxSessionAsync.run(oxFeeds) },
    { key: 'ortNode', label: 'onnxruntime-node (intraOpNumThreads 1)', fn: () => ortSession.run(ortFeeds) },
    { key: 'nativeRunSync', label: 'diagnostic: addon runSync() called directly (no index.ts)', fn: () => nativeSession.runSync(nativeFlat, null), diagnostic: true },
    { key: 'uvHop', label: 'reference: libuv threadpool round trip (crypto.randomFill, 16 B)', fn: () => new Promise((r) => randomFill(rnd, r)), diagnostic: true },
  ]

  // How often oxinfer actually ran inline (pendingRuns stays 0 after run() returns).
  const inlineShare = async (session) => {
    let inline = 0
    const n = 20_000
    for (let i = 0; i < n; i++) {
      const p = session.run(oxFeeds)
      if (session.pendingRuns === 0) inline++
      await p
    }
    return inline / n
  }

  log(`latency: warm-up (${WARMUP} runs each)`)
  for (const c of contenders) for (let i = 0; i < WARMUP; i++) await c.fn()

  const samples = Object.fromEntries(contenders.map((c) => [c.key, []]))
  const roundMedians = Object.fromEntries(contenders.map((c) => [c.key, []]))
  // Median of each block, per contender, in block order: blocks with the same
  // index ran back to back, so their ratio cancels most of the machine's drift.
  const blockMedians = Object.fromEntries(contenders.map((c) => [c.key, []]))
  const roundNoise = []
  const hasFloor = existsSync(FLOOR_BIN)
  if (!hasFloor) log(`latency: ${FLOOR_BIN} is missing (run via run.mjs to build it); no floor`)
  const floorRounds = []
  for (let r = 0; r < ROUNDS; r++) {
    const order = rotate(contenders, r)
    const { result: roundData, foreignCores, discarded } = await cleanRound(`latency round ${r + 1}`, async () => {
      const roundSamples = Object.fromEntries(contenders.map((c) => [c.key, []]))
      const blocks = Object.fromEntries(contenders.map((c) => [c.key, []]))
      for (let done = 0; done < PER_ROUND; done += BLOCK) {
        for (const c of order) {
          const out = roundSamples[c.key]
          const fn = c.fn
          const block = new Array(BLOCK)
          for (let i = 0; i < BLOCK; i++) {
            const t0 = now()
            await fn()
            block[i] = (now() - t0) * 1000
          }
          for (const v of block) out.push(v)
          blocks[c.key].push(summarize(block).median)
        }
      }
      // The floor right after the JS blocks, so that it sees the same machine state.
      const floorRound = hasFloor ? runFloor(PER_ROUND, 2_000, 1) : null
      return { roundSamples, blocks, floorRound }
    })
    roundNoise.push({ foreignCores, discarded })
    if (roundData.floorRound) floorRounds.push(roundData.floorRound)
    for (const c of contenders) {
      roundMedians[c.key].push(round(summarize(roundData.roundSamples[c.key]).median, 3))
      for (const v of roundData.roundSamples[c.key]) samples[c.key].push(v)
      for (const v of roundData.blocks[c.key]) blockMedians[c.key].push(v)
    }
    log(`latency: round ${r + 1}/${ROUNDS} (other processes ${foreignCores} cores): ` + contenders.map((c) => `${c.key} ${roundMedians[c.key][r]} µs`).join(', '))
  }

  const js = {}
  for (const c of contenders) {
    const s = summarize(samples[c.key])
    js[c.key] = {
      label: c.label,
      samples: s.n,
      medianUs: round(s.median, 3),
      p99Us: round(s.p99, 3),
      meanUs: round(s.mean, 3),
      roundMediansUs: roundMedians[c.key],
    }
  }
  js.oxinfer.inlineShare = round(await inlineShare(oxSession), 4)
  js.oxinferInline0.inlineShare = round(await inlineShare(oxSessionAsync), 4)

  // tinybench cross-check, each task run twice in alternating order.
  log('latency: tinybench cross-check')
  const tb = {}
  for (let pass = 0; pass < 2; pass++) {
    const bench = new Bench({ time: QUICK ? 300 : 1500, warmupTime: 200, iterations: 1000 })
    for (const c of rotate(contenders, pass)) if (!c.diagnostic) bench.add(c.key, c.fn)
    await bench.run()
    for (const t of bench.tasks) {
      const lat = t.result?.latency
      if (!lat) continue
      ;(tb[t.name] ??= []).push({ p50Us: round(lat.p50 * 1000, 3), p99Us: round(lat.p99 * 1000, 3), meanUs: round(lat.mean * 1000, 3), samples: lat.samples?.length ?? t.result.runs })
    }
  }

  // The floor: plain `ort` from Rust in its own process, measured once per
  // round (above); here the rounds are combined.
  let floor = null
  if (floorRounds.length) {
    const comb = (k) => {
      const med = floorRounds.map((f) => f[k].medianUs)
      return { medianUs: round(summarize(med).median, 3), p99Us: round(summarize(floorRounds.map((f) => f[k].p99Us)).median, 3), roundMediansUs: med.map((v) => round(v, 3)) }
    }
    floor = { iterationsPerRound: PER_ROUND, plain: comb('plain'), runOptions: comb('runOptions') }
  }

  nativeSession.dispose(0)
  await oxSession.dispose()
  await oxSessionAsync.dispose()
  await ortSession.release()

  const paired = (a, b) => round(summarize(blockMedians[a].map((v, i) => v / blockMedians[b][i])).median, 3)
  const ratio = js.oxinfer.medianUs / js.ortNode.medianUs
  // Paired by round: oxinfer's round median minus the floor measured right after it.
  const overFloor = floor ? summarize(js.oxinfer.roundMediansUs.map((v, i) => v - floor.plain.roundMediansUs[i])).median : null
  return {
    library,
    config: { rounds: ROUNDS, perRound: PER_ROUND, block: BLOCK, warmup: WARMUP },
    roundNoise,
    js,
    tinybench: tb,
    floor,
    ratios: {
      oxinferVsOrtNode: round(ratio, 3),
      oxinferVsOrtNodePaired: paired('oxinfer', 'ortNode'),
      oxinferInline0VsOrtNodePaired: paired('oxinferInline0', 'ortNode'),
      nativeRunSyncVsOxinferPaired: paired('nativeRunSync', 'oxinfer'),
      oxinferInline0VsOrtNode: round(js.oxinferInline0.medianUs / js.ortNode.medianUs, 3),
      oxinferMinusFloorUs: overFloor === null ? null : round(overFloor, 3),
      oxinferMinusFloorUsUnpaired: floor ? round(js.oxinfer.medianUs - floor.plain.medianUs, 3) : null,
      oxinferInline0MinusFloorUs: floor ? round(summarize(js.oxinferInline0.roundMediansUs.map((v, i) => v - floor.plain.roundMediansUs[i])).median, 3) : null,
    },
    targets: {
      // On the block-paired ratio (adjacent blocks share the machine's state).
      ratioAtMost0_8: paired('oxinfer', 'ortNode') <= 0.8,
      within5UsOfFloor: overFloor === null ? null : overFloor <= 5,
    },
  }
}
