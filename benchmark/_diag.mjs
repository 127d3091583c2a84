import { PerformanceObserver } from 'node:perf_hooks'
import { loadBoth, MODELS, randomFloats, now, sleep } from './util.mjs'
const { ort, ox } = await loadBoth()
const B = 512
const x = randomFloats(B*1024, 2)
const s = await ox.Session.create(MODELS.heavyMatmul, { poolSize: Number(process.env.POOL||2), intraOpThreads: 1 })
const f = { x: new ox.Tensor('float32', x, [B,1024]) }
const gcs = []
new PerformanceObserver((l) => { for (const e of l.getEntries()) gcs.push({ start: e.startTime, dur: e.duration, kind: e.detail?.kind }) }).observe({ entryTypes: ['gc'] })
for (let i=0;i<2;i++) await Promise.all(Array.from({length:64},()=>s.run(f)))
for (let r=0;r<3;r++){
  gcs.length=0
  const gaps=[]; let last=now()
  const iv=setInterval(()=>{const t=now(); if(t-last>5) gaps.push({at: last, gap: t-last}); last=t},1)
  await sleep(10); last=now(); const t0=last
  const done=[]
  await Promise.all(Array.from({length:64},()=>s.run(f).then(()=>{})))
  clearInterval(iv)
  console.log('burst', (now()-t0).toFixed(0), 'gaps>5ms', gaps.map(g=>`${(g.at-t0).toFixed(1)}+${g.gap.toFixed(1)}`).join(' '))
  console.log('  gc>1ms', gcs.filter(g=>g.dur>1).map(g=>`${(g.start-t0).toFixed(1)}:${g.dur.toFixed(1)}ms k${g.kind}`).join(' '))
  await sleep(100)
}
