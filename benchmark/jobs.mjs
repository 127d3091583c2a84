// Batch-job benchmark (issue #6): the penguins pipeline over a 1,000,000-row
// CSV file, written as JSONL, by
// - oxinfer `Pipeline.runJob(file, { output })`: read, pre-process, infer and
//   write natively, in chunks of 4,096 rows;
// - the pure-JS loop a Node developer writes today: readline over the file,
//   the JS pre-processing of benchmark/pipeline.mjs, onnxruntime-node
//   `InferenceSession.run` on batches of 4,096, JSON lines to a write stream
//   (waiting for 'drain').
// Each contender runs in a fresh child process per round, so its peak RSS
// (VmHWM) is its own; rounds alternate which goes first. Reported: rows/s
// (median of rounds), the ratio, peak RSS and RSS growth over the process's
// baseline after loading.
import { spawnSync } from 'node:child_process'
import { closeSync, createReadStream, createWriteStream, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { FIXTURES, QUICK, log, median, round } from './util.mjs'

const DIR = join(FIXTURES, 'penguins')
const FIELDS = ['island', 'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g', 'sex']
const NUMERIC = new Set(FIELDS.slice(1, 5))
const ROWS = QUICK ? 100_000 : 1_000_000
const ROUNDS = QUICK ? 1 : 3
const CHUNK = 4096

function makeCsv(path) {
  const { records } = JSON.parse(readFileSync(join(DIR, 'records.json'), 'utf8'))
  const fd = openSync(path, 'w')
  writeSync(fd, `id,${FIELDS.join(',')}\n`)
  for (let i = 0; i < ROWS; i += 10_000) {
    const lines = []
    for (let j = i; j < Math.min(ROWS, i + 10_000); j++) {
      const r = records[j % records.length]
      lines.push(`${j},${FIELDS.map((f) => r[f] ?? '').join(',')}`)
    }
    writeSync(fd, lines.join('\n') + '\n')
  }
  closeSync(fd)
}

/** VmHWM (peak RSS) and VmRSS of this process, in MB. */
function rssNow() {
  const s = readFileSync('/proc/self/status', 'utf8')
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)[1])
  return { peakMB: kb('VmHWM') / 1024, rssMB: kb('VmRSS') / 1024 }
}

async function oxinfer(input, output, variant) {
  const ox = (await import('../index.js')).default
  const session = variant === 'pool2' ? { poolSize: 2, intraOpThreads: 1 } : {}
  const p = await ox.Pipeline.load(join(DIR, 'pipeline.json'), { session })
  const base = rssNow()
  const t0 = performance.now()
  const s = await p.runJob(input, { output, chunkSize: CHUNK }).done
  const seconds = (performance.now() - t0) / 1000
  await p.dispose()
  return { rows: s.rows, seconds, base }
}

async function pureJs(input, output) {
  const ort = (await import('onnxruntime-node')).default
  const { makeJsPipeline } = await import('./pipeline.mjs')
  const session = await ort.InferenceSession.create(join(DIR, 'penguins.onnx'), { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' })
  const js = makeJsPipeline(ort, session)
  const base = rssNow()
  const t0 = performance.now()
  const out = createWriteStream(output)
  const write = (s) => (out.write(s) ? undefined : new Promise((r) => out.once('drain', r)))
  let header
  let rows = 0
  let batch = []
  const flush = async () => {
    const res = await js.runBatch(batch)
    let text = ''
    for (let i = 0; i < res.length; i++) text += JSON.stringify({ row: rows + i, ...res[i] }) + '\n'
    rows += res.length
    batch = []
    await write(text)
  }
  for await (const line of createInterface({ input: createReadStream(input), crlfDelay: Infinity })) {
    if (header === undefined) {
      header = line.split(',')
      continue
    }
    if (line === '') continue
    const cells = line.split(',')
    const rec = {}
    for (let j = 0; j < header.length; j++) {
      const f = header[j]
      const v = cells[j]
      if (NUMERIC.has(f)) rec[f] = v === '' || v === undefined ? null : Number(v)
      else if (f !== 'id') rec[f] = v === '' || v === undefined ? null : v
    }
    batch.push(rec)
    if (batch.length === CHUNK) await flush()
  }
  if (batch.length) await flush()
  await new Promise((r) => out.end(r))
  const seconds = (performance.now() - t0) / 1000
  await session.release()
  return { rows, seconds, base }
}

const CONTENDERS = {
  oxinfer: { label: 'oxinfer Pipeline.runJob (default session)', fn: (i, o) => oxinfer(i, o, 'default') },
  oxinferPool2: { label: 'oxinfer Pipeline.runJob (poolSize 2, intraOpThreads 1)', fn: (i, o) => oxinfer(i, o, 'pool2') },
  pureJs: { label: 'pure JS: readline + JS pre-processing + onnxruntime-node + write stream', fn: pureJs },
}

/** Child mode: run one contender, print its figures as JSON. */
if (process.argv[2] === '--contender') {
  const [, , , name, input, output] = process.argv
  const r = await CONTENDERS[name].fn(input, output)
  const end = rssNow()
  process.stdout.write(JSON.stringify({ ...r, peakMB: end.peakMB, endRssMB: end.rssMB }) + '\n')
  process.exit(0)
}

function runChild(name, input, output) {
  const p = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--contender', name, input, output], { encoding: 'utf8', maxBuffer: 1 << 20 })
  if (p.status !== 0) throw new Error(`jobs benchmark child '${name}' failed: ${p.stderr.slice(-1000)}`)
  return JSON.parse(p.stdout.trim().split('\n').pop())
}

export async function run() {
  const dir = mkdtempSync(join(tmpdir(), 'oxinfer-jobs-bench-'))
  try {
    const input = join(dir, 'penguins.csv')
    makeCsv(input)
    const inputMB = statSync(input).size / 2 ** 20
    log(`jobs: ${ROWS} rows, ${round(inputMB, 1)} MB of CSV`)
    const names = Object.keys(CONTENDERS)
    const samples = Object.fromEntries(names.map((n) => [n, []]))
    // A first run each to warm the page cache, not counted.
    for (const n of names) runChild(n, input, join(dir, `${n}.jsonl`))
    const outputs = {}
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? names : [...names].reverse()
      for (const n of order) {
        const out = join(dir, `${n}.jsonl`)
        const s = runChild(n, input, out)
        if (s.rows !== ROWS) throw new Error(`${n} did ${s.rows} rows, expected ${ROWS}`)
        samples[n].push({ ...s, rowsPerSec: s.rows / s.seconds })
        outputs[n] = out
        log(`jobs round ${r + 1} ${n}: ${Math.round(s.rows / s.seconds)} rows/s, peak RSS ${round(s.peakMB, 1)} MB (baseline ${round(s.base.rssMB, 1)} MB)`)
      }
    }
    // Both outputs must carry the same labels, row for row (first 100,000 lines).
    const head = (f) => readFileSync(f, 'utf8').split('\n', 100_000).map((l) => JSON.parse(l).label)
    const a = head(outputs.oxinfer)
    const b = head(outputs.pureJs)
    const labelsAgree = a.length === b.length && a.every((x, i) => x === b[i])
    const contenders = names.map((n) => {
      const s = samples[n]
      return {
        name: n,
        label: CONTENDERS[n].label,
        rowsPerSec: round(median(s.map((x) => x.rowsPerSec)), 0),
        roundRowsPerSec: s.map((x) => round(x.rowsPerSec, 0)),
        seconds: round(median(s.map((x) => x.seconds)), 2),
        peakRssMB: round(median(s.map((x) => x.peakMB)), 1),
        baselineRssMB: round(median(s.map((x) => x.base.rssMB)), 1),
        rssGrowthMB: round(median(s.map((x) => x.peakMB - x.base.rssMB)), 1),
      }
    })
    const by = Object.fromEntries(contenders.map((c) => [c.name, c]))
    const ratio = round(by.oxinfer.rowsPerSec / by.pureJs.rowsPerSec, 2)
    const bestRatio = round(Math.max(by.oxinfer.rowsPerSec, by.oxinferPool2.rowsPerSec) / by.pureJs.rowsPerSec, 2)
    return { rows: ROWS, chunkSize: CHUNK, inputMB: round(inputMB, 1), rounds: ROUNDS, labelsAgree, contenders, ratio, bestRatio, targets: { atLeast2x: ratio >= 2 } }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
