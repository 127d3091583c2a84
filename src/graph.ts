// Graphs of models and tensor ops (issue #14): a versioned JSON spec whose
// model keys are bound here to Sessions (given, or loaded from files beside
// the spec), then built, validated and run natively. One JS crossing per
// request: every hop between models, and every op, stays in Rust; model
// runs queue on the sessions' own schedulers, so concurrent graph requests
// are merged into batches at each model node.
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path'

import { fromNative, invalidArg, OxinferError } from './errors'
import * as hub from './hub'
import { native, type NativeGraph, type NativeValueInfo } from './native'
import { type BatchJob, feedsJob, type JobOptions, jobOptions } from './job'
import { checkKeys, isPlainObject } from './options'
import { unpack } from './payload'
import { Pipeline, pipelineNatives } from './pipeline/pipeline'
import { chargeTurn, withinTurnBudget } from './session/execute'
import { internalsOf } from './session/internal'
import type { SessionOptions, ValueInfo } from './session/options'
import { Session } from './session/session'
import { flattenFeeds, type Tensor, type TensorLike } from './tensor'
import { outputValue } from './values'

/** A graph spec (see schema/graph.schema.json); read natively, so only its outline is typed here. */
export interface GraphSpec {
  version: 1
  inputs: Record<string, { type: string; shape?: number[] }>
  nodes: Record<string, unknown>[]
  outputs: Record<string, string>
}

/** Options of {@link Graph.create}. */
export interface GraphOptions {
  /**
   * What the spec's model keys stand for: a Session or a Pipeline (shared:
   * its own runs and the graph's merge into batches, and disposing the graph
   * leaves it open), or a file path: an ONNX model, or a pipeline spec
   * (`.json`). Keys not given are read as file paths, relative to the spec
   * file (or `baseDir`). A pipeline node's inputs are its fields (one
   * element per row; strings for categories and text) and its outputs the
   * result columns (`scores`, `label`, `label_index`, ...).
   */
  models?: Record<string, Session | Pipeline | string>
  /** Options of the sessions the graph loads itself (threads, batching...). */
  session?: SessionOptions
  /** Where relative model paths (and files ops name, such as a `ctc_decode` vocabulary) start; default the spec file's folder, else the working directory. */
  baseDir?: string
}

/** Options of {@link Graph.run}. */
export interface GraphRunOptions {
  /** Model runs still queued after this many ms fail with ERR_TIMEOUT. */
  timeoutMs?: number
  /** Queue priority of every model run, 1 the most urgent. */
  priority?: number
  /** The variant of each switch node, by node name: a variant name or index. */
  variants?: Record<string, string | number>
  /** Aborting it stops nodes that have not started (ERR_ABORTED). */
  signal?: AbortSignal
  /** Called with where the request's time went, before the promise settles. */
  onTiming?: (t: GraphTiming) => void
  /**
   * The request's id (a transaction id, say). `feedback` switches keep what
   * their variants predicted under it until {@link Graph.feedback} brings
   * the outcome; requests without one are routed but never scored.
   */
  id?: string
}

/** One node's share of a graph request. */
export interface NodeTiming {
  /** The node's name ("outer/inner" inside a nested graph). */
  node: string
  /** false when its predicate was false or an input it needs was skipped. */
  ran: boolean
  /** From its start to its settling, µs (queue wait included). */
  wallUs: number
  queueUs: number
  /** The engine's own time (0 for ops). */
  engineUs: number
  /** Rows of the batch its model run was merged into. */
  batchRows: number
  /** Model runs made (a rank node may make several). */
  runs: number
  /** The variant a switch node chose. */
  variant?: number
}

/** Where a graph request's time went: compare `engineUs` with `wallUs` for the graph's own overhead. */
export interface GraphTiming {
  wallUs: number
  engineUs: number
  /** Outputs not produced because the nodes making them were skipped. */
  skipped: string[]
  nodes: NodeTiming[]
}

/** A switch node's decisions and its variants' latencies. */
export interface SwitchStats {
  node: string
  policy: string
  current: number
  decisions: number
  switches: number
  probes: number
  variants: { name: string; quality: number; chosen: number; runs: number; p50Us: number | null; p95Us: number | null; lastUs: number | null }[]
  events: { decision: number; from: number; to: number; measure: number }[]
  /** A `feedback` policy's champion/challenger trial (absent for other policies). */
  trial?: TrialStats
}

/** How a `feedback` trial stands: `promoted` (the challenger now takes every request), `retired` (it takes none), `undecided` (maxSamples reached). */
export type TrialStatus = 'running' | 'promoted' | 'retired' | 'undecided'

/** The figures a trial's decision rested on. */
export interface TrialDecision {
  status: TrialStatus
  /** When, in ms since the Unix epoch. */
  atMs: number
  /** Outcomes received by then. */
  feedback: number
  /** Outcomes scored and mean loss, per arm: [champion, challenger]. */
  samples: [number, number]
  loss: [number, number]
  /** Challenger's mean loss minus the champion's (negative: the challenger is better). */
  delta: number
  /** ln of the sequential test's likelihood ratio, and the ln(1/alpha) it had to reach. */
  logRatio: number
  threshold: number
}

/** A `feedback` switch's champion/challenger trial. */
export interface TrialStats {
  status: TrialStatus
  metric: 'accuracy' | 'mae' | 'mse'
  mode: 'split' | 'shadow'
  /** Variant indices. */
  champion: number
  challenger: number
  confidence: number
  /** Outcomes received (those after the decision included). */
  feedback: number
  /** Outcomes scored and mean loss (null before the first), per arm: [champion, challenger]. */
  samples: [number, number]
  loss: [number | null, number | null]
  /** The test's latest figure (null until both arms have minSamples outcomes). */
  logRatio: number | null
  threshold: number
  /** The mixing scale in use (null until fixed). */
  effect: number | null
  shadowRuns: number
  shadowFailures: number
  /** Predictions waiting for their outcome. */
  pending: number
  decision: TrialDecision | null
}

/** A decision an outcome made: the switch node ("outer/inner" when nested) and its figures. */
export interface FeedbackDecision extends TrialDecision {
  node: string
}

/**
 * A graph's outputs by name; a skipped output is null, as is an empty ONNX
 * optional (a model output typed 'optional' in `graph.outputs`), and a
 * sequence or map output is its JS value (see `OutputValue`).
 */
export type GraphResult = Record<string, Tensor | null>

const OPTION_KEYS = ['models', 'session', 'baseDir'] as const
/**
 * A graph measured under this many µs runs on the JS thread when it is idle
 * and the turn's inline budget allows (its short models run there too): the
 * hops to a worker and back would cost more than the graph.
 */
const INLINE_US = 300
const RUN_KEYS = ['timeoutMs', 'priority', 'variants', 'signal', 'onTiming', 'id'] as const

const info = (v: NativeValueInfo): ValueInfo => Object.freeze({ name: v.name, type: v.type, dims: Object.freeze(v.dims.slice()) })

/** A built graph. Any number of concurrent `run` calls is safe. */
export class Graph {
  readonly inputs: readonly ValueInfo[]
  readonly outputs: readonly ValueInfo[]
  /** The node names, in spec order. */
  readonly nodes: readonly string[]
  #native: NativeGraph
  /** Sessions and pipelines this graph loaded (and disposes). */
  #owned: (Session | Pipeline)[]
  #disposed = false
  #inFlight = 0
  /** A node waits on the network (a feature store lookup). */
  #io: boolean
  /** Running estimate of a request's wall time, µs (unknown at first). */
  #estimate = Number.POSITIVE_INFINITY

  private constructor(n: NativeGraph, owned: (Session | Pipeline)[]) {
    this.#native = n
    this.#owned = owned
    this.#io = n.waitsOnIo
    this.inputs = Object.freeze(n.inputs.map(info))
    this.outputs = Object.freeze(n.outputs.map(info))
    this.nodes = Object.freeze(n.nodes.slice())
  }

  /**
   * Builds a graph from a spec (an object, or the path of a JSON file whose
   * errors then give their line). Every check runs here, against the bound
   * models: a cycle, a dangling input, a type or shape mismatch on an edge
   * fail with ERR_INVALID_SPEC naming the nodes.
   */
  static async create(spec: GraphSpec | string, opts: GraphOptions = {}): Promise<Graph> {
    if (!isPlainObject(opts)) throw invalidArg('Graph.create: options must be an object')
    checkKeys('Graph.create', opts, OPTION_KEYS)
    const options = opts as GraphOptions
    let text: string
    let file: string | null = null
    if (typeof spec === 'string') {
      if (spec === '') throw invalidArg('Graph.create: the spec path must not be empty')
      file = resolvePath(spec)
      try {
        text = await native.readSpec(file)
      } catch (e) {
        throw fromNative(e)
      }
    } else if (isPlainObject(spec)) {
      text = JSON.stringify(spec)
    } else {
      throw invalidArg('Graph.create: spec must be a graph spec object or the path of a JSON file')
    }
    const given = options.models ?? {}
    if (!isPlainObject(given)) throw invalidArg('Graph.create: models must be an object of Sessions or model paths by key')
    const base = options.baseDir ?? (file ? dirname(file) : process.cwd())
    let keys: string[]
    try {
      keys = native.graphModelKeys(text, file)
    } catch (e) {
      throw fromNative(e)
    }
    for (const k of Object.keys(given)) if (!keys.includes(k)) throw invalidArg(`Graph.create: models.${k} is not named by the spec (it names ${keys.map((x) => `'${x}'`).join(', ') || 'no model'})`)
    const owned: (Session | Pipeline)[] = []
    try {
      const bound: [string, Session | Pipeline][] = []
      for (const key of keys) {
        const m = given[key] ?? key
        if (m instanceof Session || m instanceof Pipeline) bound.push([key, m])
        else if (typeof m === 'string' && m !== '') {
          const path = isAbsolute(m) ? m : resolvePath(base, m)
          const made = path.endsWith('.json') ? await Pipeline.load(path, { session: options.session }) : await Session.create(path, options.session)
          owned.push(made)
          bound.push([key, made])
        } else throw invalidArg(`Graph.create: models.${key} must be a Session, a Pipeline or a file path`)
      }
      const builder = new native.NativeGraphBuilder()
      for (const [key, m] of bound) {
        if (m instanceof Session) builder.bind(key, internalsOf(m).native)
        else {
          const { pipeline, session } = pipelineNatives(m)
          builder.bindPipeline(key, pipeline, internalsOf(session).native)
        }
      }
      const n = builder.build(hub.nativeHub, text, file, base)
      return new Graph(n, owned)
    } catch (e) {
      await Promise.allSettled(owned.map((s) => s.dispose()))
      throw e instanceof OxinferError ? e : fromNative(e)
    }
  }

  /** Runs one request: the graph's inputs by name in, its outputs by name out (null where skipped). */
  run(feeds: Record<string, TensorLike>, opts: GraphRunOptions = {}): Promise<GraphResult> {
    if (this.#disposed) return Promise.reject(new OxinferError('ERR_DISPOSED', 'the graph was disposed'))
    const options = opts as GraphRunOptions
    let flat: unknown[]
    try {
      if (!isPlainObject(opts)) throw invalidArg('graph.run: options must be an object')
      checkKeys('graph.run', opts, RUN_KEYS)
      if (options.variants !== undefined && !isPlainObject(options.variants)) throw invalidArg('graph.run: variants must be an object of variant names or indices by switch node')
      if (options.id !== undefined && (typeof options.id !== 'string' || options.id === '')) throw invalidArg('graph.run: id must be a non-empty string')
      flat = flattenFeeds('graph.run', 'input', feeds)
    } catch (e) {
      return Promise.reject(e)
    }
    const { signal, onTiming } = options
    if (signal?.aborted) return Promise.reject(new OxinferError('ERR_ABORTED', 'the run was aborted before it started', { cause: signal.reason }))
    // A graph that waits on the network (a lookup) never runs on the JS thread.
    const inline = !this.#io && this.#inFlight === 0 && this.#estimate <= INLINE_US && withinTurnBudget(this.#estimate)
    return new Promise<GraphResult>((resolve, reject) => {
      const id = hub.nextId()
      const onAbort = (): void => this.#native.abort(id)
      const settle = (payload: unknown): void => {
        hub.track(-1)
        this.#inFlight--
        signal?.removeEventListener('abort', onAbort)
        if (typeof payload === 'string') {
          reject(fromNative(payload))
          return
        }
        const [block, skipped, nodes] = payload as [unknown[], string[], (string | number)[][]]
        const wallUs = new Float64Array(block[1] as ArrayBuffer, 0, 1)[0]
        this.#estimate = this.#estimate === Number.POSITIVE_INFINITY ? wallUs : 0.8 * this.#estimate + 0.2 * wallUs
        const out: GraphResult = {}
        const produced = this.outputs.filter((o) => !skipped.includes(o.name))
        let k = 0
        try {
          unpack(block, (_id, type, data, dims) => {
            out[produced[k++].name] = outputValue(type, data, dims)
          })
        } catch (e) {
          // A result that cannot be decoded must still settle the call.
          reject(new OxinferError('ERR_BACKEND', `the graph's results could not be read: ${String(e)}`, { cause: e }))
          return
        }
        for (const name of skipped) out[name] = null
        if (onTiming) {
          const list: NodeTiming[] = nodes.map((r) => ({ node: r[0] as string, ran: r[1] === 1, wallUs: r[2] as number, queueUs: r[3] as number, engineUs: r[4] as number, batchRows: r[5] as number, runs: r[6] as number, ...((r[7] as number) >= 0 ? { variant: r[7] as number } : {}) }))
          try {
            onTiming({ wallUs, engineUs: list.filter((n) => !n.node.includes('/')).reduce((a, n) => a + n.engineUs, 0), skipped, nodes: list })
          } catch {
            // A callback's failure is the caller's; the result still arrives.
          }
        }
        resolve(out)
      }
      let now: unknown
      const started = inline ? performance.now() : 0
      const sent = hub.submit(id, settle, () => (now = this.#native.run(id, flat, options.timeoutMs, options.priority, options.variants, inline, options.id)), reject)
      if (!sent) return
      this.#inFlight++
      if (now !== undefined) {
        // Finished inline: settled here, not through the hub.
        hub.cancel(id)
        chargeTurn(performance.now() - started)
        settle(now)
        return
      }
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Runs each request of `list` concurrently (their model runs merge into batches); results in order. */
  runBatch(list: Record<string, TensorLike>[], options: Omit<GraphRunOptions, 'onTiming'> = {}): Promise<GraphResult[]> {
    if (!Array.isArray(list)) return Promise.reject(invalidArg('graph.runBatch: list must be an array of inputs'))
    return Promise.all(list.map((feeds) => this.run(feeds, options)))
  }

  /**
   * Runs the graph over a whole source of requests (an async or sync
   * iterable of inputs, each batched along axis 0 by the caller): up to
   * `concurrency` run at once, their model runs merging into batches; results
   * come out in input order, and a request is pulled only when there is
   * room, so memory stays bounded. Progress counts rows (the first input's
   * dims[0]).
   */
  runJob(source: AsyncIterable<Record<string, TensorLike>> | Iterable<Record<string, TensorLike>>, options: JobOptions = {}): BatchJob<GraphResult> {
    const o = jobOptions('graph runJob', options, [])
    if (typeof source === 'string') throw invalidArg('Graph.runJob: give an iterable of inputs (a graph has no record schema to read a file with)')
    if (this.#disposed) throw new OxinferError('ERR_DISPOSED', 'the graph was disposed')
    return feedsJob<Record<string, TensorLike>, GraphResult>(source, 'Graph.runJob', o, (feeds, signal) => this.run(feeds, { signal }))
  }

  /** Whether a switch has a `feedback` policy: give requests an `id` and their outcomes to {@link Graph.feedback}. */
  get takesFeedback(): boolean {
    return this.#native.takesFeedback
  }

  /**
   * The outcome of the request run with `id`: for each row it had, the true
   * class (an index, or a label the policy's `labels` name) or the true
   * value. Scores every `feedback` switch that kept a prediction for it and
   * returns the decisions this outcome made (usually none). An unknown id,
   * a second outcome or a wrong truth throws ERR_INVALID_ARGUMENT.
   */
  feedback(id: string, truth: string | number | (string | number)[]): FeedbackDecision[] {
    if (this.#disposed) throw new OxinferError('ERR_DISPOSED', 'the graph was disposed')
    if (typeof id !== 'string' || id === '') throw invalidArg('graph.feedback: id must be a non-empty string')
    const list = Array.isArray(truth) ? truth : [truth]
    if (list.length === 0 || list.some((t) => typeof t !== 'string' && typeof t !== 'number')) throw invalidArg('graph.feedback: truth must be a class label or index, a value, or an array of them (one per row)')
    try {
      const made = JSON.parse(this.#native.feedback(id, list)) as [string, TrialDecision][]
      return made.map(([node, d]) => ({ node, ...d }))
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Every switch node's decisions and per-variant latencies. */
  switchStats(): SwitchStats[] {
    if (this.#disposed) throw new OxinferError('ERR_DISPOSED', 'the graph was disposed')
    return JSON.parse(this.#native.switchStats()) as SwitchStats[]
  }

  /** Waits for nothing new: refuses further runs and disposes the sessions the graph loaded itself (given ones stay open). */
  async dispose(): Promise<void> {
    if (this.#disposed) return
    this.#disposed = true
    await Promise.all(this.#owned.map((s) => s.dispose()))
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose()
  }
}
