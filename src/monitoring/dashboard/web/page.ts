/**
 * The dashboard's web page (docs/monitoring.md "Dashboard"), served by the dashboard server: the
 * HTML at `/`, and `WEB_ASSETS` under `/static/` (with vega and vega-lite's browser builds from
 * node_modules, which the server adds). Plain browser JavaScript and CSS as strings: no framework,
 * no bundler, nothing to build at install time; the page reads only the API of
 * src/protocol/dashboard.ts.
 */
import { STATE_CODES } from '../../../protocol/monitoring.js'
import { CHARTS_SCRIPT } from './charts.js'
import { DETAIL_SCRIPT } from './detail.js'
import { MAIN_SCRIPT } from './script.js'

/** The page's script: one strict-mode function scope over the main views, charts and detail panel. */
export const PAGE_SCRIPT = `// tsflow monitor: the dashboard page (src/monitoring/dashboard/web/)
;(function () {
'use strict'
var STATES = ${JSON.stringify(STATE_CODES)}
${MAIN_SCRIPT}
${CHARTS_SCRIPT}
${DETAIL_SCRIPT}
})()
`

export const PAGE_STYLE = `
:root { --fg: #1d2430; --muted: #5f6b7a; --line: #dde2e8; --bg: #f6f7f9; --panel: #fff; --accent: #2f6fb3; --bad: #c4312f; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, 'Segoe UI', sans-serif; color: var(--fg); background: var(--bg); }
.top { display: flex; align-items: center; gap: 1rem; padding: .5rem 1rem; background: #1d2430; color: #fff; }
.top a { color: #fff; text-decoration: none; font-weight: 600; }
main { padding: 1rem; max-width: 1800px; margin: 0 auto; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; } h2 { font-size: 1.05rem; margin: 0 0 .5rem; } h3 { font-size: .95rem; margin: 1rem 0 .3rem; }
a { color: var(--accent); }
.muted { color: var(--muted); } .mono { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 12px; }
.path { max-width: 28rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#error { background: #fde8e8; color: var(--bad); padding: .5rem 1rem; border-radius: 4px; margin-bottom: 1rem; }
.grid { border-collapse: collapse; width: 100%; background: var(--panel); }
.grid th, .grid td { border-bottom: 1px solid var(--line); padding: .25rem .5rem; text-align: left; vertical-align: top; }
.grid th { font-weight: 600; color: var(--muted); font-size: 12px; white-space: nowrap; }
.grid td.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid tr.selected td { background: #eaf2fb; }
.grid.small { font-size: 12px; }
.empty { color: var(--muted); font-style: italic; }
button.sort { border: 0; background: none; font: inherit; color: inherit; cursor: pointer; padding: 0; }
th[aria-sort=ascending] button.sort::after { content: ' \\25B2'; } th[aria-sort=descending] button.sort::after { content: ' \\25BC'; }
.state { display: inline-block; padding: 0 .4rem; border-radius: 3px; font-size: 12px; background: #eee; }
.state-exec_done, .state-memo_done { background: #dff1da; } .state-failed, .state-dep_fail { background: #fbdcdc; color: #8d1f1d; }
.state-running { background: #dbe7f5; } .state-launched { background: #fbf1cf; } .state-pending { background: #e6f1fa; }
.live { display: inline-block; padding: 0 .5rem; border-radius: 10px; font-size: 12px; vertical-align: middle; font-weight: 600; }
.live.running { background: #54a24b; color: #fff; } .live.ended { background: #ccd3db; color: #333; }
.count-inline { margin-right: .5rem; white-space: nowrap; }
.wf-header { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; margin-bottom: 1rem; }
.counts { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; margin-top: .5rem; }
.count { display: flex; flex-direction: column; } .count .label { font-size: 12px; color: var(--muted); }
.count .value { font-size: 1.3rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.columns { display: flex; gap: 1rem; align-items: flex-start; }
.main { flex: 1; min-width: 0; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; margin-bottom: 1rem; }
.chart { width: 100%; min-height: 2rem; }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(28rem, 1fr)); gap: 0 1rem; }
.filters { display: flex; flex-wrap: wrap; gap: 1rem; margin-bottom: .5rem; }
.filters select { font: inherit; }
.pager { display: flex; gap: .5rem; align-items: center; margin-top: .5rem; }
.pager button { font: inherit; padding: .1rem .5rem; }
.error-cell { color: var(--bad); max-width: 24rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; display: inline-block; }
td.error-cell { display: table-cell; }
.detail { width: 36rem; flex: none; position: sticky; top: 1rem; max-height: calc(100vh - 2rem); overflow: auto; background: var(--panel);
  border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; }
.detail-head { display: flex; justify-content: space-between; align-items: baseline; }
.detail .close { font-size: 1.4rem; text-decoration: none; color: var(--muted); }
.kv { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: 0; } .kv dt { color: var(--muted); } .kv dd { margin: 0; }
pre.error, pre.stack { white-space: pre-wrap; word-break: break-word; font-size: 12px; padding: .5rem; border-radius: 4px; margin: 0; }
pre.error { background: #fde8e8; color: #8d1f1d; } pre.stack { background: #f1f3f5; max-height: 20rem; overflow: auto; }
@media (max-width: 1100px) { .columns { flex-direction: column; } .detail { width: 100%; position: static; max-height: none; } }
`

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tsflow monitor</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/dashboard.js" defer></script>
<script src="/static/vega.min.js" defer></script>
<script src="/static/vega-lite.min.js" defer></script>
</head>
<body>
<header class="top"><a href="#/" aria-label="tsflow monitor home">tsflow monitor</a></header>
<main>
<div id="error" role="alert" data-testid="error" hidden></div>
<div id="app"></div>
</main>
</body>
</html>
`

export interface WebAsset {
  readonly contentType: string
  readonly body: string
}

/** The files the server serves under `/static/<name>` (besides vega.min.js and vega-lite.min.js). */
export const WEB_ASSETS: Readonly<Record<string, WebAsset>> = {
  'dashboard.js': { contentType: 'text/javascript; charset=utf-8', body: PAGE_SCRIPT },
  'dashboard.css': { contentType: 'text/css; charset=utf-8', body: PAGE_STYLE },
}
