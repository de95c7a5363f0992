// Runs a producer-consumer program as a user does (`node out/examples/producer-consumer/<variant>.js`)
// and reads what it printed and saved. Shared by test/producer-consumer/.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

export const root = fileURLToPath(new URL('../..', import.meta.url))
export const program = (variant: string) => join(root, 'out/examples/producer-consumer', `${variant}.js`)

/** The scheme's coefficients (center, east, west, north, south, previous) for r^2 = 0.2, written out so a wrong constant in wave.ts fails too. */
export const SCHEME = [1.2, 0.2, 0.2, 0.2, 0.2, -1]

export interface Run {
  code: number | null
  stdout: string
  stderr: string
  /** the RESULT line's record */
  result: Record<string, any>
}

export function runProgram(variant: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [program(variant), ...args],
      { cwd: options.cwd, env: { ...process.env, NODE_OPTIONS: '', ...options.env }, timeout: options.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024, killSignal: 'SIGTERM' },
      (error, stdout, stderr) => {
        const line = /^RESULT (.*)$/m.exec(stdout)
        const code = error ? ((error as { code?: unknown }).code as number | null) ?? 1 : 0
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr, result: line ? JSON.parse(line[1]!) : {} })
      },
    )
  })
}

/** The checks every run of every variant must pass: the seed's lines, the data size, the data check, the models. */
export function checkRun(t: Test, run: Run, variant: string, sims: number, grid: number, trainers: number): Record<string, any>[] {
  t.equal(run.code, 0, `${variant} exits 0; stderr: ${run.stderr.slice(-2000)}`)
  const bytes = sims * grid * grid * 10 * 8
  t.match(run.stdout, new RegExp(`^Training data size: ${(bytes / 2 ** 30).toFixed(2)} GB$`, 'm'), 'the data size in GB')
  const done = [...run.stdout.matchAll(/^Done in (\d+\.\d\d) s$/gm)]
  const io = [...run.stdout.matchAll(/^IO time: (NA|\d+\.\d{3} s)$/gm)].map((m) => m[1])
  t.equal(done.length, 2, 'Done in, once per phase')
  t.equal(io.length, 2, 'IO time, once per phase')
  if (variant === 'futures') t.same(io, ['NA', 'NA'], 'futures: no task moves data itself')
  else for (const value of io) t.match(value, /^\d+\.\d{3} s$/, `${variant}: IO time measured by the tasks`)
  t.match(run.stdout, new RegExp(`^Data check: each of the ${trainers} trainers read all ${sims} simulations intact \\(${((grid - 2) ** 2 * 8 * sims).toLocaleString('en-US')} samples each\\)$`, 'm'))
  const r = run.result
  t.match(r, { variant, numSims: sims, gridSize: grid, dataBytes: bytes, trainers }, 'the RESULT line')
  t.ok(r.simSeconds > 0 && r.trainSeconds > 0, 'phase times in RESULT')
  t.equal(r.dataGB, bytes / 2 ** 30)
  if (variant === 'futures') t.match(r, { simIOSeconds: null, trainIOSeconds: null })
  else t.ok(r.simIOSeconds >= 0 && r.trainIOSeconds >= 0 && r.trainIOSeconds <= r.trainSeconds, 'IO seconds in RESULT, within the phase')
  const models = (r.models as string[]).map((path) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>)
  t.equal(models.length, trainers, 'one saved model per trainer')
  for (const model of models) {
    t.equal(model.samples, (grid - 2) ** 2 * 8 * sims, 'trained on every interior point of every triple of levels')
    t.equal(model.simulations, sims)
    const off = Math.max(...SCHEME.map((c, i) => Math.abs(model.coefficients[i] - c)))
    t.ok(off < 1e-6, `trainer ${model.trainer}: fitted coefficients ${model.coefficients} are the wave scheme's (largest difference ${off})`)
    t.ok(model.rmse < 1e-6, 'the residual is at rounding level')
  }
  return models
}
