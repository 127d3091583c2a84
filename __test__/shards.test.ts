// Sharded batch jobs (issue #18): `oxinfer run --shard i/N` (and the
// JOB_COMPLETION_INDEX of a Kubernetes Indexed Job) scores one byte range of
// a file into its own part, and `oxinfer merge` joins the parts after
// checking that every row was scored exactly once. The merged file must be
// an unsharded run's: byte for byte, but for the last bit of a float32 score
// where rows were batched differently.
import { execFile } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { FeatureStore, mergeShards, parseShard, Pipeline, type MergeReport } from '../index.js'
import { fixture, readJson, rejectsWith, root, throwsWith } from './helpers'

const run = promisify(execFile)
const cli = join(root, 'src', 'cli', 'main.js')
const specPath = join(fixture('penguins'), 'pipeline.json')
const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')
const FIELDS = ['island', 'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g', 'sex']
const ROWS = 1_000_000
const VIEW = { name: 'penguins', entity: 'penguin_id', features: [{ name: 'island', type: 'category' as const }, ...FIELDS.slice(1, 5).map((name) => ({ name, type: 'number' as const })), { name: 'sex', type: 'category' as const }] }

/** Row i of the generated input: the penguins rows, perturbed, with a bad number every 99,991 rows. */
function csvRow(i: number): string {
  const r = records[i % records.length]
  const cells = FIELDS.map((f) => {
    let v = r[f]
    if (f === 'bill_length_mm' && typeof v === 'number') v = i % 99_991 === 17 ? 'abc' : Math.round((v + ((i * 7) % 11) / 10 - 0.5) * 10) / 10
    return v === null || v === undefined ? '' : String(v)
  })
  return cells.join(',')
}

function writeCsv(path: string, n: number): void {
  const fd = openSync(path, 'w')
  writeSync(fd, `${FIELDS.join(',')}\n`)
  for (let i = 0; i < n; i += 10_000) {
    const lines: string[] = []
    for (let j = i; j < Math.min(n, i + 10_000); j++) lines.push(csvRow(j))
    writeSync(fd, lines.join('\n') + '\n')
  }
  closeSync(fd)
}

interface Manifest {
  shard: number
  shards: number
  range: [number, number]
  span: [number, number]
  rows: number
  errors: number
  inputBytes: number
}

/**
 * Whether two results files hold the same rows: byte for byte, or, where a
 * line differs, with the same text around numbers that agree to 1e-6. Shards
 * put rows in batches of other sizes than one run does, and ONNX Runtime's
 * kernels may round the last float32 bit differently for another batch size.
 */
function expectSameResults(got: string, want: string): void {
  if (got === want) return
  const a = got.split('\n')
  const b = want.split('\n')
  expect(a.length).toBe(b.length)
  const num = /-?\d+(?:\.\d+)?(?:e-?\d+)?/gi
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue
    expect(a[i].replace(num, '#'), `line ${i}`).toBe(b[i].replace(num, '#'))
    const x = a[i].match(num)!.map(Number)
    const y = b[i].match(num)!.map(Number)
    for (let j = 0; j < x.length; j++) expect(Math.abs(x[j] - y[j]), `line ${i}: ${a[i]} against ${b[i]}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(y[j])))
  }
}

let work: string
let pipeline: Pipeline

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'oxinfer-shards-'))
  pipeline = await Pipeline.load(specPath)
})

afterAll(async () => {
  await pipeline?.dispose()
  rmSync(work, { recursive: true, force: true })
})

async function unsharded(input: string, output: string): Promise<void> {
  await pipeline.runJob(input, { output, errors: 'return' }).done
}

describe('sharded jobs', () => {
  it('three shards of a 1M-row file merge into exactly the unsharded output; no shard reads past its range by more than one line', async () => {
    const input = join(work, 'big.csv')
    writeCsv(input, ROWS)
    const whole = join(work, 'whole.jsonl')
    await unsharded(input, whole)
    const out = join(work, 'sharded.jsonl')
    // Shard 0 from the CLI, shard 1 from the CLI with its index from a Kubernetes
    // Indexed Job's environment, shard 2 in this process: all at once.
    const [a, b, c] = await Promise.all([
      run(process.execPath, [cli, 'run', specPath, '-i', input, '-o', out, '--errors', 'return', '--shard', '0/3', '--no-progress']),
      run(process.execPath, [cli, 'run', specPath, '-i', input, '-o', out, '--errors', 'return', '--shard', '3', '--no-progress'], { env: { ...process.env, JOB_COMPLETION_INDEX: '1' } }),
      pipeline.runJob(input, { output: out, errors: 'return', shard: { index: 2, count: 3 } }).done,
    ])
    expect(a.stderr).toMatch(/shard 0 of 3/)
    expect(b.stderr).toMatch(/shard 1 of 3/)
    const bytes = readFileSync(input)
    const manifests = [0, 1, 2].map((i) => JSON.parse(readFileSync(`${out}.shard-${i}-of-3.json`, 'utf8')) as Manifest)
    const header = bytes.indexOf(0x0a) + 1
    expect(manifests[0].span[0]).toBe(header)
    let rows = 0
    for (const m of manifests) {
      expect(m.inputBytes).toBe(bytes.length)
      expect(m.range).toEqual([Math.floor((bytes.length * m.shard) / 3), Math.floor((bytes.length * (m.shard + 1)) / 3)])
      // The span ends at the end of the line that crosses the range's end: one line past it at most.
      const end = m.range[1] >= bytes.length ? bytes.length : bytes.indexOf(0x0a, m.range[1] - 1) + 1
      expect(m.span[1]).toBe(end)
      expect(m.span[1] - m.range[1]).toBeLessThan(80)
      // And it started at the first line starting in its range.
      if (m.shard > 0) expect(m.span[0]).toBe(bytes.indexOf(0x0a, m.range[0] - 1) + 1)
      rows += m.rows
    }
    expect(rows).toBe(ROWS)
    expect(c.rows).toBe(manifests[2].rows)
    const merged = await run(process.execPath, [cli, 'merge', out, '--keep'])
    expect(merged.stderr).toMatch(/1000000 rows \(11 with errors\) from 3 shards/)
    const text = readFileSync(out, 'utf8')
    expectSameResults(text, readFileSync(whole, 'utf8'))
    // The bad rows keep their place and are named by their row in the whole input.
    for (const r of [17, 100_008, 799_945]) expect(text).toContain(`{"row":${r},"error":`)
    for (const i of [0, 1, 2]) expect(existsSync(`${out}.shard-${i}-of-3`)).toBe(true)
  }, 180_000)

  it('CSV output, more shards than lines, and empty shards merge into the unsharded file; parts are removed after', async () => {
    const input = join(work, 'small.csv')
    writeCsv(input, 40)
    const whole = join(work, 'small-whole.csv')
    await unsharded(input, whole)
    const out = join(work, 'small-sharded.csv')
    const n = 64
    const summaries = await Promise.all(Array.from({ length: n }, (_, i) => pipeline.runJob(input, { output: out, errors: 'return', shard: { index: i, count: n } }).done))
    expect(summaries.reduce((s, x) => s + x.rows, 0)).toBe(40)
    expect(summaries.filter((s) => s.rows === 0).length).toBeGreaterThan(0)
    const report: MergeReport = await mergeShards(out)
    expect(report).toMatchObject({ shards: n, rows: 40, errors: 1 })
    expectSameResults(readFileSync(out, 'utf8'), readFileSync(whole, 'utf8'))
    expect(existsSync(`${out}.shard-0-of-${n}`)).toBe(false)
    expect(existsSync(`${out}.shard-0-of-${n}.json`)).toBe(false)
  })

  it('JSONL input shards the same way', async () => {
    const input = join(work, 'in.jsonl')
    const lines: string[] = []
    for (let i = 0; i < 5000; i++) lines.push(JSON.stringify(records[i % records.length]) + (i % 997 === 0 ? '\n' : ''))
    writeFileSync(input, lines.join('\n') + '\n\n')
    const whole = join(work, 'jl-whole.jsonl')
    await unsharded(input, whole)
    const out = join(work, 'jl-sharded.jsonl')
    for (let i = 0; i < 7; i++) await pipeline.runJob(input, { output: out, errors: 'return', shard: { index: i, count: 7 } }).done
    await mergeShards(out, { count: 7 })
    expectSameResults(readFileSync(out, 'utf8'), readFileSync(whole, 'utf8'))
  })

  it('CSV files with Windows line ends shard and merge the same way', async () => {
    const input = join(work, 'crlf.csv')
    writeCsv(join(work, 'lf.csv'), 3000)
    writeFileSync(input, readFileSync(join(work, 'lf.csv'), 'utf8').replace(/\n/g, '\r\n'))
    const whole = join(work, 'crlf-whole.jsonl')
    await unsharded(input, whole)
    const out = join(work, 'crlf-sharded.jsonl')
    await Promise.all([0, 1, 2, 3, 4, 5, 6].map((i) => pipeline.runJob(input, { output: out, errors: 'return', shard: { index: i, count: 7 } }).done))
    await expect(mergeShards(out)).resolves.toMatchObject({ rows: 3000 })
    expectSameResults(readFileSync(out, 'utf8'), readFileSync(whole, 'utf8'))
  })

  it("a stage's 'row N' errors name the row in the whole input, past the first chunk and across shards", async () => {
    const store = await FeatureStore.create({ name: 'shards-lookup', backend: { kind: 'embedded' }, views: [VIEW] })
    // Penguins known by id, but every 7th id is not in the store: a lookup with missing: 'error' refuses it.
    await store.putMany('penguins', records.map((r, i) => [`p${i}`, Object.fromEntries(FIELDS.map((f) => [f, r[f] ?? null]))] as [string, Record<string, number | string | null>]).filter((_, i) => i % 7 !== 3))
    const base = JSON.parse(readFileSync(specPath, 'utf8'))
    const lookup = await Pipeline.create({ ...base, fields: [{ name: 'penguin_id', type: 'category' }], preprocess: [{ op: 'lookup', store: 'shards-lookup', view: 'penguins', key: 'penguin_id', missing: 'error' }, ...base.preprocess] }, { baseDir: fixture('penguins') })
    try {
      const input = join(work, 'ids.csv')
      writeFileSync(input, `penguin_id\n${records.map((_, i) => `p${i}`).join('\n')}\n`)
      const whole = join(work, 'ids-whole.jsonl')
      await lookup.runJob(input, { output: whole, errors: 'return', chunkSize: 16 }).done
      const lines = readFileSync(whole, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
      const bad = lines.filter((l) => l.error)
      expect(bad.map((l) => l.row)).toEqual(records.map((_, i) => i).filter((i) => i % 7 === 3))
      for (const l of bad) expect(l.error.message).toMatch(new RegExp(`^row ${l.row}: `))
      const out = join(work, 'ids-sharded.jsonl')
      for (let i = 0; i < 3; i++) await lookup.runJob(input, { output: out, errors: 'return', chunkSize: 16, shard: { index: i, count: 3 } }).done
      await mergeShards(out)
      expectSameResults(readFileSync(out, 'utf8'), readFileSync(whole, 'utf8'))
    } finally {
      await lookup.dispose()
      await store.close()
    }
  })

  it('merge refuses unfinished, mismatched, tampered or stale parts, naming what is wrong', async () => {
    const input = join(work, 'm.csv')
    writeCsv(input, 3000)
    const out = join(work, 'm.jsonl')
    const shard = (index: number, count = 3, output = out) => pipeline.runJob(input, { output, errors: 'return', shard: { index, count } }).done
    await shard(0)
    await shard(2)
    let e = await rejectsWith(mergeShards(out), 'ERR_FILE')
    expect(e.message).toMatch(/shard 1 of 3 has not finished \(it wrote nothing\)/)
    await shard(1)
    // A part without its manifest did not finish.
    const m1 = `${out}.shard-1-of-3.json`
    const saved = readFileSync(m1, 'utf8')
    rmSync(m1)
    e = await rejectsWith(mergeShards(out), 'ERR_FILE')
    expect(e.message).toMatch(/shard 1 of 3 has not finished \(its part exists but has no manifest/)
    // A span that does not meet its neighbour's would lose or repeat rows.
    const m = JSON.parse(saved) as Manifest
    writeFileSync(m1, JSON.stringify({ ...m, span: [m.span[0] + 1, m.span[1]] }))
    e = await rejectsWith(mergeShards(out), 'ERR_INVALID_INPUT')
    expect(e.message).toMatch(/scored twice/)
    // A part that lost rows is caught by its count.
    writeFileSync(m1, JSON.stringify({ ...m, rows: m.rows + 1 }))
    e = await rejectsWith(mergeShards(out), 'ERR_INVALID_INPUT')
    expect(e.message).toMatch(new RegExp(`has ${m.rows} rows, its manifest ${m.rows + 1}`))
    writeFileSync(m1, saved)
    // Shard 0 must start at the first row (a manifest that skipped rows, with spans still tiling).
    const m0 = `${out}.shard-0-of-3.json`
    const saved0 = readFileSync(m0, 'utf8')
    const first = JSON.parse(saved0) as Manifest
    writeFileSync(m0, JSON.stringify({ ...first, span: [first.span[0] + 20, first.span[1]] }))
    e = await rejectsWith(mergeShards(out), 'ERR_INVALID_INPUT')
    expect(e.message).toMatch(new RegExp(`shard 0 read from byte ${first.span[0] + 20}, but the rows of .* start at byte ${first.span[0]}`))
    writeFileSync(m0, saved0)
    // Parts of another shard count beside these: the count must be given.
    await shard(0, 2)
    e = await rejectsWith(mergeShards(out), 'ERR_INVALID_ARGUMENT')
    expect(e.message).toMatch(/different shard counts \(2, 3\)/)
    await expect(mergeShards(out, { count: 3, keep: true })).resolves.toMatchObject({ rows: 3000 })
    // The input changed after the shards read it.
    writeFileSync(input, readFileSync(input, 'utf8') + 'Biscoe,40,18,190,4000,male\n')
    e = await rejectsWith(mergeShards(out, { count: 3 }), 'ERR_INVALID_INPUT')
    expect(e.message).toMatch(/changed after the shards read it/)
    await rejectsWith(mergeShards(join(work, 'nothing.jsonl')), 'ERR_FILE')
  })

  it('bad shard options are typed errors', async () => {
    const input = join(work, 'o.csv')
    writeCsv(input, 10)
    const out = join(work, 'o.jsonl')
    throwsWith(() => pipeline.runJob(input, { output: out, shard: { index: 3, count: 3 } }), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => pipeline.runJob(input, { output: out, shard: { index: 0, count: 0 } }), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => pipeline.runJob(input, { output: out, shard: { index: 1 } as never }), 'ERR_INVALID_ARGUMENT')
    const e = throwsWith(() => pipeline.runJob(input, { shard: { index: 0, count: 2 } }), 'ERR_INVALID_ARGUMENT')
    expect(e.message).toMatch(/needs an output file/)
    throwsWith(() => pipeline.runJob([{ island: 'Biscoe' }], { output: out, shard: { index: 0, count: 2 } }), 'ERR_INVALID_ARGUMENT')
    expect(parseShard('2/5')).toEqual({ index: 2, count: 5 })
    expect(parseShard('5', { JOB_COMPLETION_INDEX: '4' })).toEqual({ index: 4, count: 5 })
    expect(throwsWith(() => parseShard('5', {}), 'ERR_INVALID_ARGUMENT').message).toMatch(/JOB_COMPLETION_INDEX, which is not set/)
    throwsWith(() => parseShard('a/b'), 'ERR_INVALID_ARGUMENT')
    const bad = await run(process.execPath, [cli, 'run', specPath, '-i', input, '-o', out, '--shard', '4/4', '--no-progress']).catch((err: { stderr: string; code: number }) => err)
    expect((bad as { code: number }).code).toBe(1)
    expect((bad as { stderr: string }).stderr).toMatch(/ERR_INVALID_ARGUMENT: shard 4 of 4/)
  })
})
