/**
 * oxinfer: ML inference for Node.js on a Rust core.
 *
 * This file is the public API. It validates arguments, keeps the promise
 * bookkeeping, and decides when a run may execute inline on the JS thread;
 * everything else (model loading, inference, scheduling) happens in the
 * native addon (`binding.js`), on native threads.
 *
 * @packageDocumentation
 */
import { createWriteStream, existsSync, openSync, unlinkSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, isAbsolute, join, resolve as resolvePath } from 'node:path'
import { performance } from 'node:perf_hooks'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const native: NativeBinding = require('./binding.js')

// ---------------------------------------------------------------------------
// Errors

/** Stable error codes. See the README for when each one is used. */
export type ErrorCode =
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_INVALID_INPUT'
  | 'ERR_MODEL_LOAD'
  | 'ERR_INVALID_SPEC'
  | 'ERR_UNSUPPORTED'
  | 'ERR_ABORTED'
  | 'ERR_DISPOSED'
  | 'ERR_OVERLOADED'
  | 'ERR_TIMEOUT'
  | 'ERR_BACKEND'

const CODES: ReadonlySet<string> = new Set([
  'ERR_INVALID_ARGUMENT',
  'ERR_INVALID_INPUT',
  'ERR_MODEL_LOAD',
  'ERR_INVALID_SPEC',
  'ERR_UNSUPPORTED',
  'ERR_ABORTED',
  'ERR_DISPOSED',
  'ERR_OVERLOADED',
  'ERR_TIMEOUT',
  'ERR_BACKEND',
])

export interface OxinferErrorOptions {
  /** The model input the error is about. */
  input?: string
  /** The record (row index within its batch) an input error is about. */
  row?: number
  /** The record field an input error is about. */
  field?: string
  /** The pipeline stage a spec error is about. */
  stage?: string
  cause?: unknown
}

/** Every error oxinfer raises or rejects with. One class for ESM and CJS. */
export class OxinferError extends Error {
  readonly code: ErrorCode
  /** The model input the error is about, where one applies. */
  readonly input?: string
  /** The record (row within its batch) an input error is about. */
  readonly row?: number
  /** The record field an input error is about. */
  readonly field?: string
  /** The pipeline stage a spec error is about. */
  readonly stage?: string

  constructor(code: ErrorCode, message: string, options: OxinferErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'OxinferError'
    this.code = code
    if (options.input !== undefined) this.input = options.input
    if (options.row !== undefined) this.row = options.row
    if (options.field !== undefined) this.field = options.field
    if (options.stage !== undefined) this.stage = options.stage
  }
}

const SEP = '\u001f'

/** Turns an error from the addon (encoded `CODE␟input␟message`) into an OxinferError. */
function fromNative(e: unknown): OxinferError {
  if (e instanceof OxinferError) return e
  const msg = typeof e === 'string' ? e : e instanceof Error ? e.message : String(e)
  const parts = msg.split(SEP)
  if (parts.length >= 3 && CODES.has(parts[0])) {
    let details: OxinferErrorOptions = {}
    try {
      details = JSON.parse(parts[1]) as OxinferErrorOptions
    } catch {
      // Keep the code and message even if the details are unreadable.
    }
    return new OxinferError(parts[0] as ErrorCode, parts.slice(2).join(SEP), details)
  }
  return new OxinferError('ERR_BACKEND', msg, { cause: e })
}

function invalidArg(message: string): OxinferError {
  return new OxinferError('ERR_INVALID_ARGUMENT', message)
}

function checkKeys(what: string, options: object, allowed: readonly string[]): void {
  // for-in rather than Object.keys: no array per call on the hot path.
  for (const key in options) {
    if (Object.hasOwn(options, key) && !allowed.includes(key)) {
      throw invalidArg(`unknown ${what} option '${key}'; allowed: ${allowed.join(', ')}`)
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

// ---------------------------------------------------------------------------
// Tensors

/** Element types, with onnxruntime-common's names. */
export type TensorType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string'

/** The data container of each type (onnxruntime-common's conventions). */
export interface TensorDataMap {
  float32: Float32Array
  float64: Float64Array
  /** Raw IEEE half-precision bits. */
  float16: Uint16Array
  int8: Int8Array
  uint8: Uint8Array
  int16: Int16Array
  uint16: Uint16Array
  int32: Int32Array
  uint32: Uint32Array
  int64: BigInt64Array
  uint64: BigUint64Array
  /** 0 or 1 per element. */
  bool: Uint8Array
  string: string[]
}

/** What the constructor also accepts, converted on construction (a copy). */
export interface TensorInputMap {
  float32: Float32Array | readonly number[]
  float64: Float64Array | readonly number[]
  float16: Uint16Array | readonly number[]
  int8: Int8Array | readonly number[]
  uint8: Uint8Array | Uint8ClampedArray | readonly number[]
  int16: Int16Array | readonly number[]
  uint16: Uint16Array | readonly number[]
  int32: Int32Array | readonly number[]
  uint32: Uint32Array | readonly number[]
  int64: BigInt64Array | readonly (bigint | number)[]
  uint64: BigUint64Array | readonly (bigint | number)[]
  bool: Uint8Array | readonly boolean[]
  string: readonly string[]
}

/** Any object shaped like a tensor, onnxruntime-common's `Tensor` included. */
export interface TensorLike {
  readonly type: string
  readonly data: unknown
  readonly dims: readonly number[]
}

type NumericArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array

const TYPE_CODES: Record<TensorType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
}
const TYPE_BY_CODE: TensorType[] = []
for (const [name, code] of Object.entries(TYPE_CODES)) TYPE_BY_CODE[code] = name as TensorType

const ARRAY_CTORS: Record<Exclude<TensorType, 'string'>, { new (n: number | ArrayLike<any>): NumericArray }> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
}

function isTensorType(t: unknown): t is TensorType {
  return typeof t === 'string' && Object.prototype.hasOwnProperty.call(TYPE_CODES, t)
}

/** Infers the tensor type of a typed array (Uint8Array is uint8, not bool). */
function typeOfArray(data: unknown): TensorType | undefined {
  if (data instanceof Float32Array) return 'float32'
  if (data instanceof Float64Array) return 'float64'
  if (data instanceof Int8Array) return 'int8'
  if (data instanceof Uint8Array || data instanceof Uint8ClampedArray) return 'uint8'
  if (data instanceof Int16Array) return 'int16'
  if (data instanceof Uint16Array) return 'uint16'
  if (data instanceof Int32Array) return 'int32'
  if (data instanceof Uint32Array) return 'uint32'
  if (data instanceof BigInt64Array) return 'int64'
  if (data instanceof BigUint64Array) return 'uint64'
  if (Array.isArray(data) && data.length > 0 && data.every((x) => typeof x === 'string')) return 'string'
  if (Array.isArray(data) && data.length > 0 && data.every((x) => typeof x === 'boolean')) return 'bool'
  return undefined
}

function checkDims(dims: unknown, what: string): number[] {
  if (!Array.isArray(dims)) throw invalidArg(`${what}: dims must be an array of non-negative integers`)
  for (const d of dims) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw invalidArg(`${what}: dims must be non-negative integers, got [${dims.map(String).join(', ')}]`)
    }
  }
  return dims.slice()
}

function product(dims: readonly number[]): number {
  let n = 1
  for (const d of dims) n *= d
  return n
}

/** Checks and, where needed, converts `data` for `type`. Returns the stored container. */
function normaliseData(type: TensorType, data: unknown, what: string): TensorDataMap[TensorType] {
  if (type === 'string') {
    if (!Array.isArray(data)) throw invalidArg(`${what}: a string tensor needs a string[] as data`)
    for (let i = 0; i < data.length; i++) {
      if (typeof data[i] !== 'string') {
        throw invalidArg(`${what}: a string tensor needs strings, but element ${i} is ${typeof data[i]}`)
      }
    }
    return data as string[]
  }
  const Ctor = ARRAY_CTORS[type]
  if (ArrayBuffer.isView(data)) {
    const accepted =
      data instanceof Ctor ||
      (type === 'uint8' && data instanceof Uint8ClampedArray) ||
      (type === 'float16' && (data as { constructor: { name: string } }).constructor.name === 'Float16Array')
    if (!accepted) {
      const got = (data as { constructor: { name: string } }).constructor.name
      throw invalidArg(`${what}: a ${type} tensor needs a ${Ctor.name} as data, got ${got}`)
    }
    if (type === 'uint8' && data instanceof Uint8ClampedArray) {
      return new Uint8Array(data.buffer, data.byteOffset, data.length)
    }
    if (type === 'float16' && !(data instanceof Uint16Array)) {
      const v = data as unknown as { buffer: ArrayBuffer; byteOffset: number; length: number }
      return new Uint16Array(v.buffer, v.byteOffset, v.length)
    }
    return data as TensorDataMap[TensorType]
  }
  if (!Array.isArray(data)) {
    throw invalidArg(`${what}: a ${type} tensor needs a ${Ctor.name} or an array as data, got ${data === null ? 'null' : typeof data}`)
  }
  if (type === 'bool') {
    const out = new Uint8Array(data.length)
    for (let i = 0; i < data.length; i++) {
      const x = data[i]
      if (typeof x !== 'boolean' && x !== 0 && x !== 1) {
        throw invalidArg(`${what}: a bool tensor needs booleans, but element ${i} is ${JSON.stringify(x) ?? typeof x}`)
      }
      out[i] = x ? 1 : 0
    }
    return out
  }
  const big = type === 'int64' || type === 'uint64'
  for (let i = 0; i < data.length; i++) {
    const x = data[i]
    const ok = big ? typeof x === 'bigint' || (typeof x === 'number' && Number.isInteger(x)) : typeof x === 'number'
    if (!ok) {
      throw invalidArg(`${what}: a ${type} tensor needs ${big ? 'bigints or integers' : 'numbers'}, but element ${i} is ${typeof x === 'string' ? `the string ${JSON.stringify(x)}` : typeof x}`)
    }
  }
  try {
    return (big ? new Ctor(data.map((x) => BigInt(x))) : new Ctor(data)) as TensorDataMap[TensorType]
  } catch (e) {
    throw invalidArg(`${what}: ${(e as Error).message}`)
  }
}

/**
 * An n-dimensional array with an element type. Inputs are passed to the engine
 * without a copy: do not mutate `data` until the run that reads it settles.
 */
export class Tensor<T extends TensorType = TensorType> {
  readonly type: T
  readonly data: TensorDataMap[T]
  readonly dims: readonly number[]
  readonly size: number

  /** A tensor of an explicit type; `dims` defaults to `[data.length]`. */
  constructor(type: T, data: TensorInputMap[T], dims?: readonly number[])
  /** A tensor whose type is inferred from a typed array (or string[] / boolean[]). */
  constructor(data: TensorDataMap[T] | readonly boolean[], dims?: readonly number[])
  constructor(a: unknown, b?: unknown, c?: unknown) {
    let type: TensorType
    let data: unknown
    let dims: unknown
    if (typeof a === 'string') {
      if (!isTensorType(a)) throw invalidArg(`unknown tensor type '${a}'; expected one of ${Object.keys(TYPE_CODES).join(', ')}`)
      type = a
      data = b
      dims = c
    } else {
      const inferred = typeOfArray(a)
      if (!inferred) {
        throw invalidArg('cannot infer the tensor type: pass a typed array, a string[] or a boolean[], or give the type first')
      }
      type = inferred
      data = a
      dims = b
    }
    const stored = normaliseData(type, data, 'Tensor')
    const length = (stored as { length: number }).length
    const d = dims === undefined ? [length] : checkDims(dims, 'Tensor')
    const size = product(d)
    if (size !== length) {
      throw invalidArg(`Tensor: dims [${d.join(', ')}] hold ${size} elements, but the ${type} data has ${length}`)
    }
    this.type = type as T
    this.data = stored as TensorDataMap[T]
    this.dims = Object.freeze(d)
    this.size = size
  }
}


/**
 * Where a payload's block lies (see crates/oxinfer-node/src/payload.rs): its
 * own `[0, ArrayBuffer, strings]`, or an offset into the buffer that small
 * results of one delivery share. Set by `locate`, read right after it, so no
 * object is made per result.
 */
let pBuf: ArrayBuffer
let pH: Float64Array
let pBase = 0
let pStrings: string[][] | null = null
/** The shared buffer of the delivery being settled, and an f64 view of it. */
let sharedBuf: ArrayBuffer | null = null
let sharedH: Float64Array | null = null

function locate(payload: unknown): void {
  if (typeof payload === 'number') {
    pBuf = sharedBuf!
    pH = sharedH!
    pBase = payload / 8
    pStrings = null
  } else {
    const a = payload as unknown[]
    pBuf = a[1] as ArrayBuffer
    pH = new Float64Array(pBuf, 0, pBuf.byteLength >> 3)
    pBase = 0
    pStrings = a[2] as string[][] | null
  }
}

/** The engine micros a run was charged (the header's first value). */
function payloadMicros(payload: unknown): number {
  locate(payload)
  return pH[pBase]
}

/**
 * Walks a run's packed outputs: views into its block rather than objects made
 * natively. Small outputs may be views into a buffer shared with other results
 * (like Node's Buffer pool); their `byteOffset` says where.
 */
function unpack(payload: unknown, each: (nameId: number, type: TensorType, data: unknown, dims: number[]) => void): void {
  locate(payload)
  const h = pH
  const buf = pBuf
  const strings = pStrings
  const base = pBase
  const count = h[base + 1]
  // The entries, then the request's timing (6 values; see readTiming); data follows.
  let end = base + 2
  for (let k = 0; k < count; k++) end += 4 + h[end + 3]
  const head = (end + 6) * 8
  let i = base + 2
  for (let k = 0; k < count; k++) {
    const rank = h[i + 3]
    const dims: number[] = new Array(rank)
    let n = 1
    for (let d = 0; d < rank; d++) n *= dims[d] = h[i + 4 + d]
    const type = TYPE_BY_CODE[h[i + 1]]
    if (type === 'string') each(h[i], type, strings![h[i + 2]], dims)
    else {
      const View = ARRAY_CTORS[type] as unknown as new (b: ArrayBuffer, off: number, n: number) => unknown
      each(h[i], type, new View(buf, head + h[i + 2], n), dims)
    }
    i += 4 + rank
  }
}

/** The timing a run's payload carries at the end of its header (see payload.rs). */
function readTiming(payload: unknown, inline: boolean, extraQueueMicros = 0): RunTiming {
  locate(payload)
  const h = pH
  let i = pBase + 2
  for (let k = 0; k < h[pBase + 1]; k++) i += 4 + h[i + 3]
  return {
    queueMicros: h[i] + extraQueueMicros,
    preprocessMicros: h[i + 1],
    inferenceMicros: h[i + 2],
    postprocessMicros: h[i + 3],
    batchSize: h[i + 4],
    batchRequests: h[i + 5],
    inline,
  }
}

/** Builds a tensor from trusted native output, skipping validation. */
function outputTensor(type: TensorType, data: unknown, dims: number[]): Tensor {
  const t = Object.create(Tensor.prototype) as { -readonly [K in keyof Tensor]: Tensor[K] }
  t.type = type
  t.data = data as TensorDataMap[TensorType]
  t.dims = Object.freeze(dims)
  t.size = product(dims)
  return t as Tensor
}

// ---------------------------------------------------------------------------
// The native binding (see binding.d.ts for the generated types)

interface NativeValueInfo {
  name: string
  type: string
  dims: Array<number | string>
}
interface NativeSession {
  readonly inputs: NativeValueInfo[]
  readonly outputs: NativeValueInfo[]
  readonly metadata: {
    producer: string
    version: number
    description: string
    domain: string
    graphName: string
    custom: Record<string, string>
  }
  readonly pending: number
  submitMany(list: unknown[]): (number | string)[] | null
  runSync(feeds: unknown[], outputs?: string[] | null): unknown[] | string
  submitPipeline(id: number, pipeline: NativePipeline, batch: unknown[], failFast: boolean, timings: boolean, timeoutMs?: number, priority?: number): void
  runPipelineSync(pipeline: NativePipeline, batch: unknown[], failFast: boolean, timings: boolean): unknown[] | string
  abort(id: number): number
  dispose(id: number): boolean
  openStream(stateOutputs: string[], stateInputs: string[], initial: unknown[] | null, outputs: string[] | null): NativeStream
  readonly openStreams: number
  startJob(id: number, pipeline: NativePipeline, options: NativeJobOptions): NativeJob
}
interface NativeStream {
  call(id: number, feeds: unknown[], priority?: number): void
  abort(id: number): boolean
  close(): boolean
  readonly pending: number
}
interface NativeJobOptions {
  input: string
  inputFormat: string
  output?: string
  outputFormat?: string
  chunkSize: number
  concurrency: number
  failFast: boolean
  progressIntervalMs: number
}
interface NativeJob {
  abort(): void
  release(n: number): void
}
interface NativePipeline {
  readonly unfitted: string | null
}
interface NativeBinding {
  fitPlatt(scores: Float64Array, labels: Uint8Array): number[]
  processImages(images: unknown[], options: Record<string, unknown>, field: string, out?: Float32Array | Uint8Array): Promise<unknown[]>
  loadTokenizer(source: string | Uint8Array): Promise<NativeTokenizer>
  compilePipeline(session: NativeSession, spec: string, base?: string): Promise<NativePipeline>
  fitPipeline(spec: string, batch: unknown[]): Promise<string>
  NativeHub: new (handler: (events: unknown[], shared: ArrayBuffer | null) => void) => { ref(): void; unref(): void }
  createSession(
    hub: unknown,
    model: string | Uint8Array,
    options: {
      intraOpThreads: number
      interOpThreads: number
      graphOptimization: string
      device: string
      poolSize: number
      intraOpSpinning: boolean
      workerPriority: string
      maxBatchSize: number
      maxQueue: number
      priorityLevels: number
      maxDelayMicros: number
      batchInputAxes?: Record<string, number>
      batchOutputAxes?: Record<string, number>
      batchShared?: string[]
      preferredBatchSizes?: number[]
      batchPadAxes?: Record<string, number>
      batchPadValues?: Record<string, number>
      batchOutputPadAxes?: Record<string, number>
      maxPaddingWaste: number
    },
    library: string,
  ): Promise<NativeSession>
  ortVersions(library: string): { oxinfer: string; onnxruntime: string; napi: string }
  ortLoadedPath(): string | null
  ortAlreadyMapped(): string | null
  ortSetLogLevel(level: string): void
  activeJobs(): number
}

// ---------------------------------------------------------------------------
// Completion delivery: one native wake-up settles a whole batch of runs.

/** Receives a run's payload (or encoded error) once. */
type Settle = ((payload: unknown) => void) | { settle(payload: unknown): void }
const pending = new Map<number, Settle>()

function settleWith(s: Settle, payload: unknown): void {
  if (typeof s === 'function') s(payload)
  else s.settle(payload)
}
let nextId = 1
let inFlight = 0

function onCompletions(events: unknown[], shared: ArrayBuffer | null): void {
  sharedBuf = shared
  sharedH = shared === null ? null : new Float64Array(shared)
  for (let i = 0; i < events.length; i += 2) {
    const id = events[i] as number
    const settle = pending.get(id)
    if (settle === undefined) continue
    pending.delete(id)
    try {
      settleWith(settle, events[i + 1])
    } catch {
      // A settle callback never throws by construction; guard the loop anyway.
    }
  }
  // Only views made while settling keep the shared buffer alive.
  sharedBuf = null
  sharedH = null
}

const hub = new native.NativeHub(onCompletions)

/** Keeps the process alive exactly while native work is in flight. */
function track(delta: 1 | -1): void {
  const before = inFlight
  inFlight += delta
  if (before === 0 && inFlight > 0) hub.ref()
  else if (before > 0 && inFlight === 0) hub.unref()
}

// ---------------------------------------------------------------------------
// The ONNX Runtime library

/** Options of {@link configure}. */
export interface ConfigureOptions {
  /** Absolute path of the ONNX Runtime shared library to load. Default: found automatically (see README). */
  ortLibrary?: string
  /** ONNX Runtime's log level. Default: 'error'. */
  logLevel?: 'verbose' | 'info' | 'warning' | 'error' | 'fatal'
}

let configuredLibrary: string | undefined
let resolveFailure: OxinferError | undefined

const LIB_NAMES: Record<string, string> = {
  linux: 'libonnxruntime.so.1',
  darwin: 'libonnxruntime.1.30.0.dylib',
  win32: 'onnxruntime.dll',
}
const PLATFORM_PACKAGES: Record<string, string> = {
  'linux-x64': 'oxinfer-linux-x64-gnu',
  'linux-arm64': 'oxinfer-linux-arm64-gnu',
  'darwin-arm64': 'oxinfer-darwin-arm64',
  'win32-x64': 'oxinfer-win32-x64-msvc',
}

function packageDir(name: string): string | undefined {
  try {
    return dirname(require.resolve(`${name}/package.json`))
  } catch {
    return undefined
  }
}

/** Picks the library to load, in the documented order. */
function resolveLibrary(): string {
  if (resolveFailure) throw resolveFailure
  const loaded = native.ortLoadedPath()
  if (loaded) return loaded
  const explicit: Array<[string, string | undefined]> = [
    ['configure({ ortLibrary })', configuredLibrary],
    ['OXINFER_ORT_DYLIB', process.env.OXINFER_ORT_DYLIB || undefined],
    ['ORT_DYLIB_PATH', process.env.ORT_DYLIB_PATH || undefined],
  ]
  for (const [, path] of explicit) {
    if (path) return resolvePath(path)
  }
  const mapped = native.ortAlreadyMapped()
  if (mapped) return mapped
  const file = LIB_NAMES[process.platform] ?? 'libonnxruntime.so.1'
  const tried: string[] = []
  const platformPkg = PLATFORM_PACKAGES[`${process.platform}-${process.arch}`]
  const candidates: string[] = []
  if (platformPkg) {
    const dir = packageDir(platformPkg)
    if (dir) candidates.push(join(dir, file))
    else tried.push(`${platformPkg} (not installed)`)
  }
  const ortNode = packageDir('onnxruntime-node')
  if (ortNode) candidates.push(join(ortNode, 'bin', 'napi-v6', process.platform, process.arch, file))
  else tried.push('onnxruntime-node (not installed)')
  for (const c of candidates) {
    if (existsSync(c)) return c
    tried.push(c)
  }
  resolveFailure = new OxinferError(
    'ERR_UNSUPPORTED',
    `cannot find the ONNX Runtime library; tried: ${tried.join('; ')}. Set OXINFER_ORT_DYLIB or call configure({ ortLibrary }).`,
  )
  throw resolveFailure
}

/**
 * Configures the process-wide ONNX Runtime library. Optional; call it before the
 * first session. Calling it later with a different library throws ERR_INVALID_ARGUMENT.
 */
export function configure(options: ConfigureOptions = {}): void {
  if (!isPlainObject(options)) throw invalidArg('configure: options must be an object')
  checkKeys('configure', options, ['ortLibrary', 'logLevel'])
  const { ortLibrary, logLevel } = options
  if (ortLibrary !== undefined) {
    if (typeof ortLibrary !== 'string' || ortLibrary === '') throw invalidArg('configure: ortLibrary must be a non-empty path string')
    const abs = resolvePath(ortLibrary)
    const loaded = native.ortLoadedPath()
    if (loaded && loaded !== abs) {
      throw invalidArg(`configure: ONNX Runtime is already loaded from '${loaded}'; it cannot be switched to '${abs}' in this process`)
    }
    configuredLibrary = abs
  }
  if (logLevel !== undefined) {
    if (!['verbose', 'info', 'warning', 'error', 'fatal'].includes(logLevel as string)) {
      throw invalidArg(`configure: logLevel must be 'verbose', 'info', 'warning', 'error' or 'fatal', got ${JSON.stringify(logLevel)}`)
    }
    try {
      native.ortSetLogLevel(logLevel as string)
    } catch (e) {
      throw fromNative(e)
    }
  }
}

/** Batch jobs over files whose native driver is still running (0 once every job has settled). */
export function activeJobs(): number {
  return native.activeJobs()
}

/**
 * Versions of oxinfer, the loaded ONNX Runtime, and the Node-API version the
 * runtime offers the addon. Loads the library if needed (synchronously).
 */
export function versions(): { oxinfer: string; onnxruntime: string; napi: string } {
  const lib = resolveLibrary()
  try {
    const v = native.ortVersions(lib)
    return { oxinfer: v.oxinfer, onnxruntime: v.onnxruntime, napi: String(process.versions.napi) }
  } catch (e) {
    throw fromNative(e)
  }
}

// ---------------------------------------------------------------------------
// Sessions

/** Options of {@link Session.create}. Unknown keys are refused. */
export interface SessionOptions {
  /** Threads inside one operator. Default: available cores / poolSize (at least 1). */
  intraOpThreads?: number
  /** Threads across independent operators. Default: 1 (sequential execution). */
  interOpThreads?: number
  /** Graph optimisation level. Default: 'all'. */
  graphOptimization?: 'none' | 'basic' | 'extended' | 'all'
  /** Execution device. Default: 'cpu'. An unavailable device rejects with ERR_UNSUPPORTED. */
  device?: 'cpu' | 'cuda' | `cuda:${number}`
  /** How many runs of this session may execute at once (engine sessions sharing pre-packed weights). Default: 1. */
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
   * OS priority of the inference threads (the workers and ONNX Runtime's own).
   * 'low' (default) runs them below the JS thread (nice +10 on Linux), so a busy
   * model yields the CPU to the event loop and to V8's GC; 'normal' keeps the
   * default priority, for processes that do nothing but inference.
   */
  workerPriority?: 'low' | 'normal'
  /**
   * Dynamic batching (off by default). Queued runs with compatible shapes are
   * merged along axis 0, run once, and split back to their callers; a batch is
   * cut as soon as a worker is free (`maxDelayMicros: 0`), so batches grow with
   * load. Every input needs a dynamic batch dim; otherwise ERR_INVALID_ARGUMENT.
   */
  batching?: BatchingOptions
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

/**
 * Where one request's time went, in microseconds, and the batch it ran in
 * (see {@link RunOptions.onTiming}).
 */
export interface RunTiming {
  /** From the call until its batch started on a worker, including any hold for more requests. 0 when run inline. */
  queueMicros: number
  /** Merging the batch's inputs, or a pipeline's pre-processing and feature assembly. */
  preprocessMicros: number
  /** The engine's run of the whole batch. */
  inferenceMicros: number
  /** Splitting the batch's outputs, or a pipeline's post-processing. */
  postprocessMicros: number
  /** Rows (along the batch axis) of the batch the request ran in. */
  batchSize: number
  /** Requests merged into that batch. */
  batchRequests: number
  /** Whether it ran inline on the JS thread (see `inlineThresholdMicros`). */
  inline: boolean
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
] as const

function intOption(options: Record<string, unknown>, key: string, fallback: number, min: number, max: number): number {
  const v = options[key]
  if (v === undefined) return fallback
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalidArg(`${key} must be an integer from ${min} to ${max}, got ${JSON.stringify(v) ?? typeof v}`)
  }
  return v
}

/** Inline work done on the JS thread in the current event-loop turn, in ms. */
let turnSpentMs = 0
let turnResetPending = false
const TURN_BUDGET_MS = 1
function chargeTurn(ms: number): void {
  turnSpentMs += ms
  if (!turnResetPending) {
    turnResetPending = true
    setImmediate(() => {
      turnSpentMs = 0
      turnResetPending = false
    })
  }
}

/** A running estimate of one kind of work's engine time. */
interface Estimate {
  micros: number
}
const kExecute = Symbol('oxinfer.execute')
const kNative = Symbol('oxinfer.native')
const kLevels = Symbol('oxinfer.priorityLevels')
/** Runs per native submission at most (see Session#flush). */
const FLUSH_MAX = 512
const kSettled = Symbol('oxinfer.settled')

/** A plain queued `Session.run` waiting for its payload. */
class QueuedRun {
  constructor(
    readonly session: Session,
    readonly resolve: (r: Record<string, Tensor>) => void,
    readonly reject: (e: unknown) => void,
    readonly names: readonly string[],
    /** Referenced until settled, so the input buffers outlive the native run. */
    readonly keepAlive: unknown,
  ) {}

  settle(payload: unknown): void {
    try {
      this.resolve(this.session[kSettled](payload, this.names))
    } catch (e) {
      this.reject(fromNative(e))
    }
  }
}
const kTimeout = Symbol('oxinfer.timeoutMs')

/** Checks the per-request options that runs and pipeline runs share. */
function checkRequestOptions(what: string, options: Record<string, unknown>, levels: number): void {
  if (options.priority !== undefined && (typeof options.priority !== 'number' || !Number.isInteger(options.priority) || options.priority < 1 || options.priority > levels)) {
    throw invalidArg(`${what}: options.priority must be an integer from 1 to ${levels} (batching.priorityLevels)`)
  }
  if (options.timeoutMs !== undefined && (typeof options.timeoutMs !== 'number' || !(options.timeoutMs >= 0) || !Number.isFinite(options.timeoutMs))) {
    throw invalidArg(`${what}: options.timeoutMs must be a non-negative number of milliseconds`)
  }
  if (options.onTiming !== undefined && typeof options.onTiming !== 'function') throw invalidArg(`${what}: options.onTiming must be a function`)
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw invalidArg(`${what}: options.signal must be an AbortSignal`)
}
const kDisposed = Symbol('oxinfer.disposed')
const kHold = Symbol('oxinfer.hold')

const disposeSymbol: typeof Symbol.asyncDispose =
  (Symbol as { asyncDispose?: typeof Symbol.asyncDispose }).asyncDispose ?? (Symbol.for('nodejs.asyncDispose') as typeof Symbol.asyncDispose)

/** A loaded model. Any number of concurrent `run` calls is safe. */
export class Session {
  readonly inputs: readonly ValueInfo[]
  readonly outputs: readonly ValueInfo[]
  readonly metadata: ModelMetadata
  #native: NativeSession
  #inputNames: ReadonlySet<string>
  #outputNames: readonly string[]
  #threshold: number
  #estimate: Estimate = { micros: Number.POSITIVE_INFINITY }
  #timeoutMs = 0
  #priorityLevels = 1
  #poolSize = 1
  #streams = new Set<SessionStream>()
  /** Runs waiting for this turn's native submission, 5 values each (see #enqueue). */
  #outbox: unknown[] = []
  #active = 0
  #disposed = false
  #disposing: Promise<void> | undefined

  private constructor(n: NativeSession, threshold: number) {
    this.#native = n
    this.#threshold = threshold
    const info = (v: NativeValueInfo): ValueInfo => Object.freeze({ name: v.name, type: v.type, dims: Object.freeze(v.dims.slice()) })
    this.inputs = Object.freeze(n.inputs.map(info))
    this.outputs = Object.freeze(n.outputs.map(info))
    const m = n.metadata
    this.metadata = Object.freeze({ ...m, custom: Object.freeze({ ...m.custom }) })
    this.#inputNames = new Set(this.inputs.map((i) => i.name))
    this.#outputNames = this.outputs.map((o) => o.name)
  }

  /** Loads a model from a path or from its bytes, off the JS thread. */
  static async create(model: string | Uint8Array, options: SessionOptions = {}): Promise<Session> {
    if (typeof model !== 'string' && !(model instanceof Uint8Array)) {
      throw invalidArg('Session.create: model must be a file path or a Uint8Array of model bytes')
    }
    if (!isPlainObject(options)) throw invalidArg('Session.create: options must be an object')
    checkKeys('session', options, SESSION_OPTION_KEYS)
    const o = options as Record<string, unknown>
    const poolSize = intOption(o, 'poolSize', 1, 1, 256)
    const cores = availableParallelism()
    const intraOpThreads = intOption(o, 'intraOpThreads', Math.max(1, Math.floor(cores / poolSize)), 0, 1024)
    const interOpThreads = intOption(o, 'interOpThreads', 1, 0, 1024)
    const graphOptimization = o.graphOptimization ?? 'all'
    if (!['none', 'basic', 'extended', 'all'].includes(graphOptimization as string)) {
      throw invalidArg(`graphOptimization must be 'none', 'basic', 'extended' or 'all', got ${JSON.stringify(graphOptimization)}`)
    }
    const device = o.device ?? 'cpu'
    if (typeof device !== 'string' || !/^(cpu|cuda|cuda:\d+)$/.test(device)) {
      throw invalidArg(`device must be 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(device)}`)
    }
    const spinning = o.intraOpSpinning ?? false
    if (typeof spinning !== 'boolean') throw invalidArg('intraOpSpinning must be a boolean')
    const workerPriority = o.workerPriority ?? 'low'
    if (workerPriority !== 'low' && workerPriority !== 'normal') throw invalidArg(`workerPriority must be 'low' or 'normal', got ${JSON.stringify(workerPriority)}`)
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
    if (typeof model === 'string' && model === '') throw new OxinferError('ERR_MODEL_LOAD', 'Session.create: the model path is empty')
    const lib = resolveLibrary()
    const source = typeof model === 'string' ? (isAbsolute(model) ? model : resolvePath(model)) : model
    let n: NativeSession
    try {
      n = await native.createSession(
        hub,
        source,
        { intraOpThreads, interOpThreads, graphOptimization: graphOptimization as string, device, poolSize, intraOpSpinning: spinning, workerPriority, maxBatchSize, maxQueue, priorityLevels, maxDelayMicros, batchInputAxes, batchOutputAxes, batchShared, preferredBatchSizes, batchPadAxes, batchPadValues, batchOutputPadAxes, maxPaddingWaste },
        lib,
      )
    } catch (e) {
      throw fromNative(e)
    }
    const session = new Session(n, inline)
    session.#timeoutMs = timeoutMs
    session.#priorityLevels = priorityLevels
    session.#poolSize = poolSize
    return session
  }

  /** Runs the model. Rejects (never throws) with an OxinferError. */
  run(feeds: Record<string, TensorLike>, options: RunOptions = {}): Promise<Record<string, Tensor>> {
    let flat: unknown[]
    let outputs: string[] | undefined
    let signal: AbortSignal | undefined
    try {
      if (!isPlainObject(options)) throw invalidArg('run: options must be an object')
      checkKeys('run', options, ['outputs', 'signal', 'timeoutMs', 'priority', 'onTiming'])
      checkRequestOptions('run', options as Record<string, unknown>, this.#priorityLevels)
      if (options.outputs !== undefined) {
        if (!Array.isArray(options.outputs) || options.outputs.some((x) => typeof x !== 'string')) {
          throw invalidArg('run: options.outputs must be an array of output names')
        }
        outputs = [...new Set(options.outputs)]
      }
      signal = options.signal as AbortSignal | undefined
      flat = this.#flatten(feeds)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    const names = outputs ?? this.#outputNames
    const n = this.#native
    const est = this.#estimate
    // The common inline case without closures (see kExecute for the rule).
    if (!this.#disposed && signal === undefined && options.onTiming === undefined && this.#active === 0 && est.micros < this.#threshold && turnSpentMs + est.micros / 1000 <= TURN_BUDGET_MS) {
      const t0 = performance.now()
      try {
        const payload = n.runSync(flat, outputs ?? null)
        if (typeof payload === 'string') return Promise.reject(fromNative(payload))
        const micros = payloadMicros(payload)
        est.micros = 0.8 * est.micros + 0.2 * micros
        return Promise.resolve(this.#decode(payload, names))
      } catch (e) {
        return Promise.reject(fromNative(e))
      } finally {
        chargeTurn(performance.now() - t0)
      }
    }
    const timeoutMs = (options.timeoutMs as number | undefined) ?? this.#timeoutMs
    if (signal === undefined && options.onTiming === undefined && !this.#disposed) {
      // The common queued case: one settler object instead of closures.
      const id = nextId++
      const p = new Promise<Record<string, Tensor>>((resolve, reject) => pending.set(id, new QueuedRun(this, resolve, reject, names, flat)))
      this.#active++
      track(1)
      this.#enqueue(id, flat, outputs ?? null, timeoutMs, options.priority as number | undefined)
      return p
    }
    return this[kExecute](
      this.#estimate,
      (id) => this.#enqueue(id, flat, outputs ?? null, timeoutMs, options.priority as number | undefined),
      () => n.runSync(flat, outputs ?? null),
      (payload) => this.#decode(payload, names),
      signal,
      flat,
      options.onTiming as ((t: RunTiming) => void) | undefined,
    )
  }

  /** @internal A queued run settled (see QueuedRun). */
  [kSettled](payload: unknown, names: readonly string[]): Record<string, Tensor> {
    this.#active--
    track(-1)
    if (typeof payload === 'string') throw fromNative(payload)
    const est = this.#estimate
    const micros = payloadMicros(payload)
    est.micros = est.micros === Number.POSITIVE_INFINITY ? micros : 0.8 * est.micros + 0.2 * micros
    return this.#decode(payload, names)
  }

  /**
   * Queues a run for this turn's one native submission: every run made in a
   * turn crosses into native code in a single call (and takes the queue's
   * lock once), at the end of the turn's synchronous work.
   */
  #enqueue(id: number, flat: unknown[], outputs: string[] | null, timeoutMs: number, priority: number | undefined): void {
    const q = this.#outbox
    q.push(id, flat, outputs, timeoutMs, priority)
    if (q.length === 5 && !this.#flushing) {
      this.#flushing = true
      queueMicrotask(this.#flushNow)
    }
  }

  #flushing = false
  #flushNow = (): void => {
    this.#flushing = false
    this.#flush()
  }

  #flush = (): void => {
    let q = this.#outbox
    if (q.length === 0) return
    this.#outbox = []
    if (q.length > FLUSH_MAX * 5) {
      // Submitting costs about 1 µs a run: past the turn's 1 ms budget, the
      // rest goes in the next turn, so a huge burst never holds the loop.
      this.#outbox = q.slice(FLUSH_MAX * 5)
      q = q.slice(0, FLUSH_MAX * 5)
      setImmediate(this.#flush)
    }
    // Runs aborted meanwhile were settled already: leave them out.
    for (let i = 0; i < q.length; i += 5) {
      if (!pending.has(q[i] as number)) {
        q = q.filter((_, k) => pending.has(q[k - (k % 5)] as number))
        break
      }
    }
    if (q.length === 0) return
    let refused: (number | string)[] | null
    try {
      refused = this.#native.submitMany(q)
    } catch (e) {
      const err = String((e as Error)?.message ?? e)
      refused = []
      for (let i = 0; i < q.length; i += 5) refused.push(q[i] as number, err)
    }
    if (refused === null) return
    for (let i = 0; i < refused.length; i += 2) {
      const settle = pending.get(refused[i] as number)
      if (settle === undefined) continue
      pending.delete(refused[i] as number)
      settleWith(settle, refused[i + 1])
    }
  }

  /**
   * Runs the model over a whole source of feeds chunks (an async or sync
   * iterable of `Record<string, TensorLike>`, batched along axis 0 by the
   * caller): up to `concurrency` chunks run at once, results come out in input
   * order, one `Record<string, Tensor>` per chunk, and a chunk is pulled only
   * when there is room, so memory stays bounded. Progress counts rows (the
   * first feed's dims[0]). Files are refused: a model has no record schema;
   * use `Pipeline.runJob` for CSV or JSONL.
   */
  runJob(source: AsyncIterable<Record<string, TensorLike>> | Iterable<Record<string, TensorLike>>, options: SessionJobOptions = {}): BatchJob<Record<string, Tensor>> {
    const o = jobOptions('session runJob', options, ['outputs'])
    if (typeof source === 'string') throw invalidArg('Session.runJob: file sources need a record schema; use Pipeline.runJob for CSV or JSONL files')
    const outputs = (options as SessionJobOptions).outputs
    if (outputs !== undefined && (!Array.isArray(outputs) || outputs.some((x) => typeof x !== 'string'))) throw invalidArg('runJob: options.outputs must be an array of output names')
    if (this.#disposed) throw new OxinferError('ERR_DISPOSED', 'the session was disposed')
    if (o.signal?.aborted) throw abortedJob(o.signal)
    const it = iteratorOf(source, 'Session.runJob')
    const inner = new AbortController()
    const job = new BatchJob<Record<string, Tensor>>(o.concurrency, () => {}, () => inner.abort())
    const rowsOf = (feeds: Record<string, TensorLike>): number => {
      const first = isPlainObject(feeds) ? Object.values(feeds)[0] : undefined
      return Number((first?.dims as readonly number[] | undefined)?.[0] ?? 0)
    }
    const run = (feeds: Record<string, TensorLike>, _firstRow: number, signal: AbortSignal): Promise<Record<string, Tensor>> =>
      this.run(feeds, outputs === undefined ? { signal } : { signal, outputs })
    const chunks: AsyncIterator<Record<string, TensorLike>> = {
      next: async () => (await it.next()) as IteratorResult<Record<string, TensorLike>>,
      return: async () => {
        await it.return?.()
        return { value: undefined, done: true }
      },
    }
    driveChunks(job, chunks, run, rowsOf, () => 0, o, inner)
    return job
  }

  #flatten(feeds: Record<string, TensorLike>): unknown[] {
    if (!isPlainObject(feeds)) throw invalidArg('run: feeds must be an object mapping input names to tensors')
    const flat: unknown[] = []
    for (const name in feeds) {
      if (!Object.hasOwn(feeds, name)) continue
      const t = feeds[name]
      if (t instanceof Tensor) {
        flat.push(name, TYPE_CODES[(t as Tensor).type], t.data, t.dims)
        continue
      }
      if (typeof t !== 'object' || t === null || !('type' in t) || !('data' in t) || !('dims' in t)) {
        throw invalidArg(`run: feed '${name}' must be a Tensor or an object with type, data and dims`)
      }
      const type = (t as TensorLike).type
      if (!isTensorType(type)) {
        throw invalidArg(`run: feed '${name}' has unknown tensor type ${JSON.stringify(type)}`)
      }
      let tensor: Tensor
      try {
        tensor = new Tensor(type, (t as TensorLike).data as TensorInputMap[typeof type], (t as TensorLike).dims)
      } catch (e) {
        const err = e as OxinferError
        throw new OxinferError(err.code, err.message.replace(/^Tensor:/, `run: feed '${name}':`), { input: name })
      }
      flat.push(name, TYPE_CODES[tensor.type], tensor.data, tensor.dims)
    }
    return flat
  }

  #decode(payload: unknown, names: readonly string[]): Record<string, Tensor> {
    const out: Record<string, Tensor> = {}
    let k = 0
    unpack(payload, (_id, type, data, dims) => {
      out[names[k++]] = outputTensor(type, data, dims)
    })
    return out
  }

  /**
   * Runs one unit of work (a model run or a pipeline run) under the inline
   * rule: inline when measured-fast, the session idle and the turn's budget
   * allows; otherwise on the native workers, with abort support.
   * @internal
   */
  [kExecute]<R>(
    estimate: Estimate,
    submit: (id: number) => void,
    sync: () => unknown,
    decode: (payload: unknown) => R,
    signal: AbortSignal | undefined,
    keepAlive: unknown,
    onTiming?: (t: RunTiming) => void,
  ): Promise<R> {
    if (this.#disposed) return Promise.reject(new OxinferError('ERR_DISPOSED', 'the session was disposed'))
    if (signal?.aborted) {
      return Promise.reject(new OxinferError('ERR_ABORTED', 'the run was aborted before it started', { cause: signal.reason }))
    }
    const settle = (payload: unknown, inline: boolean): R => {
      if (typeof payload === 'string') throw fromNative(payload)
      const micros = payloadMicros(payload)
      estimate.micros = estimate.micros === Number.POSITIVE_INFINITY ? micros : 0.8 * estimate.micros + 0.2 * micros
      const result = decode(payload)
      if (onTiming !== undefined) {
        try {
          onTiming(readTiming(payload, inline))
        } catch {
          // A throwing observer must not turn a good result into a failure.
        }
      }
      return result
    }
    if (this.#active === 0 && estimate.micros < this.#threshold && turnSpentMs + estimate.micros / 1000 <= TURN_BUDGET_MS) {
      const t0 = performance.now()
      try {
        return Promise.resolve(settle(sync(), true))
      } catch (e) {
        return Promise.reject(fromNative(e))
      } finally {
        chargeTurn(performance.now() - t0)
      }
    }
    const id = nextId++
    return new Promise<R>((resolve, reject) => {
      let abortRequested = false
      const finish = (): void => {
        this.#active--
        track(-1)
        signal?.removeEventListener('abort', onAbort)
      }
      const onAbort = (): void => {
        abortRequested = true
        const state = this.#native.abort(id)
        if (state !== 2 && pending.delete(id)) {
          // Not executing (or already finished natively): settle now.
          finish()
          reject(new OxinferError('ERR_ABORTED', 'the run was aborted', { cause: signal?.reason }))
        }
      }
      pending.set(id, (payload) => {
        finish()
        // Referenced until here, so the input buffers outlive the native run.
        void keepAlive
        if (abortRequested) {
          reject(new OxinferError('ERR_ABORTED', 'the run was aborted while executing', { cause: signal?.reason }))
          return
        }
        try {
          resolve(settle(payload, false))
        } catch (e) {
          reject(e)
        }
      })
      try {
        submit(id)
      } catch (e) {
        pending.delete(id)
        reject(fromNative(e))
        return
      }
      this.#active++
      track(1)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** @internal The native session, for pipelines built on this session. */
  get [kNative](): NativeSession {
    return this.#native
  }

  /** @internal */
  get [kLevels](): number {
    return this.#priorityLevels
  }

  /** @internal */
  get [kTimeout](): number {
    return this.#timeoutMs
  }

  /** Whether `dispose` has been called. */
  get disposed(): boolean {
    return this.#disposed
  }

  /**
   * Opens a stateful stream: the model's state outputs are fed back as its
   * state inputs from one call to the next, kept in native memory, and many
   * streams' calls are batched together when the session has `batching`
   * (declare each state input's and output's batch axis there). A stream's
   * calls run in the order they are made. Close it with `close()`, or let it
   * expire after `idleTimeoutMs` without calls; either frees its state.
   */
  stream(options: StreamOptions): SessionStream {
    if (this.#disposed) throw new OxinferError('ERR_DISPOSED', 'the session was disposed')
    if (!isPlainObject(options)) throw invalidArg('stream: options must be an object')
    checkKeys('stream', options, ['state', 'initialState', 'outputs', 'idleTimeoutMs', 'priority'])
    const state = options.state
    if (!isPlainObject(state) || Object.keys(state).length === 0 || Object.values(state).some((v) => typeof v !== 'string')) {
      throw invalidArg("stream: options.state must map state outputs to the inputs they feed, e.g. { stateN: 'state' }")
    }
    if (options.outputs !== undefined && (!Array.isArray(options.outputs) || options.outputs.some((x) => typeof x !== 'string'))) {
      throw invalidArg('stream: options.outputs must be an array of output names')
    }
    const idle = intOption(options as Record<string, unknown>, 'idleTimeoutMs', 60_000, 0, 2 ** 31 - 1)
    checkRequestOptions('stream', options as Record<string, unknown>, this.#priorityLevels)
    let initial: unknown[] | null = null
    if (options.initialState !== undefined) {
      if (!isPlainObject(options.initialState)) throw invalidArg('stream: options.initialState must map state inputs to tensors')
      initial = this.#flatten(options.initialState as Record<string, TensorLike>)
    }
    const outputs = options.outputs === undefined ? null : [...new Set(options.outputs)]
    let n: NativeStream
    try {
      n = this.#native.openStream(Object.keys(state), Object.values(state), initial, outputs)
    } catch (e) {
      throw fromNative(e)
    }
    const names = outputs ?? this.#outputNames.filter((o) => !(o in state))
    const stream = new SessionStream(
      n,
      (payload) => this.#decode(payload, names),
      (feeds) => this.#flatten(feeds),
      idle,
      options.priority,
      () => this.#streams.delete(stream),
      // Stream calls hold the session's slots: no run goes inline meanwhile.
      (d) => this[kHold](d),
    )
    this.#streams.add(stream)
    return stream
  }

  /** Streams open on this session (see {@link Session.stream}). */
  get openStreams(): number {
    return this.#disposed ? 0 : this.#native.openStreams
  }

  /** How many runs may execute at once (`poolSize`). */
  get poolSize(): number {
    return this.#poolSize
  }

  /**
   * @internal Counts native work that runs outside `kExecute` (a file job) as
   * active, so no run goes inline while the job's chunks hold the slots.
   */
  [kHold](delta: 1 | -1): void {
    this.#active += delta
  }

  /** @internal Whether dispose() was called. */
  get [kDisposed](): boolean {
    return this.#disposed
  }

  /** Runs queued or executing on this session. */
  get pendingRuns(): number {
    return this.#active
  }

  /**
   * Frees the model. Resolves once the runs already executing have finished;
   * queued runs and every later run reject with ERR_DISPOSED.
   */
  dispose(): Promise<void> {
    if (this.#disposed) return Promise.resolve()
    this.#disposed = true
    for (const s of this.#streams) void s.close()
    const id = nextId++
    this.#disposing = new Promise<void>((resolve) => {
      pending.set(id, () => {
        track(-1)
        resolve()
      })
    })
    track(1)
    let started = false
    try {
      started = this.#native.dispose(id)
    } catch {
      started = false
    }
    if (!started) {
      const settle = pending.get(id)
      pending.delete(id)
      if (settle) settleWith(settle, undefined)
    }
    return this.#disposing
  }

  [disposeSymbol](): Promise<void> {
    return this.dispose()
  }
}

// ---------------------------------------------------------------------------
// Stateful streams

/** Options of {@link Session.stream}. Unknown keys are refused. */
export interface StreamOptions {
  /**
   * State pairs, output name → input name: each call's value of the output is
   * the next call's value of the input. Example (Silero VAD): `{ stateN: 'state' }`.
   */
  state: Record<string, string>
  /**
   * Starting values by state input name. Default: zeros, shaped as the input
   * declares, with each dynamic dim taken as 1 (one stream is one row).
   */
  initialState?: Record<string, TensorLike>
  /** Outputs each call returns. Default: every output that is not a state output. */
  outputs?: readonly string[]
  /** Closes the stream after this many ms without a call; 0 never. Default 60 000. */
  idleTimeoutMs?: number
  /** Priority of the stream's calls, as in {@link RunOptions.priority}. */
  priority?: number
}

/** Options of {@link SessionStream.run}. */
export interface StreamRunOptions {
  /** Aborts the call: a waiting call is removed, a running one terminated; the state stays as it was. */
  signal?: AbortSignal
  /** Called with the call's timing breakdown just before its promise settles successfully. */
  onTiming?: (timing: RunTiming) => void
}

/**
 * A stateful stream on a session (see {@link Session.stream}). Its state
 * lives in native memory; `run` takes the model's other inputs.
 */
export class SessionStream {
  #native: NativeStream
  #decode: (payload: unknown) => Record<string, Tensor>
  #flatten: (feeds: Record<string, TensorLike>) => unknown[]
  #priority: number | undefined
  #timer: ReturnType<typeof setTimeout> | undefined
  #closed = false
  #active = 0
  #drained: (() => void)[] = []
  #onClose: () => void
  #hold: (delta: 1 | -1) => void

  /** @internal Made by {@link Session.stream}. */
  constructor(
    n: NativeStream,
    decode: (payload: unknown) => Record<string, Tensor>,
    flatten: (feeds: Record<string, TensorLike>) => unknown[],
    idleMs: number,
    priority: number | undefined,
    onClose: () => void,
    hold: (delta: 1 | -1) => void,
  ) {
    this.#native = n
    this.#onClose = onClose
    this.#hold = hold
    this.#decode = decode
    this.#flatten = flatten
    this.#priority = priority
    if (idleMs > 0) {
      // Unref'd: an idle stream never keeps the process alive.
      this.#timer = setTimeout(() => {
        if (this.#active > 0) this.#timer?.refresh()
        else void this.close()
      }, idleMs)
      this.#timer.unref?.()
    }
  }

  /** Runs the model on `feeds` (every input but the state), after this stream's earlier calls. */
  run(feeds: Record<string, TensorLike>, options: StreamRunOptions = {}): Promise<Record<string, Tensor>> {
    if (this.#closed) return Promise.reject(new OxinferError('ERR_DISPOSED', 'the stream was closed'))
    const o = options
    let flat: unknown[]
    try {
      if (!isPlainObject(options)) throw invalidArg('stream run: options must be an object')
      checkKeys('stream run', options, ['signal', 'onTiming'])
      checkRequestOptions('stream run', options as Record<string, unknown>, Number.MAX_SAFE_INTEGER)
      flat = this.#flatten(feeds)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    const signal = o.signal
    const onTiming = o.onTiming
    if (signal?.aborted) return Promise.reject(new OxinferError('ERR_ABORTED', 'the run was aborted before it started', { cause: signal.reason }))
    this.#timer?.refresh()
    const id = nextId++
    return new Promise<Record<string, Tensor>>((resolve, reject) => {
      let aborted = false
      const finish = (): void => {
        track(-1)
        this.#hold(-1)
        signal?.removeEventListener('abort', onAbort)
        if (--this.#active === 0) for (const f of this.#drained.splice(0)) f()
      }
      const onAbort = (): void => {
        aborted = true
        if (this.#native.abort(id) && pending.delete(id)) {
          finish()
          reject(new OxinferError('ERR_ABORTED', 'the run was aborted', { cause: signal?.reason }))
        }
      }
      pending.set(id, (payload) => {
        finish()
        void flat
        if (typeof payload === 'string') {
          reject(aborted ? new OxinferError('ERR_ABORTED', 'the run was aborted', { cause: signal?.reason }) : fromNative(payload))
          return
        }
        try {
          const out = this.#decode(payload)
          if (onTiming) {
            try {
              onTiming(readTiming(payload, false))
            } catch {
              // A throwing observer must not turn a good result into a failure.
            }
          }
          resolve(out)
        } catch (e) {
          reject(fromNative(e))
        }
      })
      try {
        this.#native.call(id, flat, this.#priority)
      } catch (e) {
        pending.delete(id)
        reject(fromNative(e))
        return
      }
      this.#active++
      track(1)
      this.#hold(1)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /**
   * Closes the stream and frees its state. Calls still waiting behind the
   * running one reject with ERR_DISPOSED; resolves once every call made has
   * settled. Later calls reject with ERR_DISPOSED.
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true
      if (this.#timer !== undefined) clearTimeout(this.#timer)
      this.#native.close()
      this.#onClose()
    }
    if (this.#active === 0) return Promise.resolve()
    return new Promise((resolve) => this.#drained.push(resolve))
  }

  /** Whether the stream is closed (explicitly, by idle expiry, or with its session). */
  get closed(): boolean {
    return this.#closed
  }

  /** Calls made and not yet settled. */
  get pendingRuns(): number {
    return this.#active
  }

  [disposeSymbol](): Promise<void> {
    return this.close()
  }
}

// Batch jobs: a session or pipeline over a whole source, in bounded memory.

/** Progress of a batch job, reported to `onProgress`. */
export interface JobProgress {
  rowsDone: number
  /** Rows that failed (with `errors: 'return'`). */
  errors: number
  seconds: number
  rowsPerSecond: number
  /** Total rows: the `total` option, or for files estimated from the bytes done so far (exact at the end). */
  total?: number
  /** Seconds left at the current rate, where the total is known. */
  etaSeconds?: number
  /** Files: input bytes up to the last row done, and the file's size. */
  bytesDone?: number
  bytesTotal?: number
}

/** What a finished job did. */
export interface JobSummary {
  rows: number
  errors: number
  seconds: number
  rowsPerSecond: number
}

/** Options of `Session.runJob` and `Pipeline.runJob`. Unknown keys are refused. */
export interface JobOptions {
  /** Cancels the job: it stops reading, terminates running chunks, and `done` (and the iterator) reject with ERR_ABORTED. */
  signal?: AbortSignal
  /** Called at most every `progressIntervalMs`, and once at the end. An exception thrown by it fails the job. */
  onProgress?: (p: JobProgress) => void
  /** Default 250. */
  progressIntervalMs?: number
  /**
   * Chunks in flight at once (file jobs also read one ahead and write one
   * meanwhile), and chunks the iterator may hold until taken. Memory is
   * bounded by these chunks, whatever the source's length. Default: the number of cores.
   */
  concurrency?: number
  /** Iterable sources: the total row count, for ETA. */
  total?: number
}

/** Options of `Pipeline.runJob`. */
export interface PipelineJobOptions extends JobOptions {
  /** Rows per chunk read from a file or grouped from single records. Default 4096. */
  chunkSize?: number
  /** 'throw' (default): a bad row fails the job, naming its row (0-based in the whole input) and field. 'return': bad rows get an error beside the good rows. */
  errors?: 'throw' | 'return'
  /** The input file's format. Default: from its extension (.csv; .jsonl, .ndjson). */
  format?: 'csv' | 'jsonl'
  /** Write the results to this file (created or truncated) instead of yielding them: JSONL, or for file sources also CSV. */
  output?: string
  /** Default: from the output's extension (.csv, else JSONL). */
  outputFormat?: 'csv' | 'jsonl'
  /** What the iterator yields per chunk: 'objects' (default, {@link PipelineJobChunk}) or 'columns' ({@link PipelineJobColumns}, cheaper for large chunks). */
  results?: 'objects' | 'columns'
}

/** Session jobs also choose outputs, as `run` does. */
export interface SessionJobOptions extends JobOptions {
  outputs?: string[]
}

/** A chunk of a pipeline job's results as columns (`results: 'columns'`), in input order. */
export interface PipelineJobColumns {
  /** Index of the chunk's first row in the whole input (0-based). */
  firstRow: number
  /** As `runBatch(…, { output: 'columns' })` returns them; `errors[i]` has `row` counted in the whole input. */
  columns: PipelineColumns
}

/** A chunk of a pipeline job's results, in input order. */
export interface PipelineJobChunk {
  /** Index of the chunk's first row in the whole input (0-based). */
  firstRow: number
  /** One entry per row; a bad row's error has `row` counted in the whole input. */
  results: (PipelineResult | PipelineRowError)[]
}

/**
 * A running batch job. Iterate it (once) for its results, in input order; or,
 * when it writes a file, await `done`. Breaking out of the iteration aborts the
 * job. `done` rejects when the job fails or is aborted (it is marked handled,
 * so an ignored `done` does not crash the process).
 */
export class BatchJob<T> implements AsyncIterable<T> {
  /** Resolves when every row is done (and any output file is flushed). */
  readonly done: Promise<JobSummary>
  #queue: unknown[] = []
  /** Builds an item from what was queued, when the consumer takes it (so that cost is the consumer's, not the delivery's). */
  #materialize: (raw: unknown) => T
  #wake: (() => void) | undefined
  #space: (() => void) | undefined
  #ended = false
  #error: unknown
  #iterating = false
  #limit: number
  #taken: () => void
  #cancel: () => void
  #settle!: [(s: JobSummary) => void, (e: unknown) => void]

  /** @internal */
  constructor(limit: number, taken: () => void, cancel: () => void, materialize: (raw: unknown) => T = (x) => x as T) {
    this.#materialize = materialize
    this.#limit = limit
    this.#taken = taken
    this.#cancel = cancel
    this.done = new Promise<JobSummary>((resolve, reject) => {
      this.#settle = [resolve, reject]
    })
    this.done.catch(() => {})
  }

  /** @internal */
  push(item: unknown): void {
    if (this.#ended) return
    this.#queue.push(item)
    this.#poke()
  }

  /** @internal Resolves when the consumer has room for another item. */
  room(): Promise<void> {
    if (this.#queue.length < this.#limit || this.#ended) return Promise.resolve()
    return new Promise((resolve) => {
      this.#space = resolve
    })
  }

  /** @internal */
  finish(summary: JobSummary): void {
    if (this.#ended) return
    this.#ended = true
    this.#settle[0](summary)
    this.#poke()
  }

  /** @internal */
  fail(e: unknown): void {
    if (this.#ended) return
    this.#ended = true
    this.#error = e
    this.#queue.length = 0
    this.#settle[1](e)
    this.#poke()
  }

  /** @internal Whether `done` has settled. */
  get settled(): boolean {
    return this.#ended
  }

  #poke(): void {
    const w = this.#wake
    this.#wake = undefined
    w?.()
    if (this.#ended) {
      const s = this.#space
      this.#space = undefined
      s?.()
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.#iterating) throw invalidArg('a BatchJob can be iterated only once')
    this.#iterating = true
    const next = async (): Promise<IteratorResult<T>> => {
      for (;;) {
        if (this.#queue.length > 0) {
          const value = this.#materialize(this.#queue.shift())
          this.#taken()
          const s = this.#space
          this.#space = undefined
          s?.()
          return { value, done: false }
        }
        if (this.#ended) {
          if (this.#error !== undefined) throw this.#error
          return { value: undefined, done: true }
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve
        })
      }
    }
    return {
      next,
      return: async (): Promise<IteratorResult<T>> => {
        if (!this.#ended) this.#cancel()
        this.#queue.length = 0
        return { value: undefined, done: true }
      },
    }
  }
}

/** Reads the common job options; throws ERR_INVALID_ARGUMENT. */
function jobOptions(what: string, options: unknown, extra: readonly string[]): { signal?: AbortSignal; onProgress?: (p: JobProgress) => void; intervalMs: number; concurrency: number; total?: number } {
  if (!isPlainObject(options)) throw invalidArg(`${what}: options must be an object`)
  checkKeys(what, options, ['signal', 'onProgress', 'progressIntervalMs', 'concurrency', 'total', ...extra])
  const o = options as Record<string, unknown>
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw invalidArg(`${what}: options.signal must be an AbortSignal`)
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw invalidArg(`${what}: options.onProgress must be a function`)
  if (o.total !== undefined && (typeof o.total !== 'number' || !Number.isInteger(o.total) || o.total < 0)) throw invalidArg(`${what}: options.total must be a non-negative integer`)
  return {
    signal: o.signal as AbortSignal | undefined,
    onProgress: o.onProgress as ((p: JobProgress) => void) | undefined,
    intervalMs: intOption(o, 'progressIntervalMs', 250, 0, 3_600_000),
    concurrency: intOption(o, 'concurrency', availableParallelism(), 1, 1024),
    total: o.total as number | undefined,
  }
}

function progressOf(rowsDone: number, errors: number, seconds: number, total?: number, bytesDone?: number, bytesTotal?: number): JobProgress {
  const p: JobProgress = { rowsDone, errors, seconds, rowsPerSecond: seconds > 0 ? rowsDone / seconds : 0 }
  if (bytesTotal !== undefined) {
    p.bytesDone = bytesDone
    p.bytesTotal = bytesTotal
    if (total === undefined && bytesDone! > 0) total = bytesDone! >= bytesTotal ? rowsDone : Math.round((rowsDone * bytesTotal) / bytesDone!)
  }
  if (total !== undefined) {
    p.total = total
    if (p.rowsPerSecond > 0) p.etaSeconds = Math.max(0, total - rowsDone) / p.rowsPerSecond
  }
  return p
}

function abortedJob(signal: AbortSignal | undefined): OxinferError {
  return new OxinferError('ERR_ABORTED', 'the job was aborted', { cause: signal?.reason })
}

/** Moves an error's row from its chunk into the whole input. */
function shiftRow(e: unknown, firstRow: number): unknown {
  if (!(e instanceof OxinferError) || e.row === undefined || firstRow === 0) return e
  const row = e.row + firstRow
  // Messages made in JS name the row too.
  return new OxinferError(e.code, e.message.replace(/^row \d+: /, `row ${row}: `), { input: e.input, row, field: e.field, stage: e.stage, cause: e.cause })
}

/**
 * Drives a job whose chunks come from JS: up to `concurrency` chunks run at
 * once, results are pushed in input order, and a chunk is only pulled when the
 * consumer has room, so memory stays bounded whatever the source's length.
 */
function driveChunks<C, R>(
  job: BatchJob<R>,
  chunks: AsyncIterator<C>,
  run: (chunk: C, firstRow: number, signal: AbortSignal) => Promise<R>,
  rowsOf: (chunk: C) => number,
  errorsOf: (result: R) => number,
  o: { signal?: AbortSignal; onProgress?: (p: JobProgress) => void; intervalMs: number; concurrency: number; total?: number },
  inner: AbortController,
  sink?: ResultSink<R>,
): void {
  const t0 = performance.now()
  let rowsDone = 0
  let errors = 0
  let lastProgress = t0
  const report = (force: boolean): void => {
    const now = performance.now()
    if (!o.onProgress || (!force && now - lastProgress < o.intervalMs)) return
    lastProgress = now
    o.onProgress(progressOf(rowsDone, errors, (now - t0) / 1000, o.total))
  }
  const onAbort = (): void => inner.abort(o.signal?.reason)
  o.signal?.addEventListener('abort', onAbort, { once: true })
  // Waits that an abort must cut short: a source that never yields, a consumer that never takes.
  const ABORTED = Symbol('aborted')
  const stopped = new Promise<typeof ABORTED>((resolve) => inner.signal.addEventListener('abort', () => resolve(ABORTED), { once: true }))
  void (async () => {
    const flight: { p: Promise<R>; rows: number }[] = []
    let firstRow = 0
    let eof = false
    try {
      for (;;) {
        while (!eof && flight.length < o.concurrency && !inner.signal.aborted) {
          const n = await Promise.race([chunks.next(), stopped])
          if (n === ABORTED) break
          if (n.done) {
            eof = true
            break
          }
          const rows = rowsOf(n.value)
          const p = run(n.value, firstRow, inner.signal)
          p.catch(() => {})
          flight.push({ p, rows })
          firstRow += rows
        }
        if (inner.signal.aborted) throw abortedJob(o.signal)
        const head = flight.shift()
        if (!head) break
        const r = await head.p
        if (sink) await Promise.race([sink.write(r), stopped])
        else await Promise.race([job.room(), stopped])
        if (inner.signal.aborted || job.settled) throw abortedJob(o.signal)
        if (!sink) job.push(r)
        rowsDone += head.rows
        errors += errorsOf(r)
        report(false)
      }
      await sink?.close()
      report(true)
      const seconds = (performance.now() - t0) / 1000
      job.finish({ rows: rowsDone, errors, seconds, rowsPerSecond: seconds > 0 ? rowsDone / seconds : 0 })
    } catch (e) {
      inner.abort()
      sink?.discard()
      await Promise.allSettled(flight.map((f) => f.p))
      job.fail(inner.signal.aborted && o.signal?.aborted ? abortedJob(o.signal) : e)
      void chunks.return?.()
    } finally {
      o.signal?.removeEventListener('abort', onAbort)
    }
  })()
}

/** Where an iterable job's results go instead of the iterator. */
interface ResultSink<R> {
  /** Resolves once the stream takes more (backpressure). */
  write(r: R): Promise<void>
  close(): Promise<void>
  /** Drops the partial file. */
  discard(): void
}

/**
 * Writes pipeline results as JSON lines, in the native job writer's format
 * (crates/oxinfer-core/src/job/write.rs), for iterable sources. The file is
 * opened synchronously so that an unwritable path throws from `runJob`.
 */
function jsonlSink(path: string): ResultSink<PipelineJobChunk> {
  let fd: number
  try {
    fd = openSync(path, 'w')
  } catch (e) {
    throw invalidArg(`cannot write the output file '${path}': ${(e as Error).message}`)
  }
  const stream = createWriteStream('', { fd })
  let failed: Error | undefined
  stream.on('error', (e) => (failed = e))
  const num = (x: number): string => (Number.isFinite(x) ? String(x) : 'null')
  const line = (row: number, r: PipelineResult | PipelineRowError): string => {
    if ('error' in r) {
      const e = r.error
      return `{"row":${row},"error":{"code":${JSON.stringify(e.code)}${e.field ? `,"field":${JSON.stringify(e.field)}` : ''},"message":${JSON.stringify(e.message)}}}\n`
    }
    let o = `{"row":${row}`
    if (r.labelIndex !== undefined) o += `,"label":${JSON.stringify(r.label ?? null)},"labelIndex":${r.labelIndex}`
    if (r.score !== undefined) o += `,"score":${num(r.score)}`
    if (r.value !== undefined) o += `,"value":${num(r.value)}`
    if (r.top) o += `,"top":${JSON.stringify(r.top)}`
    if (r.labels) o += `,"labels":${JSON.stringify(r.labels)}`
    if (r.bucket !== undefined) o += `,"bucket":${JSON.stringify(r.bucket ?? null)}`
    return o + `,"scores":[${Array.from(r.scores, num).join(',')}]}\n`
  }
  const check = (): void => {
    if (failed) throw invalidArg(`cannot write the output file '${path}': ${failed.message}`)
  }
  return {
    write(c) {
      check()
      let text = ''
      for (let i = 0; i < c.results.length; i++) text += line(c.firstRow + i, c.results[i])
      if (stream.write(text)) return Promise.resolve()
      return new Promise((resolve) => {
        const done = (): void => {
          stream.off('drain', done)
          stream.off('close', done)
          resolve()
        }
        stream.on('drain', done)
        stream.on('close', done)
      })
    },
    close() {
      return new Promise<void>((resolve, reject) => stream.end(() => (failed ? reject(invalidArg(`cannot write the output file '${path}': ${failed.message}`)) : resolve())))
    },
    discard() {
      stream.destroy()
      try {
        unlinkSync(path)
      } catch {
        // Already gone.
      }
    },
  }
}

function shiftColumnErrors(c: PipelineColumns, firstRow: number): void {
  if (firstRow === 0) return
  for (let i = 0; i < c.errors.length; i++) if (c.errors[i]) c.errors[i] = shiftRow(c.errors[i], firstRow) as OxinferError
}

function iteratorOf(source: unknown, what: string): AsyncIterator<unknown> | Iterator<unknown> {
  const s = source as { [Symbol.asyncIterator]?: () => AsyncIterator<unknown>; [Symbol.iterator]?: () => Iterator<unknown> }
  if (s !== null && typeof s === 'object' && typeof s[Symbol.asyncIterator] === 'function') return s[Symbol.asyncIterator]!()
  if (s !== null && typeof s === 'object' && typeof s[Symbol.iterator] === 'function') return s[Symbol.iterator]!()
  throw invalidArg(`${what}: source must be a file path or an (async) iterable`)
}

// ---------------------------------------------------------------------------
// Pipelines (spec version 1; the JSON Schema ships as schema/pipeline.schema.json)

/** Field types of a pipeline's input records. */
export const FIELD_TYPES = ['number', 'integer', 'boolean', 'category', 'array', 'list', 'text', 'image'] as const
/** Pre-processing ops. */
export const PREPROCESS_OPS = ['impute', 'clip', 'standard_scale', 'minmax_scale', 'robust_scale', 'one_hot', 'ordinal', 'log', 'bucketize', 'hash', 'interaction', 'aggregate', 'pca', 'tokenize', 'image'] as const
/** Post-processing ops. */
export const POSTPROCESS_OPS = ['softmax', 'sigmoid', 'argmax', 'top_k', 'threshold', 'bucket', 'inverse_scale', 'platt'] as const

export type FieldType = (typeof FIELD_TYPES)[number]

export interface FieldSpec {
  name: string
  type: FieldType
  /** Element count of an 'array' field. */
  size?: number
  /** A missing value is an input error. Default false: missing values follow each stage's policy. */
  required?: boolean
}

type PerField = Record<string, number>
interface StageBase {
  /** A name for errors and timings. */
  name?: string
}
export interface ImputeStage extends StageBase {
  op: 'impute'
  fields: string[]
  strategy: 'mean' | 'median' | 'most_frequent' | 'constant'
  /** The fill value of the 'constant' strategy. */
  value?: number | string
  /** Fitted fill values per field. */
  values?: Record<string, number | string>
}
export interface ClipStage extends StageBase {
  op: 'clip'
  fields: string[]
  min?: number
  max?: number
}
export interface StandardScaleStage extends StageBase {
  op: 'standard_scale'
  fields: string[]
  with_mean?: boolean
  with_std?: boolean
  mean?: PerField
  scale?: PerField
}
export interface MinmaxScaleStage extends StageBase {
  op: 'minmax_scale'
  fields: string[]
  /** Default [0, 1]. */
  range?: [number, number]
  data_min?: PerField
  data_max?: PerField
}
export interface RobustScaleStage extends StageBase {
  op: 'robust_scale'
  fields: string[]
  /** Default [25, 75]. */
  quantile_range?: [number, number]
  center?: PerField
  scale?: PerField
}
export interface OneHotStage extends StageBase {
  op: 'one_hot'
  field: string
  /** Fitted vocabulary; produces features named 'field=category'. */
  categories?: string[]
  /** Default 'error'. Unknown or missing categories: all zeros ('ignore') or a row error. */
  unknown?: 'ignore' | 'error'
}
export interface OrdinalStage extends StageBase {
  op: 'ordinal'
  field: string
  categories?: string[]
  /** Default 'error'. */
  unknown?: 'ignore' | 'error'
  /** Default -1. */
  unknown_value?: number
}
/** ln(x + offset) (default offset 1); values at or below -offset become missing. */
export interface LogStage extends StageBase {
  op: 'log'
  fields: string[]
  offset?: number
}
/** The bucket of a number (how many edges are <= it): in place ('index') or as features 'field=b<i>' ('one_hot'). */
export interface BucketizeStage extends StageBase {
  op: 'bucketize'
  field: string
  edges: number[]
  output?: 'index' | 'one_hot'
}
/** Signed feature hashing of a category (scikit-learn FeatureHasher): features 'field#0' .. 'field#<buckets-1>'. */
export interface HashStage extends StageBase {
  op: 'hash'
  field: string
  buckets: number
  /** Default true. */
  alternate_sign?: boolean
}
/** Pairwise products of numeric fields: features 'a*b'. */
export interface InteractionStage extends StageBase {
  op: 'interaction'
  fields: string[]
}
/** Aggregates of a list field: features 'field.mean', 'field.min', 'field.max', 'field.sum', 'field.count', 'field.last'. */
export interface AggregateStage extends StageBase {
  op: 'aggregate'
  field: string
  functions: ('mean' | 'min' | 'max' | 'sum' | 'count' | 'last')[]
}
/** PCA projection of numeric fields: features '<prefix>0' .. ; `mean`, `matrix` (components × fields) are fitted. */
export interface PcaStage extends StageBase {
  op: 'pca'
  fields: string[]
  components: number
  /** Default 'pca'. */
  prefix?: string
  mean?: number[]
  matrix?: number[][]
  explained_variance?: number[]
}
/** Tokenises a text field (and `pair_field` as pairs): tensors '<field>.input_ids', '.attention_mask', '.token_type_ids', int64 [batch, seq]. */
export interface TokenizeStage extends StageBase {
  op: 'tokenize'
  field: string
  pair_field?: string
  /** A tokenizer.json, relative to the spec file. */
  tokenizer: string
  max_length: number
  /** Default 'longest'. */
  padding?: 'longest' | 'max_length'
  /** Default true. */
  add_special_tokens?: boolean
}
/** Decodes and transforms an image field: tensor '<field>.pixels', float32 [batch, C, H, W] (or HWC). */
export interface ImageStage extends StageBase {
  op: 'image'
  field: string
  resize?: { width: number; height: number } | { shorter: number }
  filter?: 'bilinear' | 'nearest'
  center_crop?: { width: number; height: number }
  color?: 'rgb' | 'gray'
  normalize?: { mean: number[]; std: number[] }
  layout?: 'chw' | 'hwc'
}
export type PreprocessStage =
  | TokenizeStage
  | ImageStage
  | ImputeStage
  | ClipStage
  | StandardScaleStage
  | MinmaxScaleStage
  | RobustScaleStage
  | OneHotStage
  | OrdinalStage
  | LogStage
  | BucketizeStage
  | HashStage
  | InteractionStage
  | AggregateStage
  | PcaStage

export interface FeatureAssembly {
  /** The model input fed with a [batch, names.length] tensor (or with `tensor`). */
  input: string
  /** Feature names in tensor order: a numeric field, an array field (all elements) or 'field[i]', or 'field=category'. */
  names?: string[]
  /** Or: a tensor made by a stage, passed as is ('text.input_ids', 'photo.pixels'). */
  tensor?: string
  /** Default 'error': a feature still missing at assembly is a row error; 'nan' passes NaN. */
  missing?: 'error' | 'nan'
}

export type PostprocessStage =
  | { op: 'softmax'; name?: string }
  | { op: 'sigmoid'; name?: string }
  | { op: 'argmax'; name?: string }
  | { op: 'top_k'; name?: string; k: number }
  | { op: 'threshold'; name?: string; min: number }
  | { op: 'bucket'; name?: string; edges: number[]; names: string[] }
  | { op: 'inverse_scale'; name?: string; mean: number; scale: number }
  /** Platt calibration: p = 1 / (1 + exp(a * score + b)); see fitPlatt. */
  | { op: 'platt'; name?: string; a: number; b: number }

export interface OutputSpec {
  /** The model output holding the scores, [batch, k] or [batch]. */
  tensor: string
  /** Class names, in score order. */
  labels?: string[]
  postprocess?: PostprocessStage[]
}

/** A pipeline spec, version 1. */
export interface PipelineSpec {
  $schema?: string
  version: 1
  name?: string
  description?: string
  /** Path of the ONNX model, relative to the spec file (or to `baseDir`). */
  model: string
  session?: SessionOptions
  fields: FieldSpec[]
  preprocess?: PreprocessStage[]
  features: FeatureAssembly[]
  output: OutputSpec
}

export interface PipelineOptions {
  /** Where a relative `model` path is resolved. Default: the spec file's folder (load), or the working directory. */
  baseDir?: string
  /** Session options; override the spec's `session`. */
  session?: SessionOptions
  /**
   * Dynamic batching of `run` calls (off by default). Concurrent `run` calls
   * are gathered and sent through the whole pipeline (pre-processing, the
   * model, post-processing) as one batch, and each caller gets its own result
   * or its own error, exactly as without batching. A batch is cut as soon as
   * one of the session's `poolSize` slots is free, so batches grow with load.
   */
  batching?: PipelineBatchingOptions
}

/** Dynamic batching of {@link Pipeline.run} calls (see {@link PipelineOptions.batching}). */
export interface PipelineBatchingOptions {
  /** Records per batch at most. Default 64. */
  maxBatchSize?: number
  /**
   * How long a batch that is not full may wait for more records, from its
   * first record's call, in µs. 0 (default) cuts a batch as soon as a slot is
   * free. Pipelines gather on the JS side, where timers have millisecond
   * resolution, so values are rounded up to whole milliseconds.
   */
  maxDelayMicros?: number
  /** Batch sizes to cut at when more records wait than fit (see {@link BatchingOptions.preferredBatchSizes}). */
  preferredBatchSizes?: readonly number[]
  /** Records that may wait; more are refused at once with ERR_OVERLOADED. Default 0 (no limit). */
  maxQueue?: number
  /** Default bound on a record's wait for its batch, in ms (ERR_TIMEOUT past it). Default 0 (none). */
  timeoutMs?: number
  /** Priority levels for `run(record, { priority })`; 1 is the most urgent, the default the least. Default 1. */
  priorityLevels?: number
}

export interface PipelineRunOptions {
  signal?: AbortSignal
  /** 1 (most urgent) to the priority levels (the pipeline's batching, else the session's). Default: the least urgent. */
  priority?: number
  /** Bound on this record's wait before it runs, in ms (ERR_TIMEOUT past it). */
  timeoutMs?: number
  /** Called with the request's timing breakdown just before its promise settles successfully. */
  onTiming?: (timing: RunTiming) => void
  /** Attach native per-stage timings to the result. Default false. */
  timings?: boolean
}

export interface PipelineBatchOptions extends PipelineRunOptions {
  /** 'objects' (default) or 'columns'. */
  output?: 'objects' | 'columns'
  /** 'throw' (default): a bad row rejects the whole batch. 'return': bad rows get an error beside the good rows' results. */
  errors?: 'throw' | 'return'
}

/** Native time per stage of one run, in microseconds. */
export interface StageTimings {
  preprocessMicros: number
  assembleMicros: number
  inferenceMicros: number
  postprocessMicros: number
}

/** One record's result. Which fields are present depends on the post-processing ops. */
export interface PipelineResult {
  /** Scores after post-processing transforms (softmax, sigmoid, inverse_scale). */
  scores: Float32Array | Float64Array
  /** Best class name (or its index when the spec has no labels); null below a threshold. */
  label?: string | null
  /** Best class score. */
  score?: number
  /** argmax/top_k class index; -1 below a threshold. */
  labelIndex?: number
  /** top_k: the best classes, best first. */
  top?: { label: string; score: number }[]
  /** threshold: every class scoring at least the threshold. */
  labels?: string[]
  /** bucket: the confidence bucket of `score`. */
  bucket?: string
  /** A single-score model (regression): the score itself. */
  value?: number
  timings?: StageTimings
}

/** A bad row in a batch run with `errors: 'return'`. */
export interface PipelineRowError {
  error: OxinferError
}

/** Results as columns, one entry per input row. */
export interface PipelineColumns {
  rows: number
  /** Scores per class: `k` per row, row-major. NaN for rows that failed. */
  scores: Float32Array | Float64Array
  k: number
  label?: (string | null)[]
  labelIndex?: Int32Array
  score?: Float32Array
  topIndex?: Int32Array
  topScore?: Float32Array
  topK?: number
  /** 1 where a class scores at least the threshold (`k` per row). */
  above?: Uint8Array
  bucket?: (string | null)[]
  /** The error of each failed row, null for good rows (only with errors: 'return'). */
  errors: (OxinferError | null)[]
  timings?: StageTimings
}

/** Columnar input: a typed array or array per field. */
export type PipelineColumnsInput = Record<string, ArrayLike<unknown>>

const PIPELINE_OPTION_KEYS = ['baseDir', 'session', 'batching'] as const

/** Pipeline result column names, indexed as the addon packs them. */
const PACKED_NAMES = ['scores', 'label', 'score', 'top_index', 'top_score', 'above', 'bucket', 'error_row', 'error_field', 'error_code', 'error_message', 'timings', 'other']

type Columns = Map<string, { data: unknown; dims: number[] }>

/** Unpacks `[micros, buffer, strings]` into views over the run's one buffer (see payload.rs). */
function readPacked(payload: unknown): Columns {
  const m: Columns = new Map()
  unpack(payload, (id, _type, data, dims) => m.set(PACKED_NAMES[id], { data, dims }))
  return m
}

function timingsOf(named: Columns): StageTimings {
  const t = named.get('timings')!.data as Float64Array
  return { preprocessMicros: t[0] / 1000, assembleMicros: t[1] / 1000, inferenceMicros: t[2] / 1000, postprocessMicros: t[3] / 1000 }
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`
  if (Array.isArray(v)) return `an array of ${v.length}`
  return v === null ? 'null' : typeof v
}

/** The spec's fields grouped by how they cross. */
interface BatchLayout {
  nums: FieldSpec[]
  cats: FieldSpec[]
  arrs: FieldSpec[]
  arrWidth: number
  lists: FieldSpec[]
  texts: FieldSpec[]
  images: FieldSpec[]
}

/** A batch transposed into columns, ready to cross to native code. */
interface ColumnBatch {
  flat: unknown[]
  rows: number
  rejected: Map<number, OxinferError>
}

/**
 * A tabular inference pipeline: pre-processing, feature assembly, the model and
 * post-processing, all run natively with one crossing per request or batch.
 */
/** Resolved {@link PipelineBatchingOptions}. */
interface GathererConfig {
  maxBatchSize: number
  maxDelayMicros: number
  preferred: number[]
  maxQueue: number
  timeoutMs: number
  priorityLevels: number
}

function gathererOptions(b: unknown): GathererConfig {
  if (!isPlainObject(b)) throw invalidArg('Pipeline.create: batching must be an object')
  checkKeys('pipeline batching', b, ['maxBatchSize', 'maxDelayMicros', 'preferredBatchSizes', 'maxQueue', 'timeoutMs', 'priorityLevels'])
  const maxBatchSize = intOption(b, 'maxBatchSize', 64, 1, 65536)
  const pref = b.preferredBatchSizes ?? []
  if (!Array.isArray(pref) || pref.some((p) => typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > maxBatchSize)) {
    throw invalidArg(`batching.preferredBatchSizes must be an array of integers from 1 to maxBatchSize (${maxBatchSize})`)
  }
  return {
    maxBatchSize,
    maxDelayMicros: intOption(b, 'maxDelayMicros', 0, 0, 10_000_000),
    preferred: [...new Set(pref as number[])].sort((x, y) => x - y),
    maxQueue: intOption(b, 'maxQueue', 0, 0, 2 ** 31 - 1),
    timeoutMs: intOption(b, 'timeoutMs', 0, 0, 2 ** 31 - 1),
    priorityLevels: intOption(b, 'priorityLevels', 1, 1, 255),
  }
}

/** A record waiting in a {@link Gatherer}. */
interface Waiting {
  record: Record<string, unknown>
  resolve: (r: PipelineResult) => void
  reject: (e: unknown) => void
  /** performance.now() at the call. */
  at: number
  deadline: number
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
  timings: boolean
  onTiming: ((t: RunTiming) => void) | undefined
  /** 0 gathered, 1 in a running batch, 2 settled. */
  state: 0 | 1 | 2
}

type GatheredRun = (
  records: Record<string, unknown>[],
  timings: boolean,
) => Promise<{ results: (PipelineResult | PipelineRowError)[]; timing: RunTiming | undefined; stages: StageTimings | undefined }>

/** An error about row `r` of a gathered batch, restated as its caller's row 0. */
function asOwnRow(e: OxinferError): OxinferError {
  if (e.row === undefined) return e
  return new OxinferError(e.code, e.message.replace(/^row \d+/, 'row 0'), { row: 0, field: e.field, input: e.input, stage: e.stage })
}

/**
 * Gathers concurrent pipeline `run` calls into batches: one batch per free
 * slot of the session, cut at once (or after `maxDelayMicros`), most urgent
 * priority first with the same 200 ms aging rule as the native queue.
 */
class Gatherer {
  readonly options: GathererConfig
  #levels: Waiting[][]
  #queued = 0
  #running = 0
  #slots: number
  #run: GatheredRun
  #scheduled = false
  #timer: ReturnType<typeof setTimeout> | undefined
  #closed = false

  constructor(options: GathererConfig, slots: number, run: GatheredRun) {
    this.options = options
    this.#slots = Math.max(1, slots)
    this.#run = run
    this.#levels = Array.from({ length: options.priorityLevels }, () => [])
  }

  add(record: Record<string, unknown>, o: PipelineRunOptions, disposed: boolean): Promise<PipelineResult> {
    if (this.#closed || disposed) return Promise.reject(new OxinferError('ERR_DISPOSED', 'the session was disposed'))
    const signal = o.signal
    if (signal?.aborted) return Promise.reject(new OxinferError('ERR_ABORTED', 'the run was aborted before it started', { cause: signal.reason }))
    if (this.options.maxQueue > 0 && this.#queued >= this.options.maxQueue) {
      return Promise.reject(new OxinferError('ERR_OVERLOADED', `the queue is full (${this.#queued} records waiting); try again later`))
    }
    const timeout = o.timeoutMs ?? this.options.timeoutMs
    const level = (o.priority ?? this.options.priorityLevels) - 1
    return new Promise<PipelineResult>((resolve, reject) => {
      const now = performance.now()
      const w: Waiting = { record, resolve, reject, at: now, deadline: timeout > 0 ? now + timeout : Infinity, signal, onAbort: undefined, timings: o.timings === true, onTiming: o.onTiming, state: 0 }
      if (signal) {
        w.onAbort = () => {
          if (w.state === 0) {
            const q = this.#levels[level]
            q.splice(q.indexOf(w), 1)
            this.#queued--
          } else if (w.state === 2) return
          // Running: its share of the batch's result is dropped.
          w.state = 2
          track(-1)
          reject(new OxinferError('ERR_ABORTED', 'the run was aborted', { cause: signal.reason }))
        }
        signal.addEventListener('abort', w.onAbort, { once: true })
      }
      this.#levels[level].push(w)
      this.#queued++
      // Gathered records keep the process alive like runs in flight.
      track(1)
      this.#kick()
    })
  }

  /** Rejects everything still gathered (the session is being disposed). */
  close(): void {
    this.#closed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    for (const q of this.#levels) {
      for (const w of q.splice(0)) this.#settle(w, () => w.reject(new OxinferError('ERR_DISPOSED', 'the session was disposed')))
    }
    this.#queued = 0
  }

  #settle(w: Waiting, f: () => void): void {
    if (w.state === 2) return
    w.state = 2
    track(-1)
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort)
    f()
  }

  #kick(): void {
    if (this.#running >= this.#slots || this.#queued === 0 || this.#scheduled) return
    const { maxBatchSize, maxDelayMicros, preferred } = this.options
    if (maxDelayMicros > 0 && this.#queued < maxBatchSize && !preferred.includes(this.#queued) && !(preferred.length > 0 && this.#queued >= preferred[preferred.length - 1])) {
      let oldest = Infinity
      for (const q of this.#levels) if (q.length > 0 && q[0].at < oldest) oldest = q[0].at
      const wait = oldest + maxDelayMicros / 1000 - performance.now()
      if (wait > 0) {
        this.#timer ??= setTimeout(() => {
          this.#timer = undefined
          this.#kick()
        }, Math.ceil(wait))
        return
      }
    }
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    this.#scheduled = true
    // Every call made in this turn joins the batch.
    queueMicrotask(() => {
      this.#scheduled = false
      this.#flush()
    })
  }

  /** The next batch: most urgent first, unless a lower level's oldest has waited 200 ms. */
  #take(): Waiting[] {
    const now = performance.now()
    let start = this.#levels.findIndex((q) => q.length > 0)
    for (let l = start + 1; l < this.#levels.length; l++) {
      const q = this.#levels[l]
      if (q.length > 0 && now - q[0].at >= 200 && q[0].at < this.#levels[start][0].at) start = l
    }
    const order = [start, ...this.#levels.keys()].filter((l, i, a) => a.indexOf(l) === i)
    let cap = Math.min(this.options.maxBatchSize, this.#queued)
    const pref = this.options.preferred.filter((p) => p <= cap)
    if (pref.length > 0) cap = pref[pref.length - 1]
    const out: Waiting[] = []
    for (const l of order) {
      const q = this.#levels[l]
      while (q.length > 0 && out.length < cap) {
        const w = q.shift()!
        this.#queued--
        if (w.deadline <= now) {
          this.#settle(w, () => w.reject(new OxinferError('ERR_TIMEOUT', 'the record waited for its batch past its timeout')))
          continue
        }
        out.push(w)
      }
    }
    return out
  }

  #flush(): void {
    while (this.#running < this.#slots && this.#queued > 0) {
      const batch = this.#take()
      if (batch.length === 0) continue
      const started = performance.now()
      for (const w of batch) w.state = 1
      this.#running++
      let run: ReturnType<GatheredRun>
      try {
        run = this.#run(
          batch.map((w) => w.record),
          batch.some((w) => w.timings),
        )
      } catch (e) {
        run = Promise.reject(e)
      }
      run
        .then(
          ({ results, timing, stages }) => {
            batch.forEach((w, i) => {
              const r = results[i]
              if ('error' in r) {
                this.#settle(w, () => w.reject(asOwnRow(r.error)))
                return
              }
              this.#settle(w, () => {
                if (w.timings && stages) r.timings = stages
                if (w.onTiming && timing) {
                  try {
                    w.onTiming({ ...timing, queueMicros: timing.queueMicros + Math.round((started - w.at) * 1000), batchRequests: batch.length })
                  } catch {
                    // A throwing observer must not turn a good result into a failure.
                  }
                }
                w.resolve(r as PipelineResult)
              })
            })
          },
          (e) => {
            for (const w of batch) this.#settle(w, () => w.reject(fromNative(e)))
          },
        )
        .finally(() => {
          this.#running--
          this.#kick()
        })
    }
  }
}

export class Pipeline {
  #spec: PipelineSpec
  #session: Session
  #native: NativePipeline
  #baseDir: string
  #estimate: Estimate = { micros: Number.POSITIVE_INFINITY }
  #labels: string[] | undefined
  #fields: FieldSpec[]
  #batchLayout: BatchLayout
  #unfitted: string | null
  #gather: Gatherer | undefined

  private constructor(spec: PipelineSpec, session: Session, n: NativePipeline, baseDir: string) {
    this.#spec = spec
    this.#session = session
    this.#native = n
    this.#unfitted = n.unfitted
    this.#baseDir = baseDir
    this.#labels = spec.output.labels
    this.#fields = spec.fields
    this.#batchLayout = Pipeline.#layoutOf(spec.fields)
  }

  /** Creates a pipeline from a spec object (or its JSON text). Rejects with ERR_INVALID_SPEC naming the stage. */
  static async create(spec: PipelineSpec | string, options: PipelineOptions = {}): Promise<Pipeline> {
    if (!isPlainObject(options)) throw invalidArg('Pipeline.create: options must be an object')
    checkKeys('pipeline', options, PIPELINE_OPTION_KEYS)
    let parsed: PipelineSpec
    if (typeof spec === 'string') {
      try {
        parsed = JSON.parse(spec) as PipelineSpec
      } catch (e) {
        throw new OxinferError('ERR_INVALID_SPEC', `the spec is not valid JSON: ${(e as Error).message}`)
      }
    } else if (isPlainObject(spec)) {
      parsed = JSON.parse(JSON.stringify(spec)) as PipelineSpec
    } else {
      throw invalidArg('Pipeline.create: spec must be an object or JSON text')
    }
    if (!isPlainObject(parsed)) throw new OxinferError('ERR_INVALID_SPEC', 'the spec must be a JSON object')
    if (parsed.version !== 1) {
      throw new OxinferError('ERR_INVALID_SPEC', `unsupported spec version ${JSON.stringify(parsed.version)}; this oxinfer reads version 1`, { stage: 'version' })
    }
    if (typeof parsed.model !== 'string' || parsed.model === '') {
      throw new OxinferError('ERR_INVALID_SPEC', 'the spec needs a model path', { stage: 'model' })
    }
    const baseDir = options.baseDir ?? process.cwd()
    if (typeof baseDir !== 'string') throw invalidArg('Pipeline.create: baseDir must be a path string')
    const gather = options.batching === undefined ? undefined : gathererOptions(options.batching)
    const sessionOptions = { ...(parsed.session ?? {}), ...(options.session ?? {}) }
    const session = await Session.create(resolvePath(baseDir, parsed.model), sessionOptions)
    let n: NativePipeline
    try {
      n = await native.compilePipeline(session[kNative], JSON.stringify(parsed), resolvePath(baseDir))
    } catch (e) {
      await session.dispose()
      throw fromNative(e)
    }
    const pipeline = new Pipeline(parsed, session, n, resolvePath(baseDir))
    if (gather) pipeline.#gather = new Gatherer(gather, session.poolSize, (records, timings) => pipeline.#runGathered(records, timings))
    return pipeline
  }

  /** Loads a spec file; its model path is resolved relative to the file. */
  static async load(path: string, options: Omit<PipelineOptions, 'baseDir'> = {}): Promise<Pipeline> {
    if (typeof path !== 'string' || path === '') throw invalidArg('Pipeline.load: path must be a non-empty string')
    const { readFile } = await import('node:fs/promises')
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (e) {
      throw new OxinferError('ERR_INVALID_SPEC', `cannot read the spec '${path}': ${(e as Error).message}`, { cause: e })
    }
    return Pipeline.create(text, { ...options, baseDir: dirname(resolvePath(path)) })
  }

  /** A copy of the spec (with fitted parameters once `fit` has run). */
  get spec(): PipelineSpec {
    return JSON.parse(JSON.stringify(this.#spec)) as PipelineSpec
  }

  /** The session that runs the model. */
  get session(): Session {
    return this.#session
  }

  /** Runs one record. Rejects with ERR_INVALID_INPUT (row 0, field) for a bad record. */
  run(record: Record<string, unknown>, options: PipelineRunOptions = {}): Promise<PipelineResult> {
    let batch: ColumnBatch | undefined
    const levels = this.#gather?.options.priorityLevels ?? this.#session[kLevels]
    try {
      if (!isPlainObject(options)) throw invalidArg('run: options must be an object')
      checkKeys('pipeline run', options, ['signal', 'timings', 'priority', 'timeoutMs', 'onTiming'])
      checkRequestOptions('run', options, levels)
      if (!isPlainObject(record)) throw new OxinferError('ERR_INVALID_INPUT', 'run: the record must be an object', { row: 0 })
      // Batched records are checked with their batch, each caller getting its own error.
      if (this.#gather === undefined) batch = this.#fromRecords([record], true)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    const signal = options.signal as AbortSignal | undefined
    const onTiming = options.onTiming as ((t: RunTiming) => void) | undefined
    if (this.#gather !== undefined) return this.#gather.add(record, options, this.#session.disposed)
    return this.#execute(batch!, true, signal, options.timings === true, onTiming, options.timeoutMs as number | undefined, options.priority as number | undefined).then((named) => {
      const out = this.#objects(named, 1, batch!.rejected)[0] as PipelineResult
      if (options.timings) out.timings = timingsOf(named)
      return out
    })
  }

  /** Runs a gathered batch; each record's outcome in order, and the batch's timing. */
  async #runGathered(records: Record<string, unknown>[], timings: boolean): Promise<{ results: (PipelineResult | PipelineRowError)[]; timing: RunTiming | undefined; stages: StageTimings | undefined }> {
    const batch = this.#fromRecords(records, false)
    let timing: RunTiming | undefined
    const named = await this.#execute(batch, false, undefined, timings, (t) => (timing = t))
    return { results: this.#objects(named, batch.rows, batch.rejected), timing, stages: timings ? timingsOf(named) : undefined }
  }

  /** Runs a batch: an array of records, or columns (a typed array or array per field). */
  runBatch(records: Record<string, unknown>[], options?: PipelineBatchOptions & { output?: 'objects' }): Promise<(PipelineResult | PipelineRowError)[] & { timings?: StageTimings }>
  runBatch(records: Record<string, unknown>[] | PipelineColumnsInput, options: PipelineBatchOptions & { output: 'columns' }): Promise<PipelineColumns>
  runBatch(records: PipelineColumnsInput, options?: PipelineBatchOptions): Promise<(PipelineResult | PipelineRowError)[] & { timings?: StageTimings }>
  runBatch(records: Record<string, unknown>[] | PipelineColumnsInput, options: PipelineBatchOptions = {}): Promise<unknown> {
    let batch: ColumnBatch
    let failFast: boolean
    try {
      if (!isPlainObject(options)) throw invalidArg('runBatch: options must be an object')
      checkKeys('pipeline runBatch', options, ['signal', 'timings', 'output', 'errors'])
      const output = options.output ?? 'objects'
      if (output !== 'objects' && output !== 'columns') throw invalidArg(`runBatch: output must be 'objects' or 'columns', got ${JSON.stringify(output)}`)
      const errors = options.errors ?? 'throw'
      if (errors !== 'throw' && errors !== 'return') throw invalidArg(`runBatch: errors must be 'throw' or 'return', got ${JSON.stringify(errors)}`)
      failFast = errors === 'throw'
      if (Array.isArray(records)) batch = this.#fromRecords(records, failFast)
      else if (isPlainObject(records)) batch = this.#fromColumns(records, failFast)
      else throw invalidArg('runBatch: records must be an array of objects or an object of columns')
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    const signal = options.signal as AbortSignal | undefined
    if (signal !== undefined && !(signal instanceof AbortSignal)) return Promise.reject(invalidArg('runBatch: options.signal must be an AbortSignal'))
    return this.#execute(batch, failFast, signal, options.timings === true).then((named) => {
      if (options.output === 'columns') {
        const c = this.#columns(named, batch.rows, batch.rejected)
        if (options.timings) c.timings = timingsOf(named)
        return c
      }
      const out = this.#objects(named, batch.rows, batch.rejected) as (PipelineResult | PipelineRowError)[] & { timings?: StageTimings }
      if (options.timings) out.timings = timingsOf(named)
      return out
    })
  }

  /**
   * Runs the pipeline over a whole source, in bounded memory, and returns the
   * running {@link BatchJob}. The source is
   * - a CSV or JSONL file path: read, run and (with `output`) written natively,
   *   `chunkSize` rows at a time, with at most `concurrency` chunks between
   *   reading and writing and at most `concurrency` undelivered to the
   *   iterator. CSV needs a header row naming the fields (other columns are
   *   ignored; an empty cell is missing; array and list cells are JSON arrays);
   *   JSONL has one object per line (blank lines skipped). Image fields cannot
   *   come from files. A row that does not parse is a bad row like any other.
   * - an (async) iterable of records (grouped into chunks of `chunkSize`),
   *   of arrays of records, or of column chunks (an object whose number,
   *   integer, boolean, category or text field holds an array or typed array);
   *   each array or column chunk is one chunk. Runs through `runBatch`.
   *
   * Results come in input order, as {@link PipelineJobChunk}s, or go to
   * `output`: JSONL lines `{"row", ...the result}` or `{"row", "error":
   * {code, field, message}}` (any source), or CSV (file sources). On failure
   * or abort the output file is removed. Bad options, a missing input file, an
   * unwritable output, an unfitted spec or a disposed session throw at once.
   */
  runJob(source: string | AsyncIterable<unknown> | Iterable<unknown>, options: PipelineJobOptions & { results: 'columns' }): BatchJob<PipelineJobColumns>
  runJob(source: string | AsyncIterable<unknown> | Iterable<unknown>, options?: PipelineJobOptions): BatchJob<PipelineJobChunk>
  runJob(source: string | AsyncIterable<unknown> | Iterable<unknown>, options: PipelineJobOptions = {}): BatchJob<PipelineJobChunk | PipelineJobColumns> {
    const o = jobOptions('pipeline runJob', options, ['chunkSize', 'errors', 'format', 'output', 'outputFormat', 'results'])
    const opts = options as Record<string, unknown>
    const shape = opts.results ?? 'objects'
    if (shape !== 'objects' && shape !== 'columns') throw invalidArg(`runJob: results must be 'objects' or 'columns', got ${JSON.stringify(shape)}`)
    if (shape === 'columns' && opts.output !== undefined) throw invalidArg("runJob: results: 'columns' shapes what the iterator yields; a job with output yields nothing")
    const chunkSize = intOption(opts, 'chunkSize', 4096, 1, 1 << 24)
    const errors = opts.errors ?? 'throw'
    if (errors !== 'throw' && errors !== 'return') throw invalidArg(`runJob: errors must be 'throw' or 'return', got ${JSON.stringify(errors)}`)
    const formatOf = (key: string, path: string, fallback?: 'csv' | 'jsonl'): 'csv' | 'jsonl' => {
      const f = opts[key] ?? (/\.csv$/i.test(path) ? 'csv' : /\.(jsonl|ndjson)$/i.test(path) ? 'jsonl' : fallback)
      if (f !== 'csv' && f !== 'jsonl') throw invalidArg(`runJob: ${key} must be 'csv' or 'jsonl'${f === undefined ? ` (the extension of '${path}' does not say)` : `, got ${JSON.stringify(f)}`}`)
      return f
    }
    if (opts.output !== undefined && (typeof opts.output !== 'string' || opts.output === '')) throw invalidArg('runJob: output must be a file path')
    if (this.#session[kDisposed]) throw new OxinferError('ERR_DISPOSED', 'the session was disposed')
    if (this.#unfitted) throw new OxinferError('ERR_INVALID_SPEC', this.#unfitted)
    if (o.signal?.aborted) throw abortedJob(o.signal)
    if (typeof source === 'string') {
      if (source === '') throw invalidArg('runJob: the input path is empty')
      const inputFormat = formatOf('format', source)
      const output = opts.output as string | undefined
      const outputFormat = output === undefined ? undefined : formatOf('outputFormat', output, 'jsonl')
      return this.#fileJob(resolvePath(source), { inputFormat, output: output && resolvePath(output), outputFormat, chunkSize, concurrency: o.concurrency, failFast: errors === 'throw', progressIntervalMs: o.intervalMs }, o, shape === 'columns')
    }
    if (opts.format !== undefined) throw invalidArg('runJob: format applies to file sources only')
    const it = iteratorOf(source, 'runJob')
    let sink: ResultSink<PipelineJobChunk> | undefined
    if (opts.output !== undefined) {
      if (formatOf('outputFormat', opts.output as string, 'jsonl') !== 'jsonl') throw invalidArg('runJob: iterable sources write JSONL output only; CSV output is written for file sources')
      sink = jsonlSink(resolvePath(opts.output as string))
    }
    const inner = new AbortController()
    const job = new BatchJob<PipelineJobChunk | PipelineJobColumns>(o.concurrency, () => {}, () => inner.abort())
    const isColumns = (v: Record<string, unknown>): boolean =>
      this.#fields.some((f) => f.type !== 'array' && f.type !== 'list' && f.type !== 'image' && (Array.isArray(v[f.name]) || ArrayBuffer.isView(v[f.name])))
    const rowsOf = (c: Record<string, unknown>[] | PipelineColumnsInput): number => {
      if (Array.isArray(c)) return c.length
      for (const f of this.#fields) {
        const col = c[f.name]
        if (col === undefined) continue
        return f.type === 'array' && !Array.isArray(col[0]) && !ArrayBuffer.isView(col[0]) ? col.length / (f.size ?? 1) : col.length
      }
      return 0
    }
    async function* chunks(): AsyncGenerator<Record<string, unknown>[] | PipelineColumnsInput> {
      let buf: Record<string, unknown>[] = []
      let i = 0
      try {
        for (;;) {
          const n = await it.next()
          if (n.done) break
          const v = n.value
          if (Array.isArray(v)) {
            if (buf.length) yield buf
            buf = []
            yield v as Record<string, unknown>[]
          } else if (isPlainObject(v) && isColumns(v)) {
            if (buf.length) yield buf
            buf = []
            yield v as PipelineColumnsInput
          } else if (isPlainObject(v)) {
            buf.push(v)
            if (buf.length >= chunkSize) {
              yield buf
              buf = []
            }
          } else throw new OxinferError('ERR_INVALID_INPUT', `runJob: source item ${i} is not a record, an array of records or a column chunk (${describeValue(v)})`)
          i++
        }
        if (buf.length) yield buf
      } finally {
        await it.return?.()
      }
    }
    const run = async (chunk: Record<string, unknown>[] | PipelineColumnsInput, firstRow: number, signal: AbortSignal): Promise<PipelineJobChunk | PipelineJobColumns> => {
      if (shape === 'columns') {
        let columns: PipelineColumns
        try {
          columns = await this.runBatch(chunk as Record<string, unknown>[], { signal, errors: errors as 'throw' | 'return', output: 'columns' })
        } catch (e) {
          throw shiftRow(e, firstRow)
        }
        shiftColumnErrors(columns, firstRow)
        return { firstRow, columns }
      }
      let results: (PipelineResult | PipelineRowError)[]
      try {
        results = await this.runBatch(chunk as Record<string, unknown>[], { signal, errors: errors as 'throw' | 'return' })
      } catch (e) {
        throw shiftRow(e, firstRow)
      }
      if (errors === 'return' && firstRow > 0) {
        for (const r of results) if ('error' in r) r.error = shiftRow(r.error, firstRow) as OxinferError
      }
      return { firstRow, results }
    }
    const countErrors = (c: PipelineJobChunk | PipelineJobColumns): number => {
      if (errors === 'throw') return 0
      let n = 0
      if ('columns' in c) for (const e of c.columns.errors) n += e ? 1 : 0
      else for (const r of c.results) if ('error' in r) n++
      return n
    }
    driveChunks(job, chunks(), run, rowsOf, countErrors, o, inner, sink as ResultSink<PipelineJobChunk | PipelineJobColumns> | undefined)
    return job
  }

  /** A job over a file, driven natively (see crates/oxinfer-core/src/job). */
  #fileJob(
    input: string,
    n: Omit<NativeJobOptions, 'input'>,
    o: { signal?: AbortSignal; onProgress?: (p: JobProgress) => void },
    asColumns: boolean,
  ): BatchJob<PipelineJobChunk | PipelineJobColumns> {
    const id = nextId++
    let handle: NativeJob | undefined
    let abortRequested = false
    const job = new BatchJob<PipelineJobChunk | PipelineJobColumns>(
      n.concurrency,
      () => handle?.release(1),
      () => {
        abortRequested = true
        handle?.abort()
      },
      (raw) => {
        const [firstRow, named] = raw as [number, Columns]
        if (asColumns) {
          const columns = this.#columns(named, named.get('scores')!.dims[0], new Map())
          shiftColumnErrors(columns, firstRow)
          return { firstRow, columns }
        }
        const results = this.#objects(named, named.get('scores')!.dims[0], new Map())
        if (firstRow > 0 && named.has('error_row')) {
          for (const r of results) if ('error' in r) r.error = shiftRow(r.error, firstRow) as OxinferError
        }
        return { firstRow, results }
      },
    )
    const signal = o.signal
    const onAbort = (): void => {
      abortRequested = true
      handle?.abort()
    }
    const session = this.#session
    const end = (): void => {
      pending.delete(id)
      track(-1)
      session[kHold](-1)
      signal?.removeEventListener('abort', onAbort)
    }
    const progress = (p: unknown[], final: boolean): JobProgress =>
      progressOf(p[1] as number, p[2] as number, p[5] as number, final ? (p[1] as number) : undefined, p[3] as number, p[4] as number)
    const callProgress = (p: JobProgress): boolean => {
      if (!o.onProgress || abortRequested) return true
      try {
        o.onProgress(p)
        return true
      } catch (e) {
        onAbort()
        job.fail(e)
        return false
      }
    }
    const onEvent = (payload: unknown): void => {
      const ev = payload as unknown[]
      pending.set(id, onEvent)
      switch (ev[0]) {
        case 0: {
          const packed = ev[2]
          if (typeof packed === 'string') {
            onAbort()
            job.fail(fromNative(packed))
            return
          }
          job.push([ev[1] as number, readPacked(packed as unknown[])])
          return
        }
        case 1:
          callProgress(progress(ev, false))
          return
        case 2: {
          end()
          const p = progress(ev, true)
          if (callProgress(p)) job.finish({ rows: p.rowsDone, errors: p.errors, seconds: p.seconds, rowsPerSecond: p.rowsPerSecond })
          return
        }
        default: {
          end()
          const e = fromNative(ev[1])
          job.fail(e.code === 'ERR_ABORTED' && signal?.aborted ? abortedJob(signal) : e)
        }
      }
    }
    pending.set(id, onEvent)
    try {
      handle = this.#session[kNative].startJob(id, this.#native, { input, ...n })
    } catch (e) {
      pending.delete(id)
      throw fromNative(e)
    }
    track(1)
    session[kHold](1)
    signal?.addEventListener('abort', onAbort, { once: true })
    return job
  }

  /**
   * Learns every stage's parameters (imputation values, scaler statistics,
   * category vocabularies) from sample records, in float64, each stage on the
   * output of the ones before it. Resolves to the fitted spec, which this
   * pipeline uses from then on.
   */
  async fit(records: Record<string, unknown>[] | PipelineColumnsInput): Promise<PipelineSpec> {
    let batch: ColumnBatch
    if (Array.isArray(records)) batch = this.#fromRecords(records, true)
    else if (isPlainObject(records)) batch = this.#fromColumns(records, true)
    else throw invalidArg('fit: records must be an array of objects or an object of columns')
    if (batch.rows === 0) throw invalidArg('fit: needs at least one record')
    let fitted: string
    try {
      fitted = await native.fitPipeline(JSON.stringify(this.#spec), batch.flat)
    } catch (e) {
      throw fromNative(e)
    }
    const spec = JSON.parse(fitted) as PipelineSpec
    try {
      this.#native = await native.compilePipeline(this.#session[kNative], fitted, this.#baseDir)
      this.#unfitted = this.#native.unfitted
    } catch (e) {
      throw fromNative(e)
    }
    this.#spec = spec
    this.#labels = spec.output.labels
    this.#estimate = { micros: Number.POSITIVE_INFINITY }
    return this.spec
  }

  /** Writes the spec as JSON; the model path is rewritten relative to the new file. */
  async save(path: string): Promise<void> {
    if (typeof path !== 'string' || path === '') throw invalidArg('save: path must be a non-empty string')
    const { writeFile } = await import('node:fs/promises')
    const { relative } = await import('node:path')
    const abs = resolvePath(path)
    const spec = this.spec
    spec.model = relative(dirname(abs), resolvePath(this.#baseDir, this.#spec.model)) || this.#spec.model
    await writeFile(abs, JSON.stringify(spec, null, 2) + '\n')
  }

  /** Disposes the underlying session; records still gathered for a batch reject with ERR_DISPOSED. */
  dispose(): Promise<void> {
    this.#gather?.close()
    return this.#session.dispose()
  }

  [disposeSymbol](): Promise<void> {
    return this.dispose()
  }

  #execute(batch: ColumnBatch, failFast: boolean, signal: AbortSignal | undefined, timings: boolean, onTiming?: (t: RunTiming) => void, timeoutMs?: number, priority?: number): Promise<Columns> {
    if (this.#unfitted) return Promise.reject(new OxinferError('ERR_INVALID_SPEC', this.#unfitted))
    const n = this.#session[kNative]
    const p = this.#native
    return this.#session[kExecute](
      this.#estimate,
      (id) => n.submitPipeline(id, p, batch.flat, failFast, timings, timeoutMs ?? this.#session[kTimeout], priority),
      () => n.runPipelineSync(p, batch.flat, failFast, timings),
      (payload) => readPacked(payload),
      signal,
      batch.flat,
      onTiming,
    )
  }

  /** The spec's fields grouped as the batch layout wants them (fixed by the spec, so computed once). */
  static #layoutOf(fields: readonly FieldSpec[]): BatchLayout {
    const nums: FieldSpec[] = []
    const cats: FieldSpec[] = []
    const arrs: FieldSpec[] = []
    const lists: FieldSpec[] = []
    const texts: FieldSpec[] = []
    const images: FieldSpec[] = []
    let arrWidth = 0
    for (const f of fields) {
      if (f.type === 'category') cats.push(f)
      else if (f.type === 'list') lists.push(f)
      else if (f.type === 'text') texts.push(f)
      else if (f.type === 'image') images.push(f)
      else if (f.type === 'array') {
        arrs.push(f)
        arrWidth += f.size ?? 1
      } else nums.push(f)
    }
    return { nums, cats, arrs, arrWidth, lists, texts, images }
  }

  /** Transposes records into the batch layout, checking each value against its field's type. */
  #fromRecords(records: Record<string, unknown>[], failFast: boolean): ColumnBatch {
    const rows = records.length
    const rejected = new Map<number, OxinferError>()
    const reject = (row: number, field: string, message: string): void => {
      const e = new OxinferError('ERR_INVALID_INPUT', message, { row, field })
      if (failFast) throw e
      if (!rejected.has(row)) rejected.set(row, e)
    }
    for (let r = 0; r < rows; r++) {
      const rec = records[r]
      if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) reject(r, '', `row ${r}: a record must be an object, got ${describeValue(rec)}`)
    }
    const L = this.#batchLayout
    const get0 = (r: number, name: string): unknown => (rejected.has(r) ? undefined : (records[r] as Record<string, unknown>)[name])
    const lists = this.#lists(L, rows, get0, reject)
    const [texts, images] = this.#media(L, rows, get0, reject)
    const { data, nums, codes, counts, arrs, lens, vals } = this.#alloc(L, rows, lists.reduce((a, l) => a + l.reduce((b, x) => b + x.length, 0), 0))
    this.#fillLists(lens, vals, lists, rows)
    const uniques: string[] = []
    const get = (r: number, name: string): unknown => (rejected.has(r) ? undefined : (records[r] as Record<string, unknown>)[name])
    const missing = (v: unknown): boolean => v === undefined || v === null || (typeof v === 'number' && Number.isNaN(v))
    L.nums.forEach((f, j) => {
      const name = f.name
      const base = j * rows
      for (let r = 0; r < rows; r++) {
        const v = get(r, name)
        if (missing(v)) nums[base + r] = Number.NaN
        else if (f.type === 'boolean') {
          if (typeof v === 'boolean') nums[base + r] = v ? 1 : 0
          else {
            reject(r, name, `row ${r}: field '${name}' expects a boolean, got ${describeValue(v)}`)
            nums[base + r] = Number.NaN
          }
        } else if (typeof v === 'number' && (f.type === 'number' || Number.isInteger(v) || !Number.isFinite(v))) nums[base + r] = v
        else {
          reject(r, name, `row ${r}: field '${name}' expects ${f.type === 'integer' ? 'an integer' : 'a number'}, got ${describeValue(v)}`)
          nums[base + r] = Number.NaN
        }
      }
    })
    L.cats.forEach((f, j) => {
      const name = f.name
      const base = j * rows
      const dict = new Map<string, number>()
      for (let r = 0; r < rows; r++) {
        const v = get(r, name)
        if (typeof v === 'string') {
          let c = dict.get(v)
          if (c === undefined) {
            dict.set(v, (c = dict.size))
            uniques.push(v)
          }
          codes[base + r] = c
        } else {
          if (!missing(v)) reject(r, name, `row ${r}: field '${name}' expects a category string, got ${describeValue(v)}`)
          codes[base + r] = -1
        }
      }
      counts[j] = dict.size
    })
    let base = 0
    for (const f of L.arrs) {
      const name = f.name
      const size = f.size ?? 1
      arrs.fill(Number.NaN, base, base + rows * size)
      for (let r = 0; r < rows; r++) {
        const v = get(r, name)
        if (missing(v)) continue
        if (!(Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView)))) {
          reject(r, name, `row ${r}: field '${name}' expects an array of ${size} numbers, got ${describeValue(v)}`)
          continue
        }
        const a = v as ArrayLike<unknown>
        if (a.length !== size) {
          reject(r, name, `row ${r}: field '${name}' expects ${size} elements, got ${a.length}`)
          continue
        }
        for (let k = 0; k < size; k++) {
          const x = a[k]
          if (typeof x === 'number') arrs[base + r * size + k] = x
          else if (!missing(x)) {
            reject(r, name, `row ${r}: field '${name}' element ${k} expects a number, got ${describeValue(x)}`)
            break
          }
        }
      }
      base += rows * size
    }
    return { flat: this.#flat(rows, rejected, data, uniques, texts, images), rows, rejected }
  }

  /** Checks and adopts columnar input (numeric columns are copied with one memcpy each). */
  #fromColumns(columns: PipelineColumnsInput, failFast: boolean): ColumnBatch {
    const known = new Set(this.#fields.map((f) => f.name))
    for (const k of Object.keys(columns)) {
      if (!known.has(k)) throw new OxinferError('ERR_INVALID_INPUT', `unknown column '${k}'`, { field: k })
    }
    let rows = -1
    const lengthOf = (f: FieldSpec, c: ArrayLike<unknown>): number => (f.type === 'array' && !Array.isArray(c[0]) && !ArrayBuffer.isView(c[0]) ? c.length / (f.size ?? 1) : c.length)
    for (const f of this.#fields) {
      const c = columns[f.name]
      if (c === undefined) continue
      if (typeof c !== 'object' || c === null || typeof (c as ArrayLike<unknown>).length !== 'number') {
        throw new OxinferError('ERR_INVALID_INPUT', `column '${f.name}' must be an array or typed array`, { field: f.name })
      }
      const n = lengthOf(f, c)
      if (!Number.isInteger(n) || (rows >= 0 && n !== rows)) {
        throw new OxinferError('ERR_INVALID_INPUT', `column '${f.name}' has ${c.length} values, which does not match the other columns (${rows} rows)`, { field: f.name })
      }
      rows = n
    }
    if (rows < 0) throw new OxinferError('ERR_INVALID_INPUT', 'no columns given')
    const rejected = new Map<number, OxinferError>()
    const reject = (row: number, field: string, message: string): void => {
      const e = new OxinferError('ERR_INVALID_INPUT', message, { row, field })
      if (failFast) throw e
      if (!rejected.has(row)) rejected.set(row, e)
    }
    const L = this.#batchLayout
    const getCol = (r: number, name: string): unknown => (columns[name] as ArrayLike<unknown> | undefined)?.[r]
    const lists = this.#lists(L, rows, getCol, reject)
    const [texts, images] = this.#media(L, rows, getCol, reject)
    const { data, nums, codes, counts, arrs, lens, vals } = this.#alloc(L, rows, lists.reduce((a, l) => a + l.reduce((b, x) => b + x.length, 0), 0))
    this.#fillLists(lens, vals, lists, rows)
    codes.fill(-1)
    const uniques: string[] = []
    L.nums.forEach((f, j) => {
      const c = columns[f.name] as ArrayLike<unknown> | undefined
      const name = f.name
      const base = j * rows
      if (!c) nums.fill(Number.NaN, base, base + rows)
      else if (c instanceof Float64Array || (ArrayBuffer.isView(c) && !(c instanceof BigInt64Array) && !(c instanceof BigUint64Array) && f.type !== 'boolean')) {
        nums.set(c as ArrayLike<number>, base)
      } else {
        for (let r = 0; r < rows; r++) {
          const v = c[r]
          if (v === null || v === undefined) nums[base + r] = Number.NaN
          else if (f.type === 'boolean' && typeof v === 'boolean') nums[base + r] = v ? 1 : 0
          else if (f.type === 'boolean' && ArrayBuffer.isView(c) && (v === 0 || v === 1)) nums[base + r] = v as number
          else if (typeof v === 'number' && f.type !== 'boolean' && (f.type === 'number' || Number.isInteger(v) || Number.isNaN(v))) nums[base + r] = v
          else {
            reject(r, name, `row ${r}: field '${name}' expects ${f.type === 'boolean' ? 'a boolean' : f.type === 'integer' ? 'an integer' : 'a number'}, got ${describeValue(v)}`)
            nums[base + r] = Number.NaN
          }
        }
      }
    })
    L.cats.forEach((f, j) => {
      const c = columns[f.name] as ArrayLike<unknown> | undefined
      const name = f.name
      const base = j * rows
      const dict = new Map<string, number>()
      if (c) {
        for (let r = 0; r < rows; r++) {
          const v = c[r]
          if (typeof v === 'string') {
            let code = dict.get(v)
            if (code === undefined) {
              dict.set(v, (code = dict.size))
              uniques.push(v)
            }
            codes[base + r] = code
          } else if (v !== null && v !== undefined) reject(r, name, `row ${r}: field '${name}' expects a category string, got ${describeValue(v)}`)
        }
      }
      counts[j] = dict.size
    })
    let base = 0
    for (const f of L.arrs) {
      const c = columns[f.name] as ArrayLike<unknown> | undefined
      const name = f.name
      const size = f.size ?? 1
      if (!c) arrs.fill(Number.NaN, base, base + rows * size)
      else if (ArrayBuffer.isView(c) && (c as ArrayLike<number>).length === rows * size) arrs.set(c as ArrayLike<number>, base)
      else {
        arrs.fill(Number.NaN, base, base + rows * size)
        for (let r = 0; r < rows; r++) {
          const v = c[r] as ArrayLike<unknown> | null | undefined
          if (v === null || v === undefined) continue
          if (typeof v !== 'object' || v.length !== size) {
            reject(r, name, `row ${r}: field '${name}' expects ${size} elements, got ${describeValue(v)}`)
            continue
          }
          for (let k = 0; k < size; k++) {
            const x = v[k]
            if (typeof x === 'number') arrs[base + r * size + k] = x
            else if (x !== null && x !== undefined) reject(r, name, `row ${r}: field '${name}' element ${k} expects a number, got ${describeValue(x)}`)
          }
        }
      }
      base += rows * size
    }
    return { flat: this.#flat(rows, rejected, data, uniques, texts, images), rows, rejected }
  }

  /** One Float64Array for the whole batch, with views for each group (see pipeline.rs). */
  #alloc(
    L: BatchLayout,
    rows: number,
    listValues = 0,
  ): { data: Float64Array; nums: Float64Array; codes: Float64Array; counts: Float64Array; arrs: Float64Array; lens: Float64Array; vals: Float64Array } {
    const nNum = L.nums.length * rows
    const nCat = L.cats.length * rows
    const nArr = L.arrWidth * rows
    const nLen = L.lists.length * rows
    const data = new Float64Array(nNum + nCat + L.cats.length + nArr + nLen + listValues)
    let at = 0
    const take = (n: number): Float64Array => data.subarray(at, (at += n))
    return { data, nums: take(nNum), codes: take(nCat), counts: take(L.cats.length), arrs: take(nArr), lens: take(nLen), vals: take(listValues) }
  }

  /** Reads list fields (arrays of numbers, or null) into the batch's tail. */
  #lists(L: BatchLayout, rows: number, get: (r: number, name: string) => unknown, reject: (r: number, f: string, m: string) => void): number[][][] {
    return L.lists.map((f) => {
      const out: number[][] = new Array(rows)
      for (let r = 0; r < rows; r++) {
        const v = get(r, f.name)
        if (v === undefined || v === null) {
          out[r] = []
          continue
        }
        if (!(Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)))) {
          reject(r, f.name, `row ${r}: field '${f.name}' expects a list of numbers, got ${describeValue(v)}`)
          out[r] = []
          continue
        }
        const a = Array.from(v as ArrayLike<unknown>)
        const bad = a.findIndex((x) => typeof x !== 'number' && x !== null)
        if (bad >= 0) {
          reject(r, f.name, `row ${r}: field '${f.name}' element ${bad} expects a number, got ${describeValue(a[bad])}`)
          out[r] = []
          continue
        }
        out[r] = a.map((x) => (x === null ? Number.NaN : (x as number)))
      }
      return out
    })
  }

  /** Text and image fields: validated per row, passed through as they are. */
  #media(L: BatchLayout, rows: number, get: (r: number, name: string) => unknown, reject: (r: number, f: string, m: string) => void): [unknown[][], unknown[][]] {
    const texts = L.texts.map((f) => {
      const out: (string | null)[] = new Array(rows)
      for (let r = 0; r < rows; r++) {
        const v = get(r, f.name)
        if (typeof v === 'string') out[r] = v
        else {
          if (v !== undefined && v !== null) reject(r, f.name, `row ${r}: field '${f.name}' expects a string, got ${describeValue(v)}`)
          out[r] = null
        }
      }
      return out
    })
    const images = L.images.map((f) => {
      const out: unknown[] = new Array(rows)
      for (let r = 0; r < rows; r++) {
        const v = get(r, f.name) as ImageSource | null | undefined
        if (v instanceof Uint8Array) out[r] = v
        else if (isPlainObject(v) && v.data instanceof Uint8Array) out[r] = [v.data, v.width, v.height, v.channels]
        else {
          if (v !== undefined && v !== null) reject(r, f.name, `row ${r}: field '${f.name}' expects image bytes (Uint8Array) or { data, width, height, channels }, got ${describeValue(v)}`)
          out[r] = null
        }
      }
      return out
    })
    return [texts, images]
  }

  #fillLists(lens: Float64Array, vals: Float64Array, lists: number[][][], rows: number): void {
    let at = 0
    lists.forEach((rowsOf, j) => {
      for (let r = 0; r < rows; r++) {
        lens[j * rows + r] = rowsOf[r].length
        vals.set(rowsOf[r], at)
        at += rowsOf[r].length
      }
    })
  }

  #flat(rows: number, rejected: Map<number, OxinferError>, data: Float64Array, uniques: string[], texts: unknown[][], images: unknown[][]): unknown[] {
    if (rejected.size === 0) return [rows, null, null, null, data, uniques, texts, images]
    const bad = new Int32Array(rejected.size)
    const fields: string[] = []
    const messages: string[] = []
    let i = 0
    for (const [r, e] of rejected) {
      bad[i++] = r
      fields.push(e.field ?? '')
      messages.push(e.message)
    }
    return [rows, bad, fields, messages, data, uniques, texts, images]
  }

  #errorsOf(named: Columns, rows: number, rejected: Map<number, OxinferError>): (OxinferError | null)[] {
    const errors: (OxinferError | null)[] = new Array(rows).fill(null)
    if (!named.has('error_row')) return errors
    const er = named.get('error_row')!.data as Int32Array
    const ef = named.get('error_field')!.data as string[]
    const ec = named.get('error_code')!.data as string[]
    const em = named.get('error_message')!.data as string[]
    for (let i = 0; i < er.length; i++) {
      const r = er[i]
      errors[r] = rejected.get(r) ?? new OxinferError(ec[i] as ErrorCode, em[i], { row: r, field: ef[i] || undefined })
    }
    return errors
  }

  #labelOf(i: number): string | null {
    if (i < 0) return null
    return this.#labels ? this.#labels[i] : String(i)
  }

  #columns(named: Columns, rows: number, rejected: Map<number, OxinferError>): PipelineColumns {
    const scores = named.get('scores')!
    const k = scores.dims[1]
    const out: PipelineColumns = { rows, k, scores: scores.data as Float32Array, errors: this.#errorsOf(named, rows, rejected) }
    const li = named.get('label')
    if (li) {
      const idx = li.data as Int32Array
      out.labelIndex = idx
      const lab: (string | null)[] = new Array(rows)
      for (let r = 0; r < rows; r++) lab[r] = this.#labelOf(idx[r])
      out.label = lab
    }
    const sc = named.get('score')
    if (sc) out.score = sc.data as Float32Array
    const ti = named.get('top_index')
    if (ti) {
      out.topIndex = ti.data as Int32Array
      out.topScore = named.get('top_score')!.data as Float32Array
      out.topK = ti.dims[1]
    }
    const ab = named.get('above')
    if (ab) out.above = ab.data as Uint8Array
    const bu = named.get('bucket')
    if (bu) {
      const names = (this.#spec.output.postprocess ?? []).find((p) => p.op === 'bucket') as { names: string[] }
      const b = bu.data as Int32Array
      out.bucket = Array.from(b, (i) => (i < 0 ? null : names.names[i]))
    }
    return out
  }

  #objects(named: Columns, rows: number, rejected: Map<number, OxinferError>): (PipelineResult | PipelineRowError)[] {
    const scores = named.get('scores')!
    const k = scores.dims[1]
    const sdata = scores.data as Float32Array
    const errors = this.#errorsOf(named, rows, rejected)
    const li = named.get('label')?.data as Int32Array | undefined
    const sc = named.get('score')?.data as Float32Array | undefined
    const ti = named.get('top_index')
    const ts = named.get('top_score')?.data as Float32Array | undefined
    const ab = named.get('above')?.data as Uint8Array | undefined
    const bu = named.get('bucket')?.data as Int32Array | undefined
    const bucketNames = bu ? ((this.#spec.output.postprocess ?? []).find((p) => p.op === 'bucket') as { names: string[] }).names : undefined
    const out: (PipelineResult | PipelineRowError)[] = new Array(rows)
    for (let r = 0; r < rows; r++) {
      const e = errors[r]
      if (e) {
        out[r] = { error: e }
        continue
      }
      const res: PipelineResult = { scores: sdata.subarray(r * k, (r + 1) * k) }
      if (li) {
        res.labelIndex = li[r]
        res.label = this.#labelOf(li[r])
      }
      if (sc) res.score = sc[r]
      if (ti && ts) {
        const tk = ti.dims[1]
        const idx = ti.data as Int32Array
        const top: { label: string; score: number }[] = []
        for (let j = 0; j < tk; j++) top.push({ label: this.#labelOf(idx[r * tk + j]) ?? '', score: ts[r * tk + j] })
        res.top = top
      }
      if (ab) {
        const labs: string[] = []
        for (let j = 0; j < k; j++) if (ab[r * k + j]) labs.push(this.#labelOf(j) ?? '')
        res.labels = labs
      }
      if (bu && bucketNames) res.bucket = bucketNames[bu[r]]
      if (k === 1) res.value = sdata[r]
      out[r] = res
    }
    return out
  }
}

// ---------------------------------------------------------------------------
// Text: tokenizers (Hugging Face `tokenizers`, from a tokenizer.json)

export interface EncodeOptions {
  /** Add the tokenizer's special tokens (BOS/EOS, [CLS]/[SEP], ...). Default true. */
  addSpecialTokens?: boolean
  /** Truncate to this many tokens, special tokens included. Default: no truncation. */
  maxLength?: number
  /** Which side of a pair loses tokens first. Default 'longest_first'. */
  truncation?: 'longest_first' | 'only_first' | 'only_second'
  /** Overlap kept between overflowing windows. Default 0. */
  stride?: number
  /** false (default), 'longest' (the longest row of the batch) or 'max_length' (needs maxLength). */
  padding?: false | 'longest' | 'max_length'
  padToMultipleOf?: number
  /** Return token offsets, counted in 'utf16' code units (JS string indices), 'chars' or 'bytes'. Default false. */
  offsets?: false | 'utf16' | 'chars' | 'bytes'
  /** Return token type ids (segment ids of pairs). Default false. */
  typeIds?: boolean
  /** Element type of `ids`. Default 'int32'; 'int64' gives a BigInt64Array, as models want. */
  ids?: 'int32' | 'int64'
  /** Texts longer than this (in UTF-16 units) are input errors. Default 1,000,000. */
  maxChars?: number
}

export interface EncodeBatchOptions extends EncodeOptions {
  /** Second texts of pairs, one per text. */
  pairs?: readonly string[]
}

/** One encoded text. */
export interface Encoding {
  ids: Int32Array | BigInt64Array
  attentionMask: Uint8Array
  typeIds?: Uint8Array
  /** Two per token: start and end. */
  offsets?: Uint32Array
}

/** A batch of encodings as flat columns. */
export class BatchEncoding {
  readonly rows: number
  /** Tokens per row when padded; 0 when rows have their own lengths. */
  readonly seqLen: number
  readonly ids: Int32Array | BigInt64Array
  readonly attentionMask: Uint8Array
  readonly typeIds?: Uint8Array
  readonly offsets?: Uint32Array
  /** Row i spans tokens starts[i] .. starts[i + 1]. */
  readonly starts: Uint32Array

  /** @internal */
  constructor(p: unknown[]) {
    this.rows = p[0] as number
    this.seqLen = p[1] as number
    this.ids = p[2] as Int32Array | BigInt64Array
    this.attentionMask = p[3] as Uint8Array
    if (p[4]) this.typeIds = p[4] as Uint8Array
    if (p[5]) this.offsets = p[5] as Uint32Array
    this.starts = p[6] as Uint32Array
  }

  /** Views of row `i`. */
  row(i: number): Encoding {
    if (!Number.isInteger(i) || i < 0 || i >= this.rows) throw invalidArg(`row ${i} is out of range (0..${this.rows - 1})`)
    const a = this.starts[i]
    const b = this.starts[i + 1]
    const out: Encoding = { ids: this.ids.subarray(a, b), attentionMask: this.attentionMask.subarray(a, b) }
    if (this.typeIds) out.typeIds = this.typeIds.subarray(a, b)
    if (this.offsets) out.offsets = this.offsets.subarray(2 * a, 2 * b)
    return out
  }

  /** Padded batches as model inputs: input_ids, attention_mask (and token_type_ids), int64 [rows, seqLen]. */
  tensors(): Record<string, Tensor> {
    if (this.seqLen === 0 && this.rows > 0) throw invalidArg('tensors() needs a padded batch (padding: "longest" or "max_length")')
    const dims = [this.rows, this.seqLen]
    const big = (a: ArrayLike<number | bigint>): BigInt64Array => {
      const out = new BigInt64Array(a.length)
      for (let i = 0; i < a.length; i++) out[i] = BigInt(a[i])
      return out
    }
    const out: Record<string, Tensor> = {
      input_ids: new Tensor('int64', this.ids instanceof BigInt64Array ? this.ids : big(this.ids), dims),
      attention_mask: new Tensor('int64', big(this.attentionMask), dims),
    }
    if (this.typeIds) out.token_type_ids = new Tensor('int64', big(this.typeIds), dims)
    return out
  }
}

interface NativeTokenizer {
  readonly vocabSize: number
  encodeBatch(texts: string[], pairs: string[] | undefined, options: object): Promise<unknown[]>
  encodeSync(texts: string[], pairs: string[] | undefined, options: object): unknown[]
  decode(ids: number[], skipSpecialTokens: boolean): string
  tokenToId(token: string): number | null
  idToToken(id: number): string | null
}

const ENCODE_KEYS = ['addSpecialTokens', 'maxLength', 'truncation', 'stride', 'padding', 'padToMultipleOf', 'offsets', 'typeIds', 'ids', 'maxChars'] as const

function encodeOptions(o: Record<string, unknown>): { native: object; maxChars: number } {
  const int = (k: string, min: number): number | undefined => {
    const v = o[k]
    if (v === undefined) return undefined
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw invalidArg(`${k} must be an integer of at least ${min}`)
    return v
  }
  const pick = <T extends string>(k: string, allowed: readonly T[], fallback: T): T => {
    const v = o[k] ?? fallback
    if (!allowed.includes(v as T)) throw invalidArg(`${k} must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(v)}`)
    return v as T
  }
  const bool = (k: string, fallback: boolean): boolean => {
    const v = o[k] ?? fallback
    if (typeof v !== 'boolean') throw invalidArg(`${k} must be a boolean`)
    return v
  }
  const padding = o.padding === false || o.padding === undefined ? 'none' : pick('padding', ['longest', 'max_length'], 'longest')
  const offsets = o.offsets === false || o.offsets === undefined ? undefined : pick('offsets', ['utf16', 'chars', 'bytes'], 'utf16')
  const maxLength = int('maxLength', 1)
  if (padding === 'max_length' && maxLength === undefined) throw invalidArg("padding 'max_length' needs maxLength")
  return {
    native: {
      addSpecialTokens: bool('addSpecialTokens', true),
      maxLength,
      truncation: pick('truncation', ['longest_first', 'only_first', 'only_second'], 'longest_first'),
      stride: int('stride', 0) ?? 0,
      padding,
      padToMultipleOf: int('padToMultipleOf', 1),
      offsets,
      typeIds: bool('typeIds', false),
      ids: pick('ids', ['int32', 'int64'], 'int32'),
    },
    maxChars: int('maxChars', 1) ?? 1_000_000,
  }
}

function checkTexts(texts: unknown, field: string, maxChars: number): string[] {
  if (!Array.isArray(texts)) throw invalidArg(`${field} must be an array of strings`)
  for (let i = 0; i < texts.length; i++) {
    const t = texts[i]
    if (typeof t !== 'string') throw new OxinferError('ERR_INVALID_INPUT', `row ${i}: ${field} must be a string, got ${describeValue(t)}`, { row: i, field })
    if (t.length > maxChars) throw new OxinferError('ERR_INVALID_INPUT', `row ${i}: ${field} has ${t.length} characters, more than maxChars (${maxChars})`, { row: i, field })
  }
  return texts as string[]
}

/** A Hugging Face tokenizer (tokenizer.json), run natively, a batch encoded in parallel off the JS thread. */
export class Tokenizer {
  #native: NativeTokenizer

  private constructor(n: NativeTokenizer) {
    this.#native = n
  }

  /** Loads a tokenizer.json file. Rejects with ERR_MODEL_LOAD when it cannot be read or parsed. */
  static async fromFile(path: string): Promise<Tokenizer> {
    if (typeof path !== 'string' || path === '') throw invalidArg('Tokenizer.fromFile: path must be a non-empty string')
    try {
      return new Tokenizer(await native.loadTokenizer(resolvePath(path)))
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Loads a tokenizer from its JSON (text or bytes). */
  static async fromJSON(json: string | Uint8Array): Promise<Tokenizer> {
    const bytes = typeof json === 'string' ? new TextEncoder().encode(json) : json
    if (!(bytes instanceof Uint8Array)) throw invalidArg('Tokenizer.fromJSON: pass the JSON text or its bytes')
    try {
      return new Tokenizer(await native.loadTokenizer(bytes))
    } catch (e) {
      throw fromNative(e)
    }
  }

  get vocabSize(): number {
    return this.#native.vocabSize
  }

  tokenToId(token: string): number | undefined {
    return this.#native.tokenToId(token) ?? undefined
  }

  idToToken(id: number): string | undefined {
    return this.#native.idToToken(id) ?? undefined
  }

  /** Encodes one text (or a pair). */
  async encode(text: string, pair?: string, options: EncodeOptions = {}): Promise<Encoding> {
    const b = await this.encodeBatch([text], { ...options, ...(pair === undefined ? {} : { pairs: [pair] }) })
    return b.row(0)
  }

  /** Encodes a batch in parallel, off the JS thread. */
  async encodeBatch(texts: readonly string[], options: EncodeBatchOptions = {}): Promise<BatchEncoding> {
    if (!isPlainObject(options)) throw invalidArg('encodeBatch: options must be an object')
    checkKeys('encode', options, [...ENCODE_KEYS, 'pairs'])
    const { native: opts, maxChars } = encodeOptions(options as Record<string, unknown>)
    const list = checkTexts(texts, 'text', maxChars)
    let pairs: string[] | null = null
    if (options.pairs !== undefined) {
      pairs = checkTexts(options.pairs, 'pair', maxChars)
      if (pairs.length !== list.length) throw invalidArg(`encodeBatch: ${list.length} texts but ${pairs.length} pairs`)
    }
    try {
      return new BatchEncoding(await this.#native.encodeBatch(list, pairs ?? undefined, opts))
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Turns ids back into text. */
  decode(ids: ArrayLike<number | bigint>, options: { skipSpecialTokens?: boolean } = {}): string {
    const list = Array.from(ids, (x) => Number(x))
    if (list.some((x) => !Number.isInteger(x) || x < 0)) throw invalidArg('decode: ids must be non-negative integers')
    try {
      return this.#native.decode(list, options.skipSpecialTokens ?? false)
    } catch (e) {
      throw fromNative(e)
    }
  }
}

// ---------------------------------------------------------------------------
// Images

/** ImageNet's per-channel mean and std (on 0–1 values). */
export const IMAGENET = Object.freeze({ mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] })

export interface ImageOptions {
  /** Resize to an exact size, or the shorter side to a length (aspect kept, torchvision). Default: no resize. */
  resize?: { width: number; height: number } | { shorter: number }
  /** 'bilinear' (default; Pillow's, antialiased when downscaling) or 'nearest' (Pillow's). */
  filter?: 'bilinear' | 'nearest'
  /** Crop the centre (offsets rounded half to even, as torchvision). Default: no crop. */
  centerCrop?: { width: number; height: number }
  /** 'rgb' (default) or 'gray' (Pillow's convert('L')). */
  color?: 'rgb' | 'gray'
  /** Per-channel mean and std applied after `scale`, or 'imagenet'. Default: none. */
  normalize?: { mean: readonly number[]; std: readonly number[] } | 'imagenet'
  /** Multiplies pixel values before normalising. Default 1/255. */
  scale?: number
  /** 'chw' (default) or 'hwc'. */
  layout?: 'chw' | 'hwc'
  /** 'float32' (default) or 'uint8' (raw pixels; no scale or normalize). */
  output?: 'float32' | 'uint8'
  /** Images with more pixels are input errors. Default 100,000,000. */
  maxPixels?: number
}

/** Encoded PNG/JPEG bytes, or raw interleaved pixels. */
export type ImageSource = Uint8Array | { data: Uint8Array; width: number; height: number; channels: 1 | 3 | 4 }

const IMAGE_KEYS = ['resize', 'filter', 'centerCrop', 'color', 'normalize', 'scale', 'layout', 'output', 'maxPixels'] as const

/**
 * Decodes and transforms batches of images natively and in parallel, off the
 * JS thread, into a model-ready tensor ([n, C, H, W] by default).
 */
export class ImageProcessor {
  readonly options: Readonly<ImageOptions>
  #native: Record<string, unknown>

  constructor(options: ImageOptions = {}) {
    if (!isPlainObject(options)) throw invalidArg('ImageProcessor: options must be an object')
    checkKeys('image', options, IMAGE_KEYS)
    const o = options
    const posInt = (v: unknown, what: string): number => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) throw invalidArg(`${what} must be an integer from 1 to 65535`)
      return v
    }
    let resize = 'none'
    let width = 0
    let height = 0
    let shorter = 0
    if (o.resize !== undefined) {
      if (!isPlainObject(o.resize)) throw invalidArg('resize must be { width, height } or { shorter }')
      if ('shorter' in o.resize) {
        checkKeys('resize', o.resize, ['shorter'])
        resize = 'shorter'
        shorter = posInt(o.resize.shorter, 'resize.shorter')
      } else {
        checkKeys('resize', o.resize, ['width', 'height'])
        resize = 'exact'
        width = posInt((o.resize as { width: number }).width, 'resize.width')
        height = posInt((o.resize as { height: number }).height, 'resize.height')
      }
    }
    let cropWidth: number | undefined
    let cropHeight: number | undefined
    if (o.centerCrop !== undefined) {
      if (!isPlainObject(o.centerCrop)) throw invalidArg('centerCrop must be { width, height }')
      checkKeys('centerCrop', o.centerCrop, ['width', 'height'])
      cropWidth = posInt(o.centerCrop.width, 'centerCrop.width')
      cropHeight = posInt(o.centerCrop.height, 'centerCrop.height')
    }
    const pick = <T extends string>(v: unknown, allowed: readonly T[], fallback: T, what: string): T => {
      const x = v ?? fallback
      if (!allowed.includes(x as T)) throw invalidArg(`${what} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(x)}`)
      return x as T
    }
    const color = pick(o.color, ['rgb', 'gray'], 'rgb', 'color')
    const channels = color === 'gray' ? 1 : 3
    let mean: number[] | undefined
    let std: number[] | undefined
    if (o.normalize !== undefined) {
      const n = o.normalize === 'imagenet' ? IMAGENET : o.normalize
      if (!isPlainObject(n) || !Array.isArray(n.mean) || !Array.isArray(n.std)) throw invalidArg("normalize must be { mean, std } or 'imagenet'")
      if (n.mean.length !== channels || n.std.length !== channels || [...n.mean, ...n.std].some((x) => typeof x !== 'number' || !Number.isFinite(x)) || n.std.some((x) => x === 0)) {
        throw invalidArg(`normalize needs ${channels} finite means and ${channels} non-zero stds for color '${color}'`)
      }
      mean = [...n.mean]
      std = [...n.std]
    }
    const scale = o.scale ?? 1 / 255
    if (typeof scale !== 'number' || !Number.isFinite(scale)) throw invalidArg('scale must be a finite number')
    const maxPixels = o.maxPixels ?? 100_000_000
    if (typeof maxPixels !== 'number' || !Number.isInteger(maxPixels) || maxPixels < 1) throw invalidArg('maxPixels must be a positive integer')
    this.#native = {
      resize,
      width,
      height,
      shorter,
      filter: pick(o.filter, ['bilinear', 'nearest'], 'bilinear', 'filter'),
      cropWidth,
      cropHeight,
      color,
      mean,
      std,
      scale,
      layout: pick(o.layout, ['chw', 'hwc'], 'chw', 'layout'),
      uint8: pick(o.output, ['float32', 'uint8'], 'float32', 'output') === 'uint8',
      maxPixels,
    }
    this.options = Object.freeze({ ...options })
  }

  /** Processes a batch into one tensor. A bad image rejects with ERR_INVALID_INPUT naming its row. */
  async run(images: readonly ImageSource[], options: { field?: string } = {}): Promise<Tensor> {
    if (!Array.isArray(images)) throw invalidArg('ImageProcessor.run: pass an array of images')
    const field = options.field ?? 'image'
    const list: unknown[] = images.map((img, i) => {
      if (img instanceof Uint8Array) return img
      if (isPlainObject(img) && img.data instanceof Uint8Array) return [img.data, img.width, img.height, img.channels]
      throw new OxinferError('ERR_INVALID_INPUT', `row ${i}: expected encoded image bytes (Uint8Array) or { data, width, height, channels }, got ${describeValue(img)}`, { row: i, field })
    })
    // With a fixed output size the workers write straight into this array,
    // so a large batch is never copied on the JS thread.
    const o = this.#native
    const fixed = o.cropWidth !== undefined ? [o.cropWidth, o.cropHeight] : o.resize === 'exact' ? [o.width, o.height] : undefined
    const channels = o.color === 'gray' ? 1 : 3
    const out = fixed ? (o.uint8 ? new Uint8Array(list.length * channels * (fixed[0] as number) * (fixed[1] as number)) : new Float32Array(list.length * channels * (fixed[0] as number) * (fixed[1] as number))) : undefined
    let p: unknown[]
    try {
      p = await native.processImages(list, o, field, out)
    } catch (e) {
      throw fromNative(e)
    }
    const [n, c, h, w, made] = p as [number, number, number, number, Float32Array | Uint8Array | null]
    const data = made ?? out!
    const dims = this.#native.layout === 'chw' ? [n, c, h, w] : [n, h, w, c]
    return outputTensor(data instanceof Float32Array ? 'float32' : 'uint8', data, dims)
  }
}

/**
 * Fits Platt's calibration p = 1 / (1 + exp(a * score + b)) to scores and 0/1
 * labels (Platt's target smoothing, Newton with backtracking, as LIBSVM and
 * scikit-learn's sigmoid calibration). Put the result in a 'platt' post-processing op.
 */
export function fitPlatt(scores: ArrayLike<number>, labels: ArrayLike<number | boolean>): { a: number; b: number } {
  if (scores.length !== labels.length || scores.length === 0) throw invalidArg('fitPlatt: needs as many labels as scores, and at least one')
  const s = Float64Array.from(scores as ArrayLike<number>)
  if (s.some((x) => !Number.isFinite(x))) throw invalidArg('fitPlatt: scores must be finite numbers')
  const l = Uint8Array.from(labels as ArrayLike<number>, (x) => (x ? 1 : 0))
  try {
    const [a, b] = native.fitPlatt(s, l)
    return { a, b }
  } catch (e) {
    throw fromNative(e)
  }
}
