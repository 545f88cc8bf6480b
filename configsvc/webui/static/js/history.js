// History: the revisions of a service or group, the diff of any two, one-click
// rollback (with the server's dry run first: validation against the schemas
// of the revision restored, blast radius, approval), the grays that ended
// (a promote's revision names its gray), and any file at any revision.
import { h, mount, clear, when, modal, tableWrap } from './dom.js';
import * as api from './api.js';
import { parseUnified, diffBlock } from './diff.js';
import { createEditor } from './editor.js';
import { basePath, hrefOf } from './workspace.js';
import { dryRunPanel, dryRunFailed, governControls, submitted } from './changes.js';
import { loadGrays, endedGraysTable, grayHref } from './grays.js';

function revFiles(r) {
  return (r.changes || []).map((c) => c.file + (c.delete ? ' (deleted)' : ''));
}

async function snapshotAt(v, base, rev) {
  const s = await v.api.get(base + '/snapshot' + (rev ? '?revision=' + rev : ''));
  const files = {};
  for (const [k, x] of Object.entries(s.files || {})) files[k] = api.fileContent(typeof x === 'object' && x !== null ? x.content : x, s.content_encoding);
  return files;
}

// fetchDiff returns [{file, status, hunks, texts}] for from → to; texts()
// loads both revisions' content for the side-by-side view.
async function fetchDiff(ws, from, to) {
  const v = ws.view;
  const d = await v.api.get(ws.base + '/diff?from=' + from + '&to=' + to);
  let both = null;
  const texts = (file) => async () => {
    both = both || Promise.all([snapshotAt(v, ws.base, from), snapshotAt(v, ws.base, to)]);
    const [a, b] = await both;
    return { before: a[file] || '', after: b[file] || '' };
  };
  return (d.files || []).map((f) => ({ file: f.file, status: f.status, hunks: parseUnified(f.diff || ''), texts: texts(f.file), labels: ['revision ' + from, 'revision ' + to] }));
}

function renderDiffs(ws, ds) {
  if (!ds.length) return h('div', { class: 'empty-state' }, 'The two revisions have the same content.');
  return ds.map((d) => diffBlock(d, (fn) => ws.view.onCleanup(fn)));
}

// historyTab lists revisions newest first, 50 at a time.
export async function historyTab(ws) {
  const v = ws.view;
  const revs = [];
  const body = h('tbody');
  const out = h('div', { 'data-test': 'diff-out', tabindex: '-1' });
  const more = h('button', { 'data-test': 'older' }, 'Older revisions');
  let fromSel = 0, toSel = 0;
  // promotedBy maps a revision a gray's promote created to the gray.
  const promotedBy = new Map();
  const endedBox = h('div', { 'data-test': 'history-grays' });

  async function load(before) {
    const list = api.list(await v.api.get(ws.base + '/revisions?limit=50' + (before ? '&before=' + before : '')), 'revisions');
    revs.push(...list);
    more.hidden = list.length < 50;
    if (!toSel && revs[0]) toSel = revs[0].revision;
    if (!fromSel && revs[1]) fromSel = revs[1].revision;
    render();
  }
  more.addEventListener('click', () => load(revs[revs.length - 1].revision).catch((e) => v.showError(e)));

  function render() {
    clear(body);
    const headRev = revs.length ? revs[0].revision : 0;
    for (const r of revs) {
      const n = r.revision;
      body.appendChild(h('tr', { 'data-revision': n },
        h('td', {}, h('input', { type: 'radio', name: 'from', 'aria-label': 'compare from ' + n, checked: n === fromSel, 'data-test': 'from-' + n, onchange: () => { fromSel = n; } })),
        h('td', {}, h('input', { type: 'radio', name: 'to', 'aria-label': 'compare to ' + n, checked: n === toSel, 'data-test': 'to-' + n, onchange: () => { toSel = n; } })),
        h('th', { scope: 'row', class: 'num' }, h('a', { href: ws.hrefBase + '/revisions/' + n, title: 'The files at revision ' + n, 'data-test': 'view-' + n }, String(n))),
        h('td', {}, r.author || '—'),
        h('td', {}, when(r.time)),
        h('td', {}, r.message || h('span', { class: 'muted' }, '(no message)'), r.rollback_of ? h('span', { class: 'badge' }, ' rollback of ' + r.rollback_of) : null,
          promotedBy.has(n) ? [' ', h('a', { class: 'badge info', href: grayHref(ws.kind, ws.name, promotedBy.get(n)), 'data-test': 'promoted-gray' }, 'promotes gray ' + promotedBy.get(n))] : null),
        h('td', {}, revFiles(r).map((f) => h('span', { class: 'chip' }, f))),
        h('td', { class: 'actions-cell' },
          n > 1 ? h('button', { 'data-test': 'changes-' + n, 'aria-label': 'Changes of revision ' + n, title: 'Diff with revision ' + (n - 1), onclick: () => { fromSel = n - 1; toSel = n; render(); compare(); } }, 'Changes') : null,
          ws.editable && n !== headRev ? h('button', { 'data-test': 'rollback-' + n, onclick: () => rollback(n, headRev) }, 'Roll back to this…', h('span', { class: 'sr-only' }, ' (revision ' + n + ')')) : null)));
    }
    if (!revs.length) body.appendChild(h('tr', {}, h('td', { colspan: 8, class: 'empty-state' }, 'Nothing published yet.')));
  }

  async function compare() {
    if (!fromSel || !toSel) { v.flash('Pick two revisions: one in “from”, one in “to”.', 'error'); return; }
    try {
      const ds = await fetchDiff(ws, fromSel, toSel);
      mount(out, h('h2', {}, 'Revision ' + fromSel + ' → ' + toSel), renderDiffs(ws, ds));
      out.scrollIntoView({ block: 'start' });
    } catch (e) { v.showError(e, 'Diff'); }
  }

  async function rollback(n, headRev) {
    let all;
    try { all = await fetchDiff(ws, headRev, n); } catch (e) { v.showError(e, 'Diff'); return; }
    const scope = h('select', { 'data-test': 'rollback-scope', 'aria-label': 'What to roll back' },
      h('option', { value: '' }, (ws.kind === 'group' ? 'The whole group' : 'The whole service') + ' (' + all.length + (all.length === 1 ? ' file' : ' files') + ')'),
      all.map((d) => h('option', { value: d.file }, 'Only ' + d.file)));
    const view = h('div', { 'data-test': 'rollback-diff' });
    const dryBox = h('div', { 'data-test': 'rollback-dry-run', 'aria-live': 'polite' });
    const msg = h('input', { class: 'message', value: 'rollback to revision ' + n, 'data-test': 'message', 'aria-label': 'Rollback message' });
    const go = h('button', { class: 'danger primary', 'data-test': 'confirm-rollback' });
    const gov = governControls(v, go, 'Publish rollback');
    const req = () => {
      const b = { to_revision: n, base_revision: headRev, message: msg.value };
      if (scope.value) b.files = [scope.value];
      return b;
    };
    // The dry run of the chosen scope: what the rollback restores is
    // validated against the schemas of revision n, and reaches the same
    // instances as any publish. Only the newest answer is shown.
    let seq = 0;
    async function dryRun() {
      const mine = ++seq;
      gov.update(null, true);
      mount(dryBox, h('div', { class: 'muted', role: 'status' }, 'Running the dry run…'));
      let d;
      try { d = await v.api.post(ws.base + '/rollback?dry_run=true', req()); } catch (e) {
        if (mine !== seq || e instanceof api.Cancelled) return;
        if (e.status === 401) { m.close(); return; }
        mount(dryBox, dryRunFailed(e));
        gov.update(null, !all.length || e.status === 409 || e.status === 412);
        return;
      }
      if (mine !== seq) return;
      mount(dryBox, dryRunPanel(d));
      gov.update(d, !all.length);
    }
    const show = () => { mount(view, renderDiffs(ws, scope.value ? all.filter((d) => d.file === scope.value) : all)); dryRun(); };
    scope.addEventListener('change', show);
    const m = modal('Roll back ' + ws.name + ' to revision ' + n,
      h('p', {}, 'This publishes a new revision whose content equals revision ' + n + '. History is kept. The change it will apply to the live revision ' + headRev + ':'),
      h('div', { class: 'row' }, scope), dryBox, view,
      h('label', { class: 'stack' }, 'Message', msg),
      gov.el,
      h('div', { class: 'actions' }, h('button', { onclick: () => m.close() }, 'Cancel'), go));
    show();
    go.addEventListener('click', async () => {
      let headers;
      try { headers = gov.headers(); } catch (e) { v.flash(e.message, 'error'); return; }
      go.disabled = true;
      try {
        const res = await v.api.request('POST', ws.base + '/rollback', req(), { headers, response: true });
        const out = await res.json().catch(() => ({}));
        m.close();
        if (res.status === 202) { submitted(v, out); return; }
        v.flash('Rolled back: revision ' + ((out && out.revision) || headRev + 1) + ' restores revision ' + n, 'ok');
        revs.length = 0; fromSel = 0; toSel = 0;
        await load();
        if (revs[0]) ws.setRevision(revs[0].revision);
      } catch (e) { go.disabled = false; v.showError(e, 'Rollback refused'); }
    });
  }

  mount(ws.body,
    h('div', { class: 'panel' },
      h('div', { class: 'row' }, h('span', { class: 'muted' }, 'Pick a “from” and a “to” revision to compare; open a revision number to see its files.'), h('span', { class: 'spacer' }),
        h('button', { class: 'primary', 'data-test': 'compare', onclick: compare }, 'Compare')),
      tableWrap('Revisions', h('table', { 'data-test': 'history' }, h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'From'), h('th', { scope: 'col' }, 'To'), h('th', { scope: 'col', class: 'num' }, '#'), h('th', { scope: 'col' }, 'Author'),
        h('th', { scope: 'col' }, 'Time'), h('th', { scope: 'col' }, 'Message'), h('th', { scope: 'col' }, 'Files'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))), body)),
      h('div', { class: 'row mt' }, more)),
    endedBox,
    out);
  await load(0);
  // The grays that ended (sluice-system has none: the proxies read main).
  if (ws.kind === 'service' && ws.name === 'sluice-system') return;
  let ended = [];
  try { ({ ended } = await loadGrays(v, ws.base)); } catch (e) { if (!(e instanceof api.Cancelled)) mount(endedBox, h('p', { class: 'muted' }, 'The ended grays cannot be read: ' + e.message)); return; }
  if (!v.alive()) return;
  for (const g of ended) if (g.ended_revision) promotedBy.set(g.ended_revision, g.id);
  if (promotedBy.size) render();
  mount(endedBox, h('h2', {}, 'Ended grays'), h('div', { class: 'panel' }, endedGraysTable(ws.kind, ws.name, ended)));
}

// revisionPage shows the files of a service or group as they were at
// revision rev, read only, file picked by the URL.
export async function revisionPage(v, kind, name, rev, file) {
  const isRoutes = kind === 'service' && name === 'sluice-system' && v.segs[0] === 'routes';
  const base = basePath(kind, name);
  const home = isRoutes ? '#/routes' : hrefOf(kind, name);
  v.title(name, 'revision ' + rev, file);
  const [files, meta] = await Promise.all([snapshotAt(v, base, rev), v.api.get(base + '/revisions/' + rev).catch(() => null)]);
  const names = Object.keys(files).sort();
  const sel = file && file in files ? file : names[0] || '';
  const list = h('ul', { class: 'files', 'data-test': 'revision-files', 'aria-label': 'Files at revision ' + rev });
  for (const f of names) {
    list.appendChild(h('li', { class: f === sel ? 'active' : '' }, h('a', { class: 'file-btn', href: home + '/revisions/' + rev + '/' + encodeURIComponent(f), 'data-file': f, 'aria-current': f === sel ? 'page' : null }, h('span', { class: 'name' }, f))));
  }
  if (!names.length) list.appendChild(h('li', { class: 'muted' }, 'No files at this revision.'));
  let pane = h('div', { class: 'empty-state' }, file && !(file in files) ? file + ' does not exist at revision ' + rev + '.' : 'No file.');
  if (sel) {
    const ed = createEditor({ value: files[sel], readOnly: true, file: sel, label: sel + ' at revision ' + rev });
    v.onCleanup(() => ed.destroy());
    pane = h('div', {}, h('div', { class: 'row mb' }, h('strong', { class: 'mono' }, sel), h('span', { class: 'badge info' }, 'revision ' + rev), h('span', { class: 'badge' }, 'read only')), ed.el);
  }
  v.mount(
    h('div', { class: 'row' },
      h('h1', { 'data-test': 'title' }, h('a', { href: home }, isRoutes ? 'Routes' : name), ' at revision ' + rev),
      meta ? h('span', { class: 'muted small' }, 'by ', meta.author || '—', ' ', when(meta.time), meta.message ? ' · “' + meta.message + '”' : '') : null,
      h('span', { class: 'spacer' }),
      rev > 1 ? h('a', { href: home + '/revisions/' + (rev - 1) + (sel ? '/' + encodeURIComponent(sel) : ''), 'data-test': 'prev-revision' }, '← revision ' + (rev - 1)) : null,
      h('a', { href: home + '/history' }, 'History')),
    h('div', { class: 'workspace' }, h('div', { class: 'panel' }, list), h('div', { class: 'panel' }, pane)));
}

