// The pipeline vocabulary (spec version 1; the JSON Schema ships as
// schema/pipeline.schema.json): fields, pre- and post-processing stages,
// the spec itself, and the options and results of pipeline runs.
import type { OxinferError } from '../errors'
import type { MonitorSpec } from '../monitor'
import type { NameOf } from '../native'
import type { RunTiming } from '../payload'
import type { SessionOptions } from '../session/options'

/** Field types of a pipeline's input records. */
export const FIELD_TYPES = ['number', 'integer', 'boolean', 'category', 'array', 'list', 'text', 'image'] as const
/** Pre-processing ops. */
export const PREPROCESS_OPS = ['impute', 'clip', 'standard_scale', 'minmax_scale', 'robust_scale', 'one_hot', 'ordinal', 'log', 'bucketize', 'hash', 'interaction', 'aggregate', 'pca', 'tokenize', 'image', 'lookup'] as const
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
  padding?: Exclude<NameOf<'TextPadding'>, 'none'>
  /** Default true. */
  add_special_tokens?: boolean
}
/** Decodes and transforms an image field: tensor '<field>.pixels', float32 [batch, C, H, W] (or HWC). */
export interface ImageStage extends StageBase {
  op: 'image'
  field: string
  resize?: { width: number; height: number } | { shorter: number }
  filter?: NameOf<'ImageFilter'>
  center_crop?: { width: number; height: number }
  color?: NameOf<'ImageColor'>
  normalize?: { mean: number[]; std: number[] }
  layout?: NameOf<'ImageLayout'>
}
/**
 * An entity's features from an open feature store (`FeatureStore`), by the
 * key field: features `<prefix><feature>` (numbers, or categories) that
 * later stages read like any field, one round trip per batch. `missing`: a
 * key the store does not hold gets the features' defaults (`default`), NaN
 * (`nan`, for an impute stage after it) or fails its row (`error`); `stale`
 * (a value older than the view's TTL) also takes `use` (the default);
 * `on_error`: the store failing (Redis down or slow) fails the batch
 * (`error`, ERR_UNAVAILABLE) or gives every row the defaults (`default`).
 */
export interface LookupStage extends StageBase {
  op: 'lookup'
  /** The store's name. Default 'default'. */
  store?: string
  view: string
  /** The field holding each record's entity key (a category or integer field). */
  key: string
  /** The view's features to read. Default: all. */
  features?: string[]
  prefix?: string
  missing?: 'default' | 'nan' | 'error'
  stale?: 'use' | 'default' | 'nan' | 'error'
  on_error?: 'error' | 'default'
}

export type PreprocessStage =
  | LookupStage
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
  /** Drift monitoring against a reference profile (`pipeline.profile`); see `pipeline.drift()` and `pipeline.on('drift')`. */
  monitor?: MonitorSpec
}

export interface PipelineOptions {
  /** Where a relative `model` path is resolved. Default: the spec file's folder (load), or the working directory. */
  baseDir?: string
  /** Session options; override the spec's `session`. */
  session?: SessionOptions
  /**
   * Dynamic batching of pipeline runs (off by default): the session's
   * `batching`, for this pipeline. Queued runs are merged natively and sent
   * through the whole pipeline (pre-processing, the model, post-processing)
   * as one batch, and each caller gets its own rows, or its own error, as
   * without batching (scores up to float rounding). A batch is cut as soon as
   * one of the session's `poolSize` slots is free, so batches grow with load.
   * As these are the session's options, `maxQueue` and `timeoutMs` bound
   * every run of the pipeline (`runBatch` and job chunks too). Pipelines with
   * an image stage of no fixed output size run each request alone. Runs do
   * not go inline unless `session.inlineThresholdMicros` asks for it.
   */
  batching?: PipelineBatchingOptions
  /**
   * What to do with record keys (and columns, and the columns or JSON keys of
   * a job's input file) that the spec does not declare as fields. 'error'
   * (default): the record is refused with ERR_INVALID_INPUT naming the key
   * (and the field it may be a misspelling of), so a typo never yields a
   * confident prediction from an imputed value; a file job with such CSV
   * columns is refused at its start. 'ignore': such keys are skipped and
   * counted in `pipeline.ignoredFields`. `fit` always ignores them.
   */
  unknownFields?: 'error' | 'ignore'
}

/**
 * Dynamic batching of pipeline runs (see {@link PipelineOptions.batching}):
 * the session's native scheduler merges queued runs of this pipeline into one
 * batch of records, runs the stages, the model and post-processing once, and
 * splits the rows back, each caller keeping its own bad rows. These options
 * are the session's {@link BatchingOptions}, with a larger default batch.
 */
export interface PipelineBatchingOptions {
  /** Records per batch at most. Default 64. */
  maxBatchSize?: number
  /**
   * How long a batch that is not full may wait for more runs, from its first
   * run's arrival, in µs. 0 (default) cuts a batch as soon as a worker is free.
   */
  maxDelayMicros?: number
  /** Batch sizes to cut at when more records wait than fit (see {@link BatchingOptions.preferredBatchSizes}). */
  preferredBatchSizes?: readonly number[]
  /** Runs that may wait; more are refused at once with ERR_OVERLOADED. Default 0 (no limit). */
  maxQueue?: number
  /** Default bound on a run's time in the queue (a held batch included), in ms (ERR_TIMEOUT past it). Default 0 (none). */
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
