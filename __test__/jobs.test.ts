import { closeSync, createReadStream, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { activeJobs, BatchJob, OxinferError, Pipeline, Tensor, type JobProgress, type PipelineJobChunk, type PipelineResult, type PipelineRowError } from '../index.js'
import { fixture, readJson, rejectsWith, throwsWith } from './helpers'

const specPath = join(fixture('penguins'), 'pipeline.json')
const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')
const FIELDS = ['island', 'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g', 'sex']
const BIG = 1_000_000

/** Record i of the generated input: the penguins rows, repeated and perturbed so that rows differ. */
function recordAt(i: number): Record<string, unknown> {
  const r = { ...records[i % records.length] }
  if (typeof r.bill_length_mm === 'number') r.bill_length_mm = Math.round((r.bill_length_mm + ((i * 7) % 11) / 10 - 0.5) * 10) / 10
  return r
}

const csvCell = (v: unknown): string => (v === null || v === undefined ? '' : String(v))

/** Writes `n` rows as CSV, a block at a time (the test process never holds the file). */
function writeCsv(path: string, n: number, row: (i: number) => string = (i) => `${i},${FIELDS.map((f) => csvCell(recordAt(i)[f])).join(',')}`): void {
  const fd = openSync(path, 'w')
  writeSync(fd, `id,${FIELDS.join(',')}\n`)
  for (let i = 0; i < n; i += 10_000) {
    const lines: string[] = []
    for (let j = i; j < Math.min(n, i + 10_000); j++) lines.push(row(j))
    writeSync(fd, lines.join('\n') + '\n')
  }
  closeSync(fd)
}

const rss = (): number => process.memoryUsage().rss / 2 ** 20

async function settle(job: BatchJob<unknown>): Promise<unknown> {
  try {
    await job.done
  } catch (e) {
    return e
  }
  return undefined
}

async function collect(job: BatchJob<PipelineJobChunk>): Promise<(PipelineResult | PipelineRowError)[]> {
  const out: (PipelineResult | PipelineRowError)[] = []
  for await (const c of job) {
    expect(c.firstRow).toBe(out.length)
    for (const r of c.results) out.push(r)
  }
  return out
}

function expectSame(got: (PipelineResult | PipelineRowError)[], want: (PipelineResult | PipelineRowError)[]): void {
  expect(got).toHaveLength(want.length)
  for (let i = 0; i < want.length; i++) {
    const a = got[i] as PipelineResult
    const b = want[i] as PipelineResult
    expect(a.label, `row ${i}`).toBe(b.label)
    for (let j = 0; j < b.scores.length; j++) expect(Math.abs(a.scores[j] - b.scores[j])).toBeLessThan(1e-6)
  }
}

describe('batch jobs (Pipeline.runJob, Session.runJob)', () => {
  let p: Pipeline
  let dir: string
  let big: string
  beforeAll(async () => {
    // The generated files carry an `id` column the spec does not declare.
    p = await Pipeline.load(specPath, { unknownFields: 'ignore' })
    dir = mkdtempSync(join(tmpdir(), 'oxinfer-jobs-'))
    big = join(dir, 'big.csv')
    writeCsv(big, BIG)
  })
  afterAll(async () => {
    await p.dispose()
    rmSync(dir, { recursive: true, force: true })
  })

  // The bound: a chunk of 4096 penguins rows costs under 2 MB natively (input
  // columns and their working copies, one-hot columns, the f64 and f32 feature
  // tensors, result columns, its JSONL text), and at most `concurrency + 2`
  // chunks are in flight plus `concurrency` undelivered (none when writing a
  // file): 4 chunks on 2 cores, under 8 MB, whatever the file's length. The bound
  // adds the reader's and writer's 64 KiB buffers, the engine's arena for a
  // 4096-row batch and allocator slack (a new thread's malloc arena) to that:
  // 50 MB above a warmed-up baseline. Measured here (2 cores): under 3 MB.
  const RSS_BOUND_MB = 50

  it('runs 1M rows from a CSV file to JSONL in input order, with progress, in bounded memory', async () => {
    const out = join(dir, 'big.jsonl')
    // Warm up the session and the allocator with a small job first.
    writeCsv(join(dir, 'warm.csv'), 20_000)
    await p.runJob(join(dir, 'warm.csv'), { output: join(dir, 'warm.jsonl') }).done
    global.gc?.()
    const base = rss()
    let peak = base
    const timer = setInterval(() => (peak = Math.max(peak, rss())), 20)
    const progress: JobProgress[] = []
    const job = p.runJob(big, { output: out, onProgress: (x) => progress.push(x), progressIntervalMs: 100 })
    const summary = await job.done
    clearInterval(timer)
    peak = Math.max(peak, rss())
    expect(summary.rows).toBe(BIG)
    expect(summary.errors).toBe(0)
    expect(summary.rowsPerSecond).toBeGreaterThan(0)
    console.log(`1M-row job: ${Math.round(summary.rowsPerSecond)} rows/s, RSS baseline ${base.toFixed(1)} MB, peak ${peak.toFixed(1)} MB (+${(peak - base).toFixed(1)} MB; bound +${RSS_BOUND_MB} MB)`)
    expect(peak - base).toBeLessThan(RSS_BOUND_MB)
    expect(activeJobs()).toBe(0)

    // Progress: monotonic, with an estimated total and ETA, ending at 1M exactly.
    expect(progress.length).toBeGreaterThanOrEqual(1)
    for (let i = 1; i < progress.length; i++) expect(progress[i].rowsDone).toBeGreaterThanOrEqual(progress[i - 1].rowsDone)
    const last = progress[progress.length - 1]
    expect(last).toMatchObject({ rowsDone: BIG, total: BIG, etaSeconds: 0 })
    expect(last.bytesDone).toBe(last.bytesTotal)
    for (const x of progress) if (x.total !== undefined) expect(Math.abs(x.total - BIG) / BIG).toBeLessThan(0.05)

    // Every row, in order; a sample checked against runBatch on the same records.
    const sample = new Set<number>()
    for (let i = 0; i < 200; i++) sample.add((i * 4999) % BIG)
    sample.add(BIG - 1)
    const picked = new Map<number, any>()
    let n = 0
    for await (const line of createInterface({ input: createReadStream(out) })) {
      const row = JSON.parse(line)
      expect(row.row).toBe(n)
      if (sample.has(n)) picked.set(n, row)
      n++
    }
    expect(n).toBe(BIG)
    const idx = [...sample].sort((a, b) => a - b)
    const want = (await p.runBatch(idx.map(recordAt))) as PipelineResult[]
    idx.forEach((i, k) => {
      const got = picked.get(i)
      expect(got.label, `row ${i}`).toBe(want[k].label)
      for (let j = 0; j < 3; j++) expect(Math.abs(got.scores[j] - want[k].scores[j])).toBeLessThan(1e-6)
    })
  })

  it('writes CSV output, and reads JSONL input', async () => {
    const jsonl = join(dir, 'in.jsonl')
    writeFileSync(jsonl, records.map((r) => JSON.stringify(r)).join('\n') + '\n')
    const out = join(dir, 'out.csv')
    const s = await p.runJob(jsonl, { output: out }).done
    expect(s.rows).toBe(records.length)
    const lines = readFileSync(out, 'utf8').trim().split('\n')
    expect(lines[0]).toBe('row,label,labelIndex,score,scores.Adelie,scores.Chinstrap,scores.Gentoo,error_code,error_field,error_message')
    const want = (await p.runBatch(records)) as PipelineResult[]
    expect(lines).toHaveLength(records.length + 1)
    lines.slice(1).forEach((l, i) => {
      const c = l.split(',')
      expect(Number(c[0])).toBe(i)
      expect(c[1]).toBe(want[i].label)
      expect(Math.abs(Number(c[4]) - want[i].scores[0])).toBeLessThan(1e-6)
    })
    // The same file iterated, in small chunks with several in flight.
    expectSame(await collect(p.runJob(jsonl, { chunkSize: 7, concurrency: 3 })), want)

    // Columns instead of objects, from a file and from an iterable.
    for (const source of [jsonl, records]) {
      let at = 0
      for await (const { firstRow, columns } of p.runJob(source as never, { chunkSize: 100, results: 'columns' })) {
        expect(firstRow).toBe(at)
        expect(columns.k).toBe(3)
        for (let r = 0; r < columns.rows; r++) {
          expect(columns.label![r]).toBe(want[at + r].label)
          expect(Math.abs(columns.scores[r * 3] - want[at + r].scores[0])).toBeLessThan(1e-6)
        }
        at += columns.rows
      }
      expect(at).toBe(records.length)
    }
    throwsWith(() => p.runJob(jsonl, { results: 'columns', output: join(dir, 'c.jsonl') } as never), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => p.runJob(jsonl, { results: 'rows' as never }), 'ERR_INVALID_ARGUMENT')
  })

  it('takes an async iterable of records, arrays of records or column chunks, keeping input order', async () => {
    const want = (await p.runBatch(records)) as PipelineResult[]
    async function* singles(): AsyncGenerator<Record<string, unknown>> {
      for (const r of records) {
        if (Math.random() < 0.05) await new Promise((res) => setTimeout(res, 1))
        yield r
      }
    }
    const progress: JobProgress[] = []
    const job = p.runJob(singles(), { chunkSize: 16, concurrency: 4, total: records.length, onProgress: (x) => progress.push(x), progressIntervalMs: 0 })
    expectSame(await collect(job), want)
    expect((await job.done).rows).toBe(records.length)
    expect(progress[progress.length - 1]).toMatchObject({ rowsDone: records.length, total: records.length })

    // Chunks of varying sizes (the largest first, so it finishes last if order were not kept).
    const sizes = [200, 1, 3, 50, 17, 73]
    const chunks: unknown[] = []
    let at = 0
    for (const [k, size] of sizes.entries()) {
      const part = records.slice(at, at + size)
      at += size
      if (k % 2 === 0) chunks.push(part)
      else {
        const cols: Record<string, unknown[]> = {}
        for (const f of FIELDS) cols[f] = part.map((r) => r[f])
        chunks.push(cols)
      }
    }
    const job2 = p.runJob(chunks, { concurrency: 6 })
    const got: PipelineJobChunk[] = []
    for await (const c of job2) got.push(c)
    expect(got.map((c) => c.results.length)).toEqual(sizes)
    expectSame(
      got.flatMap((c) => c.results),
      want,
    )
  })

  it('writes JSONL output for iterable sources too, in the native format', async () => {
    const src = join(dir, 'same.jsonl')
    writeFileSync(src, records.map((r) => JSON.stringify(r)).join('\n') + '\n')
    const fromFile = join(dir, 'from-file.jsonl')
    const fromIter = join(dir, 'from-iter.jsonl')
    const bad = [...records, { ...records[0], body_mass_g: 'x' }]
    writeFileSync(src, bad.map((r) => JSON.stringify(r)).join('\n') + '\n')
    await p.runJob(src, { output: fromFile, errors: 'return' }).done
    const job = p.runJob(bad, { output: fromIter, errors: 'return', chunkSize: 50 })
    for await (const _ of job) throw new Error('a job that writes a file yields nothing')
    expect(await job.done).toMatchObject({ rows: bad.length, errors: 1 })
    const a = readFileSync(fromFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    const b = readFileSync(fromIter, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(b).toHaveLength(a.length)
    a.forEach((x, i) => {
      expect(Object.keys(b[i])).toEqual(Object.keys(x))
      expect(b[i].row).toBe(x.row)
      expect(b[i].label).toBe(x.label)
      if (x.error) {
        expect([b[i].error.code, b[i].error.field]).toEqual([x.error.code, x.error.field])
        expect(b[i].error.message).toMatch(new RegExp(`^row ${i}: field 'body_mass_g' expects a number`))
      }
      else x.scores.forEach((v: number, j: number) => expect(Math.fround(b[i].scores[j])).toBe(Math.fround(v)))
    })
    throwsWith(() => p.runJob(records, { output: join(dir, 'x.csv') }), 'ERR_INVALID_ARGUMENT')
    expect(throwsWith(() => p.runJob(records, { output: join(dir, 'no', 'dir.jsonl') }), 'ERR_FILE').path).toBe(join(dir, 'no', 'dir.jsonl'))
    const ac = new AbortController()
    async function* slow(): AsyncGenerator<Record<string, unknown>> {
      for (let i = 0; ; i++) {
        if (i === 500) ac.abort()
        yield recordAt(i)
      }
    }
    await rejectsWith(p.runJob(slow(), { output: join(dir, 'aborted.jsonl'), signal: ac.signal, chunkSize: 100 }).done, 'ERR_ABORTED')
    expect(existsSync(join(dir, 'aborted.jsonl'))).toBe(false)
  })

  it('Session.runJob runs feeds chunks in order', async () => {
    const s = p.session
    const sizes = [64, 1, 5, 300, 2]
    const feeds = sizes.map((n, k) => {
      const x = new Float32Array(n * 10)
      for (let i = 0; i < x.length; i++) x[i] = Math.sin(i + k)
      return { float_input: new Tensor('float32', x, [n, 10]) }
    })
    async function* source(): AsyncGenerator<Record<string, Tensor>> {
      yield* feeds
    }
    const progress: JobProgress[] = []
    const job = s.runJob(source(), { concurrency: 3, onProgress: (x) => progress.push(x), progressIntervalMs: 0 })
    let k = 0
    for await (const out of job) {
      const want = await s.run(feeds[k])
      expect(out.probabilities.dims).toEqual([sizes[k], 3])
      expect(Array.from(out.probabilities.data as Float32Array)).toEqual(Array.from(want.probabilities.data as Float32Array))
      k++
    }
    expect(k).toBe(sizes.length)
    expect((await job.done).rows).toBe(sizes.reduce((a, b) => a + b))
    expect(progress[progress.length - 1].rowsDone).toBe(sizes.reduce((a, b) => a + b))
    throwsWith(() => s.runJob('x.csv' as never), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => s.runJob(feeds, { outputs: 'probabilities' as never }), 'ERR_INVALID_ARGUMENT')
  })

  it('cancels midway: ERR_ABORTED, no progress after, no file, no native job left, no memory growth', async () => {
    const cancelOnce = async (at = 1): Promise<void> => {
      const ac = new AbortController()
      const out = join(dir, 'cancelled.jsonl')
      let after = 0
      let aborted = false
      const job = p.runJob(big, {
        output: out,
        chunkSize: 1024,
        signal: ac.signal,
        progressIntervalMs: 0,
        onProgress: (x) => {
          if (aborted) after++
          else if (x.rowsDone >= at) {
            expect(x.rowsDone).toBeLessThan(BIG)
            aborted = true
            ac.abort(new Error('stop'))
          }
        },
      })
      const e = await rejectsWith(job.done, 'ERR_ABORTED')
      expect((e.cause as Error).message).toBe('stop')
      expect(after).toBe(0)
      expect(existsSync(out)).toBe(false)
      expect(activeJobs()).toBe(0)
    }
    await cancelOnce(BIG / 2)
    for (let i = 0; i < 3; i++) await cancelOnce()
    global.gc?.()
    const before = rss()
    for (let i = 0; i < 20; i++) await cancelOnce()
    global.gc?.()
    expect(rss() - before).toBeLessThan(30)

    // Iterated jobs: the iterator rejects too, and breaking out aborts the job.
    const ac = new AbortController()
    const it = p.runJob(big, { signal: ac.signal, chunkSize: 512 })
    let seen = 0
    await rejectsWith(
      (async () => {
        for await (const c of it) {
          seen += c.results.length
          if (seen > 5000) ac.abort()
        }
      })(),
      'ERR_ABORTED',
    )
    const broken = p.runJob(big, { chunkSize: 512 })
    for await (const _ of broken) break
    await rejectsWith(broken.done, 'ERR_ABORTED')
    await new Promise((r) => setTimeout(r, 50))
    expect(activeJobs()).toBe(0)

    // An iterable job aborted midway.
    const ac2 = new AbortController()
    async function* endless(): AsyncGenerator<Record<string, unknown>> {
      for (let i = 0; ; i++) yield recordAt(i)
    }
    const j2 = p.runJob(endless(), { signal: ac2.signal, chunkSize: 256, onProgress: (x) => x.rowsDone > 2000 && ac2.abort(), progressIntervalMs: 0 })
    const drained = (async () => {
      for await (const _ of j2) {
        // consume
      }
    })()
    await rejectsWith(j2.done, 'ERR_ABORTED')
    await rejectsWith(drained, 'ERR_ABORTED')
    expect(p.session.pendingRuns).toBe(0)

    // Aborts cut short a source that never yields and a consumer that never takes.
    const ac3 = new AbortController()
    const stuck = p.runJob(
      (async function* () {
        yield records[0]
        await new Promise(() => {})
      })(),
      { signal: ac3.signal },
    )
    setTimeout(() => ac3.abort(), 20)
    await rejectsWith(stuck.done, 'ERR_ABORTED')
    for (const source of [big, endless()]) {
      const ac4 = new AbortController()
      const idle = p.runJob(source, { signal: ac4.signal, chunkSize: 256, concurrency: 2 })
      setTimeout(() => ac4.abort(), 100)
      await rejectsWith(idle.done, 'ERR_ABORTED')
    }
    expect(activeJobs()).toBe(0)
    expect(p.session.pendingRuns).toBe(0)
  })

  it('a session disposed mid-job fails the job with ERR_DISPOSED; runs during a job are not starved', async () => {
    const q = await Pipeline.load(specPath, { unknownFields: 'ignore' })
    const job = q.runJob(big, { output: join(dir, 'disposed.jsonl'), chunkSize: 1024 })
    const one = (await q.run(records[0])) as PipelineResult
    expect(one.label).toBe('Adelie')
    await new Promise((r) => setTimeout(r, 30))
    await q.dispose()
    await rejectsWith(job.done, 'ERR_DISPOSED')
    expect(existsSync(join(dir, 'disposed.jsonl'))).toBe(false)
    expect(activeJobs()).toBe(0)
  })

  it('malformed rows: per-row errors with row and field, or the job fails naming them', async () => {
    const bad = join(dir, 'bad.csv')
    writeCsv(bad, 10_000, (i) => {
      if (i === 5) return `${i},Biscoe,abc,14,210,5000,MALE`
      if (i === 7000) return `${i},Biscoe,45`
      return `${i},${FIELDS.map((f) => csvCell(recordAt(i)[f])).join(',')}`
    })
    const rows = await collect(p.runJob(bad, { errors: 'return', chunkSize: 1000 }))
    expect(rows).toHaveLength(10_000)
    const errs = rows.flatMap((r, i) => ('error' in r ? [[i, r.error.row, r.error.field, r.error.code]] : []))
    expect(errs).toEqual([
      [5, 5, 'bill_length_mm', 'ERR_INVALID_INPUT'],
      [7000, 7000, undefined, 'ERR_INVALID_INPUT'],
    ])
    const out = join(dir, 'bad.jsonl')
    const s = await p.runJob(bad, { errors: 'return', output: out }).done
    expect(s).toMatchObject({ rows: 10_000, errors: 2 })
    const lines = readFileSync(out, 'utf8').trim().split('\n')
    expect(JSON.parse(lines[5])).toMatchObject({ row: 5, error: { code: 'ERR_INVALID_INPUT', field: 'bill_length_mm' } })
    expect(JSON.parse(lines[7000]).error.message).toMatch(/the row has 3 values but the header has 7/)

    for (const source of [bad, (async function* () { yield* rows.map((_, i) => (i === 5 ? { bill_length_mm: 'abc' } : recordAt(i))) })()]) {
      const errRows: [number, string | undefined][] = []
      for await (const { firstRow, columns } of p.runJob(source as never, { errors: 'return', chunkSize: 1000, results: 'columns' })) {
        columns.errors.forEach((e, r) => e && errRows.push([e.row!, e.field]))
        expect(firstRow % 1000).toBe(0)
      }
      expect(errRows[0]).toEqual([5, 'bill_length_mm'])
    }

    const e = await rejectsWith(p.runJob(bad, { output: join(dir, 'fail.jsonl'), chunkSize: 1000 }).done, 'ERR_INVALID_INPUT')
    expect([e.row, e.field]).toEqual([5, 'bill_length_mm'])
    expect(existsSync(join(dir, 'fail.jsonl'))).toBe(false)

    const badJson = join(dir, 'bad.jsonl.in')
    writeFileSync(badJson, [JSON.stringify(records[0]), '{"island": "Dream",', JSON.stringify({ ...records[1], body_mass_g: 'heavy' })].join('\n') + '\n')
    const r2 = await collect(p.runJob(badJson, { format: 'jsonl', errors: 'return' }))
    expect(r2.map((r) => ('error' in r ? [r.error.row, r.error.field] : 'ok'))).toEqual(['ok', [1, undefined], [2, 'body_mass_g']])
    const e2 = await rejectsWith(p.runJob(badJson, { format: 'jsonl' }).done, 'ERR_INVALID_INPUT')
    expect(e2.row).toBe(1)

    // Records from an iterable: rows counted in the whole input too.
    const iter = [...records.slice(0, 20), { ...records[0], flipper_length_mm: 'long' }]
    const r3 = await collect(p.runJob(iter, { chunkSize: 8, errors: 'return' }))
    expect(r3.flatMap((r) => ('error' in r ? [[r.error.row, r.error.field]] : []))).toEqual([[20, 'flipper_length_mm']])
    const e3 = await rejectsWith(p.runJob(iter, { chunkSize: 8 }).done, 'ERR_INVALID_INPUT')
    expect([e3.row, e3.field]).toEqual([20, 'flipper_length_mm'])
  })

  it('refuses bad options, missing files and disposed sessions', async () => {
    const small = join(dir, 'small.csv')
    writeCsv(small, 10)
    throwsWith(() => p.runJob(small, { bogus: 1 } as never), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => p.runJob(small, { concurrency: 0 }), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => p.runJob(small, { chunkSize: 1.5 }), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => p.runJob(small, { errors: 'fail' as never }), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => p.runJob(small, { onProgress: 5 as never }), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => p.runJob(small, { signal: {} as never }), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => p.runJob(join(dir, 'x.txt')), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => p.runJob(records, { format: 'csv' }), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => p.runJob(42 as never), 'ERR_INVALID_ARGUMENT')
    const missing = throwsWith(() => p.runJob(join(dir, 'nope.csv')), 'ERR_FILE')
    expect([missing.path, missing.message]).toEqual([join(dir, 'nope.csv'), expect.stringMatching(/cannot open the job's input file/)])
    throwsWith(() => p.runJob(small, { output: join(dir, 'no', 'such', 'dir.jsonl') }), 'ERR_FILE')
    writeFileSync(join(dir, 'foreign.csv'), 'a,b\n1,2\n')
    throwsWith(() => p.runJob(join(dir, 'foreign.csv')), 'ERR_INVALID_ARGUMENT')
    const ac = new AbortController()
    ac.abort()
    throwsWith(() => p.runJob(small, { signal: ac.signal }), 'ERR_ABORTED')
    const job = p.runJob(small)
    for await (const _ of job) {
      // drain
    }
    expect(() => job[Symbol.asyncIterator]()).toThrow(OxinferError)

    // A throw from onProgress fails the job with that error.
    const boom = new Error('boom')
    const thrown = p.runJob(big, { output: join(dir, 'boom.jsonl'), progressIntervalMs: 0, onProgress: () => { throw boom } })
    expect(await settle(thrown)).toBe(boom)
    const thrown2 = p.runJob(records, { progressIntervalMs: 0, chunkSize: 64, onProgress: () => { throw boom } })
    await expect((async () => { for await (const _ of thrown2) { /* drain */ } })()).rejects.toBe(boom)
    expect(await settle(thrown2)).toBe(boom)
    await new Promise((r) => setTimeout(r, 50))
    expect(activeJobs()).toBe(0)

    const q = await Pipeline.load(specPath, { unknownFields: 'ignore' })
    await q.dispose()
    throwsWith(() => q.runJob(small), 'ERR_DISPOSED')
    throwsWith(() => q.runJob(records), 'ERR_DISPOSED')
    throwsWith(() => q.session.runJob([]), 'ERR_DISPOSED')
    expect(await settle(p.runJob(small))).toBeUndefined()
  })
})
