// Installs the packed tarballs (scripts/pack.mjs's JSON: { main, platforms })
// into <stage>/app as the image's /app: a production install with no install
// scripts, the platform package for this machine taken from its tarball
// rather than the registry, and the container's health check beside it.
//
// Usage: node deploy/image/stage.mjs <tarballs.json> <stage>
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const [listing, stageArg] = process.argv.slice(2)
if (!listing || !stageArg) {
  console.error('usage: node deploy/image/stage.mjs <tarballs.json> <stage>')
  process.exit(2)
}
const text = readFileSync(listing, 'utf8').trim().split('\n').pop()
const { main, platforms } = JSON.parse(text)
const app = join(resolve(stageArg), 'app')
rmSync(app, { recursive: true, force: true })
mkdirSync(join(app, 'tarballs'), { recursive: true })
const local = (tgz) => {
  copyFileSync(tgz, join(app, 'tarballs', basename(tgz)))
  return `file:tarballs/${basename(tgz)}`
}
// The platform packages are optionalDependencies of the main package at its
// version; overrides point them at the tarballs built here.
const overrides = Object.fromEntries(Object.entries(platforms).map(([name, tgz]) => [name, local(tgz)]))
const manifest = { name: 'oxinfer-image', private: true, dependencies: { oxinfer: local(main) }, overrides }
writeFileSync(join(app, 'package.json'), JSON.stringify(manifest, null, 2) + '\n')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
execFileSync(npm, ['install', '--omit=dev', '--omit=peer', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app, stdio: ['ignore', 'inherit', 'inherit'] })
rmSync(join(app, 'tarballs'), { recursive: true, force: true })
copyFileSync(join(here, 'healthcheck.mjs'), join(app, 'healthcheck.mjs'))
console.log(JSON.stringify({ app }))
