import { createRequire } from 'node:module'
import { ORT_LIB, MODELS, randomFloats, now } from './util.mjs'
const require = createRequire(import.meta.url)
const ox = require('../index.js')
const binding = require('../binding.js')
const hub = new binding.NativeHub(() => {})
const s = await binding.createSession(hub, MODELS.tinyMlp, { intraOpThreads: 1, interOpThreads: 1, graphOptimization: 'all', device: 'cpu', poolSize: 1, intraOpSpinning: false }, ORT_LIB)
const flat = ['x', 1, randomFloats(16, 1), [1, 16]]
const N = Number(process.env.N) || 2_000_000
for (let k = 0; k < 3; k++) { const t0 = now(); for (let i = 0; i < N / 3; i++) s.runSync(flat, null); console.log('µs/call', ((now() - t0) * 1000 / (N / 3)).toFixed(3)) }
