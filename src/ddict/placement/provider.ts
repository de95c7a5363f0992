/**
 * The 'provider' placement of a dictionary's servers (`DDict.create({ provider, blocks })`): the
 * shards run on the nodes of provider blocks (LocalProvider, SlurmProvider, any provider), one
 * shard host per node through the provider's launcher, `managersPerNode` Redis servers each, so
 * blocks x nodesPerBlock x managersPerNode shards in all. Registers itself into
 * ddict/servers/placement.ts's registry when imported (`tsflow/ddict` imports it).
 *
 * The provider belongs to the dictionary from then on, as an executor's provider belongs to the
 * executor: it is initialised here and shut down (its blocks cancelled) when the dictionary's
 * servers stop. Give each dictionary a provider of its own.
 */
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../../errors.js'
import { hostAddress, resolveAddress } from '../../executors/htex/options.js'
import { shellQuote } from '../../launchers/shell.js'
import { isFinalBlockState, type BlockStatus, type ExecutionProvider } from '../../providers/base.js'
import { DDICT_DEFAULTS } from '../../protocol/ddict.js'
import { settledWithin } from '../../util/deferred.js'
import { silentLogger, type Logger } from '../../util/logger.js'
import { externalAddress, registerPlacement, type HostLaunch, type Placement, type PlacementRequest } from '../servers/placement.js'

/** How often block states are polled while the servers start (a block that fails before its hosts report ends the start with its reason). */
const POLL_MS = 1000
/** Servers on provider nodes are for clients elsewhere: every interface unless bindAddress says otherwise. */
const PROVIDER_BIND = '0.0.0.0'
const WILDCARDS = new Set(['0.0.0.0', '::', '*'])

class ProviderPlacement implements Placement {
  readonly kind = 'provider'
  readonly hosts: number
  readonly serversPerHost: number
  readonly serverAddress: { bind: string; advertise?: string }
  private readonly jobs: { blockId: string; jobId: string }[] = []
  private poller: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined
  private scriptDir: string | undefined
  private done = false

  constructor(
    private readonly provider: ExecutionProvider,
    private readonly blocks: number,
    readonly listen: { bind: string; address: string },
    private readonly request: PlacementRequest,
    private readonly logger: Logger,
  ) {
    this.hosts = blocks * provider.nodesPerBlock
    this.serversPerHost = request.managersPerNode ?? DDICT_DEFAULTS.managersPerNode
    // No --advertise: each node's host advertises the address it reached this process from.
    this.serverAddress = { bind: request.bindAddress ?? PROVIDER_BIND }
  }

  async launch(launch: HostLaunch): Promise<void> {
    // A private directory (mode 0700): the block scripts export the password.
    const base = this.request.dir ?? tmpdir()
    mkdirSync(base, { recursive: true })
    this.scriptDir = mkdtempSync(join(base, `tsflow-ddict-${this.request.id}-blocks-`))
    await this.provider.init({ scriptDir: this.scriptDir, logger: this.logger.child('provider') })
    const command = [...launch.program, ...launch.flags].map((word) => shellQuote(word)).join(' ')
    this.unsubscribe = this.provider.onBlockEnd?.(() => void this.poll(launch))
    for (let i = 0; i < this.blocks; i++) {
      const blockId = String(i)
      const jobId = await this.provider.submit(command, blockId, { env: launch.env, tasksPerNode: 1 })
      this.jobs.push({ blockId, jobId })
      this.logger.info(`ddict ${this.request.name}: block ${blockId} submitted to ${this.provider.label} as job ${jobId}`)
    }
    this.poller = setInterval(() => void this.poll(launch), POLL_MS)
    void this.poll(launch)
  }

  ready(): void {
    this.stopWatching()
  }

  /** A block that ended (or failed) before its hosts reported ends the start, with the provider's reason. */
  private async poll(launch: HostLaunch): Promise<void> {
    if (this.done || this.jobs.length === 0) return
    let statuses: BlockStatus[]
    try {
      statuses = await this.provider.status(this.jobs.map((job) => job.jobId))
    } catch (error) {
      this.logger.warn(`ddict ${this.request.name}: block status failed: ${(error as Error).message}`)
      return
    }
    if (this.done) return
    const ended = statuses.find((status) => isFinalBlockState(status.state))
    if (ended) launch.fail(`${this.provider.label} block ${ended.blockId} (job ${ended.jobId}) ${ended.state} before its shard hosts reported: ${ended.message ?? 'no reason given'}`)
  }

  async explainTimeout(): Promise<string> {
    if (this.jobs.length === 0) return `no block was submitted to ${this.provider.label}`
    const statuses = await this.provider.status(this.jobs.map((job) => job.jobId))
    return `${this.provider.label} blocks: ${statuses.map((s) => `block ${s.blockId} (job ${s.jobId}) ${s.state}${s.message ? ` (${s.message.split('\n')[0]})` : ''}`).join(', ')}`
  }

  private stopWatching(): void {
    this.done = true
    clearInterval(this.poller)
    this.unsubscribe?.()
  }

  async cleanup(): Promise<void> {
    this.stopWatching()
    // The hosts were told to stop and have hung up; the blocks end by themselves, or are cancelled here.
    await settledWithin(this.provider.shutdown(), 30_000)
    if (this.scriptDir) rmSync(this.scriptDir, { recursive: true, force: true })
  }

  describe(): Record<string, unknown> {
    return {
      placement: 'provider',
      provider: this.provider.label,
      blocks: this.blocks,
      nodesPerBlock: this.provider.nodesPerBlock,
      jobs: this.jobs.map((job) => job.jobId),
      bind: this.serverAddress.bind,
      report: this.listen.address,
    }
  }
}

/**
 * Where the hosts report to: `advertiseAddress` (an IP of this machine, an interface name or a
 * hostname, checked as the HTEX executor checks its `address`), else 127.0.0.1 for the local
 * provider (its blocks run here) and this machine's first non-loopback IPv4 address otherwise.
 */
async function reportAddress(request: PlacementRequest, provider: ExecutionProvider): Promise<{ bind: string; address: string }> {
  if (request.advertiseAddress !== undefined) {
    const checked = hostAddress(request.advertiseAddress, 'ddict.advertiseAddress')
    const address = await resolveAddress(checked, 'ddict.advertiseAddress')
    return WILDCARDS.has(address) ? { bind: address === '*' ? '0.0.0.0' : address, address: externalAddress() } : { bind: address, address }
  }
  if (provider.label === 'local') return { bind: '127.0.0.1', address: '127.0.0.1' }
  const address = externalAddress()
  return { bind: address, address }
}

registerPlacement('provider', async (request) => {
  const provider = request.provider as ExecutionProvider
  provider.validate('ddict.provider')
  const blocks = request.blocks ?? 1
  if (!Number.isInteger(blocks) || blocks < 1) throw new ConfigError('ddict.blocks', `must be a whole number of blocks >= 1 (got ${blocks})`)
  const listen = await reportAddress(request, provider)
  return new ProviderPlacement(provider, blocks, listen, request, request.logger ?? silentLogger)
})
