// A TCP relay between a client and a server, so a test can cut the network under a live
// connection: drop() destroys every relayed connection (both ends see the loss, as with a cable
// pulled), while the listener stays up for the client to come back.
import { connect, createServer, type Socket } from 'node:net'

export interface TcpProxy {
  port: number
  /** relayed connections cut so far */
  drops: number
  drop(): void
  close(): Promise<void>
}

export async function tcpProxy(host: string, port: number): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>()
  const server = createServer((inbound) => {
    const outbound = connect(port, host)
    const pair: [Socket, Socket] = [inbound, outbound]
    pairs.add(pair)
    const end = () => {
      pairs.delete(pair)
      inbound.destroy()
      outbound.destroy()
    }
    inbound.on('error', end).on('close', end)
    outbound.on('error', end).on('close', end)
    inbound.pipe(outbound)
    outbound.pipe(inbound)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const proxy: TcpProxy = {
    port: (server.address() as { port: number }).port,
    drops: 0,
    drop() {
      for (const [inbound, outbound] of pairs) {
        inbound.destroy()
        outbound.destroy()
        proxy.drops++
      }
      pairs.clear()
    },
    close() {
      proxy.drop()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
  return proxy
}
