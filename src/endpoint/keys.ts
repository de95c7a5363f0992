/**
 * An endpoint's CURVE keys and its allow-list of client keys, and the client's own key pair.
 *
 *   <endpoint dir>/curve/    server.public / server.secret: the endpoint's pair (clients pin the
 *                            public key, so it is made once and kept across restarts);
 *                            client.public / client.secret: the pair its managers present
 *   <endpoint dir>/allowed_clients
 *                            one client public key (z85) a line, optionally followed by a
 *                            `# label`; lines starting with `#` are comments
 *   $TSFLOW_HOME/client/     client.public / client.secret: this user's client pair
 *
 * Keys are z85 text as transport/curve.ts writes them; every file is mode 0600, every
 * directory 0700.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { curveKeyPair } from 'zeromq'
import { ConfigError } from '../errors.js'
import { clientKeyDir, type EndpointPaths } from '../protocol/endpoint.js'
import { readKey, writeKey, Z85_KEY, type ClientCurveKeys, type ServerCurveKeys } from '../transport/curve.js'
import { z85Decode } from '../transport/zap.js'

export interface EndpointKeys {
  /** the endpoint's pair (its client ROUTER and manager ROUTER serve with it) */
  server: ServerCurveKeys
  /** the pair every manager of the endpoint presents */
  managers: ClientCurveKeys
}

/**
 * The endpoint's two key pairs in `paths.curveDir`, made on first use and kept afterwards (a
 * restart must not change the public key clients were given). A pair with one file missing is an
 * error rather than silently replaced, for the same reason.
 */
export function ensureEndpointKeys(paths: Pick<EndpointPaths, 'curveDir'>): EndpointKeys {
  const dir = paths.curveDir
  makePrivateDir(dir)
  const server = ensurePair(dir, 'server')
  const managers = ensurePair(dir, 'client')
  return {
    server: { role: 'server', publicKey: server.publicKey, secretKey: server.secretKey, clientPublicKey: managers.publicKey },
    managers: { role: 'client', publicKey: managers.publicKey, secretKey: managers.secretKey, serverPublicKey: server.publicKey },
  }
}

/** This user's client key pair in `clientKeyDir(home)`, made (0600) on first use. */
export function ensureClientKeys(home?: string): { publicKey: string; secretKey: string } {
  const dir = clientKeyDir(home)
  makePrivateDir(dir)
  return ensurePair(dir, 'client')
}

/** True if `key` is a CURVE public key as z85 text (40 characters that decode to 32 bytes). */
export function isCurveKey(key: string): boolean {
  if (!Z85_KEY.test(key)) return false
  try {
    z85Decode(key) // a group past 2^32 - 1 fits the alphabet but is no key
    return true
  } catch {
    return false
  }
}

/**
 * The client keys on the endpoint's allow-list (empty if the file does not exist). A line that is
 * not a key is an error naming the file and line, so a typo never silently locks a client out.
 */
export function readAllowedClients(paths: Pick<EndpointPaths, 'allowedClients'>): string[] {
  return parseAllowedClients(readAllowedText(paths.allowedClients), paths.allowedClients).map((entry) => entry.key)
}

/** Adds `publicKey` (with an optional label) to the allow-list; false if it was already there. */
export function addAllowedClient(paths: Pick<EndpointPaths, 'allowedClients'>, publicKey: string, label?: string): boolean {
  const key = checkKeyArgument(publicKey)
  const file = paths.allowedClients
  const text = readAllowedText(file)
  if (parseAllowedClients(text, file).some((entry) => entry.key === key)) return false
  const tail = label ? ` # ${label.replace(/[\r\n]+/g, ' ')}` : ''
  const header = text ? '' : '# client public keys (z85) this endpoint admits, one a line; `tsflow endpoint allow` edits it\n'
  writeAtomic(file, `${header}${text}${text && !text.endsWith('\n') ? '\n' : ''}${key}${tail}\n`)
  return true
}

/** Removes `publicKey` from the allow-list; false if it was not on it. Comments and other keys stay. */
export function removeAllowedClient(paths: Pick<EndpointPaths, 'allowedClients'>, publicKey: string): boolean {
  const key = checkKeyArgument(publicKey)
  const file = paths.allowedClients
  const text = readAllowedText(file)
  const entries = parseAllowedClients(text, file)
  const drop = new Set(entries.filter((entry) => entry.key === key).map((entry) => entry.line))
  if (drop.size === 0) return false
  const kept = text.split('\n').filter((_, index) => !drop.has(index + 1))
  writeAtomic(file, kept.join('\n'))
  return true
}

interface AllowedEntry {
  key: string
  /** 1-based line number */
  line: number
}

function parseAllowedClients(text: string, file: string): AllowedEntry[] {
  const entries: AllowedEntry[] = []
  const lines = text.split('\n')
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!.trim()
    // No z85 key starts with '#' (the first character of a group is at most '%'), so this is unambiguous.
    if (!line || line.startsWith('#')) continue
    const match = /^(\S+)(?:\s+#.*)?$/.exec(line)
    const key = match?.[1]
    if (!key || !isCurveKey(key)) {
      throw new ConfigError(
        `${file}:${index + 1}`,
        `is not a client public key (40 z85 characters, optionally followed by '# label'): ${JSON.stringify(line.length > 60 ? `${line.slice(0, 57)}...` : line)}; fix or remove the line (tsflow endpoint allow --remove)`,
      )
    }
    entries.push({ key, line: index + 1 })
  }
  return entries
}

function readAllowedText(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return ''
    throw new ConfigError(file, `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`)
  }
}

function checkKeyArgument(publicKey: string): string {
  const key = publicKey.trim()
  if (!isCurveKey(key)) {
    throw new ConfigError('', `${JSON.stringify(publicKey)} is not a client public key (40 z85 characters, as 'tsflow endpoint keys' prints)`)
  }
  return key
}

/** Temp file + rename: a reader (the running endpoint reloading its allow-list) never sees half a file. */
function writeAtomic(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true })
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`)
  writeFileSync(temp, text, { mode: 0o600 })
  renameSync(temp, file)
}

function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  // mkdir's mode is filtered by the umask and ignored for an existing directory.
  chmodSync(dir, 0o700)
}

function ensurePair(dir: string, role: 'server' | 'client'): { publicKey: string; secretKey: string } {
  const publicName = `${role}.public`
  const secretName = `${role}.secret`
  const havePublic = existsSync(join(dir, publicName))
  const haveSecret = existsSync(join(dir, secretName))
  if (!havePublic && !haveSecret) {
    const pair = curveKeyPair()
    // The secret first: a crash between the two leaves no public key without its secret.
    writeKey(dir, secretName, pair.secretKey, 0o600)
    writeKey(dir, publicName, pair.publicKey, 0o600)
    return pair
  }
  if (!havePublic || !haveSecret) {
    const missing = join(dir, havePublic ? secretName : publicName)
    throw new ConfigError(
      missing,
      `is missing but its pair's other half exists; restore it, or delete ${join(dir, `${role}.*`)} to make a new pair (clients holding the old public key must then be given the new one)`,
    )
  }
  return { publicKey: readKey(dir, publicName, false), secretKey: readKey(dir, secretName, true) }
}
