// Test helpers for the server: building KServe v2 requests with the binary
// tensor data extension, and reading binary responses.

type Data = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | unknown[]
interface TensorIn {
  name: string
  datatype: string
  shape: number[]
  data: Data
}

/** Binary bytes of a tensor: typed arrays as they lie, BYTES as length-prefixed strings. */
function bytesOf(t: TensorIn): Buffer | null {
  if (ArrayBuffer.isView(t.data)) return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)
  if (t.datatype === 'BYTES') {
    const parts = (t.data as string[]).flat(Infinity as 1).map((s) => {
      const b = Buffer.from(String(s), 'utf8')
      const len = Buffer.alloc(4)
      len.writeUInt32LE(b.length)
      return Buffer.concat([len, b])
    })
    return Buffer.concat(parts)
  }
  return null
}

/** A request whose typed-array and BYTES inputs travel as binary data after the JSON header. */
export function binaryRequest(req: { inputs: TensorIn[]; parameters?: Record<string, unknown>; outputs?: unknown[] }): { body: Uint8Array; headerLength: number } {
  const blobs: Buffer[] = []
  const inputs = req.inputs.map((t) => {
    const b = bytesOf(t)
    if (b === null) return t
    blobs.push(b)
    return { name: t.name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: b.length } }
  })
  const header = Buffer.from(JSON.stringify({ inputs, ...(req.parameters ? { parameters: req.parameters } : {}), ...(req.outputs ? { outputs: req.outputs } : {}) }))
  return { body: new Uint8Array(Buffer.concat([header, ...blobs])), headerLength: header.length }
}

/** The JSON header and each binary output's bytes of a response. */
export async function readBinaryResponse(r: Response): Promise<{ header: any; tensors: Record<string, Uint8Array> }> {
  const buf = Buffer.from(await r.arrayBuffer())
  const len = Number(r.headers.get('inference-header-content-length') ?? buf.length)
  const header = JSON.parse(buf.toString('utf8', 0, len))
  const tensors: Record<string, Uint8Array> = {}
  let off = len
  for (const o of header.outputs) {
    const size = o.parameters?.binary_data_size
    if (size === undefined) continue
    tensors[o.name] = new Uint8Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + size))
    off += size
  }
  if (off !== buf.length) throw new Error(`binary response: ${buf.length - off} bytes left over`)
  return { header, tensors }
}
