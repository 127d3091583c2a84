import { loadBoth, MODELS, randomFloats, now, summarize } from './util.mjs'
const { ort, ox } = await loadBoth()
const P = Number(process.env.POOL || 1), I = Number(process.env.INL ?? 0)
const s = await ox.Session.create(MODELS.tinyMlp, { poolSize: P, intraOpThreads: 1, inlineThresholdMicros: I })
const feeds = Array.from({length:2000},(_, i)=>({ x: new ox.Tensor('float32', randomFloats(16,i+1), [1,16]) }))
const noop=()=>{}
const sub=[], tot=[]
for (let b=0;b<(Number(process.env.B)||60);b++){
  const t0=now(); const ps = feeds.map(f=>s.run(f).then(noop)); const t1=now(); await Promise.all(ps); const t2=now()
  sub.push((t1-t0)*1000/2000); tot.push((t2-t0)*1000/2000)
}
console.log(`pool ${P} inline ${I}: submit µs/run median`, summarize(sub.slice(10)).median.toFixed(2), ' total µs/run', summarize(tot.slice(10)).median.toFixed(2), ' runs/s', (1e6/summarize(tot.slice(10)).median).toFixed(0))
