/** ZeroMQ helpers shared by the interchange, the managers and the high-throughput executor. */
export { applyCurve, generateCurveKeys, loadCurveKeys } from './curve.js'
export type { ClientCurveKeys, CurveKeys, CurveRole, LoadCurveOptions, ServerCurveKeys } from './curve.js'
export { Heartbeat, monotonicClock } from './heartbeat.js'
export type { Clock, ExpiredPeer, HeartbeatOptions } from './heartbeat.js'
export { Outbox, bindTcp, isLoopback, portOf, tcpEndpoint } from './sockets.js'
export { ZapHandler, z85Decode } from './zap.js'
export type { ZapDecision } from './zap.js'
