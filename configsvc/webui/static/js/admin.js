// Routes, pins and the audit log.
import { h, mount, clear, when, modal } from './dom.js';
import * as api from './api.js';
import { workspacePage } from './services.js';

// routesPage edits sluice-system/routes.yaml with the usual workspace, and
// shows the live route table every proxy publishes (GET /v1/routes).
export async function routesPage(app, tab) {
  const live = h('div', { 'data-test': 'live-routes' });
  try {
    await api.get('/services/sluice-system', { quiet401: true });
  } catch (e) {
    if (e.status !== 404) throw e;
    mount(app.main, h('h1', {}, 'Routes'), h('div', { class: 'panel' },
      h('p', {}, 'No routes yet: the proxy reads them from ', h('code', {}, 'sluice-system/routes.yaml'), ', which does not exist.'),
      app.isAdmin() ? h('button', { class: 'primary', 'data-test': 'create-routes', onclick: async () => {
        try { await api.put('/services/sluice-system', {}); await routesPage(app, 'files'); } catch (ex) { app.showError(ex, 'Create sluice-system'); }
      } }, 'Create sluice-system') : h('p', { class: 'muted' }, 'An admin creates it.')));
    return;
  }
  await workspacePage(app, 'service', 'sluice-system', tab, {
    hrefBase: '#/routes', title: 'Routes',
    before: h('div', {}, h('p', { class: 'muted' }, 'The proxy reads its routes from ', h('code', {}, 'sluice-system/routes.yaml'),
      '. A publish is validated against the route schema; history and rollback work as for any service.'), live),
  });
  // load shows the tables; false means the server has no such endpoint.
  async function load() {
    try {
      renderLive(live, await api.get('/routes', { quiet401: true }));
    } catch (e) {
      if (e.status === 404) return false; // nothing live to show
      mount(live, h('div', { class: 'notice' }, 'Live route tables unavailable: ' + e.message));
    }
    return true;
  }
  if (!(await load())) return;
  // Proxies publish every 5 s: follow them while the page is shown.
  const tick = async () => {
    if (live.isConnected && await load()) setTimeout(tick, 5000);
  };
  setTimeout(tick, 5000);
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
      routesTable(p.routes || []),
      p.routes_omitted ? h('p', { class: 'muted small' }, p.routes_omitted + ' more routes not shown (the state is capped at 60 KiB)') : null);
  });
  mount(el, h('h2', {}, 'Live route tables ', h('span', { class: 'badge' }, 'sluice-system revision ' + head)),
    panels.length ? panels : h('p', { class: 'muted', 'data-test': 'no-proxies' }, 'No proxy reports its live table. Proxies (sluice proxy, or sluice server --proxy-addr) publish it every 5 s.'),
    stale.length ? h('div', { class: 'panel', 'data-test': 'stale-proxies' }, h('h3', {}, 'Not reporting'),
      h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Proxy'), h('th', {}, 'State'), h('th', {}, 'Last update'), h('th', { class: 'num' }, 'Revision'), h('th', {}, 'Registered'))),
        h('tbody', {}, stale.map((p) => h('tr', { 'data-stale': p.id },
          h('td', { class: 'mono' }, p.id, p.addr ? h('span', { class: 'muted small' }, ' ' + p.addr) : null),
          h('td', {}, h('span', { class: 'badge ' + (p.reason === 'stale' ? 'bad' : 'warn') }, p.reason === 'stale' ? 'stale' : 'no state published')),
          h('td', {}, when(p.updated)),
          h('td', { class: 'num' }, p.revision ? String(p.revision) : '—'),
          h('td', {}, p.registered ? 'yes' : 'no')))))) : null);
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
    (rt.per_try_timeout ? ', ' + rt.per_try_timeout + ' a try' : '') + (rt.non_idempotent ? ', any method' : ''),
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

function routesTable(routes) {
  if (!routes.length) return h('p', { class: 'muted' }, 'No routes in force.');
  return h('table', { 'data-test': 'live-table' }, h('thead', {}, h('tr', {}, h('th', {}, 'Route'), h('th', {}, 'Match'), h('th', {}, 'Upstream'), h('th', {}, 'Rate limit'), h('th', {}, 'Resilience'), h('th', {}, 'Instances'))),
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
    })));
}

function pinState(p) {
  if (p.state) return [p.state, { active: 'ok', revoked: 'bad' }[p.state] || ''];
  if (p.revoked) return ['revoked', 'bad'];
  if (p.expires && new Date(p.expires) <= new Date()) return ['expired', ''];
  return ['active', 'ok'];
}

// pinsPage creates, lists and revokes debug pins.
export async function pinsPage(app) {
  const services = api.list(await api.get('/services'), 'services').map((x) => (typeof x === 'string' ? x : x.name)).filter((s) => s !== 'sluice-system');
  const listBody = h('tbody');
  const created = h('div', { 'data-test': 'pin-created' });
  const targets = h('div', { 'data-test': 'pin-targets' });

  function targetRow() {
    const svc = h('select', { 'aria-label': 'Service', 'data-test': 'pin-service' }, h('option', { value: '' }, 'service…'), services.filter((s) => app.canEdit('service', s)).map((s) => h('option', { value: s }, s)));
    const inst = h('select', { 'aria-label': 'Instance', 'data-test': 'pin-instance', disabled: true }, h('option', { value: '' }, 'instance…'));
    svc.addEventListener('change', async () => {
      clear(inst).appendChild(h('option', { value: '' }, svc.value ? 'loading…' : 'instance…'));
      inst.disabled = true;
      if (!svc.value) return;
      try {
        const insts = api.list(await api.get(api.path('services', svc.value, 'instances')), 'instances');
        clear(inst).appendChild(h('option', { value: '' }, insts.length ? 'instance…' : 'no live instances'));
        for (const i of insts) inst.appendChild(h('option', { value: i.id }, i.id + (i.addr ? ' (' + i.addr + ')' : '') + ' · rev ' + i.revision));
        inst.disabled = !insts.length;
      } catch (e) { app.showError(e, 'Instances of ' + svc.value); }
    });
    const row = h('div', { class: 'row mb' }, svc, '→', inst,
      h('button', { type: 'button', class: 'link', onclick: () => { if (targets.children.length > 1) row.remove(); } }, 'remove'));
    row.read = () => [svc.value, inst.value];
    return row;
  }

  const ttl = h('select', { 'aria-label': 'Time to live', 'data-test': 'pin-ttl' }, ['15m', '30m', '1h', '4h', '24h'].map((t) => h('option', { value: t, selected: t === '30m' }, t)));
  const note = h('input', { placeholder: 'note, e.g. debugging ticket 123', 'aria-label': 'Note', size: 32, 'data-test': 'pin-note' });
  targets.appendChild(targetRow());
  const form = h('form', { class: 'panel', onsubmit: async (e) => {
    e.preventDefault();
    const t = {};
    for (const row of targets.children) {
      const [s, i] = row.read();
      if (s && i) t[s] = i;
    }
    if (!Object.keys(t).length) { app.flash('Pick at least one service and one of its instances.', 'error'); return; }
    try {
      const res = await api.post('/pins', { targets: t, ttl: ttl.value, note: note.value });
      const token = res.token;
      const pin = res.pin || res;
      const curl = res.curl || "curl -H 'X-Sluice-Pin: " + token + "' http://127.0.0.1:7080/";
      mount(created, h('div', { class: 'panel' },
        h('h2', {}, 'Pin ', h('code', {}, pin.id || ''), ' created'),
        h('p', {}, h('strong', {}, 'Copy the token now: it is shown only once. '), 'Send it as the ', h('code', {}, 'X-Sluice-Pin'), ' header (or the ', h('code', {}, 'sluice_pin'), ' cookie) through the proxy.'),
        h('div', { class: 'token-once', 'data-test': 'pin-token' }, token),
        h('p', { class: 'muted' }, 'Ready to paste (the proxy listens on 127.0.0.1:7080 unless it was started with another --addr; add your path):'),
        h('div', { class: 'token-once', 'data-test': 'pin-curl' }, curl),
        h('div', { class: 'row mt' },
          h('button', { type: 'button', onclick: () => navigator.clipboard && navigator.clipboard.writeText(token).then(() => app.flash('Token copied', 'ok')) }, 'Copy token'),
          h('button', { type: 'button', onclick: () => navigator.clipboard && navigator.clipboard.writeText(curl).then(() => app.flash('curl line copied', 'ok')) }, 'Copy curl line'),
          h('button', { type: 'button', onclick: () => clear(created) }, 'Done, hide the token'))));
      note.value = '';
      await refresh();
    } catch (ex) { app.showError(ex, 'Pin not created'); }
  } },
  h('h2', {}, 'New pin'),
  h('p', { class: 'muted' }, 'Send your own requests to chosen instances while everyone else is load-balanced. You need edit rights on every service you pin.'),
  targets,
  h('div', { class: 'row' },
    h('button', { type: 'button', onclick: () => targets.appendChild(targetRow()) }, '+ another service'),
    h('label', {}, 'expires in', ttl), note,
    h('button', { class: 'primary', type: 'submit', 'data-test': 'pin-create' }, 'Create pin')));

  async function refresh() {
    const pins = api.list(await api.get('/pins'), 'pins');
    clear(listBody);
    for (const p of pins) {
      const [state, cls] = pinState(p);
      listBody.appendChild(h('tr', { 'data-pin': p.id },
        h('td', { class: 'mono' }, p.id),
        h('td', {}, Object.entries(p.targets || {}).map(([s, i]) => h('span', { class: 'chip' }, s + ' → ' + i))),
        h('td', {}, p.note || ''),
        h('td', {}, p.created_by || '—', ' ', when(p.created)),
        h('td', {}, when(p.expires)),
        h('td', {}, h('span', { class: 'badge ' + cls, 'data-test': 'pin-state' }, state), p.revoked_by ? h('span', { class: 'muted small' }, ' by ' + p.revoked_by) : null),
        h('td', {}, state === 'active' && Object.keys(p.targets || {}).every((svc) => app.canEdit('service', svc)) ? h('button', { class: 'danger', 'data-test': 'revoke-' + p.id, onclick: () => revoke(p) }, 'Revoke…') : null)));
    }
    if (!pins.length) listBody.appendChild(h('tr', {}, h('td', { colspan: 7, class: 'empty-state' }, 'No pins.')));
  }

  function revoke(p) {
    const go = h('button', { class: 'danger primary', 'data-test': 'confirm-revoke' }, 'Revoke pin');
    const m = modal('Revoke pin ' + p.id + '?',
      h('p', {}, 'Requests carrying this pin get 403 “pin revoked” from now on. Targets: ', Object.entries(p.targets || {}).map(([s, i]) => h('span', { class: 'chip' }, s + ' → ' + i))),
      h('div', { class: 'actions' }, h('button', { onclick: () => m.close() }, 'Cancel'), go));
    go.addEventListener('click', async () => {
      go.disabled = true;
      try {
        await api.del(api.path('pins', p.id));
        m.close();
        app.flash('Pin ' + p.id + ' revoked', 'ok');
        await refresh();
      } catch (e) { go.disabled = false; app.showError(e, 'Revoke refused'); }
    });
  }

  mount(app.main, h('h1', {}, 'Debug pins'),
    app.canEditAny() ? form : h('p', { class: 'muted' }, 'You can see pins; creating one needs edit rights on its services.'),
    created,
    h('div', { class: 'panel' }, h('h2', {}, 'Pins'), h('table', { 'data-test': 'pins' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Id'), h('th', {}, 'Targets'), h('th', {}, 'Note'), h('th', {}, 'Created'), h('th', {}, 'Expires'), h('th', {}, 'State'), h('th', {}))), listBody)));
  await refresh();
}

// auditPage shows the audit log, filtered by service, actor and time.
export async function auditPage(app) {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const svc = h('input', { placeholder: 'service', value: params.get('service') || '', 'aria-label': 'Service', 'data-test': 'audit-service' });
  const actor = h('input', { placeholder: 'actor', value: params.get('actor') || '', 'aria-label': 'Actor', 'data-test': 'audit-actor' });
  const since = h('input', { type: 'datetime-local', 'aria-label': 'Since', 'data-test': 'audit-since' });
  const limit = h('select', { 'aria-label': 'Limit' }, [50, 200, 1000].map((n) => h('option', { value: n }, n + ' entries')));
  const body = h('tbody');
  async function load() {
    const q = new URLSearchParams();
    if (svc.value.trim()) q.set('service', svc.value.trim());
    if (actor.value.trim()) q.set('actor', actor.value.trim());
    if (since.value) q.set('since', new Date(since.value).toISOString());
    q.set('limit', limit.value);
    let entries;
    try { entries = api.list(await api.get('/audit?' + q), 'entries', 'audit'); } catch (e) { app.showError(e, 'Audit'); return; }
    clear(body);
    for (const e of entries) {
      const refused = e.allowed === false || e.outcome === 'denied' || e.outcome === 'refused' || (e.status >= 400);
      body.appendChild(h('tr', {},
        h('td', {}, when(e.time)),
        h('td', {}, e.actor || '—'),
        h('td', { class: 'mono' }, e.action || e.method || ''),
        h('td', { class: 'mono' }, e.target || e.service || ''),
        h('td', { class: 'num' }, e.revision ? String(e.revision) : ''),
        h('td', {}, h('span', { class: 'badge ' + (refused ? 'bad' : 'ok') }, refused ? 'refused' + (e.status ? ' ' + e.status : '') + (e.sampled ? ' ×' + e.count + ' (sampled)' : '') : 'ok'),
          e.emergency ? h('span', { class: 'badge warn', 'data-test': 'audit-emergency' }, 'emergency: ' + e.emergency) : null,
          e.error || e.reason ? h('div', { class: 'small muted' }, e.error || e.reason) : null),
        h('td', { class: 'mono small' }, e.client || e.client_addr || e.remote || ''),
        h('td', { class: 'mono small' }, e.request_id || '')));
    }
    if (!entries.length) body.appendChild(h('tr', {}, h('td', { colspan: 8, class: 'empty-state' }, 'No entries match.')));
  }
  mount(app.main, h('h1', {}, 'Audit log'),
    h('form', { class: 'panel row', onsubmit: (e) => { e.preventDefault(); load(); } },
      svc, actor, h('label', {}, 'since', since), limit, h('button', { class: 'primary', type: 'submit', 'data-test': 'audit-filter' }, 'Filter')),
    h('div', { class: 'panel' }, h('table', { 'data-test': 'audit' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Time'), h('th', {}, 'Actor'), h('th', {}, 'Action'), h('th', {}, 'Target'), h('th', { class: 'num' }, 'Revision'), h('th', {}, 'Outcome'), h('th', {}, 'Client'), h('th', {}, 'Request'))), body)));
  await load();
}
