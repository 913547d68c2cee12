// The vigil UI: a single-page app with client-side routing. Every page path is served the
// same index.html by the server; links and API calls are relative, so the app works under
// --web.route-prefix.

import { api, clear } from './util.js';
import { renderQuery } from './query.js';
import * as pages from './pages.js';

const ROUTES = {
  query: { title: 'Query', render: renderQuery },
  graph: { title: 'Query', render: renderQuery, nav: 'query' },
  alerts: { title: 'Alerts', render: pages.alerts },
  rules: { title: 'Rules', render: pages.rules },
  targets: { title: 'Targets', render: pages.targets },
  'service-discovery': { title: 'Service Discovery', render: pages.serviceDiscovery },
  config: { title: 'Configuration', render: pages.config },
  flags: { title: 'Flags', render: pages.flags },
  'tsdb-status': { title: 'Status', render: pages.tsdb },
  status: { title: 'Status', render: pages.tsdb, nav: 'tsdb-status' },
};

let cleanup = null;

function currentPage() {
  const seg = location.pathname.split('/').pop();
  return ROUTES[seg] ? seg : null;
}

function render() {
  let page = currentPage();
  if (!page) {
    // The root (the route prefix itself): show the query page under its own path.
    page = 'query';
    const base = location.pathname.endsWith('/') ? location.pathname : `${location.pathname}/`;
    history.replaceState(null, '', `${base}query${location.search}`);
  }
  const route = ROUTES[page];
  if (cleanup) cleanup();
  cleanup = null;
  const main = clear(document.getElementById('main'));
  main.className = `main page-${page}`;
  document.title = `${route.title} · vigil`;
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === (route.nav || page) && !a.classList.contains('brand'));
  }
  const r = route.render(main);
  if (typeof r === 'function') cleanup = r;
}

function navigate(href) {
  history.pushState(null, '', href);
  render();
  window.scrollTo(0, 0);
}

document.addEventListener('click', (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = ev.target.closest('a[data-nav], a[data-link]');
  if (!a) return;
  const url = new URL(a.getAttribute('href'), location.href);
  if (url.origin !== location.origin) return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', render);

render();

api('status/buildinfo')
  .then((b) => {
    const rev = String(b.revision || '').replace(/^vigil-/, '');
    document.getElementById('version').textContent = `v${rev} · Prometheus API ${b.version}`;
  })
  .catch(() => {});
