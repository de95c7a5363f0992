/**
 * The tsflow config module bench/producer-consumer passes as `--config` for runs on 2 nodes: an
 * HTEX whose blocks (one per host) run inside the fake hosts the bench made (network namespaces,
 * bench/lib/netns-host.ts), their managers connecting over TCP to the interchange at the root
 * side of the first host's link; and a `ddict` export (the examples pass it to DDict.create) that
 * places the DDict's shards on the same hosts through the same kind of provider, listening on
 * their host's address.
 *
 * The hosts come from the environment, set by the bench for the program it starts:
 *   TSFLOW_PC_HOSTS           namespace names, comma-separated (one block per host)
 *   TSFLOW_PC_ADDRESS         the interchange address the hosts reach
 *   TSFLOW_PC_WORKERS         workers per node (default 1)
 *   TSFLOW_PC_MANAGERS        DDict shards per node (default 1)
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

/** DDict options: shards on the hosts (listening on every address of their namespace). */
export function ddict(): Record<string, unknown> {
  return { provider: netnsProvider(hosts()), managersPerNode: Number(process.env.TSFLOW_PC_MANAGERS ?? 1), bindAddress: '0.0.0.0' }
}
