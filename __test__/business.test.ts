// Business metrics declared in a pipeline spec (`monitor.metrics`) on the
// penguins pipeline: the rate of a label, the mean score, a sum of an
// input over confident rows and a count, each equal to the same figure
// computed here from the records and the results, in total and over the
// window; exported by the server as `oxinfer_business_metric` and in its
// stats; bad declarations refused with their path.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { type BusinessMetricSpec, Pipeline, type PipelineSpec, serve } from '../index.js'
import { fixture, penguinTensors, readJson, rejectsWith } from './helpers'

const dir = fixture('penguins')
const spec = (metrics: BusinessMetricSpec[], window = 100): PipelineSpec => ({ ...JSON.parse(readFileSync(join(dir, 'pipeline.json'), 'utf8')), monitor: { window, metrics } })
const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')

const METRICS: BusinessMetricSpec[] = [
  { name: 'gentoo_rate', kind: 'rate', where: { field: 'label', eq: 'Gentoo' }, help: 'share of birds called Gentoo' },
  { name: 'mean_score', kind: 'mean', of: 'score' },
  { name: 'confident_mass_g', kind: 'sum', of: 'body_mass_g', where: { field: 'score', gte: 0.99 } },
  { name: 'off_biscoe', kind: 'count', where: { field: 'island', in: ['Dream', 'Torgersen'] } },
  { name: 'heavy_mean_bill', kind: 'mean', of: 'bill_length_mm', where: { field: 'body_mass_g', gt: 4500 } },
]

type Row = { label: string; score: number }

/** The same figures, computed here from records and results. */
function expected(recs: Record<string, unknown>[], results: Row[]) {
  const n = recs.length
  const num = (v: unknown) => (typeof v === 'number' ? v : NaN)
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null)
  const mass = recs.map((r, i) => (results[i].score >= 0.99 ? num(r.body_mass_g) : NaN)).filter((x) => !Number.isNaN(x))
  return {
    gentoo_rate: results.filter((r) => r.label === 'Gentoo').length / n,
    mean_score: mean(results.map((r) => r.score)),
    confident_mass_g: mass.reduce((a, b) => a + b, 0),
    off_biscoe: recs.filter((r) => r.island === 'Dream' || r.island === 'Torgersen').length,
    heavy_mean_bill: mean(recs.filter((r) => num(r.body_mass_g) > 4500).map((r) => num(r.bill_length_mm)).filter((x) => !Number.isNaN(x))),
  } as Record<string, number | null>
}

describe('business metrics', () => {
  it('equal the figures computed by hand, in total and over the window', async () => {
    const p = await Pipeline.create(spec(METRICS), { baseDir: dir })
    try {
      expect(p.metrics()!.map((m) => [m.name, m.rows, m.total])).toEqual([
        ['gentoo_rate', 0, null],
        ['mean_score', 0, null],
        ['confident_mass_g', 0, 0],
        ['off_biscoe', 0, 0],
        ['heavy_mean_bill', 0, null],
      ])
      // Three calls, so that the window (100) holds only the last rows.
      const results: Row[] = []
      for (const part of [records.slice(0, 150), records.slice(150, 300), records.slice(300)]) results.push(...((await p.runBatch(part)) as Row[]))
      const got = p.metrics()!
      const total = expected(records, results)
      const window = expected(records.slice(-100), results.slice(-100))
      for (const m of got) {
        expect(m.rows).toBe(records.length)
        expect(m.windowRows).toBe(100)
        expect(m.total, `${m.name} total`).toBeCloseTo(total[m.name]!, 6)
        expect(m.window, `${m.name} window`).toBeCloseTo(window[m.name]!, 6)
      }
      expect(got[0].help).toBe('share of birds called Gentoo')
      // A monitor without a reference profile runs no drift checks.
      expect(p.drift()).toMatchObject({ features: [], drifted: [] })
    } finally {
      await p.dispose()
    }
    const plain = await Pipeline.create({ ...spec([]), monitor: undefined }, { baseDir: dir })
    expect(plain.metrics()).toBeNull()
    await plain.dispose()
  })

  it('refuses bad declarations with ERR_INVALID_SPEC at their path', async () => {
    const bad = async (m: unknown, pattern: RegExp) => {
      const e = await rejectsWith(Pipeline.create(spec([m as BusinessMetricSpec]), { baseDir: dir }), 'ERR_INVALID_SPEC')
      expect(e.message).toMatch(pattern)
    }
    await bad({ name: 'x', kind: 'mean' }, /metric 'x': a mean needs 'of'/)
    await bad({ name: 'x', kind: 'sum', of: 'island' }, /'of' must name a number field or 'score', not 'island'/)
    await bad({ name: 'x', kind: 'rate', where: { field: 'species', eq: 'Gentoo' } }, /no field 'species'/)
    await bad({ name: 'x', kind: 'rate', where: { field: 'island', gt: 1 } }, /ranges apply to numbers/)
    await bad({ name: 'x', kind: 'rate', where: { field: 'score', gt: 1, lt: 2, eq: 3 } }, /one comparison/)
    await bad({ name: 'x-y', kind: 'count' }, /letters, digits and '_'/)
    await bad({ name: 'x', kind: 'median', of: 'score' }, /median/)
    await bad({ name: 'x', kind: 'count', when: {} }, /when/)
  })

  it('are exported by the server as oxinfer_business_metric and in the model stats', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'oxinfer-business-'))
    mkdirSync(join(repo, 'penguins', '1'), { recursive: true })
    copyFileSync(join(dir, 'penguins.onnx'), join(repo, 'penguins', '1', 'penguins.onnx'))
    writeFileSync(join(repo, 'penguins', '1', 'pipeline.json'), JSON.stringify(spec(METRICS, 50)))
    const server = await serve({ repository: repo, port: 0 })
    try {
      const url = server.address!.url
      const rows = records.slice(0, 120)
      const r = await fetch(`${url}/v2/models/penguins/infer`, { method: 'POST', body: JSON.stringify({ inputs: penguinTensors(rows) }).replaceAll('"NaN"', 'NaN') })
      expect(r.status).toBe(200)
      const body = await r.json()
      const label = body.outputs.find((o: { name: string }) => o.name === 'label').data as string[]
      const metrics = await (await fetch(`${url}/metrics`)).text()
      const gentoo = label.filter((l) => l === 'Gentoo').length / rows.length
      const line = metrics.split('\n').find((l) => l.startsWith('oxinfer_business_metric{metric="gentoo_rate",model="penguins",scope="total",version="1"}'))
      expect(Number(line!.split(' ').pop())).toBeCloseTo(gentoo, 9)
      expect(metrics).toMatch(/^oxinfer_business_metric\{metric="off_biscoe",model="penguins",scope="window",version="1"\} \d+$/m)
      const stats = (await (await fetch(`${url}/v2/models/penguins/stats`)).json()).model_stats[0]
      expect(stats.business_metrics.map((m: { name: string }) => m.name)).toEqual(METRICS.map((m) => m.name))
      expect(stats.business_metrics[0]).toMatchObject({ rows: 120, windowRows: 50 })
    } finally {
      await server.close()
    }
  })
})
