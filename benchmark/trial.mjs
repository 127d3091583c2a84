// Benchmark (issue #16): what a `feedback` switch (a champion/challenger
// trial) costs a graph request against an `explicit` switch over the same
// two models. The penguins classifier and its weaker twin
// (__test__/fixtures/penguins), one row per request, 32 requests in flight
// (so runs batch at the models), rounds alternating in one process:
//   explicit: graph.run(feeds);
//   feedback: graph.run(feeds, { id }), then graph.feedback(id, truth) for
//             each, split 0.5; minSamples is set out of reach so that the
//             trial keeps both arms busy for the whole run;
//   shadow:   the same in shadow mode, split 1 (every request also runs on
//             the challenger).
// Metric: requests per second (outcomes included for the trial modes); the
// ratio to explicit, and the cost per request in µs.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

import { FIXTURES, QUICK, cleanRound, log, now, pct, round, sorted } from './util.mjs'

const DIR = join(FIXTURES, 'penguins')
const DATA = JSON.parse(readFileSync(join(DIR, 'features.json'), 'utf8'))
const ROUNDS = QUICK ? 2 : 7
const N = QUICK ? 2000 : 10_000
const IN_FLIGHT = 32

const spec = (policy) => ({
  version: 1,
  inputs: { float_input: { type: 'float32', shape: [-1, 10] } },
  nodes: [{ name: 'species', kind: 'switch', inputs: { float_input: 'float_input' }, variants: [{ model: 'weak', quality: 0.9 }, { model: 'strong', quality: 0.5 }], policy }],
  outputs: { probabilities: 'species.probabilities' },
})

export async function run() {
  const require = createRequire(import.meta.url)
  const { Graph, Tensor } = require(join(FIXTURES, '..', '..', 'index.js'))
  const models = { weak: join(DIR, 'penguins_weak.onnx'), strong: join(DIR, 'penguins.onnx') }
  const trial = { kind: 'feedback', challenger: 'strong', metric: 'accuracy', output: 'probabilities', minSamples: 1e12 }
  const graphs = {
    explicit: await Graph.create(spec({ kind: 'explicit' }), { models }),
    feedback: await Graph.create(spec({ ...trial, split: 0.5 }), { models }),
    shadow: await Graph.create(spec({ ...trial, mode: 'shadow', split: 1 }), { models }),
  }
  const rows = DATA.features.map((f) => new Tensor('float32', Float32Array.from(f), [1, 10]))
  let next = 0
  const pass = async (name) => {
    const g = graphs[name]
    const tracked = name !== 'explicit'
    let sent = 0
    const t0 = now()
    const worker = async () => {
      while (sent < N) {
        const k = sent++
        const i = k % rows.length
        const id = `${name}-${next++}`
        await g.run({ float_input: rows[i] }, tracked ? { id } : {})
        if (tracked) g.feedback(id, DATA.species[i])
      }
    }
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
    return N / ((now() - t0) / 1000)
  }
  const rates = { explicit: [], feedback: [], shadow: [] }
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ['explicit', 'feedback', 'shadow'] : ['shadow', 'feedback', 'explicit']
    for (const name of order) {
      const { result } = await cleanRound(`trial ${name}`, () => pass(name))
      rates[name].push(result)
    }
    log(`round ${r + 1}/${ROUNDS} done`)
  }
  const base = pct(sorted(rates.explicit), 0.5)
  const results = {}
  for (const [name, list] of Object.entries(rates)) {
    const m = pct(sorted(list), 0.5)
    results[name] = { requests_per_s: Math.round(m), ratio_to_explicit: round(m / base, 3), cost_us_per_request: round((1 / m - 1 / base) * 1e6, 1) }
  }
  const t = graphs.feedback.switchStats()[0].trial
  const s = graphs.shadow.switchStats()[0].trial
  await Promise.all(Object.values(graphs).map((g) => g.dispose()))
  return { rounds: ROUNDS, requests: N, inFlight: IN_FLIGHT, results, trialLoss: t.loss, shadowLoss: s.loss, shadowRuns: s.shadowRuns }
}
