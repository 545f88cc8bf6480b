// The audit log (admins): filters written to the URL, so a filtered view can
// be shared and survives a reload. Every filter is asked of the server
// (service, actor, action as a name or glob, outcome, since, and sessions to
// include console sign-ins, which are left out by default); paging goes back
// through the whole log with the cursor of each answer (next), past any
// 1,000 entries. A server older than those parameters ignores them: the page
// then applies action, outcome and sessions itself and pages with before and
// before_sampled.
import { h, clear, when, tableWrap, globMatch } from './dom.js';

const PAGE = 200;

// isSession reports a sign-in or sign-out event.
const isSession = (e) => /^session\./.test(e.action || '');
const refused = (e) => e.outcome === 'refused' || e.allowed === false || e.status >= 400;

// toLocalInput turns an RFC 3339 time into a datetime-local value.
function toLocalInput(iso) {
  const d = new Date(iso);
  if (!iso || isNaN(d)) return '';
  const p = (n) => String(n).padStart(2, '0');
  return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes());
}

// auditPage shows the audit log, newest first.
export async function auditPage(v) {
  v.title('Audit log');
  const q = v.query;
  const svc = h('input', { placeholder: 'service or group', value: q.get('service') || '', 'aria-label': 'Service or group', 'data-test': 'audit-service' });
  const actor = h('input', { placeholder: 'actor', value: q.get('actor') || '', 'aria-label': 'Actor (token name or id)', 'data-test': 'audit-actor' });
  const action = h('input', { placeholder: 'action or glob', value: q.get('action') || '', 'aria-label': 'Action, or a glob of actions (publish, token.*)', list: 'audit-actions', 'data-test': 'audit-action' });
  const actions = h('datalist', { id: 'audit-actions' }, ['publish', 'rollback', 'create', 'delete', 'link', 'unlink', 'pin.create', 'pin.revoke', 'token.create', 'token.revoke', 'instance.register', 'instance.deregister', 'change.*', 'policy.*', 'emergency.review', 'session.open', 'session.close'].map((a) => h('option', { value: a })));
  const outcome = h('select', { 'aria-label': 'Outcome', 'data-test': 'audit-outcome' },
    [['', 'any outcome'], ['allowed', 'allowed'], ['refused', 'refused']].map(([val, l]) => h('option', { value: val, selected: (q.get('outcome') || '') === val }, l)));
  const since = h('input', { type: 'datetime-local', value: toLocalInput(q.get('since')), 'aria-label': 'Since', 'data-test': 'audit-since' });
  const sessions = h('input', { type: 'checkbox', checked: q.get('sessions') === 'true', 'data-test': 'audit-sessions' });
  const body = h('tbody');
  const status = h('span', { class: 'muted', role: 'status', 'data-test': 'audit-status' });
  const older = h('button', { type: 'button', 'data-test': 'audit-older', hidden: true }, 'Older entries');
  let cursor = { next: '', before: 0, before_sampled: 0 };
  let shown = 0, fetched = 0, hidden = 0;

  // keep is the server's filter (access.Query), for a server that ignores it.
  function keep(e) {
    const a = action.value.trim();
    if (!a && !sessions.checked && isSession(e)) return false;
    if (a && !globMatch(a, e.action || '')) return false;
    if (outcome.value === 'refused' && !refused(e)) return false;
    if (outcome.value === 'allowed' && refused(e)) return false;
    return true;
  }

  function row(e) {
    const bad = refused(e);
    return h('tr', { 'data-seq': e.seq },
      h('td', {}, when(e.time)),
      h('td', {}, e.actor || '—'),
      h('td', { class: 'mono' }, e.action || ''),
      h('td', { class: 'mono' }, e.target || e.service || ''),
      h('td', { class: 'num' }, e.revision ? String(e.revision) : ''),
      h('td', {}, h('span', { class: 'badge ' + (bad ? 'bad' : 'ok') }, bad ? 'refused' + (e.status ? ' ' + e.status : '') + (e.sampled ? ' ×' + e.count + ' (sampled)' : '') : 'ok'),
        e.emergency ? [' ', h('span', { class: 'badge warn', 'data-test': 'audit-emergency' }, 'emergency: ' + e.emergency)] : null,
        e.reason ? h('div', { class: 'small muted' }, e.reason) : null),
      h('td', { class: 'mono small' }, e.client || ''),
      h('td', { class: 'mono small' }, e.request_id || ''));
  }

  async function load(more) {
    const p = new URLSearchParams({ limit: String(PAGE) });
    if (svc.value.trim()) p.set('service', svc.value.trim());
    if (actor.value.trim()) p.set('actor', actor.value.trim());
    if (since.value) p.set('since', new Date(since.value).toISOString());
    if (action.value.trim()) p.set('action', action.value.trim());
    if (outcome.value) p.set('outcome', outcome.value);
    if (sessions.checked) p.set('sessions', 'true');
    if (more && cursor.next) {
      p.set('cursor', cursor.next);
    } else if (more) {
      if (cursor.before) p.set('before', cursor.before);
      if (cursor.before_sampled) p.set('before_sampled', cursor.before_sampled);
    } else {
      clear(body);
      shown = fetched = hidden = 0;
      cursor = { next: '', before: 0, before_sampled: 0 };
      v.setQuery({ service: svc.value.trim(), actor: actor.value.trim(), action: action.value.trim(), outcome: outcome.value, since: since.value ? new Date(since.value).toISOString() : '', sessions: sessions.checked ? 'true' : '' });
    }
    // The button says it is busy rather than being disabled, which would
    // throw a keyboard user's focus away.
    older.setAttribute('aria-busy', 'true');
    let res;
    try { res = await v.api.get('/audit?' + p); } catch (e) { v.showError(e, 'Audit'); return; } finally { older.removeAttribute('aria-busy'); }
    const entries = Array.isArray(res.entries) ? res.entries : [];
    // The server's cursor, or (older servers) each sequence goes on from
    // the lowest seq it had on this page.
    cursor.next = typeof res.next === 'string' ? res.next : '';
    for (const e of entries) {
      const k = e.sampled ? 'before_sampled' : 'before';
      if (!cursor[k] || e.seq < cursor[k]) cursor[k] = e.seq;
    }
    fetched += entries.length;
    for (const e of entries) {
      if (keep(e)) { body.appendChild(row(e)); shown++; } else hidden++;
    }
    if (!shown) {
      clear(body);
      body.appendChild(h('tr', {}, h('td', { colspan: 8, class: 'empty-state' }, 'No entries match' + (entries.length === PAGE ? ' in the newest ' + fetched + '.' : '.'))));
    }
    status.textContent = shown + ' shown of ' + fetched + ' loaded' + (hidden ? ' (' + hidden + ' hidden by the filters' + (sessions.checked ? '' : ', sign-ins included') + ')' : '');
    older.hidden = typeof res.next === 'string' ? !res.next : entries.length < PAGE;
  }
  older.addEventListener('click', () => { if (older.getAttribute('aria-busy') !== 'true') load(true); });
  const apply = (e) => { if (e) e.preventDefault(); load(false); };
  for (const el of [outcome, sessions]) el.addEventListener('change', () => apply());

  v.mount(h('h1', {}, 'Audit log'),
    h('form', { class: 'panel row filters', onsubmit: apply, 'aria-label': 'Filters' },
      svc, actor, action, actions, outcome, h('label', {}, 'since', since), h('label', {}, sessions, 'sign-ins and sign-outs'),
      h('button', { class: 'primary', type: 'submit', 'data-test': 'audit-filter' }, 'Filter')),
    h('div', { class: 'panel' }, h('div', { class: 'row mb' }, status),
      tableWrap('Audit entries', h('table', { 'data-test': 'audit' },
        h('thead', {}, h('tr', {}, ['Time', 'Actor', 'Action', 'Target', 'Revision', 'Outcome', 'Client', 'Request'].map((c) => h('th', { scope: 'col', class: c === 'Revision' ? 'num' : null }, c)))), body)),
      h('div', { class: 'row mt' }, older)));
  await load(false);
}
