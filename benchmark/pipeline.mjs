// Tabular pipeline benchmark (issues #3 and #12): the penguins pipeline,
// oxinfer at its DEFAULT options against the fastest pure-JS path written by
// hand around onnxruntime-node (1 intra-op thread), in one process on the
// same libonnxruntime. Two pure-JS paths run, and every ratio is taken
// against the faster of them in that mode:
// - loops: JS loops over the records (or typed-array columns) fill one
//   Float32Array, Map lookups for the categories;
// - closures: the spec's stages compiled once into one closure per feature
//   (constants captured), filling one Float32Array.
// Both fetch only `probabilities` and pick the argmax into the same result
// shape as oxinfer ({ scores (a view), labelIndex, label, score }, or
// columns).
//
// Modes: `run` at batch 1 sequential; `runBatch` of 1,024 objects sequential
// and with 4 in flight; columns in and out (`output: 'columns'`) of 1,024
// rows sequential and with 4 in flight. Per mode: records/s (median of
// rounds), wall µs per call, and the JS thread's busy time per call and per
// record (performance.eventLoopUtilization().active). The native floor comes
// from `timings: true` (pre-processing + assembly + inference +
// post-processing), and the share of runs that went inline (and their engine
// time, which the JS thread then carries) from a separate `onTiming` pass.
// Also reads scikit-learn's own numbers when scripts/bench_sklearn_penguins.py
// can run (set OXINFER_BENCH_PYTHON to a python with the fixture packages).
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'

import { FIXTURES, QUICK, ROOT, loadBoth, log, median, noiseMeter, round } from './util.mjs'

const DIR = join(FIXTURES, 'penguins')
const SPEC = JSON.parse(readFileSync(join(DIR, 'pipeline.json'), 'utf8'))
const { records: BASE } = JSON.parse(readFileSync(join(DIR, 'records.json'), 'utf8'))
const BATCH = 1024
const IN_FLIGHT = 4
const N_SINGLE = QUICK ? 3000 : Number(process.env.OXINFER_BENCH_PIPELINE_SINGLE) || 20_000
const N_BATCHES = QUICK ? 8 : Number(process.env.OXINFER_BENCH_PIPELINE_BATCHES) || 96
const ROUNDS = QUICK ? 2 : Number(process.env.OXINFER_BENCH_PIPELINE_ROUNDS) || 7
const NUMERIC = ['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g']
const FIELDS = SPEC.fields.map((f) => f.name)
const gc = typeof global.gc === 'function' ? global.gc : () => {}

/** The spec's fitted parameters, unpacked for the JS paths. */
function jsParams() {
  const pre = SPEC.preprocess
  const imputeNum = pre.find((s) => s.op === 'impute' && s.strategy === 'mean')
  const scaler = pre.find((s) => s.op === 'standard_scale')
  const imputeCat = pre.find((s) => s.op === 'impute' && s.strategy === 'most_frequent')
  const oneHots = pre.filter((s) => s.op === 'one_hot')
  const numeric = scaler.fields.map((f) => ({ f, fill: imputeNum.values[f], mean: scaler.mean[f], scale: scaler.scale[f] }))
  const cats = oneHots.map((o) => ({ f: o.field, fill: imputeCat.values[o.field], categories: o.categories, index: new Map(o.categories.map((c, i) => [c, i])), n: o.categories.length }))
  const width = numeric.length + cats.reduce((a, c) => a + c.n, 0)
  return { numeric, cats, width, labels: SPEC.output.labels, names: SPEC.features[0].names }
}

/** Argmax of each row of `probs` into result objects ({ label, score, scores }), or columns. */
function argmaxRows(probs, n, labels, views) {
  const k = labels.length
  const out = new Array(n)
  for (let r = 0; r < n; r++) {
    const o = r * k
    let best = 0
    for (let j = 1; j < k; j++) if (probs[o + j] > probs[o + best]) best = j
    out[r] = views
      ? { scores: probs.subarray(o, o + k), labelIndex: best, label: labels[best], score: probs[o + best] }
      : { label: labels[best], score: probs[o + best], scores: Array.from(probs.subarray(o, o + k)) }
  }
  return out
}

function argmaxColumns(probs, n, labels) {
  const k = labels.length
  const labelIndex = new Int32Array(n)
  const score = new Float32Array(n)
  const label = new Array(n)
  for (let r = 0; r < n; r++) {
    const o = r * k
    let best = 0
    for (let j = 1; j < k; j++) if (probs[o + j] > probs[o + best]) best = j
    labelIndex[r] = best
    score[r] = probs[o + best]
    label[r] = labels[best]
  }
  return { rows: n, k, scores: probs, labelIndex, label, score }
}

/**
 * The loops path a Node developer writes (also used by jobs.mjs). With
 * `views`, results hold a view of the scores, as oxinfer's do; without, an
 * array (what jobs.mjs serialises).
 */
export function makeJsPipeline(ort, session, { views = false } = {}) {
  const P = jsParams()
  const fetches = ['probabilities']
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
  const infer = async (x, n) => (await session.run({ float_input: new ort.Tensor('float32', x, [n, P.width]) }, fetches)).probabilities.data
  return {
    async run(record) {
      return argmaxRows(await infer(features([record], 1), 1), 1, P.labels, views)[0]
    },
    async runBatch(records) {
      const n = records.length
      return argmaxRows(await infer(features(records, n), n), n, P.labels, views)
    },
    /** Columns in, columns out (the same loops over typed arrays). */
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
      return argmaxColumns(await infer(x, n), n, P.labels)
    },
  }
}

/**
 * The closure-compiled path: each feature of the spec's assembly becomes one
 * closure (its stages folded in, constants captured) that reads a record, or
 * fills its feature from a column; a batch fills one Float32Array.
 */
export function makeClosurePipeline(ort, session) {
  const P = jsParams()
  const W = P.width
  const fetches = ['probabilities']
  const num = new Map(P.numeric.map((c) => [c.f, c]))
  const cat = new Map(P.cats.map((c) => [c.f, c]))
  const perRecord = []
  const perColumn = []
  for (const name of P.names) {
    const eq = name.indexOf('=')
    if (eq < 0) {
      const { f, fill, mean, scale } = num.get(name)
      perRecord.push((rec) => {
        const v = rec[f]
        return ((v === null || v === undefined || v !== v ? fill : v) - mean) / scale
      })
      perColumn.push((cols, n, x, j) => {
        const src = cols[f]
        for (let r = 0, o = j; r < n; r++, o += W) {
          const v = src[r]
          x[o] = ((v !== v ? fill : v) - mean) / scale
        }
      })
    } else {
      const f = name.slice(0, eq)
      const value = name.slice(eq + 1)
      const { fill } = cat.get(f)
      perRecord.push((rec) => {
        const v = rec[f]
        return (v === null || v === undefined ? fill : v) === value ? 1 : 0
      })
      perColumn.push((cols, n, x, j) => {
        const src = cols[f]
        for (let r = 0, o = j; r < n; r++, o += W) {
          const v = src[r]
          if ((v === null || v === undefined ? fill : v) === value) x[o] = 1
        }
      })
    }
  }
  const nf = perRecord.length
  const fill = (records, n) => {
    const x = new Float32Array(n * W)
    for (let r = 0, o = 0; r < n; r++, o += W) {
      const rec = records[r]
      for (let j = 0; j < nf; j++) x[o + j] = perRecord[j](rec)
    }
    return x
  }
  const infer = async (x, n) => (await session.run({ float_input: new ort.Tensor('float32', x, [n, W]) }, fetches)).probabilities.data
  return {
    async run(record) {
      const x = new Float32Array(W)
      for (let j = 0; j < nf; j++) x[j] = perRecord[j](record)
      return argmaxRows(await infer(x, 1), 1, P.labels, true)[0]
    },
    async runBatch(records) {
      const n = records.length
      return argmaxRows(await infer(fill(records, n), n), n, P.labels, true)
    },
    async runColumns(cols, n) {
      const x = new Float32Array(n * W)
      for (let j = 0; j < nf; j++) perColumn[j](cols, n, x, j)
      return argmaxColumns(await infer(x, n), n, P.labels)
    },
  }
}

/** Records as columns: Float64Array (NaN = missing) for numbers, string arrays for categories. */
function toColumns(records) {
  const n = records.length
  const cols = {}
  for (const f of NUMERIC) {
    const a = new Float64Array(n)
    for (let i = 0; i < n; i++) a[i] = records[i][f] ?? Number.NaN
    cols[f] = a
  }
  for (const f of ['island', 'sex']) cols[f] = records.map((r) => r[f])
  return cols
}

async function sequential(items, fn) {
  for (let i = 0; i < items.length; i++) await fn(items[i])
}

/** Keeps `k` calls in flight until `items` run out. */
async function inFlight(items, k, fn) {
  let next = 0
  const worker = async () => {
    while (next < items.length) await fn(items[next++])
  }
  await Promise.all(Array.from({ length: k }, worker))
}

/** Times one pass: records/s, wall µs per call, JS-thread µs per call. */
async function measure(fn, calls, records) {
  gc()
  const elu0 = performance.eventLoopUtilization()
  const t0 = performance.now()
  await fn()
  const wall = performance.now() - t0
  const elu = performance.eventLoopUtilization(elu0)
  return { perSec: (records / wall) * 1000, usPerCall: (wall * 1000) / calls, jsUsPerCall: (elu.active * 1000) / calls }
}

/** Median stage timings (µs) of `calls` calls of `fn` (which passes `timings: true`). */
async function floorOf(fn, calls) {
  const parts = { preprocessMicros: [], assembleMicros: [], inferenceMicros: [], postprocessMicros: [], total: [] }
  for (let i = 0; i < calls; i++) {
    const t = (await fn()).timings
    for (const k of Object.keys(t)) parts[k].push(t[k])
    parts.total.push(t.preprocessMicros + t.assembleMicros + t.inferenceMicros + t.postprocessMicros)
  }
  return Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, round(median(v), 2)]))
}

/**
 * From `calls` sequential calls observed with onTiming: the share that ran
 * inline and their mean engine µs, and the spread of the calls' wall time
 * (p50, p99, and the share of all time spent in calls over 4× the p50).
 */
async function observe(call, calls) {
  let inline = 0
  let engine = 0
  const wall = new Float64Array(calls)
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now()
    await call((t) => {
      if (!t.inline) return
      inline++
      engine += t.preprocessMicros + t.inferenceMicros + t.postprocessMicros
    })
    wall[i] = (performance.now() - t0) * 1000
  }
  const sortedWall = Float64Array.from(wall).sort()
  const p50 = sortedWall[calls >> 1]
  let slow = 0
  let total = 0
  for (const w of wall) {
    total += w
    if (w > 4 * p50) slow += w
  }
  return { share: round(inline / calls, 3), engineUs: round(inline ? engine / inline : 0, 2), p50Us: round(p50, 2), p99Us: round(sortedWall[Math.floor(calls * 0.99)], 2), slowShareOfTime: round(slow / total, 3) }
}

/** Wall µs of ORT's own run of a prebuilt batch (onnxruntime-node, 1 intra-op thread). */
async function ortRunUs(ort, session, rows, calls) {
  const P = jsParams()
  const feeds = { float_input: new ort.Tensor('float32', new Float32Array(rows * P.width).fill(0.5), [rows, P.width]) }
  const times = []
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now()
    await session.run(feeds, ['probabilities'])
    times.push((performance.now() - t0) * 1000)
  }
  return round(median(times), 2)
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
  const loops = makeJsPipeline(ort, ortSession, { views: true })
  const closures = makeClosurePipeline(ort, ortSession)
  // oxinfer at its defaults: users do not tune.
  const pipe = await ox.Pipeline.load(join(DIR, 'pipeline.json'))

  // Sanity: every path agrees on the labels (and on the scores, closely).
  const ref = await pipe.runBatch(BASE)
  const agree = {}
  for (const [who, js] of Object.entries({ loops, closures })) {
    const got = await js.runBatch(BASE)
    agree[who] = got.every((r, i) => r.label === ref[i].label && Math.abs(r.score - ref[i].score) < 1e-4)
  }
  const one = await pipe.run(BASE[0])
  agree.run = one.label === ref[0].label

  const records = Array.from({ length: N_BATCHES * BATCH }, (_, i) => BASE[i % BASE.length])
  const singles = records.slice(0, N_SINGLE)
  const batches = []
  for (let i = 0; i < records.length; i += BATCH) batches.push(records.slice(i, i + BATCH))
  const cols = batches.map(toColumns)
  const colArgs = cols.map((c) => [c, BATCH])

  const modes = [
    {
      key: 'run',
      label: 'run, batch 1, sequential',
      calls: N_SINGLE,
      rows: 1,
      oxinfer: () => sequential(singles, (r) => pipe.run(r)),
      loops: () => sequential(singles, (r) => loops.run(r)),
      closures: () => sequential(singles, (r) => closures.run(r)),
      timed: () => pipe.run(BASE[0], { timings: true }),
      observed: (onTiming) => pipe.run(BASE[1], { onTiming }),
    },
    {
      key: 'objects',
      label: 'runBatch, 1,024 objects, sequential',
      calls: N_BATCHES,
      rows: BATCH,
      oxinfer: () => sequential(batches, (b) => pipe.runBatch(b)),
      loops: () => sequential(batches, (b) => loops.runBatch(b)),
      closures: () => sequential(batches, (b) => closures.runBatch(b)),
      timed: () => pipe.runBatch(batches[0], { timings: true }),
      observed: (onTiming) => pipe.runBatch(batches[1], { onTiming }),
    },
    {
      key: 'objects4',
      label: `runBatch, 1,024 objects, ${IN_FLIGHT} in flight`,
      calls: N_BATCHES,
      rows: BATCH,
      oxinfer: () => inFlight(batches, IN_FLIGHT, (b) => pipe.runBatch(b)),
      loops: () => inFlight(batches, IN_FLIGHT, (b) => loops.runBatch(b)),
      closures: () => inFlight(batches, IN_FLIGHT, (b) => closures.runBatch(b)),
    },
    {
      key: 'columns',
      label: 'columns in and out, 1,024 rows, sequential',
      calls: N_BATCHES,
      rows: BATCH,
      oxinfer: () => sequential(cols, (c) => pipe.runBatch(c, { output: 'columns' })),
      loops: () => sequential(colArgs, (a) => loops.runColumns(a[0], a[1])),
      closures: () => sequential(colArgs, (a) => closures.runColumns(a[0], a[1])),
      timed: () => pipe.runBatch(cols[0], { output: 'columns', timings: true }),
      observed: (onTiming) => pipe.runBatch(cols[1], { output: 'columns', onTiming }),
    },
    {
      key: 'columns4',
      label: `columns in and out, 1,024 rows, ${IN_FLIGHT} in flight`,
      calls: N_BATCHES,
      rows: BATCH,
      oxinfer: () => inFlight(cols, IN_FLIGHT, (c) => pipe.runBatch(c, { output: 'columns' })),
      loops: () => inFlight(colArgs, IN_FLIGHT, (a) => loops.runColumns(a[0], a[1])),
      closures: () => inFlight(colArgs, IN_FLIGHT, (a) => closures.runColumns(a[0], a[1])),
    },
  ]

  const CONTENDERS = ['oxinfer', 'loops', 'closures']
  const results = {}
  // OXINFER_BENCH_PIPELINE_MODES=run,columns runs a subset (when iterating on one path).
  const only = process.env.OXINFER_BENCH_PIPELINE_MODES?.split(',')
  for (const m of modes) {
    if (only && !only.includes(m.key)) continue
    const records_ = m.calls * m.rows
    const samples = Object.fromEntries(CONTENDERS.map((c) => [c, []]))
    const noise = []
    for (const c of CONTENDERS) await m[c]()
    for (let k = 0; k < ROUNDS; k++) {
      const meter = noiseMeter()
      // Rotate which contender goes first.
      for (let j = 0; j < CONTENDERS.length; j++) {
        const c = CONTENDERS[(j + k) % CONTENDERS.length]
        samples[c].push(await measure(m[c], m.calls, records_))
      }
      noise.push(round(meter(), 2))
    }
    const r = { label: m.label, calls: m.calls, rowsPerCall: m.rows, foreignCoresPerRound: noise }
    for (const c of CONTENDERS) {
      const s = samples[c]
      r[c] = {
        perSec: round(median(s.map((x) => x.perSec)), 0),
        usPerCall: round(median(s.map((x) => x.usPerCall)), 2),
        jsUsPerCall: round(median(s.map((x) => x.jsUsPerCall)), 2),
        jsNsPerRecord: round((median(s.map((x) => x.jsUsPerCall)) * 1000) / m.rows, 1),
        roundPerSec: s.map((x) => round(x.perSec, 0)),
      }
    }
    const best = r.loops.perSec >= r.closures.perSec ? 'loops' : 'closures'
    r.bestPureJs = best
    r.ratio = round(r.oxinfer.perSec / r[best].perSec, 2)
    // Paired by round: oxinfer over the faster pure-JS path of the same round.
    r.pairedRatio = round(median(samples.oxinfer.map((x, i) => x.perSec / Math.max(samples.loops[i].perSec, samples.closures[i].perSec))), 2)
    r.jsTimeRatio = round(r.oxinfer.jsUsPerCall / r[best].jsUsPerCall, 2)
    if (m.timed) r.floor = await floorOf(m.timed, m.rows === 1 ? 2000 : 60)
    if (m.observed) r.inline = await observe(m.observed, m.rows === 1 ? 5000 : 60)
    results[m.key] = r
    log(`pipeline ${m.label}: oxinfer ${r.oxinfer.perSec}/s, loops ${r.loops.perSec}/s, closures ${r.closures.perSec}/s -> ${r.ratio}x (paired ${r.pairedRatio}x) vs ${best}; JS-thread µs/call ${r.oxinfer.jsUsPerCall} vs ${r[best].jsUsPerCall}; other processes ${noise.join(' ')} cores`)
  }

  const ortOwn = { batch1Us: await ortRunUs(ort, ortSession, 1, 3000), batch1024Us: await ortRunUs(ort, ortSession, BATCH, 200) }
  // (A tree from before issue #12 has no generated reader: no layer figures then.)
  const layers = existsSync(join(ROOT, 'src', 'pipeline', 'reader.js')) ? await jsLayers(ox, pipe, batches[0], cols[0]) : null
  await pipe.dispose()
  return { rounds: ROUNDS, inFlight: IN_FLIGHT, labelsAgree: Object.values(agree).every(Boolean), agreement: agree, modes: results, ortOwnRun: ortOwn, jsLayers: layers, targets: targets(results, layers), sklearn: sklearn() }
}

/** Median µs per call of `fn` over `rounds` rounds of `n` calls (synchronous). */
function timeSync(fn, n, rounds = 9) {
  for (let i = 0; i < n; i++) fn()
  const per = []
  for (let k = 0; k < rounds; k++) {
    const t0 = performance.now()
    for (let i = 0; i < n; i++) fn()
    per.push(((performance.now() - t0) * 1000) / n)
  }
  return round(median(per), 3)
}

/**
 * Where the JS thread's time goes, layer by layer (diagnostics; internal
 * modules): the TypeScript layer's own work (the generated records reader,
 * the columns encoder, the result builders) timed in isolation on the same
 * data, and at batch 1 the native call alone (runSync of a prepared batch: the
 * crossing, native pre-processing, the engine and the payload) against
 * `pipeline.run`.
 */
async function jsLayers(ox, pipe, records, columns) {
  const req = (m) => import(join(ROOT, m)).then((x) => x.default ?? x)
  const [{ groupFields, fromColumns }, { compileReader }, decode, { native }, { internalsOf }] = await Promise.all(['src/pipeline/encode.js', 'src/pipeline/reader.js', 'src/pipeline/decode.js', 'src/native.js', 'src/session/internal.js'].map(req))
  const L = groupFields(SPEC.fields, SPEC.preprocess)
  const read = compileReader(L)
  const unknown = { ignore: false, ignored: 0 }
  // One buffer per size, refilled, as a pipeline reuses the buffers of settled runs.
  const buffers = new Map()
  const alloc = (n) => buffers.get(n) ?? buffers.set(n, new Float64Array(n)).get(n)
  const session = internalsOf(pipe.session).native
  const np = await native.compilePipeline(session, JSON.stringify(SPEC), DIR, null)
  const one = read([records[0]], true, unknown).flat
  const named = (flat) => decode.readPacked(np.runSync(session, flat, true, false))
  const nObjects = named(read(records, true, unknown).flat)
  const nColumns = named(fromColumns(L, columns, true, unknown).flat)
  const nOne = named(one)
  const none = new Map()
  const out = {
    encodeRecordsUs: timeSync(() => read(records, true, unknown, alloc), 300),
    encodeColumnsUs: timeSync(() => fromColumns(L, columns, true, unknown, alloc), 300),
    decodeObjectsUs: timeSync(() => decode.objects(nObjects, BATCH, none, SPEC.output), 300),
    decodeColumnsUs: timeSync(() => decode.columns(nColumns, BATCH, none, SPEC.output), 300),
    encodeOneUs: timeSync(() => read([records[0]], true, unknown, alloc), 20000),
    decodeOneUs: timeSync(() => decode.objects(nOne, 1, none, SPEC.output), 20000),
  }
  // Batch 1: the native call alone, then pipeline.run, in turns. Both yield to
  // the event loop every 16 calls, so that every run goes inline (the
  // session's 1 ms inline budget per turn is never spent) and the difference
  // is the TS layer's own cost per call.
  const runSync = []
  const run = []
  const turn = () => new Promise((r) => setImmediate(r))
  for (let k = 0; k < 9; k++) {
    let t0 = performance.now()
    for (let i = 0; i < 2048; i++) {
      np.runSync(session, one, true, false)
      if ((i & 15) === 15) await turn()
    }
    runSync.push(((performance.now() - t0) * 1000) / 2048)
    t0 = performance.now()
    for (let i = 0; i < 2048; i++) {
      await pipe.run(records[i & 1023])
      if ((i & 15) === 15) await turn()
    }
    run.push(((performance.now() - t0) * 1000) / 2048)
  }
  out.nativeRunSyncUs = round(median(runSync), 2)
  out.pipelineRunUs = round(median(run), 2)
  return out
}

/**
 * The issue #12 targets that concern pipelines. JS-thread cost leaves out
 * engine work that ran inline (inline share × its engine µs); the per-call
 * cost is batch 1's, the per-record and per-value costs are what a batch of
 * 1,024 adds to it.
 */
function targets(m, layers) {
  const out = []
  if (!m.run || !m.objects || !m.objects4 || !m.columns || !m.columns4) return out
  const add = (target, figure, met) => out.push({ target, figure, met })
  const jsCost = (r) => r.oxinfer.jsUsPerCall - (r.inline ? r.inline.share * r.inline.engineUs : 0)
  const b1 = m.run
  add('run, batch 1, sequential: >= 1.2x the pure-JS path', `${b1.ratio}x (paired ${b1.pairedRatio}x) vs ${b1.bestPureJs}`, b1.ratio >= 1.2)
  if (b1.floor) {
    const spread = b1.inline ? `; per call p50 ${b1.inline.p50Us} µs = ${round(b1.inline.p50Us / b1.floor.total, 2)}x, p99 ${b1.inline.p99Us} µs, ${round(100 * b1.inline.slowShareOfTime, 1)} % of the time in calls over 4× the p50` : ''
    add('run, batch 1: within 1.3x of the native floor', `${b1.oxinfer.usPerCall} µs per call vs floor ${b1.floor.total} µs = ${round(b1.oxinfer.usPerCall / b1.floor.total, 2)}x${spread}`, b1.oxinfer.usPerCall <= 1.3 * b1.floor.total)
  }
  add('runBatch 1,024 objects: >= 1.3x sequential', `${m.objects.ratio}x (paired ${m.objects.pairedRatio}x)`, m.objects.ratio >= 1.3)
  add(`runBatch 1,024 objects: >= 2x with ${IN_FLIGHT} in flight`, `${m.objects4.ratio}x (paired ${m.objects4.pairedRatio}x)`, m.objects4.ratio >= 2)
  add('columns in and out, 1,024 rows: >= 2x sequential', `${m.columns.ratio}x (paired ${m.columns.pairedRatio}x)`, m.columns.ratio >= 2)
  add(`columns in and out, 1,024 rows: >= 3x with ${IN_FLIGHT} in flight`, `${m.columns4.ratio}x (paired ${m.columns4.pairedRatio}x)`, m.columns4.ratio >= 3)
  const perCall = jsCost(b1)
  const perRecordNs = ((jsCost(m.objects) - perCall) * 1000) / BATCH
  const perValueNs = ((jsCost(m.columns) - perCall) * 1000) / (BATCH * FIELDS.length)
  add('JS-thread cost per call (batch 1, inline engine work left out): <= 3 µs', `${round(perCall, 2)} µs (busy ${b1.oxinfer.jsUsPerCall} µs; inline share ${b1.inline?.share}, engine ${b1.inline?.engineUs} µs)`, perCall <= 3)
  add('JS-thread cost per record, objects (batch 1,024): <= 80 ns', `${round(perRecordNs, 1)} ns (${m.objects.oxinfer.jsUsPerCall} µs per batch)`, perRecordNs <= 80)
  add(`JS-thread cost per value, columns (1,024 rows × ${FIELDS.length} fields): <= 5 ns`, `${round(perValueNs, 2)} ns (${m.columns.oxinfer.jsUsPerCall} µs per batch)`, perValueNs <= 5)
  if (layers) {
    // The TypeScript layer alone (the crossing and the native work left out).
    add('  of which the TS layer per call (pipeline.run less runSync of a prepared batch, both inline): <= 3 µs', `${round(layers.pipelineRunUs - layers.nativeRunSyncUs, 2)} µs (run ${layers.pipelineRunUs}, runSync ${layers.nativeRunSyncUs})`, layers.pipelineRunUs - layers.nativeRunSyncUs <= 3)
    const rec = ((layers.encodeRecordsUs + layers.decodeObjectsUs) * 1000) / BATCH
    add('  of which the TS layer per record, objects (encode + decode): <= 80 ns', `${round(rec, 1)} ns (encode ${layers.encodeRecordsUs} µs, decode ${layers.decodeObjectsUs} µs per 1,024)`, rec <= 80)
    const val = ((layers.encodeColumnsUs + layers.decodeColumnsUs) * 1000) / (BATCH * FIELDS.length)
    add('  of which the TS layer per value, columns (encode + decode): <= 5 ns', `${round(val, 2)} ns (encode ${layers.encodeColumnsUs} µs, decode ${layers.decodeColumnsUs} µs per 1,024 rows)`, val <= 5)
  }
  return out
}
