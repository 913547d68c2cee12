// A line chart drawn as SVG: one <path class="series-line"> per series, axes with "nice"
// ticks, a crosshair and a tooltip on hover, and a legend that can hide series.

import { s, h, clear, formatShort, formatValue, formatTime, seriesNodes } from './util.js';

export const PALETTE = [
  '#3b6fd8', '#e8772e', '#2ca25f', '#d6404e', '#8d5fd3', '#1f9fb4',
  '#c49a1b', '#d45ba8', '#5d6b82', '#78a83a', '#a0522d', '#5c6bc0',
];
export const colorFor = (i) => PALETTE[i % PALETTE.length];

/** The plot's height: what the viewport leaves below the query controls, within bounds. */
const chartHeight = () => Math.round(Math.min(440, Math.max(240, window.innerHeight - 410)));
const MARGIN = { top: 14, right: 18, bottom: 30 };

/** A round tick spacing for `span` split into about `count` parts. */
function niceStep(span, count) {
  const raw = span / Math.max(count, 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const nice = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
  return nice * mag;
}

/** The y domain widened to round numbers, and its ticks. */
export function yAxis(min, max, count) {
  if (min === max) {
    const d = Math.abs(min) * 0.1 || 1;
    min -= d;
    max += d;
  }
  const step = niceStep(max - min, count);
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let i = 0, v = lo; v <= hi + step / 2 && i < 100; i++, v = lo + i * step) {
    ticks.push(Number(v.toPrecision(12)));
  }
  return { lo, hi, ticks };
}

const TIME_STEPS = [
  1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
  172800, 604800, 1209600, 2592000,
].map((x) => x * 1000);

/** Time ticks aligned to the local clock (whole minutes, hours, local midnight). */
export function timeTicks(start, end, count) {
  const span = end - start;
  const step = TIME_STEPS.find((st) => span / st <= count) || TIME_STEPS[TIME_STEPS.length - 1];
  const off = -new Date(start).getTimezoneOffset() * 60000;
  const ticks = [];
  for (let t = Math.ceil((start + off) / step) * step - off; t <= end && ticks.length < 200; t += step) {
    ticks.push(t);
  }
  return { step, ticks };
}

const pad = (n) => String(n).padStart(2, '0');

function tickLabel(t, step) {
  const d = new Date(t);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const md = `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  if (step < 60000) return `${hm}:${pad(d.getSeconds())}`;
  if (step < 86400000) return d.getHours() === 0 && d.getMinutes() === 0 ? md : hm;
  return md;
}

/**
 * The SVG path of one series: `M x,y L x,y ...`, broken where a step has no sample or the
 * value is not finite. A lone sample is drawn as a zero-length segment (a dot, with round
 * line caps).
 */
export function linePath(points, x, y, stepMs) {
  let d = '';
  let prevT = null;
  let open = false;
  const gap = stepMs * 1.5;
  for (const [t, v] of points) {
    if (!Number.isFinite(v)) {
      open = false;
      continue;
    }
    const px = x(t).toFixed(1);
    const py = y(v).toFixed(1);
    if (open && prevT !== null && t - prevT <= gap) {
      d += `L${px},${py}`;
    } else {
      d += `${d ? ' ' : ''}M${px},${py}L${px},${py}`;
      open = true;
    }
    prevT = t;
  }
  return d;
}

/** Index of the point whose time is nearest to t (points sorted by time). */
function nearest(points, t) {
  let lo = 0;
  let hi = points.length - 1;
  if (hi < 0) return -1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (points[mid][0] < t) lo = mid;
    else hi = mid;
  }
  return Math.abs(points[lo][0] - t) <= Math.abs(points[hi][0] - t) ? lo : hi;
}

/**
 * Draws `series` ([{metric, points: [[ms, value], ...]}]) from `start` to `end` (ms) into
 * `box`, skipping indexes in `hidden`. Returns nothing; call again to redraw.
 */
export function drawChart(box, { series, start, end, stepMs, hidden = new Set() }) {
  clear(box);
  const HEIGHT = chartHeight();
  const width = Math.max(box.clientWidth || 800, 320);
  const visible = series.map((sr, i) => ({ ...sr, index: i })).filter((sr) => !hidden.has(sr.index));
  let min = Infinity;
  let max = -Infinity;
  for (const sr of visible) {
    for (const [, v] of sr.points) {
      if (Number.isFinite(v)) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
    }
  }
  const svg = s('svg', {
    class: 'chart-svg',
    width,
    height: HEIGHT,
    viewBox: `0 0 ${width} ${HEIGHT}`,
    role: 'img',
    'aria-label': 'Graph of the query result',
  });
  box.appendChild(svg);
  if (min === Infinity) {
    svg.appendChild(s('text', { x: width / 2, y: HEIGHT / 2, class: 'chart-empty', 'text-anchor': 'middle' }, 'No data points in this range'));
    return;
  }

  const ya = yAxis(min, max, Math.max(3, Math.round((HEIGHT - 60) / 50)));
  const yLabels = tickLabels(ya.ticks);
  const differing = varyingLabels(series);
  const left = Math.max(40, 12 + 7 * Math.max(...yLabels.map((l) => l.length)));
  const pw = width - left - MARGIN.right;
  const ph = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (t) => left + ((t - start) / (end - start || 1)) * pw;
  const y = (v) => MARGIN.top + (1 - (v - ya.lo) / (ya.hi - ya.lo)) * ph;

  const grid = s('g', { class: 'chart-grid' });
  ya.ticks.forEach((v, i) => {
    const py = y(v).toFixed(1);
    grid.appendChild(s('line', { x1: left, x2: left + pw, y1: py, y2: py }));
    grid.appendChild(s('text', { x: left - 8, y: py, dy: '0.32em', 'text-anchor': 'end', class: 'tick' }, yLabels[i]));
  });
  const xt = timeTicks(start, end, Math.max(2, Math.floor(pw / 110)));
  for (const t of xt.ticks) {
    const px = x(t).toFixed(1);
    grid.appendChild(s('line', { x1: px, x2: px, y1: MARGIN.top, y2: MARGIN.top + ph, class: 'vgrid' }));
    grid.appendChild(s('text', { x: px, y: MARGIN.top + ph + 19, 'text-anchor': 'middle', class: 'tick' }, tickLabel(t, xt.step)));
  }
  grid.appendChild(s('line', { x1: left, x2: left + pw, y1: MARGIN.top + ph, y2: MARGIN.top + ph, class: 'axis' }));
  svg.appendChild(grid);

  const clipId = `clip-${Math.random().toString(36).slice(2)}`;
  svg.appendChild(s('clipPath', { id: clipId }, s('rect', { x: left, y: MARGIN.top - 4, width: pw, height: ph + 8 })));
  const lines = s('g', { class: 'chart-lines', 'clip-path': `url(#${clipId})` });
  const paths = new Map();
  for (const sr of visible) {
    const p = s('path', {
      class: 'series-line',
      d: linePath(sr.points, x, y, stepMs),
      stroke: colorFor(sr.index),
      'data-series': sr.index,
    });
    paths.set(sr.index, p);
    lines.appendChild(p);
  }
  svg.appendChild(lines);

  // Hover: a crosshair at the nearest sample time, dots on each series there, a tooltip.
  const cross = s('line', { class: 'crosshair', y1: MARGIN.top, y2: MARGIN.top + ph, visibility: 'hidden' });
  const dots = s('g', { class: 'chart-dots' });
  svg.appendChild(cross);
  svg.appendChild(dots);
  const overlay = s('rect', { x: left, y: MARGIN.top, width: pw, height: ph, class: 'chart-overlay' });
  svg.appendChild(overlay);
  const tip = h('div', { class: 'chart-tooltip', hidden: true });
  box.appendChild(tip);
  let active = null;

  const hide = () => {
    cross.setAttribute('visibility', 'hidden');
    clear(dots);
    tip.hidden = true;
    if (active !== null) paths.get(active)?.classList.remove('active');
    svg.classList.remove('hovering');
    active = null;
  };
  overlay.addEventListener('mouseleave', hide);
  overlay.addEventListener('mousemove', (ev) => {
    const r = svg.getBoundingClientRect();
    const mx = ev.clientX - r.left;
    const my = ev.clientY - r.top;
    const t = start + ((mx - left) / pw) * (end - start);
    // Snap to the sample time nearest the pointer over all visible series.
    let snap = null;
    for (const sr of visible) {
      const i = nearest(sr.points, t);
      if (i >= 0 && (snap === null || Math.abs(sr.points[i][0] - t) < Math.abs(snap - t))) snap = sr.points[i][0];
    }
    if (snap === null) return hide();
    const rows = [];
    for (const sr of visible) {
      const i = nearest(sr.points, snap);
      if (i >= 0 && sr.points[i][0] === snap) rows.push({ sr, v: sr.points[i][1] });
    }
    let best = null;
    for (const row of rows) {
      if (!Number.isFinite(row.v)) continue;
      const dist = Math.abs(y(row.v) - my);
      if (best === null || dist < best.dist) best = { row, dist };
    }
    const sx = x(snap);
    cross.setAttribute('x1', sx.toFixed(1));
    cross.setAttribute('x2', sx.toFixed(1));
    cross.setAttribute('visibility', 'visible');
    clear(dots);
    for (const row of rows.slice(0, 50)) {
      if (!Number.isFinite(row.v)) continue;
      dots.appendChild(s('circle', {
        cx: sx.toFixed(1),
        cy: y(row.v).toFixed(1),
        r: best && best.row === row ? 4.5 : 3,
        fill: colorFor(row.sr.index),
        class: 'dot',
      }));
    }
    const act = best ? best.row.sr.index : null;
    if (act !== active) {
      if (active !== null) paths.get(active)?.classList.remove('active');
      if (act !== null) paths.get(act)?.classList.add('active');
      svg.classList.toggle('hovering', act !== null);
      active = act;
    }

    clear(tip);
    tip.appendChild(h('div', { class: 'tip-time' }, formatTime(snap)));
    const sorted = rows.slice().sort((a, b) => (b.v || 0) - (a.v || 0));
    const shown = sorted.slice(0, 10);
    if (best && !shown.includes(best.row)) shown[shown.length - 1] = best.row;
    for (const row of shown) {
      tip.appendChild(h(
        'div',
        { class: 'tip-row' + (best && best.row === row ? ' tip-active' : '') },
        h('span', { class: 'swatch', dataset: { color: colorFor(row.sr.index) } }),
        h('span', { class: 'tip-name' }, seriesNodes(pick(row.sr.metric, differing))),
        h('span', { class: 'tip-value' }, formatValue(row.v)),
      ));
    }
    if (sorted.length > shown.length) tip.appendChild(h('div', { class: 'tip-more' }, `… ${sorted.length - shown.length} more`));
    paintSwatches(tip);
    tip.hidden = false;
    const bw = box.clientWidth;
    const tw = tip.offsetWidth;
    const th = tip.offsetHeight;
    let tx = sx + 16;
    if (tx + tw > bw - 4) tx = sx - 16 - tw;
    tip.style.left = `${Math.max(4, tx)}px`;
    tip.style.top = `${Math.max(4, Math.min(my - th / 2, HEIGHT - th - 4))}px`;
  });
}

/** Labels for y ticks: plain decimals with the ticks' precision, SI prefixes when large or tiny. */
export function tickLabels(ticks) {
  const big = Math.max(...ticks.map(Math.abs));
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  if (big >= 1e4 || (big > 0 && big < 1e-3)) return ticks.map(formatShort);
  const frac = String(Number(step.toPrecision(3))).split('.')[1] || '';
  const dec = Math.min(frac.length, 8);
  return ticks.map((v) => (Math.abs(v) < step / 1e6 ? '0' : v.toFixed(dec)));
}

/** Label names whose values differ between the series (what tells them apart). */
export function varyingLabels(series) {
  const names = new Set(series.flatMap((sr) => Object.keys(sr.metric)));
  const out = new Set();
  for (const n of names) {
    const first = series[0].metric[n];
    if (series.some((sr) => sr.metric[n] !== first)) out.add(n);
  }
  return out;
}

/** The metric name and the given labels of a series. */
function pick(metric, names) {
  if (!names.size) return metric;
  const out = {};
  for (const [k, v] of Object.entries(metric)) if (k === '__name__' || names.has(k)) out[k] = v;
  return out;
}

/** Sets swatch colours from data-color (style attributes are not allowed by the CSP). */
export function paintSwatches(root) {
  for (const el of root.querySelectorAll('.swatch[data-color]')) el.style.backgroundColor = el.dataset.color;
}

/**
 * The legend: one item per series with its colour; clicking an item hides or shows it, and
 * clicking with Ctrl/Cmd shows that series alone.
 */
export function drawLegend(box, series, hidden, onChange) {
  clear(box);
  series.forEach((sr, i) => {
    const item = h(
      'li',
      {
        class: 'legend-item' + (hidden.has(i) ? ' off' : ''),
        title: 'Click to hide or show; Ctrl+click to show only this series',
        dataset: { series: i },
        onclick: (ev) => {
          if (ev.ctrlKey || ev.metaKey) {
            const only = hidden.size === series.length - 1 && !hidden.has(i);
            hidden.clear();
            if (!only) series.forEach((_, j) => j !== i && hidden.add(j));
          } else if (hidden.has(i)) hidden.delete(i);
          else hidden.add(i);
          onChange();
        },
      },
      h('span', { class: 'swatch', dataset: { color: colorFor(i) } }),
      h('span', { class: 'legend-name' }, seriesNodes(sr.metric)),
    );
    box.appendChild(item);
  });
  paintSwatches(box);
}
