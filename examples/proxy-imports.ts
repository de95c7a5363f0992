/**
 * Proxy imports (docs/proxy-imports.md): a task imports a package that is not installed where its
 * worker runs, and still runs, because the package travels with it.
 *   npm run build:ts && sudo node out/examples/proxy-imports.js [--without]
 *
 * The worker's node is a fake host: a network namespace (bench/lib/netns-host.ts) whose manager
 * reaches the interchange over TCP and sees the machine's files except mathjs and its
 * dependencies, each covered by an empty directory in the manager's own mount namespace. The app
 * below imports mathjs; with `--without` the executor has no `proxyImports` and the task fails
 * with the worker's import error, which names the package. Needs root (it makes the namespace);
 * elsewhere it says so and exits.
 */
import { hostname } from 'node:os'
import { format, evaluate } from 'mathjs'
import { HighThroughputExecutor, LocalProvider, app, load, main } from 'tsflow'
import { tracePackages } from 'tsflow/imports'
import { hostCommand, netnsHostUnavailable, netnsHostUp } from '../bench/lib/netns-host.js'

const solve = app((expression: string) => `${format(evaluate(expression))} (on ${hostname()})`, { name: 'solve' })

main(import.meta, async () => {
  const why = netnsHostUnavailable()
  if (why) {
    console.log(`proxy-imports example skipped: its worker runs on a fake host, which ${why}`)
    return
  }
  const withProxyImports = !process.argv.includes('--without')
  // mathjs and what it depends on, as this machine has them: all hidden from the worker's node
  const hidden = await tracePackages(import.meta.url, { modules: ['mathjs'], only: true })
  console.log(`hidden on the worker's node: ${hidden.map((p) => p.name).join(', ')}`)

  const host = netnsHostUp({ name: `tsfpi${process.pid % 10000}`, subnet: `10.234.${process.pid % 250}` })
  process.once('exit', () => host.down())
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => (host.down(), process.exit(signal === 'SIGINT' ? 130 : 143)))

  // Blocks run on the fake host, with the packages hidden (the real LocalProvider otherwise).
  const provider = new LocalProvider({ initBlocks: 1, minBlocks: 1, maxBlocks: 1 })
  const submit = provider.submit.bind(provider)
  provider.submit = (command, blockId, options) => submit(hostCommand(host, command, hidden.map((p) => p.root)), blockId, options)

  const htex = new HighThroughputExecutor({
    address: host.rootAddress, // the interchange listens on the link; CURVE encryption is on
    provider,
    maxWorkersPerNode: 1,
    // ...(withProxyImports ? { proxyImports: { store, packages: 'trace' } } : {}),
  })
  const kernel = await load({ executors: [htex] })
  try {
    console.log(`here: det([1, 2; 3, 4]) + sqrt(-4) = ${format(evaluate('det([1, 2; 3, 4]) + sqrt(-4)'))}`)
    const answer = await solve('det([1, 2; 3, 4]) + sqrt(-4)')
    console.log(`in the task: ${answer}`)
  } catch (error) {
    if (withProxyImports) throw error
    console.log(`without proxy imports the task fails: ${(error as Error).message}`)
  } finally {
    console.log(`the worker's manager ran on: ${htex.managers().map((m) => m.host).join(', ')}`)
    await kernel.cleanup()
    host.down()
  }
})
