// Copies the built addon and ONNX Runtime's library (from the onnxruntime-node
// devDependency) into this platform's package under packages/, so that users of
// the published package never run onnxruntime-node's NuGet postinstall.
import { copyFileSync, existsSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(root, 'package.json'))

// The one platform table (src/platform.ts), compiled by build:ts before this runs.
const { currentPlatform } = require('./src/platform.js')
const { platform } = currentPlatform()
const p = platform && { dir: platform.dir, ort: platform.ortDir, lib: platform.ortLibrary }
if (!p) {
  console.warn(`stage-platform: no platform package for ${process.platform}-${process.arch}; skipped`)
  process.exit(0)
}
const pkgDir = join(root, 'packages', p.dir)
if (!existsSync(join(pkgDir, 'package.json'))) {
  console.warn(`stage-platform: packages/${p.dir} does not exist yet; skipped`)
  process.exit(0)
}
const addon = readdirSync(root).find((f) => f.startsWith('oxinfer.') && f.endsWith('.node'))
if (!addon) throw new Error('stage-platform: build the addon first (npm run build:native)')
copyFileSync(join(root, addon), join(pkgDir, addon))

const ortDir = join(dirname(require.resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', p.ort)
copyFileSync(join(ortDir, p.lib), join(pkgDir, p.lib))
console.log(`stage-platform: packages/${p.dir} <- ${addon}, ${p.lib}`)
