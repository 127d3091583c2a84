// `oxinfer/ort`: onnxruntime-node's shape (InferenceSession, Tensor, env and
// the rest of onnxruntime-common) with oxinfer registered as the `cpu`
// backend, so that code written for onnxruntime-node runs on oxinfer when it
// imports this module instead (a bundler alias or a loader hook), or
// `import 'oxinfer/register'` first (see the README).
import { listSupportedBackends, onnxruntimeCommon, register } from './backend'

register(false)
const common = onnxruntimeCommon()
// As onnxruntime-node records its own version there.
if (!('oxinfer' in common.env.versions)) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  Object.defineProperty(common.env.versions, 'oxinfer', { value: (require('../../package.json') as { version: string }).version, enumerable: true })
}

export * from 'onnxruntime-common'
export { listSupportedBackends }
export { oxinferBackend, PRIORITY, PROVIDERS } from './backend'
