// The task-rtt tasks, in a module of their own so workers import nothing else.
import { app } from 'tsflow'
import { extract, factoryOf, isProxy, isResolved, Store } from 'tsflow/proxy'

/** Direct: the bytes travel through the executor both ways. */
export const echo = app(
  function taskRttEcho(data: Uint8Array) {
    if (!(data instanceof Uint8Array)) throw new TypeError('taskRttEcho: the argument is not bytes')
    return data
  },
  { name: 'taskRttEcho' },
)

/**
 * Through a store: the argument arrives as a proxy the worker resolved before the call; the same
 * bytes go back as a new object in that store, returned as a proxy.
 */
export const echoProxy = app(
  async function taskRttEchoProxy(data: Uint8Array) {
    if (!isProxy(data) || !isResolved(data)) throw new TypeError('taskRttEchoProxy: the argument is not a resolved proxy')
    const bytes = await extract(data)
    return Store.fromConfig(factoryOf(data).store).proxy(bytes)
  },
  { name: 'taskRttEchoProxy' },
)
