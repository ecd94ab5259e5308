// The page shell: static markup and styles; src/page/main.ts fills in the views.
export const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mppkit playground</title>
<style>
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #5b6470; --bg: #fff; --panel: #f4f6f8; --ok: #0a7b3e; --bad: #b3261e; --accent: #2f5bd3; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8eaed; --muted: #9aa3ad; --bg: #16181c; --panel: #22262c; --ok: #5bd08f; --bad: #ff8a80; --accent: #8ab4f8; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 12px 16px; border-bottom: 1px solid var(--panel); display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
header p { margin: 0; color: var(--muted); font-size: 13px; }
nav { display: flex; flex-wrap: wrap; gap: 6px; padding: 8px 16px; }
nav button[aria-selected="true"] { background: var(--accent); color: var(--bg); border-color: var(--accent); }
main { padding: 0 16px 32px; max-width: 1100px; }
button, select, input, textarea { font: inherit; color: inherit; background: var(--panel); border: 1px solid var(--muted); border-radius: 6px; padding: 6px 10px; }
button { cursor: pointer; }
button:focus-visible, select:focus-visible, input:focus-visible, textarea:focus-visible { outline: 3px solid var(--accent); outline-offset: 1px; }
button:disabled { opacity: .6; cursor: wait; }
.controls { display: flex; flex-wrap: wrap; gap: 10px 16px; align-items: end; margin: 12px 0; }
.controls label { display: flex; flex-direction: column; font-size: 13px; color: var(--muted); gap: 2px; }
.controls input { width: 9em; }
.status { font-weight: 600; margin: 8px 0; min-height: 1.4em; overflow-wrap: anywhere; }
section > p { overflow-wrap: anywhere; }
.status.ok { color: var(--ok); } .status.bad { color: var(--bad); }
ol.steps { list-style: none; padding: 0; margin: 0; display: grid; gap: 10px; }
ol.steps > li { background: var(--panel); border-radius: 8px; padding: 10px 12px; min-width: 0; }
ol.steps h3 { margin: 0 0 6px; font-size: 14px; }
pre { margin: 0; white-space: pre-wrap; word-break: break-all; font: 12.5px/1.4 ui-monospace, monospace; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--bg); vertical-align: top; word-break: break-all; }
.balances { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 10px; margin: 10px 0; }
.balances div { background: var(--panel); border-radius: 8px; padding: 8px 12px; font-size: 13px; }
.meter { height: 14px; background: var(--panel); border-radius: 7px; overflow: hidden; margin: 6px 0; }
.meter span { display: block; height: 100%; background: var(--accent); width: 0; transition: width .15s; }
.stream { min-height: 3em; }
textarea { width: 100%; min-height: 7em; }
[hidden] { display: none !important; }
@media (max-width: 600px) {
  table.offers, table.offers tr, table.offers td { display: block; }
  table.offers tr.head { display: none; }
  table.offers td::before { content: attr(data-label) ": "; font-weight: 600; }
  table.offers td pre { margin-top: 2px; }
}
</style>
</head>
<body>
<header><h1>mppkit playground</h1><p>HTTP 402 payments on local devnet nodes: every key here is a devnet key holding test funds.</p></header>
<nav id="tabs" role="tablist" aria-label="Rails"></nav>
<main id="views"><p id="loading">Loading…</p></main>
<script type="module" src="/page.js"></script>
</body>
</html>
`
