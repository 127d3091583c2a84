/**
 * oxinfer: ML inference for Node.js on a Rust core.
 *
 * This file is the public face: it only re-exports. The TypeScript layer
 * lives in `src/` (validation, promise bookkeeping, the inline rule, errors);
 * everything else (model loading, inference, scheduling) happens in the
 * native addon (`binding.js`, loaded by `src/native.ts`), on native threads.
 *
 * @packageDocumentation
 */

export { OxinferError } from './src/errors'
export type { ErrorCode, OxinferErrorOptions } from './src/errors'

export { Tensor } from './src/tensor'
export type { TensorConstructor, TensorDataMap, TensorInputMap, TensorLike, TensorType, TypedTensor } from './src/tensor'

export { activeJobs, configure, versions } from './src/library'
export type { ConfigureOptions } from './src/library'

export type { RunTiming } from './src/payload'

export { Session } from './src/session/session'
export type { BatchingOptions, DeclaredValue, ModelMetadata, RunOptions, SessionOptions, SessionStats, ValueInfo } from './src/session/options'

export { SessionStream } from './src/stream'
export type { StreamOptions, StreamRunOptions } from './src/stream'

export type { MapValue, NonTensorValue, OutputValue, SequenceValue } from './src/values'

export { BatchJob } from './src/job'
export type { JobOptions, JobProgress, JobSummary, SessionJobOptions } from './src/job'
export { mergeShards, parseShard } from './src/shards'
export type { MergeReport, MergeShardsOptions, ShardOption } from './src/shards'

export { FIELD_TYPES, POSTPROCESS_OPS, PREPROCESS_OPS } from './src/pipeline/spec'
export type { BusinessMetric, BusinessMetricSpec, DriftEvent, DriftHistogram, DriftListener, DriftReport, FeatureDrift, MonitorSpec, Profile, ProfileFeature, Quality } from './src/monitor'
export { renderReport } from './src/report'
export { FeatureStore } from './src/store'
export type { FeatureRow, FeatureStoreBackend, FeatureStoreOptions, FeatureStoreStats, FeatureType, FeatureViewSpec, FeatureViewStats, IngestProgress, IngestSummary } from './src/store'
export type { ReportInput } from './src/report'
export type {
  AggregateStage,
  BucketizeStage,
  ClipStage,
  FeatureAssembly,
  FieldSpec,
  FieldType,
  HashStage,
  ImageStage,
  ImputeStage,
  InteractionStage,
  LogStage,
  MinmaxScaleStage,
  OneHotStage,
  OrdinalStage,
  OutputSpec,
  LookupStage,
  PcaStage,
  PipelineBatchingOptions,
  PipelineBatchOptions,
  PipelineColumns,
  PipelineColumnsInput,
  PipelineOptions,
  PipelineResult,
  PipelineRowError,
  PipelineRunOptions,
  PipelineSpec,
  PostprocessStage,
  PreprocessStage,
  RobustScaleStage,
  StageTimings,
  StandardScaleStage,
  TokenizeStage,
} from './src/pipeline/spec'
export type { PipelineJobChunk, PipelineJobColumns, PipelineJobOptions } from './src/pipeline/jobs'
export { Pipeline } from './src/pipeline/pipeline'

export { BatchEncoding, Tokenizer } from './src/text'
export type { EncodeBatchOptions, EncodeOptions, Encoding, IdArrayMap, IdType } from './src/text'

export { IMAGENET, ImageProcessor } from './src/image'
export type { ImageOptions, ImageOutputType, ImageProcessorConstructor, ImageSource } from './src/image'

export { fitPlatt } from './src/calibration'

export { Graph } from './src/graph'
export type { FeedbackDecision, GraphOptions, GraphResult, GraphRunOptions, GraphSpec, GraphTiming, NodeTiming, SwitchStats, TrialDecision, TrialStats, TrialStatus } from './src/graph'

export { setLogger } from './src/log'
export type { LineSink, Logger, LogLevel, PinoLike } from './src/log'

export type { MergeableMetric, MergeableRegistry, MetricSample, MetricSnapshot } from './src/metrics'

export { serve } from './src/server'
export type { JsModel, JsModelHandler, ModelStats, ServedModel, ServeOptions, Server } from './src/server'
