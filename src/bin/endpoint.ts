#!/usr/bin/env node
/**
 * Entry point of the endpoint daemon (`tsflow-endpoint`), which `tsflow endpoint start` spawns
 * detached (src/cli/endpoint-lifecycle.ts). It runs the endpoint in this process
 * (endpoint/server.ts `runEndpoint`: config, keys, log, endpoint.pid and endpoint.json, SIGTERM
 * -> stop) and reports on `--ready-fd` once: the EndpointState when it listens, or
 * {"error": message} when it cannot start (the error also goes to stderr, which is endpoint.log
 * when started by the CLI), then exits non-zero. A remote process: it never loads the kernel.
 */
import { closeSync, readFileSync, writeSync } from 'node:fs'
import { UsageError } from '../errors.js'
import { runEndpoint } from '../endpoint/server.js'
import { endpointDaemonSpec, endpointPaths, tsflowHome, type EndpointState } from '../protocol/endpoint.js'

const PROGRAM = 'tsflow-endpoint'

/** Writes the one ready line to `fd` and closes it; a reader that went away (EPIPE) is no error of ours. */
function report(fd: number | undefined, value: EndpointState | { error: string }): void {
  if (fd === undefined) return
  try {
    writeSync(fd, `${JSON.stringify(value)}\n`)
  } catch {
    // the CLI gave up waiting (timeout, Ctrl-C): it stops us, or we keep running without it
  }
  try {
    closeSync(fd)
  } catch {
    // already closed
  }
}

async function main(argv: readonly string[]): Promise<number> {
  let options
  try {
    options = endpointDaemonSpec.decode(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`${PROGRAM}: ${error.message}\n`)
    return 2
  }
  if (options === 'help') {
    process.stdout.write(`Usage: ${PROGRAM} --name NAME [options]\n\nThe endpoint daemon; start it with 'tsflow endpoint start NAME'.\n\n${endpointDaemonSpec.usage()}\n`)
    return 0
  }
  const readyFd = options.readyFd
  const name = options.name
  if (name === undefined) {
    const message = '--name is required (the endpoint to run)'
    process.stderr.write(`${PROGRAM}: ${message}\n`)
    report(readyFd, { error: message })
    return 2
  }
  const home = options.home ?? tsflowHome()
  if (readyFd !== undefined) {
    // Started as a daemon: it has no terminal, and a stray SIGHUP (a shell that signals its
    // former jobs) must not end it.
    process.on('SIGHUP', () => process.stderr.write(`${new Date().toISOString()} WARN  ${PROGRAM} ${name}: SIGHUP ignored (stop it with 'tsflow endpoint stop ${name}')\n`))
  }
  let server
  try {
    server = await runEndpoint({ name, home, ...(options.logLevel ? { logLevel: options.logLevel } : {}) })
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    process.stderr.write(`${new Date().toISOString()} ERROR ${PROGRAM} ${name}: cannot start: ${error instanceof Error && !(error as { code?: string }).code ? (error.stack ?? message) : message}\n`)
    report(readyFd, { error: message })
    return 1
  }
  // runEndpoint resolves once the endpoint listens and endpoint.json is in place: that file is
  // exactly what a client on this host reads, so it is what the ready line carries.
  let state: EndpointState
  try {
    state = JSON.parse(readFileSync(endpointPaths(name, home).state, 'utf8')) as EndpointState
  } catch (error) {
    const message = `started, but its state file cannot be read: ${(error as Error).message}`
    process.stderr.write(`${PROGRAM} ${name}: ${message}\n`)
    report(readyFd, { error: message })
    await server.stop(message).catch(() => undefined)
    return 1
  }
  report(readyFd, state)
  const reason = await server.done
  process.stderr.write(`${new Date().toISOString()} INFO  ${PROGRAM} ${name}: stopped (${reason})\n`)
  return 0
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
    // Sockets, blocks and files are closed by now; this only guards against a handle left
    // open somewhere, so a stopped endpoint never lingers.
    setTimeout(() => process.exit(code), 2000).unref()
  },
  (error: unknown) => {
    process.stderr.write(`${PROGRAM}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(1)
  },
)
