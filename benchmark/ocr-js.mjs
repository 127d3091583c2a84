// The hand-written JS stages of the PaddleOCR chain (issue #14's OCR
// benchmark), written as a performance-minded Node developer would: sharp to
// decode, typed arrays, loops compiled once (resize coefficients and
// normalisation tables cached), a flat DFS over a Uint8Array mask for the
// boxes, crops resized straight into one Float32Array batch, CTC in a tight
// loop. The model runs are injected (`runModel`), so the same stages drive
// onnxruntime-node and oxinfer Sessions.
//
// The math mirrors crates/oxinfer-core/src/vision/*.rs (and the Pillow-exact
// bilinear resize of crates/oxinfer-core/src/image/resample.rs) operation for
// operation, with f32 rounding (Math.fround) where Rust computes in f32, so
// that the tensors fed to the models are bit-identical to the Rust chain's
// (crates/oxinfer-core/tests/ocr.rs).
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'

const require = createRequire(import.meta.url)
const sharp = require('sharp')

/** PaddleOCR's settings, as in crates/oxinfer-core/tests/ocr.rs. */
export const OCR = {
  detMaxSide: 960,
  cropH: 48,
  clsW: 192,
  clsThresh: 0.9,
  recMinW: 320,
  recMaxW: 3200,
  thresh: 0.3,
  boxThresh: 0.6,
  unclipRatio: 2.0,
  minSize: 3,
  maxBoxes: 1000,
  rowTolerance: 10.0,
  minPageSide: 3.0,
}

const f = Math.fround

// --- decoding ----------------------------------------------------------------

/** PNG/JPEG bytes to interleaved RGB u8 (sharp, on libuv's threadpool). */
export async function decode(bytes) {
  const { data, info } = await sharp(bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true })
  const { width: w, height: h, channels } = info
  if (channels === 3) return { rgb: data, w, h }
  if (channels !== 1) throw new Error(`unexpected ${channels}-channel image`)
  const rgb = new Uint8Array(w * h * 3)
  for (let i = 0, j = 0; i < w * h; i++, j += 3) rgb[j] = rgb[j + 1] = rgb[j + 2] = data[i]
  return { rgb, w, h }
}

// --- Pillow-exact bilinear resize (cached coefficients) ------------------------

const PRECISION_BITS = 22
const ROUND = 1 << (PRECISION_BITS - 1)
const coeffCache = new Map()

/** Pillow's BILINEAR coefficients for in -> out: first source index, taps, fixed-point weights. */
function coeffs(inSize, outSize) {
  const key = inSize * 65536 + outSize
  let k = coeffCache.get(key)
  if (k) return k
  const scale = inSize / outSize
  const filterscale = Math.max(scale, 1)
  const support = filterscale
  const ksize = Math.ceil(support) * 2 + 1
  const xmins = new Int32Array(outSize)
  const ns = new Int32Array(outSize)
  const weights = new Int32Array(outSize * ksize)
  const tmp = new Float64Array(ksize)
  const ss = 1 / filterscale
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0)
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin
    let ww = 0
    for (let x = 0; x < xmax; x++) {
      const a = Math.abs((x + xmin - center + 0.5) * ss)
      const w = a < 1 ? 1 - a : 0
      tmp[x] = w
      ww += w
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? tmp[x] / ww : tmp[x]
      const fx = w * (1 << PRECISION_BITS)
      weights[xx * ksize + x] = w < 0 ? Math.trunc(fx - 0.5) : Math.trunc(fx + 0.5)
    }
    xmins[xx] = xmin
    ns[xx] = xmax
  }
  k = { xmins, ns, ksize, weights }
  if (coeffCache.size > 4096) coeffCache.clear()
  coeffCache.set(key, k)
  return k
}

const clip8 = (v) => {
  const x = v >> PRECISION_BITS
  return x < 0 ? 0 : x > 255 ? 255 : x
}

let scratch = new Uint8Array(1 << 16)
function scratchOf(n) {
  if (scratch.length < n) scratch = new Uint8Array(n)
  return scratch
}

/**
 * Resizes the `cw`×`ch` window at (`x0`, `y0`) of an interleaved RGB page
 * (`pw` wide) to `ow`×`oh` (Pillow's bilinear: horizontal pass into a u8
 * intermediate, then vertical), writing `lut[c][v]` (the normalised value of
 * u8 `v` for tensor channel c, BGR order) into a CHW slot of `dst` at `off`,
 * rows `stride` wide, planes `plane` apart.
 */
function resizeInto(rgb, pw, x0, y0, cw, ch, ow, oh, dst, off, stride, plane, lut) {
  // Horizontal pass over the window's rows (copy when the width is kept).
  const tmp = scratchOf(ow * ch * 3)
  if (ow === cw) {
    for (let y = 0; y < ch; y++) {
      const s = ((y0 + y) * pw + x0) * 3
      tmp.set(rgb.subarray(s, s + cw * 3), y * ow * 3)
    }
  } else {
    const { xmins, ns, ksize, weights } = coeffs(cw, ow)
    for (let y = 0; y < ch; y++) {
      const row = ((y0 + y) * pw + x0) * 3
      const out = y * ow * 3
      for (let x = 0; x < ow; x++) {
        const base = row + xmins[x] * 3
        const n = ns[x]
        const wo = x * ksize
        let r = ROUND
        let g = ROUND
        let b = ROUND
        for (let i = 0; i < n; i++) {
          const w = weights[wo + i]
          const p = base + i * 3
          r += rgb[p] * w
          g += rgb[p + 1] * w
          b += rgb[p + 2] * w
        }
        const o = out + x * 3
        tmp[o] = clip8(r)
        tmp[o + 1] = clip8(g)
        tmp[o + 2] = clip8(b)
      }
    }
  }
  const lb = lut[0]
  const lg = lut[1]
  const lr = lut[2]
  // Vertical pass, normalised into the three planes (B, G, R).
  if (oh === ch) {
    for (let y = 0; y < oh; y++) {
      const src = y * ow * 3
      const o = off + y * stride
      for (let x = 0; x < ow; x++) {
        const p = src + x * 3
        dst[o + x] = lb[tmp[p + 2]]
        dst[o + plane + x] = lg[tmp[p + 1]]
        dst[o + 2 * plane + x] = lr[tmp[p]]
      }
    }
    return
  }
  const { xmins, ns, ksize, weights } = coeffs(ch, oh)
  const rowLen = ow * 3
  for (let y = 0; y < oh; y++) {
    const ymin = xmins[y]
    const n = ns[y]
    const wo = y * ksize
    const o = off + y * stride
    for (let x = 0; x < ow; x++) {
      let r = ROUND
      let g = ROUND
      let b = ROUND
      let p = ymin * rowLen + x * 3
      for (let i = 0; i < n; i++, p += rowLen) {
        const w = weights[wo + i]
        r += tmp[p] * w
        g += tmp[p + 1] * w
        b += tmp[p + 2] * w
      }
      dst[o + x] = lb[clip8(b)]
      dst[o + plane + x] = lg[clip8(g)]
      dst[o + 2 * plane + x] = lr[clip8(r)]
    }
  }
}

/** Per tensor channel (B, G, R), the f32 value of (v / 255 - mean) / std for every u8 v. */
function normTable(mean, std) {
  return [0, 1, 2].map((c) => {
    const t = new Float32Array(256)
    for (let v = 0; v < 256; v++) t[v] = f(f(f(v / 255) - f(mean[c])) / f(std[c]))
    return t
  })
}
const DET_LUT = normTable([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
const HALF_LUT = normTable([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])

// --- detection input -----------------------------------------------------------

function roundHalfEven(x) {
  const r = Math.round(x) // half up
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/** vision/detect.rs det_size: (height, width), multiples of 32, the longer side capped. */
export function detSize(h, w, maxSide) {
  const longer = Math.max(h, w)
  const ratio = longer > maxSide ? maxSide / longer : 1
  const side = (s) => Math.max(roundHalfEven(Math.trunc(s * ratio) / 32) * 32, 32)
  return [side(h), side(w)]
}

/** The detector's [1, 3, H, W] input and the page pixels per map pixel. */
export function detInput(page, maxSide = OCR.detMaxSide) {
  const [rh, rw] = detSize(page.h, page.w, Math.max(maxSide, 32))
  const x = new Float32Array(3 * rh * rw)
  resizeInto(page.rgb, page.w, 0, 0, page.w, page.h, rw, rh, x, 0, rw, rh * rw, DET_LUT)
  return { x, dims: [1, 3, rh, rw], sx: f(page.w / rw), sy: f(page.h / rh) }
}

// --- boxes -----------------------------------------------------------------------

const roundAway = (x) => (x < 0 ? -Math.round(-x) : Math.round(x))
const clamp = (v, lo, hi) => (v < lo ? lo : v > hi ? hi : v)
let stack = new Int32Array(1 << 14)
let seenBuf = new Uint8Array(1 << 16)

/** vision/boxes.rs text_boxes: boxes in page pixels and reading order. */
export function textBoxes(prob, h, w, sx, sy, o = OCR) {
  const n = h * w
  if (seenBuf.length < n) seenBuf = new Uint8Array(n)
  const seen = seenBuf
  seen.fill(0, 0, n)
  const thresh = f(o.thresh)
  const boxThresh = f(o.boxThresh)
  const ratio = f(o.unclipRatio)
  const minSize = o.minSize
  const pageW = roundAway(f(w * sx))
  const pageH = roundAway(f(h * sy))
  const out = []
  let regions = 0
  for (let start = 0; start < n; start++) {
    if (regions >= o.maxBoxes) break
    if (seen[start] || !(prob[start] > thresh)) continue
    regions++
    // Flat DFS over the 8-connected region; only its extent matters.
    seen[start] = 1
    let sp = 0
    stack[sp++] = start
    let x0 = start % w
    let x1 = x0
    let y0 = (start - x0) / w
    let y1 = y0
    while (sp > 0) {
      const i = stack[--sp]
      const x = i % w
      const y = (i - x) / w
      if (x < x0) x0 = x
      if (x > x1) x1 = x
      if (y < y0) y0 = y
      if (y > y1) y1 = y
      const ya = y > 0 ? y - 1 : 0
      const yb = y + 1 < h ? y + 1 : h - 1
      const xa = x > 0 ? x - 1 : 0
      const xb = x + 1 < w ? x + 1 : w - 1
      for (let ny = ya; ny <= yb; ny++) {
        for (let j = ny * w + xa, je = ny * w + xb; j <= je; j++) {
          if (seen[j] === 0 && prob[j] > thresh) {
            seen[j] = 1
            if (sp === stack.length) {
              const s = new Int32Array(stack.length * 2)
              s.set(stack)
              stack = s
            }
            stack[sp++] = j
          }
        }
      }
    }
    const bw = x1 - x0
    const bh = y1 - y0
    if (Math.min(bw, bh) < minSize) continue
    // box_score: the mean probability over the box, summed in f64.
    // (Row sums first, as Rust's iterator sum does, so the f64 rounding matches.)
    let sum = 0
    for (let y = y0; y <= y1; y++) {
      let row = 0
      for (let j = y * w + x0, je = y * w + x1; j <= je; j++) row += prob[j]
      sum += row
    }
    const score = f(sum / ((bw + 1) * (bh + 1)))
    if (score < boxThresh) continue
    const perimeter = f(2 * f(bw + bh))
    const d = perimeter > 0 ? f(f(f(bw * bh) * ratio) / perimeter) : 0
    if (f(Math.min(bw, bh) + f(2 * d)) < minSize + 2) continue
    const b = {
      x0: clamp(roundAway(f(f(x0 - d) * sx)), 0, pageW),
      y0: clamp(roundAway(f(f(y0 - d) * sy)), 0, pageH),
      x1: clamp(roundAway(f(f(x1 + d) * sx)), 0, pageW),
      y1: clamp(roundAway(f(f(y1 + d) * sy)), 0, pageH),
      score,
    }
    if (b.x1 - b.x0 <= o.minPageSide || b.y1 - b.y0 <= o.minPageSide) continue
    out.push(b)
  }
  // Reading order: by top then left, then PaddleOCR's neighbour swaps within a row.
  out.sort((a, b) => a.y0 - b.y0 || a.x0 - b.x0)
  for (let i = 0; i + 1 < out.length; i++) {
    for (let j = i; j >= 0; j--) {
      if (Math.abs(out[j + 1].y0 - out[j].y0) < o.rowTolerance && out[j + 1].x0 < out[j].x0) {
        const t = out[j]
        out[j] = out[j + 1]
        out[j + 1] = t
      } else break
    }
  }
  return out
}

// --- crops -------------------------------------------------------------------------

/** vision/crop.rs crop_batch: one [n, 3, outH, W] batch, right-padded with zeros, and each crop's width. */
export function cropBatch(page, boxes, outH, maxW, minW) {
  const { rgb, w, h } = page
  const n = boxes.length
  const rects = new Int32Array(n * 4)
  const widths = new Int32Array(n)
  let width = Math.max(minW, 1)
  const px = (v, max) => Math.min(Math.max(roundAway(v), 0), max)
  for (let i = 0; i < n; i++) {
    const b = boxes[i]
    const x0 = px(b.x0, w)
    const y0 = px(b.y0, h)
    const x1 = px(b.x1, w)
    const y1 = px(b.y1, h)
    if (x1 <= x0 || y1 <= y0) throw new Error(`box ${i} has no pixels on the ${w}×${h} page`)
    rects[i * 4] = x0
    rects[i * 4 + 1] = y0
    rects[i * 4 + 2] = x1
    rects[i * 4 + 3] = y1
    const cw = clamp(Math.ceil((outH * (x1 - x0)) / (y1 - y0)), 1, maxW)
    widths[i] = cw
    if (cw > width) width = cw
  }
  const plane = outH * width
  const per = 3 * plane
  const x = new Float32Array(n * per)
  for (let i = 0; i < n; i++) {
    const x0 = rects[i * 4]
    const y0 = rects[i * 4 + 1]
    resizeInto(rgb, w, x0, y0, rects[i * 4 + 2] - x0, rects[i * 4 + 3] - y0, widths[i], outH, x, i * per, width, plane, HALF_LUT)
  }
  return { x, dims: [n, 3, outH, width], widths }
}

/** vision/crop.rs rotated_rows: label 180 above `thresh`. */
export function rotatedRows(probs, n, thresh = OCR.clsThresh) {
  const t = f(thresh)
  const rows = []
  for (let i = 0; i < n; i++) if (probs[2 * i + 1] > probs[2 * i] && probs[2 * i + 1] > t) rows.push(i)
  return rows
}

/** vision/crop.rs rotate_180: turns each listed crop's own columns, in place. */
export function rotate180(batch, dims, rows, widths) {
  const [, c, h, w] = dims
  for (const row of rows) {
    const vw = widths[row]
    const len = h * vw
    for (let k = 0; k < c; k++) {
      const base = (row * c + k) * h * w
      for (let i = 0, j = len - 1; i < j; i++, j--) {
        const a = base + ((i / vw) | 0) * w + (i % vw)
        const b = base + ((j / vw) | 0) * w + (j % vw)
        const t = batch[a]
        batch[a] = batch[b]
        batch[b] = t
      }
    }
  }
}

// --- CTC -----------------------------------------------------------------------------

/** The recogniser's classes: the blank, each line of the keys file, a space. */
export function vocabulary(keysFile) {
  let text = readFileSync(keysFile, 'utf8')
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  const lines = text.split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  return ['', ...lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)), ' ']
}

/** vision/ctc.rs ctc_greedy over [n, t, c]: per row its text and mean kept-step probability. */
export function ctcGreedy(p, dims, vocab) {
  const [n, t, c] = dims
  if (c !== vocab.length) throw new Error(`the recogniser has ${c} classes but the vocabulary ${vocab.length}`)
  const steps = n * t
  const best = new Int32Array(steps)
  const maxes = new Float32Array(steps)
  let probabilities = true
  for (let s = 0, base = 0; s < steps; s++, base += c) {
    let bi = 0
    let mx = -Infinity
    let sum = 0
    let mn = Infinity
    for (let i = 0; i < c; i++) {
      const v = p[base + i]
      if (v > mx) {
        mx = v
        bi = i
      }
      sum += v
      if (v < mn) mn = v
    }
    best[s] = bi
    maxes[s] = mx
    if (!(mn >= 0 && Math.abs(sum - 1) < 1e-3)) probabilities = false
  }
  const out = []
  for (let row = 0; row < n; row++) {
    let text = ''
    let total = 0
    let kept = 0
    let prev = -1
    for (let s = row * t, e = s + t; s < e; s++) {
      const b = best[s]
      if (b !== 0 && b !== prev) {
        text += vocab[b]
        if (probabilities) total = f(total + maxes[s])
        else {
          let z = 0
          for (let i = 0, base = s * c; i < c; i++) z += Math.exp(p[base + i] - maxes[s])
          total = f(total + f(1 / z))
        }
        kept++
      }
      prev = b
    }
    out.push({ text, confidence: kept === 0 ? 0 : f(total / kept) })
  }
  return out
}

// --- the chain -------------------------------------------------------------------------

/**
 * The chain over injected model runners: `runModel(which, x, dims)` resolves
 * to `{ data, dims }` (`which`: 'det', 'cls' or 'rec'). `read(bytes, times)`
 * resolves to `{ lines, boxes, rotated }`; with a `times` object it adds the
 * ms spent in each stage to it (decode, model: det/cls/rec, js: the rest).
 */
export function makeChain(runModel, vocab) {
  const now = () => performance.now()
  return async function read(bytes, times) {
    let t = times ? now() : 0
    const lap = (k) => {
      if (!times) return
      const u = now()
      times[k] = (times[k] ?? 0) + (u - t)
      t = u
    }
    const page = await decode(bytes)
    lap('decode')
    const det = detInput(page)
    lap('detInput')
    const prob = await runModel('det', det.x, det.dims)
    lap('det')
    const boxes = textBoxes(prob.data, prob.dims[2], prob.dims[3], det.sx, det.sy)
    lap('boxes')
    if (boxes.length === 0) return { lines: [], boxes, rotated: [] }
    const cls = cropBatch(page, boxes, OCR.cropH, OCR.clsW, OCR.clsW)
    lap('clsCrops')
    const cp = await runModel('cls', cls.x, cls.dims)
    lap('cls')
    const rotated = rotatedRows(cp.data, boxes.length)
    const rec = cropBatch(page, boxes, OCR.cropH, OCR.recMaxW, OCR.recMinW)
    rotate180(rec.x, rec.dims, rotated, rec.widths)
    lap('recCrops')
    const logits = await runModel('rec', rec.x, rec.dims)
    lap('rec')
    const lines = ctcGreedy(logits.data, logits.dims, vocab)
    lap('ctc')
    return { lines, boxes, rotated }
  }
}
