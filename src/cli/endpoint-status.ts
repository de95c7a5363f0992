/**
 * `tsflow endpoint status`: asks a running endpoint for its status as a client would (a DEALER
 * with this user's client key pair over CURVE, `ep_hello` then `status` -> `ep_status`, then `bye`
 * with `forget`), and formats the answer for people or as JSON.
 */
import { hostname } from 'node:os'
import { Dealer } from 'zeromq'
import { EndpointRefused, EndpointUnreachable } from '../errors.js'
import { ensureClientKeys } from '../endpoint/keys.js'
import { ENDPOINT_ACCEPTED, type EndpointClientMessage, type EndpointState, type EndpointStatus, type EndpointToClient } from '../protocol/endpoint.js'
import { decodeMessage, encodeMessage, stamp } from '../protocol/messages.js'
import { applyCurve } from '../transport/curve.js'
import { tcpEndpoint } from '../transport/sockets.js'
import type { EndpointInspection } from './endpoint-state.js'

/** The address a client on this host connects to for an endpoint bound to `address` (a wildcard bind means loopback). */
export function connectAddress(state: Pick<EndpointState, 'clientAddress' | 'clientPort'>): string {
  const address = state.clientAddress === '0.0.0.0' || state.clientAddress === '*' ? '127.0.0.1' : state.clientAddress === '::' ? '::1' : state.clientAddress
  return tcpEndpoint(address, state.clientPort)
}

/** The session name status queries use; `status` leaves it out of the sessions it shows. */
export const STATUS_SESSION_PREFIX = 'tsflow-status-'

/** One status round trip to a running endpoint. Throws EndpointUnreachable (no answer in time) or EndpointRefused. */
export async function queryStatus(state: EndpointState, home: string, timeoutMs: number): Promise<EndpointStatus> {
  const keys = ensureClientKeys(home)
  const address = connectAddress(state)
  // A short linger lets the closing `bye` leave; the endpoint then forgets this session at once.
  const socket = new Dealer({ linger: 200, receiveTimeout: timeoutMs })
  applyCurve(socket, { role: 'client', publicKey: keys.publicKey, secretKey: keys.secretKey, serverPublicKey: state.serverPublicKey })
  const session = `${STATUS_SESSION_PREFIX}${process.pid}-${Date.now().toString(36)}`
  const send = (message: EndpointClientMessage) => socket.send(encodeMessage(message))
  const deadline = Date.now() + timeoutMs
  let welcomed = false
  try {
    socket.connect(address)
    await send({ t: 'ep_hello', session, client: `tsflow endpoint status on ${hostname()} (pid ${process.pid})`, ...stamp() })
    for (;;) {
      socket.receiveTimeout = Math.max(1, deadline - Date.now())
      let frames: Buffer[]
      try {
        frames = await socket.receive()
      } catch {
        const hint = welcomed
          ? 'it accepted the session but did not answer the status request'
          : `no handshake: is it listening there, and is this user's client key (tsflow endpoint keys) on its allow-list (tsflow endpoint allow ${state.name} <key>)?`
        throw new EndpointUnreachable(state.name, address, `no answer within ${timeoutMs} ms; ${hint}`)
      }
      const message = decodeMessage<EndpointToClient>(frames, ENDPOINT_ACCEPTED.clientFromEndpoint)
      if (message.t === 'refused') throw new EndpointRefused(state.name, message.reason)
      if (message.t === 'ep_welcome') {
        welcomed = true
        await send({ t: 'status', req: 1 })
      } else if (message.t === 'ep_status' && message.req === 1) {
        return message.status
      } else if (message.t === 'stopping') {
        throw new EndpointUnreachable(state.name, address, `it is stopping (${message.reason})`)
      }
    }
  } finally {
    if (welcomed) await send({ t: 'bye', forget: true }).catch(() => undefined)
    socket.close()
  }
}

/** "3d 4h", "2h 5m", "4m 10s", "12s". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000))
  const [d, h, m] = [Math.floor(s / 86400), Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60)]
  if (d > 0) return `${d}d ${h}h`
  if (h > 0) return `${h}h ${m}m`
  if (m > 0) return `${m}m ${s % 60}s`
  return `${s}s`
}

/** A left-aligned text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[], indent = ''): string {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => (row[i] ?? '').length)))
  const line = (row: readonly string[]) => indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')
  return [line(header), ...rows.map(line)].join('\n')
}

export interface StatusReport {
  name: string
  running: boolean
  configured: boolean
  pid?: number
  uptimeMs?: number
  state?: EndpointState
  status?: EndpointStatus
  /** why `status` is missing for a running endpoint */
  statusError?: { code?: string; message: string }
  staleNote?: string
  /** a `tsflow endpoint start` (this pid) is starting it */
  startingBy?: number
}

export function statusReport(inspection: EndpointInspection, status?: EndpointStatus, error?: Error, now = Date.now()): StatusReport {
  const report: StatusReport = { name: inspection.name, running: inspection.running, configured: inspection.configured }
  if (inspection.running && inspection.pid !== undefined) report.pid = inspection.pid
  if (inspection.state) {
    report.state = inspection.state
    report.uptimeMs = now - inspection.state.startedAt
  }
  if (status) report.status = { ...status, sessions: status.sessions.filter((s) => !s.session.startsWith(STATUS_SESSION_PREFIX)) }
  if (error) report.statusError = { ...((error as { code?: string }).code ? { code: (error as { code?: string }).code } : {}), message: error.message }
  if (inspection.staleNote) report.staleNote = inspection.staleNote
  if (inspection.startingBy) report.startingBy = inspection.startingBy
  return report
}

export function formatStatus(report: StatusReport, now = Date.now()): string {
  const { name, state, status } = report
  if (!report.running && report.startingBy) return `endpoint ${name}: starting (by 'tsflow endpoint start', pid ${report.startingBy})\n`
  if (!report.running) return `endpoint ${name}: stopped${report.configured ? '' : ' (not configured)'}\n`
  const lines: string[] = []
  const uptime = report.uptimeMs !== undefined ? `, up ${formatDuration(report.uptimeMs)}` : ''
  lines.push(`endpoint ${name}: running (pid ${report.pid}${uptime})`)
  if (state) {
    lines.push(`  clients connect to  ${connectAddress(state)} (bound to ${state.clientAddress}:${state.clientPort} on ${state.host})`)
    lines.push(`  managers connect to ${tcpEndpoint(state.workerAddress, state.workerPort)}`)
    lines.push(`  server public key   ${state.serverPublicKey}`)
    lines.push(`  version             tsflow ${state.version} (protocol ${state.proto})`)
    lines.push(`  log                 ${state.log}`)
  } else {
    lines.push('  (endpoint.json is not there: the endpoint is starting or stopping)')
  }
  if (report.statusError) lines.push(`  status unavailable: ${report.statusError.message}`)
  if (status) {
    const blocks = status.blocks.length > 0 ? ` in ${status.blocks.length} block${status.blocks.length === 1 ? '' : 's'} (${summarize(status.blocks.map((b) => b.state))})` : ', no blocks'
    lines.push(`  managers ${status.managers.length}, workers ${status.workers}${blocks}`)
    lines.push(`  tasks    ${status.queued} queued, ${status.running} running; ${status.totals.tasksReceived} received, ${status.totals.resultsSent} results sent, ${status.totals.failures} failed, ${status.totals.managersLost} managers lost`)
    if (status.managers.length > 0) {
      lines.push('')
      const rows = status.managers.map((m) => [m.managerId, m.host, m.blockId, String(m.workers), String(m.outstanding), String(m.pid), m.draining ? 'draining' : 'active'])
      lines.push(table(['MANAGER', 'HOST', 'BLOCK', 'WORKERS', 'OUTSTANDING', 'PID', 'STATE'], rows, '  '))
    }
    lines.push('')
    if (status.sessions.length === 0) lines.push('  no client sessions')
    else {
      const rows = status.sessions.map((s) => [s.session, s.client, s.connected ? 'yes' : 'no', String(s.outstanding), String(s.retained), `${formatDuration(now - s.lastSeen)} ago`])
      lines.push(table(['SESSION', 'CLIENT', 'CONNECTED', 'OUTSTANDING', 'RETAINED', 'LAST SEEN'], rows, '  '))
    }
  }
  return `${lines.join('\n')}\n`
}

/** "running 2, pending 1" */
function summarize(states: readonly string[]): string {
  const counts = new Map<string, number>()
  for (const state of states) counts.set(state, (counts.get(state) ?? 0) + 1)
  return [...counts].map(([state, n]) => `${state} ${n}`).join(', ')
}
