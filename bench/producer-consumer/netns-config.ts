/**
 * The tsflow config module bench/producer-consumer passes as `--config` for runs on 2 nodes: an
 * HTEX whose blocks (one per host) run inside the fake hosts the bench made (network namespaces,
 * bench/lib/netns-host.ts), their managers connecting over TCP to the interchange at the root
 * side of their bridge; and a `ddict` export (the examples pass it to DDict.create) that places
 * the DDict's shards on the same hosts through the same kind of provider, listening on every
 * address of their host (TSFLOW_PC_DDICT_ON=hosts, the default), or on the workflow's machine
 * listening on every address and advertised at the bridge address (TSFLOW_PC_DDICT_ON=workflow).
 *
 * The hosts come from the environment, set by the bench for the program it starts:
 *   TSFLOW_PC_HOSTS           namespace names, comma-separated (one block per host)
 *   TSFLOW_PC_ADDRESS         the interchange address the hosts reach
 *   TSFLOW_PC_WORKERS         workers per node (default 1)
 *   TSFLOW_PC_MANAGERS        DDict shards per node (default 1)
 *   TSFLOW_PC_DDICT_ON        hosts (default) or workflow: where the DDict's shards run
 */
import { HighThroughputExecutor, LocalProvider, type Config, type ExecutionProvider } from 'tsflow'

function env(name: string): string {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set: this config is made for bench/producer-consumer --nodes 2, which sets it`)
  return value
}

/** A LocalProvider whose block i runs inside host i's network namespace, under its name. */
export function netnsProvider(hosts: string[]): ExecutionProvider {
  const local = new LocalProvider({ initBlocks: hosts.length, minBlocks: hosts.length, maxBlocks: hosts.length })
  const submit = local.submit.bind(local)
  return Object.assign(local, {
    submit(command: string, blockId: string, options?: Parameters<LocalProvider['submit']>[2]) {
      const host = hosts[Number(blockId) % hosts.length]!
      const quoted = command.replace(/'/g, `'\\''`)
      return submit(`ip netns exec ${host} unshare --uts sh -c 'hostname ${host}; exec ${quoted}'`, blockId, options)
    },
  })
}

const hosts = () => env('TSFLOW_PC_HOSTS').split(',').filter(Boolean)

export default function config(): Config {
  return {
    executors: [
      new HighThroughputExecutor({
        label: 'htex-netns',
        address: env('TSFLOW_PC_ADDRESS'),
        maxWorkersPerNode: Number(process.env.TSFLOW_PC_WORKERS ?? 1),
        provider: netnsProvider(hosts()),
      }),
    ],
  }
}

/** DDict options: shards on the hosts (listening on every address of their namespace), or here. */
export function ddict(): Record<string, unknown> {
  const managersPerNode = Number(process.env.TSFLOW_PC_MANAGERS ?? 1)
  if (process.env.TSFLOW_PC_DDICT_ON === 'workflow') return { managersPerNode, bindAddress: '0.0.0.0', advertiseAddress: env('TSFLOW_PC_ADDRESS') }
  // One block per host; the hosts report to (and reach) the workflow at the bridge address.
  return { provider: netnsProvider(hosts()), blocks: hosts().length, managersPerNode, bindAddress: '0.0.0.0', advertiseAddress: env('TSFLOW_PC_ADDRESS') }
}
