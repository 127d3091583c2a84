// A real client that no one here wrote: NVIDIA's Python tritonclient 2.73
// (HTTP), installed into a cached virtual environment, drives the server
// through metadata, configuration, JSON and binary inference, BYTES,
// repository load and unload, and statistics. Results are checked against
// in-process runs. When the client cannot be installed the test fails.
import { execFileSync } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// @ts-expect-error: a plain .mjs script without types
import { ensureExampleRepository } from '../scripts/example-repository.mjs'

import { Pipeline, serve, Session, Tensor, type Server } from '../index.js'
import { fixture, readJson, root } from './helpers'
// @ts-expect-error: a plain .mjs script without types
import { pythonClients } from '../scripts/python-clients.mjs'

const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')

describe('tritonclient (Python, HTTP) against the server', () => {
  let server: Server
  let repo: string
  let python: string
  beforeAll(async () => {
    python = (pythonClients as () => string)()
    repo = mkdtempSync(join(tmpdir(), 'oxinfer-repo-'))
    cpSync(ensureExampleRepository(), repo, { recursive: true })
    server = await serve({ repository: repo, port: 0 })
  }, 600_000)
  afterAll(async () => {
    await server?.close()
    if (repo) rmSync(repo, { recursive: true, force: true })
  })

  it('works unchanged: metadata, config, JSON and binary infer, BYTES, load/unload, stats', async () => {
    const rows = records.slice(0, 12)
    const text = execFileSync(python, [join(root, '__test__', 'tritonclient_check.py'), `${server.address!.host}:${server.address!.port}`, JSON.stringify(rows)], { encoding: 'utf8', timeout: 120_000 })
    const out = JSON.parse(text)
    expect(out.live).toBe(true)
    expect(out.ready).toBe(true)
    expect(out.server.name).toBe('oxinfer')
    expect(out.metadata).toMatchObject({ name: 'tiny_mlp', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 16] }] })
    expect(out.config).toMatchObject({ name: 'tiny_mlp', max_batch_size: 64 })
    expect(out.model_ready).toBe(true)

    const session = await Session.create(fixture('tiny_mlp.onnx'))
    const x = Float32Array.from({ length: 48 }, (_, k) => Math.fround(Math.sin(Math.floor(k / 16) * 16 + (k % 16))))
    const want = Array.from((await session.run({ x: new Tensor('float32', x, [3, 16]) })).y.data as Float32Array)
    await session.dispose()
    const flat = (a: number[][]) => a.flat()
    expect(out.json.id).toBe('json-1')
    flat(out.json.y).forEach((v: number, i: number) => expect(v).toBeCloseTo(want[i], 5))
    flat(out.binary.y).forEach((v: number, i: number) => expect(v).toBe(want[i]))

    const p = await Pipeline.load(fixture('penguins/pipeline.json'))
    const local = await p.runBatch(rows)
    await p.dispose()
    expect(out.pipeline.label).toEqual(local.map((r) => ('label' in r ? r.label : null)))
    out.pipeline.scores.forEach((row: number[], i: number) => row.forEach((v, j) => expect(v).toBeCloseTo((local[i] as { scores: Float32Array }).scores[j], 5)))

    expect(out.index).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'penguins', state: 'READY' })]))
    expect(out.after_unload_ready).toBe(false)
    expect(out.infer_unloaded).toMatch(/not ready|unloaded/)
    expect(out.after_load_ready).toBe(true)
    expect(out.stats.model_stats[0]).toMatchObject({ name: 'penguins' })
    expect(Number(out.stats.model_stats[0].inference_stats.success.count)).toBeGreaterThan(0)
    expect(out.bad).toMatch(/x/)
  }, 180_000)
})
