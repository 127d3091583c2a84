// Shared helpers for the oxinfer benchmarks.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
export const ROOT = dirname(BENCH_DIR)
export const FIXTURES = join(ROOT, '__test__', 'fixtures')
export const MODELS = {
  tinyMlp: join(FIXTURES, 'tiny_mlp.onnx'),
  heavyMatmul: join(FIXTURES, 'heavy_matmul.onnx'),
}
/** The libonnxruntime.so.1 that onnxruntime-node ships; oxinfer loads the same file. */
export const ORT_LIB = join(ROOT, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime.so.1')

/** Quick mode: fewer iterations everywhere (OXINFER_BENCH_QUICK=1). */
export const QUICK = process.env.OXINFER_BENCH_QUICK === '1'

const require = createRequire(import.meta.url)

/**
 * Loads onnxruntime-node first (its addon maps libonnxruntime.so.1 as a
 * dependency), then oxinfer from the repository root, which finds the library
 * already mapped and reuses it.
 */
export async function loadBoth() {
  const ort = require('onnxruntime-node')
  const ox = require(join(ROOT, 'index.js'))
  return { ort, ox }
}

/** oxinfer alone (memory benchmark): it loads libonnxruntime.so.1 from onnxruntime-node's folder. */
export function loadOxinfer() {
  return require(join(ROOT, 'index.js'))
}

/** The distinct libonnxruntime mappings of this process: path and inode. */
export function ortMappings() {
  const seen = new Map()
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const parts = line.trim().split(/\s+/)
    if (parts.length < 6) continue
    const path = parts.slice(5).join(' ')
    const file = path.split('/').pop() ?? ''
    if (!file.startsWith('libonnxruntime')) continue
    const key = `${parts[3]}:${parts[4]}:${path}`
    if (!seen.has(key)) seen.set(key, { path, device: parts[3], inode: Number(parts[4]) })
  }
  return [...seen.values()]
}

/** Checks that exactly one libonnxruntime is mapped and returns a summary. */
export function checkSharedLibrary(ox) {
  const maps = ortMappings()
  const v = ox.versions()
  return {
    single: maps.length === 1,
    mappings: maps,
    onnxruntimeVersion: v.onnxruntime,
    oxinferVersion: v.oxinfer,
  }
}

export const now = () => performance.now()

export function sorted(values) {
  return Float64Array.from(values).sort()
}

/** Nearest-rank percentile of an ascending array, p in [0, 1]. */
export function pct(sortedValues, p) {
  if (sortedValues.length === 0) return NaN
  const i = Math.min(sortedValues.length - 1, Math.max(0, Math.ceil(p * sortedValues.length) - 1))
  return sortedValues[i]
}

export function median(values) {
  return pct(sorted(values), 0.5)
}

export function summarize(values) {
  const s = sorted(values)
  let sum = 0
  for (const x of s) sum += x
  return {
    n: s.length,
    median: pct(s, 0.5),
    p90: pct(s, 0.9),
    p99: pct(s, 0.99),
    mean: sum / s.length,
    min: s[0],
    max: s[s.length - 1],
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
export const immediate = () => new Promise((r) => setImmediate(r))

/** Rotates an array by k (for alternating the order of contenders between rounds). */
export function rotate(arr, k) {
  const n = arr.length
  return arr.map((_, i) => arr[(i + k) % n])
}

/** Forces full collections (needs --expose-gc) and lets finalizers run. */
export async function settleGc(rounds = 4) {
  if (typeof global.gc !== 'function') throw new Error('run node with --expose-gc')
  for (let i = 0; i < rounds; i++) {
    global.gc()
    await immediate()
    await sleep(20)
  }
  global.gc()
}

export const MB = 1024 * 1024
export function memory() {
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers }
}

export function round(x, digits = 2) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return x
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** Deterministic pseudo-random floats (xorshift32), so every run feeds the same data. */
export function randomFloats(n, seed = 12345) {
  let s = seed >>> 0 || 1
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    out[i] = (s / 0x100000000) * 2 - 1
  }
  return out
}

export function log(...args) {
  process.stderr.write(args.join(' ') + '\n')
}

// --- Machine-noise accounting (Linux /proc) ---------------------------------

/** System-wide CPU time in USER_HZ ticks (first line of /proc/stat). */
export function cpuStat() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const [user, nice, system, idle, iowait, irq, softirq, steal = 0] = f
  const total = user + nice + system + idle + iowait + irq + softirq + steal
  return { total, idleTicks: idle + iowait, steal, busy: user + nice + system + irq + softirq }
}

/** CPU ticks used by this process (all threads): utime, stime, and those of waited-for children. */
export function selfCpuTicks({ children = true } = {}) {
  const s = readFileSync('/proc/self/stat', 'utf8')
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ').map(Number)
  // f[0] is field 3 (state); utime is field 14 -> f[11].
  return f[11] + f[12] + (children ? f[13] + f[14] : 0)
}

/** Starts measuring the CPU that other processes use; the returned function gives their average cores since. */
export function noiseMeter() {
  const ncpu = availableParallelism()
  const a = cpuStat()
  const own = selfCpuTicks()
  return () => {
    const b = cpuStat()
    const ticks = Math.max(1, b.total - a.total)
    const foreign = b.busy - a.busy - (selfCpuTicks() - own)
    return Math.max(0, (ncpu * foreign) / ticks)
  }
}

/** Waits until other processes use less than `threshold` cores (checked over 1 s), at most `maxSec`. */
export async function waitUntilQuiet(threshold = 0.15, maxSec = 300) {
  const t0 = Date.now()
  for (;;) {
    const m = noiseMeter()
    await sleep(1000)
    const busy = m()
    if (busy < threshold || (Date.now() - t0) / 1000 > maxSec) return busy
  }
}

export const NOISE_LIMIT = Number(process.env.OXINFER_BENCH_NOISE_LIMIT) || 0.25
const MAX_RETRIES = 4

/**
 * Runs one measurement round; when other processes used more than NOISE_LIMIT
 * cores meanwhile (this VM is shared), discards it, waits for quiet and runs it
 * again (at most MAX_RETRIES times). Returns the kept result and its noise.
 */
export async function cleanRound(label, fn) {
  let discarded = 0
  for (;;) {
    const meter = noiseMeter()
    const result = await fn()
    const foreign = meter()
    if (foreign <= NOISE_LIMIT || discarded >= MAX_RETRIES || QUICK) {
      return { result, foreignCores: round(foreign, 2), discarded }
    }
    discarded++
    log(`${label}: other processes used ${round(foreign, 2)} cores during this round; discarding it and waiting for quiet`)
    await waitUntilQuiet()
  }
}
