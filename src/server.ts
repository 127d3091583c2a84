// serve(): the native KServe v2 / Open Inference Protocol server over a model
// repository. Requests are decoded, batched, run and encoded in Rust on the
// server's own threads; this module only checks options, starts and closes
// the server, and hands out in-process Session/Pipeline objects that share
// the served models' queues (so their runs merge with HTTP requests).
import { isAbsolute, resolve as resolvePath } from 'node:path'

import { fromNative, invalidArg, OxinferError } from './errors'
import * as hub from './hub'
import { resolveLibrary } from './library'
import { torchForServer } from './torch'
import { type Logger, type LogLevel, setLogger } from './log'
import { type MergeableRegistry, mergeableRegistry } from './metrics'
import { native, type NativeHttpResponse, type NativeServer } from './native'
import { checkKeys, isPlainObject } from './options'
import { Pipeline } from './pipeline/pipeline'
import type { PipelineSpec } from './pipeline/spec'
import { Session } from './session/session'
import { flattenFeeds, Tensor, TYPE_BY_CODE, type TensorLike } from './tensor'

/** Options of {@link serve}. */
export interface ServeOptions {
  /** The model repository: one folder per model, numbered version folders inside. */
  repository: string
  /** Default '127.0.0.1'. Use '0.0.0.0' to accept connections from other hosts. */
  host?: string
  /** Default 8000; 0 picks a free port (see `address.port`). */
  port?: number
  /** Poll the repository for changed models: true (every 2 s) or an interval in ms. Default false. */
  poll?: boolean | number
  /** Require `Authorization: Bearer <token>` on every route but `/v2/health/*`. */
  token?: string
  /** Largest request body accepted, in bytes (413 past it). Default 64 MiB. */
  maxBodyBytes?: number
  /** Queue timeout of requests that set none, in ms (504 past it). Default: none. */
  timeoutMs?: number
  /** Threads of the HTTP runtime (decoding and encoding). Default 2. */
  threads?: number
  /** Models to load at start. Default: every model folder. Others load through the repository API. */
  load?: string[]
  /** Open a socket (default true). false: requests come only through the Fastify plugin (`oxinfer/fastify`). */
  listen?: boolean
  /**
   * How long `close()` waits for requests in flight before it drops them, in
   * ms. Default 30000 (Kubernetes' default grace period).
   */
  drainMs?: number
  /**
   * Where the native side logs (model loads and failures, server errors,
   * drain; at 'debug' an access line per request): a pino logger, or a
   * stream that takes pino JSON lines (process.stdout). Default: no logs.
   * Process-wide, as `setLogger` (the last one set wins).
   */
  logger?: Logger | false
  /** The logger's level. Default: a pino logger's own level, else 'info'. */
  logLevel?: LogLevel
  /**
   * Models written in JS, served through the same protocol: a handler gets
   * the request's tensors by name and returns (or resolves to) its outputs.
   * The slow path: each request crosses to the JS thread and back (see
   * benchmark/RESULTS.md). Declare `inputs`/`outputs` for the metadata (and
   * so that unknown names are refused).
   */
  models?: Record<string, JsModelHandler | JsModel>
}

/** A JS model's handler: the request's inputs in, its outputs (Tensors or tensor-likes) out. */
export type JsModelHandler = (inputs: Record<string, Tensor>, request: { outputs: string[] }) => Record<string, TensorLike> | Promise<Record<string, TensorLike>>

/** A JS model with its declared tensors (datatype as the protocol names it: FP32, INT64, BYTES...; -1 for any size). */
export interface JsModel {
  handler: JsModelHandler
  inputs?: { name: string; datatype: string; shape: number[] }[]
  outputs?: { name: string; datatype: string; shape: number[] }[]
}

/** A served model version. */
export interface ServedModel {
  name: string
  version: string
  /** 'onnxruntime_onnx' or 'oxinfer_pipeline'. */
  platform: string
  maxBatchSize: number
}

/** A running server (see {@link serve}). */
export interface Server {
  /** Where it listens (`url` is `http://host:port`); null when started with `listen: false`. */
  readonly address: { host: string; port: number; url: string } | null
  /** Models that failed to load at start, with the reason (the others serve). */
  readonly failures: readonly { model: string; reason: string }[]
  /** The ready model versions. */
  models(): ServedModel[]
  /**
   * A Session over a served model's own queue (the latest version unless
   * given): its runs merge into batches with HTTP requests. Disposing it
   * leaves the model served.
   */
  session(name: string, version?: string): Session
  /** The served pipeline `name` as an in-process Pipeline on the same queue. */
  pipeline(name: string, version?: string): Pipeline
  /** The statistics extension's view: `{ model_stats: [...] }`, as `GET /v2/models/stats` answers. */
  stats(): { model_stats: ModelStats[] }
  /** The Prometheus text exposition, as `GET /metrics` answers. */
  metrics(): string
  /**
   * The same metrics as a registry prom-client can merge with a service's
   * own: `Registry.merge([register, server.registry()])`. Each scrape reads
   * the figures afresh.
   */
  registry(): MergeableRegistry
  /** Stops accepting connections, lets accepted requests finish, then resolves. */
  close(): Promise<void>
}

/** One version's statistics (Triton's statistics extension, plus failures by code). */
export interface ModelStats {
  name: string
  version: string
  last_inference: number
  inference_count: number
  execution_count: number
  inference_stats: Record<'success' | 'fail' | 'queue' | 'compute_input' | 'compute_infer' | 'compute_output', { count: number; ns: number }>
  failures: Record<string, number>
  pending_request_count: number
  queue_size: number
}

const SERVE_KEYS = ['repository', 'host', 'port', 'poll', 'token', 'maxBodyBytes', 'timeoutMs', 'threads', 'load', 'listen', 'models', 'drainMs', 'logger', 'logLevel'] as const

/** Serves `name` with `model` on `n`: requests arrive through the hub, answers go back with replyJs. */
function addJsModel(n: NativeServer, name: string, model: JsModelHandler | JsModel): void {
  const spec: JsModel = typeof model === 'function' ? { handler: model } : model
  if (!isPlainObject(spec) || typeof spec.handler !== 'function') throw invalidArg(`serve: models.${name} must be a function or { handler, inputs?, outputs? }`)
  const id = hub.nextId()
  const onCall = (payload: unknown): void => {
    // A JS model's id keeps receiving requests: wait for the next one.
    hub.register(id, onCall)
    const p = payload as unknown[]
    const call = p[0] as number
    const fail = (e: unknown): void => n.replyJs(call, null, `model '${name}' failed: ${(e as Error)?.message ?? String(e)}`)
    const answer = (outputs: Record<string, TensorLike>): void => {
      let flat: unknown[]
      try {
        flat = flattenFeeds(`model '${name}'`, 'output', outputs)
      } catch (e) {
        n.replyJs(call, null, (e as Error).message)
        return
      }
      n.replyJs(call, flat, null)
    }
    try {
      // No prototype: an input may be named anything, '__proto__' included.
      const inputs = Object.create(null) as Record<string, Tensor>
      for (let i = 2; i + 3 < p.length; i += 4) inputs[p[i] as string] = new Tensor(TYPE_BY_CODE[p[i + 1] as number], p[i + 2] as never, p[i + 3] as number[])
      const r = spec.handler(inputs, { outputs: p[1] as string[] })
      if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<Record<string, TensorLike>>).then(answer, fail)
      else answer(r as Record<string, TensorLike>)
    } catch (e) {
      fail(e)
    }
  }
  hub.register(id, onCall)
  try {
    n.addJsModel(hub.nativeHub, name, id, spec.inputs ?? [], spec.outputs ?? [])
  } catch (e) {
    throw fromNative(e)
  }
}

function positiveInt(name: string, v: unknown, max: number): number | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw invalidArg(`serve: ${name} must be an integer from 1 to ${max}, got ${String(v)}`)
  return v
}

/**
 * Loads a model repository and serves it over HTTP with the KServe v2
 * protocol (plus Triton's configuration, statistics and repository
 * extensions, and Prometheus metrics at `/metrics`). Resolves once every
 * model has loaded (or failed: see `failures`) and the socket accepts.
 */
export async function serve(options: ServeOptions): Promise<Server> {
  if (!isPlainObject(options)) throw invalidArg('serve: options must be an object')
  checkKeys('serve', options, SERVE_KEYS)
  const o = options as ServeOptions
  if (typeof o.repository !== 'string' || o.repository === '') throw invalidArg('serve: repository must be a folder path')
  const host = o.host ?? '127.0.0.1'
  if (typeof host !== 'string' || host === '') throw invalidArg('serve: host must be a host name or address')
  const port = o.port ?? 8000
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) throw invalidArg(`serve: port must be an integer from 0 to 65535, got ${String(port)}`)
  let pollMs: number | undefined
  if (o.poll === true) pollMs = 2000
  else if (o.poll !== undefined && o.poll !== false) pollMs = positiveInt('poll', o.poll, 86_400_000)
  if (o.token !== undefined && (typeof o.token !== 'string' || o.token === '')) throw invalidArg('serve: token must be a non-empty string')
  if (o.load !== undefined && (!Array.isArray(o.load) || o.load.some((m) => typeof m !== 'string'))) throw invalidArg('serve: load must be an array of model names')
  if (o.listen !== undefined && typeof o.listen !== 'boolean') throw invalidArg('serve: listen must be a boolean')
  if (o.models !== undefined && !isPlainObject(o.models)) throw invalidArg('serve: models must be an object of JS models by name')
  if (o.timeoutMs !== undefined && (typeof o.timeoutMs !== 'number' || !(o.timeoutMs > 0))) throw invalidArg('serve: timeoutMs must be a positive number')
  if (o.drainMs !== undefined && (typeof o.drainMs !== 'number' || !(o.drainMs >= 0) || !Number.isFinite(o.drainMs))) throw invalidArg('serve: drainMs must be a number of ms, 0 or more')
  // Set before loading, so that the loads' own lines reach it.
  if (o.logger !== undefined && o.logger !== false) setLogger(o.logger, o.logLevel)
  else if (o.logLevel !== undefined) throw invalidArg('serve: logLevel needs a logger')
  const repository = isAbsolute(o.repository) ? o.repository : resolvePath(o.repository)
  let n: NativeServer
  try {
    n = await native.startServer({
      repository,
      host,
      port,
      library: resolveLibrary(),
      pollMs,
      token: o.token,
      maxBodyBytes: positiveInt('maxBodyBytes', o.maxBodyBytes, 2 ** 40),
      timeoutMs: o.timeoutMs,
      threads: positiveInt('threads', o.threads, 256),
      models: o.load,
      listen: o.listen,
      drainMs: o.drainMs,
      ...torchForServer(),
    })
  } catch (e) {
    throw fromNative(e)
  }
  try {
    for (const [name, model] of Object.entries(o.models ?? {})) addJsModel(n, name, model)
  } catch (e) {
    await n.close()
    throw e
  }
  return new RunningServer(n, repository)
}

/** @internal One HTTP exchange answered natively without a socket (the Fastify plugin's path). */
export function handleExchange(server: Server, method: string, url: string, headers: string[][], body: Buffer): Promise<NativeHttpResponse> {
  if (!(server instanceof RunningServer)) return Promise.reject(invalidArg('not a server made by serve()'))
  return server.handle(method, url, headers, body)
}

class RunningServer implements Server {
  readonly address: { host: string; port: number; url: string } | null
  readonly failures: readonly { model: string; reason: string }[]
  #native: NativeServer
  #repository: string
  #closed: Promise<void> | null = null
  /** Keeps the process alive while serving, as a listening http.Server does. */
  #alive: NodeJS.Timeout

  constructor(n: NativeServer, repository: string) {
    this.#native = n
    this.#alive = setInterval(() => {}, 1 << 30)
    this.#repository = repository
    const host = n.host
    const port = n.port
    this.address = host == null || port == null ? null : Object.freeze({ host, port, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` })
    this.failures = Object.freeze(n.failures.map((f) => Object.freeze({ ...f })))
  }

  #call<T>(f: () => T): T {
    if (this.#closed) throw new OxinferError('ERR_DISPOSED', 'the server was closed')
    try {
      return f()
    } catch (e) {
      throw fromNative(e)
    }
  }

  models(): ServedModel[] {
    return this.#call(() => this.#native.models().map(({ name, version, platform, maxBatchSize }) => ({ name, version, platform, maxBatchSize })))
  }

  #served(name: string, version: string | undefined) {
    if (typeof name !== 'string') throw invalidArg('the model name must be a string')
    if (version !== undefined && typeof version !== 'string') throw invalidArg('the version must be a string')
    const m = this.models().find((x) => x.name === name && (version === undefined || x.version === version))
    if (m === undefined) throw new OxinferError('ERR_INVALID_ARGUMENT', `no ready model '${name}'${version ? ` version ${version}` : ''} on this server`)
    return m
  }

  session(name: string, version?: string): Session {
    const m = this.#served(name, version)
    return this.#call(() => Session.overServed(this.#native.session(hub.nativeHub, name, version ?? null), m.maxBatchSize))
  }

  pipeline(name: string, version?: string): Pipeline {
    const m = this.#served(name, version)
    return this.#call(() => {
      const spec = this.#native.models().find((x) => x.name === name && x.version === m.version)?.spec
      const np = this.#native.pipeline(name, m.version)
      if (!spec || !np) throw new OxinferError('ERR_INVALID_ARGUMENT', `model '${name}' is not a pipeline (platform ${m.platform})`)
      const session = Session.overServed(this.#native.session(hub.nativeHub, name, m.version), m.maxBatchSize)
      return Pipeline.overServed(JSON.parse(spec) as PipelineSpec, session, np, resolvePath(this.#repository, name, m.version))
    })
  }

  stats(): { model_stats: ModelStats[] } {
    return this.#call(() => JSON.parse(this.#native.stats()) as { model_stats: ModelStats[] })
  }

  metrics(): string {
    return this.#call(() => this.#native.metrics())
  }

  registry(): MergeableRegistry {
    return this.#call(() =>
      mergeableRegistry(
        () => this.#call(() => this.#native.metricsJson()),
        () => this.#call(() => this.#native.metrics()),
      ),
    )
  }

  /** See handleExchange: answered natively, delivered through the hub. */
  handle(method: string, url: string, headers: string[][], body: Buffer): Promise<NativeHttpResponse> {
    if (this.#closed) return Promise.reject(new OxinferError('ERR_DISPOSED', 'the server was closed'))
    return new Promise((resolve, reject) => {
      const id = hub.nextId()
      const settle = (payload: unknown): void => {
        hub.track(-1)
        const [status, flat, body] = payload as [number, string[], Uint8Array]
        const headers: string[][] = []
        for (let i = 0; i + 1 < flat.length; i += 2) headers.push([flat[i], flat[i + 1]])
        resolve({ status, headers, body: Buffer.from(body.buffer, body.byteOffset, body.byteLength) })
      }
      hub.submit(id, settle, () => this.#native.handle(hub.nativeHub, id, method, url, headers, body), reject)
    })
  }

  close(): Promise<void> {
    this.#closed ??= this.#native.close().then(
      () => clearInterval(this.#alive),
      (e: unknown) => {
        clearInterval(this.#alive)
        throw fromNative(e)
      },
    )
    return this.#closed
  }
}
