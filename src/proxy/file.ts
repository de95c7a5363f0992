import { randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { ConfigError, ConnectorError, ObjectNotFound } from '../errors.js'
import { object, optional, string } from '../util/schema.js'
import { connectors, keyText, type Connector, type ConnectorConfig, type ObjectKey } from './connector.js'

export interface FileConnectorOptions {
  /** a directory every reader can see (a shared file system for several nodes); created if missing */
  directory: string
}

const optionsSchema = object({ type: optional(string), directory: string })

// Key ids become file names: no separators, no leading dot, and never our own suffixes.
const SAFE_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}$/
const READY = '.ready'
const PARTIAL = '.partial-'

/**
 * Objects as files in a directory. A put writes `<id>.partial-<unique>`, fsyncs it, renames it to
 * `<id>`, fsyncs the directory, then creates the marker `<id>.ready`. Readers look for the marker
 * first, so they never read a half-written object, and a writer that crashed leaves only a partial
 * file that no reader opens. Evict removes the marker before the data, so a reader sees the
 * object whole or not at all.
 */
export class FileConnector implements Connector {
  readonly type = 'file'
  readonly directory: string

  constructor(options: FileConnectorOptions) {
    const checked = optionsSchema(options, 'connector')
    if (checked.directory === undefined) throw new ConfigError('connector.directory', 'is required (a directory every reader can see)')
    this.directory = resolve(checked.directory)
    try {
      mkdirSync(this.directory, { recursive: true })
    } catch (error) {
      throw new ConnectorError(this.label, `cannot create the directory: ${(error as Error).message}`, { cause: error })
    }
  }

  get label(): string {
    return `file(${this.directory})`
  }

  newKey(): ObjectKey {
    return { id: randomUUID() }
  }

  private path(key: ObjectKey): string {
    if (!SAFE_ID.test(key.id) || key.id.includes(PARTIAL) || key.id.endsWith(READY)) {
      throw new ConnectorError(this.label, `key ${keyText(key)} is not a valid object name (letters, digits, '.', '_', '-'; no '${READY}' or '${PARTIAL}')`)
    }
    return join(this.directory, key.id)
  }

  async put(bytes: Uint8Array, key: ObjectKey = this.newKey()): Promise<ObjectKey> {
    const path = this.path(key)
    const partial = `${path}${PARTIAL}${process.pid}-${randomUUID()}`
    try {
      const handle = await open(partial, 'wx')
      try {
        await handle.writeFile(bytes)
        await handle.sync()
      } finally {
        await handle.close()
      }
      await rename(partial, path)
      await this.syncDirectory()
      await writeFile(`${path}${READY}`, '')
    } catch (error) {
      await rm(partial, { force: true }).catch(() => {})
      throw new ConnectorError(this.label, `cannot write object ${keyText(key)}: ${(error as Error).message}`, { cause: error })
    }
    return key
  }

  private async syncDirectory(): Promise<void> {
    const handle = await open(this.directory, 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  }

  async get(key: ObjectKey): Promise<Uint8Array> {
    const path = this.path(key)
    if (!(await this.exists(key))) throw new ObjectNotFound(this.label, keyText(key))
    try {
      return await readFile(path)
    } catch (error) {
      // Evicted between the marker check and the read.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ObjectNotFound(this.label, keyText(key), 'evicted while being read')
      throw new ConnectorError(this.label, `cannot read object ${keyText(key)}: ${(error as Error).message}`, { cause: error })
    }
  }

  getSync(key: ObjectKey): Uint8Array {
    const path = this.path(key)
    try {
      if (!existsSync(`${path}${READY}`)) throw new ObjectNotFound(this.label, keyText(key))
      return readFileSync(path)
    } catch (error) {
      if (error instanceof ObjectNotFound) throw error
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ObjectNotFound(this.label, keyText(key), 'evicted while being read')
      throw new ConnectorError(this.label, `cannot read object ${keyText(key)}: ${(error as Error).message}`, { cause: error })
    }
  }

  async exists(key: ObjectKey): Promise<boolean> {
    try {
      await stat(`${this.path(key)}${READY}`)
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw new ConnectorError(this.label, `cannot check object ${keyText(key)}: ${(error as Error).message}`, { cause: error })
    }
  }

  async evict(key: ObjectKey): Promise<void> {
    const path = this.path(key)
    try {
      await rm(`${path}${READY}`, { force: true })
      await rm(path, { force: true })
    } catch (error) {
      throw new ConnectorError(this.label, `cannot evict object ${keyText(key)}: ${(error as Error).message}`, { cause: error })
    }
  }

  /** `evict`, blocking (marker first, then the data, as `evict`). */
  evictSync(key: ObjectKey): void {
    const path = this.path(key)
    try {
      rmSync(`${path}${READY}`, { force: true })
      rmSync(path, { force: true })
    } catch (error) {
      throw new ConnectorError(this.label, `cannot evict object ${keyText(key)}: ${(error as Error).message}`, { cause: error })
    }
  }

  async putBatch(values: readonly Uint8Array[]): Promise<ObjectKey[]> {
    return Promise.all(values.map((bytes) => this.put(bytes)))
  }

  async getBatch(keys: readonly ObjectKey[]): Promise<Uint8Array[]> {
    return Promise.all(keys.map((key) => this.get(key)))
  }

  async close(): Promise<void> {}

  toConfig(): ConnectorConfig {
    return { type: this.type, directory: this.directory }
  }
}

connectors.register('file', (options) => new FileConnector(options as unknown as FileConnectorOptions))
