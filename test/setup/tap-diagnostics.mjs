// Loaded into tap's runner process by `npm test` (node --import), and only there: when the runner
// ends with a failing status that its own counts do not explain (CI saw "exit 1" with every file
// ok and no failure counted), this says why: a test file process that closed with a code or
// signal after its results, an error thrown into the runner after it ended, or a fatal signal the
// runner received (tap then marks finished files failed without printing anything). Adds no
// signal listeners (that would change how tap dies) and prints nothing on a passing run.
// Test files and the processes they start inherit the --import (tap passes its execArgv on), so
// the guard is the runner's own entry script.
if (!process.env.TAP_CHILD_ID && /[\\/]tap[\\/]dist[\\/]esm[\\/]run\.mjs$/.test(process.argv[1] ?? '')) {
  const events = []
  const note = (text) => events.push(`${new Date().toISOString()} ${text}`)
  const core = await import(new URL('../../node_modules/@tapjs/core/dist/esm/index.js', import.meta.url).href)
  const threw = core.Base.prototype.threw
  core.Base.prototype.threw = function (error, extra, proxy, ended) {
    const text = error instanceof Error ? error.stack : typeof error === 'object' ? JSON.stringify(error) : String(error)
    note(`error thrown into '${this.name}' (ended: ${Boolean(ended)}): ${String(text).slice(0, 2000)}`)
    return threw.call(this, error, extra, proxy, ended)
  }
  const main = core.Spawn.prototype.main
  core.Spawn.prototype.main = function (cb) {
    const result = main.call(this, cb)
    const name = this.name
    this.proc?.on('close', (code, signal) => {
      if (code || signal) note(`test file ${name} closed with code ${code}, signal ${signal}`)
    })
    return result
  }
  process.on('exit', (code) => {
    const root = core.tap()
    const results = root.results
    const signalled = [...(root.subtests ?? [])].filter((st) => st.options?.signal).map((st) => `${st.name}: ${st.options.signal}`)
    if (code === 0 && results?.ok !== false && events.length === 0 && signalled.length === 0) return
    const lines = [`[tap-diagnostics] runner exit ${code}; root results ok=${results?.ok} count=${results?.count} fail=${results?.fail} bailout=${results?.bailout}`]
    for (const failure of (results?.failures ?? []).slice(0, 20)) lines.push(`  failure: ${failure.name} ${failure.tapError ?? ''}`)
    for (const entry of signalled.slice(0, 20)) lines.push(`  given a fatal signal by the runner: ${entry}`)
    for (const event of events.slice(0, 40)) lines.push(`  ${event}`)
    process.stderr.write(lines.join('\n') + '\n')
  })
}
