// A strict reader of the Prometheus text exposition format (0.0.4), for tests of /metrics.
import type { Test } from 'tap'

/** One parsed sample: name, labels (unescaped), value. */
interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)/y

/** Parses exposition text strictly; throws naming the first line that breaks the grammar. */
export function parseExposition(text: string): { samples: Sample[]; types: Map<string, string>; help: Map<string, string> } {
  if (!text.endsWith('\n')) throw new Error('the text does not end with a newline')
  const samples: Sample[] = []
  const types = new Map<string, string>()
  const help = new Map<string, string>()
  for (const line of text.slice(0, -1).split('\n')) {
    let m: RegExpMatchArray | null
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line))) {
      if (/\\[^\\n]/.test(m[2]!.replace(/\\\\/g, ''))) throw new Error(`bad escape in HELP: ${line}`)
      help.set(m[1]!, m[2]!)
      continue
    }
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      if (types.has(m[1]!)) throw new Error(`TYPE twice for ${m[1]}`)
      types.set(m[1]!, m[2]!)
      continue
    }
    if (line.startsWith('#')) throw new Error(`unexpected comment: ${line}`)
    m = SAMPLE.exec(line)
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`)
    const labels: Record<string, string> = {}
    if (m[3] !== undefined && m[3] !== '') {
      const body = m[3]
      LABEL.lastIndex = 0
      while (LABEL.lastIndex < body.length) {
        const start = LABEL.lastIndex
        const l = LABEL.exec(body)
        if (!l || l.index !== start) throw new Error(`bad labels in ${JSON.stringify(line)}`)
        labels[l[1]!] = l[2]!.replace(/\\(\\|"|n)/g, (_, c: string) => (c === 'n' ? '\n' : c))
      }
    }
    const raw = m[4]!
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw)
    if (!/^(\+Inf|-Inf|NaN|-?\d+(\.\d+)?(e[+-]?\d+)?)$/.test(raw)) throw new Error(`bad value in ${JSON.stringify(line)}`)
    const family = m[1]!.replace(/_(bucket|sum|count)$/, '')
    if (!types.has(m[1]!) && !types.has(family)) throw new Error(`sample ${m[1]} before its TYPE`)
    samples.push({ name: m[1]!, labels, value })
  }
  return { samples, types, help }
}

/** Each histogram's buckets are cumulative, end in +Inf, and +Inf equals _count. */
export function checkHistograms(parsed: ReturnType<typeof parseExposition>, t: Test): void {
  for (const [name, type] of parsed.types) {
    if (type !== 'histogram') continue
    const series = new Map<string, Sample[]>()
    for (const s of parsed.samples.filter((s) => s.name === `${name}_bucket`)) {
      const { le, ...rest } = s.labels
      const key = JSON.stringify(rest)
      series.set(key, [...(series.get(key) ?? []), s])
    }
    for (const [key, buckets] of series) {
      for (let i = 1; i < buckets.length; i++) {
        if (!(buckets[i]!.value >= buckets[i - 1]!.value)) t.fail(`${name}${key}: bucket le=${buckets[i]!.labels.le} below the one before`)
        if (!(Number(buckets[i]!.labels.le!.replace('+Inf', 'Infinity')) > Number(buckets[i - 1]!.labels.le!.replace('+Inf', 'Infinity')))) t.fail(`${name}: le not increasing`)
      }
      const last = buckets[buckets.length - 1]!
      t.equal(last.labels.le, '+Inf', `${name}${key}: the last bucket is +Inf`)
      const count = parsed.samples.find((s) => s.name === `${name}_count` && JSON.stringify(s.labels) === key)
      t.equal(last.value, count?.value, `${name}${key}: +Inf bucket == _count`)
    }
  }
}

