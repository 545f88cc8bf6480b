// Routes: sluice-system/routes.yaml in the usual workspace (files and
// history only), and the live route table every proxy publishes.
import { h, mount, when, tableWrap } from './dom.js';
import * as api from './api.js';
import { workspacePage } from './workspace.js';

// routesPage edits sluice-system/routes.yaml with the usual workspace, and
// shows the live route table every proxy publishes (GET /v1/routes).
export async function routesPage(v, tab) {
  const live = h('div', { 'data-test': 'live-routes' });
  v.title('Routes');
  try {
    await v.api.get('/services/sluice-system', { quiet401: true });
  } catch (e) {
    if (e.status !== 404) throw e;
    v.mount(h('h1', {}, 'Routes'), h('div', { class: 'panel' },
      h('p', {}, 'No routes yet: the proxy reads them from ', h('code', {}, 'sluice-system/routes.yaml'), ', which does not exist.'),
      v.isAdmin() ? h('button', { class: 'primary', 'data-test': 'create-routes', onclick: async () => {
        try { await v.api.put('/services/sluice-system', {}); v.router.render(); } catch (ex) { v.showError(ex, 'Create sluice-system'); }
      } }, 'Create sluice-system') : h('p', { class: 'muted' }, 'An admin creates it.')));
    return;
  }
  await workspacePage(v, 'service', 'sluice-system', tab, {
    hrefBase: '#/routes', title: 'Routes', tabs: 'routes',
    before: h('div', {}, h('p', { class: 'muted' }, 'The proxy reads its routes from ', h('code', {}, 'sluice-system/routes.yaml'),
      '. A publish is validated against the route schema; history and rollback work as for any service.'), live),
  });
  // load shows the tables; false means the server has no such endpoint.
  async function load() {
    try {
      renderLive(live, await v.api.get('/routes', { quiet401: true }));
    } catch (e) {
      if (e instanceof api.Cancelled) return false;
      if (e.status === 404) return false; // nothing live to show
      mount(live, h('div', { class: 'notice' }, 'Live route tables unavailable: ' + e.message));
    }
    return true;
  }
  if (!(await load())) return;
  // Proxies publish every 5 s: follow them while the page is shown.
  let timer = 0;
  const tick = async () => {
    if (v.alive() && await load()) timer = setTimeout(tick, 5000);
  };
  timer = setTimeout(tick, 5000);
  v.onCleanup(() => clearTimeout(timer));
}

// renderLive shows the route table each proxy publishes (GET /v1/routes):
// one table per proxy whose state is fresh, then the stale and silent ones.
function renderLive(el, data) {
  const head = data.revision || 0;
  const proxies = api.list(data, 'proxies');
  const stale = Array.isArray(data.stale) ? data.stale : [];
  const panels = proxies.map((p) => {
    const behind = head > 0 && p.revision !== head;
    return h('div', { class: 'panel', 'data-proxy': p.id },
      h('h3', {}, 'Proxy ', h('code', {}, p.id), ' ',
        h('span', { class: 'badge ' + (behind ? 'warn' : 'ok'), 'data-test': 'proxy-revision' }, 'revision ' + p.revision + (behind ? ' (behind ' + head + ')' : '')), ' ',
        h('span', { class: 'muted small' }, (p.addr ? p.addr + ' · ' : '') + 'updated ', when(p.updated), p.peers > 1 ? ' · ' + p.peers + ' proxies share cluster rates' : '')),
      routesTable(p.routes || [], p.id),
      p.routes_omitted ? h('p', { class: 'muted small' }, p.routes_omitted + ' more routes not shown (the state is capped at 60 KiB)') : null);
  });
  mount(el, h('h2', {}, 'Live route tables ', h('span', { class: 'badge' }, 'sluice-system revision ' + head)),
    panels.length ? panels : h('p', { class: 'muted', 'data-test': 'no-proxies' }, 'No proxy reports its live table. Proxies (sluice proxy, or sluice server --proxy-addr) publish it every 5 s.'),
    stale.length ? h('div', { class: 'panel', 'data-test': 'stale-proxies' }, h('h3', {}, 'Not reporting'),
      tableWrap('Proxies that stopped reporting', h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Proxy'), h('th', {}, 'State'), h('th', {}, 'Last update'), h('th', { class: 'num' }, 'Revision'), h('th', {}, 'Registered'))),
        h('tbody', {}, stale.map((p) => h('tr', { 'data-stale': p.id },
          h('td', { class: 'mono' }, p.id, p.addr ? h('span', { class: 'muted small' }, ' ' + p.addr) : null),
          h('td', {}, h('span', { class: 'badge ' + (p.reason === 'stale' ? 'bad' : 'warn') }, p.reason === 'stale' ? 'stale' : 'no state published')),
          h('td', {}, when(p.updated)),
          h('td', { class: 'num' }, p.revision ? String(p.revision) : '—'),
          h('td', {}, p.registered ? 'yes' : 'no'))))))) : null);
}

function describeMatch(m) {
  const parts = [];
  if (m.hosts && m.hosts.length) parts.push(m.hosts.join(', '));
  parts.push(m.path_prefix || '/');
  if (m.methods && m.methods.length) parts.push(m.methods.join(','));
  for (const [k, v] of Object.entries(m.headers || {})) parts.push(k + ': ' + v);
  return parts.join(' ');
}

const breakerClass = { closed: 'ok', open: 'bad', 'half-open': 'warn' };

function instancesCell(r) {
  const insts = r.instances || [];
  const rows = insts.map((i) => h('div', { 'data-instance': i.id },
    h('span', { class: 'chip' }, i.id),
    i.breaker ? h('span', { class: 'badge ' + (breakerClass[i.breaker] || ''), 'data-test': 'breaker' }, i.breaker) : null,
    i.ejected ? [' ', h('span', { class: 'badge bad', 'data-test': 'ejected' }, 'ejected')] : null,
    i.health ? [' ', h('span', { class: 'badge ' + (i.health === 'healthy' ? 'ok' : 'bad'), 'data-test': 'health' }, i.health)] : null,
    h('span', { class: 'muted' }, ' ' + i.requests + ' req, ' + i.failures + ' failed' +
      (i.in_flight ? ', ' + i.in_flight + ' in flight' : '') + (i.opened ? ', tripped ' + i.opened + '×' : '') +
      (i.ejections ? ', ejected ' + i.ejections + '×' : ''))));
  if (r.instances_omitted) rows.push(h('div', { class: 'muted' }, '+' + r.instances_omitted + ' more (the state is capped at 60 KiB)'));
  if (!rows.length) rows.push(h('span', { class: 'muted' }, 'no instance'));
  return h('td', { class: 'small' }, rows);
}

// upstreamCell shows where a route sends its requests: the service or the
// static addresses, the balancer, and the subsets the traffic is split across.
function upstreamCell(up) {
  const subsets = up.subsets || [];
  return h('td', { class: 'mono small' }, (up.service || (up.static || []).join(', ')) + (up.balancer ? ' · ' + up.balancer : ''),
    subsets.length ? h('div', { 'data-test': 'subsets' }, subsets.map((s) => h('div', { 'data-subset': s.name },
      h('span', { class: 'chip' }, s.name), ' weight ' + s.weight + ', ',
      h('span', { class: s.instances ? '' : 'badge warn' }, s.instances + (s.instances === 1 ? ' instance' : ' instances')),
      h('span', { class: 'muted' }, ' ' + Object.entries(s.labels || {}).map(([k, v]) => k + '=' + v).join(','))))) : null,
    up.sticky ? h('div', { class: 'muted', 'data-test': 'sticky' }, 'sticky by ' + up.sticky) : null,
    up.force ? h('div', { class: 'muted', 'data-test': 'force' }, 'forced by ' + up.force) : null);
}

// resilienceCell shows a route's retries, breaker, outlier detection and
// health check, and whether it balances in panic mode.
function resilienceCell(r) {
  const parts = [];
  const rt = r.retries, cb = r.circuit_breaker, od = r.outlier_detection, hc = r.health_check;
  if (rt) parts.push(h('div', { 'data-test': 'retries' }, 'retries ' + rt.attempts + ' on ' + (rt.on || []).join(', ') +
    (rt.per_try_timeout ? ', ' + rt.per_try_timeout + ' a try' : '') + (rt.non_idempotent ? ', any method' : '') +
    (rt.backoff ? ', backoff ' + rt.backoff.base + '–' + rt.backoff.max : ''),
    h('span', { class: 'muted' }, ' · budget ' + rt.budget_percent + ' % (min ' + rt.budget_min_concurrency + ')' +
    (rt.retrying ? ', ' + rt.retrying + ' retrying' : ''))));
  if (cb) parts.push(h('div', { 'data-test': 'breaker-settings' }, 'breaker after ' + cb.consecutive_failures + ' failures, open ' + cb.open_for));
  if (od) parts.push(h('div', { 'data-test': 'outlier' }, 'ejects after ' + od.consecutive_5xx + ' × 5xx for ' + od.base_ejection_time + '+',
    h('span', { class: 'muted' }, ' (at most ' + od.max_ejection_percent + ' %, panic below ' + od.panic_threshold + ' %)'),
    od.ejected ? [' ', h('span', { class: 'badge bad' }, od.ejected + ' ejected')] : null));
  if (hc) parts.push(h('div', { 'data-test': 'health-check' }, 'checks GET ' + hc.path + ' every ' + hc.interval,
    h('span', { class: 'muted' }, ' (timeout ' + hc.timeout + ', up ' + hc.healthy_threshold + ', down ' + hc.unhealthy_threshold + ')')));
  if (r.panic) parts.push(h('div', {}, h('span', { class: 'badge bad', 'data-test': 'panic' }, 'panic: balancing across all instances')));
  return h('td', { class: 'small', 'data-test': 'resilience' }, parts.length ? parts : '—');
}

function routesTable(routes, proxy) {
  if (!routes.length) return h('p', { class: 'muted' }, 'No routes in force.');
  return tableWrap('Live routes of ' + (proxy || 'the proxy'), h('table', { 'data-test': 'live-table' }, h('thead', {}, h('tr', {}, h('th', {}, 'Route'), h('th', {}, 'Match'), h('th', {}, 'Upstream'), h('th', {}, 'Rate limit'), h('th', {}, 'Resilience'), h('th', {}, 'Instances'))),
    h('tbody', {}, routes.map((r) => {
      const rl = r.rate_limit, up = r.upstream || {};
      return h('tr', { 'data-route': r.name },
        h('td', { class: 'mono' }, r.name),
        h('td', { class: 'mono small' }, describeMatch(r.match || {})),
        upstreamCell(up),
        h('td', { class: 'small', 'data-test': 'rate-limit' }, rl ? [rl.rps + ' rps, burst ' + rl.burst + (rl.key && rl.key !== 'global' ? ' per ' + rl.key : '') + (rl.scope === 'cluster' ? ' shared by the proxies' : ''),
          h('div', {}, h('span', { class: 'badge' + (rl.rejected ? ' warn' : '') }, rl.rejected + ' rejected'))] : '—'),
        resilienceCell(r),
        instancesCell(r));
    }))));
}
