// The `oxinfer` command: `serve` (what `npm start` runs) prints curl lines
// that all work against the example repository and closes with exit 0 on
// SIGTERM; `info` and `run` on real models and files; bad arguments exit 1
// with a message.
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

import { fixture, readJson, root } from './helpers'
// @ts-expect-error: a plain .mjs script without types
import { ensureExampleRepository } from '../scripts/example-repository.mjs'

const run = promisify(execFile)
const cli = join(root, 'src', 'cli', 'main.js')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

describe('the oxinfer command', () => {
  it('is the package bin, and npm start serves the example repository with it', () => {
    expect(pkg.bin.oxinfer).toBe('src/cli/main.js')
    expect(pkg.scripts.start).toBe('node scripts/example-repository.mjs && node src/cli/main.js serve --repository examples/repository --curl')
    expect(readFileSync(cli, 'utf8').startsWith('#!/usr/bin/env node')).toBe(true)
  })

  it('serve: every curl line it prints works, and SIGTERM closes it with exit 0', async () => {
    // npm start's command, on a free port.
    const child = spawn(process.execPath, [cli, 'serve', '--repository', ensureExampleRepository(), '--curl', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    let err = ''
    child.stderr.on('data', (d) => (err += d))
    for (let i = 0; i < 200 && !out.includes('/metrics'); i++) await new Promise((r) => setTimeout(r, 50))
    // Every log line is pino JSON: the command's own and the native side's (bridged from tracing).
    const logs = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
    // The command's own line (the native server logs a 'serving' line too, with its target, in either order).
    expect(logs.find((l) => l.msg === 'serving' && l.target === undefined)).toMatchObject({ level: 30, pid: child.pid, models: ['penguins/1', 'tiny_mlp/1', 'vad/1'] })
    const loaded = logs.filter((l) => l.msg === 'model loaded')
    expect(loaded.map((l) => l.model).sort()).toEqual(['penguins', 'tiny_mlp', 'vad'])
    expect(loaded[0]).toMatchObject({ level: 30, name: 'oxinfer', pid: child.pid, target: expect.stringMatching(/^oxinfer_server/), time: expect.any(Number), hostname: expect.any(String) })
    const lines = out.split('\n').filter((l) => l.startsWith('  curl ')).map((l) => l.trim())
    expect(lines.length).toBeGreaterThanOrEqual(10)
    for (const line of lines) {
      const { stdout } = await run('bash', ['-o', 'pipefail', '-c', line])
      expect(stdout.length, line).toBeGreaterThan(0)
      expect(stdout, line).not.toMatch(/"error"/)
      if (line.includes('/infer')) expect(JSON.parse(stdout).outputs.length, line).toBeGreaterThan(0)
      if (line.includes('health/ready')) expect(stdout.trim()).toBe('200')
    }
    child.kill('SIGTERM')
    const code = await new Promise((r) => child.once('exit', r))
    expect(code, err).toBe(0)
    expect(out).toMatch(/"msg":"closed"/)
  })

  it('info: a model and a pipeline', async () => {
    const m = JSON.parse((await run(process.execPath, [cli, 'info', fixture('tiny_mlp.onnx'), '--json'])).stdout)
    expect(m).toMatchObject({ kind: 'model', inputs: [{ name: 'x', type: 'float32' }], outputs: [{ name: 'y' }], batchDimension: expect.any(String) })
    const p = JSON.parse((await run(process.execPath, [cli, 'info', fixture('penguins/pipeline.json'), '--json'])).stdout)
    expect(p).toMatchObject({ kind: 'pipeline', name: 'penguins-species' })
    expect(p.fields.map((f: { name: string }) => f.name)).toContain('island')
    const text = (await run(process.execPath, [cli, 'info', fixture('tiny_mlp.onnx')])).stdout
    expect(text).toMatch(/inputs:/)
  })

  it('run: scores a JSONL file through a pipeline and reports the throughput', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oxinfer-cli-'))
    const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')
    const input = join(dir, 'in.jsonl')
    writeFileSync(input, records.map((r) => JSON.stringify(r)).join('\n') + '\n')
    const output = join(dir, 'out.jsonl')
    const { stderr } = await run(process.execPath, [cli, 'run', fixture('penguins/pipeline.json'), '--input', input, '--output', output])
    expect(stderr).toMatch(new RegExp(`${records.length} rows \\(0 with errors\\) in [\\d.]+ s: \\d+ rows/s`))
    const rows = readFileSync(output, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(rows).toHaveLength(records.length)
    const ref = readJson('penguins/reference.json')
    expect(rows.map((r) => r.label)).toEqual(ref.predict)
  })

  it('bad arguments exit 1 with a message', async () => {
    const fail = async (args: string[]) => {
      try {
        await run(process.execPath, [cli, ...args])
      } catch (e) {
        return e as { code: number; stderr: string }
      }
      throw new Error(`expected ${args.join(' ')} to fail`)
    }
    const a = await fail(['serve'])
    expect(a.code).toBe(1)
    expect(a.stderr).toMatch(/--repository/)
    const b = await fail(['serve', '--repository', '/nonexistent', '--port', '0'])
    expect(b.stderr).toMatch(/ERR_FILE/)
    const c = await fail(['serve', '--repository', '.', '--port', 'x'])
    expect(c.stderr).toMatch(/port/)
    const d = await fail(['info', '/nonexistent.onnx'])
    expect(d.stderr).toMatch(/ERR_FILE/)
    const e = await fail(['run', fixture('penguins/pipeline.json'), '--input', '/nonexistent.csv', '--output', join(tmpdir(), 'x.jsonl')])
    expect(e.stderr).toMatch(/ERR_FILE/)
    const help = (await run(process.execPath, [cli, 'serve', '--help'])).stdout
    expect(help).toMatch(/--poll/)
  })
})
