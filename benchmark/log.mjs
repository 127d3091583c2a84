// Benchmark (issue #16): what drift monitoring and the prediction log cost
// the server. The penguins pipeline served three ways from one server on
// this machine, loaded with wrk (Debian) from its own process, 1 row per
// request, 64 connections, 10 s each, the three rotated over rounds:
// - plain: the spec as it is;
// - monitored: with a `monitor` section (reference profile, default window
//   and checks);
// - logged: monitored, plus `monitor.log` (every prediction, inputs as a
//   digest, SQLite in WAL, batched transactions every second).
// Reported: req/s and p99 per contender, and the ratios to plain (target
// for the log: ≥ 0.9, i.e. at most 10 % of req/s), and the rows in the log.
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { FIXTURES, QUICK, log, pct, round, sorted } from './util.mjs'

const DIR = join(FIXTURES, 'penguins')
const SPEC = JSON.parse(readFileSync(join(DIR, 'pipeline.json'), 'utf8'))
const { records } = JSON.parse(readFileSync(join(DIR, 'records.json'), 'utf8'))
const DURATION = QUICK ? '3s' : '10s'
const ROUNDS = QUICK ? 1 : 3
const CONNECTIONS = 64
// The share of predictions logged (OXINFER_BENCH_LOG_SAMPLE; default all).
const SAMPLE = Number(process.env.OXINFER_BENCH_LOG_SAMPLE) || 1

function body() {
  const r = records[0]
  const inputs = [
    { name: 'island', datatype: 'BYTES', shape: [1], data: [r.island] },
    { name: 'bill_length_mm', datatype: 'FP64', shape: [1], data: [r.bill_length_mm] },
    { name: 'bill_depth_mm', datatype: 'FP64', shape: [1], data: [r.bill_depth_mm] },
    { name: 'flipper_length_mm', datatype: 'FP64', shape: [1], data: [r.flipper_length_mm] },
    { name: 'body_mass_g', datatype: 'FP64', shape: [1], data: [r.body_mass_g] },
    { name: 'sex', datatype: 'BYTES', shape: [1], data: [r.sex] },
  ]
  return { inputs, outputs: [{ name: 'label' }, { name: 'score' }] }
}

function wrk(url, script) {
  const r = spawnSync('wrk', ['-t', '1', '-c', String(CONNECTIONS), '-d', DURATION, '--latency', '-s', script, url], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`)
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? NaN)
  const m = /\s99%\s+([\d.]+)(us|ms|s)/.exec(r.stdout)
  const p99 = m ? Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1) : NaN
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(r.stdout)?.[1] ?? 0)
  return { rps, p99, non2xx }
}

export async function run() {
  const require = createRequire(import.meta.url)
  const { Pipeline, serve } = require(join(FIXTURES, '..', '..', 'index.js'))
  const plain = await Pipeline.create(SPEC, { baseDir: DIR })
  const reference = await plain.profile(records)
  await plain.dispose()
  const repo = mkdtempSync(join(tmpdir(), 'oxinfer-bench-log-'))
  const specs = {
    plain: SPEC,
    monitored: { ...SPEC, monitor: { reference } },
    logged: { ...SPEC, monitor: { reference, log: { path: 'predictions.sqlite', sample: SAMPLE } } },
  }
  for (const [name, spec] of Object.entries(specs)) {
    mkdirSync(join(repo, name, '1'), { recursive: true })
    copyFileSync(join(DIR, 'penguins.onnx'), join(repo, name, '1', 'penguins.onnx'))
    writeFileSync(join(repo, name, '1', 'pipeline.json'), JSON.stringify(spec))
  }
  const script = join(repo, 'post.lua')
  writeFileSync(script, `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ${JSON.stringify(JSON.stringify(body()))}\n`)
  const server = await serve({ repository: repo, port: 0 })
  const url = (m) => `${server.address.url}/v2/models/${m}/infer`
  const names = Object.keys(specs)
  const got = Object.fromEntries(names.map((n) => [n, []]))
  try {
    wrk(url('plain'), script) // warm-up
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < names.length; i++) {
        const n = names[(i + r) % names.length]
        const res = wrk(url(n), script)
        if (res.non2xx > 0) throw new Error(`${n}: ${res.non2xx} failed requests`)
        got[n].push(res)
      }
      log(`round ${r + 1}/${ROUNDS} done`)
    }
  } finally {
    await server.close()
  }
  const table = {}
  for (const n of names) table[n] = { rps: Math.round(pct(sorted(got[n].map((x) => x.rps)), 0.5)), p99_ms: round(pct(sorted(got[n].map((x) => x.p99)), 0.5), 2) }
  // The log's rows, through a pipeline over the same file.
  const reader = await Pipeline.load(join(repo, 'logged', '1', 'pipeline.json'))
  const logged = await reader.exportLog(join(repo, 'log.jsonl'))
  await reader.dispose()
  return {
    connections: CONNECTIONS,
    sample: SAMPLE,
    duration: DURATION,
    rounds: ROUNDS,
    table,
    ratios: { monitored: round(table.monitored.rps / table.plain.rps, 3), logged: round(table.logged.rps / table.plain.rps, 3) },
    logRows: logged,
  }
}
