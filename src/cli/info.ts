// `oxinfer info`: a model's inputs, outputs, metadata and batch dimension
// (dim 0 when it is symbolic or dynamic in every input), or for a pipeline
// spec its fields, model and outputs.
import { Pipeline } from '../pipeline/pipeline'
import { Session } from '../session/session'
import type { ValueInfo } from '../session/options'

function batchDim(list: readonly ValueInfo[]): string | null {
  if (list.length === 0) return null
  const first = list.map((v) => v.dims[0])
  return first.every((d) => typeof d === 'string' || d === -1) ? String(first[0]) : null
}

export async function info(model: string, flags: { json?: boolean }): Promise<void> {
  if (model.endsWith('.json')) {
    const p = await Pipeline.load(model)
    try {
      const s = p.spec
      const out = { kind: 'pipeline', name: s.name, model: s.model, fields: s.fields, inputs: p.session.inputs, outputs: p.session.outputs, postprocess: s.output.postprocess ?? [] }
      process.stdout.write(flags.json ? `${JSON.stringify(out, null, 2)}\n` : text(out))
    } finally {
      await p.dispose()
    }
    return
  }
  const session = await Session.create(model)
  try {
    const out = { kind: 'model', inputs: session.inputs, outputs: session.outputs, metadata: session.metadata, batchDimension: batchDim(session.inputs), poolSize: session.poolSize }
    process.stdout.write(flags.json ? `${JSON.stringify(out, null, 2)}\n` : text(out))
  } finally {
    await session.dispose()
  }
}

function text(o: Record<string, unknown>): string {
  const lines: string[] = []
  for (const [k, v] of Object.entries(o)) {
    if (Array.isArray(v)) {
      lines.push(`${k}:`)
      for (const x of v) lines.push(`  ${typeof x === 'object' && x !== null && 'name' in x ? `${(x as { name: string }).name}  ${JSON.stringify({ ...(x as object), name: undefined })}` : JSON.stringify(x)}`)
    } else lines.push(`${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
  }
  return `${lines.join('\n')}\n`
}
