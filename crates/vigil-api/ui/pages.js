// The status pages: targets, service discovery, rules, alerts, configuration, flags and TSDB
// status.

import {
  h, clear, api, errorBox, loading, badge, labelChips, pageHeader, ago, formatSeconds,
  formatDuration, formatTime,
} from './util.js';

/** Renders `build(data...)` once the API calls resolve; errors replace the content. */
async function load(body, calls, build) {
  clear(body).appendChild(loading());
  try {
    const data = await Promise.all(calls.map(([path, params]) => api(path, params)));
    clear(body);
    build(...data);
  } catch (err) {
    clear(body).appendChild(errorBox(err));
  }
}

function searchBox(placeholder, onInput) {
  const input = h('input', { type: 'search', class: 'input search', placeholder, 'aria-label': placeholder });
  input.addEventListener('input', () => onInput(input.value.trim().toLowerCase()));
  return input;
}

function table(headers, rows, cls = '') {
  return h(
    'table', { class: `data-table ${cls}` },
    h('thead', null, h('tr', null, headers.map((x) => h('th', null, x)))),
    h('tbody', null, rows),
  );
}

function refreshButton(onClick) {
  return h('button', { class: 'btn', type: 'button', onclick: onClick }, 'Refresh');
}

// ---- Targets -------------------------------------------------------------------------

export function targets(main) {
  const body = h('div', { id: 'targets' });
  let filter = '';
  let unhealthyOnly = false;
  let data = null;
  const only = h('input', { type: 'checkbox', id: 'unhealthy-only' });
  only.addEventListener('change', () => { unhealthyOnly = only.checked; draw(); });
  main.appendChild(pageHeader(
    'Targets',
    h('label', { class: 'check' }, only, ' Unhealthy only'),
    searchBox('Filter by endpoint or labels', (f) => { filter = f; draw(); }),
    refreshButton(() => fetchAll()),
  ));
  main.appendChild(body);

  function matches(t) {
    if (unhealthyOnly && t.health === 'up') return false;
    if (!filter) return true;
    const hay = [t.scrapeUrl, ...Object.entries(t.labels).map(([k, v]) => `${k}="${v}"`)].join(' ').toLowerCase();
    return hay.includes(filter);
  }

  function draw() {
    if (!data) return;
    clear(body);
    const pools = new Map();
    for (const t of data.activeTargets) {
      if (!pools.has(t.scrapePool)) pools.set(t.scrapePool, []);
      pools.get(t.scrapePool).push(t);
    }
    if (!pools.size) body.appendChild(h('div', { class: 'empty panel' }, 'No targets are configured.'));
    for (const [pool, ts] of [...pools].sort(([a], [b]) => a.localeCompare(b))) {
      const up = ts.filter((t) => t.health === 'up').length;
      const shown = ts.filter(matches);
      if (!shown.length && (filter || unhealthyOnly)) continue;
      const rows = shown.map((t) => h(
        'tr', { class: 'target-row', dataset: { health: t.health } },
        h('td', { class: 'endpoint' }, h('a', { href: t.scrapeUrl, rel: 'noreferrer' }, t.scrapeUrl)),
        h('td', null, badge(t.health)),
        h('td', null, labelChips(t.labels)),
        h('td', { class: 'nowrap' }, ago(t.lastScrape)),
        h('td', { class: 'nowrap num' }, formatSeconds(t.lastScrapeDuration)),
        h('td', { class: 'error-cell' }, t.lastError || ''),
      ));
      body.appendChild(h(
        'section', { class: 'panel pool', dataset: { pool } },
        h('h2', { class: 'panel-title' }, pool, h('span', { class: `count ${up === ts.length ? 'ok' : 'bad'}` }, `${up}/${ts.length} up`)),
        table(['Endpoint', 'State', 'Labels', 'Last scrape', 'Duration', 'Error'], rows, 'targets-table'),
      ));
    }
  }

  function fetchAll() {
    return load(body, [['targets', { state: 'active' }]], (d) => { data = d; draw(); });
  }
  fetchAll();
}

// ---- Service discovery -----------------------------------------------------------------

// As Prometheus' page: per scrape pool, how many discovered targets relabeling kept, and for
// each discovered label set the labels it became, or "Dropped".
export function serviceDiscovery(main) {
  const body = h('div', { id: 'service-discovery' });
  let filter = '';
  let data = null;
  main.appendChild(pageHeader(
    'Service Discovery',
    searchBox('Filter by labels', (f) => { filter = f; draw(); }),
    refreshButton(() => fetchAll()),
  ));
  main.appendChild(body);

  function text(labels) {
    return Object.entries(labels || {}).map(([k, v]) => `${k}="${v}"`).join(' ').toLowerCase();
  }

  function draw() {
    if (!data) return;
    clear(body);
    const pools = new Map();
    const pool = (name) => {
      if (!pools.has(name)) pools.set(name, { rows: [], active: 0, dropped: 0 });
      return pools.get(name);
    };
    for (const t of data.activeTargets) {
      const p = pool(t.scrapePool);
      p.active += 1;
      p.rows.push({ discovered: t.discoveredLabels, labels: t.labels });
    }
    for (const t of data.droppedTargets) pool(t.scrapePool).rows.push({ discovered: t.discoveredLabels, labels: null });
    for (const [name, n] of Object.entries(data.droppedTargetCounts || {})) pool(name).dropped = n;
    if (!pools.size) body.appendChild(h('div', { class: 'empty panel' }, 'No scrape pools are configured.'));
    for (const [name, p] of [...pools].sort(([a], [b]) => a.localeCompare(b))) {
      const total = p.active + p.dropped;
      const shown = p.rows.filter((r) => !filter || `${text(r.discovered)} ${text(r.labels)}`.includes(filter));
      if (!shown.length && filter) continue;
      const rows = shown.map((r) => h(
        'tr', { class: 'sd-row', dataset: { state: r.labels ? 'active' : 'dropped' } },
        h('td', null, labelChips(r.discovered)),
        h('td', null, r.labels ? labelChips(r.labels) : badge('dropped')),
      ));
      body.appendChild(h(
        'section', { class: 'panel pool', dataset: { pool: name } },
        h('h2', { class: 'panel-title' }, name, h('span', { class: 'count' }, `${p.active} / ${total} active targets`)),
        table(['Discovered labels', 'Target labels'], rows, 'sd-table'),
      ));
    }
  }

  function fetchAll() {
    return load(body, [['targets', { state: 'any' }]], (d) => { data = d; draw(); });
  }
  fetchAll();
}

// ---- Rules ---------------------------------------------------------------------------

function ruleExpr(rule) {
  const lines = [
    [rule.type === 'alerting' ? 'alert' : 'record', rule.name],
    ['expr', rule.query],
  ];
  if (rule.duration) lines.push(['for', formatDuration(rule.duration)]);
  if (rule.keepFiringFor) lines.push(['keep_firing_for', formatDuration(rule.keepFiringFor)]);
  const out = lines.map(([k, v]) => h('div', null, h('span', { class: 'yaml-key' }, `${k}: `), k === 'expr' ? queryLink(v) : v));
  for (const section of ['labels', 'annotations']) {
    const m = rule[section];
    if (m && Object.keys(m).length) {
      out.push(h('div', null, h('span', { class: 'yaml-key' }, `${section}:`)));
      for (const k of Object.keys(m).sort()) {
        out.push(h('div', { class: 'indent' }, h('span', { class: 'yaml-key' }, `${k}: `), m[k]));
      }
    }
  }
  return h('div', { class: 'rule-def mono' }, out);
}

function queryLink(expr) {
  const q = new URLSearchParams({ 'g0.expr': expr, 'g0.tab': 'table' });
  return h('a', { href: `query?${q}`, dataset: { link: '' } }, expr);
}

export function rules(main) {
  const body = h('div', { id: 'rules' });
  main.appendChild(pageHeader('Rules', refreshButton(() => fetchAll())));
  main.appendChild(body);
  const fetchAll = () => load(body, [['rules', {}]], (d) => {
    if (!d.groups.length) body.appendChild(h('div', { class: 'empty panel' }, 'No rule groups are loaded.'));
    for (const g of d.groups) {
      const rows = g.rules.map((r) => h(
        'tr', { class: 'rule-row' },
        h('td', null, ruleExpr(r)),
        h('td', null, badge(r.health)),
        h('td', { class: 'nowrap' }, ago(r.lastEvaluation)),
        h('td', { class: 'nowrap num' }, formatSeconds(r.evaluationTime)),
        h('td', { class: 'error-cell' }, r.lastError || ''),
      ));
      body.appendChild(h(
        'section', { class: 'panel' },
        h('h2', { class: 'panel-title' }, g.name, h('span', { class: 'muted' }, `${g.file} · every ${formatDuration(g.interval)} · last run ${ago(g.lastEvaluation)} in ${formatSeconds(g.evaluationTime)}`)),
        table(['Rule', 'State', 'Last evaluation', 'Duration', 'Error'], rows, 'rules-table'),
      ));
    }
  });
  fetchAll();
}

// ---- Alerts --------------------------------------------------------------------------

export function alerts(main) {
  const body = h('div', { id: 'alerts' });
  main.appendChild(pageHeader('Alerts', refreshButton(() => fetchAll())));
  main.appendChild(body);
  const fetchAll = () => load(body, [['rules', { type: 'alert' }], ['alerts', {}]], (rd, ad) => {
    const alertRules = rd.groups.flatMap((g) => g.rules.filter((r) => r.type === 'alerting').map((r) => ({ ...r, group: g.name })));
    const counts = { firing: 0, pending: 0, inactive: 0 };
    for (const r of alertRules) counts[r.state] = (counts[r.state] || 0) + 1;
    body.appendChild(h(
      'div', { class: 'summary' },
      ['firing', 'pending', 'inactive'].map((k) => h('div', { class: `summary-item s-${k}` }, h('span', { class: 'summary-n' }, counts[k]), h('span', null, k))),
    ));

    // Active alerts, from /api/v1/alerts.
    const active = ad.alerts.slice().sort((a, b) => (a.state === b.state ? 0 : a.state === 'firing' ? -1 : 1));
    const rows = active.map((a) => h(
      'tr', { class: 'alert-row', dataset: { state: a.state } },
      h('td', null, h('strong', null, a.labels.alertname || ''), labelChips(Object.fromEntries(Object.entries(a.labels).filter(([k]) => k !== 'alertname')))),
      h('td', null, badge(a.state)),
      h('td', { class: 'nowrap' }, a.activeAt ? `${formatTime(Date.parse(a.activeAt))} (${ago(a.activeAt)})` : ''),
      h('td', { class: 'num' }, a.value),
      h('td', null, (a.annotations && (a.annotations.summary || a.annotations.description)) || ''),
    ));
    body.appendChild(h(
      'section', { class: 'panel' },
      h('h2', { class: 'panel-title' }, 'Active alerts', h('span', { class: 'muted' }, `${active.length}`)),
      active.length
        ? table(['Alert', 'State', 'Active since', 'Value', 'Summary'], rows, 'alerts-table')
        : h('div', { class: 'empty' }, 'No alerts are pending or firing.'),
    ));

    // Every alerting rule with its state.
    const ruleRows = alertRules.map((r) => h(
      'tr', { class: 'alert-rule-row', dataset: { state: r.state } },
      h('td', null, ruleExpr(r)),
      h('td', null, badge(r.state)),
      h('td', { class: 'nowrap' }, r.group),
      h('td', { class: 'num' }, String((r.alerts || []).length)),
    ));
    body.appendChild(h(
      'section', { class: 'panel' },
      h('h2', { class: 'panel-title' }, 'Alerting rules', h('span', { class: 'muted' }, `${alertRules.length}`)),
      alertRules.length
        ? table(['Rule', 'State', 'Group', 'Alerts'], ruleRows, 'rules-table')
        : h('div', { class: 'empty' }, 'No alerting rules are loaded.'),
    ));
  });
  fetchAll();
}

// ---- Configuration and flags ---------------------------------------------------------

export function config(main) {
  const body = h('div', { id: 'config' });
  const copy = h('button', { class: 'btn', type: 'button' }, 'Copy');
  main.appendChild(pageHeader('Configuration', copy));
  main.appendChild(body);
  load(body, [['status/config', {}]], (d) => {
    const pre = h('pre', { class: 'code panel' }, d.yaml);
    body.appendChild(pre);
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(d.yaml);
        copy.textContent = 'Copied';
      } catch {
        const r = document.createRange();
        r.selectNodeContents(pre);
        getSelection().removeAllRanges();
        getSelection().addRange(r);
      }
    });
  });
}

export function flags(main) {
  const body = h('div', { id: 'flags' });
  let data = null;
  let filter = '';
  main.appendChild(pageHeader('Command-line flags', searchBox('Filter flags', (f) => { filter = f; draw(); })));
  main.appendChild(body);
  function draw() {
    clear(body);
    const rows = Object.keys(data)
      .sort()
      .filter((k) => !filter || k.toLowerCase().includes(filter) || String(data[k]).toLowerCase().includes(filter))
      .map((k) => h('tr', { class: 'flag-row' }, h('td', { class: 'mono' }, `--${k}`), h('td', { class: 'mono' }, data[k])));
    body.appendChild(h('section', { class: 'panel' }, table(['Flag', 'Value'], rows, 'flags-table')));
  }
  load(body, [['status/flags', {}]], (d) => { data = d; draw(); });
}

// ---- TSDB, runtime and build information ---------------------------------------------

function kvTable(obj, format = {}) {
  return table(['Name', 'Value'], Object.keys(obj).map((k) => h(
    'tr', null, h('td', null, k), h('td', { class: 'mono' }, format[k] ? format[k](obj[k]) : String(obj[k])),
  )), 'kv-table');
}

function topTable(title, rows, nameHeader, valueHeader) {
  return h(
    'section', { class: 'panel half' },
    h('h2', { class: 'panel-title' }, title),
    rows && rows.length
      ? table([nameHeader, valueHeader], rows.map((r) => h('tr', null, h('td', { class: 'mono' }, r.name), h('td', { class: 'num' }, String(r.value)))), 'top-table')
      : h('div', { class: 'empty' }, 'No data.'),
  );
}

export function tsdb(main) {
  const body = h('div', { id: 'tsdb-status' });
  main.appendChild(pageHeader('Status', refreshButton(() => fetchAll())));
  main.appendChild(body);
  const ms = (v) => (v > 0 && v < 9e15 ? `${formatTime(v)} (${v})` : String(v));
  const fetchAll = () => load(body, [['status/tsdb', {}], ['status/runtimeinfo', {}], ['status/buildinfo', {}]], (t, rt, b) => {
    body.appendChild(h(
      'div', { class: 'grid2' },
      h('section', { class: 'panel half' }, h('h2', { class: 'panel-title' }, 'Build information'), kvTable(b)),
      h('section', { class: 'panel half' }, h('h2', { class: 'panel-title' }, 'Runtime information'), kvTable(rt, {
        startTime: (v) => `${formatTime(Date.parse(v))} (${ago(v)})`,
        lastConfigTime: (v) => `${formatTime(Date.parse(v))} (${ago(v)})`,
      })),
    ));
    const hs = t.headStats || {};
    body.appendChild(h(
      'section', { class: 'panel' },
      h('h2', { class: 'panel-title' }, 'Head block'),
      h(
        'div', { class: 'summary' },
        [['numSeries', 'series'], ['chunkCount', 'chunks'], ['numLabelPairs', 'label pairs']].map(([k, l]) => h('div', { class: 'summary-item' }, h('span', { class: 'summary-n' }, String(hs[k] ?? '–')), h('span', null, l))),
      ),
      kvTable({ minTime: hs.minTime, maxTime: hs.maxTime }, { minTime: ms, maxTime: ms }),
    ));
    body.appendChild(h(
      'div', { class: 'grid2' },
      topTable('Top series count by metric name', t.seriesCountByMetricName, 'Metric name', 'Series'),
      topTable('Top label names with value count', t.labelValueCountByLabelName, 'Label name', 'Values'),
      topTable('Top label names by memory', t.memoryInBytesByLabelName, 'Label name', 'Bytes'),
      topTable('Top series count by label pair', t.seriesCountByLabelValuePair, 'Label pair', 'Series'),
    ));
  });
  fetchAll();
}
