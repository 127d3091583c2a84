// Session options: the public option and metadata types of sessions and
// runs, and the parsing of `Session.create`'s options into what the native
// session takes.
import { availableParallelism } from 'node:os'

import { invalidArg } from '../errors'
import { native, type NameOf, type NativeSessionOptions } from '../native'
import { checkKeys, intOption, isPlainObject, oneOf, showValue } from '../options'
import type { RunTiming } from '../payload'
import type { TensorType } from '../tensor'

/** Options of {@link Session.create}. Unknown keys are refused. */
export interface SessionOptions {
  /**
   * Threads inside one operator. Default: chosen with `poolSize` when
   * neither is given (see {@link SessionOptions.poolSize}); with only
   * `poolSize` given, available cores / poolSize (at least 1).
   */
  intraOpThreads?: number
  /** Threads across independent operators. Default: 1 (sequential execution). */
  interOpThreads?: number
  /** Graph optimisation level. Default: 'all'. */
  graphOptimization?: NameOf<'GraphOptimization'>
  /**
   * Execution device. Default: 'cpu'. An unavailable device (no GPU, or an
   * engine library without CUDA) rejects with ERR_UNSUPPORTED naming what is
   * missing; there is no silent fallback to the CPU.
   */
  device?: 'cpu' | 'cuda' | `cuda:${number}`
  /**
   * The engine: 'onnx' (ONNX Runtime) or 'torch' (TorchScript on libtorch,
   * through the optional @oxinfer/torch package). Default: 'torch' for paths
   * ending in .pt, .pth, .pts or .torchscript and for bytes of a zip archive
   * (TorchScript's format), otherwise 'onnx'.
   */
  backend?: 'onnx' | 'torch'
  /**
   * ONNX models on `device: 'cuda'`: the CUDA execution provider's memory
   * arena limit in bytes (ONNX Runtime's `gpu_mem_limit`). Default: none.
   * Refused on the CPU and for TorchScript models.
   */
  gpuMemoryLimit?: number
  /**
   * TorchScript only: the element types and shapes of inputs and outputs,
   * which TorchScript files do not record (names come from `forward`'s
   * signature). Overrides an `oxinfer.json` saved in the archive. Undeclared
   * inputs are float32 of any shape. Refused for ONNX models.
   */
  declare?: { inputs?: readonly DeclaredValue[]; outputs?: readonly DeclaredValue[] }
  /**
   * How many runs of this session may execute at once (engine sessions
   * sharing pre-packed weights). When neither this nor `intraOpThreads` is
   * given, oxinfer times the model on zero inputs at load: a model under 1 ms
   * per run gets one intra-op thread per slot and min(cores, 4) slots (waking
   * intra-op threads costs a light model more than they save, and requests
   * run in parallel instead); a model measured heavier gets 1 slot with one
   * intra-op thread per core. A model that cannot run on zero inputs counts
   * as light unless its file is over 64 MiB (each slot holds its own copy of
   * the weights that ONNX Runtime does not pre-pack). `session.poolSize`
   * tells which. Either option given keeps the user's settings as they are
   * (poolSize default 1).
   */
  poolSize?: number
  /**
   * Runs whose measured engine time is below this many microseconds may run inline
   * on the JS thread when the session is idle, within a 1 ms budget per event-loop
   * turn. 0 turns inlining off. Default: 50, or 0 when `batching.maxDelayMicros`
   * is above 0 (an inline run would bypass the batch held open for it).
   */
  inlineThresholdMicros?: number
  /** Let idle intra-op threads spin. Default: false (spinning steals cores from the JS thread). */
  intraOpSpinning?: boolean
  /**
   * Let queued runs read their input tensors' buffers in place, without the
   * copy made by default when a run is queued. Default: false. With `true`
   * the caller must leave every input buffer unwritten, untransferred and
   * alive until the run's promise settles: a write changes the result, and a
   * buffer transferred to a worker (or freed) is read after it is gone. Runs
   * that go inline never copy; stream calls follow this option too.
   */
  zeroCopy?: boolean
  /**
   * OS priority of the inference threads (the workers and ONNX Runtime's own).
   * 'low' (default) runs them below the JS thread (nice +10 on Linux), so a busy
   * model yields the CPU to the event loop and to V8's GC; 'normal' keeps the
   * default priority, for processes that do nothing but inference.
   */
  workerPriority?: NameOf<'WorkerPriority'>
  /**
   * Dynamic batching (off by default). Queued runs with compatible shapes are
   * merged along axis 0, run once, and split back to their callers; a batch is
   * cut as soon as a worker is free (`maxDelayMicros: 0`), so batches grow with
   * load. Every input needs a dynamic batch dim; otherwise ERR_INVALID_ARGUMENT.
   */
  batching?: BatchingOptions
}

/** A declared input or output of a TorchScript model (see {@link SessionOptions.declare}). */
export interface DeclaredValue {
  name: string
  type?: Exclude<TensorType, 'string' | 'uint16' | 'uint32' | 'uint64'>
  /** -1 for a dynamic dimension. */
  dims?: readonly number[]
}

/** Dynamic batching options (see {@link SessionOptions.batching}). */
export interface BatchingOptions {
  /** Rows per merged batch at most. Default 32. */
  maxBatchSize?: number
  /**
   * How long a batch that is not full may wait for more requests, counted from
   * its first request's arrival, in µs. 0 cuts a batch as soon as a worker is
   * free, so batches grow with load. Default 0.
   */
  maxDelayMicros?: number
  /** Requests that may wait in the queue; more are refused at once with ERR_OVERLOADED. Default 0 (no limit). */
  maxQueue?: number
  /** Default bound on a request's time in the queue, in ms; past it the request rejects with ERR_TIMEOUT. Default 0 (none). */
  timeoutMs?: number
  /**
   * Priority levels for `run(feeds, { priority })`: 1 is the most urgent, and
   * requests without a priority get the least urgent level. A request of a lower
   * level that has waited 200 ms goes before more urgent ones, so none starves.
   * Default 1.
   */
  priorityLevels?: number
  /**
   * Batch sizes (rows) to prefer, as Triton's `preferred_batch_size`: a batch
   * is cut at the largest preferred size it reaches, and the rest wait for the
   * next batch (a batch smaller than every preferred size runs as it is);
   * while a batch is held open (`maxDelayMicros`), reaching a preferred size
   * cuts it at once. Sizes above `maxBatchSize` are refused. Default: none
   * (cut at `maxBatchSize`).
   */
  preferredBatchSizes?: readonly number[]
  /**
   * For padded inputs: the largest share of a merged batch's padded elements
   * that may be padding, from 0 to 1. A request that would push a batch past
   * it waits for a batch of similar lengths instead (bucketing by length).
   * Default 0.25.
   */
  maxPaddingWaste?: number
  /**
   * Per input: its batch axis (default 0); `shared: true` for inputs that must
   * be equal across a batch and are passed once (a sample rate, say; requests
   * whose shared inputs differ go to different batches); or `padAxis` for
   * variable-length inputs (token sequences), whose lengths along that axis
   * may differ within a batch: shorter ones are padded with `padValue`
   * (default 0) to the longest.
   * Examples: Silero VAD `{ state: { axis: 1 }, sr: { shared: true } }`;
   * a text encoder `{ input_ids: { padAxis: 1 }, attention_mask: { padAxis: 1 } }`.
   */
  inputs?: Record<string, { axis?: number; shared?: boolean; padAxis?: number; padValue?: number }>
  /**
   * Per output: its batch axis (default 0), and `padAxis` for outputs that
   * follow the padded length (per-token outputs): each caller's share is
   * cropped back to its own length along that axis (the longest of its padded
   * inputs). Example (Silero VAD): `{ stateN: { axis: 1 } }`.
   */
  outputs?: Record<string, { axis?: number; padAxis?: number }>
}

/** Options of {@link Session.run}. */
export interface RunOptions {
  /** Output names to fetch. Default: every output. */
  outputs?: readonly string[]
  /** Bound on this request's time in the queue, in ms (ERR_TIMEOUT past it). Default: the session's batching.timeoutMs (none). */
  timeoutMs?: number
  /** 1 (most urgent) to batching.priorityLevels. Default: the least urgent level. */
  priority?: number
  /** Aborts the run: a queued run is removed, a running one terminated. */
  signal?: AbortSignal
  /** Called with the request's timing breakdown just before its promise settles successfully. */
  onTiming?: (timing: RunTiming) => void
}

/** A model input or output. */
export interface ValueInfo {
  readonly name: string
  /** A tensor type name, or 'sequence', 'map' or 'optional'. */
  readonly type: TensorType | 'sequence' | 'map' | 'optional' | string
  /** A number when fixed, a string when symbolic, -1 when dynamic and unnamed. */
  readonly dims: readonly (number | string)[]
}

export interface ModelMetadata {
  readonly producer: string
  readonly version: number
  readonly description: string
  readonly domain: string
  readonly graphName: string
  readonly custom: Readonly<Record<string, string>>
}

const SESSION_OPTION_KEYS = [
  'intraOpThreads',
  'interOpThreads',
  'graphOptimization',
  'device',
  'poolSize',
  'inlineThresholdMicros',
  'intraOpSpinning',
  'workerPriority',
  'batching',
  'zeroCopy',
  'backend',
  'declare',
  'gpuMemoryLimit',
] as const

const DECLARABLE = ['float32', 'float64', 'float16', 'bfloat16', 'int8', 'uint8', 'int16', 'int32', 'int64', 'bool']

function declaredList(o: Record<string, unknown>, side: 'inputs' | 'outputs'): DeclaredValue[] | undefined {
  const list = o[side]
  if (list === undefined) return undefined
  if (!Array.isArray(list)) throw invalidArg(`declare.${side} must be an array of { name, type?, dims? }`)
  return list.map((d: unknown, i) => {
    const at = `declare.${side}[${i}]`
    if (!isPlainObject(d)) throw invalidArg(`${at} must be an object { name, type?, dims? }`)
    checkKeys(at, d, ['name', 'type', 'dims'])
    if (typeof d.name !== 'string' || d.name === '') throw invalidArg(`${at}.name must be a non-empty string`)
    if (d.type !== undefined && (typeof d.type !== 'string' || !DECLARABLE.includes(d.type))) {
      throw invalidArg(`${at}.type must be one of ${DECLARABLE.join(', ')}, got ${showValue(d.type)}`)
    }
    if (d.dims !== undefined && (!Array.isArray(d.dims) || d.dims.some((n) => typeof n !== 'number' || !Number.isSafeInteger(n) || n < -1))) {
      throw invalidArg(`${at}.dims must be an array of integers (-1 for a dynamic dimension)`)
    }
    return { name: d.name, type: d.type as DeclaredValue['type'], dims: d.dims as number[] | undefined }
  })
}

/** @internal Session options resolved: what the native session takes, and what stays in JS. */
export interface ParsedSessionOptions {
  native: NativeSessionOptions
  /** `inlineThresholdMicros`. */
  inline: number
  timeoutMs: number
  priorityLevels: number
  /** The engine asked for; undefined: chosen by the model (see `backend`). */
  backend: 'onnx' | 'torch' | undefined
}

/** @internal Reads `Session.create`'s options; throws ERR_INVALID_ARGUMENT. */
export function parseSessionOptions(options: SessionOptions): ParsedSessionOptions {
  if (!isPlainObject(options)) throw invalidArg('Session.create: options must be an object')
  checkKeys('session', options, SESSION_OPTION_KEYS)
  const o = options as Record<string, unknown>
  // Neither given: the core chooses both from a measured run (see poolSize's doc).
  const autoThreads = o.poolSize === undefined && o.intraOpThreads === undefined
  const poolSize = intOption(o, 'poolSize', 1, 1, 256)
  const cores = availableParallelism()
  const intraOpThreads = intOption(o, 'intraOpThreads', Math.max(1, Math.floor(cores / poolSize)), 0, 1024)
  const interOpThreads = intOption(o, 'interOpThreads', 1, 0, 1024)
  const graphOptimization = oneOf('graphOptimization', o.graphOptimization, native.GraphOptimization, 'all')
  const device = o.device ?? 'cpu'
  if (typeof device !== 'string' || !/^(cpu|cuda|cuda:\d+)$/.test(device)) {
    throw invalidArg(`device must be 'cpu', 'cuda' or 'cuda:N', got ${showValue(device)}`)
  }
  const spinning = o.intraOpSpinning ?? false
  if (typeof spinning !== 'boolean') throw invalidArg('intraOpSpinning must be a boolean')
  const zeroCopy = o.zeroCopy ?? false
  if (typeof zeroCopy !== 'boolean') throw invalidArg('zeroCopy must be a boolean')
  const workerPriority = oneOf('workerPriority', o.workerPriority, native.WorkerPriority, 'low')
  const gpuMemoryLimit = o.gpuMemoryLimit ?? 0
  if (typeof gpuMemoryLimit !== 'number' || !Number.isSafeInteger(gpuMemoryLimit) || gpuMemoryLimit < 0) throw invalidArg(`gpuMemoryLimit must be a number of bytes, got ${showValue(o.gpuMemoryLimit)}`)
  if (gpuMemoryLimit > 0 && device === 'cpu') throw invalidArg("gpuMemoryLimit needs device 'cuda' or 'cuda:N'")
  if (o.backend !== undefined && o.backend !== 'onnx' && o.backend !== 'torch') throw invalidArg(`backend must be 'onnx' or 'torch', got ${showValue(o.backend)}`)
  let declaredInputs: DeclaredValue[] | undefined
  let declaredOutputs: DeclaredValue[] | undefined
  if (o.declare !== undefined) {
    if (!isPlainObject(o.declare)) throw invalidArg('declare must be an object { inputs?, outputs? }')
    checkKeys('declare', o.declare, ['inputs', 'outputs'])
    declaredInputs = declaredList(o.declare, 'inputs')
    declaredOutputs = declaredList(o.declare, 'outputs')
  }
  let maxBatchSize = 0
  let maxQueue = 0
  let timeoutMs = 0
  let priorityLevels = 1
  let maxDelayMicros = 0
  let batchInputAxes: Record<string, number> | undefined
  let batchOutputAxes: Record<string, number> | undefined
  let batchShared: string[] | undefined
  let batchPadAxes: Record<string, number> | undefined
  let batchPadValues: Record<string, number> | undefined
  let batchOutputPadAxes: Record<string, number> | undefined
  let preferredBatchSizes: number[] | undefined
  let maxPaddingWaste = 0.25
  if (o.batching !== undefined) {
    if (!isPlainObject(o.batching)) throw invalidArg('batching must be an object')
    checkKeys('batching', o.batching, ['maxBatchSize', 'maxDelayMicros', 'preferredBatchSizes', 'maxPaddingWaste', 'maxQueue', 'timeoutMs', 'priorityLevels', 'inputs', 'outputs'])
    for (const side of ['inputs', 'outputs'] as const) {
      const decl = o.batching[side]
      if (decl === undefined) continue
      if (!isPlainObject(decl)) throw invalidArg(`batching.${side} must map names to { axis${side === 'inputs' ? ', shared, padAxis, padValue' : ', padAxis'} }`)
      for (const [name, d] of Object.entries(decl)) {
        if (!isPlainObject(d)) throw invalidArg(`batching.${side}.${name} must be an object`)
        checkKeys(`batching.${side}.${name}`, d, side === 'inputs' ? ['axis', 'shared', 'padAxis', 'padValue'] : ['axis', 'padAxis'])
        if (d.axis !== undefined) {
          const axis = intOption(d, 'axis', 0, 0, 64)
          if (side === 'inputs') (batchInputAxes ??= {})[name] = axis
          else (batchOutputAxes ??= {})[name] = axis
        }
        if (d.padAxis !== undefined) {
          const axis = intOption(d, 'padAxis', 1, 0, 64)
          if (side === 'inputs') (batchPadAxes ??= {})[name] = axis
          else (batchOutputPadAxes ??= {})[name] = axis
        }
        if (d.padValue !== undefined) {
          if (typeof d.padValue !== 'number' || !Number.isFinite(d.padValue)) throw invalidArg(`batching.inputs.${name}.padValue must be a finite number`)
          if (d.padAxis === undefined) throw invalidArg(`batching.inputs.${name}.padValue needs padAxis`)
          ;(batchPadValues ??= {})[name] = d.padValue
        }
        if (d.shared !== undefined) {
          if (typeof d.shared !== 'boolean') throw invalidArg(`batching.inputs.${name}.shared must be a boolean`)
          if (d.shared) (batchShared ??= []).push(name)
        }
      }
    }
    priorityLevels = intOption(o.batching, 'priorityLevels', 1, 1, 255)
    maxBatchSize = intOption(o.batching, 'maxBatchSize', 32, 1, 65536)
    maxQueue = intOption(o.batching, 'maxQueue', 0, 0, 2 ** 31 - 1)
    timeoutMs = intOption(o.batching, 'timeoutMs', 0, 0, 2 ** 31 - 1)
    maxDelayMicros = intOption(o.batching, 'maxDelayMicros', 0, 0, 10_000_000)
    const pref = o.batching.preferredBatchSizes
    if (pref !== undefined) {
      if (!Array.isArray(pref) || pref.some((p) => typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > maxBatchSize)) {
        throw invalidArg(`batching.preferredBatchSizes must be an array of integers from 1 to maxBatchSize (${maxBatchSize})`)
      }
      preferredBatchSizes = [...new Set(pref as number[])].sort((a, b) => a - b)
    }
    const waste = o.batching.maxPaddingWaste
    if (waste !== undefined && (typeof waste !== 'number' || !(waste >= 0 && waste <= 1))) {
      throw invalidArg('batching.maxPaddingWaste must be a number from 0 to 1')
    }
    if (waste !== undefined) maxPaddingWaste = waste
  }
  // A batch held open for late arrivals is the point of maxDelayMicros, and
  // an inline run would bypass it: no inlining then, unless asked for.
  const inline = intOption(o, 'inlineThresholdMicros', maxDelayMicros > 0 ? 0 : 50, 0, 1000)
  return {
    native: { intraOpThreads, interOpThreads, graphOptimization, device, poolSize, intraOpSpinning: spinning, workerPriority, maxBatchSize, maxQueue, priorityLevels, maxDelayMicros, batchInputAxes, batchOutputAxes, batchShared, preferredBatchSizes, batchPadAxes, batchPadValues, batchOutputPadAxes, maxPaddingWaste, zeroCopy, autoThreads, backend: (o.backend as string | undefined) ?? '', declaredInputs, declaredOutputs, gpuMemoryLimit },
    inline,
    timeoutMs,
    priorityLevels,
    backend: o.backend as 'onnx' | 'torch' | undefined,
  }
}

/** @internal Checks the per-request options that runs and pipeline runs share. */
export function checkRequestOptions(what: string, options: Record<string, unknown>, levels: number): void {
  if (options.priority !== undefined && (typeof options.priority !== 'number' || !Number.isInteger(options.priority) || options.priority < 1 || options.priority > levels)) {
    throw invalidArg(`${what}: options.priority must be an integer from 1 to ${levels} (batching.priorityLevels)`)
  }
  if (options.timeoutMs !== undefined && (typeof options.timeoutMs !== 'number' || !(options.timeoutMs >= 0) || !Number.isFinite(options.timeoutMs))) {
    throw invalidArg(`${what}: options.timeoutMs must be a non-negative number of milliseconds`)
  }
  if (options.onTiming !== undefined && typeof options.onTiming !== 'function') throw invalidArg(`${what}: options.onTiming must be a function`)
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw invalidArg(`${what}: options.signal must be an AbortSignal`)
}

/** What a session's requests did since it loaded (`session.stats()`), counted natively. */
export interface SessionStats {
  /** Requests that succeeded. */
  success: number
  /** Failed requests by error code (codes with none left out). */
  failures: Partial<Record<string, number>>
  /** Model executions: a merged batch counts once. */
  executions: number
  /** Mean time per successful request in each stage, µs. */
  meanQueueUs: number
  meanPreUs: number
  meanInferUs: number
  meanPostUs: number
  /** Mean rows of the batch a request ran in. */
  meanBatchRows: number
  /** Percentiles of a successful request's queue + engine time, µs (to within 19 %); null before any. */
  p50Us: number | null
  p90Us: number | null
  p99Us: number | null
  /** Requests queued now, and queued or executing. */
  queued: number
  pending: number
}
