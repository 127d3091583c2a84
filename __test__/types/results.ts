// Type fixture (compiled by __test__/types.test.ts against the published
// declarations): result fields that are always there are not optional, and
// the ImageProcessor's `output` option decides its tensor's type.
import {
  ImageProcessor,
  versions,
  type BatchEncoding,
  type Encoding,
  type JobProgress,
  type JobSummary,
  type Pipeline,
  type PipelineColumns,
  type PipelineResult,
  type PipelineRowError,
  type RunTiming,
  type Session,
  type SessionStream,
  type StageTimings,
  type Tensor,
} from 'oxinfer'

function timing(t: RunTiming): number {
  const inline: boolean = t.inline
  return t.queueMicros + t.preprocessMicros + t.inferenceMicros + t.postprocessMicros + t.batchSize + t.batchRequests + Number(inline)
}

function jobs(s: JobSummary, p: JobProgress): number {
  const sum = s.rows + s.errors + s.seconds + s.rowsPerSecond
  const progress = p.rowsDone + p.errors + p.seconds + p.rowsPerSecond
  // @ts-expect-error [TS2322] total is known only for some sources
  const total: number = p.total
  // @ts-expect-error [TS2322] bytes are counted for files only
  const bytes: number = p.bytesDone
  return sum + progress + total + bytes
}

function pipelineResults(r: PipelineResult, c: PipelineColumns, t: StageTimings, e: PipelineRowError): void {
  const scores: Float32Array | Float64Array = r.scores
  const colScores: Float32Array | Float64Array = c.scores
  const shape: number = c.rows * c.k
  const errors: (Error | null)[] = c.errors
  const code: string = e.error.code
  const micros: number = t.preprocessMicros + t.assembleMicros + t.inferenceMicros + t.postprocessMicros
  // @ts-expect-error [TS2322] a label exists only with argmax, top_k or threshold
  const label: string | null = r.label
  // @ts-expect-error [TS2322] timings exist only when asked for
  const timings: StageTimings = r.timings
  void [scores, colScores, shape, errors, code, micros, label, timings]
}

function encodings(e: Encoding, b: BatchEncoding): void {
  const ids: Int32Array | BigInt64Array = e.ids
  const mask: Uint8Array = e.attentionMask
  const counts: number = b.rows + b.seqLen + b.starts[0]
  const batchMask: Uint8Array = b.attentionMask
  // @ts-expect-error [TS2322] type ids exist only with typeIds: true
  const typeIds: Uint8Array = e.typeIds
  // @ts-expect-error [TS2322] offsets exist only with the offsets option
  const offsets: Uint32Array = b.offsets
  void [ids, mask, counts, batchMask, typeIds, offsets]
}

async function sessions(session: Session, stream: SessionStream, pipeline: Pipeline): Promise<void> {
  const out: Record<string, Tensor> = await session.run({}, { onTiming: (t) => timing(t) })
  const streamed: Record<string, Tensor> = await stream.run({}, { onTiming: (t) => timing(t) })
  const name: string = session.inputs[0].name
  const dims: readonly (number | string)[] = session.outputs[0].dims
  const producer: string = session.metadata.producer
  const custom: string | undefined = session.metadata.custom.key
  const job = session.runJob([{}])
  const summary: JobSummary = await job.done
  for await (const chunk of job) {
    const y: Tensor = chunk.y
    void y
  }
  const result = await pipeline.run({ x: 1 }, { onTiming: (t) => timing(t) })
  const rowScores: Float32Array | Float64Array = result.scores
  for await (const chunk of pipeline.runJob('rows.csv')) {
    const firstRow: number = chunk.firstRow
    const results: (PipelineResult | PipelineRowError)[] = chunk.results
    void [firstRow, results]
  }
  for await (const chunk of pipeline.runJob('rows.csv', { results: 'columns' })) {
    const rows: number = chunk.columns.rows + chunk.firstRow
    void rows
  }
  const v: string = versions().oxinfer + versions().onnxruntime + versions().napi
  void [out, streamed, name, dims, producer, custom, summary, rowScores, v]
}

async function images(imgs: Uint8Array[], output: 'float32' | 'uint8'): Promise<void> {
  const floats = await new ImageProcessor({ resize: { width: 4, height: 4 }, normalize: 'imagenet' }).run(imgs)
  const f32: Tensor<'float32'> = floats
  const pixel: number = floats.data[0]
  const fdata: Float32Array = floats.data
  const bare: Tensor<'float32'> = await new ImageProcessor().run(imgs)
  const raw = await new ImageProcessor({ output: 'uint8', layout: 'hwc' }).run(imgs)
  const u8: Tensor<'uint8'> = raw
  const bytes: Uint8Array = raw.data
  const either: Tensor<'float32' | 'uint8'> = await new ImageProcessor({ output }).run(imgs)
  const p: ImageProcessor = new ImageProcessor({ output: 'uint8' })
  const resize = new ImageProcessor({ resize: { shorter: 8 } }).options.resize
  // @ts-expect-error [TS2322] raw pixels are not float32
  const notFloat: Tensor<'float32'> = raw
  // @ts-expect-error [TS2820] the output option is 'float32' or 'uint8'
  new ImageProcessor({ output: 'int8' })
  // @ts-expect-error [TS2353] unknown options are refused
  new ImageProcessor({ sizes: 1 })
  void [f32, pixel, fdata, bare, u8, bytes, either, p, resize, notFloat]
}

export { jobs, pipelineResults, encodings, sessions, images }
