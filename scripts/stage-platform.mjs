// Copies the built addon and ONNX Runtime's library (from the onnxruntime-node
// devDependency) into this platform's package under packages/, so that users of
// the published package never run onnxruntime-node's NuGet postinstall.
import { copyFileSync, existsSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(root, 'package.json'))

const platforms = {
  'linux-x64': { dir: 'linux-x64-gnu', ort: 'linux/x64', lib: 'libonnxruntime.so.1' },
  'linux-arm64': { dir: 'linux-arm64-gnu', ort: 'linux/arm64', lib: 'libonnxruntime.so.1' },
  'darwin-arm64': { dir: 'darwin-arm64', ort: 'darwin/arm64', lib: 'libonnxruntime.1.30.0.dylib' },
  'win32-x64': { dir: 'win32-x64-msvc', ort: 'win32/x64', lib: 'onnxruntime.dll' },
}
const p = platforms[`${process.platform}-${process.arch}`]
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
