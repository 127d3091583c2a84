// Benchmark (issue #15): the torch backend against ONNX Runtime and PyTorch.
//
// One network in both forms (__test__/fixtures/torch/mlp.pt and mlp.onnx, a
// 32 -> 256 -> 256 -> 10 MLP exported by scripts/make_torch_fixtures.py), on
// the CPU, at batch 1, 8, 64 and 512. Contenders, all with intra-op threads =
// cores and inputs row r, column k = sin(32 r + k):
//   oxinfer, torch backend (mlp.pt through @oxinfer/torch);
//   oxinfer, ONNX Runtime backend (mlp.onnx);
//   onnxruntime-node (mlp.onnx), for reference;
//   PyTorch (torch.jit.load of mlp.pt under inference_mode), in a child
//     process of the same run (scripts/libtorch.mjs --python installs it).
// Protocol: sequential calls (each awaited), per-call latency; median and p99
// per round, rounds rotated between contenders; throughput = batch / median
// latency. Outputs of all four must agree within 1e-4.
// The same script with OXINFER_BENCH_DEVICE=cuda is the GPU check (benchmark/gpu).
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
  const opts = { intraOpThreads: THREADS, poolSize: 1, device: DEVICE }
  const torch = await ox.Session.create(MODEL_PT, opts)
  const contenders = {
    'oxinfer torch': (x, b) => () => torch.run({ features: new ox.Tensor('float32', x, [b, 32]) }).then((o) => o.logits.data),
  }
  let ortNode
  if (!GPU) {
    // ONNX Runtime on the GPU needs onnxruntime-gpu's library (see benchmark/gpu/README).
    const onnx = await ox.Session.create(MODEL_ONNX, opts)
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
        for (const [b, calls] of Object.entries(PLAN)) out[b] = await timeCalls(contenders[name](rows(Number(b)), Number(b)), calls)
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
    }
  }
  const ratios = {}
  for (const b of Object.keys(PLAN)) {
    ratios[b] = {
      torch_vs_pytorch_throughput: round(table['oxinfer torch'][b].rows_per_s / table.pytorch[b].rows_per_s, 2),
      torch_vs_pytorch_latency: round(table['oxinfer torch'][b].median_us / table.pytorch[b].median_us, 2),
    }
    if (!GPU) ratios[b].onnx_vs_torch_throughput = round(table['oxinfer onnx'][b].rows_per_s / table['oxinfer torch'][b].rows_per_s, 2)
  }
  await torch.dispose()
  return { device: DEVICE, threads: THREADS, rounds: ROUNDS, plan: PLAN, pytorch: pyInfo, parity_max_abs: parity, table, ratios }
}
