// ESM entry: re-exports the one CommonJS build, so classes keep one identity
// whichever way oxinfer is loaded.
import cjs from './index.js'

export const { OxinferError, Tensor, Session, SessionStream, Pipeline, Graph, Tokenizer, BatchEncoding, ImageProcessor, IMAGENET, BatchJob, activeJobs, mergeShards, parseShard, fitPlatt, configure, versions, serve, setLogger, renderReport, FeatureStore, FIELD_TYPES, PREPROCESS_OPS, POSTPROCESS_OPS } = cjs
export default cjs
