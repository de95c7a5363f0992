// Issue 6 section 2: a walltime covers the function call only (as in Parsl), not a fresh
// worker's import of the app's module. The fixture modules take 0.7 s to import (a top-level
// busy-wait, or a top-level await); their apps have a walltime of 0.5 s. On every executor kind.
import t from 'tap'
import { WalltimeExceeded } from 'tsflow'
import { quickAfterAwait } from './fixtures/slow-import-await.js'
import { quickWithWalltime, spinWithWalltime } from './fixtures/slow-import.js'
import { EXECUTOR_KINDS, startKernel } from './helpers/executors.js'

for (const kind of EXECUTOR_KINDS) {
  t.test(`${kind}: the import of a slow module does not count against a task's walltime`, async (t) => {
    // Fresh workers: each first task imports its module where it runs.
    const kernel = await startKernel(t, kind, { workers: 1 })
    t.equal(await quickWithWalltime.with({ dfk: kernel })(1), 2, 'top-level busy-wait of 0.7 s, walltime 0.5 s')
    t.equal(await quickAfterAwait.with({ dfk: kernel })(2), 4, 'top-level await of 0.7 s, walltime 0.5 s')
    // The walltime still holds for the call itself.
    await t.rejects(spinWithWalltime.with({ dfk: kernel })(5000), WalltimeExceeded, 'a call running past its walltime is stopped')
  })
}
