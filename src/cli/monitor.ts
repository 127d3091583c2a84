// `oxinfer profile` and `oxinfer report`: the monitor's offline doors.
// `profile` builds a reference profile over a reference file and stores it
// in the pipeline spec (`monitor.reference`); `report` runs a file of current
// records through the pipeline (one request each, so latencies are real),
// feeds back outcomes from a truth field when asked, and writes the drift
// report as one self-contained HTML page. The statistics are the native
// monitor's; this module reads files and renders.
import { readFileSync, writeFileSync } from 'node:fs'
import { basename, dirname, resolve as resolvePath } from 'node:path'
import { SingleBar } from 'cli-progress'

import { invalidArg, OxinferError } from '../errors'
import type { Quality } from '../monitor'
import { Pipeline } from '../pipeline/pipeline'
import type { PipelineSpec } from '../pipeline/spec'
import { renderReport } from '../report'

/** Records from a JSONL file (one object per line), a JSON array, or a JSON object holding `records`. */
export function readRecords(path: string): Record<string, unknown>[] {
  if (/\.csv$/i.test(path)) throw invalidArg(`'${path}': profile and report read JSONL or JSON records; convert the CSV (oxinfer run reads CSV for scoring)`)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new OxinferError('ERR_FILE', `cannot read '${path}': ${(e as Error).message}`, { path, cause: e })
  }
  const bad = (where: string, why: string) => new OxinferError('ERR_INVALID_INPUT', `'${path}' ${where}: ${why}`)
  let list: unknown
  if (/\.(jsonl|ndjson)$/i.test(path)) {
    list = text.split('\n').flatMap((line, i) => {
      if (line.trim() === '') return []
      try {
        return [JSON.parse(line)]
      } catch (e) {
        throw bad(`line ${i + 1}`, (e as Error).message)
      }
    })
  } else {
    try {
      const v = JSON.parse(text) as unknown
      list = Array.isArray(v) ? v : (v as { records?: unknown })?.records
    } catch (e) {
      throw bad('', (e as Error).message)
    }
  }
  if (!Array.isArray(list)) throw bad('', 'expected JSONL records, a JSON array of records, or an object with a "records" array')
  list.forEach((r, i) => {
    if (r === null || typeof r !== 'object' || Array.isArray(r)) throw bad(`record ${i + 1}`, 'is not an object')
  })
  if (list.length === 0) throw bad('', 'holds no records')
  return list as Record<string, unknown>[]
}

function readSpec(path: string): PipelineSpec {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as PipelineSpec
  } catch (e) {
    throw new OxinferError('ERR_FILE', `cannot read the pipeline spec '${path}': ${(e as Error).message}`, { path, cause: e })
  }
}

export interface ProfileFlags {
  input: string
  output?: string
  exclude?: string
}

/** Writes the spec with `monitor.reference` set to the profile of the input's records (other monitor settings kept). */
export async function profileCommand(specPath: string, flags: ProfileFlags): Promise<void> {
  const records = readRecords(flags.input)
  const spec = readSpec(specPath)
  const pipeline = await Pipeline.load(specPath)
  try {
    const reference = await pipeline.profile(records)
    // Fields that are not a distribution (ids, free text) stay out; the feedback id always does.
    const skip = new Set([...(flags.exclude ?? '').split(',').map((f) => f.trim()).filter(Boolean), ...(spec.monitor?.feedback ? [spec.monitor.feedback.idField] : [])])
    const unknown = [...skip].filter((f) => !reference.features.some((x) => x.name === f) && !spec.fields.some((x) => x.name === f))
    if (unknown.length > 0) throw invalidArg(`profile: --exclude names no field: ${unknown.join(', ')}`)
    reference.features = reference.features.filter((f) => !skip.has(f.name))
    const out = resolvePath(flags.output ?? specPath)
    // The text as written, with the reference added; paths stay relative to where they were.
    if (out !== resolvePath(specPath) && dirname(out) !== dirname(resolvePath(specPath))) {
      throw invalidArg('profile: write the spec beside the original (its model path is relative to it)')
    }
    spec.monitor = { ...(spec.monitor ?? {}), reference } as PipelineSpec['monitor']
    writeFileSync(out, JSON.stringify(spec, null, 2) + '\n')
    process.stderr.write(`profiled ${records.length} records: ${reference.features.length} features -> ${out}\n`)
  } finally {
    await pipeline.dispose()
  }
}

export interface ReportFlags {
  input: string
  output: string
  truth?: string
  concurrency: number
  failOnDrift?: boolean
  progress: boolean
}

export async function reportCommand(specPath: string, flags: ReportFlags): Promise<void> {
  const records = readRecords(flags.input)
  const spec = readSpec(specPath)
  if (!spec.monitor?.reference) throw invalidArg(`'${specPath}' has no monitor.reference: build one with 'oxinfer profile ${specPath} -i <reference records>'`)
  const idField = spec.monitor.feedback?.idField
  if (flags.truth !== undefined && idField === undefined) throw invalidArg(`--truth needs the spec's monitor.feedback section (its idField names each record's prediction id)`)
  // The window covers the whole file; the report's own run writes no log.
  // (No time window either: the report covers every record of the file.)
  const { log: _log, windowMs: _windowMs, ...monitor } = spec.monitor
  spec.monitor = { ...monitor, window: Math.min(10_000_000, Math.max(10, records.length)), checkEvery: 1_000_000_000 }
  // Records may carry more than the spec reads (the truth field, say).
  const pipeline = await Pipeline.create(spec, { baseDir: dirname(resolvePath(specPath)), unknownFields: 'ignore' })
  const bar = flags.progress && process.stderr.isTTY ? new SingleBar({ format: '{bar} {percentage}% | {value}/{total} records', stream: process.stderr, hideCursor: true }) : null
  const latencyUs: number[] = []
  const quality: { records: number; quality: Quality }[] = []
  let failed = 0
  let firstError = ''
  try {
    bar?.start(records.length, 0)
    // Quality is sampled about 50 times over the file.
    const every = Math.max(flags.concurrency, Math.ceil(records.length / 50))
    for (let start = 0; start < records.length; start += every) {
      const part = records.slice(start, start + every)
      for (let i = 0; i < part.length; i += flags.concurrency) {
        await Promise.all(
          part.slice(i, i + flags.concurrency).map(async (r) => {
            const t0 = performance.now()
            try {
              await pipeline.run(r)
              latencyUs.push((performance.now() - t0) * 1000)
            } catch (e) {
              if (failed++ === 0) firstError = (e as Error).message
            }
          }),
        )
      }
      if (flags.truth !== undefined) {
        for (const r of part) {
          const id = r[idField!]
          const truth = r[flags.truth]
          if (typeof id !== 'string' || (typeof truth !== 'string' && typeof truth !== 'number')) continue
          try {
            pipeline.feedback(id, truth)
          } catch {
            // A failed record has no prediction to score.
          }
        }
        const q = pipeline.quality()
        if (q && q.window > 0) quality.push({ records: start + part.length, quality: q })
      }
      bar?.update(start + part.length)
    }
    bar?.stop()
    const drift = pipeline.drift()!
    const html = renderReport({ title: spec.name ?? basename(specPath, '.json'), source: basename(flags.input), drift, quality, latencyUs })
    writeFileSync(flags.output, html)
    const flagged = drift.drifted.length === 0 ? 'no drift' : `drift in ${drift.drifted.join(', ')}`
    process.stderr.write(`${records.length} records (${failed} failed${failed ? `; the first: ${firstError}` : ''}): ${flagged} -> ${flags.output}\n`)
    if (flags.failOnDrift && drift.drifted.length > 0) process.exitCode = 2
  } finally {
    bar?.stop()
    await pipeline.dispose()
  }
}
