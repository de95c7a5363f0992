// monitored.ts: a run recorded for the dashboard. Run it (`node out/examples/monitored.js`, or
// `npx tsx monitored.ts`), and in another terminal, in the same directory: `npx tsflow monitor`.
import { app, awaitAllSettled, load, main } from 'tsflow'

// A measurement that takes a little while; one sample in fifty is out of range and fails.
const measure = app(async (sample: number) => {
  await new Promise((resolve) => setTimeout(resolve, 20 + (sample % 7) * 10))
  if (sample % 50 === 49) throw new RangeError(`sample ${sample} is out of range`)
  return Math.sqrt(sample)
})

main(import.meta, async () => {
  const samples = Number(process.argv[2] ?? 400)
  // One option records the run: runinfo/monitoring.db, beside the numbered run directories.
  await using kernel = await load({ monitoring: { enabled: true } })
  const settled = await awaitAllSettled(measure.map(Array.from({ length: samples }, (_, i) => [i])))
  const failed = settled.filter((s) => !s.ok).length
  console.log(`${settled.length - failed} samples measured, ${failed} failed; run directory ${kernel.runDir}`)
  console.log('watch or browse it: npx tsflow monitor')
})
