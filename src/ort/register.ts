// `oxinfer/register`: one import that makes onnxruntime-common's
// InferenceSession (onnxruntime-node's, transformers.js's) run `cpu` sessions
// on oxinfer, whichever backends were registered before.
import { register } from './backend'

register(true)
