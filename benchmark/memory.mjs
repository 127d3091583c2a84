// Benchmark 4: RSS growth of oxinfer over many runs and over many
// create/dispose cycles of tiny_mlp. Needs node --expose-gc (run.mjs passes it).
//
// A. RUNS runs (default 1,000,000; OXINFER_BENCH_MEMORY_RUNS to change) in
//    concurrent chunks of CHUNK, each run with a fresh input Float32Array and
//    Tensor; outputs dropped. RSS after a warm-up (+ forced GC) vs after the
//    runs (+ forced GC), sampled every 10% to show the trend.
// B. CYCLES create -> run once -> dispose cycles (default 1,000), likewise.
import { MODELS, MB, QUICK, loadOxinfer, log, memory, randomFloats, round, settleGc } from './util.mjs'

const RUNS = Number(process.env.OXINFER_BENCH_MEMORY_RUNS) || (QUICK ? 100_000 : 1_000_000)
const CHUNK = 1000
const CYCLES = Number(process.env.OXINFER_BENCH_MEMORY_CYCLES) || (QUICK ? 200 : 1000)
const noop = () => {}

const snap = (m) => ({ rssMB: round(m.rss / MB, 1), heapUsedMB: round(m.heapUsed / MB, 1), externalMB: round(m.external / MB, 1), arrayBuffersMB: round(m.arrayBuffers / MB, 1) })

async function measured() {
  await settleGc()
  return memory()
}

async function runsBenchmark(ox) {
  const session = await ox.Session.create(MODELS.tinyMlp, { intraOpThreads: 1 })
  const base = randomFloats(16, 7)
  const chunk = () => {
    const ps = new Array(CHUNK)
    for (let i = 0; i < CHUNK; i++) {
      const x = new Float32Array(base)
      x[0] = i
      ps[i] = session.run({ x: new ox.Tensor('float32', x, [1, 16]) }).then(noop)
    }
    return Promise.all(ps)
  }
  // Warm-up: 50,000 runs so that allocator pools and V8's heap reach their working size.
  const warm = Math.min(50_000, RUNS)
  for (let done = 0; done < warm; done += CHUNK) await chunk()
  const before = await measured()
  const trend = [{ runs: 0, rssMB: round(before.rss / MB, 1) }]
  const every = Math.max(CHUNK, Math.floor(RUNS / 10 / CHUNK) * CHUNK)
  const t0 = performance.now()
  for (let done = 0; done < RUNS; ) {
    await chunk()
    done += CHUNK
    if (done % every === 0 && done < RUNS) {
      const m = await measured()
      trend.push({ runs: done, rssMB: round(m.rss / MB, 1) })
      log(`memory: ${done} runs, RSS ${round(m.rss / MB, 1)} MB`)
    }
  }
  const seconds = (performance.now() - t0) / 1000
  const after = await measured()
  trend.push({ runs: RUNS, rssMB: round(after.rss / MB, 1) })
  await session.dispose()
  return {
    count: RUNS,
    chunk: CHUNK,
    warmupRuns: warm,
    seconds: round(seconds, 1),
    before: snap(before),
    after: snap(after),
    growthMB: round((after.rss - before.rss) / MB, 1),
    trend,
  }
}

async function cyclesBenchmark(ox) {
  const feeds = { x: new ox.Tensor('float32', randomFloats(16, 8), [1, 16]) }
  const cycle = async () => {
    const s = await ox.Session.create(MODELS.tinyMlp, { intraOpThreads: 1 })
    await s.run(feeds).then(noop)
    await s.dispose()
  }
  const warm = Math.min(50, CYCLES)
  for (let i = 0; i < warm; i++) await cycle()
  const before = await measured()
  const trend = [{ cycles: 0, rssMB: round(before.rss / MB, 1) }]
  const every = Math.max(1, Math.floor(CYCLES / 10))
  const t0 = performance.now()
  for (let i = 1; i <= CYCLES; i++) {
    await cycle()
    if (i % every === 0 && i < CYCLES) {
      const m = await measured()
      trend.push({ cycles: i, rssMB: round(m.rss / MB, 1) })
      log(`memory: ${i} cycles, RSS ${round(m.rss / MB, 1)} MB`)
    }
  }
  const seconds = (performance.now() - t0) / 1000
  const after = await measured()
  trend.push({ cycles: CYCLES, rssMB: round(after.rss / MB, 1) })
  return {
    count: CYCLES,
    warmupCycles: warm,
    seconds: round(seconds, 1),
    before: snap(before),
    after: snap(after),
    growthMB: round((after.rss - before.rss) / MB, 1),
    trend,
  }
}

export async function run() {
  const ox = loadOxinfer()
  const start = await measured()
  log(`memory: ${RUNS} runs in chunks of ${CHUNK}`)
  const runs = await runsBenchmark(ox)
  log(`memory: runs: RSS ${runs.before.rssMB} -> ${runs.after.rssMB} MB`)
  log(`memory: ${CYCLES} create/dispose cycles`)
  const cycles = await cyclesBenchmark(ox)
  log(`memory: cycles: RSS ${cycles.before.rssMB} -> ${cycles.after.rssMB} MB`)
  return {
    processStart: snap(start),
    library: { onnxruntimeVersion: ox.versions().onnxruntime },
    runs,
    cycles,
    targets: { runsUnder20MB: runs.growthMB < 20, cyclesUnder20MB: cycles.growthMB < 20 },
  }
}
