// Shared helpers: building DOM nodes, calling the API, and formatting.
// All text goes in through textContent, never innerHTML: labels and errors come from
// scraped targets and must not be able to inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(node, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else if (c instanceof Node) node.appendChild(c);
    else node.appendChild(document.createTextNode(String(c)));
  }
}

function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.setAttribute('class', v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k in node && k !== 'list' && typeof v !== 'string') node[k] = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
}

/** h('div', {class: 'x'}, 'text', child, [more]) */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  append(node, children);
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/** An error from the API, with Prometheus' errorType (bad_data, execution, ...). */
export class ApiError extends Error {
  constructor(type, message, status) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

/**
 * Calls `api/v1/<path>` relative to the page, so a route prefix works. With `form`, a
 * form-encoded POST (long expressions do not fit a URL). Resolves to `data`.
 */
export async function api(path, params, { form = false, signal } = {}) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (Array.isArray(v)) v.forEach((x) => qs.append(k, x));
    else if (v !== undefined && v !== null && v !== '') qs.append(k, String(v));
  }
  let url = 'api/v1/' + path;
  const init = { signal, headers: { Accept: 'application/json' }, cache: 'no-store' };
  if (form) {
    init.method = 'POST';
    init.body = qs;
  } else if ([...qs.keys()].length) {
    url += '?' + qs.toString();
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError('network', 'cannot reach the server: ' + e.message, 0);
  }
  let body;
  try {
    body = await resp.json();
  } catch {
    throw new ApiError('server', `unexpected response (HTTP ${resp.status})`, resp.status);
  }
  if (body.status !== 'success') {
    throw new ApiError(body.errorType || 'error', body.error || `HTTP ${resp.status}`, resp.status);
  }
  return body.data;
}

/** `name{a="b", c="d"}`, as Prometheus prints a series. */
export function seriesName(metric) {
  const name = metric.__name__ || '';
  const labels = Object.keys(metric)
    .filter((k) => k !== '__name__')
    .sort()
    .map((k) => `${k}=${JSON.stringify(metric[k])}`);
  if (!labels.length) return name || '{}';
  return `${name}{${labels.join(', ')}}`;
}

/** The series name as nodes, with the metric name and label names styled. */
export function seriesNodes(metric) {
  const name = metric.__name__ || '';
  const keys = Object.keys(metric).filter((k) => k !== '__name__').sort();
  const out = [h('span', { class: 'metric-name' }, name)];
  if (!keys.length && name) return out;
  out.push('{');
  keys.forEach((k, i) => {
    if (i) out.push(', ');
    out.push(h('span', { class: 'label-name' }, k), '=', h('span', { class: 'label-value' }, JSON.stringify(metric[k])));
  });
  out.push('}');
  return out;
}

/** Parses a sample value as the API writes it ("1.5", "NaN", "+Inf", "-Inf"). */
export function parseValue(v) {
  if (v === '+Inf' || v === 'Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return Number(v);
}

const SI = [
  [1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k'], [1, ''], [1e-3, 'm'], [1e-6, 'µ'], [1e-9, 'n'],
];

/** A compact number for axes: 1.5k, 250m, 0. */
export function formatShort(v) {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  for (const [f, p] of SI) {
    if (a >= f) return trimNum(v / f) + p;
  }
  return v.toExponential(1);
}

function trimNum(x) {
  return String(Number(x.toPrecision(4)));
}

/** A value for tables and tooltips: full precision, but no float noise. */
export function formatValue(v) {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(Number(v.toPrecision(12)));
}

const UNITS = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];

/** Seconds as a Prometheus duration: 90 -> "1m30s". */
export function formatDuration(sec) {
  if (!Number.isFinite(sec)) return '';
  if (sec < 1 && sec > 0) return `${Math.round(sec * 1000)}ms`;
  let rest = Math.round(sec);
  if (rest === 0) return '0s';
  let out = '';
  for (const [u, n] of UNITS) {
    if (rest >= n) {
      out += Math.floor(rest / n) + u;
      rest %= n;
    }
  }
  return out;
}

/** "5m", "1h30m", "1d" -> seconds; NaN when not a duration. */
export function parseDuration(str) {
  const m = String(str).trim().match(/^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/);
  if (!m || !str.trim()) return NaN;
  const [, w, d, hh, mm, ss, ms] = m.map((x) => (x ? Number(x) : 0));
  return w * 604800 + d * 86400 + hh * 3600 + mm * 60 + ss + ms / 1000;
}

/** Scrape and evaluation times: "123ms", "1.234s". */
export function formatSeconds(sec) {
  if (!Number.isFinite(sec)) return '';
  if (sec < 0.001) return `${(sec * 1e6).toFixed(0)}µs`;
  if (sec < 1) return `${(sec * 1000).toFixed(1)}ms`;
  return `${sec.toFixed(3)}s`;
}

/** "3s ago" for an RFC 3339 time; "never" for the zero time. */
export function ago(rfc3339, now = Date.now()) {
  const t = Date.parse(rfc3339);
  if (!Number.isFinite(t) || t <= 0 || rfc3339.startsWith('0001-')) return 'never';
  const d = (now - t) / 1000;
  if (d < 1) return 'just now';
  return `${formatDuration(d)} ago`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local "YYYY-MM-DD HH:MM:SS". */
export function formatTime(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Value for an <input type="datetime-local"> from ms. */
export function toLocalInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A badge for a state: up/down/firing/pending/ok/err... */
export function badge(state) {
  const st = String(state || 'unknown').toLowerCase();
  return h('span', { class: `badge badge-${st}` }, st.toUpperCase());
}

/** Label chips: job="x" instance="y". */
export function labelChips(labels) {
  return h(
    'div',
    { class: 'chips' },
    Object.keys(labels || {})
      .sort()
      .map((k) => h('span', { class: 'chip' }, h('span', { class: 'chip-k' }, k), '=', labels[k])),
  );
}

/** A page's heading with optional trailing controls. */
export function pageHeader(title, ...extra) {
  return h('div', { class: 'page-header' }, h('h1', null, title), h('div', { class: 'page-tools' }, extra));
}

/** A red box with the API's error type and message. */
export function errorBox(err) {
  const type = err && err.type ? err.type : 'error';
  return h(
    'div',
    { class: 'alert alert-error', role: 'alert' },
    h('strong', null, type === 'error' ? 'Error' : type),
    ': ',
    err && err.message ? err.message : String(err),
  );
}

/** A small "Loading…" placeholder. */
export function loading(text = 'Loading…') {
  return h('div', { class: 'loading' }, text);
}
