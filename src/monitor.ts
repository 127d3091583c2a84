// Drift monitoring's types (the spec's `monitor` section, reference
// profiles, reports and events) and the one listener table a pipeline keeps
// for its drift events. The statistics and the rule live in Rust
// (crates/oxinfer-core/src/monitor).
import * as hub from './hub'

/** One feature of a reference profile. */
export type ProfileFeature =
  | { name: string; role: 'input' | 'output'; type: 'number'; edges: number[]; counts: number[]; missing: number; sample: number[] }
  | { name: string; role: 'input' | 'output'; type: 'category'; counts: [string, number][]; missing: number }

/** A reference profile (`pipeline.profile`): what the features looked like when the model was validated. */
export interface Profile {
  version: 1
  rows: number
  features: ProfileFeature[]
}

/** The spec's `monitor` section. */
export interface MonitorSpec {
  /** The reference profile (`pipeline.profile`, `oxinfer profile`); without one, no drift checks run. */
  reference?: Profile
  /** Records compared with the reference: the most recent this many. Default 1,000. */
  window?: number
  /** A time window as well: values older than this many ms leave the window, however few remain. Default 0: by count only. */
  windowMs?: number
  /** Records between checks (and events); each check measures every feature off the request's path. Default 250. */
  checkEvery?: number
  /** The least time between checks, in ms, so that their cost stays bounded however fast records arrive. Default 100; 0: none. */
  minIntervalMs?: number
  /**
   * A feature drifts when a test is significant (p below `alpha`, default
   * 0.001: KS or the missing share for numbers, chi-square for categories)
   * and the shift is material (PSI ≥ `psi`, default 0.1, for numbers;
   * Jensen–Shannon ≥ `js` bits, default 0.05, for categories).
   */
  thresholds?: { alpha?: number; psi?: number; js?: number }
  /**
   * Outcomes fed back by prediction id (`pipeline.feedback(id, truth)`,
   * `POST /v2/models/{m}/feedback`): `idField` is a category field each
   * record carries its id in; `keep` predictions are kept (default 100,000;
   * the oldest go first); quality covers the last `window` outcomes
   * (default 1,000).
   */
  feedback?: { idField: string; keep?: number; window?: number }
  /**
   * The durable prediction log: a SQLite file (`path`, relative to the
   * spec's folder) of predictions and, joined by id, their outcomes.
   * `inputs`: 'values' (the record's fields as JSON), 'digest' (default: a
   * 64-bit hash of them) or 'none'; `sample`: the share logged (default 1).
   * Rows are written in one transaction every `flushMs` (default 1,000) or
   * `batchRows` (default 1,000), whichever comes first, so a crash (kill -9)
   * loses at most that batch; `maxRows` (default 1,000,000) newest are kept.
   */
  log?: { path: string; inputs?: 'values' | 'digest' | 'none'; sample?: number; flushMs?: number; batchRows?: number; maxRows?: number }
  /**
   * Business metrics over inputs and outputs (`label`, `score`), kept since
   * the pipeline compiled and over the last `window` rows: see
   * `pipeline.metrics()` and the server's `oxinfer_business_metric`.
   */
  metrics?: BusinessMetricSpec[]
}

/**
 * A business metric: `count` (rows selected), `rate` (rows selected over
 * rows seen), `mean` or `sum` (of the number field or `score` named by
 * `of`, over rows selected, missing values skipped). `where` selects rows
 * by one field (an input, `label` or `score`) with one comparison: `eq`,
 * `ne` or `in` (strings for categories, numbers for numbers), or a range
 * (`gt`/`gte` and `lt`/`lte`, numbers only). Missing values never pass.
 */
export interface BusinessMetricSpec {
  name: string
  kind: 'count' | 'rate' | 'mean' | 'sum'
  of?: string
  where?: { field: string; eq?: string | number; ne?: string | number; in?: (string | number)[]; gt?: number; gte?: number; lt?: number; lte?: number }
  help?: string
}

/** A business metric's figures: `total` since compiling and `window` over the last rows (null: nothing to average yet). */
export interface BusinessMetric {
  name: string
  kind: BusinessMetricSpec['kind']
  help?: string
  total: number | null
  window: number | null
  rows: number
  windowRows: number
}

/** Online quality over the feedback window: accuracy, macro precision/recall and one-vs-rest AUC for classifiers; MAE and RMSE for a single score. */
export interface Quality {
  /** Outcomes received. */
  feedback: number
  /** Outcomes the metrics cover. */
  window: number
  accuracy?: number
  precision?: number
  recall?: number
  auc?: number
  mae?: number
  rmse?: number
}

/** One feature's statistics over the current window. */
export interface FeatureDrift {
  name: string
  role: 'input' | 'output'
  /** Values in the window. */
  records: number
  psi?: number
  ks?: number
  ksP?: number
  missingP?: number
  chi2?: number
  chi2P?: number
  js?: number
  drifted: boolean
  /** The reference's and the window's counts per bin (absent for an empty window). */
  histogram?: DriftHistogram
}

/**
 * Counts per bin. A number's bins are split by the reference's deciles
 * `edges` (bin 0: below edges[0]; bin i: from edges[i-1] to below edges[i];
 * the last numeric bin: at or above the last edge); a category's bins are
 * its `categories`, the reference's first. The last bin counts missing values.
 */
export interface DriftHistogram {
  edges?: number[]
  categories?: string[]
  reference: number[]
  current: number[]
}

export interface DriftReport {
  /** Records observed since the pipeline was compiled. */
  records: number
  window: number
  checks: number
  features: FeatureDrift[]
  /** The drifted features' names. */
  drifted: string[]
}

/** A feature that started (`feature.drifted`) or stopped drifting, at the check that saw it. */
export interface DriftEvent {
  records: number
  feature: FeatureDrift
}

export type DriftListener = (event: DriftEvent) => void

/** @internal A pipeline's drift listeners, fed through one hub id. */
export class DriftListeners {
  #listeners = new Set<DriftListener>()
  #id = 0

  /** Adds `l`; returns whether the native side must start sending (the first listener). */
  add(l: DriftListener): boolean {
    this.#listeners.add(l)
    return this.#listeners.size === 1
  }

  /** Removes `l`; returns whether the native side may stop (no listener left). */
  remove(l: DriftListener): boolean {
    return this.#listeners.delete(l) && this.#listeners.size === 0
  }

  /** Forgets every listener and the hub id. */
  clear(): void {
    this.#listeners.clear()
    this.attach()
  }

  get size(): number {
    return this.#listeners.size
  }

  /** A fresh hub id whose events reach every listener (0 when there are none). */
  attach(): number {
    if (this.#id !== 0) hub.cancel(this.#id)
    this.#id = 0
    if (this.#listeners.size === 0) return 0
    const id = hub.nextId()
    const onEvent = (json: unknown): void => {
      if (this.#id !== id) return
      hub.register(id, onEvent)
      const event = JSON.parse(json as string) as DriftEvent
      for (const l of this.#listeners) {
        try {
          l(event)
        } catch (e) {
          // A listener's error must not stop the others or the hub.
          queueMicrotask(() => {
            throw e
          })
        }
      }
    }
    this.#id = id
    hub.register(id, onEvent)
    return id
  }
}
