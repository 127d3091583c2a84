// Smoke test of a staged platform package (scripts/release-stage.sh): every
// file its package.json lists is there, and its addon, loaded from the
// staged folder with the staged ONNX Runtime library, scores the penguins
// pipeline as the committed records' labels say.
//
// Usage: node scripts/smoke-platform.mjs <staged package folder>
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dir = resolve(process.argv[2] ?? '')
const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
const missing = manifest.files.filter((f) => !existsSync(join(dir, f)))
if (missing.length) throw new Error(`smoke: ${manifest.name} lacks ${missing.join(', ')}`)
// The staged addon (napi-rs's loader takes an override path), ONNX Runtime from the package.
process.env.NAPI_RS_NATIVE_LIBRARY_PATH = join(dir, manifest.main)
const require = createRequire(join(root, 'package.json'))
const { configure, Pipeline, versions } = require('./index.js')
configure({ ortLibrary: join(dir, manifest.files[1]) })
const pipeline = await Pipeline.load(join(root, '__test__', 'fixtures', 'penguins', 'pipeline.json'))
const { records, species } = JSON.parse(readFileSync(join(root, '__test__', 'fixtures', 'penguins', 'records.json'), 'utf8'))
const rows = records.slice(0, 50)
const results = await pipeline.runBatch(rows)
const right = results.filter((r, i) => r.label === species[i]).length
await pipeline.dispose()
if (right < rows.length * 0.9) throw new Error(`smoke: ${right} of ${rows.length} penguins right`)
console.log(`smoke: ${manifest.name} ${manifest.version}: ${right}/${rows.length} penguins right, ONNX Runtime ${versions().onnxruntime}`)
