// The query page: an expression box with completion, a table view (instant query) and a
// graph view (range query). Its state lives in the URL as Prometheus writes it
// (g0.expr, g0.tab, g0.range_input, g0.end_input, g0.step_input, g0.moment_input), so links
// from alerts (`graph?g0.expr=...&g0.tab=1`) open here.

import {
  h, clear, api, errorBox, seriesNodes, parseValue, formatValue, formatDuration,
  parseDuration, toLocalInput, formatTime,
} from './util.js';
import { Completer } from './complete.js';
import { drawChart, drawLegend } from './chart.js';

const RANGES = ['5m', '15m', '1h', '6h', '12h', '1d', '2d', '1w'];
const MAX_TABLE_ROWS = 2000;

function readState() {
  const q = new URLSearchParams(location.search);
  const tab = q.get('g0.tab');
  const end = Date.parse(q.get('g0.end_input') || '');
  const moment = Date.parse(q.get('g0.moment_input') || '');
  const range = q.get('g0.range_input') || '1h';
  return {
    expr: q.get('g0.expr') || '',
    // Prometheus 2 wrote 0 for the graph and 1 for the table.
    tab: tab === 'graph' || tab === '0' ? 'graph' : 'table',
    range: Number.isFinite(parseDuration(range)) ? range : '1h',
    end: Number.isFinite(end) ? end : null,
    step: q.get('g0.step_input') || '',
    moment: Number.isFinite(moment) ? moment : null,
  };
}

function writeState(st) {
  const q = new URLSearchParams();
  q.set('g0.expr', st.expr);
  q.set('g0.tab', st.tab);
  if (st.tab === 'graph') {
    q.set('g0.range_input', st.range);
    if (st.end !== null) q.set('g0.end_input', new Date(st.end).toISOString());
    if (st.step) q.set('g0.step_input', st.step);
  } else if (st.moment !== null) {
    q.set('g0.moment_input', new Date(st.moment).toISOString());
  }
  history.replaceState(null, '', `${location.pathname}?${q}`);
}

/** Prometheus' default resolution: range / 250, at least 1 s. */
export function autoStep(rangeSec) {
  return Math.max(Math.floor(rangeSec / 250), 1);
}

export function renderQuery(main) {
  const st = readState();
  let controller = null;
  let hidden = new Set();
  let lastGraph = null;

  const expr = h('textarea', {
    id: 'expr',
    class: 'expr-input',
    rows: 1,
    spellcheck: 'false',
    autocomplete: 'off',
    'aria-label': 'Expression',
    'aria-autocomplete': 'list',
    'aria-controls': 'completions',
    placeholder: 'Expression (press Shift+Enter for newlines)',
  });
  expr.value = st.expr;
  const list = h('ul', { id: 'completions', class: 'completions', role: 'listbox', hidden: true });
  const execute = h('button', { id: 'execute', class: 'btn btn-primary', type: 'button' }, 'Execute');
  const errorSlot = h('div', { id: 'query-error', class: 'query-error', 'aria-live': 'polite' });
  const stats = h('span', { id: 'query-stats', class: 'stats' });

  const tabBtn = (name, label) => h('button', {
    class: 'tab', type: 'button', role: 'tab', dataset: { tab: name },
    onclick: () => setTab(name),
  }, label);
  const tabs = h('div', { class: 'tabs', role: 'tablist' }, tabBtn('table', 'Table'), tabBtn('graph', 'Graph'), stats);

  // Table view controls.
  const moment = h('input', { id: 'moment', type: 'datetime-local', step: '1', class: 'input', 'aria-label': 'Evaluation time' });
  if (st.moment !== null) moment.value = toLocalInput(st.moment);
  const tableTools = h(
    'div', { class: 'controls' },
    h(
      'div', { class: 'control' },
      h('label', { class: 'control-label', for: 'moment' }, 'Evaluation time'), moment,
      h('button', { class: 'btn', type: 'button', onclick: () => { moment.value = ''; run(); } }, 'Now'),
    ),
  );
  const tableBody = h('div', { id: 'table-view', class: 'table-view' });
  const tablePane = h('div', { class: 'pane', dataset: { pane: 'table' } }, tableTools, tableBody);

  // Graph view controls.
  const rangeBtns = RANGES.map((r) => h('button', {
    type: 'button', class: 'seg', dataset: { range: r },
    onclick: () => { st.range = r; markRange(); run(); },
  }, r));
  const markRange = () => rangeBtns.forEach((b) => b.classList.toggle('on', b.dataset.range === st.range));
  const endInput = h('input', { id: 'end-time', type: 'datetime-local', step: '1', class: 'input', 'aria-label': 'End time' });
  if (st.end !== null) endInput.value = toLocalInput(st.end);
  const stepInput = h('input', { id: 'step', type: 'text', class: 'input input-step', placeholder: 'auto', 'aria-label': 'Resolution' });
  stepInput.value = st.step;
  const graphTools = h(
    'div', { class: 'controls' },
    h('div', { class: 'control' }, h('span', { class: 'control-label' }, 'Range'), h('div', { class: 'segmented', id: 'range' }, rangeBtns)),
    h(
      'div', { class: 'control' },
      h('label', { class: 'control-label', for: 'end-time' }, 'End'), endInput,
      h('button', { class: 'btn', type: 'button', onclick: () => { endInput.value = ''; run(); } }, 'Now'),
    ),
    h('div', { class: 'control' }, h('label', { class: 'control-label', for: 'step' }, 'Resolution'), stepInput),
  );
  const chartBox = h('div', { id: 'chart', class: 'chart' });
  const legend = h('ul', { id: 'legend', class: 'legend' });
  const graphPane = h('div', { class: 'pane', dataset: { pane: 'graph' } }, graphTools, chartBox, legend);

  main.appendChild(h(
    'section', { class: 'panel query-panel' },
    h('div', { class: 'expr-row' }, h('div', { class: 'expr-wrap' }, expr, list), execute),
    errorSlot,
    tabs,
    tablePane,
    graphPane,
  ));

  new Completer(expr, list);
  const grow = () => {
    expr.style.height = 'auto';
    expr.style.height = `${Math.min(expr.scrollHeight + 2, 300)}px`;
  };
  expr.addEventListener('input', grow);
  expr.addEventListener('change', grow);
  expr.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      run();
    }
  });
  execute.addEventListener('click', run);
  for (const el of [moment, endInput]) el.addEventListener('change', run);
  stepInput.addEventListener('keydown', (ev) => ev.key === 'Enter' && run());

  function setTab(name) {
    st.tab = name;
    for (const b of tabs.querySelectorAll('.tab')) {
      b.classList.toggle('on', b.dataset.tab === name);
      b.setAttribute('aria-selected', b.dataset.tab === name ? 'true' : 'false');
    }
    tablePane.hidden = name !== 'table';
    graphPane.hidden = name !== 'graph';
    if (expr.value.trim()) run();
  }

  function showError(err) {
    clear(errorSlot);
    if (err) errorSlot.appendChild(errorBox(err));
  }

  async function run() {
    st.expr = expr.value.trim();
    st.step = stepInput.value.trim();
    const m = Date.parse(moment.value);
    st.moment = moment.value && Number.isFinite(m) ? m : null;
    const e = Date.parse(endInput.value);
    st.end = endInput.value && Number.isFinite(e) ? e : null;
    writeState(st);
    if (controller) controller.abort();
    if (!st.expr) {
      showError(null);
      return;
    }
    controller = new AbortController();
    const signal = controller.signal;
    const started = performance.now();
    main.classList.add('busy');
    try {
      if (st.tab === 'table') {
        const time = st.moment !== null ? st.moment / 1000 : Date.now() / 1000;
        const data = await api('query', { query: st.expr, time }, { form: true, signal });
        showError(null);
        renderTable(data, performance.now() - started);
      } else {
        const rangeSec = parseDuration(st.range);
        const end = (st.end !== null ? st.end : Date.now()) / 1000;
        const start = end - rangeSec;
        let step = autoStep(rangeSec);
        if (st.step) {
          const given = parseDuration(st.step);
          if (!Number.isFinite(given) || given <= 0) throw { type: 'bad_data', message: `invalid resolution ${JSON.stringify(st.step)}` };
          step = given;
        }
        stepInput.placeholder = `auto (${formatDuration(autoStep(rangeSec))})`;
        const data = await api('query_range', { query: st.expr, start, end, step }, { form: true, signal });
        showError(null);
        hidden = new Set();
        lastGraph = {
          series: data.result.map((r) => ({
            metric: r.metric,
            points: (r.values || []).map(([t, v]) => [t * 1000, parseValue(v)]),
          })),
          start: start * 1000,
          end: end * 1000,
          stepMs: step * 1000,
        };
        renderGraph();
        const pts = lastGraph.series.reduce((n, sr) => n + sr.points.length, 0);
        stats.textContent = `${count(lastGraph.series.length, 'series', 'series')} · ${count(pts, 'point', 'points')} · step ${formatDuration(step)} · ${Math.round(performance.now() - started)} ms`;
      }
    } catch (err) {
      if (err && err.name === 'AbortError') return;
      showError(err);
      // No stale result under the error.
      stats.textContent = '';
      lastGraph = null;
      clear(tableBody);
      clear(chartBox);
      clear(legend);
    } finally {
      if (!signal.aborted) main.classList.remove('busy');
    }
  }

  // A native histogram as the API sends it: count, sum, and each populated bucket with its
  // bounds ("(0.5, 1]"; the boundary rule 0..3 says which ends are closed).
  function histogramNode(hv) {
    const open = ['(', '[', '(', '['];
    const close = [']', ')', ')', ']'];
    const buckets = (hv.buckets || []).map(([rule, lo, hi, c]) =>
      h('div', { class: 'bucket' }, `${open[rule] || '('}${lo}, ${hi}${close[rule] || ']'}: ${formatValue(parseValue(c))}`));
    return h('div', { class: 'histogram' },
      h('div', null, `count ${formatValue(parseValue(hv.count))}, sum ${formatValue(parseValue(hv.sum))}`),
      buckets.length ? h('div', { class: 'buckets' }, buckets) : null);
  }

  function renderTable(data, ms) {
    clear(tableBody);
    const rows = [];
    let n = 0;
    if (data.resultType === 'scalar' || data.resultType === 'string') {
      n = 1;
      rows.push(h('tr', { class: 'result-row' }, h('td', { class: 'series' }, h('em', null, data.resultType)), h('td', { class: 'value' }, formatValue(parseValue(data.result[1])))));
    } else {
      n = data.result.length;
      for (const r of data.result.slice(0, MAX_TABLE_ROWS)) {
        let value;
        if (data.resultType === 'matrix') {
          const floats = (r.values || []).map(([t, v]) => h('div', null, formatValue(parseValue(v)), h('span', { class: 'at' }, ` @${t}`)));
          const hists = (r.histograms || []).map(([t, hv]) => h('div', null, histogramNode(hv), h('span', { class: 'at' }, ` @${t}`)));
          value = h('div', { class: 'values' }, floats.concat(hists));
        } else if (r.histogram) {
          value = histogramNode(r.histogram[1]);
        } else {
          value = formatValue(parseValue(r.value[1]));
        }
        rows.push(h('tr', { class: 'result-row' }, h('td', { class: 'series' }, seriesNodes(r.metric)), h('td', { class: 'value' }, value)));
      }
    }
    if (!n) {
      tableBody.appendChild(h('div', { class: 'empty' }, 'Empty query result'));
    } else {
      tableBody.appendChild(h('table', { class: 'data-table results' }, h('tbody', null, rows)));
      if (n > MAX_TABLE_ROWS) tableBody.appendChild(h('div', { class: 'notice' }, `Showing ${MAX_TABLE_ROWS} of ${n} series.`));
    }
    const at = st.moment !== null ? ` at ${formatTime(st.moment)}` : '';
    stats.textContent = `${count(n, 'series', 'series')}${at} · ${Math.round(ms)} ms`;
  }

  function renderGraph() {
    if (!lastGraph) return;
    drawChart(chartBox, { ...lastGraph, hidden });
    drawLegend(legend, lastGraph.series, hidden, renderGraph);
    if (!lastGraph.series.length) {
      clear(legend);
      legend.appendChild(h('li', { class: 'empty' }, 'Empty query result'));
    }
  }

  const ro = new ResizeObserver(() => {
    if (lastGraph && !graphPane.hidden) drawChart(chartBox, { ...lastGraph, hidden });
  });
  ro.observe(chartBox);

  markRange();
  setTab(st.tab);
  grow();
  expr.focus();
  expr.setSelectionRange(expr.value.length, expr.value.length);

  return () => {
    ro.disconnect();
    if (controller) controller.abort();
  };
}

function count(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}
