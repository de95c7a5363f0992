/**
 * The dashboard page's task detail panel and its router (docs/monitoring.md "Dashboard"): plain
 * browser JavaScript as a string, joined after script.ts's by page.ts. `#/run/<run>/task/<id>`
 * opens the panel beside the workflow: the task's row, its whole error and the remote stack where
 * it ran, its tries (with why each failed), every state change, and its resource samples.
 */
export const DETAIL_SCRIPT = String.raw`
function showDetail(route) {
  var panel = document.getElementById('detail')
  if (!panel) return
  document.querySelectorAll('[data-testid=task-row]').forEach(function (tr) {
    tr.classList.toggle('selected', Number(tr.getAttribute('data-task-id')) === route.task)
  })
  if (route.task === undefined) {
    current.detail = undefined
    panel.hidden = true
    panel.textContent = ''
    return
  }
  if (current.detail !== route.task) {
    panel.textContent = ''
    panel.appendChild(h('p', { className: 'muted' }, 'loading task ' + route.task + '\u2026'))
  }
  current.detail = route.task
  panel.hidden = false
  return loadDetail(route.run, route.task)
}

function loadDetail(run, taskId) {
  var token = current.token
  return api('/api/workflows/' + run + '/tasks/' + taskId).then(function (d) {
    if (token !== current.token || current.detail !== taskId) return
    renderDetail(run, d)
  }, function (e) {
    var panel = document.getElementById('detail')
    if (panel && current.detail === taskId) { panel.textContent = ''; panel.appendChild(h('p', { className: 'error' }, 'task ' + taskId + ': ' + e.message)) }
  })
}

function kv(label, value, testid) {
  return [h('dt', null, label), h('dd', testid ? { 'data-testid': testid } : null, value === undefined || value === null || value === '' ? '\u2013' : value)]
}

function smallTable(label, testid, columns, rows) {
  if (rows.length === 0) return h('p', { className: 'muted', 'data-testid': testid }, 'none')
  return h('table', { className: 'grid small', 'data-testid': testid, 'aria-label': label },
    h('thead', null, h('tr', null, columns.map(function (c) { return h('th', { scope: 'col' }, c) }))),
    h('tbody', null, rows.map(function (r) { return h('tr', null, r.map(function (c) { return h('td', null, c) })) })))
}

function renderDetail(run, d) {
  var panel = document.getElementById('detail')
  if (!panel) return
  var t = d.task, back = '#/run/' + run + query(parseRoute().params)
  panel.textContent = ''
  panel.dataset.taskId = String(t.taskId)
  panel.appendChild(h('div', { className: 'detail-head' },
    h('h2', null, 'Task ' + t.taskId + ' ', stateBadge(t.state)),
    h('a', { href: back, className: 'close', 'data-testid': 'detail-close', 'aria-label': 'close task detail' }, '\u00d7')))
  panel.appendChild(h('dl', { className: 'kv' }, [].concat(
    kv('app', t.app, 'detail-app'), kv('state', t.state, 'detail-state'), kv('executor', t.executor),
    kv('tries', String(t.lastTry + 1)), kv('submitted', time(t.submitMs)), kv('ended', time(t.endMs)), kv('duration', dur(t.durationMs)))))
  if (d.error || d.errorStack) {
    panel.appendChild(h('h3', null, 'Error'))
    panel.appendChild(h('pre', { className: 'error', 'data-testid': 'task-error', 'aria-label': 'task error' }, d.error || ''))
    if (d.errorStack) {
      panel.appendChild(h('h3', null, 'Remote stack'))
      panel.appendChild(h('pre', { className: 'stack', 'data-testid': 'task-stack', 'aria-label': 'remote stack' }, d.errorStack))
    }
  }
  panel.appendChild(h('h3', null, 'Tries'))
  panel.appendChild(smallTable('tries', 'task-tries', ['try', 'executor', 'state', 'launched', 'running', 'ended', 'failed with'],
    d.tries.map(function (r) {
      return [String(r.tryNumber), r.executor || '', stateBadge(r.state), clock(r.launchedMs), clock(r.runningMs), clock(r.endMs),
        r.failCause ? h('span', { className: 'error-cell', title: r.failCause }, r.failCause) : '']
    })))
  // an earlier try's stack (a retried failure): the last try's is the task's, shown above
  d.tries.forEach(function (r) {
    if (!r.failStack || (r.tryNumber === t.lastTry && d.errorStack)) return
    panel.appendChild(h('details', { className: 'try-stack', 'data-testid': 'try-stack' },
      h('summary', null, 'try ' + r.tryNumber + ': stack'), h('pre', { className: 'stack' }, r.failStack)))
  })
  panel.appendChild(h('h3', null, 'State changes'))
  var t0 = d.statuses.length ? d.statuses[0].timeMs : 0
  panel.appendChild(smallTable('state changes', 'task-statuses', ['try', 'state', 'time', '+'],
    d.statuses.map(function (s) { return [String(s.tryNumber), stateBadge(s.state), clock(s.timeMs), dur(s.timeMs - t0)] })))
  panel.appendChild(h('h3', null, 'Resource samples'))
  panel.appendChild(smallTable('resource samples', 'task-resources', ['try', 'manager', 'time', 'cpu user', 'cpu sys', 'rss', 'read', 'written'],
    d.resources.slice(-50).map(function (r) {
      return [String(r.tryNumber), r.managerId.slice(0, 8), clock(r.timeMs), r.cpuUserS.toFixed(2) + ' s', r.cpuSystemS.toFixed(2) + ' s',
        bytes(r.rssBytes), bytes(r.readBytes), bytes(r.writeBytes)]
    })))
  document.body.dataset.detail = String(t.taskId)
  mark('detail')
}

function route() {
  setError('')
  var r = parseRoute()
  if (r.view === 'workflow') showWorkflow(r)
  else showList()
}
window.addEventListener('hashchange', route)
window.addEventListener('pagehide', function () { if (current.events) current.events.source.close() })
route()
`
