/**
 * The dashboard page's script (docs/monitoring.md "Dashboard"): plain browser JavaScript, no
 * framework and no build step, kept as a string that page.ts joins with the charts and serves as
 * /static/dashboard.js. It reads only the API of src/protocol/dashboard.ts.
 *
 * Views by hash route, so each is linkable: `#/` the workflows list, `#/run/<run>` a workflow,
 * `#/run/<run>/task/<id>` the same with a task's detail panel; the task table's filters, sort and
 * page ride along as a query (`#/run/3?state=failed&sort=duration&order=desc`).
 * Live: one EventSource on /api/events; a `workflow` event updates the header at once and
 * refreshes the table and charts at most once a second (one refresh in flight at a time).
 *
 * For tests and the benchmark: every part has a data-testid; `body[data-ready]` names the view
 * whose data is on screen, `body[data-charts]` counts the charts drawn for it.
 * Written without template literals so it can live inside one (String.raw keeps backslashes).
 */
export const MAIN_SCRIPT = String.raw`
var root = document.getElementById('app')
var current = { key: '', run: undefined, detail: undefined, events: undefined, refreshing: false, again: false, lastRefresh: 0, timer: undefined, token: 0 }

function h(tag, props) {
  var el = document.createElement(tag)
  if (props) Object.keys(props).forEach(function (k) {
    var v = props[k]
    if (v === undefined || v === null || v === false) return
    if (k === 'className' || k === 'textContent' || k === 'href' || k === 'value' || k === 'title') el[k] = v
    else if (k === 'onclick' || k === 'onchange') el[k] = v
    else el.setAttribute(k, v === true ? '' : String(v))
  })
  for (var i = 2; i < arguments.length; i++) {
    var c = arguments[i]
    if (c === undefined || c === null || c === false) continue
    if (Array.isArray(c)) c.forEach(function (x) { if (x) el.appendChild(typeof x === 'string' ? document.createTextNode(x) : x) })
    else el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c)
  }
  return el
}

function api(path) {
  return fetch(path, { headers: { accept: 'application/json' } }).then(function (r) {
    return r.json().then(function (body) {
      if (!r.ok) throw new Error((body && body.error) || r.status + ' ' + r.statusText)
      return body
    })
  })
}

function query(params) {
  var parts = []
  Object.keys(params).forEach(function (k) {
    var v = params[k]
    if (v !== undefined && v !== null && v !== '') parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(String(v)))
  })
  return parts.length ? '?' + parts.join('&') : ''
}

var num = function (n) { return n === undefined || n === null ? '' : Number(n).toLocaleString('en-US') }
function dur(ms) {
  if (ms === undefined || ms === null) return ''
  if (ms < 1000) return Math.round(ms) + ' ms'
  if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s'
  if (ms < 3600000) return Math.floor(ms / 60000) + ' min ' + Math.round((ms % 60000) / 1000) + ' s'
  return Math.floor(ms / 3600000) + ' h ' + Math.round((ms % 3600000) / 60000) + ' min'
}
function time(ms) {
  if (ms === undefined || ms === null) return ''
  var d = new Date(ms), p = function (n, w) { return String(n).padStart(w || 2, '0') }
  return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + '.' + p(d.getMilliseconds(), 3)
}
function clock(ms) { return ms === undefined || ms === null ? '' : time(ms).slice(11) }
function bytes(n) {
  if (n === undefined || n === null) return ''
  var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++ }
  return (i ? n.toFixed(1) : n) + ' ' + u[i]
}
function stateBadge(s) { return h('span', { className: 'state state-' + s }, s) }
function liveBadge(wf) {
  var ended = wf.endMs !== undefined && wf.endMs !== null
  return h('span', { className: 'live ' + (ended ? 'ended' : 'running'), 'data-testid': 'live-status' }, ended ? 'ended' : 'live')
}

function parseRoute() {
  var hash = location.hash.replace(/^#/, '') || '/'
  var qi = hash.indexOf('?')
  var path = qi < 0 ? hash : hash.slice(0, qi)
  var params = {}
  if (qi >= 0) hash.slice(qi + 1).split('&').forEach(function (kv) {
    var e = kv.indexOf('=')
    if (e > 0) params[decodeURIComponent(kv.slice(0, e))] = decodeURIComponent(kv.slice(e + 1))
  })
  var m = /^\/run\/(\d+)(?:\/task\/(\d+))?\/?$/.exec(path)
  if (m) return { view: 'workflow', run: Number(m[1]), task: m[2] === undefined ? undefined : Number(m[2]), params: params }
  return { view: 'list', params: params }
}

function taskQuery(params) {
  return {
    app: params.app, state: params.state, executor: params.executor,
    sort: params.sort || 'task_id', order: params.order || 'asc',
    offset: Number(params.offset || 0), limit: Number(params.limit || 50)
  }
}

function go(run, task, params) {
  location.hash = '#/run/' + run + (task === undefined ? '' : '/task/' + task) + query(params || {})
}

function openEvents(url, handlers) {
  if (current.events && current.events.url === url) { current.events.handlers = handlers; return }
  if (current.events) current.events.source.close()
  var source = new EventSource(url)
  var entry = { url: url, source: source, handlers: handlers }
  current.events = entry
  ;['workflows', 'workflow'].forEach(function (name) {
    source.addEventListener(name, function (e) {
      var f = entry.handlers[name]
      if (f) f(JSON.parse(e.data))
    })
  })
}

// Each milestone is also a performance mark (tsflow:ready:<view>, tsflow:charts, tsflow:detail), so
// the load benchmark reads times from navigation start without polling.
function mark(name) { if (window.performance && performance.mark) performance.mark('tsflow:' + name) }
function setReady(view) { document.body.dataset.ready = view; mark('ready:' + view) }
function setError(message) {
  var el = document.getElementById('error')
  el.textContent = message || ''
  el.hidden = !message
}

// ---- the workflows list ----
function showList() {
  var token = ++current.token
  finalizeCharts()
  clearTimeout(current.timer)
  current.refreshing = false
  current.again = false
  current.key = 'list'
  current.run = undefined
  document.body.dataset.ready = ''
  document.body.dataset.charts = '0'
  document.title = 'tsflow monitor'
  root.textContent = ''
  var body = h('tbody', { 'data-testid': 'workflow-rows' })
  root.appendChild(h('section', { 'aria-label': 'workflows' },
    h('h1', null, 'Workflows'),
    h('p', { className: 'muted', 'data-testid': 'db-path' }),
    h('table', { className: 'grid', 'data-testid': 'workflows' },
      h('thead', null, h('tr', null, ['run', 'run id', 'run dir', 'executors', 'started', 'duration', 'tasks', 'states', 'status'].map(function (c) { return h('th', { scope: 'col' }, c) }))),
      body)))
  var render = function (list) {
    if (token !== current.token) return
    document.querySelector('[data-testid=db-path]').textContent = 'database: ' + list.db
    body.textContent = ''
    if (list.workflows.length === 0) body.appendChild(h('tr', null, h('td', { colspan: 9, className: 'empty' }, 'no workflows recorded yet')))
    list.workflows.forEach(function (w) {
      var link = '#/run/' + w.run
      var end = w.endMs === undefined || w.endMs === null ? w.lastEventMs : w.endMs
      body.appendChild(h('tr', { 'data-testid': 'workflow-row', 'data-run': w.run, 'data-run-id': w.runId },
        h('td', null, h('a', { href: link, 'aria-label': 'workflow ' + w.run }, String(w.run))),
        h('td', { className: 'mono' }, h('a', { href: link }, w.runId.slice(0, 8))),
        h('td', { className: 'mono path', title: w.runDir }, w.runDir),
        h('td', null, w.executors.join(', ')),
        h('td', null, time(w.startMs)),
        h('td', null, dur(end - w.startMs)),
        h('td', { className: 'num', 'data-testid': 'workflow-tasks' }, num(w.tasks)),
        h('td', null, countsInline(w.counts)),
        h('td', null, liveBadge(w))))
    })
    setReady('list')
  }
  openEvents('/api/events', { workflows: render })
  api('/api/workflows').then(render, function (e) { setError('could not load the workflows: ' + e.message) })
}

function countsInline(counts) {
  return STATES.filter(function (s) { return counts[s] }).map(function (s) {
    return h('span', { className: 'count-inline' }, stateBadge(s), ' ' + num(counts[s]))
  })
}

// ---- one workflow ----
function showWorkflow(route) {
  var key = 'run/' + route.run
  if (current.key !== key) buildWorkflow(route)
  else {
    if (current.wf) fillFilters(current.wf, route)
    if (query(taskQuery(route.params)) !== current.tableQuery) loadTable(route)
    showDetail(route)
  }
}

function section(title, id, testid, children) {
  return h('section', { className: 'panel', 'aria-labelledby': id + '-title' },
    h('h2', { id: id + '-title' }, title),
    children || h('div', { id: id, className: 'chart', role: 'img', 'aria-label': title, 'data-testid': testid }))
}

function buildWorkflow(route) {
  var token = ++current.token
  finalizeCharts()
  clearTimeout(current.timer)
  current.refreshing = false
  current.again = false
  current.key = 'run/' + route.run
  current.run = route.run
  current.detail = undefined
  current.lastRefresh = Date.now()
  current.wf = undefined
  document.body.dataset.ready = ''
  document.body.dataset.charts = '0'
  root.textContent = ''
  var filters = h('div', { className: 'filters', role: 'group', 'aria-label': 'task filters' },
    h('label', null, 'state ', h('select', { 'data-testid': 'filter-state', 'aria-label': 'filter by state', onchange: onFilter('state') })),
    h('label', null, 'app ', h('select', { 'data-testid': 'filter-app', 'aria-label': 'filter by app', onchange: onFilter('app') })),
    h('label', null, 'executor ', h('select', { 'data-testid': 'filter-executor', 'aria-label': 'filter by executor', onchange: onFilter('executor') })),
    h('label', null, 'rows ', h('select', { 'data-testid': 'page-size', 'aria-label': 'rows per page', onchange: onFilter('limit') },
      [50, 100, 500, 1000].map(function (n) { return h('option', { value: String(n) }, String(n)) }))))
  var pager = h('div', { className: 'pager', role: 'navigation', 'aria-label': 'task pages' },
    h('button', { 'data-testid': 'page-first', 'aria-label': 'first page', onclick: onPage('first') }, '\u00ab'),
    h('button', { 'data-testid': 'page-prev', 'aria-label': 'previous page', onclick: onPage('prev') }, '\u2039 prev'),
    h('span', { 'data-testid': 'page-info', 'aria-live': 'polite' }),
    h('button', { 'data-testid': 'page-next', 'aria-label': 'next page', onclick: onPage('next') }, 'next \u203a'),
    h('button', { 'data-testid': 'page-last', 'aria-label': 'last page', onclick: onPage('last') }, '\u00bb'))
  var head = h('tr', null, TASK_COLUMNS.map(function (c) {
    if (!c.sort) return h('th', { scope: 'col' }, c.title)
    return h('th', { scope: 'col', 'data-sort-key': c.sort, 'aria-sort': 'none' },
      h('button', { className: 'sort', 'data-testid': 'sort-' + c.sort, 'aria-label': 'sort by ' + c.title, onclick: onSort(c.sort) }, c.title))
  }))
  root.appendChild(h('div', { className: 'workflow' },
    h('nav', { className: 'crumbs' }, h('a', { href: '#/', 'data-testid': 'back-to-list' }, '\u2190 workflows')),
    h('header', { className: 'wf-header', 'data-testid': 'wf-header', 'aria-label': 'workflow summary' }, h('h1', null, 'Workflow ' + route.run)),
    h('div', { className: 'columns' },
      h('div', { className: 'main' },
        h('div', { className: 'pair' },
          section('Task Gantt chart', 'chart-gantt', 'chart-gantt'),
          section('Tasks by state over time', 'chart-states', 'chart-states')),
        section('Tasks', 'tasks', 'tasks', h('div', null, filters,
          h('table', { className: 'grid tasks', 'data-testid': 'task-table', 'aria-label': 'tasks' }, h('thead', null, head), h('tbody', { 'data-testid': 'task-rows' })),
          pager)),
        section('Durations per app', 'apps', 'apps', h('div', null,
          h('table', { className: 'grid', 'data-testid': 'app-summaries', 'aria-label': 'durations per app' },
            h('thead', null, h('tr', null, ['app', 'tasks', 'done', 'failed', 'mean', 'median', 'p95', 'max'].map(function (c) { return h('th', { scope: 'col' }, c) }))),
            h('tbody', null)),
          h('div', { id: 'chart-apps', className: 'chart', role: 'img', 'aria-label': 'durations per app', 'data-testid': 'chart-apps' }))),
        section('Blocks and managers', 'chart-infra', 'chart-infra'),
        section('Resource use per node', 'chart-nodes', 'chart-nodes'),
        section('Resource use per task', 'chart-task-resources', 'chart-task-resources')),
      h('aside', { className: 'detail', id: 'detail', 'data-testid': 'task-detail', 'aria-label': 'task detail', hidden: true }))))
  // header, table and charts all at once: none needs another's answer
  Promise.all([
    api('/api/workflows/' + route.run).then(function (wf) {
      if (token !== current.token) return
      renderHeader(wf)
      fillFilters(wf, route)
    }),
    loadTable(route),
    refreshCharts(route.run)
  ]).then(function () { if (token === current.token) setReady('workflow') },
    function (e) { setError('could not load workflow ' + route.run + ': ' + e.message) })
  showDetail(route)
  openEvents('/api/events?run=' + route.run, {
    workflow: function (wf) {
      if (token !== current.token || wf.run !== current.run) return
      // the server sends the current state on connecting: nothing new unless rows arrived since;
      // while the first load is in flight, only the header is taken from it
      if (!current.wf) { renderHeader(wf); return }
      // counts too: a change can reach the database after its time was recorded (the writer holds
      // unfinished tasks' rows for a moment), leaving lastEventMs as it was
      if (current.wf.lastEventMs === wf.lastEventMs && current.wf.tasks === wf.tasks && current.wf.endMs === wf.endMs &&
        JSON.stringify(current.wf.counts) === JSON.stringify(wf.counts)) return
      var wasLive = current.wf && (current.wf.endMs === undefined || current.wf.endMs === null)
      renderHeader(wf)
      fillFilters(wf, parseRoute())
      scheduleRefresh(wasLive && wf.endMs !== undefined && wf.endMs !== null)
    }
  })
}

function renderHeader(wf) {
  current.wf = wf
  document.title = 'tsflow run ' + wf.run + (wf.endMs == null ? ' (live)' : '')
  var header = document.querySelector('[data-testid=wf-header]')
  if (!header) return
  var end = wf.endMs == null ? wf.lastEventMs : wf.endMs
  header.textContent = ''
  header.appendChild(h('h1', null, 'Workflow ' + wf.run + ' ', liveBadge(wf)))
  header.appendChild(h('p', { className: 'muted' },
    h('span', { className: 'mono', 'data-testid': 'run-id' }, wf.runId), ' \u00b7 ', h('span', { className: 'mono' }, wf.runDir),
    ' \u00b7 executors ' + wf.executors.join(', ') + ' \u00b7 started ' + time(wf.startMs) + ' \u00b7 ' + dur(end - wf.startMs) +
    (wf.endMs == null ? ' \u00b7 last event ' + time(wf.lastEventMs) : '')))
  var cells = [h('div', { className: 'count total' }, h('span', { className: 'label' }, 'tasks'), h('span', { className: 'value', 'data-testid': 'count-total' }, num(wf.tasks)))]
  STATES.forEach(function (s) {
    if (!wf.counts[s] && ['unsched', 'joining', 'memo_done', 'cancelled', 'dep_fail'].indexOf(s) >= 0) return
    cells.push(h('div', { className: 'count' }, h('span', { className: 'label' }, stateBadge(s)), h('span', { className: 'value', 'data-testid': 'count-' + s }, num(wf.counts[s] || 0))))
  })
  cells.push(h('div', { className: 'count' }, h('span', { className: 'label', title: 'failed and dep_fail tasks' }, 'all failed'), h('span', { className: 'value', 'data-testid': 'count-failed-all' }, num(wf.failed))))
  // A live run: its rate over the last 10 s; an ended one: its average from start to end.
  var ended = wf.endMs != null
  var finished = ['exec_done', 'memo_done', 'failed', 'dep_fail', 'cancelled'].reduce(function (sum, s) { return sum + (wf.counts[s] || 0) }, 0)
  var rate = ended ? finished / Math.max(0.001, (wf.endMs - wf.startMs) / 1000) : wf.recentRate
  cells.push(h('div', { className: 'count' }, h('span', { className: 'label', title: ended ? 'tasks ended per second, start to end' : 'tasks ended per second, last 10 s' }, ended ? 'tasks/s (average)' : 'tasks/s'),
    h('span', { className: 'value', 'data-testid': 'rate' }, rate.toFixed(1))))
  header.appendChild(h('div', { className: 'counts', 'aria-label': 'tasks by state' }, cells))
}

function fillFilters(wf, route) {
  var q = taskQuery(route.params)
  fillSelect('filter-state', STATES, q.state)
  fillSelect('filter-app', wf.apps, q.app)
  fillSelect('filter-executor', wf.executors, q.executor)
  var size = document.querySelector('[data-testid=page-size]')
  if (size) size.value = String(q.limit)
}
function fillSelect(testid, values, selected) {
  var sel = document.querySelector('[data-testid=' + testid + ']')
  if (!sel) return
  var have = Array.prototype.map.call(sel.options, function (o) { return o.value }).join('\n')
  var want = [''].concat(values).join('\n')
  if (have !== want) {
    sel.textContent = ''
    sel.appendChild(h('option', { value: '' }, 'all'))
    values.forEach(function (v) { sel.appendChild(h('option', { value: v }, v)) })
  }
  sel.value = selected || ''
}

function onFilter(name) {
  return function (e) {
    var r = parseRoute(), p = Object.assign({}, r.params)
    p[name] = e.target.value
    delete p.offset
    go(r.run, r.task, p)
  }
}
function onSort(key) {
  return function () {
    var r = parseRoute(), p = Object.assign({}, r.params), q = taskQuery(p)
    p.order = q.sort === key && q.order === 'asc' ? 'desc' : 'asc'
    p.sort = key
    delete p.offset
    go(r.run, r.task, p)
  }
}
function onPage(where) {
  return function () {
    var r = parseRoute(), p = Object.assign({}, r.params), q = taskQuery(p), total = current.total || 0
    var offset = where === 'first' ? 0 : where === 'prev' ? q.offset - q.limit : where === 'next' ? q.offset + q.limit : Math.floor(Math.max(total - 1, 0) / q.limit) * q.limit
    p.offset = String(Math.max(0, Math.min(offset, Math.max(total - 1, 0))))
    go(r.run, r.task, p)
  }
}

var TASK_COLUMNS = [
  { title: 'task', sort: 'task_id' }, { title: 'app', sort: 'app' }, { title: 'state', sort: 'state' },
  { title: 'executor', sort: 'executor' }, { title: 'try' }, { title: 'submitted', sort: 'submit_ms' },
  { title: 'ended', sort: 'end_ms' }, { title: 'duration', sort: 'duration' }, { title: 'error' }
]

function loadTable(route) {
  var q = taskQuery(route.params), run = route.run, token = current.token
  current.tableQuery = query(q)
  var table = document.querySelector('[data-testid=task-table]')
  if (table) table.setAttribute('aria-busy', 'true')
  return api('/api/workflows/' + run + '/tasks' + query(q)).then(function (page) {
    if (token !== current.token) return
    renderTable(route, q, page)
  }, function (e) { setError('could not load the tasks: ' + e.message) })
}

function renderTable(route, q, page) {
  current.total = page.total
  var table = document.querySelector('[data-testid=task-table]')
  var body = document.querySelector('[data-testid=task-rows]')
  if (!body) return
  table.dataset.query = query(q)
  table.removeAttribute('aria-busy')
  document.querySelectorAll('th[data-sort-key]').forEach(function (th) {
    var key = th.getAttribute('data-sort-key')
    th.setAttribute('aria-sort', key === q.sort ? (q.order === 'asc' ? 'ascending' : 'descending') : 'none')
  })
  body.textContent = ''
  if (page.tasks.length === 0) body.appendChild(h('tr', null, h('td', { colspan: TASK_COLUMNS.length, className: 'empty' }, 'no tasks match')))
  page.tasks.forEach(function (t) {
    var link = '#/run/' + route.run + '/task/' + t.taskId + query(route.params)
    body.appendChild(h('tr', { 'data-testid': 'task-row', 'data-task-id': t.taskId, 'data-state': t.state, 'data-app': t.app, className: route.task === t.taskId ? 'selected' : '' },
      h('td', { className: 'num' }, h('a', { href: link, 'aria-label': 'task ' + t.taskId }, String(t.taskId))),
      h('td', null, t.app), h('td', null, stateBadge(t.state)), h('td', null, t.executor || ''),
      h('td', { className: 'num' }, String(t.lastTry)), h('td', { title: time(t.submitMs) }, clock(t.submitMs)), h('td', { title: time(t.endMs) }, clock(t.endMs)),
      h('td', { className: 'num' }, dur(t.durationMs)), h('td', { className: 'error-cell', title: t.error || '' }, t.error || '')))
  })
  mark('table')
  var info = document.querySelector('[data-testid=page-info]')
  var last = Math.min(page.offset + page.tasks.length, page.total)
  info.textContent = page.total === 0 ? '0 tasks' : num(page.offset + 1) + '\u2013' + num(last) + ' of ' + num(page.total)
  document.querySelector('[data-testid=page-prev]').disabled = page.offset === 0
  document.querySelector('[data-testid=page-first]').disabled = page.offset === 0
  document.querySelector('[data-testid=page-next]').disabled = last >= page.total
  document.querySelector('[data-testid=page-last]').disabled = last >= page.total
}

function refreshCharts(run) {
  var token = current.token, now = Date.now()
  var base = '/api/workflows/' + run
  var draw = function (id, made) { return drawChart(id, made.spec || {}, made.empty) }
  var jobs = [
    // 1,000 bars fill the chart's 240 px; more would only cost drawing time
    api(base + '/gantt?limit=1000').then(function (g) { if (token === current.token) return draw('chart-gantt', ganttSpec(g, now)) }),
    api(base + '/states').then(function (s) { if (token === current.token) return draw('chart-states', statesSpec(s)) }),
    api(base + '/apps').then(function (a) { if (token === current.token) { renderApps(a); return draw('chart-apps', appsSpec(a)) } }),
    api(base + '/infrastructure').then(function (i) { if (token === current.token) return draw('chart-infra', infraSpec(i, now)) }),
    api(base + '/resources').then(function (r) {
      if (token !== current.token) return
      return Promise.all([draw('chart-nodes', nodesSpec(r)), draw('chart-task-resources', tasksResourceSpec(r))])
    })
  ]
  return Promise.all(jobs).then(function () {
    if (token !== current.token) return
    document.body.dataset.charts = String(Number(document.body.dataset.charts || 0) + 1)
    mark('charts')
  }, function (e) { setError('could not load the charts: ' + e.message) })
}

function renderApps(a) {
  var body = document.querySelector('[data-testid=app-summaries] tbody')
  if (!body) return
  body.textContent = ''
  a.apps.forEach(function (s) {
    body.appendChild(h('tr', { 'data-testid': 'app-row', 'data-app': s.app }, h('td', null, s.app), h('td', { className: 'num' }, num(s.tasks)),
      h('td', { className: 'num' }, num(s.done)), h('td', { className: 'num' }, num(s.failed)), h('td', { className: 'num' }, dur(s.meanMs)),
      h('td', { className: 'num' }, dur(s.medianMs)), h('td', { className: 'num' }, dur(s.p95Ms)), h('td', { className: 'num' }, dur(s.maxMs))))
  })
}

// Live refresh: at most one a second, one in flight; a change while one runs asks for another.
function scheduleRefresh(final) {
  if (current.refreshing) { current.again = true; return }
  var wait = final ? 0 : Math.max(0, current.lastRefresh + 1000 - Date.now())
  clearTimeout(current.timer)
  var token = current.token
  current.timer = setTimeout(function () {
    if (token !== current.token) return
    current.refreshing = true
    current.lastRefresh = Date.now()
    var route = parseRoute()
    var work = [loadTable(route), refreshCharts(route.run)]
    if (current.detail !== undefined) work.push(loadDetail(route.run, current.detail))
    Promise.all(work).then(function () {
      current.refreshing = false
      if (token !== current.token) return
      if (current.again) { current.again = false; scheduleRefresh(false) }
    })
  }, wait)
}
`
