// Drift monitoring on the penguins pipeline: a reference profile from one
// half of the data set, the other half raising no alarm, and a shifted copy
// raising one within 50 records; reports, events and bad monitor specs.
// The statistics themselves are checked against SciPy in
// crates/oxinfer-core/tests/drift.rs.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { type DriftEvent, Pipeline, type PipelineSpec, serve } from '../index.js'
import { fixture, penguinTensors, readJson, rejectsWith, root, throwsWith } from './helpers'

const dir = fixture('penguins')
const spec = (): PipelineSpec => JSON.parse(readFileSync(join(dir, 'pipeline.json'), 'utf8'))
const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')
// A seeded shuffle, then halves: the reference and the held-out part (the
// file is ordered by species, and sexes alternate, so neither a prefix nor
// even/odd rows would be a fair split), streamed in that shuffled order.
let seed = 2026
const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32
const order = records.map((_, i) => i)
for (let i = order.length - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1))
  ;[order[i], order[j]] = [order[j], order[i]]
}
const half = Math.floor(records.length / 2)
const reference = order.slice(0, half).map((i) => records[i])
const heldOut = order.slice(half).map((i) => records[i])

/** Waits until `cond` holds (checks run off the request path, events arrive through the hub). */
async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** Runs `rows` in batches of 25, each batch's check finished before the next. */
async function feed(p: Pipeline, rows: Record<string, unknown>[]): Promise<void> {
  for (let i = 0; i < rows.length; i += 25) {
    const before = p.drift()!.checks
    const chunk = rows.slice(i, i + 25)
    await p.runBatch(chunk)
    // A full batch of checkEvery (25) records always starts a check.
    if (chunk.length === 25) await until(() => p.drift()!.checks > before, 'a check')
  }
  // Events of the last check reach the listeners through the hub.
  await new Promise((r) => setTimeout(r, 20))
}

async function monitored(window = 100, checkEvery = 25) {
  const plain = await Pipeline.create(spec(), { baseDir: dir })
  const profile = await plain.profile(reference)
  await plain.dispose()
  return { profile, p: await Pipeline.create({ ...spec(), monitor: { reference: profile, window, checkEvery, minIntervalMs: 0 } }, { baseDir: dir }) }
}

describe('drift monitoring', () => {
  it('profiles the reference: every number and category field, the label and its score', async () => {
    const { profile, p } = await monitored()
    expect(profile.rows).toBe(reference.length)
    const byName = Object.fromEntries(profile.features.map((f) => [f.name, f]))
    expect(Object.keys(byName).sort()).toEqual(['bill_depth_mm', 'bill_length_mm', 'body_mass_g', 'flipper_length_mm', 'island', 'label', 'score', 'sex'])
    const island = byName.island
    expect(island.type === 'category' && island.counts.map(([c]) => c)).toEqual(['Biscoe', 'Dream', 'Torgersen'])
    const bill = byName.bill_length_mm
    expect(bill.type).toBe('number')
    if (bill.type === 'number') {
      expect(bill.edges).toHaveLength(9)
      expect(bill.counts.reduce((a, b) => a + b, 0) + bill.missing).toBe(reference.length)
    }
    const label = byName.label
    expect(label.role).toBe('output')
    expect(label.type === 'category' && label.counts.map(([c]) => c).sort()).toEqual(['Adelie', 'Chinstrap', 'Gentoo'])
    await p.dispose()
  })

  it('raises nothing on held-out data, and an alarm within 50 records of a shift, then clears', async () => {
    const { p } = await monitored()
    const events: DriftEvent[] = []
    p.on('drift', (e) => events.push(e))
    await feed(p, heldOut)
    const calm = p.drift()!
    expect(calm.records).toBe(heldOut.length)
    expect(calm.drifted).toEqual([])
    expect(events).toEqual([])
    // The same records with bills 8 mm longer.
    const shifted = heldOut.map((r) => ({ ...r, bill_length_mm: typeof r.bill_length_mm === 'number' ? r.bill_length_mm + 8 : r.bill_length_mm }))
    let sent = 0
    while (sent < 50 && !events.some((e) => e.feature.name === 'bill_length_mm')) {
      await feed(p, shifted.slice(sent, sent + 25))
      sent += 25
    }
    const alarm = events.find((e) => e.feature.name === 'bill_length_mm')
    expect(alarm, `no alarm after ${sent} shifted records: ${JSON.stringify(p.drift())}`).toBeDefined()
    expect(alarm!.feature.drifted).toBe(true)
    expect(alarm!.feature.psi!).toBeGreaterThan(0.1)
    expect(alarm!.feature.ksP!).toBeLessThan(0.001)
    expect(p.drift()!.drifted).toContain('bill_length_mm')
    // Back to normal records: the window refills and the alarm clears.
    await feed(p, heldOut.slice(0, 150))
    const cleared = events.filter((e) => e.feature.name === 'bill_length_mm')
    expect(cleared.at(-1)!.feature.drifted).toBe(false)
    expect(p.drift()!.drifted).not.toContain('bill_length_mm')
    await p.dispose()
  })

  it('stops sending once the listener is removed, and reports nothing without a monitor', async () => {
    const { p } = await monitored(50, 10)
    const seen: DriftEvent[] = []
    const l = (e: DriftEvent) => seen.push(e)
    p.on('drift', l).off('drift', l)
    const shifted = heldOut.map((r) => ({ ...r, island: 'Torgersen' }))
    await feed(p, shifted.slice(0, 100))
    expect(seen).toEqual([])
    expect(p.drift()!.drifted).toContain('island')
    await p.dispose()
    const plain = await Pipeline.create(spec(), { baseDir: dir })
    expect(plain.drift()).toBeNull()
    throwsWith(() => plain.on('drift', () => {}), 'ERR_INVALID_ARGUMENT')
    await plain.dispose()
  })

  it('reads scores as callers get them: post-processing does not look like drift', async () => {
    // Softmax over the model's probabilities changes every score; the
    // reference and the live windows must both see the changed ones.
    const post = { ...spec(), output: { ...spec().output, postprocess: [{ op: 'softmax' }, ...(spec().output.postprocess ?? [])] } } as PipelineSpec
    const plain = await Pipeline.create(post, { baseDir: dir })
    const reference1 = await plain.profile(reference)
    await plain.dispose()
    const p = await Pipeline.create({ ...post, monitor: { reference: reference1, window: 100, checkEvery: 25, minIntervalMs: 0 } }, { baseDir: dir })
    await feed(p, heldOut)
    expect(p.drift()!.drifted).toEqual([])
    // Unseen categories beyond the cap share one bin; the window stays bounded.
    await p.runBatch(Array.from({ length: 400 }, (_, i) => ({ ...heldOut[i % heldOut.length], island: `island-${i}` })))
    const island = p.drift()!.features.find((f) => f.name === 'island')!
    expect(island.records).toBe(100)
    expect(island.drifted).toBe(true)
    await p.dispose()
  })

  it('refuses monitor specs that do not fit the pipeline', async () => {
    const { profile } = await monitored()
    const bad = { ...profile, features: [{ name: 'wingspan', role: 'input', type: 'number', edges: [1], counts: [1, 1], missing: 0, sample: [0, 2] }] }
    const e = await rejectsWith(Pipeline.create({ ...spec(), monitor: { reference: bad as never } }, { baseDir: dir }), 'ERR_INVALID_SPEC')
    expect(e.message).toMatch(/wingspan/)
    await rejectsWith(Pipeline.create({ ...spec(), monitor: { reference: profile, window: 5 } }, { baseDir: dir }), 'ERR_INVALID_SPEC')
    const p = await Pipeline.create(spec(), { baseDir: dir })
    await rejectsWith(p.profile([]), 'ERR_INVALID_ARGUMENT')
    await p.dispose()
  })
})

describe('drift monitoring in the server', () => {
  it('answers GET /v2/models/{m}/drift and exports the statistics and alarms as metrics', async () => {
    const { profile, p } = await monitored()
    await p.dispose()
    const repo = mkdtempSync(join(tmpdir(), 'oxinfer-drift-'))
    mkdirSync(join(repo, 'penguins', '1'), { recursive: true })
    copyFileSync(join(dir, 'penguins.onnx'), join(repo, 'penguins', '1', 'penguins.onnx'))
    writeFileSync(join(repo, 'penguins', '1', 'pipeline.json'), JSON.stringify({ ...spec(), monitor: { reference: profile, window: 100, checkEvery: 25, minIntervalMs: 0 } }))
    mkdirSync(join(repo, 'plain', '1'), { recursive: true })
    copyFileSync(join(dir, 'penguins.onnx'), join(repo, 'plain', '1', 'penguins.onnx'))
    writeFileSync(join(repo, 'plain', '1', 'pipeline.json'), JSON.stringify(spec()))
    const server = await serve({ repository: repo, port: 0 })
    try {
      const url = server.address!.url
      const infer = (rows: Record<string, unknown>[]) =>
        // Missing numbers as the NaN token, as Triton's clients write them.
        fetch(`${url}/v2/models/penguins/infer`, { method: 'POST', body: JSON.stringify({ inputs: penguinTensors(rows) }).replaceAll('"NaN"', 'NaN') }).then(async (r) => {
          expect(r.status, await r.clone().text()).toBe(200)
        })
      for (let i = 0; i < heldOut.length; i += 25) await infer(heldOut.slice(i, i + 25))
      const calm = await (await fetch(`${url}/v2/models/penguins/drift`)).json()
      expect(calm.model).toBe('penguins')
      expect(calm.drifted).toEqual([])
      expect(calm.features.map((f: { name: string }) => f.name)).toContain('label')
      const shifted = heldOut.map((r) => ({ ...r, bill_length_mm: typeof r.bill_length_mm === 'number' ? r.bill_length_mm + 8 : r.bill_length_mm }))
      await infer(shifted.slice(0, 25))
      await infer(shifted.slice(25, 50))
      // The reports are computed when asked; the alarm gauge too.
      const drift = await (await fetch(`${url}/v2/models/penguins/versions/1/drift`)).json()
      expect(drift.drifted).toContain('bill_length_mm')
      const metrics = await (await fetch(`${url}/metrics`)).text()
      // Labels in the exposition's (alphabetical) order.
      expect(metrics).toMatch(/oxinfer_drift_alarm\{feature="bill_length_mm",model="penguins",version="1"\} 1/)
      expect(metrics).toMatch(/oxinfer_drift_alarm\{feature="body_mass_g",model="penguins",version="1"\} 0/)
      expect(metrics).toMatch(/oxinfer_drift_statistic\{feature="bill_length_mm",model="penguins",statistic="psi",version="1"\} [0-9.]+/)
      // A model without a monitor, or none at all: 4xx with a reason.
      const none = await fetch(`${url}/v2/models/plain/drift`)
      expect(none.status).toBe(400)
      expect((await none.json()).error).toMatch(/no drift monitor/)
      expect((await fetch(`${url}/v2/models/nowhere/drift`)).status).toBe(404)
    } finally {
      await server.close()
    }
  })
})

describe('feedback and online quality', () => {
  const { species } = readJson<{ species: string[] }>('penguins/records.json')
  const withIds = records.map((r, i) => ({ ...r, id: `p${i}` }))
  const feedbackSpec = async (): Promise<PipelineSpec> => {
    const { profile, p } = await monitored()
    await p.dispose()
    const s = spec()
    return { ...s, fields: [...s.fields, { name: 'id', type: 'category' }], monitor: { reference: profile, feedback: { idField: 'id', keep: 1000, window: 500 } } }
  }

  it('scores outcomes fed back by id exactly, and refuses bad ones', async () => {
    const p = await Pipeline.create(await feedbackSpec(), { baseDir: dir })
    const results = (await p.runBatch(withIds)) as { label: string }[]
    expect(p.quality()).toEqual({ feedback: 0, window: 0 })
    for (let i = 0; i < withIds.length; i++) p.feedback(`p${i}`, species[i])
    const q = p.quality()!
    const right = results.filter((r, i) => r.label === species[i]).length
    expect(q.feedback).toBe(records.length)
    expect(q.accuracy).toBeCloseTo(right / records.length, 12)
    // Macro recall by hand.
    const classes = ['Adelie', 'Chinstrap', 'Gentoo']
    const recall = classes.map((c) => results.filter((r, i) => species[i] === c && r.label === c).length / species.filter((s) => s === c).length)
    expect(q.recall).toBeCloseTo(recall.reduce((a, b) => a + b, 0) / 3, 12)
    expect(q.auc).toBeGreaterThan(0.95)
    // Refused: a second outcome, an unknown id, a number for a class, a class the model does not have.
    expect(throwsWith(() => p.feedback('p0', species[0]), 'ERR_INVALID_ARGUMENT').message).toMatch(/already has its outcome/)
    expect(throwsWith(() => p.feedback('nope', 'Adelie'), 'ERR_INVALID_ARGUMENT').message).toMatch(/no prediction with id 'nope'/)
    await p.runBatch([{ ...withIds[0], id: 'fresh' }])
    expect(throwsWith(() => p.feedback('fresh', 1), 'ERR_INVALID_ARGUMENT').message).toMatch(/give the true label as a string/)
    expect(throwsWith(() => p.feedback('fresh', 'Emperor'), 'ERR_INVALID_ARGUMENT').message).toMatch(/not one of the classes/)
    throwsWith(() => p.feedback('', 'Adelie'), 'ERR_INVALID_ARGUMENT')
    p.feedback('fresh', 'Adelie')
    await p.dispose()
    // Without a feedback section: refused, and no quality.
    const plain = await Pipeline.create(spec(), { baseDir: dir })
    expect(plain.quality()).toBeNull()
    throwsWith(() => plain.feedback('p0', 'Adelie'), 'ERR_INVALID_ARGUMENT')
    await plain.dispose()
    // The id field as a reference feature: ids are no distribution.
    const withIdProfile = await feedbackSpec()
    const idFeature = { name: 'id', role: 'input', type: 'category', counts: [['p0', 1]], missing: 0 }
    const refWithId = { ...withIdProfile.monitor!.reference, features: [...withIdProfile.monitor!.reference.features, idFeature] }
    await rejectsWith(Pipeline.create({ ...withIdProfile, monitor: { ...withIdProfile.monitor!, reference: refWithId as never } }, { baseDir: dir }), 'ERR_INVALID_SPEC')
    // An id field that is not a category field of the spec.
    const bad = await feedbackSpec()
    await rejectsWith(Pipeline.create({ ...bad, monitor: { ...bad.monitor!, feedback: { idField: 'bill_length_mm' } } }, { baseDir: dir }), 'ERR_INVALID_SPEC')
  })

  it('takes outcomes over HTTP: 200, then 404, 409 and 400 for bad ones, and exports quality', async () => {
    const s = await feedbackSpec()
    const repo = mkdtempSync(join(tmpdir(), 'oxinfer-feedback-'))
    mkdirSync(join(repo, 'penguins', '1'), { recursive: true })
    copyFileSync(join(dir, 'penguins.onnx'), join(repo, 'penguins', '1', 'penguins.onnx'))
    writeFileSync(join(repo, 'penguins', '1', 'pipeline.json'), JSON.stringify(s))
    const server = await serve({ repository: repo, port: 0 })
    try {
      const url = server.address!.url
      const rows = withIds.slice(0, 40)
      const inputs = [...penguinTensors(rows), { name: 'id', datatype: 'BYTES', shape: [rows.length], data: rows.map((r) => r.id) }]
      const r = await fetch(`${url}/v2/models/penguins/infer`, { method: 'POST', body: JSON.stringify({ inputs }).replaceAll('"NaN"', 'NaN') })
      expect(r.status, await r.clone().text()).toBe(200)
      const post = (body: unknown) => fetch(`${url}/v2/models/penguins/feedback`, { method: 'POST', body: JSON.stringify(body) })
      const ok = await post({ feedback: rows.map((row, i) => ({ id: row.id, truth: species[i] })) })
      expect(ok.status).toBe(200)
      const body = await ok.json()
      expect(body.accepted).toBe(40)
      expect(body.quality.feedback).toBe(40)
      expect((await post({ id: 'p0', truth: species[0] })).status).toBe(409)
      expect((await post({ id: 'nope', truth: 'Adelie' })).status).toBe(404)
      expect((await post({ id: 'p0', truth: 3 })).status).toBe(400)
      expect((await post({ id: 'p0' })).status).toBe(400)
      expect((await fetch(`${url}/v2/models/penguins/feedback`, { method: 'POST', body: '{' })).status).toBe(400)
      const metrics = await (await fetch(`${url}/metrics`)).text()
      expect(metrics).toMatch(/oxinfer_quality\{metric="accuracy",model="penguins",version="1"\} (0\.\d+|1)/)
      expect(metrics).toMatch(/oxinfer_quality\{metric="feedback",model="penguins",version="1"\} 40/)
    } finally {
      await server.close()
    }
  })
})

describe('the prediction log', () => {
  const { species } = readJson<{ species: string[] }>('penguins/records.json')
  const withIds = records.map((r, i) => ({ ...r, id: `p${i}` }))
  /** A folder with the penguins model and a spec whose monitor logs predictions. */
  async function logged(log: Record<string, unknown>) {
    const work = mkdtempSync(join(tmpdir(), 'oxinfer-log-'))
    copyFileSync(join(dir, 'penguins.onnx'), join(work, 'penguins.onnx'))
    const plain = await Pipeline.create(spec(), { baseDir: dir })
    const reference = await plain.profile(reference0())
    await plain.dispose()
    const s = spec()
    const full = { ...s, fields: [...s.fields, { name: 'id', type: 'category' }], monitor: { reference, feedback: { idField: 'id' }, log: { path: 'log.sqlite', ...log } } } as PipelineSpec
    writeFileSync(join(work, 'pipeline.json'), JSON.stringify(full))
    return work
  }
  const reference0 = () => records.slice(0, 100)
  const lines = (path: string) => readFileSync(path, 'utf8').trim().split('\n')

  it('keeps predictions with their inputs and outcomes, and exports them as JSONL and CSV', async () => {
    const work = await logged({ inputs: 'values', flushMs: 50 })
    const p = await Pipeline.load(join(work, 'pipeline.json'))
    const rows = withIds.slice(0, 40)
    const results = (await p.runBatch(rows)) as { label: string }[]
    for (let i = 0; i < 10; i++) p.feedback(`p${i}`, species[i])
    p.flushLog()
    const n = await p.exportLog(join(work, 'out.jsonl'))
    expect(n).toBe(40)
    const out = lines(join(work, 'out.jsonl')).map((l) => JSON.parse(l))
    expect(out.map((r) => r.id)).toEqual(rows.map((r) => r.id))
    out.forEach((r, i) => {
      expect(r.label).toBe(results[i].label)
      expect(r.scores).toHaveLength(3)
      // The inputs as they arrived, before imputation and scaling.
      expect(r.inputs.bill_length_mm).toBe(rows[i].bill_length_mm ?? null)
      expect(r.inputs.island).toBe(rows[i].island)
      expect(r.outcome).toBe(i < 10 ? species[i] : null)
    })
    expect(await p.exportLog(join(work, 'out.csv'))).toBe(40)
    const csv = lines(join(work, 'out.csv'))
    expect(csv[0]).toBe('id,ts,inputs,label,scores,outcome,outcome_ts')
    expect(csv).toHaveLength(41)
    await rejectsWith(p.exportLog(join(work, 'nowhere', 'out.jsonl')), 'ERR_FILE')
    await p.dispose()
  })

  it('keeps the newest maxRows, and digests the inputs by default', async () => {
    const work = await logged({ maxRows: 30, flushMs: 50 })
    const p = await Pipeline.load(join(work, 'pipeline.json'))
    await p.runBatch(withIds.slice(0, 40))
    await p.runBatch(withIds.slice(40, 50))
    p.flushLog()
    expect(await p.exportLog(join(work, 'out.jsonl'))).toBe(30)
    const out = lines(join(work, 'out.jsonl')).map((l) => JSON.parse(l))
    expect(out[0].id).toBe('p20')
    expect(out.at(-1).id).toBe('p49')
    expect(out[0].inputs).toMatch(/^[0-9a-f]{16}$/)
    await p.dispose()
  })

  it('survives kill -9 of its process, losing at most the unflushed batch', async () => {
    const work = await logged({ flushMs: 300, batchRows: 100_000 })
    const script = `
      const { Pipeline } = require(${JSON.stringify(join(root, 'index.js'))})
      const records = ${JSON.stringify(withIds.slice(0, 275))}
      ;(async () => {
        const p = await Pipeline.load(${JSON.stringify(join(work, 'pipeline.json'))})
        for (let i = 0; i < 200; i += 25) await p.runBatch(records.slice(i, i + 25))
        // Longer than flushMs: the first 200 are committed by the writer's own timer.
        await new Promise((r) => setTimeout(r, 900))
        for (let i = 200; i < 275; i += 25) await p.runBatch(records.slice(i, i + 25))
        process.stdout.write('ready\\n')
        setInterval(() => {}, 1000)
      })()`
    const { spawn } = await import('node:child_process')
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve())
      child.on('exit', (code) => reject(new Error(`the child exited early (${code})`)))
    })
    child.kill('SIGKILL')
    await new Promise((r) => child.once('exit', r))
    const p = await Pipeline.load(join(work, 'pipeline.json'))
    const n = await p.exportLog(join(work, 'after.jsonl'))
    // The 75 of the last, unflushed batch may be lost; the 200 committed before may not.
    expect(n).toBeGreaterThanOrEqual(200)
    expect(n).toBeLessThanOrEqual(275)
    const ids = lines(join(work, 'after.jsonl')).map((l) => JSON.parse(l).id)
    expect(ids.slice(0, 200)).toEqual(withIds.slice(0, 200).map((r) => r.id))
    await p.dispose()
  })
})
