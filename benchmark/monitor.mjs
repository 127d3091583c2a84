// Benchmark (issue #16): what drift monitoring (and business metrics) cost a pipeline.
//
// The penguins pipeline (__test__/fixtures/penguins) with and without a
// `monitor` section (a reference profile of all 344 records; window 1,000,
// a check every 250 records, the defaults: every field and the predicted
// label and score observed, PSI/KS/chi-square/JS computed at each check, on
// the thread pool), and the same plus four business metrics (a label rate,
// the mean score, a sum over confident rows, a count). All at their
// default options, in the same process, rounds alternating:
//   run at batch 1, sequential (each awaited);
//   runBatch of 1,024 records, sequential.
// Metric: records per second; the ratio monitored / plain (target ≥ 0.9,
// i.e. at most 10 % of throughput), and the cost per record in ns.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

import { FIXTURES, QUICK, cleanRound, log, now, pct, round, sorted } from './util.mjs'

const DIR = join(FIXTURES, 'penguins')
const SPEC = JSON.parse(readFileSync(join(DIR, 'pipeline.json'), 'utf8'))
const { records: BASE } = JSON.parse(readFileSync(join(DIR, 'records.json'), 'utf8'))
const ROUNDS = QUICK ? 2 : 7
const N_SINGLE = QUICK ? 2000 : 10_000
const N_BATCHES = QUICK ? 10 : 60
const BATCH = 1024
// The defaults (1,000 and 250); OXINFER_BENCH_CHECK_EVERY=100 checks more often.
const WINDOW = 1000
const CHECK_EVERY = Number(process.env.OXINFER_BENCH_CHECK_EVERY) || 250

export async function run() {
  const require = createRequire(import.meta.url)
  const { Pipeline } = require(join(FIXTURES, '..', '..', 'index.js'))
  const plain = await Pipeline.create(SPEC, { baseDir: DIR })
  const reference = await plain.profile(BASE)
  const monitored = await Pipeline.create({ ...SPEC, monitor: { reference, window: WINDOW, checkEvery: CHECK_EVERY } }, { baseDir: DIR })
  const metrics = [
    { name: 'gentoo_rate', kind: 'rate', where: { field: 'label', eq: 'Gentoo' } },
    { name: 'mean_score', kind: 'mean', of: 'score' },
    { name: 'confident_mass', kind: 'sum', of: 'body_mass_g', where: { field: 'score', gte: 0.9 } },
    { name: 'off_biscoe', kind: 'count', where: { field: 'island', in: ['Dream', 'Torgersen'] } },
  ]
  const withMetrics = await Pipeline.create({ ...SPEC, monitor: { reference, window: WINDOW, checkEvery: CHECK_EVERY, metrics } }, { baseDir: DIR })
  const pipelines = { plain, monitored, metrics: withMetrics }
  const batch = Array.from({ length: BATCH }, (_, i) => BASE[i % BASE.length])
  const modes = {
    'run, batch 1': async (p) => {
      const t0 = now()
      for (let i = 0; i < N_SINGLE; i++) await p.run(BASE[i % BASE.length])
      return N_SINGLE / ((now() - t0) / 1000)
    },
    'runBatch, 1,024 records': async (p) => {
      const t0 = now()
      for (let i = 0; i < N_BATCHES; i++) await p.runBatch(batch)
      return (N_BATCHES * BATCH) / ((now() - t0) / 1000)
    },
  }
  const rates = {}
  for (const mode of Object.keys(modes)) rates[mode] = { plain: [], monitored: [], metrics: [] }
  for (let r = 0; r < ROUNDS; r++) {
    for (const [mode, f] of Object.entries(modes)) {
      const order = r % 2 === 0 ? ['plain', 'monitored', 'metrics'] : ['metrics', 'monitored', 'plain']
      for (const which of order) {
        const p = pipelines[which]
        const { result } = await cleanRound(`${mode} ${which}`, () => f(p))
        rates[mode][which].push(result)
      }
    }
    log(`round ${r + 1}/${ROUNDS} done`)
  }
  const report = monitored.drift()
  const out = {}
  for (const [mode, r] of Object.entries(rates)) {
    const p = pct(sorted(r.plain), 0.5)
    const m = pct(sorted(r.monitored), 0.5)
    const b = pct(sorted(r.metrics), 0.5)
    out[mode] = {
      plain_records_per_s: Math.round(p),
      monitored_records_per_s: Math.round(m),
      ratio: round(m / p, 3),
      cost_ns_per_record: round((1 / m - 1 / p) * 1e9, 0),
      with_metrics_records_per_s: Math.round(b),
      metrics_ratio_to_monitored: round(b / m, 3),
      metrics_cost_ns_per_record: round((1 / b - 1 / m) * 1e9, 0),
    }
  }
  await Promise.all([plain.dispose(), monitored.dispose(), withMetrics.dispose()])
  return { rounds: ROUNDS, window: WINDOW, checkEvery: CHECK_EVERY, features: report.features.length, checks: report.checks, results: out }
}
