// Instances: one classification of an instance against its service's head
// revision, used by every count, badge and label in the console (the
// services list, the instances tab and its summary), so they cannot
// disagree; and the live instances tab.
import { h, mount, when, validTime, modal, tableWrap } from './dom.js';

// STATES are the instance states in display order, with their badge class
// and the words for a count of them.
export const STATES = [
  { key: 'current', cls: 'ok', label: 'current', title: 'runs the head revision' },
  { key: 'older', cls: 'warn', label: 'older', title: 'runs an older revision' },
  { key: 'rejected', cls: 'bad', label: 'rejected', title: 'refused a revision and runs its last good one' },
  { key: 'starting', cls: 'info', label: 'starting', title: 'has applied no revision yet' },
];

// classify returns the state of instance i when head is the service's
// revision, by the server's rule (the summary's instance counts): rejected
// as the instance reports it; applied at the head (or a newer revision the
// page has not seen yet) is current, applied at an older one older; anything
// else has applied nothing yet and is starting.
export function classify(i, head) {
  if (i.status === 'rejected') return 'rejected';
  if (i.status !== 'applied') return 'starting';
  return i.revision >= head ? 'current' : 'older';
}

// instanceSummary counts instances by state: {total, current, older, rejected, starting}.
export function instanceSummary(insts, head) {
  const s = { total: insts.length, current: 0, older: 0, rejected: 0, starting: 0 };
  for (const i of insts) s[classify(i, head)]++;
  return s;
}

// countBadges renders counts ({total, current, …}) as badges, or "no instances".
export function countBadges(s) {
  if (!s || !s.total) return h('span', { class: 'muted' }, 'no instances');
  return STATES.filter((st) => s[st.key]).map((st) => h('span', { class: 'badge ' + st.cls, title: s[st.key] + ' ' + st.title, 'data-state': st.key }, s[st.key] + ' ' + st.label));
}

// summaryText is the one-line summary of counts at revision head.
export function summaryText(s, head) {
  return s.total + (s.total === 1 ? ' instance' : ' instances') + ' · ' +
    STATES.map((st) => s[st.key] + ' ' + (st.key === 'current' ? 'on revision ' + head : st.label)).join(' · ');
}

function stateBadge(i, head) {
  const st = STATES.find((x) => x.key === classify(i, head));
  return h('span', { class: 'badge ' + st.cls, title: st.title, 'data-test': 'instance-state' }, st.label);
}

// sinceCell shows since when the instance runs its revision (applied_at);
// a server that does not report it shows when the instance started instead,
// said so, never the last heartbeat.
function sinceCell(i) {
  if (validTime(i.applied_at)) return when(i.applied_at);
  if (validTime(i.started)) return h('span', { class: 'muted', title: 'when it started; the server does not report when it applied its revision' }, 'started ', when(i.started));
  return when(null);
}

// instancesTab lists the live instances of a service, following the
// server's instance stream; admins may remove a stale one.
export async function instancesTab(ws) {
  const v = ws.view;
  let head = ws.head.revision || 0;
  let insts = [];
  const body = h('tbody');
  const dot = h('span', { class: 'live-dot', 'aria-hidden': 'true' });
  const state = h('span', { class: 'muted small', 'data-test': 'live-state', role: 'status' }, 'connecting…');
  const summary = h('div', { 'data-test': 'instance-summary' });
  const summaryLine = h('span', { class: 'muted', 'data-test': 'instance-summary-text' });

  let drawn = '';
  function render() {
    // The head is at least the newest revision an instance reports (the
    // instance stream does not carry publishes).
    for (const i of insts) head = Math.max(head, i.revision || 0, i.rejected_revision || 0);
    // The stream starts with the list the page already shows: nothing to redraw.
    const now = JSON.stringify([head, insts]);
    if (now === drawn) return;
    drawn = now;
    const s = instanceSummary(insts, head);
    mount(summary, summaryLine, ' ', countBadges(s));
    summaryLine.textContent = summaryText(s, head);
    const rows = insts.map((i) => {
      const rej = classify(i, head) === 'rejected';
      return h('tr', { 'data-instance': i.id },
        h('td', { class: 'mono' }, i.id),
        h('td', { class: 'mono' }, i.addr || '—'),
        h('td', {}, Object.entries(i.labels || {}).map(([k, val]) => h('span', { class: 'chip' }, k + '=' + val))),
        h('td', { class: 'num' }, i.revision ? String(i.revision) : '—', i.from_cache ? h('span', { class: 'badge', title: 'started from its local cache' }, 'cache') : null),
        h('td', {}, stateBadge(i, head),
          rej ? h('div', { class: 'small reason' }, 'refused revision ' + (i.rejected_revision || '?') + ': ' + (i.error || 'no reason given')) : null),
        h('td', {}, sinceCell(i)),
        v.isAdmin() ? h('td', {}, h('button', { class: 'danger', 'data-test': 'remove-' + i.id, 'aria-label': 'Remove instance ' + i.id, onclick: () => remove(i) }, 'Remove…')) : null);
    });
    if (!insts.length) rows.push(h('tr', {}, h('td', { colspan: 7, class: 'empty-state' }, 'No live instances. Instances register through the SDK.')));
    // mount keeps the focus of a keyboard user on the row's button across
    // live updates.
    mount(body, rows);
  }

  function remove(i) {
    const go = h('button', { class: 'danger primary', 'data-test': 'confirm-remove' }, 'Remove instance');
    const m = modal('Remove instance ' + i.id + '?',
      h('p', {}, 'This deletes the registration of ', h('code', {}, i.id), ' (', i.addr || 'no address', ') from ', ws.name,
        '. A process that still runs registers again at its next heartbeat; use this for instances that are gone.'),
      h('div', { class: 'actions' }, h('button', { onclick: () => m.close() }, 'Cancel'), go));
    go.addEventListener('click', async () => {
      go.disabled = true;
      try {
        await v.api.del(ws.base + '/instances/' + encodeURIComponent(i.id));
        m.close();
        insts = insts.filter((x) => x.id !== i.id);
        render();
        v.flash('Instance ' + i.id + ' removed', 'ok');
      } catch (e) { go.disabled = false; m.close(); v.showError(e, 'Not removed'); }
    });
  }

  mount(ws.body, h('div', { class: 'panel' },
    h('div', { class: 'row' }, summary, h('span', { class: 'spacer' }), dot, state),
    tableWrap('Instances', h('table', { 'data-test': 'instances' }, h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Instance'), h('th', { scope: 'col' }, 'Address'), h('th', { scope: 'col' }, 'Labels'),
      h('th', { scope: 'col', class: 'num' }, 'Runs revision'), h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Since'),
      v.isAdmin() ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')) : null)), body))));
  const first = await v.api.get(ws.base + '/instances');
  insts = Array.isArray(first.instances) ? first.instances : [];
  render();
  if (!v.alive()) return;
  const es = new EventSource('/v1' + ws.base + '/instances/watch');
  v.onCleanup(() => es.close());
  const onData = (ev) => {
    try {
      const d = JSON.parse(ev.data);
      if (d && typeof d.revision === 'number') head = d.revision;
      insts = Array.isArray(d.instances) ? d.instances : [];
      render();
    } catch (_) { /* ignore a malformed event; the next one replaces the list */ }
  };
  es.addEventListener('instances', onData);
  es.addEventListener('message', onData);
  es.addEventListener('open', () => { dot.classList.add('on'); state.textContent = 'live'; });
  es.addEventListener('error', () => { dot.classList.remove('on'); state.textContent = es.readyState === EventSource.CLOSED ? 'live updates unavailable' : 'reconnecting…'; });
}
