// A provider whose blocks run on the fake hosts: block i's command runs inside host i's
// network namespace with that host's name. Everything else is the real LocalProvider.
import { LocalProvider, type ExecutionProvider } from 'tsflow'

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
