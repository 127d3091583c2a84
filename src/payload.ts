// Payload decoding: reads what a finished run sends back (its engine time,
// packed outputs and timing; see crates/oxinfer-node/src/payload.rs) as views
// into its buffer, without objects made per result.
import { native } from './native'
import { ARRAY_CTORS, TYPE_BY_CODE, type TensorType } from './tensor'
import { decodeNonTensor, NON_TENSOR } from './values'

/** The dtype code of a non-tensor output (crates/oxinfer-node/src/payload.rs). */
const NON_TENSOR_CODE = 255

/** How many numbers of timing end each run's header (see readTiming). */
const TIMING_LEN = native.TIMING_LEN

/**
 * Where one request's time went, in microseconds, and the batch it ran in
 * (see {@link RunOptions.onTiming}).
 */
export interface RunTiming {
  /** From the call until its batch started on a worker, including any hold for more requests. 0 when run inline. */
  queueMicros: number
  /** Merging the batch's inputs, or a pipeline's pre-processing and feature assembly. */
  preprocessMicros: number
  /** The engine's run of the whole batch. */
  inferenceMicros: number
  /** Splitting the batch's outputs, or a pipeline's post-processing. */
  postprocessMicros: number
  /** Rows (along the batch axis) of the batch the request ran in. */
  batchSize: number
  /** Requests merged into that batch. */
  batchRequests: number
  /** Whether it ran inline on the JS thread (see `inlineThresholdMicros`). */
  inline: boolean
}
/**
 * Where a payload's block lies (see crates/oxinfer-node/src/payload.rs): its
 * own `[0, ArrayBuffer, strings]`, or an offset into the buffer that small
 * results of one delivery share. Set by `locate`, read right after it, so no
 * object is made per result.
 */
let pBuf: ArrayBuffer
let pH: Float64Array
let pBase = 0
let pStrings: string[][] | null = null
/** The shared buffer of the delivery being settled, and an f64 view of it. */
let sharedBuf: ArrayBuffer | null = null
let sharedH: Float64Array | null = null

/**
 * @internal Sets the buffer that small results of the delivery being settled share
 * (see hub.ts); null once it is settled, so only views made meanwhile keep it alive.
 */
export function setShared(shared: ArrayBuffer | null): void {
  sharedBuf = shared
  sharedH = shared === null ? null : new Float64Array(shared)
}

function locate(payload: unknown): void {
  if (typeof payload === 'number') {
    pBuf = sharedBuf!
    pH = sharedH!
    pBase = payload / 8
    pStrings = null
  } else {
    const a = payload as unknown[]
    pBuf = a[1] as ArrayBuffer
    pH = new Float64Array(pBuf, 0, pBuf.byteLength >> 3)
    pBase = 0
    pStrings = a[2] as string[][] | null
  }
}

/** @internal The engine micros a run was charged (the header's first value). */
export function payloadMicros(payload: unknown): number {
  locate(payload)
  return pH[pBase]
}

/**
 * @internal Walks a run's packed outputs: views into its block rather than objects made
 * natively. Small outputs may be views into a buffer shared with other results
 * (like Node's Buffer pool); their `byteOffset` says where.
 */
export function unpack(payload: unknown, each: (nameId: number, type: TensorType | typeof NON_TENSOR, data: unknown, dims: number[]) => void): void {
  locate(payload)
  const h = pH
  const buf = pBuf
  const strings = pStrings
  const base = pBase
  const count = h[base + 1]
  // The entries, then the request's timing (TIMING_LEN values; see readTiming); data follows.
  let end = base + 2
  for (let k = 0; k < count; k++) end += 4 + h[end + 3]
  const head = (end + TIMING_LEN) * 8
  let i = base + 2
  for (let k = 0; k < count; k++) {
    const rank = h[i + 3]
    const dims: number[] = new Array(rank)
    let n = 1
    for (let d = 0; d < rank; d++) n *= dims[d] = h[i + 4 + d]
    const type = TYPE_BY_CODE[h[i + 1]]
    // Code 255: a sequence or map, its JSON as its one string (payload.rs).
    if (h[i + 1] === NON_TENSOR_CODE) each(h[i], NON_TENSOR, decodeNonTensor(strings![h[i + 2]][0]), dims)
    else if (type === 'string') each(h[i], type, strings![h[i + 2]], dims)
    else {
      const View = ARRAY_CTORS[type] as unknown as new (b: ArrayBuffer, off: number, n: number) => unknown
      each(h[i], type, new View(buf, head + h[i + 2], n), dims)
    }
    i += 4 + rank
  }
}

/** @internal The timing a run's payload carries at the end of its header (see payload.rs). */
export function readTiming(payload: unknown, inline: boolean, extraQueueMicros = 0): RunTiming {
  locate(payload)
  const h = pH
  let i = pBase + 2
  for (let k = 0; k < h[pBase + 1]; k++) i += 4 + h[i + 3]
  return {
    queueMicros: h[i] + extraQueueMicros,
    preprocessMicros: h[i + 1],
    inferenceMicros: h[i + 2],
    postprocessMicros: h[i + 3],
    batchSize: h[i + 4],
    batchRequests: h[i + 5],
    inline,
  }
}
