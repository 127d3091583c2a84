// Renders the OCR chain's test images (DejaVu Sans through sharp's SVG
// renderer) into __test__/fixtures/ocr/, with the text each one shows in
// expected.json. Run: node scripts/make-ocr-fixtures.mjs (the PNGs are committed).
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import sharp from 'sharp'

const out = join(dirname(fileURLToPath(import.meta.url)), '..', '__test__', 'fixtures', 'ocr')
mkdirSync(out, { recursive: true })

function svg(width, height, lines) {
  const text = lines.map(({ x, y, size, t }) => `<text x="${x}" y="${y}" font-family="DejaVu Sans" font-size="${size}" fill="#111">${t}</text>`).join('')
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="#fdfdf8"/>${text}</svg>`)
}

const images = {
  'one_line.png': { width: 480, height: 96, lines: [{ x: 20, y: 62, size: 40, t: 'Hello OCR 2026' }] },
  'two_lines.png': {
    width: 640,
    height: 200,
    lines: [
      { x: 30, y: 70, size: 38, t: 'Rust core for Node' },
      { x: 60, y: 160, size: 34, t: 'batch 64 at 3.5 ms' },
    ],
  },
}
const expected = {}
for (const [name, { width, height, lines }] of Object.entries(images)) {
  await sharp(svg(width, height, lines)).flatten({ background: '#ffffff' }).png().toFile(join(out, name))
  expected[name] = lines.map((l) => l.t)
}
// The first image upside down: the orientation classifier's case.
await sharp(join(out, 'one_line.png')).rotate(180).png().toFile(join(out, 'upside_down.png'))
expected['upside_down.png'] = expected['one_line.png']
writeFileSync(join(out, 'expected.json'), `${JSON.stringify(expected, null, 2)}\n`)
console.log(`wrote ${Object.keys(expected).length} images to ${out}`)
