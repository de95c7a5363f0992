/**
 * The dashboard page's charts (docs/monitoring.md "Dashboard"): plain browser JavaScript, kept as a
 * string and joined into the page's script by page.ts. Each function turns one API response
 * (src/protocol/dashboard.ts) into a vega-lite spec; `drawChart` compiles it with the vega-lite
 * build and renders it with vega's View (no vega-embed: two files, no extra dependency).
 *
 * Written without template literals so it can live inside one (String.raw keeps backslashes).
 */
export const CHARTS_SCRIPT = String.raw`
var SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json'
var STATE_COLORS = {
  unsched: '#bab0ac', pending: '#9ecae9', launched: '#f2cf5b', running: '#4c78a8', joining: '#b279a2',
  exec_done: '#54a24b', memo_done: '#88d27a', failed: '#e45756', dep_fail: '#ff9d98', cancelled: '#79706e'
}
var stateScale = { domain: STATES, range: STATES.map(function (s) { return STATE_COLORS[s] || '#999' }) }
var views = {}

// Renders spec into the element with this id, replacing the view drawn there before; the element's
// data-rendered counts the draws, so tests and the benchmark can wait for a chart.
function drawChart(id, spec, empty) {
  return chartLibraries.then(function () { return drawNow(id, spec, empty) })
}
// The page's script runs before vega's (so its API calls start while vega loads); deferred
// scripts have all run by DOMContentLoaded (readyState is already 'interactive' while they run,
// so it cannot tell).
var chartLibraries = new Promise(function (resolve, reject) {
  var check = function () {
    if (window.vega && window.vegaLite) resolve()
    else reject(new Error('vega or vega-lite did not load (/static/vega.min.js, /static/vega-lite.min.js)'))
  }
  if (window.vega && window.vegaLite) resolve()
  else if (document.readyState === 'complete') check()
  else document.addEventListener('DOMContentLoaded', check)
})
function drawNow(id, spec, empty) {
  var el = document.getElementById(id)
  if (!el) return Promise.resolve()
  var counted = function () { el.dataset.rendered = String(Number(el.dataset.rendered || 0) + 1) }
  if (empty) {
    if (views[id]) { views[id].finalize(); delete views[id] }
    el.replaceChildren(h('p', { className: 'empty' }, empty))
    counted()
    return Promise.resolve()
  }
  spec.$schema = SCHEMA
  // a numeric width (not 'container', which faceted views ignore), leaving room for axis and legend
  var width = Math.max(240, (el.clientWidth || 800) - 190)
  if (spec.encoding && spec.encoding.row) spec.width = width
  else {
    spec.width = Math.max(300, (el.clientWidth || 800) - 4)
    spec.autosize = { type: 'fit-x', contains: 'padding' }
  }
  spec.config = { font: 'system-ui, sans-serif', axis: { labelFontSize: 11, titleFontSize: 11 }, legend: { labelFontSize: 11 } }
  var compiled = vegaLite.compile(spec).spec
  // drawn off-screen and swapped in when done: a live redraw never leaves the panel blank
  var holder = document.createElement('div')
  // canvas: thousands of Gantt bars draw several times faster than as SVG elements
  var view = new vega.View(vega.parse(compiled), { renderer: 'canvas', container: holder, hover: true })
  return view.runAsync().then(function () {
    if (!document.body.contains(el)) { view.finalize(); return }
    if (views[id]) views[id].finalize()
    views[id] = view
    el.replaceChildren(holder)
    counted()
  }, function (error) {
    view.finalize()
    el.textContent = 'chart failed: ' + error.message
  })
}

function finalizeCharts() {
  Object.keys(views).forEach(function (id) { views[id].finalize(); delete views[id] })
}

var tooltipTime = { timeUnit: 'hoursminutesseconds' }
// clock-time ticks: vega's default multi-format shows bare '.500' for ticks inside a second
var timeAxis = { format: '%H:%M:%S', labelOverlap: true, tickCount: 6 }

// One row per task: a grey "queued" segment (submitted .. running) and a "running" one (running ..
// end) in the task's state colour; unfinished tasks reach to now.
function ganttSpec(gantt, now) {
  var rows = []
  gantt.bars.forEach(function (b) {
    var end = b.endMs === undefined || b.endMs === null ? now : b.endMs
    var run = b.runningMs === undefined || b.runningMs === null ? undefined : b.runningMs
    var base = { task: b.taskId, app: b.app, executor: b.executor || '', state: b.state }
    rows.push(Object.assign({ phase: 'queued', from: b.submitMs, to: run === undefined ? end : run }, base))
    if (run !== undefined) rows.push(Object.assign({ phase: 'running', from: run, to: end }, base))
  })
  if (rows.length === 0) return { empty: 'no tasks yet' }
  return {
    spec: {
      height: 240,
      data: { values: rows },
      transform: [{ calculate: 'datum.task + 0.9', as: 'task2' }],
      mark: { type: 'bar', tooltip: true },
      encoding: {
        x: { field: 'from', type: 'temporal', title: 'time', axis: timeAxis },
        x2: { field: 'to' },
        y: { field: 'task', type: 'quantitative', title: gantt.sampled ? 'task id (sampled)' : 'task id', scale: { zero: false, nice: false }, sort: 'descending' },
        y2: { field: 'task2' },
        color: {
          condition: { test: "datum.phase === 'queued'", value: '#dddddd' },
          field: 'state', type: 'nominal', scale: stateScale, title: 'state'
        },
        tooltip: [
          { field: 'task', title: 'task' }, { field: 'app' }, { field: 'state' }, { field: 'phase' },
          { field: 'from', type: 'temporal', timeUnit: tooltipTime.timeUnit, title: 'from' },
          { field: 'to', type: 'temporal', timeUnit: tooltipTime.timeUnit, title: 'to' }
        ]
      }
    }
  }
}

function statesSpec(states) {
  if (states.points.length === 0) return { empty: 'no tasks yet' }
  return {
    spec: {
      height: 240,
      data: { values: states.points },
      mark: { type: 'area', tooltip: true },
      encoding: {
        x: { field: 'timeMs', type: 'temporal', title: 'time', axis: timeAxis },
        y: { field: 'tasks', type: 'quantitative', stack: 'zero', title: 'tasks' },
        color: { field: 'state', type: 'nominal', scale: stateScale, title: 'state' },
        order: { field: 'state' }
      }
    }
  }
}

// Mean duration per app as a bar, with its median and p95 as ticks.
function appsSpec(apps) {
  var rows = []
  apps.apps.forEach(function (a) {
    ;[['mean', a.meanMs], ['median', a.medianMs], ['p95', a.p95Ms]].forEach(function (m) {
      if (m[1] !== undefined && m[1] !== null) rows.push({ app: a.app, stat: m[0], ms: m[1] })
    })
  })
  if (rows.length === 0) return { empty: 'no task has ended yet' }
  return {
    spec: {
      height: { step: 22 },
      data: { values: rows },
      encoding: { y: { field: 'app', type: 'nominal', title: null }, x: { field: 'ms', type: 'quantitative', title: 'duration (ms)' } },
      layer: [
        { transform: [{ filter: "datum.stat === 'mean'" }], mark: { type: 'bar', color: '#4c78a8', tooltip: true } },
        { transform: [{ filter: "datum.stat !== 'mean'" }], mark: { type: 'tick', thickness: 2, tooltip: true },
          encoding: { color: { field: 'stat', type: 'nominal', scale: { domain: ['median', 'p95'], range: ['#f58518', '#e45756'] }, title: null } } }
      ]
    }
  }
}

// Blocks and managers as lifetime bars, one lane each; still-open ones reach to now.
function infraSpec(infra, now) {
  var rows = []
  infra.blocks.forEach(function (b) {
    var from = b.submittedMs !== undefined && b.submittedMs !== null ? b.submittedMs : b.runningMs
    if (from === undefined || from === null) return
    rows.push({ lane: 'block ' + b.executor + '/' + b.blockId, kind: 'block', status: b.state, from: from, to: b.endMs != null ? b.endMs : now, detail: b.jobId || '' })
  })
  infra.managers.forEach(function (m) {
    if (m.registeredMs === undefined || m.registeredMs === null) return
    rows.push({ lane: 'manager ' + m.hostname + ' ' + m.managerId.slice(0, 8), kind: 'manager', status: m.event, from: m.registeredMs, to: m.endMs != null ? m.endMs : now, detail: m.workers + ' workers' + (m.reason ? ', ' + m.reason : '') })
  })
  if (rows.length === 0) return { empty: 'no blocks or managers recorded (a thread pool has none)' }
  return {
    spec: {
      height: { step: 18 },
      data: { values: rows },
      mark: { type: 'bar', tooltip: true },
      encoding: {
        y: { field: 'lane', type: 'nominal', title: null, sort: null },
        x: { field: 'from', type: 'temporal', title: 'time', axis: timeAxis },
        x2: { field: 'to' },
        color: { field: 'status', type: 'nominal', title: 'state' },
        tooltip: [{ field: 'lane' }, { field: 'status' }, { field: 'detail' },
          { field: 'from', type: 'temporal', timeUnit: tooltipTime.timeUnit }, { field: 'to', type: 'temporal', timeUnit: tooltipTime.timeUnit }]
      }
    }
  }
}

// Per node over time: CPU seconds and RSS of its running tasks, one panel each.
function nodesSpec(res) {
  if (res.nodes.length === 0) return { empty: 'no resource samples (sampled by HTEX managers when monitoring.resourceIntervalMs > 0)' }
  return {
    spec: {
      data: { values: res.nodes },
      transform: [{ calculate: 'datum.rssBytes / 1048576', as: 'RSS (MiB)' }, { calculate: 'datum.cpuS', as: 'CPU (s)' },
        { fold: ['CPU (s)', 'RSS (MiB)'], as: ['measure', 'value'] }],
      mark: { type: 'line', point: false, tooltip: true },
      encoding: {
        row: { field: 'measure', type: 'nominal', title: null },
        x: { field: 'timeMs', type: 'temporal', title: 'time', axis: timeAxis },
        y: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'hostname', type: 'nominal', title: 'node' }
      },
      resolve: { scale: { y: 'independent' } },
      height: 120
    }
  }
}

// Per task: CPU time against peak RSS, one point per try.
function tasksResourceSpec(res) {
  if (res.tasks.length === 0) return { empty: 'no per-task resource samples' }
  var shown = res.sampledTasks !== undefined && res.sampledTasks > res.tasks.length
    ? res.tasks.length + ' of ' + res.sampledTasks + ' task tries (most CPU first)' : undefined
  return {
    spec: {
      title: shown ? { text: shown, fontSize: 11, fontWeight: 'normal', anchor: 'start' } : undefined,
      height: 200,
      data: { values: res.tasks },
      transform: [{ calculate: 'datum.peakRssBytes / 1048576', as: 'peakRssMiB' }],
      mark: { type: 'point', filled: true, tooltip: true },
      encoding: {
        x: { field: 'cpuS', type: 'quantitative', title: 'CPU time (s)' },
        y: { field: 'peakRssMiB', type: 'quantitative', title: 'peak RSS (MiB)' },
        color: { field: 'app', type: 'nominal' },
        tooltip: [{ field: 'taskId' }, { field: 'tryNumber' }, { field: 'app' }, { field: 'cpuS' }, { field: 'peakRssMiB', format: '.1f' }, { field: 'readBytes' }, { field: 'writeBytes' }]
      }
    }
  }
}
`
