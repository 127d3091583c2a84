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
import { existsSync } from 'node:fs'
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
  | 'ERR_UNSUPPORTED'
  | 'ERR_ABORTED'
  | 'ERR_DISPOSED'
  | 'ERR_BACKEND'

const CODES: ReadonlySet<string> = new Set([
  'ERR_INVALID_ARGUMENT',
  'ERR_INVALID_INPUT',
  'ERR_MODEL_LOAD',
  'ERR_UNSUPPORTED',
  'ERR_ABORTED',
  'ERR_DISPOSED',
  'ERR_BACKEND',
])

export interface OxinferErrorOptions {
  /** The model input the error is about. */
  input?: string
  cause?: unknown
}

/** Every error oxinfer raises or rejects with. One class for ESM and CJS. */
export class OxinferError extends Error {
  readonly code: ErrorCode
  /** The model input the error is about, where one applies. */
  readonly input?: string

  constructor(code: ErrorCode, message: string, options: OxinferErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'OxinferError'
    this.code = code
    if (options.input !== undefined) this.input = options.input
  }
}

const SEP = '\u001f'

/** Turns an error from the addon (encoded `CODE␟input␟message`) into an OxinferError. */
function fromNative(e: unknown): OxinferError {
  if (e instanceof OxinferError) return e
  const msg = typeof e === 'string' ? e : e instanceof Error ? e.message : String(e)
  const parts = msg.split(SEP)
  if (parts.length >= 3 && CODES.has(parts[0])) {
    const input = parts[1] === '' ? undefined : parts[1]
    return new OxinferError(parts[0] as ErrorCode, parts.slice(2).join(SEP), { input })
  }
  return new OxinferError('ERR_BACKEND', msg, { cause: e })
}

function invalidArg(message: string): OxinferError {
  return new OxinferError('ERR_INVALID_ARGUMENT', message)
}

function checkKeys(what: string, options: object, allowed: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
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
  submit(id: number, feeds: unknown[], outputs?: string[] | null): void
  runSync(feeds: unknown[], outputs?: string[] | null): unknown[] | string
  abort(id: number): number
  dispose(id: number): boolean
}
interface NativeBinding {
  NativeHub: new (handler: (events: unknown[]) => void) => { ref(): void; unref(): void }
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
    },
    library: string,
  ): Promise<NativeSession>
  ortVersions(library: string): { oxinfer: string; onnxruntime: string; napi: string }
  ortLoadedPath(): string | null
  ortAlreadyMapped(): string | null
  ortSetLogLevel(level: string): void
}

// ---------------------------------------------------------------------------
// Completion delivery: one native wake-up settles a whole batch of runs.

type Settle = (payload: unknown) => void
const pending = new Map<number, Settle>()
let nextId = 1
let inFlight = 0

function onCompletions(events: unknown[]): void {
  for (let i = 0; i < events.length; i += 2) {
    const id = events[i] as number
    const settle = pending.get(id)
    if (settle === undefined) continue
    pending.delete(id)
    try {
      settle(events[i + 1])
    } catch {
      // A settle callback never throws by construction; guard the loop anyway.
    }
  }
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

/** Versions of oxinfer, the loaded ONNX Runtime and the addon. Loads the library if needed (synchronously). */
export function versions(): { oxinfer: string; onnxruntime: string; napi: string } {
  const lib = resolveLibrary()
  try {
    return native.ortVersions(lib)
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
   * turn. 0 turns inlining off. Default: 50.
   */
  inlineThresholdMicros?: number
  /** Let idle intra-op threads spin. Default: false (spinning steals cores from the JS thread). */
  intraOpSpinning?: boolean
}

/** Options of {@link Session.run}. */
export interface RunOptions {
  /** Output names to fetch. Default: every output. */
  outputs?: readonly string[]
  /** Aborts the run: a queued run is removed, a running one terminated. */
  signal?: AbortSignal
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
  #estimateMicros = Number.POSITIVE_INFINITY
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
    const inline = intOption(o, 'inlineThresholdMicros', 50, 0, 1000)
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
    if (typeof model === 'string' && model === '') throw new OxinferError('ERR_MODEL_LOAD', 'Session.create: the model path is empty')
    const lib = resolveLibrary()
    const source = typeof model === 'string' ? (isAbsolute(model) ? model : resolvePath(model)) : model
    let n: NativeSession
    try {
      n = await native.createSession(
        hub,
        source,
        { intraOpThreads, interOpThreads, graphOptimization: graphOptimization as string, device, poolSize, intraOpSpinning: spinning },
        lib,
      )
    } catch (e) {
      throw fromNative(e)
    }
    return new Session(n, inline)
  }

  /** Runs the model. Rejects (never throws) with an OxinferError. */
  run(feeds: Record<string, TensorLike>, options: RunOptions = {}): Promise<Record<string, Tensor>> {
    let flat: unknown[]
    let outputs: string[] | undefined
    let signal: AbortSignal | undefined
    try {
      if (!isPlainObject(options)) throw invalidArg('run: options must be an object')
      checkKeys('run', options, ['outputs', 'signal'])
      if (options.outputs !== undefined) {
        if (!Array.isArray(options.outputs) || options.outputs.some((x) => typeof x !== 'string')) {
          throw invalidArg('run: options.outputs must be an array of output names')
        }
        outputs = [...new Set(options.outputs)]
      }
      if (options.signal !== undefined) {
        if (!(options.signal instanceof AbortSignal)) throw invalidArg('run: options.signal must be an AbortSignal')
        signal = options.signal
      }
      flat = this.#flatten(feeds)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    if (this.#disposed) return Promise.reject(new OxinferError('ERR_DISPOSED', 'the session was disposed'))
    if (signal?.aborted) {
      return Promise.reject(new OxinferError('ERR_ABORTED', 'the run was aborted before it started', { cause: signal.reason }))
    }
    const names = outputs ?? this.#outputNames
    if (
      this.#active === 0 &&
      this.#estimateMicros < this.#threshold &&
      turnSpentMs + this.#estimateMicros / 1000 <= TURN_BUDGET_MS
    ) {
      return this.#runInline(flat, outputs, names)
    }
    return this.#runAsync(flat, outputs, names, signal)
  }

  #flatten(feeds: Record<string, TensorLike>): unknown[] {
    if (!isPlainObject(feeds)) throw invalidArg('run: feeds must be an object mapping input names to tensors')
    const flat: unknown[] = []
    for (const name of Object.keys(feeds)) {
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
    if (typeof payload === 'string') throw fromNative(payload)
    const p = payload as unknown[]
    const micros = p[0] as number
    this.#estimateMicros = this.#estimateMicros === Number.POSITIVE_INFINITY ? micros : 0.8 * this.#estimateMicros + 0.2 * micros
    const out: Record<string, Tensor> = {}
    for (let k = 0; k < names.length; k++) {
      const base = 1 + 3 * k
      out[names[k]] = outputTensor(TYPE_BY_CODE[p[base] as number], p[base + 1], p[base + 2] as number[])
    }
    return out
  }

  #runInline(flat: unknown[], outputs: string[] | undefined, names: readonly string[]): Promise<Record<string, Tensor>> {
    const t0 = performance.now()
    try {
      const payload = this.#native.runSync(flat, outputs ?? null)
      return Promise.resolve(this.#decode(payload, names))
    } catch (e) {
      return Promise.reject(fromNative(e))
    } finally {
      chargeTurn(performance.now() - t0)
    }
  }

  #runAsync(
    flat: unknown[],
    outputs: string[] | undefined,
    names: readonly string[],
    signal: AbortSignal | undefined,
  ): Promise<Record<string, Tensor>> {
    const id = nextId++
    return new Promise((resolve, reject) => {
      let abortRequested = false
      const onAbort = (): void => {
        abortRequested = true
        const state = this.#native.abort(id)
        if (state !== 2 && pending.delete(id)) {
          // Not executing (or already finished natively): settle now.
          finish()
          reject(new OxinferError('ERR_ABORTED', 'the run was aborted', { cause: signal?.reason }))
        }
      }
      const finish = (): void => {
        this.#active--
        track(-1)
        signal?.removeEventListener('abort', onAbort)
      }
      pending.set(id, (payload) => {
        finish()
        // `flat` stays referenced until here, keeping the input buffers alive.
        void flat
        if (abortRequested) {
          reject(new OxinferError('ERR_ABORTED', 'the run was aborted while executing', { cause: signal?.reason }))
          return
        }
        try {
          resolve(this.#decode(payload, names))
        } catch (e) {
          reject(e)
        }
      })
      try {
        this.#native.submit(id, flat, outputs ?? null)
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
      pending.get(id)?.(undefined)
      pending.delete(id)
    }
    return this.#disposing
  }

  [disposeSymbol](): Promise<void> {
    return this.dispose()
  }
}
