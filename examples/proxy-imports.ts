/**
 * Proxy imports (docs/proxy-imports.md): a task imports a package that is not installed where its
 * worker runs, and still runs, because the package travels with it.
 *   npm run build:ts && sudo node out/examples/proxy-imports.js [--without]
 *
 * The worker's node is a fake host: a network namespace (bench/lib/netns-host.ts) whose manager
 * reaches the interchange over TCP and sees the machine's files except mathjs and its
 * dependencies, each covered by an empty directory in the manager's own mount namespace. The app
 * below imports mathjs at the top of this module, as usual. The executor's `proxyImports` traces
 * that import, packs mathjs and its dependencies, and the worker unpacks them into its node cache
 * and loads them from there. With `--without` the option is off and the task fails with the
 * worker's import error, which names the package (the control case). Needs root (it makes the
 * namespace); elsewhere it says so and exits.
 */
import { rmSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
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
  const cacheDir = join(tmpdir(), `tsflow-example-imports-${process.pid}`)
  // mathjs and what it depends on, as this machine has them: all hidden from the worker's node
  const hidden = await tracePackages(import.meta.url, { modules: ['mathjs'], only: true })
  console.log(`hidden on the worker's node: ${hidden.map((p) => p.name).join(', ')}`)

  const host = netnsHostUp({ name: `tsfex${process.pid % 10000}`, subnet: `10.237.${process.pid % 250}` })
  process.once('exit', () => (host.down(), rmSync(cacheDir, { recursive: true, force: true })))
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => (host.down(), process.exit(signal === 'SIGINT' ? 130 : 143)))

  // Blocks run on the fake host, with the packages hidden (the real LocalProvider otherwise).
  const provider = new LocalProvider({ initBlocks: 1, minBlocks: 1, maxBlocks: 1 })
  const submit = provider.submit.bind(provider)
  provider.submit = (command, blockId, options) => submit(hostCommand(host, command, hidden.map((p) => p.root)), blockId, options)

  const htex = new HighThroughputExecutor({
    address: host.rootAddress, // the interchange listens on the link; CURVE encryption is on
    provider,
    maxWorkersPerNode: 1,
    ...(withProxyImports && {
      proxyImports: {
        // The packed packages are served by this process over the link (the zmq connector);
        // the worker fetches them from here, as a cloud node would from the submit host.
        store: { name: `packages-${process.pid}`, connector: { type: 'zmq', address: host.rootAddress } },
        packages: 'trace', // what solve's module imports: mathjs, then its dependencies
        cacheDir, // on the worker's node; removed below, so every run ships and unpacks anew
      },
    }),
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
    rmSync(cacheDir, { recursive: true, force: true })
  }
})
