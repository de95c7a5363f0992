/**
 * Producer-consumer, data through a distributed dictionary (the seed's DragonHPC + DDict variant):
 *   npm run pc:ddict -- --num-sims 32 --grid-size 512
 *   node out/examples/producer-consumer/ddict.js [--config FILE] [--ddict-mem SIZE] [--managers N]
 * The workflow creates a DDict (tsflow/ddict: Redis servers tsflow starts, `--managers` per node,
 * `totalMem` sized from the data) and passes it to every task, where it attaches from its small
 * descriptor. Each simulation puts its time levels (a Float64Array, stored raw) under
 * `sim-<i>`; every trainer lists the keys, reads those whose shard is on its own node first, and
 * reads all of them in batches (one round trip per shard per batch). `IO time` is the mean, over
 * the tasks of a phase, of the time each spent in set (simulations) or in listing and getting
 * (trainers), as measured by the task itself.
 * The --config module may export `ddict` (options, or a function returning them) for
 * DDict.create: e.g. `{ provider, bindAddress: '0.0.0.0' }` to start the shards on the nodes of a
 * provider's block, reachable from workers on other hosts. Without it the shards run here.
 */
import { join } from 'node:path'
import { app, main } from 'tsflow'
import { DDict } from 'tsflow/ddict'
import { dataBytes, fixed, phase, printHeader, printResult, reportModels, runProgram, setup, type TrainerResult } from './common.js'
import { StencilTrainer, checksum, saveModel, simulate } from './wave.js'

/** Simulations fetched per getMany: a few at a time keeps a trainer's memory at a few simulations. */
const BATCH = 4
const MiB = 1024 ** 2

interface Put {
  ioSeconds: number
  checksum: number
}

// Apps at the top level: workers find them by importing this module.
const simulation = app(
  async (index: number, grid: number, dict: DDict): Promise<Put> => {
    const levels = simulate(index, grid)
    const started = performance.now()
    await dict.set(`sim-${index}`, levels)
    return { ioSeconds: (performance.now() - started) / 1000, checksum: checksum(levels) }
  },
  { name: 'simulation' },
)

const trainer = app(
  async (trainer: number, grid: number, path: string, dict: DDict, numSims: number): Promise<TrainerResult> => {
    const started = performance.now()
    let io = performance.now()
    // The keys on this node's shards first: those reads never leave the node.
    const local = new Set(await dict.localKeys())
    const all: string[] = []
    for await (const key of dict.keys()) all.push(String(key))
    io = performance.now() - io
    if (all.length !== numSims) throw new Error(`the dictionary holds ${all.length} keys, expected ${numSims} simulations`)
    const rotate = (keys: string[]) => keys.map((_, k) => keys[(k + trainer) % keys.length]!)
    const order = [...rotate(all.filter((k) => local.has(k)).sort()), ...rotate(all.filter((k) => !local.has(k)).sort())]
    const training = new StencilTrainer(grid)
    const checksums = new Array<number>(numSims)
    for (let b = 0; b < order.length; b += BATCH) {
      const keys = order.slice(b, b + BATCH)
      const t = performance.now()
      const values = await dict.getMany(keys)
      io += performance.now() - t
      values.forEach((value, k) => {
        if (!(value instanceof Float64Array)) throw new Error(`${keys[k]} holds ${Object.prototype.toString.call(value)}, expected a simulation's Float64Array`)
        training.add(value)
        checksums[Number(keys[k]!.slice(4))] = checksum(value)
      })
    }
    const model = training.fit()
    saveModel(path, model, { variant: 'ddict', trainer, seconds: (performance.now() - started) / 1000, ioSeconds: io / 1000, localKeys: local.size })
    return { trainer, model, checksums, path, ioSeconds: io / 1000 }
  },
  { name: 'trainer' },
)

main(import.meta, () =>
  runProgram('ddict', async (flags) => {
    const s = await setup('ddict', flags)
    const trainers = flags.workers ?? s.workers
    printHeader('ddict', flags, s, trainers)
    // Room for the data twice over (Redis allocates values in size classes, and keys do not
    // hash evenly over the shards), plus 64 MiB per shard for the servers themselves.
    const shardsGuess = flags.managers * Math.max(1, s.nodes)
    const totalMem = flags.ddictMem ?? 2 * dataBytes(flags) + 64 * MiB * shardsGuess
    const dict = await DDict.create({ name: 'producer-consumer', managersPerNode: flags.managers, totalMem, ...s.ddictOptions })
    try {
      const stats = await dict.stats()
      const nodes = new Set(stats.map((shard) => shard.node))
      console.log(`DDict: ${stats.length} shard${stats.length === 1 ? '' : 's'} on ${nodes.size} node${nodes.size === 1 ? '' : 's'} (${stats.map((shard) => shard.address).join(' ')}), totalMem ${fixed(totalMem / 1024 ** 3, 2)} GB`)
      const produced = await phase(
        `Simulation phase: ${flags.numSims} simulations`,
        () => Promise.all(Array.from({ length: flags.numSims }, (_, i) => simulation(i, flags.gridSize, dict))),
        (p) => p.ioSeconds,
      )
      const trained = await phase(
        `Training phase: ${trainers} trainers`,
        () => Promise.all(Array.from({ length: trainers }, (_, i) => trainer(i, flags.gridSize, join(s.out, `ddict-model-${i}.json`), dict, flags.numSims))),
        (t) => t.ioSeconds ?? 0,
      )
      const error = reportModels(trained.results, produced.results.map((p) => p.checksum))
      const keys = (await dict.stats()).map((shard) => shard.keys)
      printResult('ddict', flags, s, trainers, produced.timing, trained.timing, {
        schemeError: error,
        models: trained.results.map((t) => t.path),
        ddict: { shards: stats.length, nodes: nodes.size, managersPerNode: flags.managers, totalMem, keysPerShard: keys, addresses: stats.map((shard) => shard.address) },
      })
    } catch (error) {
      if ((error as { code?: unknown })?.code === 'E_DDICT_FULL') {
        console.error(`ddict: the dictionary (totalMem ${totalMem} bytes) is too small for ${dataBytes(flags)} bytes of data; give it more with --ddict-mem (or --managers)`)
      }
      throw error
    } finally {
      await dict.destroy()
    }
  }),
)
