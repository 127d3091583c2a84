// `oxinfer run`: offline batch scoring of a CSV or JSONL file through a
// pipeline spec (Pipeline.runJob, read and written natively), with a
// progress bar, an ETA and the final throughput on stderr; one shard of the
// file with --shard. `oxinfer merge` joins the shards' parts.
import { SingleBar } from 'cli-progress'

import { Pipeline } from '../pipeline/pipeline'
import { mergeShards, parseShard } from '../shards'

export interface RunFlags {
  input: string
  output: string
  errors: string
  chunkSize?: number
  shard?: string
  progress: boolean
}

export async function runFile(spec: string, flags: RunFlags): Promise<void> {
  if (flags.errors !== 'throw' && flags.errors !== 'return') throw Object.assign(new Error(`--errors must be 'throw' or 'return', got '${flags.errors}'`), { code: 'ERR_INVALID_ARGUMENT' })
  const shard = flags.shard === undefined ? undefined : parseShard(flags.shard)
  const pipeline = await Pipeline.load(spec)
  const bar = flags.progress && process.stderr.isTTY !== false ? new SingleBar({ format: '{bar} {percentage}% | {value}/{total} rows | {rate} rows/s | ETA {eta_formatted}', stream: process.stderr, hideCursor: true }) : null
  let started = false
  try {
    const job = pipeline.runJob(flags.input, {
      output: flags.output,
      errors: flags.errors as 'throw' | 'return',
      chunkSize: flags.chunkSize,
      shard,
      onProgress: (p) => {
        if (!bar) return
        const total = Math.max(p.total ?? p.rowsDone, p.rowsDone)
        if (!started) {
          bar.start(total, p.rowsDone, { rate: 0 })
          started = true
        }
        bar.setTotal(total)
        bar.update(p.rowsDone, { rate: Math.round(p.rowsPerSecond) })
      },
    })
    const s = await job.done
    bar?.stop()
    const to = shard ? `shard ${shard.index} of ${shard.count} of ${flags.output}` : flags.output
    process.stderr.write(`${s.rows} rows (${s.errors} with errors) in ${s.seconds.toFixed(2)} s: ${Math.round(s.rowsPerSecond)} rows/s -> ${to}\n`)
  } finally {
    bar?.stop()
    await pipeline.dispose()
  }
}

export async function mergeCommand(output: string, flags: { shards?: number; keep?: boolean }): Promise<void> {
  const r = await mergeShards(output, { count: flags.shards, keep: flags.keep ?? false })
  process.stderr.write(`${r.rows} rows (${r.errors} with errors) from ${r.shards} shards of ${r.input}, each row once -> ${r.output}\n`)
}
