// oxinfer as an onnxruntime-common backend: InferenceSession.create/run,
// written against onnxruntime-common (what onnxruntime-node and
// transformers.js use), run on oxinfer's Session, off the JS thread and
// through its batching. Options are mapped onto oxinfer's; what has no
// equivalent is refused with ERR_INVALID_ARGUMENT or ERR_UNSUPPORTED, not
// ignored. Results go back as plain { type, data, dims } (oxinfer's Tensor),
// which onnxruntime-common wraps in its own Tensor class: so the handler works
// with whichever copy of onnxruntime-common (CommonJS or ESM) the caller
// uses. onnxruntime-common is a peer dependency of `oxinfer/ort` only.
import type * as Common from 'onnxruntime-common'

import { availableParallelism } from 'node:os'
import { createRequire } from 'node:module'

import { invalidArg, OxinferError } from '../errors'
import { isPlainObject, showValue } from '../options'
import { Session } from '../session/session'
import type { SessionOptions, SessionStats } from '../session/options'
import { Tensor } from '../tensor'
import type { OutputValue } from '../values'

type CommonModule = typeof Common
type SessionHandler = Awaited<globalThis.ReturnType<Common.Backend['createInferenceSessionHandler']>>
type FeedsType = Parameters<SessionHandler['run']>[0]
type FetchesType = Parameters<SessionHandler['run']>[1]
type Results = Awaited<globalThis.ReturnType<SessionHandler['run']>>

let common: CommonModule | undefined
/** onnxruntime-common, loaded once (it keeps the backend registry: one copy must be shared). */
export function onnxruntimeCommon(): CommonModule {
  if (!common) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      common = require('onnxruntime-common') as CommonModule
    } catch (e) {
      throw new OxinferError('ERR_UNSUPPORTED', "oxinfer/ort needs the onnxruntime-common package: npm install onnxruntime-common", { cause: e })
    }
  }
  return common
}

const GRAPH_LEVELS: Record<string, SessionOptions['graphOptimization']> = { disabled: 'none', basic: 'basic', extended: 'extended', all: 'all' }
/** onnxruntime-common's severity levels, 0 (verbose) to 4 (fatal); ONNX Runtime's default is 2 (warning). */
const DEFAULT_SEVERITY = 2

/** Session options oxinfer maps, and what it does with each. */
const SESSION_KEYS = new Set(['executionProviders', 'intraOpNumThreads', 'interOpNumThreads', 'graphOptimizationLevel', 'logSeverityLevel', 'logVerbosityLevel', 'logId', 'extra', 'executionMode', 'enableCpuMemArena', 'enableMemPattern', 'enableProfiling'])
/** The execution-provider names oxinfer registers under. */
export const PROVIDERS = ['cpu', 'oxinfer']

const refuse = (what: string, why: string): OxinferError => new OxinferError('ERR_UNSUPPORTED', `oxinfer/ort: ${what} ${why}`)

let warnedLogLevel = false
/**
 * A log severity (0 verbose to 4 fatal) or verbosity as onnxruntime-node
 * checks them. ONNX Runtime's log level is the process's in oxinfer
 * (configure({ logLevel })): a session or run cannot have its own, so any
 * level is taken (refusing it would break libraries that pass it,
 * transformers.js among them), and one asking for more detail than the
 * default (0, 1) gets one process warning that it cannot be given.
 */
function logLevel(what: string, v: unknown, max: number): void {
  if (v === undefined) return
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw invalidArg(`oxinfer/ort: ${what} must be an integer from 0 to ${max}, got ${showValue(v)}`)
  if (what.endsWith('logSeverityLevel') && v < DEFAULT_SEVERITY && !warnedLogLevel) {
    warnedLogLevel = true
    process.emitWarning(`oxinfer/ort: ${what} ${v} cannot be given to one session: ONNX Runtime's log level is the process's in oxinfer (configure({ logLevel }))`, { code: 'OXINFER_ORT_LOG_LEVEL' })
  }
}

/** onnxruntime-common's SessionOptions as oxinfer's; throws on what does not map. */
export function sessionOptions(o: Common.InferenceSession.SessionOptions = {}): SessionOptions {
  const out: SessionOptions = {}
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue
    if (!SESSION_KEYS.has(k)) throw refuse(`session option '${k}'`, "has no equivalent in oxinfer (supported: executionProviders ['cpu' or 'oxinfer'], intraOpNumThreads, interOpNumThreads, graphOptimizationLevel, executionMode, logSeverityLevel, logId, extra { poolSize, batching, session.intra_op.allow_spinning })")
  }
  for (const ep of o.executionProviders ?? []) {
    const name = typeof ep === 'string' ? ep : ep?.name
    if (!PROVIDERS.includes(name)) throw refuse(`execution provider ${showValue(name)}`, "is not one oxinfer registers ('cpu', 'oxinfer'; its CUDA device is for TorchScript models)")
    if (typeof ep !== 'string' && Object.keys(ep).some((key) => key !== 'name')) throw refuse(`the ${name} execution provider's options (${Object.keys(ep).filter((key) => key !== 'name').join(', ')})`, 'are not supported')
  }
  // ONNX Runtime's 0 means "its own default".
  if (o.intraOpNumThreads !== undefined && o.intraOpNumThreads !== 0) out.intraOpThreads = o.intraOpNumThreads
  if (o.executionMode !== undefined && o.executionMode !== 'sequential' && o.executionMode !== 'parallel') throw invalidArg(`oxinfer/ort: executionMode must be 'sequential' or 'parallel', got ${showValue(o.executionMode)}`)
  // As in ONNX Runtime, inter-op threads only matter in parallel mode (its default there: the cores).
  if (o.executionMode === 'parallel') out.interOpThreads = o.interOpNumThreads || Math.max(2, availableParallelism())
  if (o.graphOptimizationLevel !== undefined) {
    const level = GRAPH_LEVELS[o.graphOptimizationLevel]
    if (!level) throw refuse(`graphOptimizationLevel ${showValue(o.graphOptimizationLevel)}`, 'is not one oxinfer has (disabled, basic, extended, all)')
    out.graphOptimization = level
  }
  // Arena and memory pattern are ONNX Runtime's allocation defaults, which oxinfer keeps; turning them off is refused.
  if (o.enableCpuMemArena === false) throw refuse('enableCpuMemArena: false', 'is not supported')
  if (o.enableMemPattern === false) throw refuse('enableMemPattern: false', 'is not supported')
  if (o.enableProfiling === true) throw refuse('enableProfiling: true', "is not supported (oxinfer's figures: session.handler.stats())")
  logLevel('logSeverityLevel', o.logSeverityLevel, 4)
  logLevel('logVerbosityLevel', o.logVerbosityLevel, Number.MAX_SAFE_INTEGER)
  if (o.logId !== undefined && typeof o.logId !== 'string') throw invalidArg(`oxinfer/ort: logId must be a string, got ${showValue(o.logId)}`)
  const extra = o.extra as Record<string, unknown> | undefined
  if (extra !== undefined) {
    if (!isPlainObject(extra)) throw invalidArg(`oxinfer/ort: extra must be an object, got ${showValue(extra)}`)
    const spinning = new Map<string, boolean>()
    for (const [k, v] of configEntries(extra)) {
      if (k === 'poolSize') out.poolSize = v as number
      else if (k === 'batching') out.batching = v as SessionOptions['batching']
      else if (SPINNING_KEYS.includes(k)) {
        if (v !== '0' && v !== '1') throw invalidArg(`oxinfer/ort: extra option '${k}' must be '0' or '1', got ${showValue(v)}`)
        spinning.set(k, v === '1')
      } else throw refuse(`extra option '${k}'`, `is not one oxinfer reads (poolSize, batching, ${SPINNING_KEYS.join(', ')}); other ONNX Runtime config entries are not passed through`)
    }
    // oxinfer sets one spinning flag for both pools.
    const [first, ...rest] = [...spinning.values()]
    if (rest.some((x) => x !== first)) throw refuse(`extra options ${SPINNING_KEYS.join(' and ')} with different values`, 'cannot be given: oxinfer spins both pools or neither')
    if (first !== undefined) out.intraOpSpinning = first
  }
  return out
}

/** ONNX Runtime's config entries for spinning, which map to oxinfer's intraOpSpinning (its default: off). */
const SPINNING_KEYS = ['session.intra_op.allow_spinning', 'session.inter_op.allow_spinning']

/**
 * `extra` as ONNX Runtime config entries: nested objects name dotted keys
 * (`{ session: { intra_op: { allow_spinning: '1' } } }` is
 * 'session.intra_op.allow_spinning', as onnxruntime-node flattens them);
 * oxinfer's own poolSize and batching stay whole.
 */
function* configEntries(o: Record<string, unknown>, prefix = '', depth = 0): Generator<[string, unknown]> {
  // ONNX Runtime's keys have a few parts; deeper nesting is a mistake (or a cycle).
  if (depth > 8) throw invalidArg(`oxinfer/ort: extra nests deeper than ONNX Runtime's config keys (at '${prefix}')`)
  for (const [k, v] of Object.entries(o)) {
    const key = prefix + k
    if (prefix === '' && (k === 'poolSize' || k === 'batching')) yield [k, v]
    else if (isPlainObject(v)) yield* configEntries(v as Record<string, unknown>, `${key}.`, depth + 1)
    else yield [key, v]
  }
}

const RUN_KEYS = new Set(['terminate', 'tag', 'logSeverityLevel', 'logVerbosityLevel', 'extra'])

/*
 * Results are handed back one per event-loop turn. oxinfer delivers a whole
 * batch's results in one callback, which is cheapest for callers whose
 * continuations are light; code written for onnxruntime-node (transformers.js
 * tokenising the next text, pooling the last) does milliseconds of JS per
 * result, and 32 of those back to back would hold the event loop for the
 * whole lot. Releasing one continuation per setImmediate turn lets timers and
 * I/O run between them, as onnxruntime-node's one-setImmediate-per-run does.
 */
const waiting: (() => void)[] = []
let pumping = false

function pump(): void {
  waiting.shift()?.()
  if (waiting.length > 0) setImmediate(pump)
  else pumping = false
}

/** Resolves on an event-loop turn of its own. */
function ownTurn(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve)
    if (!pumping) {
      pumping = true
      setImmediate(pump)
    }
  })
}

/** The refusal of an output onnxruntime-common cannot hold, `what` it is. */
function notTensor(name: string, what: string, tag: string): OxinferError {
  return new OxinferError('ERR_UNSUPPORTED', `oxinfer/ort: output '${name}' is ${what}, not a tensor, which onnxruntime-common cannot hold; ask for the tensor outputs by name, or use oxinfer's Session, which returns it as a JS value${tag}`)
}

/** ValueInfo types that are not tensors (sequences, maps, optionals). */
const NON_TENSOR_TYPES = new Set(['sequence', 'map', 'optional'])

/** A session handler over an oxinfer Session. */
class OxinferSessionHandler implements SessionHandler {
  readonly inputNames: readonly string[]
  readonly outputNames: readonly string[]
  readonly inputMetadata: readonly Common.InferenceSession.ValueMetadata[]
  readonly outputMetadata: readonly Common.InferenceSession.ValueMetadata[]
  /** The sequence and map outputs, by name: their type (refused before running; optionals are checked after). */
  readonly #nonTensor: Map<string, string>

  constructor(private readonly session: Session) {
    const meta = (infos: Session['inputs']): Common.InferenceSession.ValueMetadata[] =>
      infos.map((i) =>
        NON_TENSOR_TYPES.has(i.type)
          ? { name: i.name, isTensor: false }
          : ({ name: i.name, isTensor: true, type: i.type as Common.Tensor.Type, shape: i.dims.map((d) => (d === -1 ? '' : d)) } as Common.InferenceSession.ValueMetadata),
      )
    this.inputNames = session.inputs.map((i) => i.name)
    this.outputNames = session.outputs.map((o) => o.name)
    this.inputMetadata = meta(session.inputs)
    this.outputMetadata = meta(session.outputs)
    this.#nonTensor = new Map(session.outputs.filter((o) => o.type === 'sequence' || o.type === 'map').map((o) => [o.name, o.type]))
  }

  async dispose(): Promise<void> {
    await this.session.dispose()
  }

  /** oxinfer's own figures for this session (requests, executions, batch rows, latency): `session.handler.stats()`. */
  stats(): SessionStats {
    return this.session.stats()
  }

  // Profiling cannot be enabled (enableProfiling is refused): nothing to start or end.
  startProfiling(): void {}
  endProfiling(): void {}

  async run(feeds: FeedsType, fetches: FetchesType, options: Common.InferenceSession.RunOptions): Promise<Results> {
    for (const [k, v] of Object.entries(options ?? {})) {
      if (v !== undefined && !RUN_KEYS.has(k)) throw refuse(`run option '${k}'`, 'has no equivalent in oxinfer (supported: terminate, tag)')
    }
    logLevel('run option logSeverityLevel', options?.logSeverityLevel, 4)
    logLevel('run option logVerbosityLevel', options?.logVerbosityLevel, Number.MAX_SAFE_INTEGER)
    if (options?.extra !== undefined && Object.keys(options.extra).length > 0) throw refuse('run option extra', 'is not supported')
    const tag = options?.tag ? ` (run '${options.tag}')` : ''
    // ONNX Runtime's terminate flag ends a run as soon as it can: set at the call, the run does not start.
    if (options?.terminate) throw new OxinferError('ERR_ABORTED', `the run was terminated (runOptions.terminate)${tag}`)
    const names = Object.keys(fetches)
    // onnxruntime-common's values are tensors only. As in onnxruntime-node, a
    // sequence or map is refused, and an optional is returned when it holds
    // a tensor (refused when empty, below).
    const nonTensor = names.find((n) => this.#nonTensor.has(n))
    if (nonTensor !== undefined) throw notTensor(nonTensor, `a ${this.#nonTensor.get(nonTensor)}`, tag)
    let result: Record<string, OutputValue>
    try {
      // Only the model's inputs: onnxruntime-node ignores other keys.
      const own: Record<string, Common.Tensor> = {}
      for (const n of this.inputNames) if (n in feeds) own[n] = feeds[n] as Common.Tensor
      result = await this.session.run<Record<string, OutputValue>>(own, { outputs: names })
    } finally {
      await ownTurn()
    }
    const out: Results = {}
    for (const name of names) {
      const got = result[name]
      if (!(got instanceof Tensor)) throw notTensor(name, got === null ? 'an empty optional' : 'an optional holding a sequence or map', tag)
      const into = fetches[name] as Common.Tensor | null
      if (into) {
        // A pre-allocated output (fetches): filled in place, as onnxruntime-node does.
        if (into.type !== got.type || into.dims.length !== got.dims.length || into.dims.some((d, i) => d !== got.dims[i])) {
          throw invalidArg(`output '${name}' is ${got.type} [${got.dims.join(', ')}], but the tensor given for it is ${into.type} [${into.dims.join(', ')}]${tag}`)
        }
        const dst = into.data as unknown
        const src = got.data as unknown
        if (ArrayBuffer.isView(dst) && ArrayBuffer.isView(src) && dst.byteLength === src.byteLength) {
          // Bytes, not numbers: a float16 tensor may hold a Float16Array where oxinfer has Uint16Array bits.
          new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength))
        } else (src as unknown[]).forEach((v, i) => ((dst as unknown[])[i] = v))
        out[name] = into
      } else out[name] = got as unknown as Common.OnnxValue
    }
    return out
  }
}

/** The backend registered with onnxruntime-common. */
export class OxinferBackend implements Common.Backend {
  async init(): Promise<void> {}

  async createInferenceSessionHandler(uriOrBuffer: string | Uint8Array, options?: Common.InferenceSession.SessionOptions): Promise<SessionHandler> {
    const session = await Session.create(uriOrBuffer, sessionOptions(options))
    // onnxruntime-common has no bfloat16 tensors: refuse such a model now, as onnxruntime-node does, not at its first run.
    const bf16 = [...session.inputs, ...session.outputs].find((v) => v.type === 'bfloat16')
    if (bf16) {
      await session.dispose()
      throw new OxinferError('ERR_UNSUPPORTED', `oxinfer/ort: '${bf16.name}' is bfloat16, which onnxruntime-common tensors cannot hold; use oxinfer's Session directly`)
    }
    return new OxinferSessionHandler(session)
  }
}

export const oxinferBackend = new OxinferBackend()

/** Priority above onnxruntime-node's (100), so that `cpu` resolves to oxinfer when both are loaded. */
export const PRIORITY = 200

/**
 * Whether onnxruntime-node has registered its backend already. onnxruntime-
 * common keeps the first backend registered under a name (a later, higher
 * priority only reorders its fallback list), so oxinfer must come first for
 * `cpu`. onnxruntime-node is CommonJS, so even an ESM import of it is in
 * require's cache (a bundled copy is not: see README).
 */
export function onnxruntimeNodeLoaded(): boolean {
  return Object.keys(require.cache).some((k) => /[\\/]onnxruntime-node[\\/]dist[\\/]index\.js$/.test(k))
}

/**
 * The CommonJS copies of onnxruntime-common in reach: oxinfer's own, and the
 * one onnxruntime-node resolves (from here or from the application's folder),
 * which npm nests apart when its pinned version differs from the one installed.
 */
function commonCopies(): CommonModule[] {
  const copies = new Set<string>([require.resolve('onnxruntime-common')])
  for (const from of [__filename, `${process.cwd()}/`]) {
    try {
      const node = createRequire(from).resolve('onnxruntime-node')
      copies.add(createRequire(node).resolve('onnxruntime-common'))
    } catch {
      // no onnxruntime-node there
    }
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return [...copies].map((p) => require(p) as CommonModule)
}

let registered = false
/**
 * Registers oxinfer with the CommonJS copies of onnxruntime-common: as
 * `oxinfer`, which names it whatever was loaded first
 * (`executionProviders: ['oxinfer']`), and for `cpu` ahead of onnxruntime-
 * node. When onnxruntime-node came first, `cpu` stays its: `strict`
 * (oxinfer/register, whose purpose is `cpu`) then throws, otherwise
 * (oxinfer/ort) a process warning says so. Idempotent.
 */
export function register(strict: boolean): void {
  if (registered) return
  onnxruntimeCommon()
  const late = onnxruntimeNodeLoaded()
  for (const c of commonCopies()) for (const name of PROVIDERS) c.registerBackend(name, oxinferBackend, PRIORITY)
  registered = true
  if (!late) return
  const message = "oxinfer was loaded after onnxruntime-node, whose backend onnxruntime-common keeps for 'cpu': import oxinfer/register first, before onnxruntime-node or anything that loads it, or ask for executionProviders: ['oxinfer']"
  if (strict) throw new OxinferError('ERR_UNSUPPORTED', message)
  process.emitWarning(message, { code: 'OXINFER_ORT_LATE' })
}

/** What onnxruntime-node's listSupportedBackends says, for oxinfer. */
export function listSupportedBackends(): { name: string; bundled: boolean }[] {
  return [{ name: 'cpu', bundled: true }]
}
