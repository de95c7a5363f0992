/**
 * The errors of the distributed dictionary (`DDict`, src/ddict/), part of the one error family
 * errors.ts exports. Each names the dictionary, and the key or shard it is about, so a failure in
 * a task on another node says what to look at.
 */
import { ErrorCode, TsflowError, type TsflowErrorOptions } from './errors-base.js'

/** `shard 2 (10.0.0.12:6380)` */
function shardLabel(shard: number, address: string): string {
  return `shard ${shard} (${address})`
}

/**
 * A put was refused because its shard holds 90% of its memory share (the Redis server's
 * `maxmemory`, `noeviction`): nothing is evicted to make room, and nothing of the refused put
 * was written. Names the key, the shard, used and limit bytes.
 */
export class DDictFull extends TsflowError {
  static override readonly codes = [ErrorCode.DDICT_FULL]
  readonly dict: string
  readonly key: string
  readonly shard: number
  readonly address: string
  readonly usedBytes: number
  readonly limitBytes: number
  constructor(dict: string, key: string, shard: number, address: string, usedBytes: number, limitBytes: number, options?: TsflowErrorOptions) {
    super(
      ErrorCode.DDICT_FULL,
      `ddict ${dict}: ${shardLabel(shard, address)} is full (${usedBytes} of ${limitBytes} bytes used), put of key ${key} refused; ` +
        'give the dictionary more totalMem or more managers, or delete keys first',
      options,
    )
    this.dict = dict
    this.key = key
    this.shard = shard
    this.address = address
    this.usedBytes = usedBytes
    this.limitBytes = limitBytes
  }
}

/** `get`/`pop` of a key the dictionary does not hold (at this handle's checkpoint), without a default. */
export class DDictKeyNotFound extends TsflowError {
  static override readonly codes = [ErrorCode.DDICT_KEY_NOT_FOUND]
  readonly dict: string
  readonly key: string
  constructor(dict: string, key: string, detail?: string) {
    super(ErrorCode.DDICT_KEY_NOT_FOUND, `ddict ${dict} has no key ${key}${detail ? ` (${detail})` : ''}`)
    this.dict = dict
    this.key = key
  }
}

/** A wait (`waitFor`, a checkpoint reader, a command) did not end within its bound; names the key and the bound. */
export class DDictTimeout extends TsflowError {
  static override readonly codes = [ErrorCode.DDICT_TIMEOUT]
  readonly dict: string
  readonly key: string
  readonly timeoutMs: number
  constructor(dict: string, key: string, timeoutMs: number, what: string, options?: TsflowErrorOptions) {
    super(ErrorCode.DDICT_TIMEOUT, `ddict ${dict}: ${what} key ${key} did not finish within ${timeoutMs} ms`, options)
    this.dict = dict
    this.key = key
    this.timeoutMs = timeoutMs
  }
}

/** A shard's server does not answer (refused, reset, or silent past the timeout); names its index and address. */
export class DDictUnreachable extends TsflowError {
  static override readonly codes = [ErrorCode.DDICT_UNREACHABLE]
  readonly dict: string
  readonly shard: number
  readonly address: string
  constructor(dict: string, shard: number, address: string, message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.DDICT_UNREACHABLE, `ddict ${dict}: ${shardLabel(shard, address)} is unreachable: ${message}`, options)
    this.dict = dict
    this.shard = shard
    this.address = address
  }
}

/** The dictionary was destroyed (its servers stopped); any later use of any handle of it. */
export class DDictDestroyed extends TsflowError {
  static override readonly codes = [ErrorCode.DDICT_DESTROYED]
  readonly dict: string
  constructor(dict: string, operation: string) {
    super(ErrorCode.DDICT_DESTROYED, `ddict ${dict} was destroyed; ${operation} is not possible any more (create a new DDict)`)
    this.dict = dict
  }
}

/** A write to a frozen (read-only) dictionary; `unfreeze()` makes it writable again. */
export class DDictFrozen extends TsflowError {
  static override readonly codes = [ErrorCode.DDICT_FROZEN]
  readonly dict: string
  readonly key: string
  constructor(dict: string, key: string, operation: string) {
    super(ErrorCode.DDICT_FROZEN, `ddict ${dict} is frozen (read-only): ${operation} of key ${key} refused; call unfreeze() first`)
    this.dict = dict
    this.key = key
  }
}

/** The dictionary's servers could not be started (binary missing, a server that exited, a block that failed or timed out); names the node and the cause. */
export class DDictStartError extends TsflowError {
  static override readonly codes = [ErrorCode.DDICT_START]
  readonly dict: string
  constructor(dict: string, message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.DDICT_START, `ddict ${dict}: could not start its servers: ${message}`, options)
    this.dict = dict
  }
}
