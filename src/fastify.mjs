// ESM entry of oxinfer/fastify: the plugin as the default export (Fastify
// registers `import oxinfer from 'oxinfer/fastify'` directly), from the one
// CommonJS build.
import * as cjs from './fastify.js'

export const oxinferPlugin = cjs.oxinferPlugin ?? cjs.default.oxinferPlugin
export default oxinferPlugin
