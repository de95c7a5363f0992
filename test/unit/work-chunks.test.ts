// The manager writes a batch to a worker process as workChunks: the same bytes as workParts (which
// the worker reads back with readWorkParts), but a large payload is written as received, not copied.
import t from 'tap'
import { ALONE_BYTES, readWorkParts, workChunks, workParts } from '../../dist/worker/run.js'

const partsOf = (...sizes: number[]) => sizes.map((n, i) => new Uint8Array(n).fill(i + 1))
const joined = (chunks: Uint8Array[]) => new Uint8Array(Buffer.concat(chunks))

t.test('workChunks: the bytes of workParts, whatever the mix of small and large parts', async (t) => {
  const big = ALONE_BYTES
  const layouts = [[1], [0, 0], [big], [3, big], [big, 3], [5, 6, big, 7, 8, big * 2, big, 9], [big - 1, big - 1], [big, big]]
  for (const sizes of layouts) {
    const parts = partsOf(...sizes)
    const chunks = workChunks(parts)
    t.same(joined(chunks), workParts(parts), `layout ${sizes.join(',')}`)
    t.same(readWorkParts(joined(chunks)), parts, `layout ${sizes.join(',')} reads back`)
  }
})

t.test('workChunks: small parts make one buffer; a large part is its own chunk, not a copy', async (t) => {
  const small = partsOf(10, 20, 30)
  t.equal(workChunks(small).length, 1)

  const [head, megabyte, tail] = partsOf(40, 1 << 20, 3)
  const chunks = workChunks([head!, megabyte!, tail!])
  t.equal(chunks.length, 3, 'table and head, the large payload, the small tail')
  t.equal(chunks[1], megabyte, 'the 1 MB payload is the caller\'s own bytes')
  t.ok(chunks[0]!.byteLength < 100 && chunks[2]!.byteLength === 3, 'only small parts were copied')
})
