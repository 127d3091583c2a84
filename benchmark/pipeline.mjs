// Tabular pipeline benchmark (issue #3): the penguins pipeline over 100,000
// records, oxinfer against the idiomatic pure-JS path (JS pre-processing loops
// over objects, onnxruntime-node, JS post-processing into objects), in one
// process on the same libonnxruntime. Also reads scikit-learn's own numbers
// when scripts/bench_sklearn_penguins.py can run (a venv with the pinned
// fixture requirements; set OXINFER_BENCH_PYTHON to its python).
//
// Reported per mode: records/s (median of rounds) and JS-thread time per
// record: the event loop's active time (performance.eventLoopUtilization)
// divided by the records, i.e. how long the service's event loop is busy.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'

import { FIXTURES, QUICK, ROOT, loadBoth, log, median, round } from './util.mjs'

const DIR = join(FIXTURES, 'penguins')
const SPEC = JSON.parse(readFileSync(join(DIR, 'pipeline.json'), 'utf8'))
const { records: BASE } = JSON.parse(readFileSync(join(DIR, 'records.json'), 'utf8'))
const TOTAL = QUICK ? 10_000 : 100_000
const ROUNDS = QUICK ? 2 : 5
const RECORDS = Array.from({ length: TOTAL }, (_, i) => BASE[i % BASE.length])

/** The spec's fitted parameters, unpacked for the JS path. */
function jsParams() {
  const pre = SPEC.preprocess
  const imputeNum = pre.find((s) => s.op === 'impute' && s.strategy === 'mean')
  const scaler = pre.find((s) => s.op === 'standard_scale')
  const imputeCat = pre.find((s) => s.op === 'impute' && s.strategy === 'most_frequent')
  const oneHots = pre.filter((s) => s.op === 'one_hot')
  const numeric = scaler.fields.map((f) => ({ f, fill: imputeNum.values[f], mean: scaler.mean[f], scale: scaler.scale[f] }))
  const cats = oneHots.map((o) => ({ f: o.field, fill: imputeCat.values[o.field], index: new Map(o.categories.map((c, i) => [c, i])), n: o.categories.length }))
  const width = numeric.length + cats.reduce((a, c) => a + c.n, 0)
  return { numeric, cats, width, labels: SPEC.output.labels }
}

/** The pure-JS path a Node developer writes today. */
export function makeJsPipeline(ort, session) {
  const P = jsParams()
  const features = (records, n) => {
    const x = new Float32Array(n * P.width)
    for (let r = 0; r < n; r++) {
      const rec = records[r]
      let o = r * P.width
      for (const c of P.numeric) {
        let v = rec[c.f]
        if (v === null || v === undefined || Number.isNaN(v)) v = c.fill
        x[o++] = (v - c.mean) / c.scale
      }
      for (const c of P.cats) {
        let v = rec[c.f]
        if (v === null || v === undefined) v = c.fill
        const k = c.index.get(v)
        if (k !== undefined) x[o + k] = 1
        o += c.n
      }
    }
    return x
  }
  const toObjects = (probs, n) => {
    const k = P.labels.length
    const out = new Array(n)
    for (let r = 0; r < n; r++) {
      let best = 0
      for (let j = 1; j < k; j++) if (probs[r * k + j] > probs[r * k + best]) best = j
      out[r] = { label: P.labels[best], score: probs[r * k + best], scores: Array.from(probs.subarray(r * k, (r + 1) * k)) }
    }
    return out
  }
  return {
    async runBatch(records) {
      const n = records.length
      const x = features(records, n)
      const out = await session.run({ float_input: new ort.Tensor('float32', x, [n, P.width]) })
      return toObjects(out.probabilities.data, n)
    },
    /** Columns in, columns out (same loops over typed arrays). */
    async runColumns(cols, n) {
      const x = new Float32Array(n * P.width)
      for (let i = 0; i < P.numeric.length; i++) {
        const c = P.numeric[i]
        const src = cols[c.f]
        for (let r = 0; r < n; r++) {
          const v = src[r]
          x[r * P.width + i] = ((Number.isNaN(v) ? c.fill : v) - c.mean) / c.scale
        }
      }
      let o = P.numeric.length
      for (const c of P.cats) {
        const src = cols[c.f]
        for (let r = 0; r < n; r++) {
          const k = c.index.get(src[r] ?? c.fill)
          if (k !== undefined) x[r * P.width + o + k] = 1
        }
        o += c.n
      }
      const out = await session.run({ float_input: new ort.Tensor('float32', x, [n, P.width]) })
      const probs = out.probabilities.data
      const k = P.labels.length
      const label = new Array(n)
      for (let r = 0; r < n; r++) {
        let best = 0
        for (let j = 1; j < k; j++) if (probs[r * k + j] > probs[r * k + best]) best = j
        label[r] = P.labels[best]
      }
      return { scores: probs, label }
    },
  }
}

function toColumns(records) {
  const n = records.length
  const cols = {}
  for (const f of ['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g']) {
    const a = new Float64Array(n)
    for (let i = 0; i < n; i++) a[i] = records[i][f] ?? Number.NaN
    cols[f] = a
  }
  for (const f of ['island', 'sex']) cols[f] = records.map((r) => r[f])
  return cols
}

/** Times `fn` over all records; returns records/s and JS-thread µs per record. */
async function measure(fn) {
  const elu0 = performance.eventLoopUtilization()
  const t0 = performance.now()
  await fn()
  const wall = performance.now() - t0
  const elu = performance.eventLoopUtilization(elu0)
  return { perSec: (TOTAL / wall) * 1000, jsUsPerRecord: (elu.active * 1000) / TOTAL }
}

function sklearn() {
  const py = process.env.OXINFER_BENCH_PYTHON ?? (existsSync('/tmp/pgvenv/bin/python') ? '/tmp/pgvenv/bin/python' : undefined)
  if (!py) return { skipped: 'set OXINFER_BENCH_PYTHON to a python with scripts/requirements-fixtures.txt installed' }
  const r = spawnSync(py, [join(ROOT, 'scripts', 'bench_sklearn_penguins.py')], { encoding: 'utf8', timeout: 600_000 })
  if (r.status !== 0) return { skipped: `python failed: ${r.stderr.slice(-300)}` }
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop())
  } catch {
    return { skipped: 'unreadable output' }
  }
}

export async function run() {
  const { ort, ox } = await loadBoth()
  const ortSession = await ort.InferenceSession.create(join(DIR, 'penguins.onnx'), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  })
  const js = makeJsPipeline(ort, ortSession)
  // Pool of 2 so that two batches can run on the two cores.
  const pipe = await ox.Pipeline.load(join(DIR, 'pipeline.json'), { session: { intraOpThreads: 1, poolSize: 2 } })

  // Sanity: both paths agree on the labels.
  const a = await js.runBatch(BASE)
  const b = await pipe.runBatch(BASE)
  const agree = a.every((r, i) => r.label === b[i].label)

  const batches = (size) => {
    const out = []
    for (let i = 0; i < TOTAL; i += size) out.push(RECORDS.slice(i, i + size))
    return out
  }
  const b1024 = batches(1024)
  const c1024 = b1024.map(toColumns)

  const modes = {
    'objects, sequential, batch 1': {
      oxinfer: () => (async () => { for (const r of RECORDS) await pipe.run(r) })(),
      pureJs: () => (async () => { for (const r of RECORDS) await js.runBatch([r]) })(),
    },
    'objects, batch 1024 (sequential batches)': {
      oxinfer: async () => { for (const bt of b1024) await pipe.runBatch(bt) },
      pureJs: async () => { for (const bt of b1024) await js.runBatch(bt) },
    },
    'objects, batch 1024 (2 batches in flight)': {
      oxinfer: async () => { for (let i = 0; i < b1024.length; i += 2) await Promise.all(b1024.slice(i, i + 2).map((bt) => pipe.runBatch(bt))) },
      pureJs: async () => { for (let i = 0; i < b1024.length; i += 2) await Promise.all(b1024.slice(i, i + 2).map((bt) => js.runBatch(bt))) },
    },
    'columns, batch 1024 (2 batches in flight)': {
      oxinfer: async () => { for (let i = 0; i < c1024.length; i += 2) await Promise.all(c1024.slice(i, i + 2).map((c) => pipe.runBatch(c, { output: 'columns' }))) },
      pureJs: async () => { for (let i = 0; i < c1024.length; i += 2) await Promise.all(c1024.slice(i, i + 2).map((c, j) => js.runColumns(c, b1024[i + j].length))) },
    },
  }

  const results = {}
  for (const [mode, fns] of Object.entries(modes)) {
    const samples = { oxinfer: [], pureJs: [] }
    await fns.oxinfer()
    await fns.pureJs()
    for (let round_ = 0; round_ < ROUNDS; round_++) {
      // Interleave, alternating which goes first.
      const order = round_ % 2 === 0 ? ['oxinfer', 'pureJs'] : ['pureJs', 'oxinfer']
      for (const who of order) samples[who].push(await measure(fns[who]))
    }
    const med = (who, key) => median(samples[who].map((s) => s[key]))
    const r = {
      oxinferPerSec: round(med('oxinfer', 'perSec'), 0),
      pureJsPerSec: round(med('pureJs', 'perSec'), 0),
      oxinferJsUsPerRecord: round(med('oxinfer', 'jsUsPerRecord'), 3),
      pureJsJsUsPerRecord: round(med('pureJs', 'jsUsPerRecord'), 3),
    }
    r.throughputRatio = round(r.oxinferPerSec / r.pureJsPerSec, 2)
    r.jsTimeRatio = round(r.oxinferJsUsPerRecord / r.pureJsJsUsPerRecord, 2)
    results[mode] = r
    log(`pipeline ${mode}: oxinfer ${r.oxinferPerSec}/s vs pure JS ${r.pureJsPerSec}/s (${r.throughputRatio}x); JS-thread µs/record ${r.oxinferJsUsPerRecord} vs ${r.pureJsJsUsPerRecord}`)
  }
  const timings = (await pipe.runBatch(b1024[0], { timings: true })).timings
  await pipe.dispose()
  return { records: TOTAL, rounds: ROUNDS, labelsAgree: agree, modes: results, stageTimingsBatch1024: timings, sklearn: sklearn() }
}
