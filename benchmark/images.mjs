// Image pre-processing benchmark (issue #4): real photos (china.jpg and
// flower.jpg, 640×427 baseline JPEGs) to model-ready 224×224 ImageNet-
// normalised CHW float32 tensors, in batches of 200 images, in images/s:
//
//   - oxinfer: ImageProcessor.run(batch): decode, resize, crop, normalise and
//     HWC→CHW natively, the images of a batch in parallel off the JS thread;
//   - the path a Node user writes: sharp (libvips) for decode + resize (+
//     extract for the crop) to raw RGB, all images of the batch in flight at
//     once (each sharp pipeline runs on a libuv threadpool thread; sharp's
//     default concurrency), then JS loops for normalise + HWC→CHW into one
//     Float32Array as each image arrives.
//
// Two pipelines: torchvision's "resize the shorter side to 256, centre-crop
// 224" and a plain resize to 224×224.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'

import { FIXTURES, QUICK, cleanRound, loadOxinfer, log, median, now, round } from './util.mjs'

const require = createRequire(import.meta.url)
const BATCH = Number(process.env.OXINFER_BENCH_IMAGE_BATCH) || 200
const ROUNDS = QUICK ? 2 : 5
const PASSES = QUICK ? 1 : 2
const SIZE = 224
const PLANE = SIZE * SIZE
const MEAN = [0.485, 0.456, 0.406]
const STD = [0.229, 0.224, 0.225]

/** torchvision's Resize(256) size: the shorter side to 256, the other truncated. */
function shorterTo(width, height, s = 256) {
  return width <= height ? [s, Math.floor((s * height) / width)] : [Math.floor((s * width) / height), s]
}

/** The JS loop: RGB HWC bytes -> normalised CHW floats at image `i` of `out`. */
function normalizeInto(out, i, data) {
  const base = i * 3 * PLANE
  const [m0, m1, m2] = MEAN
  const [s0, s1, s2] = STD
  for (let p = 0, q = 0; p < PLANE; p++, q += 3) {
    out[base + p] = (data[q] / 255 - m0) / s0
    out[base + PLANE + p] = (data[q + 1] / 255 - m1) / s1
    out[base + 2 * PLANE + p] = (data[q + 2] / 255 - m2) / s2
  }
}

function makeSharp(sharp, batch) {
  const exact = (kernel) => async () => {
    const out = new Float32Array(batch.length * 3 * PLANE)
    await Promise.all(
      batch.map(async (bytes, i) => {
        const data = await sharp(bytes).resize(SIZE, SIZE, { fit: 'fill', kernel }).removeAlpha().raw().toBuffer()
        normalizeInto(out, i, data)
      }),
    )
    return out
  }
  // `known`: the source size is known in advance (skips the metadata() call).
  const crop = (kernel, known) => async () => {
    const out = new Float32Array(batch.length * 3 * PLANE)
    await Promise.all(
      batch.map(async (bytes, i) => {
        const { width, height } = known ?? (await sharp(bytes).metadata())
        const [w, h] = shorterTo(width, height)
        const left = Math.round((w - SIZE) / 2)
        const top = Math.round((h - SIZE) / 2)
        const data = await sharp(bytes).resize(w, h, { fit: 'fill', kernel }).extract({ left, top, width: SIZE, height: SIZE }).removeAlpha().raw().toBuffer()
        normalizeInto(out, i, data)
      }),
    )
    return out
  }
  return { exact, crop }
}

function diff(a, b) {
  let sum = 0
  let max = 0
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i])
    sum += d
    if (d > max) max = d
  }
  return { meanAbs: round(sum / a.length, 4), maxAbs: round(max, 3) }
}

export async function run() {
  const ox = loadOxinfer()
  const sharp = require('sharp')
  const sharpVersions = { sharp: sharp.versions.sharp, vips: sharp.versions.vips, mozjpeg: sharp.versions.mozjpeg }
  const sharpDefaults = { concurrency: sharp.concurrency(), simd: sharp.simd(), uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE) || 4 }
  // As sharp's own benchmarks do: no libvips operation cache between passes.
  sharp.cache(false)

  const sources = ['china.jpg', 'flower.jpg'].map((f) => readFileSync(join(FIXTURES, 'images', f)))
  const meta = await sharp(sources[0]).metadata()
  // Distinct copies, so nothing can be cached by buffer identity.
  const batch = Array.from({ length: BATCH }, (_, i) => Buffer.from(sources[i % sources.length]))
  const S = makeSharp(sharp, batch)
  const pCrop = new ox.ImageProcessor({ resize: { shorter: 256 }, centerCrop: { width: SIZE, height: SIZE }, normalize: 'imagenet' })
  const pExact = new ox.ImageProcessor({ resize: { width: SIZE, height: SIZE }, normalize: 'imagenet' })
  const known = { width: meta.width, height: meta.height }

  const pipelines = {
    crop: {
      label: 'resize shorter side to 256, centre-crop 224×224, normalise, CHW',
      contenders: {
        oxinfer: { label: "oxinfer ImageProcessor { resize: { shorter: 256 }, centerCrop: 224×224, normalize: 'imagenet' }", fn: () => pCrop.run(batch).then((t) => t.data) },
        sharpDefault: { label: 'sharp (default kernel lanczos3) + metadata() per image, JS normalise', fn: S.crop(undefined) },
        sharpLinear: { label: "sharp kernel 'linear', source size known (no metadata()), JS normalise", fn: S.crop('linear', known) },
      },
    },
    exact: {
      label: 'resize to 224×224, normalise, CHW',
      contenders: {
        oxinfer: { label: "oxinfer ImageProcessor { resize: 224×224, normalize: 'imagenet' }", fn: () => pExact.run(batch).then((t) => t.data) },
        sharpDefault: { label: 'sharp (default kernel lanczos3), JS normalise', fn: S.exact(undefined) },
        sharpLinear: { label: "sharp kernel 'linear', JS normalise", fn: S.exact('linear') },
      },
    },
  }

  const results = {}
  for (const [pname, p] of Object.entries(pipelines)) {
    const keys = Object.keys(p.contenders)
    // Warm-up, and agreement of the outputs (different resamplers: small differences expected).
    const outs = {}
    for (const k of keys) outs[k] = await p.contenders[k].fn()
    for (const k of keys) await p.contenders[k].fn()
    const agreement = Object.fromEntries(keys.filter((k) => k !== 'oxinfer').map((k) => [k, diff(outs.oxinfer, outs[k])]))
    for (const k of keys) delete outs[k]

    const samples = Object.fromEntries(keys.map((k) => [k, []]))
    const roundNoise = []
    for (let r = 0; r < ROUNDS; r++) {
      const order = keys.map((_, i) => keys[(i + r) % keys.length])
      const { result, foreignCores, discarded } = await cleanRound(`images ${pname} round ${r + 1}`, async () => {
        const res = Object.fromEntries(keys.map((k) => [k, []]))
        for (const k of order) {
          for (let pass = 0; pass < PASSES; pass++) {
            global.gc?.()
            const elu0 = performance.eventLoopUtilization()
            const t0 = now()
            await p.contenders[k].fn()
            const ms = now() - t0
            const elu = performance.eventLoopUtilization(elu0)
            res[k].push({ imagesPerSec: (BATCH / ms) * 1000, ms, jsThreadMs: elu.active })
          }
        }
        return res
      })
      for (const k of keys) samples[k].push(...result[k])
      roundNoise.push({ foreignCores, discarded })
      log(`images ${pname} round ${r + 1}: ` + keys.map((k) => `${k} ${round(median(result[k].map((s) => s.imagesPerSec)), 1)}/s`).join(', ') + ` (other processes ${foreignCores} cores)`)
    }
    const rows = keys.map((k) => {
      const s = samples[k]
      return {
        key: k,
        label: p.contenders[k].label,
        imagesPerSec: round(median(s.map((x) => x.imagesPerSec)), 1),
        msPerBatch: round(median(s.map((x) => x.ms)), 1),
        jsThreadMsPerImage: round(median(s.map((x) => x.jsThreadMs)) / BATCH, 3),
        roundMedians: Array.from({ length: ROUNDS }, (_, r) => round(median(s.slice(r * PASSES, (r + 1) * PASSES).map((x) => x.imagesPerSec)), 1)),
      }
    })
    const oxRow = rows.find((r) => r.key === 'oxinfer')
    const sharpRows = rows.filter((r) => r.key !== 'oxinfer')
    for (const r of rows) r.oxinferRatio = round(oxRow.imagesPerSec / r.imagesPerSec, 2)
    const bestSharp = sharpRows.reduce((a, b) => (b.imagesPerSec > a.imagesPerSec ? b : a))
    results[pname] = {
      label: p.label,
      contenders: rows,
      agreementWithOxinfer: agreement,
      vsSharpDefault: round(oxRow.imagesPerSec / rows.find((r) => r.key === 'sharpDefault').imagesPerSec, 2),
      vsBestSharp: round(oxRow.imagesPerSec / bestSharp.imagesPerSec, 2),
      bestSharp: bestSharp.key,
      roundNoise,
    }
    log(`images ${pname}: oxinfer ${oxRow.imagesPerSec}/s; ${results[pname].vsSharpDefault}× sharp default, ${results[pname].vsBestSharp}× the best sharp variant`)
  }
  return {
    batch: BATCH,
    rounds: ROUNDS,
    passesPerRound: PASSES,
    source: { files: ['china.jpg', 'flower.jpg'], width: meta.width, height: meta.height, format: meta.format, chromaSubsampling: meta.chromaSubsampling },
    sharp: { ...sharpVersions, ...sharpDefaults, cache: false },
    pipelines: results,
    targets: {
      cropVsSharp: results.crop.vsBestSharp,
      exactVsSharp: results.exact.vsBestSharp,
      atLeast1_5x: results.crop.vsBestSharp >= 1.5 && results.exact.vsBestSharp >= 1.5,
    },
  }
}
