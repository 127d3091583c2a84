// Helpers for the tests that install oxinfer as a user would (consumer.test.ts,
// registry.test.ts): the published tarballs, and an environment without Rust.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'

import { root } from './helpers'

export const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

export interface Tarballs {
  main: string
  platforms: Record<string, string>
  /** The main package's published package.json. */
  manifest: { version: string; [key: string]: unknown }
}

/**
 * The published tarballs, as `npm run pack:dist` makes them (scripts/pack.mjs),
 * packed into a fresh folder under `work` so that test files packing at the
 * same time do not clobber each other's dist/.
 */
export function packAll(work: string): Tarballs {
  const out = mkdtempSync(join(work, 'dist-'))
  const stdout = execFileSync(process.execPath, [join(root, 'scripts', 'pack.mjs'), out], { cwd: root, encoding: 'utf8' })
  const tarballs = JSON.parse(stdout.trim().split('\n').pop()!) as Omit<Tarballs, 'manifest'>
  const manifest = JSON.parse(execFileSync('tar', ['-xOzf', tarballs.main, 'package/package.json'], { encoding: 'utf8' }))
  return { ...tarballs, manifest }
}

/** Whether `cmd` is an executable file in a folder of `path`. */
export function onPath(cmd: string, path: string | undefined): boolean {
  return (path ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, cmd)))
}

/**
 * The environment of a user without Rust: PATH without cargo/rustc (so nothing
 * can be compiled at install), no ONNX Runtime override, and no npm_* variables
 * inherited from an `npm test` that runs us.
 */
export function cargoFreeEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const path = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => !dir.includes('.cargo') && !existsSync(join(dir, 'cargo')) && !existsSync(join(dir, 'rustc')))
    .join(delimiter)
  const inherited = Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key))
  return { ...Object.fromEntries(inherited), PATH: path, OXINFER_ORT_DYLIB: '', ORT_DYLIB_PATH: '', ...extra }
}

/** node_modules folders of the packages a production install needs (not dev, not optional), as package-lock.json resolves them. */
export function runtimeDependencies(root: string): string[] {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; optional?: boolean; link?: boolean }> }
  // Links are this repository's own packages (packages/torch), linked for development.
  return Object.entries(lock.packages)
    .filter(([k, v]) => k.startsWith('node_modules/') && !v.dev && !v.optional && !v.link)
    .map(([k]) => k)
}

/** What a production install of oxinfer puts in node_modules: itself, the platform package and the runtime dependencies. */
export function installedNames(root: string, platform: string): string[] {
  return ['oxinfer', platform, ...runtimeDependencies(root).map((d) => d.slice('node_modules/'.length))].sort()
}
