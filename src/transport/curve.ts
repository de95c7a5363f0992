import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { curveKeyPair } from 'zeromq'
import type { Socket } from 'zeromq'
import { ConfigError } from '../errors.js'

/**
 * CURVE keys for the executor's ZeroMQ links. One directory holds one server pair (the
 * interchange) and one client pair shared by the executor and every manager:
 *
 *   DIR/              mode 0700
 *     server.public   z85 text, 40 characters; every file is mode 0600
 *     server.secret   only the interchange needs it
 *     client.public   the interchange admits only peers presenting this key
 *     client.secret   the executor and managers need it
 *
 * A manager's node therefore needs `server.public`, `client.public` and `client.secret`, never
 * `server.secret`.
 */

export type CurveRole = 'server' | 'client'

export interface ServerCurveKeys {
  role: 'server'
  publicKey: string
  secretKey: string
  /** The only client public key the server admits (checked by the ZAP handler). */
  clientPublicKey: string
}

export interface ClientCurveKeys {
  role: 'client'
  publicKey: string
  secretKey: string
  /** The interchange's public key, to authenticate the server. */
  serverPublicKey: string
}

export type CurveKeys = ServerCurveKeys | ClientCurveKeys

const FILES = {
  serverPublic: 'server.public',
  serverSecret: 'server.secret',
  clientPublic: 'client.public',
  clientSecret: 'client.secret',
} as const

/** The files a manager's node needs from a key directory (what a provider ships to nodes without the host's filesystem). */
export const MANAGER_KEY_FILES: readonly string[] = [FILES.serverPublic, FILES.clientPublic, FILES.clientSecret]

/** A CURVE key as z85 text: 40 characters of the Z85 alphabet (ZeroMQ RFC 32). */
export const Z85_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/

/**
 * Creates `dir` (mode 0700, also tightened if it already existed) with fresh server and client
 * key pairs. Existing key files are replaced: each run gets its own keys.
 */
export function generateCurveKeys(dir: string): { server: ServerCurveKeys; client: ClientCurveKeys } {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  // mkdir's mode is filtered by the umask and ignored for an existing directory.
  chmodSync(dir, 0o700)
  const server = curveKeyPair()
  const client = curveKeyPair()
  writeKey(dir, FILES.serverPublic, server.publicKey, 0o600)
  writeKey(dir, FILES.serverSecret, server.secretKey, 0o600)
  writeKey(dir, FILES.clientPublic, client.publicKey, 0o600)
  writeKey(dir, FILES.clientSecret, client.secretKey, 0o600)
  return {
    server: { role: 'server', publicKey: server.publicKey, secretKey: server.secretKey, clientPublicKey: client.publicKey },
    client: { role: 'client', publicKey: client.publicKey, secretKey: client.secretKey, serverPublicKey: server.publicKey },
  }
}

export interface LoadCurveOptions {
  /**
   * Refuse secret files that other users could read (default true), as ssh does: a readable
   * secret key means anyone on the machine can join the executor's network.
   */
  checkPermissions?: boolean
}

export function loadCurveKeys(dir: string, role: 'server', options?: LoadCurveOptions): ServerCurveKeys
export function loadCurveKeys(dir: string, role: 'client', options?: LoadCurveOptions): ClientCurveKeys
export function loadCurveKeys(dir: string, role: CurveRole, options: LoadCurveOptions = {}): CurveKeys {
  const check = options.checkPermissions ?? true
  if (role === 'server') {
    return {
      role,
      publicKey: readKey(dir, FILES.serverPublic, false),
      secretKey: readKey(dir, FILES.serverSecret, check),
      clientPublicKey: readKey(dir, FILES.clientPublic, false),
    }
  }
  return {
    role,
    publicKey: readKey(dir, FILES.clientPublic, false),
    secretKey: readKey(dir, FILES.clientSecret, check),
    serverPublicKey: readKey(dir, FILES.serverPublic, false),
  }
}

/**
 * Applies CURVE options to a socket before it binds or connects. A server socket also gets a ZAP
 * domain, so the ZAP handler of its context (see zap.ts) decides which client keys get in.
 */
export function applyCurve(socket: Socket, keys: CurveKeys, zapDomain = 'tsflow'): void {
  if (keys.role === 'server') {
    socket.curveServer = true
    socket.curvePublicKey = keys.publicKey
    socket.curveSecretKey = keys.secretKey
    socket.zapDomain = zapDomain
  } else {
    socket.curveServerKey = keys.serverPublicKey
    socket.curvePublicKey = keys.publicKey
    socket.curveSecretKey = keys.secretKey
  }
}

/** Writes one key file (`key` plus a newline) with `mode`, also tightening an existing file's mode. */
export function writeKey(dir: string, name: string, key: string, mode: number): void {
  const path = join(dir, name)
  writeFileSync(path, `${key}\n`, { mode })
  // writeFileSync's mode only applies to a new file; an old one keeps its mode otherwise.
  chmodSync(path, mode)
}

/** Reads one key file; ConfigError naming the file if it is missing, not a key, or (`secret`) readable by others. */
export function readKey(dir: string, name: string, secret: boolean): string {
  const path = join(dir, name)
  let text: string
  try {
    text = readFileSync(path, 'utf8').trim()
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? String(error)
    throw new ConfigError(path, `(a CURVE key) cannot be read (${why}); create the key directory with generateCurveKeys()`)
  }
  if (!Z85_KEY.test(text)) throw new ConfigError(path, 'is not a CURVE key (40 z85 characters)')
  if (secret) {
    const mode = statSync(path).mode & 0o777
    if (mode & 0o077) {
      throw new ConfigError(path, `is a CURVE secret key other users can access (mode 0${mode.toString(8)}); run chmod 600 on it`)
    }
  }
  return text
}
