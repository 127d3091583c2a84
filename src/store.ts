// FeatureStore (issue #17): an online feature store shared by pipelines,
// graphs and served models, embedded (in-process, memory-bounded, LRU) or
// on Redis, chosen by configuration with the same results from each. The
// store, its reads, writes, ingestion and policies are native; this module
// checks argument shapes and turns JSON into typed results. Pipelines read
// it through a `lookup` stage naming the store.
import { fromNative, invalidArg, OxinferError } from './errors'
import { native, type NativeFeatureStore } from './native'
import { isPlainObject, showValue } from './options'

/** A feature's type. Booleans are stored as 0/1. */
export type FeatureType = 'number' | 'integer' | 'boolean' | 'category'

/** A feature view: an entity's typed features. */
export interface FeatureViewSpec {
  name: string
  /** The entity key's name (the id column when ingesting a file). */
  entity: string
  features: { name: string; type: FeatureType; default?: number | string | boolean | null }[]
  /** Values older than this are stale (a lookup's `stale` policy applies). Default 0: never. */
  ttlMs?: number
}

/** Where values live. */
export type FeatureStoreBackend =
  /** In this process, at most `maxBytes` (default 256 MiB), the least recently used entities evicted first. */
  | { kind: 'embedded'; maxBytes?: number }
  /**
   * A Redis server (one hash per entity, `<prefix><view>:<key>`, default
   * prefix 'oxinfer:'), through a pool of `poolSize` connections (default 8),
   * each round trip bounded by `timeoutMs` (default 100): a Redis that is
   * down or stalled fails within it with ERR_UNAVAILABLE, and the store
   * reconnects when it is back.
   */
  | { kind: 'redis'; url: string; prefix?: string; timeoutMs?: number; poolSize?: number }

/** Options of {@link FeatureStore.create}. */
export interface FeatureStoreOptions {
  /** The name `lookup` stages find it by. Default 'default'. */
  name?: string
  backend: FeatureStoreBackend
  views: FeatureViewSpec[]
}

/** An entity's stored features. */
export interface FeatureRow {
  /** By feature name; null where the entity has no value. */
  values: Record<string, number | string | null>
  /** When it was written (ms since the epoch), its age, and whether that is past the view's TTL. */
  writtenMs: number
  ageMs: number
  stale: boolean
}

/** What an ingestion did. */
export interface IngestSummary {
  rows: number
  skipped: number
  /** The first skipped row's error. */
  firstError?: string
  seconds: number
}

/** An ingestion's progress. */
export interface IngestProgress {
  rows: number
  bytesRead: number
  bytesTotal: number
}

/** A view's figures since the store opened. */
export interface FeatureViewStats {
  view: string
  /** Batch reads, and the keys they asked for. */
  lookups: number
  keys: number
  hits: number
  misses: number
  /** Hits past the view's TTL (counted in hits too). */
  stale: number
  /** Batch reads that failed (Redis down or slow). */
  failures: number
  meanLatencyUs: number
  maxLatencyUs: number
  writes: number
}

/** A store's figures. */
export interface FeatureStoreStats {
  name: string
  backend: 'embedded' | 'redis'
  /** Entities and approximate bytes held (embedded only). */
  entities?: number
  bytes?: number
  views: FeatureViewStats[]
}

type Values = Record<string, number | string | boolean | null>

const OPTION_KEYS = ['name', 'backend', 'views']

/** An open feature store. Any number of pipelines may read it at once. */
export class FeatureStore {
  readonly name: string
  #native: NativeFeatureStore
  #closed = false

  private constructor(n: NativeFeatureStore) {
    this.#native = n
    this.name = n.name
  }

  /**
   * Opens a store and registers it under its name, for `lookup` stages to
   * find (another open store of that name is refused). Redis is contacted
   * on first use, so a store opens while Redis is down.
   */
  static async create(options: FeatureStoreOptions): Promise<FeatureStore> {
    if (!isPlainObject(options)) throw invalidArg('FeatureStore.create: options must be an object')
    const unknown = Object.keys(options).filter((k) => !OPTION_KEYS.includes(k))
    if (unknown.length > 0) throw invalidArg(`FeatureStore.create: unknown option '${unknown[0]}' (options: ${OPTION_KEYS.join(', ')})`)
    try {
      return new FeatureStore(native.openFeatureStore(JSON.stringify(options)))
    } catch (e) {
      throw fromNative(e)
    }
  }

  #check(what: string, view: unknown): void {
    if (this.#closed) throw new OxinferError('ERR_DISPOSED', 'the feature store was closed')
    if (typeof view !== 'string' || view === '') throw invalidArg(`${what}: view must be a non-empty string, got ${showValue(view)}`)
  }

  /** Writes one entity's features (replacing what it held; features not given are stored missing). */
  async put(view: string, key: string, values: Values): Promise<void> {
    await this.putMany(view, [[key, values]])
  }

  /** Writes many entities in one round trip: `[key, values]` pairs. Every row is checked before any is written. */
  async putMany(view: string, rows: [string, Values][]): Promise<number> {
    this.#check('putMany', view)
    if (!Array.isArray(rows)) throw invalidArg('putMany: rows must be an array of [key, values] pairs')
    rows.forEach((r, i) => {
      if (!Array.isArray(r) || r.length !== 2 || typeof r[0] !== 'string' || !isPlainObject(r[1])) throw invalidArg(`putMany: rows[${i}] must be a [key (string), values (object)] pair, got ${showValue(r)}`)
    })
    try {
      return Number(await this.#native.putMany(view, JSON.stringify(rows)))
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** One entity's features, or null when the store holds none. */
  async get(view: string, key: string): Promise<FeatureRow | null> {
    return (await this.getMany(view, [key]))[0]
  }

  /** Many entities' features in one round trip, in the order asked (null where none). */
  async getMany(view: string, keys: string[]): Promise<(FeatureRow | null)[]> {
    this.#check('getMany', view)
    if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string')) throw invalidArg('getMany: keys must be an array of strings')
    try {
      return JSON.parse(await this.#native.getMany(view, keys)) as (FeatureRow | null)[]
    } catch (e) {
      throw fromNative(e)
    }
  }

  /**
   * Loads a CSV or JSONL file of `view`'s rows (its entity column and any
   * of its features; other columns are ignored), natively, a chunk of
   * `chunkRows` (default 4,096) per round trip. Rows that do not parse are
   * skipped and counted. `onProgress` is called every `intervalMs` (default
   * 200) while it runs, and once at the end.
   */
  async ingest(view: string, path: string, options: { chunkRows?: number; onProgress?: (p: IngestProgress) => void; intervalMs?: number } = {}): Promise<IngestSummary> {
    this.#check('ingest', view)
    if (typeof path !== 'string' || path === '') throw invalidArg('ingest: path must be a non-empty string')
    if (!isPlainObject(options)) throw invalidArg('ingest: options must be an object')
    const unknown = Object.keys(options).filter((k) => !['chunkRows', 'onProgress', 'intervalMs'].includes(k))
    if (unknown.length > 0) throw invalidArg(`ingest: unknown option '${unknown[0]}' (options: chunkRows, onProgress, intervalMs)`)
    if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw invalidArg('ingest: onProgress must be a function')
    const interval = options.intervalMs ?? 200
    if (!Number.isFinite(interval) || interval < 1) throw invalidArg(`ingest: intervalMs must be a number of ms, at least 1, got ${showValue(interval)}`)
    // Its range is the native reader's rule; here only its type.
    const chunk = options.chunkRows ?? 4096
    if (!Number.isInteger(chunk) || chunk < 0 || chunk > 0xffffffff) throw invalidArg(`ingest: chunkRows must be a positive integer, got ${showValue(chunk)}`)
    const progress = this.#native.progress()
    const report = (): void => {
      const [rows, bytesRead, bytesTotal] = progress.read()
      try {
        options.onProgress?.({ rows, bytesRead, bytesTotal })
      } catch {
        // A callback's failure is the caller's; the ingestion goes on.
      }
    }
    const timer = options.onProgress ? setInterval(report, interval) : undefined
    try {
      const summary = JSON.parse(await this.#native.ingest(view, path, chunk, progress)) as IngestSummary
      report()
      return summary
    } catch (e) {
      throw fromNative(e)
    } finally {
      if (timer) clearInterval(timer)
    }
  }

  /** Hits, misses, staleness, failures and latency per view. */
  stats(): FeatureStoreStats {
    return JSON.parse(this.#native.stats()) as FeatureStoreStats
  }

  /** Unregisters the name (pipelines compiled against the store keep reading it); later calls here refuse. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#native.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
