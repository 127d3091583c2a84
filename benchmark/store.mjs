// Benchmark (issue #17): a pipeline whose features come from Redis.
//
// The penguins pipeline fed only a penguin id, its six fields read from a
// real redis-server (started here on a free loopback port, no persistence)
// holding 10,000 entities, against the strongest JS peer: the same HMGETs
// sent by ioredis as one pipelined round trip (`redis.pipeline()`, with
// auto-pipelining on so that concurrent callers share round trips), the
// replies turned into records, then the plain penguins pipeline on them.
// Both read the same hashes and give the same predictions (checked first).
// In the same process, rounds alternating:
//   batch 1,024: sequential batches of random ids; records/s;
//   batch 1: 32 concurrent callers of single records; req/s and p50/p99
//            latency per request.
// Both pipelines run with dynamic batching at its defaults (set
// OXINFER_BENCH_STORE_BATCHING=0 for none). Targets: ≥ 2× records/s at
// batch 1,024; a lower p99 at batch 1.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { join } from 'node:path'

import { FIXTURES, QUICK, cleanRound, log, now, pct, round, sleep, sorted } from './util.mjs'

const require = createRequire(import.meta.url)
const DIR = join(FIXTURES, 'penguins')
const BASE = JSON.parse(readFileSync(join(DIR, 'pipeline.json'), 'utf8'))
const { records } = JSON.parse(readFileSync(join(DIR, 'records.json'), 'utf8'))
const FIELDS = ['island', 'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g', 'sex']
const NUMERIC = new Set(['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g'])
const ENTITIES = 10_000
const ROUNDS = QUICK ? 2 : 5
const BATCHES = QUICK ? 10 : 40
const BATCH = 1024
const SINGLES = QUICK ? 2000 : 8000
const CONCURRENCY = 32
const PREFIX = 'bench:'

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const port = s.address().port
      s.close(() => resolve(port))
    })
  })
}

async function startRedis() {
  const port = await freePort()
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const Redis = require('ioredis')
  for (let i = 0; i < 200; i++) {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    try {
      await c.connect()
      await c.ping()
      c.disconnect()
      return { port, proc }
    } catch {
      c.disconnect()
      await sleep(25)
    }
  }
  throw new Error('redis-server did not start')
}

export async function run() {
  const { FeatureStore, Pipeline } = require(join(FIXTURES, '..', '..', 'index.js'))
  const Redis = require('ioredis')
  const { port, proc } = await startRedis()
  const url = `redis://127.0.0.1:${port}/`
  try {
    const view = {
      name: 'penguins',
      entity: 'penguin_id',
      features: FIELDS.map((f) => ({ name: f, type: NUMERIC.has(f) ? 'number' : 'category' })),
    }
    const store = await FeatureStore.create({ name: 'bench', backend: { kind: 'redis', url, prefix: PREFIX, poolSize: 8 }, views: [view] })
    const rows = Array.from({ length: ENTITIES }, (_, i) => [`p${i}`, Object.fromEntries(FIELDS.map((f) => [f, records[i % records.length][f] ?? null]))])
    for (let i = 0; i < rows.length; i += 1000) await store.putMany('penguins', rows.slice(i, i + 1000))
    const lookupSpec = { ...BASE, fields: [{ name: 'penguin_id', type: 'category' }], preprocess: [{ op: 'lookup', store: 'bench', view: 'penguins', key: 'penguin_id', missing: 'nan' }, ...BASE.preprocess] }
    // Both with dynamic batching (its defaults), so that concurrent single
    // records merge on either side; OXINFER_BENCH_STORE_BATCHING=0 turns it off.
    const batching = process.env.OXINFER_BENCH_STORE_BATCHING === '0' ? undefined : {}
    const native = await Pipeline.create(lookupSpec, { baseDir: DIR, batching })
    const plain = await Pipeline.create(BASE, { baseDir: DIR, batching })
    // Auto-pipelining: concurrent callers' commands share round trips, as a
    // performance-minded Node developer would configure ioredis.
    const redis = new Redis({ port, host: '127.0.0.1', enableAutoPipelining: true })

    /** The JS peer's lookup: one pipelined round trip of HMGETs, replies to records. */
    const jsLookup = async (ids) => {
      const p = redis.pipeline()
      for (const id of ids) p.hmget(`${PREFIX}penguins:${id}`, ...FIELDS)
      const replies = await p.exec()
      return replies.map(([err, vals]) => {
        if (err) throw err
        const r = {}
        for (let k = 0; k < FIELDS.length; k++) {
          const v = vals[k]
          r[FIELDS[k]] = v === null ? null : NUMERIC.has(FIELDS[k]) ? Number(v) : v
        }
        return r
      })
    }
    const viaJs = async (ids) => plain.runBatch(await jsLookup(ids))
    const viaJsOne = async (id) => plain.run((await jsLookup([id]))[0])
    const viaNative = (ids) => native.runBatch(ids.map((id) => ({ penguin_id: id })))
    const viaNativeOne = (id) => native.run({ penguin_id: id })

    // Same predictions from both.
    const probe = Array.from({ length: 200 }, (_, i) => `p${(i * 37) % ENTITIES}`)
    const [a, b] = [await viaNative(probe), await viaJs(probe)]
    const agree = a.every((r, i) => r.label === b[i].label && Math.abs(r.score - b[i].score) < 1e-6)
    if (!agree) throw new Error('the two paths disagree')

    let seed = 7
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) % ENTITIES
    const ids = (n) => Array.from({ length: n }, () => `p${rand()}`)
    const batchMode = async (f) => {
      const t0 = now()
      for (let i = 0; i < BATCHES; i++) await f(ids(BATCH))
      return (BATCHES * BATCH) / ((now() - t0) / 1000)
    }
    const singleMode = async (f) => {
      const lat = []
      let sent = 0
      const t0 = now()
      const worker = async () => {
        while (sent++ < SINGLES) {
          const id = `p${rand()}`
          const s = now()
          await f(id)
          lat.push((now() - s) * 1000)
        }
      }
      await Promise.all(Array.from({ length: CONCURRENCY }, worker))
      const wall = (now() - t0) / 1000
      const sl = sorted(lat)
      return { rps: lat.length / wall, p50: pct(sl, 0.5), p99: pct(sl, 0.99) }
    }
    const res = { batch: { native: [], js: [] }, single: { native: [], js: [] } }
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ['native', 'js'] : ['js', 'native']
      for (const who of order) {
        const { result } = await cleanRound(`store batch ${who}`, () => batchMode(who === 'native' ? viaNative : viaJs))
        res.batch[who].push(result)
      }
      for (const who of order) {
        const { result } = await cleanRound(`store single ${who}`, () => singleMode(who === 'native' ? viaNativeOne : viaJsOne))
        res.single[who].push(result)
      }
      log(`round ${r + 1}/${ROUNDS} done`)
    }
    const med = (xs) => pct(sorted(xs), 0.5)
    const out = {
      rounds: ROUNDS,
      entities: ENTITIES,
      batch1024: {
        native_records_per_s: Math.round(med(res.batch.native)),
        js_records_per_s: Math.round(med(res.batch.js)),
        ratio: round(med(res.batch.native) / med(res.batch.js), 2),
        target: 2,
      },
      batch1_32_concurrent: {
        native: { req_per_s: Math.round(med(res.single.native.map((x) => x.rps))), p50_us: Math.round(med(res.single.native.map((x) => x.p50))), p99_us: Math.round(med(res.single.native.map((x) => x.p99))) },
        js: { req_per_s: Math.round(med(res.single.js.map((x) => x.rps))), p50_us: Math.round(med(res.single.js.map((x) => x.p50))), p99_us: Math.round(med(res.single.js.map((x) => x.p99))) },
      },
      storeStats: store.stats().views[0],
    }
    out.batch1_32_concurrent.p99_ratio = round(out.batch1_32_concurrent.native.p99_us / out.batch1_32_concurrent.js.p99_us, 2)
    redis.disconnect()
    await Promise.all([native.dispose(), plain.dispose(), store.close()])
    out.batching = batching !== undefined
    return out
  } finally {
    proc.kill('SIGTERM')
  }
}
