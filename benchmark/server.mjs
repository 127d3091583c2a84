// Server benchmark (issue #13): the penguins pipeline served over the KServe
// v2 protocol, loaded with wrk (Debian) from its own process on the same
// 2-core machine, at 1 and 256 rows per request and several concurrency
// levels. Contenders, each in its own process:
// - oxinfer: the native server (`serve`, the example repository);
// - oxinfer-js: the server with the fastify-ort work as a JS model (the slow path);
// - fastify-plugin: Fastify 5 with oxinfer/fastify mounted;
// - fastify-ort: Fastify 5 + onnxruntime-node with the pre- and
//   post-processing in JS compiled once into closures (benchmark/pipeline.mjs),
//   the same request and response JSON;
// - mlserver: Seldon MLServer 1.7.1 with mlserver-sklearn serving the
//   scikit-learn penguins Pipeline (pandas codec), when its environment
//   exists (node benchmark/server.mjs --setup-mlserver makes it, under
//   ~/.cache/oxinfer). Stays out of CI.
// Reported: req/s, rows/s, p50 and p99 latency (wrk --latency), and the
// ratios against fastify-ort and mlserver at each point.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { PassThrough } from 'node:stream'
import { createServer } from 'node:net'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'

import { FIXTURES, QUICK, ROOT, log, sleep } from './util.mjs'

const { records } = JSON.parse(readFileSync(join(FIXTURES, 'penguins', 'records.json'), 'utf8'))
const DURATION = QUICK ? '3s' : process.env.OXINFER_BENCH_SERVER_DURATION ?? '10s'
const ROWS = [1, 256]
const CONNECTIONS = QUICK ? [1, 64] : [1, 16, 64, 256]
const MLSERVER_ENV = join(process.env.OXINFER_CACHE ?? join(homedir(), '.cache', 'oxinfer'), 'mlserver-1.7.1')

export function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** The KServe v2 JSON request for `n` penguins rows (pandas codec parameters for MLServer). */
export function requestBody(n, forMlserver = false) {
  const rows = Array.from({ length: n }, (_, i) => records[i % records.length]).filter(Boolean)
  const num = (k) => rows.map((r, i) => (typeof r[k] === 'number' ? r[k] : 40 + (i % 7)))
  const str = (k) => rows.map((r) => (typeof r[k] === 'string' ? r[k] : 'MALE'))
  const inputs = [
    { name: 'island', datatype: 'BYTES', shape: [n], data: str('island') },
    { name: 'bill_length_mm', datatype: 'FP64', shape: [n], data: num('bill_length_mm') },
    { name: 'bill_depth_mm', datatype: 'FP64', shape: [n], data: num('bill_depth_mm') },
    { name: 'flipper_length_mm', datatype: 'FP64', shape: [n], data: num('flipper_length_mm') },
    { name: 'body_mass_g', datatype: 'FP64', shape: [n], data: num('body_mass_g') },
    { name: 'sex', datatype: 'BYTES', shape: [n], data: str('sex') },
  ]
  // The scikit-learn Pipeline selects its columns by position: numbers first.
  if (forMlserver) return { parameters: { content_type: 'pd' }, inputs: [...inputs.slice(1, 5), inputs[0], inputs[5]], outputs: [{ name: 'predict_proba' }] }
  return { inputs, outputs: [{ name: 'label' }, { name: 'score' }] }
}

export function luaScript(dir, body) {
  const file = join(dir, `post-${Math.random().toString(36).slice(2)}.lua`)
  writeFileSync(file, `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ${JSON.stringify(JSON.stringify(body))}\n`)
  return file
}

/** wrk's summary: requests/s and latency percentiles in ms. */
export function runWrk(url, script, connections, duration = DURATION) {
  const threads = Math.min(connections, 1)
  const r = spawnSync('wrk', ['-t', String(threads), '-c', String(connections), '-d', duration, '--latency', '-s', script, url], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`)
  const out = r.stdout
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN)
  const ms = (label) => {
    const m = new RegExp(`\\s${label}%\\s+([\\d.]+)(us|ms|s)`).exec(out)
    if (!m) return NaN
    const v = Number(m[1])
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v
  }
  if (!(rps > 0)) log(`server: wrk made no requests:\n${out}${r.stderr}`)
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1]
  const sockErr = /Socket errors: (.*)/.exec(out)?.[1]
  return { rps: Math.round(rps), p50: ms('50'), p99: ms('99'), non2xx: Number(errors ?? 0), socketErrors: sockErr ?? null }
}

export async function start(kind, port) {
  let child
  if (kind === 'mlserver') {
    const dir = mlserverRepository()
    // Its access log goes to a file: a pipe would fill while spawnSync(wrk) blocks this event loop.
    const logFd = openSync(join(dir, 'mlserver.log'), 'w')
    child = spawn(join(MLSERVER_ENV, 'bin', 'mlserver'), ['start', dir], { env: { ...process.env, MLSERVER_HTTP_PORT: String(port), MLSERVER_GRPC_PORT: String(await freePort()), MLSERVER_METRICS_PORT: String(await freePort()), MLSERVER_PARALLEL_WORKERS: '0' }, stdio: ['ignore', logFd, logFd] })
    child.stdout = child.stderr = new PassThrough()
  } else {
    child = spawn(process.execPath, [join(ROOT, 'benchmark', 'server-peer.mjs'), kind, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] })
  }
  let stderr = ''
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)))
  child.stdout.on('data', () => {})
  const url = `http://127.0.0.1:${port}`
  const ready = kind === 'mlserver' ? `${url}/v2/models/penguins/ready` : `${url}/v2/health/live`
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${kind} exited: ${stderr.slice(-2000)}`)
    try {
      const r = await fetch(kind === 'fastify-ort' ? `${url}/v2/models/penguins/infer` : ready, kind === 'fastify-ort' ? { method: 'POST', body: JSON.stringify(requestBody(1)), headers: { 'content-type': 'application/json' } } : {})
      if (r.status === 200) return { child, url }
    } catch {
      // not up yet
    }
    await sleep(100)
  }
  child.kill('SIGKILL')
  throw new Error(`${kind} did not become ready: ${stderr.slice(-2000)}`)
}

/** A folder MLServer serves: the scikit-learn penguins Pipeline, trained as scripts/make_penguins.py does. */
function mlserverRepository() {
  const dir = mkdtempSync(join(tmpdir(), 'oxinfer-mlserver-'))
  const model = join(dir, 'penguins')
  mkdirSync(model)
  execFileSync(join(MLSERVER_ENV, 'bin', 'python'), [join(ROOT, 'benchmark', 'mlserver_penguins.py'), model], { stdio: 'inherit' })
  return dir
}

export async function run() {
  const scratch = mkdtempSync(join(tmpdir(), 'oxinfer-bench-server-'))
  const only = process.env.OXINFER_BENCH_SERVER_ONLY?.split(',')
  const kinds = ['oxinfer', 'oxinfer-js', 'fastify-plugin', 'fastify-ort'].filter((k) => !only || only.includes(k))
  if (existsSync(join(MLSERVER_ENV, 'bin', 'mlserver'))) {
    if (!only || only.includes('mlserver')) kinds.push('mlserver')
  } else log(`server: MLServer skipped (no environment at ${MLSERVER_ENV}; make it with node benchmark/server.mjs --setup-mlserver)`)
  const results = {}
  for (const kind of kinds) {
    const port = await freePort()
    const { child, url } = await start(kind, port)
    try {
      for (const rows of ROWS) {
        const target = `${url}/v2/models/penguins/infer`
        const script = luaScript(scratch, requestBody(rows, kind === 'mlserver'))
        // Warm-up: connections, JIT, thread pools.
        runWrk(target, script, 16)
        for (const c of CONNECTIONS) {
          const r = runWrk(target, script, c)
          results[`${kind} rows=${rows} c=${c}`] = { kind, rows, connections: c, ...r, rowsPerSec: r.rps * rows }
          log(`server ${kind} rows=${rows} c=${c}: ${r.rps} req/s (${r.rps * rows} rows/s), p50 ${r.p50} ms, p99 ${r.p99} ms${r.non2xx ? `, ${r.non2xx} non-2xx` : ''}${r.socketErrors ? `, socket errors ${r.socketErrors}` : ''}`)
        }
      }
    } finally {
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
    }
  }
  const ratios = {}
  for (const rows of only ? [] : ROWS) {
    for (const c of CONNECTIONS) {
      const ox = results[`oxinfer rows=${rows} c=${c}`]
      const peer = results[`fastify-ort rows=${rows} c=${c}`]
      const ml = results[`mlserver rows=${rows} c=${c}`]
      ratios[`rows=${rows} c=${c}`] = {
        vsFastifyOrt: peer ? Math.round((ox.rps / peer.rps) * 100) / 100 : null,
        p99VsFastifyOrt: peer ? `${ox.p99} vs ${peer.p99} ms` : null,
        vsMlserver: ml ? Math.round((ox.rps / ml.rps) * 100) / 100 : null,
        pluginVsServer: Math.round((results[`fastify-plugin rows=${rows} c=${c}`].rps / ox.rps) * 100) / 100,
        jsModelVsFastifyOrt: peer ? Math.round((results[`oxinfer-js rows=${rows} c=${c}`].rps / peer.rps) * 100) / 100 : null,
      }
    }
  }
  log(`server ratios: ${JSON.stringify(ratios, null, 1)}`)
  return { duration: DURATION, results, ratios }
}

if (process.argv[1] && import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes('--setup-mlserver')) {
    if (!existsSync(join(MLSERVER_ENV, 'bin', 'mlserver'))) {
      execFileSync('python3', ['-m', 'venv', MLSERVER_ENV], { stdio: 'inherit' })
      execFileSync(join(MLSERVER_ENV, 'bin', 'pip'), ['install', '--quiet', 'mlserver==1.7.1', 'mlserver-sklearn==1.7.1', 'scikit-learn==1.9.1'], { stdio: 'inherit' })
    }
  } else {
    const out = await run()
    process.stdout.write(`${JSON.stringify(out, null, 1)}\n`)
  }
}
