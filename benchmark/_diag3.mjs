import { loadBoth, MODELS, randomFloats, now, summarize } from './util.mjs'
const { ort, ox } = await loadBoth()
const s = await ort.InferenceSession.create(MODELS.tinyMlp, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' })
const feeds = Array.from({length:2000},(_, i)=>({ x: new ort.Tensor('float32', randomFloats(16,i+1), [1,16]) }))
const noop=()=>{}
const sub=[], tot=[]
for (let b=0;b<60;b++){
  const t0=now(); const ps = feeds.map(f=>s.run(f).then(noop)); const t1=now(); await Promise.all(ps); const t2=now()
  sub.push((t1-t0)*1000/2000); tot.push((t2-t0)*1000/2000)
}
console.log(`ort-node: submit µs/run median`, summarize(sub.slice(10)).median.toFixed(2), ' total µs/run', summarize(tot.slice(10)).median.toFixed(2), ' runs/s', (1e6/summarize(tot.slice(10)).median).toFixed(0))
