// The `feedback` switch policy from JS, on real models: the penguins
// classifier (99.7% accurate) against a twin that sees only body mass
// (73%), with the data set's true species fed back by request id. The better
// challenger is promoted and then serves every request; the worse one is
// retired; shadow mode serves the champion's answers while scoring both;
// bad outcomes and bad specs get typed errors.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { Graph, type GraphSpec, serve, Session, Tensor, type TrialStats } from '../index.js'
import { fixture, readJson, rejectsWith } from './helpers'

const STRONG = fixture('penguins/penguins.onnx')
const WEAK = fixture('penguins/penguins_weak.onnx')
const data = readJson<{ classes: string[]; features: number[][]; species: number[] }>('penguins/features.json')

const spec = (policy: Record<string, unknown>): GraphSpec => ({
  version: 1,
  inputs: { float_input: { type: 'float32', shape: [-1, 10] } },
  nodes: [
    {
      name: 'species',
      kind: 'switch',
      inputs: { float_input: 'float_input' },
      variants: [
        { model: 'weak', quality: 0.9 },
        { model: 'strong', quality: 0.5 },
      ],
      policy: { kind: 'feedback', metric: 'accuracy', output: 'probabilities', ...policy },
    },
  ],
  outputs: { probabilities: 'species.probabilities', label: 'species.label' },
})

const row = (i: number) => new Tensor('float32', Float32Array.from(data.features[i]), [1, 10])
/** A fixed permutation of the rows, so that every stream is the same. */
const order = Array.from({ length: data.species.length }, (_, i) => (i * 149) % data.species.length)

/** Runs requests (32 at a time, so they batch) with their outcomes fed back, until the trial decides or `limit` runs. */
async function stream(g: Graph, limit: number, truth: (i: number) => string | number = (i) => data.species[i]): Promise<{ sent: number; trial: TrialStats }> {
  let sent = 0
  const trial = () => g.switchStats()[0].trial!
  while (sent < limit && trial().status === 'running') {
    const ids = Array.from({ length: 32 }, (_, k) => `r${sent + k}`)
    const rows = ids.map((_, k) => order[(sent + k) % order.length])
    await Promise.all(ids.map((id, k) => g.run({ float_input: row(rows[k]) }, { id })))
    ids.forEach((id, k) => g.feedback(id, truth(rows[k])))
    sent += ids.length
  }
  return { sent, trial: trial() }
}

describe('feedback switch', () => {
  it('promotes a truly better challenger, which then serves every request', async () => {
    const g = await Graph.create(spec({ challenger: 'strong', split: 0.5, minSamples: 50 }), { models: { weak: WEAK, strong: STRONG } })
    try {
      expect(g.takesFeedback).toBe(true)
      const { sent, trial } = await stream(g, 5000)
      expect(trial.status).toBe('promoted')
      expect(trial.decision).toMatchObject({ status: 'promoted' })
      const d = trial.decision!
      expect(d.delta).toBeLessThan(0)
      expect(d.logRatio).toBeGreaterThanOrEqual(d.threshold)
      expect(d.threshold).toBeCloseTo(Math.log(20), 12)
      // Losses are error rates: near each model's accuracy over the rows seen.
      expect(d.loss[1]).toBeLessThan(0.05)
      expect(d.loss[0]).toBeGreaterThan(0.15)
      expect(sent).toBeLessThan(1000)
      const stats = g.switchStats()[0]
      expect(stats.current).toBe(1)
      expect(stats.events.at(-1)).toMatchObject({ from: 0, to: 1 })
      // From now on, the challenger answers, and its answers are the strong model's.
      const strong = await Session.create(STRONG)
      const seen: number[] = []
      for (let i = 0; i < 20; i++) {
        const r = await g.run({ float_input: row(i) }, { onTiming: (t) => seen.push(t.nodes[0].variant!) })
        const want = await strong.run({ float_input: row(i) })
        expect(Array.from(r.probabilities!.data as Float32Array)).toEqual(Array.from(want.probabilities.data as Float32Array))
      }
      await strong.dispose()
      expect(new Set(seen)).toEqual(new Set([1]))
    } finally {
      await g.dispose()
    }
  })

  it('retires a worse challenger and keeps the champion; labels map to classes', async () => {
    const g = await Graph.create(
      {
        ...spec({ challenger: 'weak', champion: 'strong', split: 0.5, minSamples: 50, labels: data.classes }),
      },
      { models: { weak: WEAK, strong: STRONG } },
    )
    try {
      const { trial } = await stream(g, 5000, (i) => data.classes[data.species[i]])
      expect(trial.status).toBe('retired')
      expect(trial.decision!.delta).toBeGreaterThan(0)
      expect(g.switchStats()[0].current).toBe(1)
      const seen: number[] = []
      for (let i = 0; i < 10; i++) await g.run({ float_input: row(i) }, { id: `after${i}`, onTiming: (t) => seen.push(t.nodes[0].variant!) })
      expect(new Set(seen)).toEqual(new Set([1]))
      // Late outcomes are accepted and counted, and change nothing.
      expect(g.feedback('after0', data.classes[data.species[0]])).toEqual([])
      expect(g.switchStats()[0].trial!.status).toBe('retired')
    } finally {
      await g.dispose()
    }
  })

  it('in shadow mode serves the champion while scoring the challenger on the same requests', async () => {
    const weak = await Session.create(WEAK)
    const g = await Graph.create(spec({ challenger: 'strong', mode: 'shadow', split: 1, minSamples: 1000000 }), { models: { weak, strong: STRONG } })
    try {
      for (let i = 0; i < 64; i++) {
        const r = await g.run({ float_input: row(order[i]) }, { id: `s${i}` })
        const want = await weak.run({ float_input: row(order[i]) })
        expect(Array.from(r.label!.data as BigInt64Array)).toEqual(Array.from(want.label.data as BigInt64Array))
      }
      // The shadow runs complete on their own: wait until all 64 are kept.
      for (let t = 0; t < 200 && g.switchStats()[0].trial!.shadowRuns < 64; t++) await new Promise((r) => setTimeout(r, 10))
      for (let i = 0; i < 64; i++) g.feedback(`s${i}`, data.species[order[i]])
      const t = g.switchStats()[0].trial!
      expect(t).toMatchObject({ status: 'running', mode: 'shadow', samples: [64, 64], shadowRuns: 64, shadowFailures: 0, pending: 0 })
      // Both scored on the same 64 rows: their error rates over those rows, exactly.
      const wrong = (m: Session) => Promise.all(order.slice(0, 64).map(async (i) => Number((await m.run({ float_input: row(i) })).label.data[0]) !== data.species[i]))
      const strong = await Session.create(STRONG)
      const [w, s] = [await wrong(weak), await wrong(strong)]
      await strong.dispose()
      expect(t.loss[0]).toBeCloseTo(w.filter(Boolean).length / 64, 12)
      expect(t.loss[1]).toBeCloseTo(s.filter(Boolean).length / 64, 12)
    } finally {
      await g.dispose()
      await weak.dispose()
    }
  })

  it('refuses bad outcomes, bad ids and bad policies with typed errors', async () => {
    const g = await Graph.create(spec({ challenger: 'strong', labels: data.classes }), { models: { weak: WEAK, strong: STRONG } })
    try {
      await g.run({ float_input: new Tensor('float32', Float32Array.from([...data.features[0], ...data.features[1]]), [2, 10]) }, { id: 'two' })
      expect(() => g.feedback('two', 0)).toThrow(/2 row\(s\); give one outcome per row/)
      expect(() => g.feedback('two', ['Gentoo', 'Dragon'])).toThrow(/not one of the classes/)
      expect(() => g.feedback('two', [0.5, 1])).toThrow(/not a class index/)
      expect(g.feedback('two', [0, 'Adelie'])).toEqual([])
      expect(() => g.feedback('two', [0, 0])).toThrow(/already has its outcome/)
      expect(() => g.feedback('nope', 0)).toThrow(/no prediction with id 'nope'/)
      for (const bad of [() => g.feedback('', 0), () => g.feedback('x', []), () => g.feedback('x', {} as never)]) {
        expect(bad).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
      }
      await rejectsWith(g.run({ float_input: row(0) }, { id: '' }), 'ERR_INVALID_ARGUMENT')
      // A request without an id is routed but never kept; one that names its variant is served, not scored.
      await g.run({ float_input: row(0) })
      await g.run({ float_input: row(0) }, { id: 'chosen', variants: { species: 'strong' } })
      expect(g.switchStats()[0].trial!.pending).toBe(0)
      expect(() => g.feedback('chosen', 0)).toThrow(/no prediction with id 'chosen'/)
    } finally {
      await g.dispose()
    }
    const plain = await Graph.create({ ...spec({}), nodes: [{ ...spec({}).nodes[0], policy: { kind: 'explicit' } }] }, { models: { weak: WEAK, strong: STRONG } })
    expect(plain.takesFeedback).toBe(false)
    expect(() => plain.feedback('a', 1)).toThrow(/takes no feedback/)
    await plain.dispose()
    const bad = async (policy: Record<string, unknown>, pattern: RegExp) => {
      const e = await rejectsWith(Graph.create(spec(policy), { models: { weak: WEAK, strong: STRONG } }), 'ERR_INVALID_SPEC')
      expect(e.message).toMatch(pattern)
    }
    await bad({ challenger: 'other' }, /no variant 'other' \(variants: 'weak', 'strong'\)/)
    await bad({ challenger: 'strong', champion: 'strong' }, /both champion and challenger/)
    await bad({ challenger: 'strong', split: 0 }, /split must be above 0/)
    await bad({ challenger: 'strong', confidence: 1 }, /confidence must be between/)
    await bad({ challenger: 'strong', output: 'nope' }, /no output 'nope'/)
    await bad({ challenger: 'strong', metric: 'auc' }, /unknown variant `auc`|auc/)
    await bad({ challenger: 'strong', minSamples: 200, maxSamples: 100 }, /maxSamples \(100\) is below minSamples \(200\)/)
    await bad({ challenger: 'strong', treshold: 1 }, /treshold/)
    await bad({ challenger: 'strong', split: 1 }, /split 1 would leave the champion no requests/)
    await bad({ challenger: 'strong', minSamples: 1 }, /minSamples must be at least 2/)
  })

  it('in the server: ids echoed (or made), outcomes by POST .../feedback, trial metrics and stats', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'oxinfer-trial-'))
    mkdirSync(join(repo, 'species', '1'), { recursive: true })
    cpSync(WEAK, join(repo, 'species', '1', 'weak.onnx'))
    cpSync(STRONG, join(repo, 'species', '1', 'strong.onnx'))
    const s = spec({ challenger: 'strong', split: 0.5, minSamples: 50, labels: data.classes })
    ;(s.nodes[0] as any).variants = [
      { model: 'weak.onnx', name: 'weak', quality: 0.9 },
      { model: 'strong.onnx', name: 'strong', quality: 0.5 },
    ]
    writeFileSync(join(repo, 'species', '1', 'graph.json'), JSON.stringify(s))
    const server = await serve({ repository: repo, port: 0 })
    const url = server.address!.url
    const infer = (i: number, id?: string) =>
      fetch(`${url}/v2/models/species/infer`, { method: 'POST', body: JSON.stringify({ ...(id ? { id } : {}), inputs: [{ name: 'float_input', datatype: 'FP32', shape: [1, 10], data: data.features[i] }] }) }).then((r) => r.json())
    const feedback = (body: unknown) => fetch(`${url}/v2/models/species/feedback`, { method: 'POST', body: JSON.stringify(body) })
    try {
      expect(server.failures).toEqual([])
      // The client's id is echoed; without one, the server makes one.
      expect((await infer(0, 'client-1')).id).toBe('client-1')
      const made = (await infer(1)).id as string
      expect(made).toMatch(/^ox-[0-9a-f]+-\d+$/)
      let r = await feedback({ feedback: [{ id: 'client-1', truth: data.species[0] }, { id: made, truth: [data.classes[data.species[1]]] }] })
      expect(r.status).toBe(200)
      expect(await r.json()).toMatchObject({ accepted: 2, decisions: [], trials: [{ node: 'species', trial: { status: 'running', feedback: 2 } }] })
      // Refusals: 404 unknown id, 409 a second outcome, 400 a wrong truth or body.
      expect((await feedback({ id: 'nope', truth: 0 })).status).toBe(404)
      r = await feedback({ feedback: [{ id: (await infer(2, 'x2')).id, truth: 0 }, { id: 'client-1', truth: 0 }] })
      expect([r.status, r.headers.get('x-oxinfer-accepted')]).toEqual([409, '1'])
      expect((await feedback({ id: (await infer(3, 'x3')).id, truth: 'Dragon' })).status).toBe(400)
      expect((await feedback({ id: 'x3', truth: {} })).status).toBe(400)
      expect((await feedback({ id: 'x3', truth: [] })).status).toBe(400)
      // Stream until promoted.
      let decisions: unknown[] = []
      for (let k = 0; k < 3000 && decisions.length === 0; k += 16) {
        const ids = await Promise.all(Array.from({ length: 16 }, (_, j) => infer(order[(k + j) % order.length]).then((b) => b.id as string)))
        const body = await (await feedback({ feedback: ids.map((id, j) => ({ id, truth: data.species[order[(k + j) % order.length]] })) })).json()
        decisions = body.decisions
      }
      expect(decisions).toMatchObject([{ node: 'species', decision: { status: 'promoted' } }])
      const metrics = await (await fetch(`${url}/metrics`)).text()
      expect(metrics).toMatch(/^oxinfer_graph_trial_status\{model="species",node="species",version="1"\} 1$/m)
      expect(metrics).toMatch(/^oxinfer_graph_trial_samples\{arm="challenger",model="species",node="species",version="1"\} \d+$/m)
      expect(metrics).toMatch(/^oxinfer_graph_trial_loss\{arm="champion",model="species",node="species",version="1"\} 0\.\d+/m)
      // Each node's time per request, as a histogram.
      const count = metrics.match(/^oxinfer_graph_node_duration_us_count\{model="species",node="species",version="1"\} (\d+)$/m)
      expect(Number(count![1])).toBeGreaterThan(100)
      expect(metrics).toMatch(/^oxinfer_graph_node_queue_duration_us_bucket\{model="species",node="species",version="1",le="\+Inf"\} \d+$/m)
      const stats = (await (await fetch(`${url}/v2/models/species/stats`)).json()).model_stats[0]
      expect(stats.graph_switches[0]).toMatchObject({ node: 'species', policy: 'feedback', current: 1, trial: { status: 'promoted' } })
      // A graph has no drift report: refused clearly.
      expect((await fetch(`${url}/v2/models/species/drift`)).status).toBe(400)
    } finally {
      await server.close()
      rmSync(repo, { recursive: true, force: true })
    }
  })
})
