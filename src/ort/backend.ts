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

import { invalidArg, OxinferError } from '../errors'
import { isPlainObject, showValue } from '../options'
import { Session } from '../session/session'
import type { SessionOptions, SessionStats } from '../session/options'

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
const SESSION_KEYS = new Set(['executionProviders', 'intraOpNumThreads', 'interOpNumThreads', 'graphOptimizationLevel', 'logSeverityLevel', 'logVerbosityLevel', 'logId', 'extra', 'executionMode', 'enableCpuMemArena', 'enableMemPattern'])

const refuse = (what: string, why: string): OxinferError => new OxinferError('ERR_UNSUPPORTED', `oxinfer/ort: ${what} ${why}`)

/** onnxruntime-common's SessionOptions as oxinfer's; throws on what does not map. */
export function sessionOptions(o: Common.InferenceSession.SessionOptions = {}): SessionOptions {
  const out: SessionOptions = {}
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue
    if (!SESSION_KEYS.has(k)) throw refuse(`session option '${k}'`, "has no equivalent in oxinfer (supported: executionProviders ['cpu'], intraOpNumThreads, interOpNumThreads, graphOptimizationLevel, executionMode, logSeverityLevel 2 to 4, extra { poolSize, batching })")
  }
  for (const ep of o.executionProviders ?? []) {
    const name = typeof ep === 'string' ? ep : ep?.name
    if (name !== 'cpu') throw refuse(`execution provider ${showValue(name)}`, "is not one oxinfer registers (only 'cpu'; its CUDA device is for TorchScript models)")
    if (typeof ep !== 'string' && Object.keys(ep).some((key) => key !== 'name')) throw refuse(`the cpu execution provider's options (${Object.keys(ep).filter((key) => key !== 'name').join(', ')})`, 'are not supported')
  }
  if (o.intraOpNumThreads !== undefined) {
    // ONNX Runtime's 0 means "its own default".
    if (o.intraOpNumThreads !== 0) out.intraOpThreads = o.intraOpNumThreads
  }
  if (o.interOpNumThreads !== undefined && o.interOpNumThreads !== 0) out.interOpThreads = o.interOpNumThreads
  if (o.graphOptimizationLevel !== undefined) {
    const level = GRAPH_LEVELS[o.graphOptimizationLevel]
    if (!level) throw refuse(`graphOptimizationLevel ${showValue(o.graphOptimizationLevel)}`, 'is not one oxinfer has (disabled, basic, extended, all)')
    out.graphOptimization = level
  }
  if (o.executionMode !== undefined && o.executionMode !== 'sequential') throw refuse(`executionMode ${showValue(o.executionMode)}`, "is not supported: oxinfer runs a session's nodes sequentially and parallelises across requests (extra.poolSize)")
  // Arena and memory pattern are ONNX Runtime's allocation defaults, which oxinfer keeps; turning them off is refused.
  if (o.enableCpuMemArena === false) throw refuse('enableCpuMemArena: false', 'is not supported')
  if (o.enableMemPattern === false) throw refuse('enableMemPattern: false', 'is not supported')
  // ONNX Runtime's log level is the process's in oxinfer (configure({ logLevel })): a session cannot have its own.
  // Asking for warnings or less (2 to 4, what libraries such as transformers.js pass) is accepted, and the
  // process's level applies; asking for more detail than that (0, 1) cannot be given, so it is refused.
  if (o.logSeverityLevel !== undefined && o.logSeverityLevel < DEFAULT_SEVERITY) throw refuse(`logSeverityLevel ${o.logSeverityLevel}`, "is per process in oxinfer: use configure({ logLevel }) (2 to 4 are accepted here, and the process's level applies)")
  if (o.logVerbosityLevel !== undefined && o.logVerbosityLevel !== 0) throw refuse(`logVerbosityLevel ${o.logVerbosityLevel}`, 'is not supported (only 0)')
  const extra = o.extra as Record<string, unknown> | undefined
  if (extra !== undefined) {
    if (!isPlainObject(extra)) throw invalidArg(`oxinfer/ort: extra must be an object, got ${showValue(extra)}`)
    for (const [k, v] of Object.entries(extra)) {
      if (k === 'poolSize') out.poolSize = v as number
      else if (k === 'batching') out.batching = v as SessionOptions['batching']
      else throw refuse(`extra option '${k}'`, 'is not one oxinfer reads (poolSize, batching); ONNX Runtime config entries are not passed through')
    }
  }
  return out
}

const RUN_KEYS = new Set(['terminate', 'tag', 'logSeverityLevel', 'logVerbosityLevel', 'extra'])

/** A session handler over an oxinfer Session. */
class OxinferSessionHandler implements SessionHandler {
  readonly inputNames: readonly string[]
  readonly outputNames: readonly string[]
  readonly inputMetadata: readonly Common.InferenceSession.ValueMetadata[]
  readonly outputMetadata: readonly Common.InferenceSession.ValueMetadata[]

  constructor(private readonly session: Session) {
    const meta = (infos: Session['inputs']): Common.InferenceSession.ValueMetadata[] =>
      infos.map((i) =>
        i.type === 'sequence' || i.type === 'map' || i.type === 'optional'
          ? { name: i.name, isTensor: false }
          : ({ name: i.name, isTensor: true, type: i.type as Common.Tensor.Type, shape: i.dims.map((d) => (d === -1 ? '' : d)) } as Common.InferenceSession.ValueMetadata),
      )
    this.inputNames = session.inputs.map((i) => i.name)
    this.outputNames = session.outputs.map((o) => o.name)
    this.inputMetadata = meta(session.inputs)
    this.outputMetadata = meta(session.outputs)
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
    if (options?.logSeverityLevel !== undefined && options.logSeverityLevel < DEFAULT_SEVERITY) throw refuse(`run option logSeverityLevel ${options.logSeverityLevel}`, 'is per process in oxinfer: use configure({ logLevel })')
    if (options?.logVerbosityLevel !== undefined && options.logVerbosityLevel !== 0) throw refuse(`run option logVerbosityLevel ${options.logVerbosityLevel}`, 'is not supported (only 0)')
    if (options?.extra !== undefined && Object.keys(options.extra).length > 0) throw refuse('run option extra', 'is not supported')
    const tag = options?.tag ? ` (run '${options.tag}')` : ''
    // ONNX Runtime's terminate flag ends a run as soon as it can: set at the call, the run does not start.
    if (options?.terminate) throw new OxinferError('ERR_ABORTED', `the run was terminated (runOptions.terminate)${tag}`)
    const names = Object.keys(fetches)
    const result = await this.session.run(feeds as Record<string, Common.Tensor>, { outputs: names })
    const out: Results = {}
    for (const name of names) {
      const got = result[name]
      const into = fetches[name] as Common.Tensor | null
      if (into) {
        // A pre-allocated output (fetches): filled in place, as onnxruntime-node does.
        if (into.type !== got.type || into.dims.length !== got.dims.length || into.dims.some((d, i) => d !== got.dims[i])) {
          throw invalidArg(`output '${name}' is ${got.type} [${got.dims.join(', ')}], but the tensor given for it is ${into.type} [${into.dims.join(', ')}]${tag}`)
        }
        const dst = into.data as unknown as { set?: (src: ArrayLike<unknown>) => void } & unknown[]
        if (typeof dst.set === 'function') dst.set(got.data as ArrayLike<unknown>)
        else (got.data as unknown[]).forEach((v, i) => (dst[i] = v))
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
    return new OxinferSessionHandler(session)
  }
}

export const oxinferBackend = new OxinferBackend()

/** Priority above onnxruntime-node's (100), so that `cpu` resolves to oxinfer when both are loaded. */
export const PRIORITY = 200

/**
 * Whether onnxruntime-node has registered its backend already. onnxruntime-
 * common keeps the first backend registered under a name (a later, higher
 * priority only reorders its fallback list), so oxinfer must come first.
 * onnxruntime-node is CommonJS, so even an ESM import of it is in require's cache.
 */
export function onnxruntimeNodeLoaded(): boolean {
  return Object.keys(require.cache).some((k) => /[\\/]onnxruntime-node[\\/]dist[\\/]index\.js$/.test(k))
}

let registered = false
/** Registers oxinfer for `cpu` with onnxruntime-common's CommonJS copy (idempotent). */
export function register(): void {
  if (registered) return
  if (onnxruntimeNodeLoaded()) {
    throw new OxinferError('ERR_UNSUPPORTED', "oxinfer/register (or oxinfer/ort) was loaded after onnxruntime-node, whose backend onnxruntime-common keeps for 'cpu': import oxinfer/register first, before onnxruntime-node or anything that loads it")
  }
  onnxruntimeCommon().registerBackend('cpu', oxinferBackend, PRIORITY)
  registered = true
}

/** What onnxruntime-node's listSupportedBackends says, for oxinfer. */
export function listSupportedBackends(): { name: string; bundled: boolean }[] {
  return [{ name: 'cpu', bundled: true }]
}
