// Completion for the expression box: metric names (api/v1/label/__name__/values), label
// names (api/v1/labels), label values inside `{name="...`, and PromQL's functions and keywords.

import { api, h, clear } from './util.js';

const FUNCTIONS = [
  'abs', 'absent', 'absent_over_time', 'acos', 'acosh', 'asin', 'asinh', 'atan', 'atanh',
  'avg_over_time', 'ceil', 'changes', 'clamp', 'clamp_max', 'clamp_min', 'cos', 'cosh',
  'count_over_time', 'day_of_month', 'day_of_week', 'day_of_year', 'days_in_month', 'deg',
  'delta', 'deriv', 'exp', 'floor', 'histogram_avg', 'histogram_count', 'histogram_fraction',
  'histogram_quantile', 'histogram_stddev', 'histogram_stdvar', 'histogram_sum', 'hour',
  'idelta', 'increase', 'irate', 'label_join', 'label_replace', 'last_over_time', 'ln',
  'log10', 'log2', 'mad_over_time', 'max_over_time', 'min_over_time', 'minute', 'month', 'pi',
  'predict_linear', 'present_over_time', 'quantile_over_time', 'rad', 'rate', 'resets',
  'round', 'scalar', 'sgn', 'sin', 'sinh', 'sort', 'sort_by_label', 'sort_by_label_desc',
  'sort_desc', 'sqrt', 'stddev_over_time', 'stdvar_over_time', 'sum_over_time', 'tan', 'tanh',
  'time', 'timestamp', 'vector', 'year',
];
const AGGREGATIONS = [
  'avg', 'bottomk', 'count', 'count_values', 'group', 'limit_ratio', 'limitk', 'max', 'min',
  'quantile', 'stddev', 'stdvar', 'sum', 'topk',
];
const KEYWORDS = ['and', 'bool', 'by', 'group_left', 'group_right', 'ignoring', 'offset', 'on', 'or', 'unless', 'without'];

const MAX_ITEMS = 40;
const REFRESH_MS = 30000;

/**
 * What to complete at `pos` in `text`: `{kind: 'metric'|'label'|'value', word, from, to,
 * label?}`, or null. `from..to` is the span the choice replaces.
 */
export function context(text, pos) {
  const before = text.slice(0, pos);
  // Inside a string: only label values are completed.
  const quotes = (before.match(/(?<!\\)"/g) || []).length;
  const brace = before.lastIndexOf('{');
  const inBraces = brace > before.lastIndexOf('}');
  if (quotes % 2 === 1) {
    if (!inBraces) return null;
    const m = before.match(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)$/);
    if (!m) return null;
    const end = text.indexOf('"', pos);
    return { kind: 'value', label: m[1], word: m[3], from: pos - m[3].length, to: end < 0 ? text.length : end };
  }
  const wm = before.match(/[a-zA-Z_:][\w:]*$/);
  const word = wm ? wm[0] : '';
  const from = pos - word.length;
  const after = text.slice(pos).match(/^[\w:]*/)[0];
  const to = pos + after.length;
  if (inBraces) {
    // After `{` or `,`: a label name.
    if (/[{,]\s*[a-zA-Z_]?\w*$/.test(before)) return { kind: 'label', word, from, to };
    return null;
  }
  // Inside `by (`, `without (`, `on (`, `ignoring (`, `group_left (`: label names.
  const grouping = before.match(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)$/);
  if (grouping) return { kind: 'label', word, from, to };
  if (/\[[^\]]*$/.test(before)) return null; // a range or subquery duration
  if (!word || /^\d/.test(word)) return null;
  if (/\d$/.test(before.slice(0, from)) && /[a-z]/.test(word)) return null; // 5m
  return { kind: 'metric', word, from, to };
}

/** Ranks `names` for `word`: prefix matches first, then substring matches. */
export function rank(names, word, limit = MAX_ITEMS) {
  const w = word.toLowerCase();
  const pre = [];
  const sub = [];
  for (const n of names) {
    const l = n.name.toLowerCase();
    if (l === w) continue;
    if (l.startsWith(w)) pre.push(n);
    else if (w && l.includes(w)) sub.push(n);
    if (pre.length >= limit) break;
  }
  return pre.concat(sub).slice(0, limit);
}

export class Completer {
  /** `input` is the expression textarea; `list` the <ul> shown under it. */
  constructor(input, list) {
    this.input = input;
    this.list = list;
    this.items = [];
    this.sel = 0;
    this.ctx = null;
    this.metrics = [];
    this.labels = [];
    this.values = new Map();
    this.loadedAt = 0;
    this.load();
    this.typed = false;
    input.addEventListener('input', () => {
      this.typed = true;
      this.update();
    });
    input.addEventListener('focus', () => {
      if (Date.now() - this.loadedAt > REFRESH_MS) this.load();
    });
    input.addEventListener('blur', () => setTimeout(() => this.close(), 120));
    input.addEventListener('keydown', (ev) => this.key(ev));
    list.addEventListener('mousedown', (ev) => ev.preventDefault());
  }

  async load() {
    this.loadedAt = Date.now();
    try {
      const [metrics, labels] = await Promise.all([api('label/__name__/values'), api('labels')]);
      this.metrics = metrics;
      this.labels = labels.filter((l) => l !== '__name__');
      this.values.clear();
      // Typing may have started before the names arrived.
      if (this.typed && document.activeElement === this.input) this.update();
    } catch {
      this.loadedAt = 0; // try again on the next focus
    }
  }

  get open() {
    return !this.list.hidden;
  }

  close() {
    this.list.hidden = true;
    this.input.setAttribute('aria-expanded', 'false');
    this.items = [];
  }

  async candidates(ctx) {
    if (ctx.kind === 'label') return this.labels.map((name) => ({ name, kind: 'label' }));
    if (ctx.kind === 'value') {
      if (!this.values.has(ctx.label)) {
        this.values.set(ctx.label, []);
        try {
          this.values.set(ctx.label, await api(`label/${encodeURIComponent(ctx.label)}/values`));
        } catch {
          this.values.delete(ctx.label);
        }
      }
      return (this.values.get(ctx.label) || []).map((name) => ({ name, kind: 'value' }));
    }
    return [
      ...this.metrics.map((name) => ({ name, kind: 'metric' })),
      ...AGGREGATIONS.map((name) => ({ name, kind: 'aggregation' })),
      ...FUNCTIONS.map((name) => ({ name, kind: 'function' })),
      ...KEYWORDS.map((name) => ({ name, kind: 'keyword' })),
    ];
  }

  async update() {
    const ctx = context(this.input.value, this.input.selectionStart);
    if (!ctx || (ctx.kind === 'metric' && ctx.word.length < 1)) return this.close();
    const all = await this.candidates(ctx);
    // The text may have changed while label values loaded.
    const now = context(this.input.value, this.input.selectionStart);
    if (!now || now.word !== ctx.word || now.kind !== ctx.kind) return;
    this.ctx = ctx;
    this.items = rank(all, ctx.word);
    this.sel = 0;
    this.render();
  }

  render() {
    clear(this.list);
    if (!this.items.length) return this.close();
    this.items.forEach((it, i) => {
      this.list.appendChild(h(
        'li',
        {
          class: 'completion' + (i === this.sel ? ' selected' : ''),
          role: 'option',
          'aria-selected': i === this.sel ? 'true' : 'false',
          onclick: () => this.accept(i),
        },
        h('span', { class: 'completion-name' }, it.name),
        h('span', { class: `completion-kind kind-${it.kind}` }, it.kind),
      ));
    });
    this.list.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
    this.list.children[this.sel]?.scrollIntoView({ block: 'nearest' });
  }

  key(ev) {
    if (!this.open) return;
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      const n = this.items.length;
      this.sel = (this.sel + (ev.key === 'ArrowDown' ? 1 : n - 1)) % n;
      this.render();
    } else if (ev.key === 'Tab' || (ev.key === 'Enter' && !ev.shiftKey)) {
      ev.preventDefault();
      ev.stopImmediatePropagation();
      this.accept(this.sel);
    } else if (ev.key === 'Escape') {
      ev.preventDefault();
      this.close();
    }
  }

  accept(i) {
    const it = this.items[i];
    const ctx = this.ctx;
    if (!it || !ctx) return;
    const text = this.input.value;
    let insert = it.name;
    let cursor = ctx.from + insert.length;
    if (ctx.kind === 'value') {
      insert = it.name.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
      cursor = ctx.from + insert.length;
      if (text[ctx.to] !== '"') insert += '"';
      cursor += 1;
    } else if ((it.kind === 'function' || it.kind === 'aggregation') && text[ctx.to] !== '(') {
      insert += '()';
      cursor = ctx.from + insert.length - 1;
    }
    this.input.value = text.slice(0, ctx.from) + insert + text.slice(ctx.to);
    this.input.setSelectionRange(cursor, cursor);
    this.close();
    this.input.dispatchEvent(new Event('change'));
    this.input.focus();
  }
}
