// Packs what is published, as a registry would receive it, into dist/: the
// main package and each platform package built here (`npm run build` first).
// The main package.json loses what only the repository needs (the `prepare`
// build, devDependencies) and gains `optionalDependencies` on the platform
// packages at its own version, as napi-rs packages publish, so that
// `npm install oxinfer` installs the one for the user's platform and no
// install script runs. Prints the tarball paths as JSON.
//
// Usage: node scripts/pack.mjs [outDir]. outDir (empty or new) defaults to
// dist/; tests pass a temp folder of their own, so that test files packing in
// parallel do not delete each other's tarballs.
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(root, 'package.json'))
const { PLATFORMS } = require('./src/platform.js')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const dist = process.argv[2] ? resolve(process.argv[2]) : join(root, 'dist')
const readJson = (p) => JSON.parse(readFileSync(p, 'utf8'))
// dist/ is emptied below; a folder named on the command line must already be.
if (process.argv[2] && existsSync(dist) && readdirSync(dist).length > 0) {
  console.error(`pack: ${dist} is not empty`)
  process.exit(1)
}

/** `npm pack` of `dir` into the output folder, without lifecycle scripts; the tarball's path. */
function pack(dir) {
  const out = execFileSync(npm, ['pack', '--ignore-scripts', '--silent', '--pack-destination', dist], { cwd: dir, encoding: 'utf8' })
  return join(dist, out.trim().split('\n').pop())
}

/** Copies `dir`'s packed files (as its `files` lists them) into `stage`, with `manifest` as package.json. */
function stage(dir, stageDir, manifest) {
  rmSync(stageDir, { recursive: true, force: true })
  const listing = JSON.parse(execFileSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts', '--silent'], { cwd: dir, encoding: 'utf8' }))
  for (const { path } of listing[0].files) {
    if (path === 'package.json') continue
    mkdirSync(dirname(join(stageDir, path)), { recursive: true })
    copyFileSync(join(dir, path), join(stageDir, path))
  }
  writeFileSync(join(stageDir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n')
}

rmSync(dist, { recursive: true, force: true })
mkdirSync(dist, { recursive: true })
const main = readJson(join(root, 'package.json'))
// The platform packages' folders: packages/ here; the release workflow's
// publish job downloads every platform's there too. Tests stage elsewhere.
const packagesDir = process.env.OXINFER_PACKAGES_DIR ? resolve(process.env.OXINFER_PACKAGES_DIR) : join(root, 'packages')
const tarballs = { platforms: {} }
const optional = {}
for (const p of Object.values(PLATFORMS)) {
  const dir = join(packagesDir, p.dir)
  if (!existsSync(join(dir, 'package.json'))) continue
  const manifest = { ...readJson(join(dir, 'package.json')), version: main.version }
  const missing = manifest.files.filter((f) => !existsSync(join(dir, f)))
  // A platform package is published only when it was built here.
  if (missing.length > 0) {
    console.error(`pack: ${p.package} not built here (missing ${missing.join(', ')}); left out`)
    continue
  }
  const stageDir = join(dist, 'stage', p.dir)
  stage(dir, stageDir, manifest)
  tarballs.platforms[p.package] = pack(stageDir)
  optional[p.package] = main.version
}
// What only this repository needs: its build, its dev tools and its
// install-script decisions about them.
const { scripts, devDependencies, allowScripts, ...published } = main
void scripts
void devDependencies
void allowScripts
// The main package's own files must all be here: binding.js and the compiled
// TypeScript are build outputs, and a publish job that skipped a build would
// otherwise ship a package that cannot load.
const absent = published.files.filter((f) => !f.includes('*') && !existsSync(join(root, f)))
if (absent.length > 0) {
  console.error(`pack: the main package lacks ${absent.join(', ')}: build it first (npm run build, or build:ts with binding.js present)`)
  process.exit(1)
}
const stageDir = join(dist, 'stage', 'oxinfer')
stage(root, stageDir, { ...published, optionalDependencies: { ...(main.optionalDependencies ?? {}), ...optional } })
tarballs.main = pack(stageDir)
rmSync(join(dist, 'stage'), { recursive: true, force: true })
console.log(JSON.stringify(tarballs))
