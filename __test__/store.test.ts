// The feature store against a real Redis server (started here on a free
// loopback port) and embedded: the penguins pipeline fed only a penguin id,
// its measurements looked up, gives the plain pipeline's results with both
// backends; TTL and missing-key policies; bulk ingestion of CSV and JSONL
// files; many pipelines sharing one store; Redis killed, paused and back
// (typed errors within the timeout, or defaults, and no hang); bad keys,
// types and configurations refused with typed errors.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { FeatureStore, type FeatureStoreBackend, Graph, Pipeline, type PipelineSpec, serve, Tensor } from '../index.js'
import { fixture, readJson, rejectsWith } from './helpers'
import { startRedis, type TestRedis } from './redis'

const dir = fixture('penguins')
const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')
const FIELDS = ['island', 'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g', 'sex']
const VIEW = {
  name: 'penguins',
  entity: 'penguin_id',
  features: [
    { name: 'island', type: 'category' as const },
    { name: 'bill_length_mm', type: 'number' as const },
    { name: 'bill_depth_mm', type: 'number' as const },
    { name: 'flipper_length_mm', type: 'number' as const },
    { name: 'body_mass_g', type: 'number' as const },
    { name: 'sex', type: 'category' as const },
  ],
}
const SCORES = {
  name: 'scores',
  entity: 'id',
  ttlMs: 1500,
  features: [
    { name: 'a', type: 'number' as const, default: 7 },
    { name: 'b', type: 'integer' as const },
    { name: 'flag', type: 'boolean' as const, default: false },
    { name: 'tier', type: 'category' as const, default: 'basic' },
  ],
}

/** The penguins pipeline with its six fields looked up by `penguin_id`. */
function lookupSpec(store: string, extra: Partial<Record<string, unknown>> = {}): PipelineSpec {
  const base = JSON.parse(readFileSync(join(dir, 'pipeline.json'), 'utf8')) as PipelineSpec
  return { ...base, fields: [{ name: 'penguin_id', type: 'category' }], preprocess: [{ op: 'lookup', store, view: 'penguins', key: 'penguin_id', missing: 'nan', ...extra } as never, ...base.preprocess] }
}

const rowsOf = () => records.map((r, i) => [`p${i}`, Object.fromEntries(FIELDS.map((f) => [f, r[f] ?? null]))] as [string, Record<string, number | string | null>])

let redis: TestRedis
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})

const backends = (): Record<string, FeatureStoreBackend> => ({ embedded: { kind: 'embedded' }, redis: { kind: 'redis', url: redis.url, prefix: `t${Date.now()}:` } })

describe('FeatureStore', () => {
  it('gives the same pipeline results from either backend as the plain pipeline on full records', async () => {
    const plain = await Pipeline.create(JSON.parse(readFileSync(join(dir, 'pipeline.json'), 'utf8')), { baseDir: dir })
    const want = (await plain.runBatch(records)) as { label: string; scores: Record<string, number> }[]
    await plain.dispose()
    const got: Record<string, unknown[]> = {}
    for (const [kind, backend] of Object.entries(backends())) {
      const store = await FeatureStore.create({ name: `penguins-${kind}`, backend, views: [VIEW] })
      expect(await store.putMany('penguins', rowsOf())).toBe(records.length)
      const p = await Pipeline.create(lookupSpec(`penguins-${kind}`), { baseDir: dir, batching: {} })
      // One batch of all, and single records (merged by the batcher): one round trip per batch.
      got[kind] = (await p.runBatch(records.map((_, i) => ({ penguin_id: `p${i}` })))) as unknown[]
      const singles = (await Promise.all(records.slice(0, 20).map((_, i) => p.run({ penguin_id: `p${i}` })))) as { label: string; scores: Float32Array }[]
      singles.forEach((r, i) => {
        const b = got[kind][i] as { label: string; scores: Float32Array }
        expect(r.label).toBe(b.label)
        r.scores.forEach((x, k) => expect(Math.abs(x - b.scores[k])).toBeLessThan(1e-6))
      })
      const st = store.stats().views[0]
      expect(st).toMatchObject({ view: 'penguins', hits: records.length + 20, misses: 0, failures: 0, writes: records.length })
      // One read for the batch of 344, and the 20 concurrent singles merged into a few batches.
      expect(st.lookups).toBeLessThanOrEqual(8)
      expect(st.keys).toBe(records.length + 20)
      await p.dispose()
      await store.close()
    }
    expect(got.redis).toEqual(got.embedded)
    const results = got.embedded as typeof want
    results.forEach((r, i) => {
      expect(r.label).toBe(want[i].label)
      for (const k of Object.keys(want[i].scores)) expect(Math.abs(r.scores[k] - want[i].scores[k])).toBeLessThan(1e-6)
    })
  })

  it('applies missing-key and TTL policies the same way on both backends', async () => {
    for (const [kind, backend] of Object.entries(backends())) {
      const store = await FeatureStore.create({ name: `policies-${kind}`, backend, views: [SCORES] })
      await store.putMany('scores', [
        ['old', { a: 1, b: 2, flag: true, tier: 'gold' }],
        ['partial', { a: 5 }],
      ])
      // Past the TTL (1.5 s) for the first two; 'fresh' stays well inside it on a busy machine.
      await new Promise((r) => setTimeout(r, 1600))
      await store.put('scores', 'fresh', { a: 3, b: 4, flag: false, tier: 'silver' })
      // Reads: stale flags by TTL, missing values null, unknown keys null.
      const [old, fresh, nope] = await store.getMany('scores', ['old', 'fresh', 'nope'])
      expect(old).toMatchObject({ values: { a: 1, b: 2, flag: 1, tier: 'gold' }, stale: true })
      expect(fresh).toMatchObject({ values: { a: 3, b: 4, flag: 0, tier: 'silver' }, stale: false })
      expect(fresh!.ageMs).toBeLessThan(1500)
      expect(nope).toBeNull()
      const spec = (missing: string, stale: string): PipelineSpec => ({
        version: 1,
        model: 'identity3.onnx',
        fields: [{ name: 'id', type: 'category' }],
        preprocess: [
          { op: 'lookup', store: `policies-${kind}`, view: 'scores', key: 'id', features: ['a', 'b', 'flag', 'tier'], prefix: 's_', missing, stale } as never,
          { op: 'impute', fields: ['s_a', 's_b'], strategy: 'constant', value: -9 },
          { op: 'impute', fields: ['s_tier'], strategy: 'constant', value: 'basic' },
          { op: 'ordinal', field: 's_tier', categories: ['basic', 'silver', 'gold'] },
        ],
        features: [{ input: 'x', names: ['s_a', 's_b', 's_tier'] }],
        output: { tensor: 'y' },
      })
      const run = async (missing: string, stale: string) => {
        const p = await Pipeline.create(spec(missing, stale), { baseDir: fixture('features') })
        const out = (await p.runBatch([{ id: 'old' }, { id: 'fresh' }, { id: 'nope' }, { id: 'partial' }, {}], { errors: 'return' })) as ({ scores: Record<string, number> } | { error: { code: string; message: string } })[]
        await p.dispose()
        return out.map((r) => ('error' in r ? r.error.code : Object.values(r.scores)))
      }
      // 'partial' is stale too (written before the pause): with stale 'use' its missing b is imputed.
      expect(await run('default', 'use')).toEqual([
        [1, 2, 2],
        [3, 4, 1],
        [7, -9, 0],
        [5, -9, 0],
        [7, -9, 0],
      ])
      expect(await run('nan', 'default')).toEqual([
        [7, -9, 0],
        [3, 4, 1],
        [-9, -9, 0],
        [7, -9, 0],
        [-9, -9, 0],
      ])
      expect(await run('error', 'error')).toEqual(['ERR_INVALID_INPUT', [3, 4, 1], 'ERR_INVALID_INPUT', 'ERR_INVALID_INPUT', 'ERR_INVALID_INPUT'])
      expect(store.stats().views[0].stale).toBeGreaterThan(0)
      await store.close()
    }
  })

  it('ingests CSV and JSONL files natively, with progress, skipping bad rows', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'oxinfer-ingest-'))
    const csv = join(tmp, 'penguins.csv')
    const quote = (v: unknown) => (v === null || v === undefined ? '' : String(v))
    writeFileSync(csv, ['penguin_id,' + FIELDS.join(',') + ',ignored', ...records.map((r, i) => [`p${i}`, ...FIELDS.map((f) => quote(r[f])), 'x'].join(','))].join('\n') + '\n')
    const jsonl = join(tmp, 'bad.jsonl')
    writeFileSync(jsonl, ['{"penguin_id": "a", "body_mass_g": 4000}', '{"penguin_id": "b", "body_mass_g": "heavy"}', '{"body_mass_g": 1}', 'not json', '{"penguin_id": "c", "island": "Dream"}'].join('\n') + '\n')
    for (const [kind, backend] of Object.entries(backends())) {
      const store = await FeatureStore.create({ name: `ingest-${kind}`, backend, views: [VIEW] })
      const seen: number[] = []
      const s = await store.ingest('penguins', csv, { chunkRows: 50, onProgress: (p) => seen.push(p.rows), intervalMs: 1 })
      expect(s).toMatchObject({ rows: records.length, skipped: 0 })
      expect(seen.at(-1)).toBe(records.length)
      const back = await store.get('penguins', 'p5')
      expect(back!.values).toEqual(Object.fromEntries(FIELDS.map((f) => [f, records[5][f] ?? null])))
      const bad = await store.ingest('penguins', jsonl)
      expect(bad).toMatchObject({ rows: 2, skipped: 3 })
      expect(bad.firstError).toMatch(/^row 1: /)
      // A file without the entity column writes nothing, and says why.
      const nokey = join(tmp, 'nokey.jsonl')
      writeFileSync(nokey, '{"body_mass_g": 1}\n{"body_mass_g": 2}\n')
      expect((await rejectsWith(store.ingest('penguins', nokey), 'ERR_INVALID_ARGUMENT')).message).toMatch(/no row has the entity key 'penguin_id'/)
      await rejectsWith(store.ingest('penguins', csv, { chunkRows: 0 }), 'ERR_INVALID_ARGUMENT')
      await rejectsWith(store.ingest('penguins', csv, { onProgress: 5 as never }), 'ERR_INVALID_ARGUMENT')
      expect((await store.get('penguins', 'c'))!.values).toMatchObject({ island: 'Dream', body_mass_g: null })
      await rejectsWith(store.ingest('penguins', join(tmp, 'missing.csv')), 'ERR_FILE')
      await rejectsWith(store.ingest('penguins', join(tmp, 'file.parquet')), 'ERR_INVALID_ARGUMENT')
      await store.close()
    }
  })

  it('is shared by many pipelines at once', async () => {
    const store = await FeatureStore.create({ name: 'shared', backend: backends().redis, views: [VIEW] })
    await store.putMany('penguins', rowsOf())
    const pipelines = await Promise.all(Array.from({ length: 4 }, () => Pipeline.create(lookupSpec('shared'), { baseDir: dir })))
    const outs = await Promise.all(pipelines.flatMap((p) => records.slice(0, 50).map((_, i) => p.run({ penguin_id: `p${i}` }))))
    for (let k = 1; k < 4; k++) expect(outs.slice(k * 50, k * 50 + 50)).toEqual(outs.slice(0, 50))
    expect(store.stats().views[0].hits).toBe(200)
    await Promise.all(pipelines.map((p) => p.dispose()))
    await store.close()
  })

  it('fails within its timeout when Redis is down or stalled, falls back to defaults when told, and recovers', async () => {
    const r = await startRedis()
    try {
      const store = await FeatureStore.create({ name: 'flaky', backend: { kind: 'redis', url: r.url, timeoutMs: 100 }, views: [SCORES] })
      await store.put('scores', 'k', { a: 1, b: 2, flag: true, tier: 'gold' })
      const strict = await Pipeline.create(
        { version: 1, model: 'identity3.onnx', fields: [{ name: 'id', type: 'category' }], preprocess: [{ op: 'lookup', store: 'flaky', view: 'scores', key: 'id', features: ['a', 'b', 'flag'] } as never], features: [{ input: 'x', names: ['a', 'flag', 'flag'] }], output: { tensor: 'y' } },
        { baseDir: fixture('features') },
      )
      const lenient = await Pipeline.create(
        { version: 1, model: 'identity3.onnx', fields: [{ name: 'id', type: 'category' }], preprocess: [{ op: 'lookup', store: 'flaky', view: 'scores', key: 'id', features: ['a', 'flag'], on_error: 'default' } as never], features: [{ input: 'x', names: ['a', 'flag', 'flag'] }], output: { tensor: 'y' } },
        { baseDir: fixture('features') },
      )
      const scores = async (p: Pipeline) => Object.values(((await p.run({ id: 'k' })) as { scores: Record<string, number> }).scores)
      expect(await scores(strict)).toEqual([1, 1, 1])
      for (const outage of ['kill', 'pause'] as const) {
        if (outage === 'kill') await r.kill()
        else r.pause()
        const t0 = performance.now()
        const e = await rejectsWith(strict.run({ id: 'k' }), 'ERR_UNAVAILABLE')
        expect(performance.now() - t0).toBeLessThan(2000)
        expect(e.message).toMatch(/Redis at redis:\/\/127\.0\.0\.1:\d+\/ .*(100 ms)/)
        // Many at once: every one settles, none hangs.
        const all = await Promise.allSettled(Array.from({ length: 20 }, () => strict.run({ id: 'k' })))
        expect(all.every((x) => x.status === 'rejected' && (x.reason as { code: string }).code === 'ERR_UNAVAILABLE')).toBe(true)
        expect(await scores(lenient)).toEqual([7, 0, 0])
        await rejectsWith(store.get('scores', 'k'), 'ERR_UNAVAILABLE')
        if (outage === 'kill') await r.restart()
        else r.resume()
        // Back: the store reconnects (the restarted Redis is empty; the paused one kept its data).
        const deadline = Date.now() + 5000
        let back: unknown = null
        while (Date.now() < deadline) {
          try {
            await store.put('scores', 'k', { a: 1, b: 2, flag: true, tier: 'gold' })
            back = await scores(strict)
            break
          } catch {
            await new Promise((res) => setTimeout(res, 50))
          }
        }
        expect(back).toEqual([1, 1, 1])
      }
      expect(store.stats().views[0].failures).toBeGreaterThan(0)
      await Promise.all([strict.dispose(), lenient.dispose()])
      await store.close()
    } finally {
      await r.stop()
    }
  })

  it('serves pipelines with lookups: one store for every served model, its figures in /metrics', async () => {
    const store = await FeatureStore.create({ name: 'served', backend: backends().redis, views: [VIEW] })
    await store.putMany('penguins', rowsOf())
    const repo = mkdtempSync(join(tmpdir(), 'oxinfer-store-repo-'))
    for (const m of ['a', 'b']) {
      mkdirSync(join(repo, m, '1'), { recursive: true })
      copyFileSync(join(dir, 'penguins.onnx'), join(repo, m, '1', 'penguins.onnx'))
      writeFileSync(join(repo, m, '1', 'pipeline.json'), JSON.stringify(lookupSpec('served')))
    }
    const server = await serve({ repository: repo, port: 0 })
    try {
      expect(server.failures).toEqual([])
      const url = server.address!.url
      const infer = (m: string, ids: string[]) =>
        fetch(`${url}/v2/models/${m}/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'penguin_id', datatype: 'BYTES', shape: [ids.length], data: ids }] }) })
      const [ra, rb] = await Promise.all([infer('a', ['p0', 'p200', 'nope']), infer('b', ['p0'])])
      expect([ra.status, rb.status]).toEqual([200, 200])
      const labels = (await ra.json()).outputs.find((o: { name: string }) => o.name === 'label').data
      // As scikit-learn predicts those birds (the reference fixture); 'nope' is imputed like any missing record.
      const { predict } = readJson<{ predict: string[] }>('penguins/reference.json')
      expect(labels.slice(0, 2)).toEqual([predict[0], predict[200]])
      expect(labels).toHaveLength(3)
      const metrics = await (await fetch(`${url}/metrics`)).text()
      expect(metrics).toMatch(/^oxinfer_feature_store_keys\{result="hit",store="served",view="penguins"\} 3$/m)
      expect(metrics).toMatch(/^oxinfer_feature_store_keys\{result="miss",store="served",view="penguins"\} 1$/m)
      expect(metrics).toMatch(/^oxinfer_feature_store_reads\{outcome="ok",store="served",view="penguins"\} 2$/m)
    } finally {
      await server.close()
      await store.close()
    }
  })

  it('in a graph: one lookup node feeds every model that reads the view, once per request', async () => {
    const store = await FeatureStore.create({ name: 'graphs', backend: backends().redis, views: [SCORES] })
    await store.putMany('scores', [
      ['k1', { a: 1, b: 2, flag: true }],
      ['k2', { a: 3, b: 4, flag: false }],
    ])
    const spec = (extra: Record<string, unknown> = {}) => ({
      version: 1,
      inputs: { id: { type: 'string', shape: [-1] } },
      nodes: [
        { name: 'features', kind: 'op', op: 'lookup', store: 'graphs', view: 'scores', features: ['a', 'b', 'flag'], inputs: ['id'], ...extra },
        { name: 'first', kind: 'model', model: 'm1', inputs: { x: 'features.y' } },
        { name: 'second', kind: 'model', model: 'm2', inputs: { x: 'features.y' } },
      ],
      outputs: { first: 'first.y', second: 'second.y' },
    })
    const models = { m1: fixture('features/identity3.onnx'), m2: fixture('features/identity3.onnx') }
    const g = await Graph.create(spec(), { models })
    try {
      const before = store.stats().views[0].lookups
      const r = await g.run({ id: new Tensor('string', ['k1', 'nope', 'k2'], [3]) })
      expect(Array.from(r.first!.data as Float32Array)).toEqual([1, 2, 1, 7, NaN, 0, 3, 4, 0])
      expect(Array.from(r.second!.data as Float32Array)).toEqual(Array.from(r.first!.data as Float32Array))
      expect(store.stats().views[0].lookups - before).toBe(1)
    } finally {
      await g.dispose()
    }
    const strict = await Graph.create(spec({ missing: 'error' }), { models })
    const e = await rejectsWith(strict.run({ id: new Tensor('string', ['k1', 'nope'], [2]) }), 'ERR_INVALID_INPUT')
    expect(e.message).toMatch(/holds no entity 'nope'/)
    await strict.dispose()
    for (const [extra, pattern] of [
      [{ store: 'gone' }, /no feature store named 'gone'/],
      [{ features: ['tier'] }, /'tier' is a category/],
      [{ features: ['zzz'] }, /no feature 'zzz'/],
    ] as const) {
      const err = await rejectsWith(Graph.create(spec(extra), { models }), 'ERR_INVALID_SPEC')
      expect(err.message).toMatch(pattern)
    }
    await store.close()
  })

  it('refuses bad keys, types, views and configurations with typed errors', async () => {
    const store = await FeatureStore.create({ name: 'strict', backend: { kind: 'embedded', maxBytes: 1 << 20 }, views: [SCORES] })
    try {
      await rejectsWith(store.put('scores', 'k', { a: 'high' }), 'ERR_INVALID_ARGUMENT')
      await rejectsWith(store.put('scores', 'k', { b: 1.5 }), 'ERR_INVALID_ARGUMENT')
      await rejectsWith(store.put('scores', 'k', { flag: 2 }), 'ERR_INVALID_ARGUMENT')
      await rejectsWith(store.put('scores', 'k', { nope: 1 }), 'ERR_INVALID_ARGUMENT')
      await rejectsWith(store.put('scores', '', { a: 1 }), 'ERR_INVALID_ARGUMENT')
      await rejectsWith(store.put('nope', 'k', { a: 1 }), 'ERR_INVALID_ARGUMENT')
      await rejectsWith(store.getMany('scores', [1 as never]), 'ERR_INVALID_ARGUMENT')
      await rejectsWith(store.putMany('scores', [['k', { a: 1 }], ['j', { a: 'x' }]]), 'ERR_INVALID_ARGUMENT')
      expect(await store.get('scores', 'k')).toBeNull() // nothing of a refused batch was written
      await rejectsWith(FeatureStore.create({ name: 'strict', backend: { kind: 'embedded' }, views: [SCORES] }), 'ERR_INVALID_ARGUMENT')
      await rejectsWith(FeatureStore.create({ name: 'x', backend: { kind: 'redis', url: 'http://nope' }, views: [SCORES] }), 'ERR_INVALID_SPEC')
      await rejectsWith(FeatureStore.create({ name: 'x', backend: { kind: 'memcached' } as never, views: [SCORES] }), 'ERR_INVALID_SPEC')
      await rejectsWith(FeatureStore.create({ name: 'x', backend: { kind: 'embedded' }, views: [{ ...SCORES, features: [{ name: 'a', type: 'number', default: 'x' }] }] }), 'ERR_INVALID_SPEC')
      await rejectsWith(FeatureStore.create({ name: 'x', backend: { kind: 'embedded' }, views: [SCORES, SCORES] }), 'ERR_INVALID_SPEC')
      await rejectsWith(FeatureStore.create({ name: 'x', backend: { kind: 'embedded' }, views: [], extra: 1 } as never), 'ERR_INVALID_ARGUMENT')
      // A pipeline naming a store, view or feature that is not there.
      const bad = async (stage: Record<string, unknown>, pattern: RegExp) => {
        const spec: PipelineSpec = { version: 1, model: 'identity3.onnx', fields: [{ name: 'id', type: 'category' }], preprocess: [{ op: 'lookup', store: 'strict', view: 'scores', key: 'id', ...stage } as never], features: [{ input: 'x', names: ['a', 'a', 'a'] }], output: { tensor: 'y' } }
        const e = await rejectsWith(Pipeline.create(spec, { baseDir: fixture('features') }), 'ERR_INVALID_SPEC')
        expect(e.message).toMatch(pattern)
      }
      await bad({ store: 'gone' }, /no feature store named 'gone' is open/)
      await bad({ view: 'nope' }, /no view 'nope'/)
      await bad({ features: ['zzz'] }, /no feature 'zzz'/)
      await bad({ key: 'nope' }, /unknown field 'nope'/)
      await bad({ missing: 'use' }, /missing takes default, nan or error/)
      // The embedded store stays within its memory bound, evicting the least recently used.
      await store.putMany('scores', Array.from({ length: 20_000 }, (_, i) => [`e${i}`, { a: i, tier: 'x'.repeat(20) }] as [string, Record<string, number | string>]))
      const st = store.stats()
      expect(st.bytes!).toBeLessThanOrEqual(1 << 20)
      expect(st.entities!).toBeLessThan(20_000)
      expect(await store.get('scores', 'e0')).toBeNull()
      expect((await store.get('scores', 'e19999'))!.values.a).toBe(19999)
    } finally {
      await store.close()
    }
    await rejectsWith(store.get('scores', 'k'), 'ERR_DISPOSED')
  })
})
