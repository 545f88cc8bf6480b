// Grays in the console (docs/gray.md): the grays tab of a service or group
// (the active ones, and the ended ones with their state), the page of one
// gray (#/services/NAME/grays/ID: its changes against main, its selector
// and its cohort's live statuses, the files main changed underneath it,
// widen or narrow, promote, abandon, and its rollout: start one and watch
// its steps and gates), the notice of the active grays above the files,
// and the ended grays in history. Creating a gray is part of the publish
// review (files.js).
import { h, mount, when, modal, tableWrap } from './dom.js';
import * as api from './api.js';
import { diffBlock } from './diff.js';
import { basePath, hrefOf } from './workspace.js';
import { selectorEditor, selectorText, selectorMatches, liveInstances, followInstances, field, percentProblem } from './graysel.js';

// grayHref is the console address of a gray.
export function grayHref(kind, name, id) {
  return hrefOf(kind, name) + '/grays/' + encodeURIComponent(id);
}

// grayBadge shows the state of a gray: active, promoted or abandoned.
function grayBadge(g) {
  const cls = { active: 'info', promoted: 'ok', abandoned: '' }[g.state] || '';
  return h('span', { class: 'badge ' + cls, 'data-test': 'gray-state' }, g.state);
}

// rolloutBadge shows the phase of a rollout.
function rolloutBadge(r) {
  const st = r.state.state;
  const cls = { applying: 'info', baking: 'warn', promoted: 'ok', aborted: 'bad' }[st] || '';
  return h('span', { class: 'badge ' + cls, 'data-test': 'rollout-state' }, st);
}

// rolloutLine is a rollout in a few words: "step 2 of 3 · 25 % · baking".
function rolloutLine(r) {
  return 'step ' + (r.state.step + 1) + ' of ' + r.steps.length + ' · ' + r.state.percent + ' %';
}

// activeGraysNotice lists the active grays of a service or group (the
// summaries its head carries) in box, above its files; empty when none.
export function activeGraysNotice(kind, name, grays, box) {
  mount(box, grays.length ? h('div', { class: 'notice', 'data-test': 'active-grays', role: 'status' },
    grays.length === 1 ? 'A gray is active: ' : grays.length + ' grays are active: ',
    grays.map((s) => h('a', { class: 'chip', href: grayHref(kind, name, s.id), title: 'for ' + selectorText(s.selector) },
      s.id + ' (' + s.files.join(', ') + ')')),
    ' Instances in a gray\'s cohort read its version of these files.') : null);
}

// endedGraysTable lists ended grays with their state, when they ended and
// how: the revision a promote created, or the reason.
export function endedGraysTable(kind, name, ended) {
  return tableWrap('Ended grays', h('table', { 'data-test': 'ended-grays' },
    h('thead', {}, h('tr', {}, ['Gray', 'Files', 'State', 'Ended', 'Result'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, ended.length ? ended.map((g) => h('tr', { 'data-gray': g.id },
      h('th', { scope: 'row' }, h('a', { class: 'mono', href: grayHref(kind, name, g.id) }, g.id), g.name ? ' ' + g.name : ''),
      h('td', {}, (g.files || []).map((f) => h('span', { class: 'chip' }, f))),
      h('td', {}, grayBadge(g), g.rollout && g.rollout.state.state === 'aborted' ? [' ', h('span', { class: 'badge bad' }, 'rollout aborted')] : null),
      h('td', {}, when(g.ended)),
      h('td', {}, g.ended_revision ? h('a', { href: hrefOf(kind, name) + '/revisions/' + g.ended_revision }, 'revision ' + g.ended_revision) : null,
        g.ended_revision && g.end_reason ? ' · ' : null, g.end_reason || ''))) :
      h('tr', {}, h('td', { colspan: 5, class: 'empty-state' }, 'No gray has ended yet.')))));
}

// loadGrays returns the grays of a service or group: {active, ended}.
export async function loadGrays(v, base) {
  const all = api.list(await v.api.get(base + '/grays'), 'grays');
  return { active: all.filter((g) => g.state === 'active'), ended: all.filter((g) => g.state !== 'active') };
}

// watchGrays calls fn whenever the set of active grays of base or one of
// them changes (the watch stream's "grays" event) until the view ends.
function watchGrays(v, base, since, fn) {
  if (!v.alive()) return;
  const es = new EventSource('/v1' + base + '/watch?since=' + since);
  v.onCleanup(() => es.close());
  es.addEventListener('grays', (ev) => {
    let d = {};
    try { d = JSON.parse(ev.data); } catch (_) { return; /* a malformed event: the stream goes on */ }
    fn('grays', d);
  });
  es.addEventListener('revision', (ev) => {
    let d = {};
    try { d = JSON.parse(ev.data); } catch (_) { return; }
    fn('revision', d);
  });
  es.addEventListener('stream-error', (ev) => {
    try {
      const e = JSON.parse(ev.data).error || {};
      if (e.code === 'compacted' || e.code === 'not_found') es.close();
    } catch (_) { /* the stream goes on */ }
  });
}

// graysTab lists the grays of a service or group: the active ones with
// their selector and rollout, live, and the ended ones.
export async function graysTab(ws) {
  const v = ws.view;
  const box = h('div', { 'data-test': 'grays' });
  async function render() {
    const { active, ended } = await loadGrays(v, ws.base);
    if (!v.alive()) return;
    const cols = ['Gray', 'Files', 'Selector', 'Rollout', 'Author', 'Created'];
    mount(box,
      h('div', { class: 'panel' },
        h('p', { class: 'muted' }, 'A gray sends a change to a chosen cohort of instances first; the others stay on main until it is promoted. ',
          ws.editable ? 'Start one from the Files tab: edit, then choose “A gray” in the review.' : ''),
        tableWrap('Active grays', h('table', { 'data-test': 'active-gray-list' },
          h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, active.length ? active.map((g) => h('tr', { 'data-gray': g.id },
            h('th', { scope: 'row' }, h('a', { class: 'mono', href: grayHref(ws.kind, ws.name, g.id) }, g.id), g.name ? ' ' + g.name : ''),
            h('td', {}, (g.files || []).map((f) => h('span', { class: 'chip' }, f))),
            h('td', { class: 'small' }, selectorText(g.selector)),
            h('td', {}, g.rollout ? [rolloutBadge(g.rollout), ' ', rolloutLine(g.rollout)] : h('span', { class: 'muted' }, '—')),
            h('td', {}, g.author || '—'),
            h('td', {}, when(g.created)))) :
            h('tr', {}, h('td', { colspan: cols.length, class: 'empty-state' }, 'No active gray.')))))),
      h('h2', {}, 'Ended grays'),
      h('div', { class: 'panel' }, endedGraysTable(ws.kind, ws.name, ended)));
  }
  mount(ws.body, box);
  await render();
  watchGrays(v, ws.base, ws.head.revision || 0, (what) => { if (what === 'grays') render().catch((e) => v.showError(e)); });
}

// statusBadge shows a cohort member's status about the gray.
function statusBadge(m) {
  const cls = { applied: 'ok', pending: 'info', rejected: 'bad' }[m.status] || '';
  return h('span', { class: 'badge ' + cls, 'data-test': 'cohort-status' }, m.status);
}

// cohortCounts counts a cohort by status: {applied, pending, rejected}.
function cohortCounts(cohort) {
  const c = { applied: 0, pending: 0, rejected: 0 };
  for (const m of cohort) c[m.status] = (c[m.status] || 0) + 1;
  return c;
}

// DURATION is a Go duration ("90s", "1m30s", "1.5h"), as the API takes them.
const DURATION = /^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const UNIT_MS = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1e3, m: 6e4, h: 3.6e6 };

// durationMs reads a Go duration into milliseconds; NaN when it is not one.
export function durationMs(text) {
  const t = String(text).trim();
  if (t === '0') return 0;
  if (!DURATION.test(t)) return NaN;
  let ms = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) ms += parseFloat(m[1]) * UNIT_MS[m[2]];
  return ms;
}

// Limits of a rollout (configsvc.MaxRolloutSteps, MaxRolloutBake, MaxRolloutApplyTimeout).
const MAX_STEPS = 20, MAX_BAKE_MS = 7 * 24 * 3.6e6, MAX_APPLY_MS = 24 * 3.6e6;

// figureText writes a gate figure: a rate as a percent, a count as is.
function figureText(k, x) {
  if (/rate/.test(k)) return (x * 100).toFixed(2) + ' %';
  if (/seconds/.test(k)) return x + ' s';
  return String(x);
}

// snapshotFiles returns the files of base at revision rev ({} for 0).
async function snapshotFiles(v, base, rev) {
  if (!rev) return {};
  const s = await v.api.get(base + '/snapshot?revision=' + rev);
  const files = {};
  for (const [k, x] of Object.entries(s.files || {})) files[k] = api.fileContent(typeof x === 'object' && x !== null ? x.content : x, s.content_encoding);
  return files;
}

// grayPage shows one gray and what can be done with it.
export async function grayPage(v, kind, name, id) {
  const base = basePath(kind, name);
  const gbase = base + '/grays/' + encodeURIComponent(id);
  const editable = v.canEdit(kind, name);
  const isGroup = kind === 'group';
  v.title(id, name);
  let [g, head] = await Promise.all([v.api.get(gbase), v.api.get(base)]);
  const top = h('div', { 'data-test': 'gray-top' });
  const cohortBox = h('div', { class: 'panel', 'data-test': 'cohort-panel' });
  const rolloutBox = h('div', { 'data-test': 'rollout-panel' });
  const compare = h('select', { 'data-test': 'compare-with' });
  const compareRow = h('label', { class: 'small' }, 'Compare with ', compare);
  const changesBox = h('div', { 'data-test': 'gray-changes' });
  let drawn = {};

  // same reports whether part was drawn from data already, and records it.
  const same = (part, data) => {
    const key = JSON.stringify(data);
    if (drawn[part] === key) return true;
    drawn[part] = key;
    return false;
  };

  function renderTop() {
    if (same('top', [g.state, g.version, g.main_changed, g.end_reason, g.ended_revision, g.rollout && g.rollout.state.state, head.revision])) return;
    const active = g.state === 'active';
    const driven = !!(g.rollout && ['applying', 'baking'].includes(g.rollout.state.state));
    mount(top,
      h('div', { class: 'row' },
        h('h1', { 'data-test': 'title' }, 'Gray ', h('span', { class: 'mono' }, g.id), g.name ? ' · ' + g.name : ''),
        grayBadge(g),
        h('span', { class: 'spacer' }),
        h('a', { href: hrefOf(kind, name) + '/grays' }, 'All grays of ' + name)),
      h('p', { class: 'muted' }, 'Of ', h('a', { href: hrefOf(kind, name) }, (isGroup ? 'shared group ' : 'service ') + name),
        ' · by ', g.author || '—', ', ', when(g.created), ' · made on revision ', String(g.base_revision), ' · version ', String(g.version)),
      g.message ? h('p', { class: 'mono', 'data-test': 'gray-message' }, g.message) : null,
      g.state === 'promoted' ? h('div', { class: 'notice ok', 'data-test': 'gray-ended', role: 'status' },
        'Promoted ', when(g.ended), ' as ', h('a', { href: hrefOf(kind, name) + '/revisions/' + g.ended_revision }, 'revision ' + g.ended_revision),
        g.end_reason ? ': ' + g.end_reason : '.') : null,
      g.state === 'abandoned' ? h('div', { class: 'notice', 'data-test': 'gray-ended', role: 'status' },
        'Abandoned ', when(g.ended), g.end_reason ? ': ' + g.end_reason : '', '. Its cohort returned to main.') : null,
      active && (g.main_changed || []).length ? h('div', { class: 'notice', 'data-test': 'main-changed', role: 'status' },
        'Main changed ', g.main_changed.map((f) => h('span', { class: 'chip' }, f)), ' since revision ' + g.base_revision + ', the gray\'s base: ',
        'the cohort still reads the gray\'s version of ', g.main_changed.length === 1 ? 'it' : 'them',
        ', and a promote replaces main\'s. Compare with main now below.') : null,
      active && editable ? h('div', { class: 'row mb', 'data-test': 'gray-actions' },
        driven ? h('span', { class: 'muted', 'data-test': 'rollout-drives' }, 'A rollout drives the selector until it ends.')
          : h('button', { 'data-test': 'widen', onclick: () => widenDialog().catch((e) => v.showError(e)) }, 'Widen or narrow…'),
        driven ? null : h('button', { 'data-test': 'start-rollout', onclick: () => rolloutDialog().catch((e) => v.showError(e)) }, 'Start a rollout…'),
        h('span', { class: 'spacer' }),
        h('button', { class: 'primary', 'data-test': 'promote', onclick: promoteDialog }, 'Promote…'),
        h('button', { class: 'danger', 'data-test': 'abandon', onclick: abandonDialog }, 'Abandon…')) : null);
  }

  function renderCohort() {
    const cohort = g.cohort || [];
    if (same('cohort', [g.state, g.selector, cohort])) return;
    if (g.state !== 'active') {
      mount(cohortBox, h('p', { 'data-test': 'selector' }, 'Selector: ', h('span', { class: 'mono' }, selectorText(g.selector))),
        h('p', { class: 'muted' }, 'The gray has ended: no instance reads it any more.'));
      return;
    }
    const c = cohortCounts(cohort);
    const cols = [isGroup ? 'Service' : null, 'Instance', 'Labels', 'Status', 'Reason'].filter(Boolean);
    mount(cohortBox,
      h('p', { 'data-test': 'selector' }, 'Selector: ', h('span', { class: 'mono' }, selectorText(g.selector))),
      h('p', { 'data-test': 'cohort-summary', role: 'status' }, cohort.length + (cohort.length === 1 ? ' live instance' : ' live instances') + ' in the cohort: ',
        c.applied + ' applied, ' + c.pending + ' pending, ' + c.rejected + ' rejected.'),
      tableWrap('Cohort', h('table', { 'data-test': 'cohort' },
        h('thead', {}, h('tr', {}, cols.map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, cohort.length ? cohort.map((m) => h('tr', { 'data-instance': m.id, 'data-status': m.status },
          isGroup ? h('td', { class: 'mono' }, m.service) : null,
          h('th', { scope: 'row', class: 'mono' }, m.id),
          h('td', {}, Object.entries(m.labels || {}).map(([k, x]) => h('span', { class: 'chip' }, k + '=' + x))),
          h('td', {}, statusBadge(m)),
          h('td', { class: m.status === 'rejected' ? 'reason small' : 'small' }, m.reason || (m.status === 'pending' ? 'has not reported the gray yet' : '')))) :
          h('tr', {}, h('td', { colspan: cols.length, class: 'empty-state' }, 'No live instance matches the selector.'))))));
  }

  function renderRollout() {
    const r = g.rollout;
    if (same('rollout', [r, g.state])) return;
    if (!r) {
      mount(rolloutBox, g.state === 'active' ? h('div', { class: 'panel muted', 'data-test': 'no-rollout' },
        'No rollout. A rollout moves the percent through steps, waits for the cohort to apply each, bakes it while checking the gates, and promotes after the last — or abandons the gray when a gate fails.') : null);
      return;
    }
    const st = r.state;
    const stepState = (i) => {
      if (st.state === 'promoted' || i < st.step) return h('span', { class: 'badge ok' }, 'done');
      if (i > st.step) return h('span', { class: 'badge' }, st.state === 'aborted' ? 'not reached' : 'to come');
      return rolloutBadge(r);
    };
    const f = st.failed;
    mount(rolloutBox, h('div', { class: 'panel' },
      h('div', { class: 'row' }, h('strong', {}, 'Rollout'), rolloutBadge(r),
        h('span', { 'data-test': 'rollout-step' }, rolloutLine(r)), h('span', { class: 'muted' }, 'since ', when(st.since))),
      st.reason ? h('p', { class: 'small', 'data-test': 'rollout-reason' }, st.reason) : null,
      f ? h('div', { class: 'notice error', 'data-test': 'failed-gate', role: 'status' },
        h('strong', {}, 'The ', f.gate, ' gate failed'), (f.instances || []).length ? [' on ', f.instances.map((x) => h('span', { class: 'chip' }, x))] : null,
        Object.keys(f.figures || {}).length ? tableWrap('Figures of the failed gate', h('table', { class: 'small compact', 'data-test': 'gate-figures' },
          h('tbody', {}, Object.keys(f.figures).sort().map((k) => h('tr', {}, h('th', { scope: 'row', class: 'mono' }, k), h('td', { class: 'num' }, figureText(k, f.figures[k]))))))) : null) : null,
      tableWrap('Rollout steps', h('table', { class: 'compact', 'data-test': 'rollout-steps' },
        h('thead', {}, h('tr', {}, ['Step', 'Percent', 'Bake', 'State'].map((c, i) => h('th', { scope: 'col', class: i < 2 ? 'num' : null }, c)))),
        h('tbody', {}, r.steps.map((s, i) => h('tr', { 'data-step': i, class: i === st.step ? 'current' : null },
          h('th', { scope: 'row', class: 'num' }, String(i + 1)), h('td', { class: 'num' }, s.percent + ' %'), h('td', {}, s.bake), h('td', {}, stepState(i))))))),
      h('p', { class: 'muted small', 'data-test': 'rollout-gates' }, 'Gates: at most ' + r.max_rejected + ' rejected · error rate at most ' +
        (r.max_error_rate * 100).toFixed(2) + ' % (and no worse than the other instances by more) · apply timeout ' + r.apply_timeout + '.')));
  }

  // renderChanges diffs the gray's files against main now, or against the
  // gray's base revision; an ended gray against its base, or for a
  // promote against the revision before it.
  async function renderChanges() {
    const against = g.state === 'promoted' ? g.ended_revision - 1 : g.state === 'abandoned' ? g.base_revision : compare.value === 'base' ? g.base_revision : head.revision;
    if (same('changes', [against, g.state])) return;
    const label = 'revision ' + against + (against === head.revision && g.state === 'active' ? ' (main now)' : against === g.base_revision ? ' (the gray\'s base)' : '');
    const main = await snapshotFiles(v, base, against);
    if (!v.alive()) return;
    mount(changesBox, (g.changes || []).map((c) => {
      const after = c.delete ? '' : String(c.content || '');
      return diffBlock({ file: c.file, before: main[c.file] || '', after, labels: [label, 'gray ' + g.id],
        status: c.delete ? 'deleted' : !(c.file in main) ? 'added' : 'modified' }, (fn) => v.onCleanup(fn));
    }));
  }

  function renderCompare() {
    const active = g.state === 'active';
    const want = active && head.revision !== g.base_revision;
    if (same('compare', [want, head.revision])) return;
    const was = compare.value;
    mount(compare,
      h('option', { value: 'main' }, 'main now (revision ' + head.revision + ')'),
      h('option', { value: 'base' }, 'the gray\'s base (revision ' + g.base_revision + ')'));
    compare.value = was === 'base' ? 'base' : 'main';
    compareRow.hidden = !want;
  }
  compare.addEventListener('change', () => renderChanges().catch((e) => v.showError(e, 'Diff')));

  function renderAll() {
    renderTop();
    renderCohort();
    renderRollout();
    renderCompare();
    return renderChanges();
  }

  // refresh reads the gray (and the head when main moved) again; calls
  // that come while one runs make one more run after it, which reads the
  // head too if any of them asked for it.
  let running = null, again = false, headStale = false;
  async function refresh(newHead) {
    headStale = headStale || !!newHead;
    if (running) { again = true; return running; }
    running = (async () => {
      do {
        again = false;
        const readHead = headStale;
        headStale = false;
        const [ng, nh] = await Promise.all([v.api.get(gbase), readHead ? v.api.get(base) : Promise.resolve(head)]);
        if (!v.alive()) return;
        g = ng; head = nh;
        await renderAll();
      } while (again && v.alive());
    })().catch((e) => v.showError(e)).finally(() => { running = null; });
    return running;
  }

  // The dialogs.
  async function widenDialog() {
    const insts = await liveInstances(v, kind, name);
    if (!v.alive()) return;
    const ed = selectorEditor(insts, { grayID: g.id, initial: g.selector, current: g.selector, group: isGroup });
    const go = h('button', { class: 'primary', 'data-test': 'confirm-selector' }, 'Save the selector');
    const m = modal('Widen or narrow gray ' + g.id,
      h('p', {}, 'The cohort is every live instance the selector matches, by the same rule the server and the SDK use. ',
        'Raising the percent only adds instances, lowering it only removes them.'),
      ed.el,
      h('div', { class: 'actions' }, h('button', { onclick: () => m.close() }, 'Cancel'), go));
    m.onClose(followInstances(v, kind, name, (list) => ed.setInstances(list)));
    go.addEventListener('click', async () => {
      const p = ed.problem();
      if (p) { v.flash(p, 'error'); return; }
      go.disabled = true;
      try {
        await v.api.put(gbase + '/selector', { selector: ed.selector() });
        m.close();
        v.flash('Gray ' + g.id + ' now reaches ' + selectorText(ed.selector()), 'ok');
        await refresh();
      } catch (e) { go.disabled = false; v.showError(e, 'Selector not saved'); }
    });
  }

  function promoteDialog() {
    const cohort = g.cohort || [];
    const waiting = cohort.filter((x) => x.status !== 'applied');
    const msg = h('input', { class: 'message', maxlength: 4096, placeholder: 'promote gray ' + g.id + (g.name ? ': ' + g.name : ''), 'data-test': 'promote-message', 'aria-label': 'Message of the revision' });
    const refused = h('div', { 'data-test': 'not-ready', role: 'alert' });
    const force = h('input', { type: 'checkbox', 'data-test': 'force' });
    const forceRow = h('label', { hidden: true }, force, ' Force: promote although these instances have not applied it');
    const go = h('button', { class: 'primary', 'data-test': 'confirm-promote' }, 'Promote to main');
    force.addEventListener('change', () => { go.disabled = !force.checked; });
    const m = modal('Promote gray ' + g.id,
      h('p', {}, 'This publishes revision ' + (head.revision + 1) + ' of ' + name + ': main with the gray\'s changes (',
        (g.files || []).map((f) => h('span', { class: 'chip' }, f)), '), to every instance. The gray ends.'),
      h('p', { 'data-test': 'promote-readiness' }, cohort.length ? (waiting.length
        ? waiting.length + ' of ' + cohort.length + ' cohort instances ' + (waiting.length === 1 ? 'has' : 'have') + ' not applied it (' + waiting.map((x) => x.id + ': ' + x.status).join(', ') + '); the server refuses a promote until they have, unless forced.'
        : 'All ' + cohort.length + ' cohort instances applied it.') : 'No live instance is in the cohort: nothing has tried the gray.'),
      refused,
      h('label', { class: 'stack' }, 'Message', msg),
      forceRow,
      h('div', { class: 'actions' }, h('button', { onclick: () => m.close() }, 'Cancel'), go));
    go.addEventListener('click', async () => {
      go.disabled = true;
      try {
        const res = await v.api.post(gbase + '/promote', { message: msg.value.trim(), force: force.checked });
        m.close();
        v.flash('Gray ' + g.id + ' promoted: revision ' + res.revision + ' of ' + name, 'ok');
        await refresh(true);
      } catch (e) {
        if (e instanceof api.Cancelled) return;
        if (e.code === 'not_ready') {
          const list = Array.isArray(e.details.instances) ? e.details.instances : [];
          mount(refused, h('div', { class: 'notice error' }, e.message,
            h('ul', { class: 'plain mt' }, list.map((x) => h('li', { 'data-instance': x.id }, h('span', { class: 'mono' }, (isGroup ? x.service + '/' : '') + x.id), ' ',
              statusBadge(x), x.reason ? ' ' + x.reason : '')))));
          forceRow.hidden = false;
          go.textContent = 'Promote anyway';
          go.disabled = !force.checked;
          force.focus();
          return;
        }
        go.disabled = false;
        v.showError(e, 'Not promoted');
      }
    });
  }

  function abandonDialog() {
    const typed = h('input', { 'aria-label': 'Type ' + g.id + ' to confirm', autocomplete: 'off', 'data-test': 'confirm-abandon-id', class: 'mono' });
    const go = h('button', { class: 'danger primary', disabled: true, 'data-test': 'confirm-abandon' }, 'Abandon ' + g.id);
    typed.addEventListener('input', () => { go.disabled = typed.value.trim() !== g.id; });
    const n = (g.cohort || []).length;
    const m = modal('Abandon gray ' + g.id + '?',
      h('p', {}, 'Its cohort (' + n + (n === 1 ? ' live instance' : ' live instances') + ') returns to main; the gray\'s changes are kept in its record but reach nobody. It cannot be undone.'),
      h('label', { class: 'stack' }, h('span', {}, 'Type ', h('code', {}, g.id), ' to confirm'), typed),
      h('div', { class: 'actions' }, h('button', { onclick: () => m.close() }, 'Cancel'), go));
    go.addEventListener('click', async () => {
      go.disabled = true;
      try {
        await v.api.del(gbase);
        m.close();
        v.flash('Gray ' + g.id + ' abandoned: its cohort returns to main', 'ok');
        await refresh();
      } catch (e) { go.disabled = typed.value.trim() !== g.id; v.showError(e, 'Not abandoned'); }
    });
  }

  async function rolloutDialog() {
    const insts = g.state === 'active' ? await liveInstances(v, kind, name) : [];
    if (!v.alive()) return;
    const steps = [{ percent: '5', bake: '2m' }, { percent: '25', bake: '5m' }, { percent: '100', bake: '2m' }];
    const body = h('tbody');
    const maxRej = h('input', { id: 'ro-rej', type: 'number', min: 0, step: 1, value: '0', class: 'narrow', 'data-test': 'max-rejected' });
    const maxErr = h('input', { id: 'ro-err', type: 'number', min: 0, max: 100, step: 0.01, value: '2', class: 'narrow', 'data-test': 'max-error-rate', 'aria-describedby': 'ro-err-hint' });
    const timeout = h('input', { id: 'ro-apply', value: '1m', size: 6, autocomplete: 'off', 'data-test': 'apply-timeout', 'aria-describedby': 'ro-apply-hint' });
    const problem = h('div', { class: 'field-error', role: 'alert', 'data-test': 'rollout-problem' });
    const go = h('button', { class: 'primary', 'data-test': 'confirm-rollout' }, 'Start the rollout');
    const add = h('button', { type: 'button', 'data-test': 'add-step' }, 'Add a step');

    // The cohort a step would have: the gray's ids and labels, and the
    // step's percent, over the live instances (exact: the id is known).
    const cohortAt = (p) => insts.filter((i) => selectorMatches({ ...g.selector, percent: +p || 0 }, g.id, i)).length;
    function check() {
      let prev = -1;
      for (const [i, s] of steps.entries()) {
        const pp = percentProblem(s.percent);
        if (String(s.percent).trim() === '' || pp) return 'Step ' + (i + 1) + ': ' + (pp || 'give its percent.');
        if (+s.percent <= prev) return 'Step ' + (i + 1) + ': percents ascend; it must be above ' + prev + ' %.';
        prev = +s.percent;
        const b = durationMs(s.bake);
        if (isNaN(b) || b > MAX_BAKE_MS) return 'Step ' + (i + 1) + ': the bake is a duration such as 90s, 5m or 1h, at most 168h.';
      }
      if (!steps.length) return 'A rollout has at least one step.';
      if (steps.length > MAX_STEPS) return 'At most ' + MAX_STEPS + ' steps.';
      if (!/^\d+$/.test(maxRej.value.trim())) return 'Max rejected is a whole number, 0 or more.';
      const er = percentProblem(maxErr.value);
      if (er || maxErr.value.trim() === '') return 'Max error rate: ' + (er || 'give a percent.');
      const at = durationMs(timeout.value);
      if (timeout.value.trim() !== '' && (isNaN(at) || at > MAX_APPLY_MS)) return 'The apply timeout is a duration such as 1m, at most 24h (empty: 1m).';
      return '';
    }
    function render() {
      mount(body, steps.map((s, i) => {
        const pct = h('input', { type: 'number', min: 0, max: 100, step: 0.01, value: s.percent, class: 'narrow', 'aria-label': 'Percent of step ' + (i + 1), 'data-test': 'step-percent-' + i });
        const bake = h('input', { value: s.bake, size: 6, autocomplete: 'off', 'aria-label': 'Bake of step ' + (i + 1), 'data-test': 'step-bake-' + i });
        const count = h('td', { class: 'num', 'data-test': 'step-cohort-' + i }, String(cohortAt(s.percent)));
        pct.addEventListener('input', () => { s.percent = pct.value; count.textContent = String(cohortAt(s.percent)); problem.textContent = check(); });
        bake.addEventListener('input', () => { s.bake = bake.value; problem.textContent = check(); });
        return h('tr', { 'data-step': i }, h('th', { scope: 'row', class: 'num' }, String(i + 1)), h('td', {}, pct), h('td', {}, bake), count,
          h('td', {}, steps.length > 1 ? h('button', { type: 'button', 'aria-label': 'Remove step ' + (i + 1), 'data-test': 'remove-step-' + i, onclick: () => { steps.splice(i, 1); render(); } }, 'Remove') : null));
      }));
      add.disabled = steps.length >= MAX_STEPS;
      problem.textContent = check();
    }
    add.addEventListener('click', () => {
      const last = steps[steps.length - 1];
      steps.push({ percent: last ? String(Math.min(100, +last.percent + 25)) : '5', bake: last ? last.bake : '2m' });
      render();
      body.querySelector('[data-test=step-percent-' + (steps.length - 1) + ']')?.focus();
    });
    for (const el of [maxRej, maxErr, timeout]) el.addEventListener('input', () => { problem.textContent = check(); });
    const m = modal('Start a rollout of gray ' + g.id,
      h('p', {}, 'The server moves the gray\'s percent through the steps (its ids and label maps stay). Each step waits until every cohort instance applied the gray, then bakes: ',
        'the gates are checked every second, and a failed gate abandons the gray. After the last step the gray is promoted.'),
      tableWrap('Steps', h('table', { class: 'small steps', 'data-test': 'steps-editor' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'num' }, 'Step'), h('th', { scope: 'col' }, 'Percent'), h('th', { scope: 'col' }, 'Bake'),
          h('th', { scope: 'col', class: 'num', title: 'live instances in the cohort at this percent (with the ids and labels of the selector)' }, 'Cohort now'),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))), body)),
      h('div', { class: 'row mt' }, add),
      h('div', { class: 'row mt' },
        field('ro-rej', 'Max rejected', maxRej),
        field('ro-err', 'Max error rate, %', maxErr, '5xx and timeouts through the proxy'),
        field('ro-apply', 'Apply timeout', timeout, 'e.g. 1m')),
      problem,
      h('div', { class: 'actions' }, h('button', { onclick: () => m.close() }, 'Cancel'), go));
    render();
    go.addEventListener('click', async () => {
      const p = check();
      if (p) { problem.textContent = p; v.flash(p, 'error'); return; }
      const req = {
        steps: steps.map((s) => ({ percent: Math.round(+s.percent * 100) / 100, bake: s.bake.trim() })),
        max_rejected: +maxRej.value, max_error_rate: Math.round(+maxErr.value * 100) / 10000,
      };
      if (timeout.value.trim()) req.apply_timeout = timeout.value.trim();
      go.disabled = true;
      try {
        await v.api.post(gbase + '/rollout', req);
        m.close();
        v.flash('Rollout of gray ' + g.id + ' started', 'ok');
        await refresh();
      } catch (e) { go.disabled = false; v.showError(e, 'Rollout not started'); }
    });
  }

  v.mount(top,
    h('h2', {}, 'Cohort'), cohortBox,
    h('h2', {}, 'Rollout'), rolloutBox,
    h('div', { class: 'row' }, h('h2', {}, 'Changes'), h('span', { class: 'spacer' }), compareRow),
    changesBox);
  await renderAll();

  // Live: the gray's changes and main's revisions (the watch stream), and
  // the cohort's reports (the service's instance stream; a group's
  // instances are those of several services: read every 5 s).
  if (!v.alive()) return;
  watchGrays(v, base, head.revision || 0, (what) => refresh(what === 'revision'));
  if (isGroup) {
    const t = setInterval(() => { if (g.state === 'active') refresh(); }, 5000);
    v.onCleanup(() => clearInterval(t));
  } else {
    v.onCleanup(followInstances(v, kind, name, () => { if (g.state === 'active') refresh(); }));
  }
}
