// Stages a platform package: the addon, ONNX Runtime's library for that
// platform (from the onnxruntime-node devDependency, which carries every
// platform's) and its licence note, with a package.json made from the one
// platform table (src/platform.ts), so that users of the published package
// never run onnxruntime-node's NuGet postinstall.
//
//   node scripts/stage-platform.mjs
//       this machine's package, in packages/<dir>/, from the addon built here
//       (npm run build's last native step)
//   node scripts/stage-platform.mjs --platform <key> --addon <file> [--ort <file>] [--out <dir>]
//       any platform's package (key: linux-x64, linux-arm64, darwin-arm64,
//       win32-x64), from an addon built for it (the release workflow's
//       matrix jobs), into <dir> (default packages/<dir>/)
// Prints the staged folder.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(root, 'package.json'))
const { values } = parseArgs({ options: { platform: { type: 'string' }, addon: { type: 'string' }, ort: { type: 'string' }, out: { type: 'string' } } })

// The one platform table (src/platform.ts), compiled by build:ts before this runs.
const { PLATFORMS, currentPlatform } = require('./src/platform.js')
const explicit = values.platform !== undefined
const p = explicit ? PLATFORMS[values.platform] : currentPlatform().platform
if (!p) {
  if (explicit) throw new Error(`stage-platform: no platform '${values.platform}' (known: ${Object.keys(PLATFORMS).join(', ')})`)
  console.warn(`stage-platform: no platform package for ${process.platform}-${process.arch}; skipped`)
  process.exit(0)
}
const [os, cpu] = Object.entries(PLATFORMS).find(([, v]) => v === p)[0].split('-')
const addonName = `oxinfer.${p.dir}.node`
const addon = values.addon ? resolve(values.addon) : join(root, readdirSync(root).find((f) => f === addonName) ?? addonName)
if (!existsSync(addon)) throw new Error(`stage-platform: ${addon} does not exist: build the addon first (npm run build:native)`)
const ortPackage = dirname(require.resolve('onnxruntime-node/package.json'))
const ort = values.ort ? resolve(values.ort) : join(ortPackage, 'bin', 'napi-v6', p.ortDir, p.ortLibrary)
if (basename(ort) !== p.ortLibrary) throw new Error(`stage-platform: ${p.package} ships ONNX Runtime as ${p.ortLibrary}, not ${basename(ort)}`)
const out = values.out ? resolve(values.out) : join(root, 'packages', p.dir)
mkdirSync(out, { recursive: true })

const main = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const ortVersion = JSON.parse(readFileSync(join(ortPackage, 'package.json'), 'utf8')).version
const manifest = {
  name: p.package,
  version: main.version,
  description: `oxinfer's native addon and ONNX Runtime library for ${{ linux: 'Linux', darwin: 'macOS', win32: 'Windows' }[os]} ${cpu}${os === 'linux' ? ' (glibc)' : ''}.`,
  license: main.license,
  // npm publish --provenance checks it against the workflow's repository.
  repository: { ...main.repository, directory: `packages/${p.dir}` },
  os: [os],
  cpu: [cpu],
  ...(os === 'linux' ? { libc: ['glibc'] } : {}),
  main: addonName,
  files: [addonName, p.ortLibrary, 'ONNXRUNTIME-LICENSE'],
  engines: main.engines,
}
// onnxruntime-node ships no licence file: ONNX Runtime's MIT licence is kept
// once, in the committed note of the linux-x64 package.
const kept = readFileSync(join(root, 'packages', 'linux-x64-gnu', 'ONNXRUNTIME-LICENSE'), 'utf8')
const licence = kept.slice(kept.indexOf('Its licence:\n\n') + 'Its licence:\n\n'.length)
const note = `The file ${p.ortLibrary} in this package is ONNX Runtime, copied unchanged\nfrom the onnxruntime-node npm package (version ${ortVersion}). Its licence:\n\n${licence}`
if (resolve(addon) !== join(out, addonName)) copyFileSync(addon, join(out, addonName))
copyFileSync(ort, join(out, p.ortLibrary))
writeFileSync(join(out, 'ONNXRUNTIME-LICENSE'), note)
writeFileSync(join(out, 'package.json'), JSON.stringify(manifest, null, 2) + '\n')
console.log(`stage-platform: ${out} <- ${addonName}, ${p.ortLibrary}`)
