// ESM entry of oxinfer/register: registers oxinfer with both copies of
// onnxruntime-common (see index.mjs); the CommonJS part throws
// ERR_UNSUPPORTED when onnxruntime-node was loaded first.
import * as mod from './backend.js'
import './register.js'

const cjs = mod.oxinferBackend ? mod : mod.default
let common
try {
  common = await import('onnxruntime-common')
} catch (e) {
  throw Object.assign(new Error('oxinfer/register needs the onnxruntime-common package: npm install onnxruntime-common (the version onnxruntime-node pins, where both are used)', { cause: e }), { code: 'ERR_UNSUPPORTED' })
}
for (const name of cjs.PROVIDERS) common.registerBackend(name, cjs.oxinferBackend, cjs.PRIORITY)
