#!/usr/bin/env node
// Runs the oxinfer benchmarks, prints a table, writes benchmark/results.json.
//
//   node benchmark/run.mjs                        # all nine
//   node benchmark/run.mjs latency throughput     # a subset
//   OXINFER_BENCH_QUICK=1 node benchmark/run.mjs  # short runs (smoke test)
//   OXINFER_BENCH_MEMORY_RUNS=100000 node benchmark/run.mjs memory
//
// Each benchmark runs in a fresh child process (node --expose-gc), so that one
// benchmark's sessions, heap and threads cannot disturb the next.
import { spawn, spawnSync } from 'node:child_process'
import { cpus } from 'node:os'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { BENCH_DIR, QUICK, ROOT, cpuStat, log, round, selfCpuTicks, sleep } from './util.mjs'

const ALL = ['latency', 'eventloop', 'throughput', 'memory', 'pipeline', 'tokenizer', 'images', 'batching', 'streams', 'jobs', 'ocr', 'torch', 'monitor', 'log', 'trial', 'store', 'transformers']
const MODULES = {
  latency: './latency.mjs',
  eventloop: './eventloop.mjs',
  throughput: './throughput.mjs',
  memory: './memory.mjs',
  pipeline: './pipeline.mjs',
  tokenizer: './tokenizer.mjs',
  images: './images.mjs',
  batching: './batching.mjs',
  streams: './streams.mjs',
  jobs: './jobs.mjs',
  ocr: './ocr.mjs',
  torch: './torch.mjs',
  monitor: './monitor.mjs',
  log: './log.mjs',
  trial: './trial.mjs',
  store: './store.mjs',
  transformers: './transformers.mjs',
}

async function child(name, outFile) {
  const mod = await import(MODULES[name])
  const result = await mod.run()
  result.cpuTicks = selfCpuTicks()
  writeFileSync(outFile, JSON.stringify(result, null, 2))
}

/** Builds a standalone cargo project under benchmark/ (rust-floor, rust-tokenizers) into the root target/. */
function buildRust(name) {
  const dir = join(BENCH_DIR, name)
  log(`building benchmark/${name} (cargo build --release)`)
  const p = spawnSync('cargo', ['build', '--release', '--quiet'], {
    cwd: dir,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, CARGO_TARGET_DIR: join(ROOT, 'target') },
  })
  if (p.status !== 0) throw new Error(`cargo build of benchmark/${name} failed`)
}

const NCPU = cpus().length
const QUIET_MAX_S = process.env.OXINFER_BENCH_QUIET_MAX_S !== undefined ? Number(process.env.OXINFER_BENCH_QUIET_MAX_S) : QUICK ? 0 : 600

/** Busy cores (other than idle/steal) over `ms`, system-wide. */
async function busyCores(ms) {
  const a = cpuStat()
  await sleep(ms)
  const b = cpuStat()
  return (NCPU * (b.busy - a.busy)) / Math.max(1, b.total - a.total)
}

/** Waits (up to OXINFER_BENCH_QUIET_MAX_S) until other processes leave the CPUs alone. */
async function waitQuiet() {
  const t0 = Date.now()
  for (;;) {
    const busy = await busyCores(2000)
    if (busy < 0.15) return { waitedSec: round((Date.now() - t0) / 1000, 0), busyCoresBefore: round(busy, 2) }
    if ((Date.now() - t0) / 1000 >= QUIET_MAX_S) {
      log(`machine still busy (${round(busy, 2)} cores in use by other processes); running anyway`)
      return { waitedSec: round((Date.now() - t0) / 1000, 0), busyCoresBefore: round(busy, 2), notQuiet: true }
    }
    log(`machine busy (${round(busy, 2)} cores in use by other processes); waiting`)
    await sleep(5000)
  }
}

function runChild(name) {
  const dir = mkdtempSync(join(tmpdir(), 'oxinfer-bench-'))
  const out = join(dir, `${name}.json`)
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', name, out], {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit'],
    })
    p.on('error', reject)
    p.on('exit', (code, signal) => {
      try {
        if (code !== 0) throw new Error(`benchmark '${name}' exited with ${signal ?? code}`)
        resolve(JSON.parse(readFileSync(out, 'utf8')))
      } catch (e) {
        reject(e)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
}

function machine() {
  let cpuModel = cpus()[0]?.model ?? 'unknown'
  try {
    const m = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))
    if (m) cpuModel = m[1]
  } catch {}
  const nproc = spawnSync('nproc', { encoding: 'utf8' }).stdout?.trim()
  const git = (...args) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim()
  let addonBuilt = null
  try {
    addonBuilt = statSync(join(ROOT, 'oxinfer.linux-x64-gnu.node')).mtime.toISOString()
  } catch {}
  return {
    gitCommit: git('rev-parse', '--short', 'HEAD'),
    gitDirty: (git('status', '--porcelain', '--untracked-files=no', '--', 'crates', 'index.ts') ?? '') !== '',
    addonBuilt,
    nproc: Number(nproc) || cpus().length,
    cpuModel,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    quick: QUICK,
    date: new Date().toISOString(),
  }
}

const yes = (b) => (b === null || b === undefined ? 'n/a' : b ? 'yes' : 'NO')

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)))
  const line = (r) => r.map((c, i) => String(c).padEnd(widths[i])).join(' | ')
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.slice(1).map(line)].join('\n')
}

function report(results) {
  const out = []
  const lib = results.latency?.library ?? results.eventloop?.library ?? results.throughput?.library ?? results.batching?.library
  if (lib) {
    out.push(`ONNX Runtime ${lib.onnxruntimeVersion}; libonnxruntime mappings: ${lib.mappings.map((m) => `${m.path} (inode ${m.inode})`).join(', ')} -> ${lib.single ? 'one shared library' : 'MORE THAN ONE'}`)
  }
  if (results.latency) {
    const l = results.latency
    const rows = [['latency (tiny_mlp, batch 1)', 'median µs', 'p99 µs', 'vs ort-node', 'round medians']]
    for (const k of ['oxinfer', 'oxinferInline0', 'ortNode', 'nativeRunSync', 'uvHop']) {
      const v = l.js[k]
      if (!v) continue
      rows.push([v.label, v.medianUs, v.p99Us, round(v.medianUs / l.js.ortNode.medianUs, 3), v.roundMediansUs.join(' ')])
    }
    if (l.floor) {
      rows.push(['ort floor (Rust, session.run)', round(l.floor.plain.medianUs, 3), round(l.floor.plain.p99Us, 3), round(l.floor.plain.medianUs / l.js.ortNode.medianUs, 3), l.floor.plain.roundMediansUs.map((x) => round(x, 3)).join(' ')])
      rows.push(['ort floor (Rust, run_with_options)', round(l.floor.runOptions.medianUs, 3), round(l.floor.runOptions.p99Us, 3), round(l.floor.runOptions.medianUs / l.js.ortNode.medianUs, 3), l.floor.runOptions.roundMediansUs.map((x) => round(x, 3)).join(' ')])
    }
    out.push(table(rows))
    out.push(`targets: oxinfer/ort-node = ${l.ratios.oxinferVsOrtNode} (block-paired median ${l.ratios.oxinferVsOrtNodePaired}) (<= 0.8: ${yes(l.targets.ratioAtMost0_8)}); oxinfer - floor = ${l.ratios.oxinferMinusFloorUs} µs, paired by round (<= 5: ${yes(l.targets.within5UsOfFloor)})`)
  }
  if (results.eventloop) {
    const e = results.eventloop
    const rows = [['event loop (64 × heavy_matmul)', 'burst ms', 'delay p50 ms', 'p99 ms', 'max ms', 'longest 1ms-tick gap ms', 'runs/s', 'max GC pause ms', 'GC in longest gap ms (per round)']]
    for (const c of e.contenders) {
      rows.push([c.label, c.burstMs.median, c.delay.p50Ms.median, c.delay.p99Ms.median, c.delay.maxMs.median, c.longestGapMs.median, c.runsPerSec.median, c.gc?.maxPauseMs.median ?? '', c.gc?.inLongestGapMs.join(' ') ?? ''])
    }
    out.push(table(rows))
    out.push(`targets (oxinfer): p99 <= 5 ms: ${yes(e.targets.p99AtMost5)}; longest stall <= 10 ms: ${yes(e.targets.stallAtMost10)}`)
  }
  if (results.throughput) {
    const t = results.throughput
    const rows = [['throughput (2000 × tiny_mlp)', 'median runs/s', 'p10 runs/s', 'p90 runs/s', 'vs ort-node (medians)', 'vs ort-node (paired, median)', 'event-loop util.', 'JS-thread µs/run', 'CPU µs/run']]
    for (const c of t.contenders) rows.push([c.label, c.runsPerSec.median, c.runsPerSec.p10, c.runsPerSec.p90, c.vsOrtNode, c.pairedVsOrtNode, c.eventLoopUtilization, c.jsThreadUsPerRun, c.cpuUsPerRun])
    out.push(table(rows))
    out.push(`target: best oxinfer >= 2× onnxruntime-node: ${yes(t.targets.atLeast2x)} (${t.bestRatio}×)`)
    if (t.batchedRatio !== undefined) out.push(`with dynamic batching (maxBatchSize 64): ${t.batchedRatio}× (paired ${t.batchedPairedRatio}×)`)
  }
  if (results.memory) {
    const m = results.memory
    const rows = [['memory (oxinfer, tiny_mlp)', 'RSS before MB', 'RSS after MB', 'growth MB', '< 20 MB']]
    rows.push([`${m.runs.count} runs (chunks of ${m.runs.chunk})`, m.runs.before.rssMB, m.runs.after.rssMB, m.runs.growthMB, yes(m.runs.growthMB < 20)])
    rows.push([`${m.cycles.count} create/dispose cycles`, m.cycles.before.rssMB, m.cycles.after.rssMB, m.cycles.growthMB, yes(m.cycles.growthMB < 20)])
    out.push(table(rows))
  }
  if (results.pipeline) {
    const p = results.pipeline
    const rows = [['pipeline (penguins; oxinfer at its defaults)', 'oxinfer rec/s', 'loops rec/s', 'closures rec/s', 'oxinfer ÷ faster JS', 'paired', 'oxinfer µs/call', 'floor µs/call', 'oxinfer JS-thread µs/call', 'JS JS-thread µs/call']]
    for (const r of Object.values(p.modes)) rows.push([r.label, r.oxinfer.perSec, r.loops.perSec, r.closures.perSec, r.ratio, r.pairedRatio, r.oxinfer.usPerCall, r.floor?.total ?? '', r.oxinfer.jsUsPerCall, r[r.bestPureJs].jsUsPerCall])
    out.push(table(rows))
    const sk = p.sklearn?.skipped ? `scikit-learn: skipped (${p.sklearn.skipped})` : `scikit-learn ${p.sklearn?.sklearn}: batch 1 ${p.sklearn?.batch1_records_per_s} rec/s, batch 1024 ${p.sklearn?.batch1024_records_per_s} rec/s`
    out.push(`labels agree: ${yes(p.labelsAgree)}; ORT's own run (onnxruntime-node, 1 thread): batch 1 ${p.ortOwnRun?.batch1Us} µs, batch 1,024 ${p.ortOwnRun?.batch1024Us} µs; ${sk}`)
    out.push('targets (issue #12):\n' + (p.targets ?? []).map((t) => `  ${t.target}: ${yes(t.met)} (${t.figure})`).join('\n'))
  }
  if (results.tokenizer) {
    const t = results.tokenizer
    const rows = [[`tokenizer (${t.lines} lines, ${t.tokens} tokens)`, 'median lines/s', 'p10', 'ms/pass', 'JS-thread ms/pass', 'vs JS (paired)', 'vs Rust whole (paired)', 'vs Rust same batching', 'round medians']]
    for (const c of t.contenders) rows.push([c.label, c.linesPerSec, c.p10, c.msPerPass, c.jsThreadMsPerPass, `${c.vsJs} (${c.pairedVsJs})`, `${c.vsLimitWhole} (${c.pairedVsLimitWhole})`, c.vsLimitSameBatching ?? '', c.roundMedians.join(' ')])
    const l = t.limit
    const blank = ['', '', '', '', '', '']
    rows.push([l.label, l.wholeLinesPerSec, '', '', '', '', 1, 1, l.roundMedians.join(' ')])
    rows.push(['Rust tokenizers, batches of 1,024 / 256', `${l.batch1024LinesPerSec} / ${l.batch256LinesPerSec}`, ...blank, ''])
    rows.push(['Rust tokenizers, encode() line by line, 1 thread', l.sequentialOneThreadLinesPerSec, ...blank, ''])
    rows.push(['Rust, clone tokenizer per call (old oxinfer path): whole / 256', `${l.clonePerCallWholeLinesPerSec} / ${l.clonePerCallBatch256LinesPerSec}`, ...blank, ''])
    out.push(table(rows))
    out.push(`ids identical: ${t.agreement.identical}/${t.agreement.lines} lines (${t.agreement.percent} %); one-line encodeBatch: ${t.singleLineEncodeBatchMs.median} ms; Tokenizer clone+drop in Rust: ${l.tokenizerCloneDropMs} ms; load ms: oxinfer ${t.load.oxinferMs}, JS ${t.load.jsMs}, Rust ${t.load.rustMs}`)
    out.push(`targets (whole-corpus batch; medians and paired by round): >= 2.5× the JS tokenizer: ${yes(t.targets.atLeast2_5xJs)} (${t.targets.wholeVsJs}×, paired ${t.targets.wholePairedVsJs}×); within 15 % of the Rust limit: ${yes(t.targets.within15PctOfLimit)} (${t.targets.wholeVsLimit}, paired ${t.targets.wholePairedVsLimit})`)
  }
  if (results.images) {
    const im = results.images
    out.push(`sharp ${im.sharp.sharp} (libvips ${im.sharp.vips}), concurrency ${im.sharp.concurrency}, libuv threadpool ${im.sharp.uvThreadpoolSize}; batches of ${im.batch} × ${im.source.width}×${im.source.height} JPEG`)
    for (const [, p] of Object.entries(im.pipelines)) {
      const rows = [[`images: ${p.label}`, 'median images/s', 'ms/batch', 'JS-thread ms/image', 'oxinfer ×', 'round medians']]
      for (const c of p.contenders) rows.push([c.label, c.imagesPerSec, c.msPerBatch, c.jsThreadMsPerImage, c.oxinferRatio, c.roundMedians.join(' ')])
      out.push(table(rows))
      out.push(`mean |oxinfer − sharp| (normalised units): ${Object.entries(p.agreementWithOxinfer).map(([k, d]) => `${k} ${d.meanAbs} (max ${d.maxAbs})`).join(', ')}`)
    }
    out.push(`target: oxinfer >= 1.5× the best sharp variant: ${yes(im.targets.atLeast1_5x)} (crop ${im.targets.cropVsSharp}×, resize ${im.targets.exactVsSharp}×)`)
  }
  if (results.batching) {
    const b = results.batching
    const rows = [[`batching: bursts of ${b.config.runs} × tiny_mlp (1 row)`, 'median runs/s', 'p10', 'p90', 'µs/request', 'JS-thread µs/req', 'CPU µs/req', 'latency p50 ms', 'p99 ms', 'vs ort-node (paired)', 'cost vs JS floor (paired)']]
    for (const c of b.bursts.contenders) rows.push([c.label, c.runsPerSec.median, c.runsPerSec.p10, c.runsPerSec.p90, c.usPerRequest, c.jsThreadUsPerRequest, c.cpuUsPerRequest, c.latency.p50Ms, c.latency.p99Ms, `${c.vsOrtNode} (${c.pairedVsOrtNode})`, `${c.vsFloorCost} (${c.pairedVsFloorCost})`])
    out.push(table(rows))
    const loop = [['batching: closed loop, N callers', ...b.config.callers.map((n) => `N=${n}`)]]
    for (const c of b.closedLoop.contenders) {
      loop.push([`${c.label}: req/s`, ...c.points.map((p) => p.runsPerSec)])
      loop.push([`${c.label}: p99 ms`, ...c.points.map((p) => p.p99Ms)])
    }
    out.push(table(loop))
    const t = b.targets
    out.push(`results agree with onnxruntime-node: max |diff| ${b.agreement.maxAbsDiff}`)
    out.push(`targets: best batched (${t.bestBatched}) >= 5× onnxruntime-node: ${yes(t.atLeast5xOrtNode)} (${t.bestVsOrtNode}×, paired ${t.bestPairedVsOrtNode}×); per-request cost within 2× of the JS-only floor: ${yes(t.within2xFloor)} (${t.bestVsFloorCost}×, paired ${t.bestPairedVsFloorCost}×); closed loop p99 <= 2 ms at N = 32: ${yes(t.p99AtMost2MsAtN32)} (${t.p99AtN32Ms} ms); throughput rising with N up to 32: ${yes(t.throughputRisingToBatchSize)}`)
  }
  if (results.streams) {
    const st = results.streams
    const rows = [[`streams: ${st.config.streams} Silero VAD streams × ${st.config.steps} chunks`, 'median chunks/s', 'p10', 'p90', 'round medians']]
    for (const c of st.contenders) rows.push([c.label, c.chunksPerSec, c.p10, c.p90, c.roundMedians.join(' ')])
    out.push(table(rows))
    out.push(`final probabilities agree across contenders: max |diff| ${st.agreement.maxAbsDiff}`)
    out.push(`target: oxinfer streams >= 3× onnxruntime-node with the state through JS: ${yes(st.targets.atLeast3x)} (${st.targets.streamsVsOrtNode}×, paired ${st.targets.pairedStreamsVsOrtNode}×; Session.run with the state through JS, batched: ${st.targets.runsVsOrtNode}×)`)
  }
  if (results.jobs) {
    const j = results.jobs
    const rows = [[`jobs: penguins, ${j.rows} CSV rows (${j.inputMB} MB) to JSONL`, 'median rows/s', 'rounds', 's', 'peak RSS MB', 'RSS growth MB']]
    for (const c of j.contenders) rows.push([c.label, c.rowsPerSec, c.roundRowsPerSec.join(' '), c.seconds, c.peakRssMB, c.rssGrowthMB])
    out.push(table(rows))
    out.push(`labels agree: ${yes(j.labelsAgree)}; target: oxinfer runJob >= 2× the pure-JS loop at flat memory: ${yes(j.targets.atLeast2x)} (${j.ratio}×; best oxinfer variant ${j.bestRatio}×)`)
  }
  const noise = Object.entries(results).map(([k, v]) => `${k}: ${v.elapsedSec} s, other processes ${v.noise?.foreignCores} cores, steal ${v.noise?.stealCores}`)
  out.push('machine noise: ' + noise.join('; '))
  return out.join('\n\n')
}

async function main() {
  if (process.argv[2] === '--child') {
    await child(process.argv[3], process.argv[4])
    return
  }
  const wanted = process.argv.slice(2)
  for (const w of wanted) if (!ALL.includes(w)) throw new Error(`unknown benchmark '${w}'; choose from ${ALL.join(', ')}`)
  const selected = wanted.length ? ALL.filter((n) => wanted.includes(n)) : ALL
  if (!existsSync(join(ROOT, 'binding.js'))) throw new Error('build oxinfer first: npm run build')
  if (selected.includes('latency')) buildRust('rust-floor')
  if (selected.includes('tokenizer')) buildRust('rust-tokenizers')

  const resultsFile = join(BENCH_DIR, 'results.json')
  let previous = {}
  try {
    previous = JSON.parse(readFileSync(resultsFile, 'utf8'))
  } catch {}
  const results = {}
  for (const name of selected) {
    log(`\n== ${name} ==`)
    const quiet = await waitQuiet()
    const t0 = Date.now()
    const s0 = cpuStat()
    const own0 = selfCpuTicks({ children: false })
    results[name] = await runChild(name)
    const s1 = cpuStat()
    const own1 = selfCpuTicks({ children: false })
    const elapsed = (Date.now() - t0) / 1000
    // CPU used by everything else on the machine while the benchmark ran.
    const foreignTicks = s1.busy - s0.busy - results[name].cpuTicks - (own1 - own0)
    const ticks = s1.total - s0.total
    results[name].elapsedSec = round(elapsed, 1)
    results[name].noise = {
      ...quiet,
      benchmarkCores: round((NCPU * results[name].cpuTicks) / Math.max(1, ticks), 2),
      foreignCores: round(Math.max(0, (NCPU * foreignTicks) / Math.max(1, ticks)), 2),
      stealCores: round((NCPU * (s1.steal - s0.steal)) / Math.max(1, ticks), 2),
    }
    log(`${name}: ${round(elapsed, 1)} s; other processes used ${results[name].noise.foreignCores} cores on average meanwhile`)
  }
  // A subset run keeps the other benchmarks' previous results in the file.
  const merged = { ...previous, machine: machine(), ...results }
  writeFileSync(resultsFile, JSON.stringify(merged, null, 2) + '\n')
  console.log('\n' + report(results))
  console.log(`\nwrote ${resultsFile}`)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
