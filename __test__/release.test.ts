// Release packaging (issue #18): scripts/stage-platform.mjs lays out every
// platform package of the release workflow from an addon and the ONNX
// Runtime library that onnxruntime-node ships for that platform; pack.mjs
// turns the staged folders into the tarballs the publish job sends, the main
// package naming each platform package as an optional dependency; and the
// workflow's matrix, artefact names and steps agree with the platform table.
// Only linux-x64's addon can be built here: the other platforms' staging is
// checked with a stand-in addon file (their ONNX Runtime libraries are real).
import { execFileSync, spawnSync } from 'node:child_process'
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'

import { PLATFORMS } from '../src/platform'
import { root } from './helpers'
import { npm } from './install-helpers'

const require = createRequire(join(root, 'package.json'))
const ortBin = join(dirname(require.resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6')
const work = mkdtempSync(join(tmpdir(), 'oxinfer-release-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))
const mainManifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const version = mainManifest.version
const staged = join(work, 'staged')

function stage(key: string, addon: string, extra: string[] = []): { status: number | null; stderr: string } {
  const p = PLATFORMS[key]
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'stage-platform.mjs'), '--platform', key, '--addon', addon, '--out', join(staged, p.dir), ...extra], { encoding: 'utf8' })
  return { status: r.status, stderr: r.stderr }
}

describe('release packaging', () => {
  it("stages every platform's package layout, with that platform's ONNX Runtime library", () => {
    for (const [key, p] of Object.entries(PLATFORMS)) {
      // linux-x64: the addon built here; elsewhere a stand-in (no other Rust target can be installed).
      let addon = join(root, `oxinfer.${p.dir}.node`)
      if (key !== 'linux-x64') {
        addon = join(work, `oxinfer.${p.dir}.node`)
        writeFileSync(addon, `stand-in addon for ${key}`)
      }
      const r = stage(key, addon)
      expect(r.status, r.stderr).toBe(0)
      const dir = join(staged, p.dir)
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
      const [os, cpu] = key.split('-')
      expect(manifest).toMatchObject({ name: p.package, version, os: [os], cpu: [cpu], main: `oxinfer.${p.dir}.node`, files: [`oxinfer.${p.dir}.node`, p.ortLibrary, 'ONNXRUNTIME-LICENSE'] })
      expect(manifest.libc).toEqual(os === 'linux' ? ['glibc'] : undefined)
      // npm publish --provenance checks the repository against the workflow's.
      expect(manifest.repository).toEqual({ ...mainManifest.repository, directory: `packages/${p.dir}` })
      expect(readFileSync(join(dir, p.ortLibrary)).equals(readFileSync(join(ortBin, p.ortDir, p.ortLibrary))), `${key}: ONNX Runtime's own library`).toBe(true)
      expect(readFileSync(join(dir, 'ONNXRUNTIME-LICENSE'), 'utf8')).toMatch(new RegExp(`^The file ${p.ortLibrary.replace(/\./g, '\\.')} in this package is ONNX Runtime[\\s\\S]*MIT License`))
      // What npm would publish: exactly the listed files and the manifest.
      const listing = JSON.parse(execFileSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts', '--silent'], { cwd: dir, encoding: 'utf8' }))
      expect(listing[0].files.map((f: { path: string }) => f.path).sort()).toEqual([...manifest.files, 'package.json'].sort())
    }
    // The committed linux-x64 package is exactly what the script makes.
    const committed = readFileSync(join(root, 'packages', 'linux-x64-gnu', 'package.json'), 'utf8')
    expect(readFileSync(join(staged, 'linux-x64-gnu', 'package.json'), 'utf8')).toBe(committed)
  })

  it('refuses a library that is not the platform’s, and an unknown platform', () => {
    const addon = join(work, 'x.node')
    writeFileSync(addon, 'x')
    let r = stage('darwin-arm64', addon, ['--ort', join(ortBin, 'linux', 'x64', 'libonnxruntime.so.1')])
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/ships ONNX Runtime as libonnxruntime\.1\.30\.0\.dylib, not libonnxruntime\.so\.1/)
    r = spawnSync(process.execPath, [join(root, 'scripts', 'stage-platform.mjs'), '--platform', 'sunos-sparc', '--addon', addon], { encoding: 'utf8' })
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/no platform 'sunos-sparc' \(known: linux-x64, linux-arm64, darwin-arm64, win32-x64\)/)
  })

  it('packs the staged platforms as the publish job does: the main package names each as an optional dependency', () => {
    const dist = join(work, 'dist')
    const out = execFileSync(process.execPath, [join(root, 'scripts', 'pack.mjs'), dist], { cwd: root, encoding: 'utf8', env: { ...process.env, OXINFER_PACKAGES_DIR: staged } })
    const tarballs = JSON.parse(out.trim().split('\n').pop()!) as { main: string; platforms: Record<string, string> }
    expect(Object.keys(tarballs.platforms).sort()).toEqual(Object.values(PLATFORMS).map((p) => p.package).sort())
    const main = JSON.parse(execFileSync('tar', ['-xOzf', tarballs.main, 'package/package.json'], { encoding: 'utf8' }))
    expect(main.optionalDependencies).toEqual(Object.fromEntries(Object.values(PLATFORMS).map((p) => [p.package, version])))
    expect(main.scripts).toBeUndefined()
    expect(main.devDependencies).toBeUndefined()
    for (const p of Object.values(PLATFORMS)) {
      const files = execFileSync('tar', ['-tzf', tarballs.platforms[p.package]], { encoding: 'utf8' }).trim().split('\n').sort()
      expect(files).toEqual(['package/ONNXRUNTIME-LICENSE', `package/${p.ortLibrary}`, `package/oxinfer.${p.dir}.node`, 'package/package.json'].sort())
    }
  })

  it('the release workflow builds each platform of the table, reuses the CI build for linux-x64, and publishes what it staged', () => {
    const wf = parse(readFileSync(join(root, '.github', 'workflows', 'release.yml'), 'utf8'))
    const cross = wf.jobs.cross.strategy.matrix.include as { key: string; dir: string; target: string; runner: string }[]
    expect(['linux-x64', ...cross.map((m) => m.key)].sort()).toEqual(Object.keys(PLATFORMS).sort())
    const triples: Record<string, string> = { 'linux-arm64-gnu': 'aarch64-unknown-linux-gnu', 'darwin-arm64': 'aarch64-apple-darwin', 'win32-x64-msvc': 'x86_64-pc-windows-msvc' }
    for (const m of cross) {
      expect(m.dir).toBe(PLATFORMS[m.key].dir)
      expect(m.target).toBe(triples[m.dir])
    }
    const steps = (job: string): string[] => wf.jobs[job].steps.map((s: { run?: string; uses?: string }) => s.run ?? s.uses ?? '')
    const linux = steps('linux-x64').join('\n')
    // linux-x64: the CI run itself, then staging from that build (no second compile).
    expect(linux).toMatch(/\.ci\/run/)
    expect(linux).toMatch(/scripts\/release-stage\.sh linux-x64 staged\/linux-x64-gnu/)
    expect(linux).not.toMatch(/napi build|cargo build/)
    expect(steps('cross').join('\n')).toMatch(/napi build --platform --release --target \$\{\{ matrix\.target \}\}/)
    expect(steps('cross').join('\n')).toMatch(/scripts\/release-stage\.sh \$\{\{ matrix\.key \}\} staged\/\$\{\{ matrix\.dir \}\}/)
    // Artefacts are named by package folder, which is what pack.mjs reads under OXINFER_PACKAGES_DIR.
    const uploads = [...wf.jobs['linux-x64'].steps, ...wf.jobs.cross.steps].filter((s: { uses?: string }) => s.uses?.startsWith('actions/upload-artifact'))
    expect(uploads.map((s: { with: { name: string } }) => s.with.name).sort()).toEqual(['${{ matrix.dir }}', 'binding', 'linux-x64-gnu'])
    expect(wf.jobs.publish.needs).toEqual(['linux-x64', 'cross'])
    // The main package ships napi-rs's generated loader: built by the linux-x64 job, compiled against by publish.
    const binding = wf.jobs['linux-x64'].steps.find((s: { with?: { name?: string } }) => s.with?.name === 'binding')
    expect(binding.with.path).toMatch(/binding\.js[\s\S]*binding\.d\.ts/)
    const pub = steps('publish')
    const download = wf.jobs.publish.steps.findIndex((s: { with?: { name?: string } }) => s.with?.name === 'binding')
    expect(download).toBeGreaterThan(-1)
    expect(download).toBeLessThan(pub.indexOf('npm run build:ts'))
    expect(mainManifest.repository.url).toMatch(/^git\+https:\/\/github\.com\//)
    expect(steps('publish').join('\n')).toMatch(/OXINFER_PACKAGES_DIR=staged node scripts\/pack\.mjs dist/)
    // .ci/run runs the linux-x64 job's staging and smoke test, so CI exercises it.
    expect(readFileSync(join(root, '.ci', 'run'), 'utf8')).toMatch(/scripts\/release-stage\.sh linux-x64 /)
    accessSync(join(root, 'scripts', 'release-stage.sh'), constants.X_OK)
  })
})
