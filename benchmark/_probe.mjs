import { loadBoth, MODELS, randomFloats, now, summarize } from './util.mjs'
const { ort, ox } = await loadBoth()
const x = randomFloats(16, 1)
const s0 = await ox.Session.create(MODELS.tinyMlp, { intraOpThreads: 1, inlineThresholdMicros: 0 })
const f = { x: new ox.Tensor('float32', x, [1, 16]) }
async function loop(n) { const out=[]; for (let i=0;i<n;i++){const t0=now(); await s0.run(f); out.push((now()-t0)*1000)} return summarize(out) }
for (let k=0;k<5;k++) console.log(JSON.stringify(await loop(5000)))
// with a pause between
for (let k=0;k<3;k++) { await new Promise(r=>setTimeout(r,50)); console.log('after pause', JSON.stringify(await loop(500))) }
