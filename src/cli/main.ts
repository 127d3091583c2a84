#!/usr/bin/env node
// The `oxinfer` command: `serve` a model repository over the KServe v2
// protocol, `run` a pipeline over a CSV or JSONL file with a progress bar,
// `merge` the parts of a sharded run, `info` on a model or pipeline, and the monitor's `profile` (a reference
// profile stored in the spec) and `report` (a drift report as one HTML
// page). Arguments are parsed by commander; the
// work is the library's own (serve, Pipeline.runJob, Session).
import { Command, InvalidArgumentError, Option } from 'commander'

import { info } from './info'
import { profileCommand, reportCommand } from './monitor'
import { mergeCommand, runFile } from './run'
import { serveCommand } from './serve'

function integer(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`)
    return n
  }
}

const program = new Command()
  .name('oxinfer')
  .description('ML inference on a Rust core: serve a model repository (KServe v2), score files, inspect models.')
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  .version((require('../../package.json') as { version: string }).version)

program
  .command('serve')
  .description('Serve a model repository over HTTP with the KServe v2 / Open Inference Protocol (and /metrics).')
  .requiredOption('-r, --repository <dir>', 'model repository: one folder per model, numbered version folders inside')
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('-p, --port <port>', 'port (0: any free port)', integer('port', 0, 65535), 8000)
  .option('--poll [ms]', 'reload models whose files change (every 2000 ms, or the interval given)')
  .option('--token <token>', 'require "Authorization: Bearer <token>" (health routes stay open); also OXINFER_TOKEN')
  .option('--timeout-ms <ms>', 'queue timeout of requests that set none', integer('timeout-ms', 1, 86_400_000))
  .option('--threads <n>', 'HTTP runtime threads', integer('threads', 1, 256))
  .option('--models <names>', 'load only these models at start (comma-separated); others load through the repository API')
  .option('--drain-ms <ms>', 'on SIGTERM/SIGINT, how long to wait for requests in flight', integer('drain-ms', 0, 86_400_000), 30_000)
  .addOption(new Option('--log-level <level>', 'native log level (JSON lines on stdout; debug adds one line per request)').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'))
  .option('--curl', 'print ready-to-paste curl lines for the models served')
  .option('--feature-store <file>', 'open the feature stores this JSON file configures (one, or an array) before loading models, for pipelines with lookup stages')
  .action(serveCommand)

program
  .command('run')
  .description('Score a CSV or JSONL file with a pipeline spec, writing one result per row (offline batch scoring).')
  .argument('<pipeline>', 'pipeline spec (pipeline.json)')
  .requiredOption('-i, --input <file>', 'input file (.csv or .jsonl)')
  .requiredOption('-o, --output <file>', 'output file (.jsonl or .csv)')
  .option('--errors <mode>', "'throw' (stop at the first bad row) or 'return' (write its error and go on)", 'throw')
  .option('--chunk-size <rows>', 'rows per chunk', integer('chunk-size', 1, 1 << 24))
  .option('--shard <i/N>', "score shard i (0-based) of N, by byte ranges, into <output>.shard-<i>-of-<N>; 'N' alone takes i from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job)")
  .option('--no-progress', 'no progress bar')
  .action(runFile)

program
  .command('merge')
  .description('Join the parts that `run --shard` wrote into <output>, after checking that every row was scored exactly once.')
  .argument('<output>', 'the output path the shards were given')
  .option('--shards <n>', 'the shard count (default: from the manifests present)', integer('shards', 1, 2 ** 31 - 1))
  .option('--keep', 'keep the parts and manifests')
  .action(mergeCommand)

program
  .command('profile')
  .description("Profile reference records (JSONL or JSON) and store the profile in the pipeline spec's monitor.reference, for drift monitoring.")
  .argument('<pipeline>', 'pipeline spec (pipeline.json)')
  .requiredOption('-i, --input <file>', 'reference records (.jsonl, or .json: an array or {"records": [...]})')
  .option('-o, --output <file>', 'where to write the spec (default: update the spec in place); beside the original')
  .option('--exclude <fields>', 'fields to leave out of the profile (comma-separated): ids, free text; the feedback idField always is')
  .action(profileCommand)

program
  .command('report')
  .description('Run current records through a monitored pipeline and write a self-contained HTML drift report (histograms against the reference, drift statistics, quality over time, latency).')
  .argument('<pipeline>', 'pipeline spec with monitor.reference (see oxinfer profile)')
  .requiredOption('-i, --input <file>', 'current records (.jsonl, or .json)')
  .requiredOption('-o, --output <file>', 'the HTML report to write')
  .option('--truth <field>', "a record field holding the true outcome, fed back by the spec's monitor.feedback.idField")
  .option('--concurrency <n>', 'requests in flight', integer('concurrency', 1, 4096), 32)
  .option('--fail-on-drift', 'exit with status 2 when a feature drifts')
  .option('--no-progress', 'no progress bar')
  .action(reportCommand)

program
  .command('info')
  .description("Print a model's inputs, outputs, metadata and batch dimension (or a pipeline's fields and model).")
  .argument('<model>', 'an .onnx model or a pipeline spec (.json)')
  .option('--json', 'print JSON')
  .action(info)

program.parseAsync(process.argv).catch((e: unknown) => {
  const err = e as { code?: string; message?: string }
  process.stderr.write(`oxinfer: ${err.code ? `${err.code}: ` : ''}${err.message ?? String(e)}\n`)
  process.exitCode = 1
})
