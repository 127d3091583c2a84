// ESM entry of oxinfer/register: registers oxinfer with both copies of
// onnxruntime-common (see index.mjs).
import { registerBackend } from 'onnxruntime-common'

import * as mod from './index.js'

// Node hands a CommonJS module over as the default export; some loaders (vitest) as named ones.
const cjs = mod.oxinferBackend ? mod : mod.default

registerBackend('cpu', cjs.oxinferBackend, cjs.PRIORITY)
