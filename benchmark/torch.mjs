// Benchmark (issue #15): the torch backend against ONNX Runtime and PyTorch.
//
// One network in both forms (__test__/fixtures/torch/mlp.pt and mlp.onnx, a
// 32 -> 256 -> 256 -> 10 MLP exported by scripts/make_torch_fixtures.py), on
// the CPU, at batch 1, 8, 64 and 512, inputs row r, column k = sin(32 r + k):
//   oxinfer, torch backend (mlp.pt through @oxinfer/torch), default options
//     (the thread rule: one intra-op thread per slot, several slots);
//   the same with PyTorch's threading (intra-op threads = cores, one slot);
//   the same with inlineThresholdMicros 1000 (runs on the JS thread when idle);
//   oxinfer, ONNX Runtime backend (mlp.onnx), default options;
//   onnxruntime-node (mlp.onnx, intra-op threads = cores), for reference;
//   PyTorch (torch.jit.load of mlp.pt under inference_mode), in a child
//     process of the same run (scripts/libtorch.mjs --python installs it).
// Protocol: sequential calls (each awaited), per-call latency; median and p99
// per round, rounds rotated between contenders; sequential throughput =
// batch / median latency. For the Node contenders also pipelined throughput:
// 4 calls in flight (what a Node service with concurrent requests does), rows
// per second of wall time. PyTorch's figure is its sequential one (one
// Python process calling its model). Outputs of all must agree within 1e-4.
// With OXINFER_BENCH_DEVICE=cuda the same script is the GPU check
// (benchmark/gpu): the torch contenders run on the GPU, beside the same model
// on the CPU, and PyTorch runs on the GPU too; parity is then within 1e-4.
import { execFileSync } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'

import { BENCH_DIR, FIXTURES, QUICK, cleanRound, log, now, pct, round, rotate, sorted } from './util.mjs'

const DEVICE = process.env.OXINFER_BENCH_DEVICE ?? 'cpu'
const GPU = DEVICE !== 'cpu'
const ROUNDS = QUICK ? 2 : 5
const PLAN = QUICK ? { 1: 200, 8: 100, 64: 40, 512: 10 } : { 1: 2000, 8: 1000, 64: 300, 512: 60 }
const THREADS = availableParallelism()
const MODEL_PT = process.env.OXINFER_BENCH_TORCH_MODEL ?? join(FIXTURES, 'torch', 'mlp.pt')
const MODEL_ONNX = join(FIXTURES, 'torch', 'mlp.onnx')

function rows(batch) {
  const x = new Float32Array(batch * 32)
  for (let r = 0; r < batch; r++) for (let k = 0; k < 32; k++) x[r * 32 + k] = Math.sin(r * 32 + k)
  return x
}

const IN_FLIGHT = 4

/** Rows per second with IN_FLIGHT calls kept in flight. */
async function pipelined(call, calls, batch) {
  let left = calls
  const t0 = now()
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (left-- > 0) await call()
  }))
  return (calls * batch) / ((now() - t0) / 1000)
}

async function timeCalls(call, calls) {
  const warm = Math.max(3, Math.floor(calls / 10))
  const times = new Float64Array(calls)
  let first
  for (let i = 0; i < warm + calls; i++) {
    const t0 = now()
    const y = await call()
    const t1 = now()
    if (i >= warm) times[i - warm] = (t1 - t0) * 1000
    first ??= Array.from(y.slice(0, 10))
  }
  const s = sorted(times)
  return { median_us: pct(s, 0.5), p99_us: pct(s, 0.99), calls, row0: first }
}

function python() {
  if (process.env.OXINFER_BENCH_PYTHON) return process.env.OXINFER_BENCH_PYTHON
  return execFileSync(process.execPath, [join(BENCH_DIR, '..', 'scripts', 'libtorch.mjs'), '--python'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim()
}

export async function run() {
  const { createRequire } = await import('node:module')
  const require = createRequire(import.meta.url)
  const ox = require(join(BENCH_DIR, '..', 'index.js'))
  const py = python()
  // Default options: the thread rule picks threads and slots (a light model:
  // one intra-op thread per slot, min(cores, 4) slots).
  const opts = { device: DEVICE }
  const torch = await ox.Session.create(MODEL_PT, opts)
  // PyTorch's own setting: one slot with an intra-op thread per core.
  const torch2 = await ox.Session.create(MODEL_PT, { ...opts, intraOpThreads: THREADS, poolSize: 1 })
  // Runs up to 1 ms inline on the JS thread when the session is idle: no
  // worker handoff, so the engine's own floor (and an event loop blocked for
  // each run's length).
  const torchInline = await ox.Session.create(MODEL_PT, { ...opts, inlineThresholdMicros: 1000 })
  const call = (s) => (x, b) => () => s.run({ features: new ox.Tensor('float32', x, [b, 32]) }).then((o) => o.logits.data)
  // Dynamic batching: the pipelined calls (4 in flight) merge into one forward.
  const torchBatched = await ox.Session.create(MODEL_PT, { ...opts, batching: { maxBatchSize: 2048 } })
  const contenders = {
    'oxinfer torch': call(torch),
    [`oxinfer torch, ${THREADS} threads x 1 slot`]: call(torch2),
    'oxinfer torch, inline <= 1 ms': call(torchInline),
    'oxinfer torch, batching': call(torchBatched),
  }
  const extra = [torch2, torchInline, torchBatched]
  if (GPU) {
    // The same model on the CPU, for the GPU's speed-up and output parity.
    const cpu = await ox.Session.create(MODEL_PT)
    contenders['oxinfer torch on the cpu'] = call(cpu)
    extra.push(cpu)
  }
  let ortNode
  if (!GPU) {
    // ONNX Runtime on the GPU needs onnxruntime-gpu's library (see benchmark/gpu/README).
    const onnx = await ox.Session.create(MODEL_ONNX)
    contenders['oxinfer onnx'] = (x, b) => () => onnx.run({ features: new ox.Tensor('float32', x, [b, 32]) }).then((o) => o.logits.data)
    const ort = require('onnxruntime-node')
    ortNode = await ort.InferenceSession.create(MODEL_ONNX, { intraOpNumThreads: THREADS, interOpNumThreads: 1 })
    contenders['onnxruntime-node'] = (x, b) => () => ortNode.run({ features: new ort.Tensor('float32', x, [b, 32]) }).then((o) => o.logits.data)
  }
  const names = [...Object.keys(contenders), 'pytorch']
  const perRound = Object.fromEntries(names.map((n) => [n, Object.fromEntries(Object.keys(PLAN).map((b) => [b, []]))]))
  let pyInfo
  const row0 = {}
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of rotate(names, r)) {
      const { result } = await cleanRound(`${name} round ${r}`, async () => {
        if (name === 'pytorch') {
          const out = JSON.parse(execFileSync(py, [join(BENCH_DIR, 'torch_peer.py'), MODEL_PT, DEVICE, String(THREADS), JSON.stringify(PLAN)], { encoding: 'utf8', maxBuffer: 1 << 24 }))
          pyInfo = { torch: out.torch, threads: out.threads }
          return out.batches
        }
        const out = {}
        for (const [b, calls] of Object.entries(PLAN)) {
          const call = contenders[name](rows(Number(b)), Number(b))
          out[b] = await timeCalls(call, calls)
          out[b].pipelined_rows_per_s = await pipelined(call, calls, Number(b))
        }
        return out
      })
      for (const [b, m] of Object.entries(result)) {
        perRound[name][b].push(m)
        row0[name] = m.row0
      }
    }
    log(`round ${r + 1}/${ROUNDS} done`)
  }
  // Every contender computed the same first row.
  const parity = Object.fromEntries(names.map((n) => [n, round(Math.max(...row0[n].map((v, i) => Math.abs(v - row0['oxinfer torch'][i]))), 8)]))
  const table = {}
  for (const n of names) {
    table[n] = {}
    for (const b of Object.keys(PLAN)) {
      const ms = perRound[n][b]
      const med = pct(sorted(ms.map((m) => m.median_us)), 0.5)
      table[n][b] = { median_us: round(med, 1), p99_us: round(pct(sorted(ms.map((m) => m.p99_us)), 0.5), 1), rows_per_s: Math.round((Number(b) / med) * 1e6) }
      if (n !== 'pytorch') table[n][b].pipelined_rows_per_s = Math.round(pct(sorted(ms.map((m) => m.pipelined_rows_per_s)), 0.5))
    }
  }
  const ratios = {}
  for (const b of Object.keys(PLAN)) {
    ratios[b] = {
      torch_vs_pytorch_throughput: round(table['oxinfer torch'][b].rows_per_s / table.pytorch[b].rows_per_s, 2),
      torch_vs_pytorch_latency: round(table['oxinfer torch'][b].median_us / table.pytorch[b].median_us, 2),
      torch_pipelined_vs_pytorch_throughput: round(table['oxinfer torch'][b].pipelined_rows_per_s / table.pytorch[b].rows_per_s, 2),
    }
    if (!GPU) ratios[b].onnx_vs_torch_throughput = round(table['oxinfer onnx'][b].rows_per_s / table['oxinfer torch'][b].rows_per_s, 2)
  }
  await Promise.all([torch.dispose(), ...extra.map((s) => s.dispose())])
  return { device: DEVICE, threads: THREADS, torchPoolSize: torch.poolSize, rounds: ROUNDS, plan: PLAN, pytorch: pyInfo, parity_max_abs: parity, table, ratios }
}
