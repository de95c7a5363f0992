/**
 * The page served until the real one (`web/page.ts`, the same exports) is built: it lists the
 * workflows from the API so the server is usable and testable on its own.
 */
export const PAGE_STYLE = 'body { font: 14px system-ui, sans-serif; margin: 2em; } td, th { padding: 0 1em 0 0; text-align: left; }'

export const PAGE_SCRIPT = `
const render = (list) => {
  const rows = list.workflows.map((w) => '<tr><td>' + w.run + '</td><td>' + w.runId + '</td><td>' + w.tasks + '</td><td>' + (w.endMs ? 'ended' : 'running') + '</td></tr>')
  document.getElementById('workflows').innerHTML = '<tr><th>run</th><th>run id</th><th>tasks</th><th></th></tr>' + rows.join('')
  document.getElementById('db').textContent = list.db
}
fetch('/api/workflows').then((r) => r.json()).then(render)
new EventSource('/api/events').addEventListener('workflows', (e) => render(JSON.parse(e.data)))
`

export const PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tsflow monitor</title>
<link rel="stylesheet" href="/static/dashboard.css"></head>
<body><h1>tsflow monitor</h1><p id="db"></p><table id="workflows"></table>
<script src="/static/dashboard.js"></script></body></html>
`

export const WEB_ASSETS: Readonly<Record<string, { contentType: string; body: string }>> = {
  'dashboard.js': { contentType: 'text/javascript; charset=utf-8', body: PAGE_SCRIPT },
  'dashboard.css': { contentType: 'text/css; charset=utf-8', body: PAGE_STYLE },
}
