/**
 * `tsflow/protocol`: every contract that crosses a thread or process boundary. One spec per
 * boundary (interchange, manager, worker) with its defaults, checks and encoder/decoder, the
 * HTEX messages, the task wire format and the resource spec.
 */
export * from './messages.js'
export * from './task.js'
export * from './version.js'
export * from './resources.js'
export * from './spec.js'
export * from './interchange.js'
export * from './manager.js'
export * from './worker.js'
export * from './imports.js'
export * from './endpoint.js'
export * from './ddict.js'
export * from './monitoring.js'
export * from './dashboard.js'
