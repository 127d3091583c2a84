// ESM entry of oxinfer/ort. onnxruntime-common ships a CommonJS and an ESM
// copy, each with its own backend registry: this entry registers oxinfer with
// both (the CommonJS entry only reaches the CommonJS copy), so that ESM
// callers (transformers.js) and CommonJS ones find it.
import { registerBackend } from 'onnxruntime-common'

import * as mod from './index.js'

// Node hands a CommonJS module over as the default export; some loaders (vitest) as named ones.
const cjs = mod.oxinferBackend ? mod : mod.default

for (const name of cjs.PROVIDERS) registerBackend(name, cjs.oxinferBackend, cjs.PRIORITY)

export * from 'onnxruntime-common'
export const { listSupportedBackends, oxinferBackend, PRIORITY, PROVIDERS } = cjs
