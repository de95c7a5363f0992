/**
 * The workload of the producer-consumer programs (seed 004), shared by the three variants:
 *   - a producer: a 2-D wave equation toy problem, u_tt = c^2 (u_xx + u_yy), on a grid x grid
 *     square with fixed (zero) edges, advanced STEPS steps with the explicit leapfrog scheme
 *       u[t+1] = 2 u[t] - u[t-1] + r^2 (E + W + N + S - 4 u[t])      (r = c dt / dx)
 *     keeping every time level it computes as float64: one Float64Array of STEPS * grid^2;
 *   - a consumer: a linear model that predicts u[t+1] at a point from u[t] at the point and its
 *     four neighbours and u[t-1] at the point (six coefficients, no intercept), fitted by least
 *     squares over every interior point of every consecutive triple of levels of every
 *     simulation. It is trained by this program's own loop (see README.md for why no library):
 *     one streaming pass accumulates the normal equations (X'X, X'y, y'y), so the work is
 *     proportional to the data and no sample matrix is ever built; a 6 x 6 solve ends it.
 *     Since the data obey the scheme exactly, a correct fit recovers the scheme's coefficients
 *     (2 - 4 r^2, r^2 four times, -1) with a residual at rounding level: a test can tell.
 * Only plain functions here, no tsflow: the apps of each variant call them on the workers.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname } from 'node:path'

/** Time levels kept per simulation (the seed's 10 steps). */
export const STEPS = 10
/** (c dt / dx)^2: stable for the 2-D scheme up to 1/2. */
export const R2 = 0.2
export const FEATURES = ['center', 'east', 'west', 'north', 'south', 'previous'] as const
/** The coefficients a correct fit must find: the scheme itself. */
export const SCHEME: readonly number[] = [2 - 4 * R2, R2, R2, R2, R2, -1]

/** Bytes of one simulation's data: STEPS levels of grid^2 float64. */
export const simulationBytes = (grid: number): number => STEPS * grid * grid * 8

/** A small deterministic generator (mulberry32): simulation i always starts the same way. */
function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * The initial displacement of simulation `index` (at rest: u[-1] = u[0]): three Gaussian bumps
 * at random places plus a little noise. The noise keeps the six features of the model from being
 * nearly collinear (smooth fields alone make the least-squares system ill-conditioned).
 */
function initialField(index: number, grid: number): Float64Array {
  const next = random(0x9e3779b9 ^ (index + 1))
  const u = new Float64Array(grid * grid)
  for (let b = 0; b < 3; b++) {
    const cx = (0.2 + 0.6 * next()) * grid
    const cy = (0.2 + 0.6 * next()) * grid
    const width = (0.03 + 0.07 * next()) * grid
    const amplitude = 0.5 + 0.5 * next()
    const inv = 1 / (2 * width * width)
    for (let y = 1; y < grid - 1; y++) {
      const dy2 = (y - cy) * (y - cy)
      for (let x = 1; x < grid - 1; x++) u[y * grid + x]! += amplitude * Math.exp(-((x - cx) * (x - cx) + dy2) * inv)
    }
  }
  for (let y = 1; y < grid - 1; y++) for (let x = 1; x < grid - 1; x++) u[y * grid + x]! += 0.05 * (next() - 0.5)
  return u
}

/**
 * Runs simulation `index` and returns its STEPS time levels, level s at [s * grid^2, (s+1) * grid^2).
 * The levels are written straight into the returned array (no copy per step).
 */
export function simulate(index: number, grid: number): Float64Array {
  if (!Number.isInteger(grid) || grid < 3) throw new RangeError(`grid size must be an integer of at least 3 (got ${grid})`)
  const n = grid * grid
  const levels = new Float64Array(STEPS * n)
  let current: Float64Array = initialField(index, grid)
  let previous: Float64Array = current.slice()
  for (let s = 0; s < STEPS; s++) {
    const next = levels.subarray(s * n, (s + 1) * n)
    for (let y = 1; y < grid - 1; y++) {
      const row = y * grid
      for (let x = 1; x < grid - 1; x++) {
        const i = row + x
        const c = current[i]!
        next[i] = 2 * c - previous[i]! + R2 * (current[i + 1]! + current[i - 1]! + current[i - grid]! + current[i + grid]! - 4 * c)
      }
    }
    previous = current
    current = next
  }
  return levels
}

/** The sum of a simulation's values: trainers return it per simulation so the workflow can check that each read every simulation intact. */
export function checksum(levels: Float64Array): number {
  let sum = 0
  for (let i = 0; i < levels.length; i++) sum += levels[i]!
  return sum
}

export interface FittedModel {
  model: 'linear 5-point stencil predictor of u[t+1] from u[t] and u[t-1]'
  features: readonly string[]
  coefficients: number[]
  /** the wave scheme's coefficients, for comparison */
  scheme: readonly number[]
  /** root mean square error of the fit over all samples */
  rmse: number
  samples: number
  simulations: number
}

/**
 * The consumer's training loop: add simulations one by one (in any order), then solve. Memory is
 * constant: 6 x 6 sums, whatever the amount of data.
 */
export class StencilTrainer {
  private readonly xtx = new Float64Array(36)
  private readonly xty = new Float64Array(6)
  private yy = 0
  private samples = 0
  private simulations = 0

  constructor(private readonly grid: number) {}

  /** Adds every interior point of every consecutive triple of levels of one simulation. */
  add(levels: Float64Array): void {
    const n = this.grid * this.grid
    if (levels.length !== STEPS * n) {
      throw new RangeError(`a simulation of a ${this.grid} x ${this.grid} grid has ${STEPS * n} values (got ${levels.length}): was it made with another --grid-size?`)
    }
    for (let t = 2; t < STEPS; t++) this.addTriple(levels.subarray((t - 2) * n, (t - 1) * n), levels.subarray((t - 1) * n, t * n), levels.subarray(t * n, (t + 1) * n))
    this.simulations++
  }

  // The hot loop: 21 sums of products of the upper triangle of X'X, 6 of X'y and y'y, kept in
  // locals for the whole triple (V8 keeps them in registers), added to the totals once.
  private addTriple(prev: Float64Array, cur: Float64Array, next: Float64Array): void {
    const g = this.grid
    let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s04 = 0, s05 = 0
    let s11 = 0, s12 = 0, s13 = 0, s14 = 0, s15 = 0
    let s22 = 0, s23 = 0, s24 = 0, s25 = 0
    let s33 = 0, s34 = 0, s35 = 0
    let s44 = 0, s45 = 0
    let s55 = 0
    let r0 = 0, r1 = 0, r2 = 0, r3 = 0, r4 = 0, r5 = 0
    let yy = 0
    for (let y = 1; y < g - 1; y++) {
      const row = y * g
      for (let x = 1; x < g - 1; x++) {
        const i = row + x
        const f0 = cur[i]!
        const f1 = cur[i + 1]!
        const f2 = cur[i - 1]!
        const f3 = cur[i - g]!
        const f4 = cur[i + g]!
        const f5 = prev[i]!
        const t = next[i]!
        s00 += f0 * f0; s01 += f0 * f1; s02 += f0 * f2; s03 += f0 * f3; s04 += f0 * f4; s05 += f0 * f5
        s11 += f1 * f1; s12 += f1 * f2; s13 += f1 * f3; s14 += f1 * f4; s15 += f1 * f5
        s22 += f2 * f2; s23 += f2 * f3; s24 += f2 * f4; s25 += f2 * f5
        s33 += f3 * f3; s34 += f3 * f4; s35 += f3 * f5
        s44 += f4 * f4; s45 += f4 * f5
        s55 += f5 * f5
        r0 += f0 * t; r1 += f1 * t; r2 += f2 * t; r3 += f3 * t; r4 += f4 * t; r5 += f5 * t
        yy += t * t
      }
    }
    const upper = [s00, s01, s02, s03, s04, s05, s11, s12, s13, s14, s15, s22, s23, s24, s25, s33, s34, s35, s44, s45, s55]
    let k = 0
    for (let a = 0; a < 6; a++) {
      for (let b = a; b < 6; b++) {
        this.xtx[a * 6 + b]! += upper[k]!
        if (a !== b) this.xtx[b * 6 + a]! += upper[k]!
        k++
      }
    }
    const rhs = [r0, r1, r2, r3, r4, r5]
    for (let a = 0; a < 6; a++) this.xty[a]! += rhs[a]!
    this.yy += yy
    this.samples += (g - 2) * (g - 2)
  }

  /** Solves the normal equations (Gaussian elimination with partial pivoting on 6 x 6). */
  fit(): FittedModel {
    if (this.samples === 0) throw new Error('the trainer got no data: no simulation was added')
    const m = Array.from({ length: 6 }, (_, r) => [...this.xtx.subarray(r * 6, r * 6 + 6), this.xty[r]!])
    for (let col = 0; col < 6; col++) {
      let pivot = col
      for (let r = col + 1; r < 6; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[pivot]![col]!)) pivot = r
      ;[m[col], m[pivot]] = [m[pivot]!, m[col]!]
      const p = m[col]![col]!
      if (p === 0) throw new Error('the training data do not determine the model (singular normal equations): are all simulations zero?')
      for (let r = col + 1; r < 6; r++) {
        const factor = m[r]![col]! / p
        for (let c = col; c <= 6; c++) m[r]![c]! -= factor * m[col]![c]!
      }
    }
    const w = new Array<number>(6).fill(0)
    for (let r = 5; r >= 0; r--) {
      let sum = m[r]![6]!
      for (let c = r + 1; c < 6; c++) sum -= m[r]![c]! * w[c]!
      w[r] = sum / m[r]![r]!
    }
    // SSE = y'y - 2 w'X'y + w'X'X w, from the sums alone (no second pass over the data).
    let sse = this.yy
    for (let a = 0; a < 6; a++) {
      sse -= 2 * w[a]! * this.xty[a]!
      for (let b = 0; b < 6; b++) sse += w[a]! * this.xtx[a * 6 + b]! * w[b]!
    }
    return {
      model: 'linear 5-point stencil predictor of u[t+1] from u[t] and u[t-1]',
      features: FEATURES,
      coefficients: w,
      scheme: SCHEME,
      rmse: Math.sqrt(Math.max(0, sse) / this.samples),
      samples: this.samples,
      simulations: this.simulations,
    }
  }
}

/** Writes a trained model as JSON (with who trained it, where, and how long it took). */
export function saveModel(path: string, model: FittedModel, extra: Record<string, unknown>): void {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, `${JSON.stringify({ ...model, host: hostname(), ...extra }, null, 2)}\n`)
}

/** Largest difference between fitted coefficients and the scheme's. */
export function schemeError(coefficients: readonly number[]): number {
  return Math.max(...coefficients.map((c, i) => Math.abs(c - SCHEME[i]!)))
}
