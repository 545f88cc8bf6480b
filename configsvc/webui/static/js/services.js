// Services and shared groups: the list, and the workspace of one service or
// group (files + editor + publish, history + diff + rollback, instances, links).
import { h, mount, clear, when, modal } from './dom.js';
import * as api from './api.js';
import { createEditor } from './editor.js';
import { check, formatOf } from './validate.js';
import { renderTextDiff, renderFileDiff, parseUnified } from './diff.js';
import { dryRunPanel, governControls, submitted, changeHref } from './changes.js';

const SYSTEM = 'sluice-system';

function basePath(kind, name) {
  return kind === 'group' ? api.path('shared', name) : api.path('services', name);
}

function nameOf(x) { return typeof x === 'string' ? x : (x && (x.name || x.service || x.group)) || ''; }

// revOf reads a revision number from the shapes the API uses.
function revOf(x) {
  if (!x) return 0;
  if (typeof x.revision === 'number') return x.revision;
  if (x.head && typeof x.head.revision === 'number') return x.head.revision;
  return 0;
}

// instanceSummary counts instances on the current revision, an older one, and rejected.
export function instanceSummary(insts, current) {
  const s = { total: insts.length, current: 0, older: 0, rejected: 0 };
  for (const i of insts) {
    if (i.status === 'rejected') s.rejected++;
    else if (i.revision === current) s.current++;
    else s.older++;
  }
  return s;
}

async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) { const i = next++; out[i] = await fn(items[i], i); }
  }
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

async function loadHead(kind, name) {
  const v = await api.get(basePath(kind, name));
  return v && v.head ? { ...v.head, ...v, head: undefined } : v;
}

// ---------------------------------------------------------------- lists

// servicesPage lists services with search, revision, last change and instance states.
export async function servicesPage(app) {
  const raw = api.list(await api.get('/services'), 'services');
  const rows = await pool(raw, 6, async (item) => {
    const name = nameOf(item);
    let head = typeof item === 'object' && typeof item.revision === 'number' ? item : null;
    let insts = typeof item === 'object' && Array.isArray(item.instances) ? item.instances : null;
    const summary = typeof item === 'object' && item.instances && !Array.isArray(item.instances) ? item.instances : null;
    try { if (!head) head = await loadHead('service', name); } catch (_) { head = null; }
    try { if (!insts && !summary) insts = api.list(await api.get(api.path('services', name, 'instances')), 'instances'); } catch (_) { insts = []; }
    const rev = revOf(head);
    return { name, head, rev, sum: summary || instanceSummary(insts || [], rev) };
  });
  const q = h('input', { type: 'search', placeholder: 'Search services', 'aria-label': 'Search services', 'data-test': 'search' });
  const body = h('tbody');
  function render() {
    const f = q.value.trim().toLowerCase();
    clear(body);
    const shown = rows.filter((r) => r.name.toLowerCase().includes(f));
    for (const r of shown) {
      const s = r.sum;
      body.appendChild(h('tr', { 'data-service': r.name },
        h('td', {}, h('a', { href: '#/services/' + encodeURIComponent(r.name) }, r.name), r.name === SYSTEM ? h('span', { class: 'badge' }, ' system') : null),
        h('td', { class: 'num' }, r.head ? String(r.rev) : '—'),
        h('td', {}, r.head && r.head.author ? r.head.author : h('span', { class: 'muted' }, '—'), ' ', r.head ? when(r.head.updated || r.head.time) : null),
        h('td', { class: 'num' }, String(s.total || 0)),
        h('td', {},
          s.current ? h('span', { class: 'badge ok', title: 'on the current revision' }, s.current + ' current') : null, ' ',
          s.older ? h('span', { class: 'badge warn', title: 'on an older revision' }, s.older + ' older') : null, ' ',
          s.rejected ? h('span', { class: 'badge bad', title: 'rejected the newest revision' }, s.rejected + ' rejected') : null,
          !s.total ? h('span', { class: 'muted' }, 'no instances') : null)));
    }
    if (!shown.length) body.appendChild(h('tr', {}, h('td', { colspan: 5, class: 'empty-state' }, rows.length ? 'No service matches.' : 'No services yet.')));
  }
  q.addEventListener('input', render);
  render();
  mount(app.main,
    h('div', { class: 'row' }, h('h1', {}, 'Services'), h('span', { class: 'spacer' }), q,
      app.canEditAny() ? createForm(app, 'service') : null),
    h('div', { class: 'panel' }, h('table', { 'data-test': 'services' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Service'), h('th', { class: 'num' }, 'Revision'), h('th', {}, 'Last change'),
        h('th', { class: 'num' }, 'Instances'), h('th', {}, 'Instance revisions'))), body)));
  q.focus();
}

function createForm(app, kind) {
  const input = h('input', { placeholder: kind === 'group' ? 'new-group' : 'new-service', pattern: '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?', title: 'a-z, 0-9 and -, up to 63 characters', 'data-test': 'new-name', required: true });
  return h('form', { class: 'row', onsubmit: async (e) => {
    e.preventDefault();
    const name = input.value.trim();
    try {
      await api.put(basePath(kind, name), {});
      app.flash((kind === 'group' ? 'Shared group ' : 'Service ') + name + ' created', 'ok');
      location.hash = (kind === 'group' ? '#/shared/' : '#/services/') + encodeURIComponent(name);
    } catch (ex) { app.showError(ex, 'Create ' + name); }
  } }, input, h('button', { class: 'primary', type: 'submit', 'data-test': 'create' }, kind === 'group' ? 'Create group' : 'Create service'));
}

// groupsPage lists shared groups and the services using each.
export async function groupsPage(app) {
  const groups = api.list(await api.get('/shared'), 'groups', 'shared').map(nameOf);
  const rows = await pool(groups, 6, async (g) => {
    let head = null, users = [];
    try { head = await loadHead('group', g); } catch (_) { /* shown as unknown */ }
    try { users = api.list(await api.get(api.path('shared', g, 'users')), 'users', 'services').map(nameOf); } catch (_) { /* shown as none */ }
    return { g, head, users };
  });
  mount(app.main,
    h('div', { class: 'row' }, h('h1', {}, 'Shared groups'), h('span', { class: 'spacer' }), app.canEditAny() ? createForm(app, 'group') : null),
    h('div', { class: 'panel' }, h('table', { 'data-test': 'groups' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Group'), h('th', { class: 'num' }, 'Revision'), h('th', {}, 'Last change'), h('th', {}, 'Used by'))),
      h('tbody', {}, rows.length ? rows.map((r) => h('tr', {},
        h('td', {}, h('a', { href: '#/shared/' + encodeURIComponent(r.g) }, r.g)),
        h('td', { class: 'num' }, r.head ? String(revOf(r.head)) : '—'),
        h('td', {}, r.head && r.head.author ? r.head.author + ' ' : '', r.head ? when(r.head.updated) : null),
        h('td', {}, r.users.length ? r.users.map((u) => h('a', { class: 'chip', href: '#/services/' + encodeURIComponent(u) }, u)) : h('span', { class: 'muted' }, 'no services')))) :
        h('tr', {}, h('td', { colspan: 4, class: 'empty-state' }, 'No shared groups yet.'))))));
}

// ---------------------------------------------------------------- workspace

// workspacePage shows one service or group. opts.hrefBase overrides the tab
// links (the routes page reuses this for sluice-system).
export async function workspacePage(app, kind, name, tab, opts = {}) {
  const hrefBase = opts.hrefBase || (kind === 'group' ? '#/shared/' : '#/services/') + encodeURIComponent(name);
  const head = await loadHead(kind, name);
  const tabs = [['files', 'Files'], ['history', 'History']];
  if (kind === 'service') tabs.push(['instances', 'Instances'], ['links', 'Shared groups']);
  else tabs.push(['users', 'Used by']);
  const body = h('div', { 'data-test': 'tab-' + tab });
  const editable = app.canEdit(kind, name);
  mount(app.main,
    h('div', { class: 'row' },
      h('h1', { 'data-test': 'title' }, opts.title || name),
      h('span', { class: 'badge info', 'data-test': 'head-revision' }, 'revision ' + revOf(head)),
      kind === 'group' ? h('span', { class: 'badge' }, 'shared group') : null,
      editable ? null : h('span', { class: 'badge', 'data-test': 'read-only' }, 'read only'),
      h('span', { class: 'spacer' }),
      head.author ? h('span', { class: 'muted small' }, 'last change by ', head.author, ' ', when(head.updated)) : null),
    opts.before || null,
    h('div', { class: 'tabs' }, tabs.map(([k, label]) => h('a', { href: hrefBase + '/' + k, class: k === tab ? 'active' : '' }, label))),
    body);
  const ws = { app, kind, name, head, body, editable, base: basePath(kind, name) };
  switch (tab) {
    case 'files': return filesTab(ws);
    case 'history': return historyTab(ws);
    case 'instances': return instancesTab(ws);
    case 'links': return linksTab(ws);
    case 'users': return usersTab(ws);
  }
  mount(body, h('div', { class: 'empty-state' }, 'No such tab.'));
}

// setHeadRevision updates the revision badge in the page header.
function setHeadRevision(n) {
  const rb = document.querySelector('[data-test=head-revision]');
  if (rb) rb.textContent = 'revision ' + n;
}

async function loadSnapshot(ws) {
  const s = await api.get(ws.base + '/snapshot');
  const files = {};
  for (const [k, v] of Object.entries(s.files || {})) files[k] = api.fileContent(typeof v === 'object' && v !== null ? v.content : v, s.content_encoding);
  return { revision: s.revision || 0, files };
}

async function filesTab(ws) {
  const { app } = ws;
  const snap = await loadSnapshot(ws);
  // busy is set while our own publish is in flight, so its watch event is not
  // mistaken for someone else's.
  const st = { live: snap.files, base: snap.revision, draft: {}, selected: null, clientErr: {}, serverErr: {}, busy: false };
  const list = h('ul', { class: 'files', 'data-test': 'files' });
  const pane = h('div', { class: 'pane' });
  const bar = h('div', { class: 'row mt' });
  const notices = h('div', { 'data-test': 'notices' });
  const pending = h('div', { 'data-test': 'pending' }); // open change requests

  const names = () => [...new Set([...Object.keys(st.live), ...Object.keys(st.draft)])].sort();
  const current = (f) => (f in st.draft ? st.draft[f] : st.live[f]);
  const changed = () => names().filter((f) => f in st.draft && st.draft[f] !== (f in st.live ? st.live[f] : undefined) && !(st.draft[f] === null && !(f in st.live)));
  const errorCount = () => changed().reduce((n, f) => n + (st.draft[f] === null ? 0 : (st.clientErr[f] || []).length), 0);
  app.guard.dirty = () => changed().length > 0;

  let editor = null;
  function select(f) {
    st.selected = f;
    renderList();
    renderPane();
  }
  function renderList() {
    clear(list);
    for (const f of names()) {
      const isNew = !(f in st.live), del = st.draft[f] === null, mod = changed().includes(f);
      const errs = (st.clientErr[f] || []).length + (st.serverErr[f] || []).length;
      list.appendChild(h('li', { class: (f === st.selected ? 'active' : '') + (del ? ' deleted' : ''), 'data-file': f, onclick: () => select(f) },
        h('span', { class: 'name' }, f),
        errs ? h('span', { class: 'dot badge bad' }, '!') : mod ? h('span', { class: 'dot badge warn', title: 'unpublished change' }, isNew ? 'new' : del ? 'deleted' : 'edited') : null));
    }
    if (!names().length) list.appendChild(h('li', { class: 'muted' }, 'No files yet.'));
  }
  function validate(f) {
    const v = current(f);
    st.clientErr[f] = v === null || v === undefined ? [] : check(f, v);
  }
  function renderPane() {
    const f = st.selected;
    if (!f) {
      mount(pane, h('div', { class: 'empty-state' }, ws.editable ? 'Pick a file, or add one.' : 'Pick a file.'));
      return;
    }
    const del = st.draft[f] === null;
    editor = createEditor({
      value: current(f) || '', readOnly: !ws.editable || del, label: f,
      onInput: (v) => {
        st.draft[f] = v;
        delete st.serverErr[f];
        validate(f);
        showErrors();
        renderList();
        renderBar();
      },
    });
    function showErrors() {
      const errs = [...(st.serverErr[f] || []).map((e) => ({ ...e, source: 'server' })), ...(st.clientErr[f] || [])];
      editor.setErrors(errs);
    }
    const tools = h('div', { class: 'row mb' },
      h('strong', { class: 'mono' }, f), h('span', { class: 'badge' }, formatOf(f)),
      del ? h('span', { class: 'badge bad' }, 'will be deleted') : null,
      h('span', { class: 'spacer' }),
      ws.editable && f in st.draft ? h('button', { 'data-test': 'revert-file', onclick: () => { delete st.draft[f]; delete st.serverErr[f]; validate(f); select(f in st.live ? f : names()[0] || null); renderBar(); } }, 'Revert file') : null,
      ws.editable && !del && f in st.live ? h('button', { class: 'danger', 'data-test': 'delete-file', onclick: () => { st.draft[f] = null; validate(f); select(f); renderBar(); } }, 'Delete file') : null);
    mount(pane, tools, editor.el);
    showErrors();
  }
  function renderBar() {
    const n = changed().length, errs = errorCount();
    mount(bar,
      h('span', { class: 'muted', 'data-test': 'change-count' }, n ? n + ' unpublished ' + (n === 1 ? 'change' : 'changes') : 'No unpublished changes'),
      errs ? h('span', { class: 'badge bad', 'data-test': 'error-count' }, errs + (errs === 1 ? ' error' : ' errors') + ' to fix before publishing') : null,
      h('span', { class: 'spacer' }),
      n ? h('button', { onclick: () => { if (confirm('Discard all unpublished changes?')) { st.draft = {}; st.serverErr = {}; st.clientErr = {}; select(st.selected in st.live ? st.selected : names()[0] || null); renderBar(); } } }, 'Discard all') : null,
      h('button', { class: 'primary', disabled: !n || errs > 0, 'data-test': 'review', title: 'Ctrl+S', onclick: review }, 'Review and publish…'));
  }

  function addFileForm() {
    const input = h('input', { placeholder: 'new-file.json', 'data-test': 'new-file', 'aria-label': 'New file name', size: 14 });
    return h('form', { class: 'row mt', onsubmit: (e) => {
      e.preventDefault();
      const f = input.value.trim();
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(f)) { app.flash('A file name is 1-128 characters of A-Z, a-z, 0-9, ".", "_" and "-", starting with a letter or digit.', 'error'); return; }
      if (f in st.live || f in st.draft) { if (st.draft[f] === null) delete st.draft[f]; select(f); return; }
      st.draft[f] = '';
      input.value = '';
      validate(f);
      select(f);
      renderBar();
      if (editor) editor.textarea.focus();
    } }, input, h('button', { type: 'submit', 'data-test': 'add-file' }, 'Add'));
  }

  function diffsFor(files, against) {
    return files.map((f) => {
      const before = f in against ? against[f] : '';
      const after = st.draft[f] === null ? '' : st.draft[f];
      const status = st.draft[f] === null ? 'deleted' : !(f in against) ? 'added' : 'modified';
      return renderTextDiff(f, before, after, status);
    });
  }

  async function review() {
    const files = changed();
    const changes = files.map((f) => (st.draft[f] === null ? { file: f, delete: true } : { file: f, content: st.draft[f] }));
    // The dry run: validation (formats and schemas), the diff, who it would
    // hit, and whether an approval policy makes the publish a change request.
    let dry = null, dryErr = null;
    try {
      dry = await api.post(ws.base + '/revisions?dry_run=true', { base_revision: st.base, changes });
    } catch (e) {
      if (e.status === 401) return; // the sign-in dialog is open; review again once signed in
      if (e.status === 409) { await conflict('Someone published while you were editing; nothing was overwritten.'); return; }
      dryErr = e;
    }
    if (dry && !dry.valid) markViolations(dry.violations || [], false);
    const msg = h('input', { class: 'message', placeholder: 'What changed and why', maxlength: 4096, 'data-test': 'message', 'aria-label': 'Publish message' });
    const go = h('button', { class: 'primary', 'data-test': 'confirm-publish' });
    const gov = governControls(app, go, 'Publish revision ' + (st.base + 1));
    gov.update(dry);
    const m = modal('Publish ' + files.length + (files.length === 1 ? ' file' : ' files') + ' to ' + ws.name,
      dry ? dryRunPanel(dry) : h('div', { class: 'notice error', 'data-test': 'dry-run-failed' }, 'The dry run failed (', dryErr.message, '): validation and blast radius are unknown.'),
      h('p', { class: 'muted' }, 'Diff against live revision ', String(st.base), ':'),
      h('div', { 'data-test': 'publish-diff' }, diffsFor(files, st.live)),
      h('label', { class: 'stack' }, 'Message', msg),
      gov.el,
      h('div', { class: 'actions' }, h('button', { onclick: () => m.close() }, 'Cancel'), go));
    msg.focus();
    go.addEventListener('click', async () => {
      let headers;
      try { headers = gov.headers({ 'If-Match': '"' + st.base + '"' }); } catch (e) { app.flash(e.message, 'error'); return; }
      go.disabled = true;
      st.busy = true;
      try {
        const res = await api.request('POST', ws.base + '/revisions', { base_revision: st.base, message: msg.value, changes }, { headers, response: true });
        const v = await res.json();
        m.close();
        if (res.status === 202) {
          st.draft = {};
          app.guard.dirty = null;
          submitted(app, v);
          return;
        }
        const rev = revOf(v) || st.base + 1;
        app.flash('Published revision ' + rev, 'ok');
        await reload(rev);
      } catch (e) {
        go.disabled = false;
        if (e.status === 422 && e.details && e.details.file) {
          m.close();
          markViolations(Array.isArray(e.details.violations) ? e.details.violations
            : [{ file: e.details.file, line: e.details.line, column: e.details.column, message: e.message }], true);
          app.showError(e, 'Not published');
        } else if (e.status === 409 || e.status === 412) {
          m.close();
          await conflict('Someone published while you were editing; nothing was overwritten.');
        } else {
          app.showError(e, 'Not published');
        }
      } finally {
        st.busy = false;
      }
    });
  }

  // markViolations marks violations ({file, line, column, pointer,
  // keyword, message}: a schema refusal's list, or one parse error) at
  // their lines in the editor, and shows the first file; focus moves the
  // cursor there.
  function markViolations(list, focus) {
    if (!list.length) return;
    for (const f of new Set(list.map((v) => v.file))) st.serverErr[f] = [];
    for (const v of list) {
      if (!v.file) continue;
      // A parse error's message repeats "file:line:column: "; the editor shows the position itself.
      let text = v.message || '';
      if (text.startsWith(v.file + ':')) text = text.slice(v.file.length).replace(/^(:\d+){0,2}: /, '');
      st.serverErr[v.file].push({ line: +v.line || 0, column: +v.column || 0, message: (v.pointer ? v.pointer + ': ' : '') + text, keyword: v.keyword });
    }
    const first = list.find((v) => v.file);
    if (!first) return;
    select(first.file);
    if (focus && editor && first.line) editor.focusLine(+first.line, +first.column || 1);
  }
  async function reload(expect) {
    const s = await loadSnapshot(ws);
    st.live = s.files;
    st.base = s.revision;
    for (const f of Object.keys(st.draft)) if (st.draft[f] === (f in st.live ? st.live[f] : null)) delete st.draft[f];
    st.serverErr = {};
    for (const f of names()) validate(f);
    setHeadRevision(st.base);
    if (!(st.selected in st.live) && !(st.selected in st.draft)) st.selected = names()[0] || null;
    clear(notices);
    renderList();
    renderPane();
    renderBar();
    return expect;
  }

  // conflict shows what the newer live revision changed against the user's
  // draft, and lets them keep their edits on top of it or drop them.
  async function conflict(why) {
    const s = await loadSnapshot(ws);
    const files = changed();
    const m = modal('Revision ' + s.revision + ' is live now',
      h('p', {}, why, ' Below: the new live content compared with your edits (', h('span', { class: 'badge bad' }, '− live'), ' ', h('span', { class: 'badge ok' }, '+ yours'), ').'),
      h('div', { 'data-test': 'conflict-diff' }, diffsFor(files, s.files)),
      h('div', { class: 'actions' },
        h('button', { onclick: async () => { m.close(); st.draft = {}; await reload(); } }, 'Discard my edits'),
        h('button', { class: 'primary', 'data-test': 'rebase', onclick: async () => { m.close(); await reload(); app.flash('Your edits now apply on top of revision ' + st.base + '. Review before publishing.', 'info'); } }, 'Keep my edits on top of revision ' + s.revision)));
    return m;
  }

  // Live updates: a new revision reloads a clean editor, and warns a dirty one.
  const es = new EventSource('/v1' + ws.base + '/watch?changes=true&since=' + st.base);
  es.addEventListener('change', (ev) => {
    try {
      const n = JSON.parse(ev.data);
      app.flash('Change request ' + n.id + ' ' + n.event + ' by ' + (n.actor || 'someone') + '.', 'info');
      clear(pending);
      showOpenChanges(ws, pending);
    } catch (_) { /* a malformed event: the stream goes on */ }
  });
  app.onCleanup(() => es.close());
  es.addEventListener('revision', async (ev) => {
    let r = {};
    try { r = JSON.parse(ev.data); } catch (_) { return; }
    const n = revOf(r) || +ev.lastEventId;
    if (!n || n <= st.base || st.busy) return;
    if (!changed().length) {
      await reload();
      app.flash('Revision ' + n + ' was published by ' + (r.author || 'someone') + ' and is shown now.', 'info');
      return;
    }
    mount(notices, h('div', { class: 'notice', 'data-test': 'remote-change' },
      'Revision ', String(n), ' was published by ', r.author || 'someone', r.message ? ' (“' + r.message + '”)' : '', ' while you were editing. ',
      h('button', { class: 'primary', onclick: () => conflict('Your edits are kept until you choose.') }, 'Show the diff')));
  });
  // The stream's own errors arrive as 'stream-error' ('error' is the
  // browser's event for connection trouble, after which it reconnects by
  // itself with Last-Event-ID, resuming after the last revision it got).
  es.addEventListener('stream-error', (ev) => {
    try {
      const e = JSON.parse(ev.data).error || {};
      if (e.code === 'compacted' || e.code === 'not_found') es.close();
    } catch (_) { /* a malformed event: the stream goes on */ }
  });

  // Ctrl+S / Cmd+S opens the review, like saving in an editor.
  const onKey = (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 's') {
      e.preventDefault();
      const b = document.querySelector('[data-test=review]');
      if (b && !b.disabled && !document.querySelector('.modal')) b.click();
    }
  };
  if (ws.editable) {
    document.addEventListener('keydown', onKey);
    app.onCleanup(() => document.removeEventListener('keydown', onKey));
  }

  const left = h('div', { class: 'panel' }, list, ws.editable ? addFileForm() : null);
  mount(ws.body, pending, notices, h('div', { class: 'workspace' }, left, h('div', {}, h('div', { class: 'panel' }, pane, ws.editable ? bar : null))));
  for (const f of names()) validate(f);
  st.selected = names()[0] || null;
  renderList();
  renderPane();
  renderBar();
  await showOpenChanges(ws, pending);
}

// showOpenChanges lists the open change requests of the service or group
// above its files.
async function showOpenChanges(ws, box) {
  let crs = [];
  try { crs = api.list(await api.get(ws.base + '/changes'), 'changes'); } catch (_) { return; /* the files are what matters here */ }
  if (!crs.length) return;
  mount(box, h('div', { class: 'notice', 'data-test': 'open-changes' },
    crs.length === 1 ? 'A change request waits for approval: ' : crs.length + ' change requests wait for approval: ',
    crs.map((c) => h('a', { class: 'chip', href: changeHref(c.kind, c.name, c.id), title: (c.message || '').split('\n')[0] },
      c.id + ' by ' + c.author + ' (' + c.approvals + '/' + c.policy.approvals + ')'))));
}

// ---------------------------------------------------------------- history

function revFiles(r) {
  if (Array.isArray(r.files)) return r.files.map(nameOf);
  return (r.changes || []).map((c) => c.file + (c.delete ? ' (deleted)' : ''));
}

// fetchDiff returns [{file, status, hunks}] for from → to.
async function fetchDiff(ws, from, to, only) {
  const v = await api.get(ws.base + '/diff?from=' + from + '&to=' + to);
  let files = Array.isArray(v) ? v : v.files || v.changes || [];
  if (!Array.isArray(files)) files = Object.entries(files).map(([file, x]) => ({ file, ...x }));
  const out = files.map((f) => ({ file: f.file || f.name, status: f.status, hunks: parseUnified(f.diff || f.unified || f.patch || '') }));
  return only ? out.filter((f) => f.file === only) : out;
}

function renderDiffs(ds) {
  if (!ds.length) return h('div', { class: 'empty-state' }, 'The two revisions have the same content.');
  return ds.map((d) => renderFileDiff(d.file, d.hunks, d.status));
}

async function historyTab(ws) {
  const { app } = ws;
  const revs = [];
  const body = h('tbody');
  const out = h('div', { 'data-test': 'diff-out' });
  const more = h('button', { 'data-test': 'older' }, 'Older revisions');
  let fromSel = 0, toSel = 0;

  async function load(before) {
    const v = api.list(await api.get(ws.base + '/revisions?limit=50' + (before ? '&before=' + before : '')), 'revisions');
    revs.push(...v);
    more.hidden = v.length < 50;
    if (!toSel && revs[0]) toSel = revOf(revs[0]);
    if (!fromSel && revs[1]) fromSel = revOf(revs[1]);
    render();
  }
  more.addEventListener('click', () => load(revOf(revs[revs.length - 1])).catch((e) => app.showError(e)));

  function render() {
    clear(body);
    const headRev = revs.length ? revOf(revs[0]) : 0;
    for (const r of revs) {
      const n = revOf(r);
      body.appendChild(h('tr', { 'data-revision': n },
        h('td', {}, h('input', { type: 'radio', name: 'from', 'aria-label': 'compare from ' + n, checked: n === fromSel, 'data-test': 'from-' + n, onchange: () => { fromSel = n; } })),
        h('td', {}, h('input', { type: 'radio', name: 'to', 'aria-label': 'compare to ' + n, checked: n === toSel, 'data-test': 'to-' + n, onchange: () => { toSel = n; } })),
        h('td', { class: 'num' }, h('strong', {}, String(n))),
        h('td', {}, r.author || '—'),
        h('td', {}, when(r.time)),
        h('td', {}, r.message || h('span', { class: 'muted' }, '(no message)'), r.rollback_of ? h('span', { class: 'badge' }, ' rollback of ' + r.rollback_of) : null),
        h('td', {}, revFiles(r).map((f) => h('span', { class: 'chip' }, f))),
        h('td', { class: 'row' },
          n > 1 ? h('button', { 'data-test': 'changes-' + n, title: 'Diff with revision ' + (n - 1), onclick: () => { fromSel = n - 1; toSel = n; render(); compare(); } }, 'Changes') : null,
          ws.editable && n !== headRev ? h('button', { 'data-test': 'rollback-' + n, onclick: () => rollback(n, headRev) }, 'Roll back to this…') : null)));
    }
    if (!revs.length) body.appendChild(h('tr', {}, h('td', { colspan: 8, class: 'empty-state' }, 'Nothing published yet.')));
  }

  async function compare() {
    if (!fromSel || !toSel) { app.flash('Pick two revisions: one in “from”, one in “to”.', 'error'); return; }
    try {
      const ds = await fetchDiff(ws, fromSel, toSel);
      mount(out, h('h2', {}, 'Revision ' + fromSel + ' → ' + toSel), renderDiffs(ds));
      out.scrollIntoView({ block: 'start' });
    } catch (e) { app.showError(e, 'Diff'); }
  }

  async function rollback(n, headRev) {
    let all;
    try { all = await fetchDiff(ws, headRev, n); } catch (e) { app.showError(e, 'Diff'); return; }
    const scope = h('select', { 'data-test': 'rollback-scope', 'aria-label': 'What to roll back' },
      h('option', { value: '' }, (ws.kind === 'group' ? 'The whole group' : 'The whole service') + ' (' + all.length + (all.length === 1 ? ' file' : ' files') + ')'),
      all.map((d) => h('option', { value: d.file }, 'Only ' + d.file)));
    const view = h('div', { 'data-test': 'rollback-diff' });
    const dryBox = h('div', { 'data-test': 'rollback-dry-run' });
    const msg = h('input', { class: 'message', value: 'rollback to revision ' + n, 'data-test': 'message', 'aria-label': 'Rollback message' });
    const go = h('button', { class: 'danger primary', 'data-test': 'confirm-rollback' });
    const gov = governControls(app, go, 'Publish rollback');
    const body = () => {
      const b = { to_revision: n, base_revision: headRev, message: msg.value };
      if (scope.value) b.files = [scope.value];
      return b;
    };
    // The dry run of the chosen scope: what the rollback restores is
    // validated against the schemas of revision n, and reaches the same
    // instances as any publish.
    let seq = 0;
    async function dryRun() {
      const mine = ++seq;
      gov.update(null, true);
      let d = null;
      try { d = await api.post(ws.base + '/rollback?dry_run=true', body()); } catch (e) {
        if (mine !== seq) return;
        if (e.status === 401) { m.close(); return; }
        mount(dryBox, h('div', { class: 'notice error', 'data-test': 'dry-run-failed' }, 'The dry run failed (', e.message, '): validation and blast radius are unknown.'));
        gov.update(null, !all.length || e.status === 409);
        return;
      }
      if (mine !== seq) return;
      mount(dryBox, dryRunPanel(d));
      gov.update(d, !all.length);
    }
    const show = () => { mount(view, renderDiffs(scope.value ? all.filter((d) => d.file === scope.value) : all)); dryRun(); };
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
      try { headers = gov.headers(); } catch (e) { app.flash(e.message, 'error'); return; }
      go.disabled = true;
      try {
        const res = await api.request('POST', ws.base + '/rollback', body(), { headers, response: true });
        const v = await res.json();
        m.close();
        if (res.status === 202) {
          submitted(app, v);
          return;
        }
        app.flash('Rolled back: revision ' + (revOf(v) || headRev + 1) + ' restores revision ' + n, 'ok');
        revs.length = 0; fromSel = 0; toSel = 0;
        await load();
        if (revs[0]) setHeadRevision(revOf(revs[0]));
      } catch (e) { go.disabled = false; app.showError(e, 'Rollback refused'); }
    });
  }

  mount(ws.body,
    h('div', { class: 'panel' },
      h('div', { class: 'row' }, h('span', { class: 'muted' }, 'Pick a “from” and a “to” revision to compare.'), h('span', { class: 'spacer' }),
        h('button', { class: 'primary', 'data-test': 'compare', onclick: compare }, 'Compare')),
      h('table', { 'data-test': 'history' }, h('thead', {}, h('tr', {}, h('th', {}, 'From'), h('th', {}, 'To'), h('th', { class: 'num' }, '#'), h('th', {}, 'Author'), h('th', {}, 'Time'), h('th', {}, 'Message'), h('th', {}, 'Files'), h('th', {}))), body),
      h('div', { class: 'row mt' }, more)),
    out);
  await load(0);
}

// ---------------------------------------------------------------- instances

async function instancesTab(ws) {
  const { app } = ws;
  let headRev = revOf(ws.head);
  const body = h('tbody');
  const dot = h('span', { class: 'live-dot', title: 'live updates' });
  const state = h('span', { class: 'muted small', 'data-test': 'live-state' }, 'connecting…');
  function render(insts) {
    clear(body);
    const s = instanceSummary(insts, headRev);
    summary.textContent = s.total + ' instances · ' + s.current + ' on revision ' + headRev + ' · ' + s.older + ' older · ' + s.rejected + ' rejected';
    for (const i of insts) {
      const rej = i.status === 'rejected';
      body.appendChild(h('tr', { 'data-instance': i.id },
        h('td', { class: 'mono' }, i.id),
        h('td', { class: 'mono' }, i.addr || '—'),
        h('td', {}, Object.entries(i.labels || {}).map(([k, v]) => h('span', { class: 'chip' }, k + '=' + v))),
        h('td', { class: 'num' }, String(i.revision || 0), ' ', i.revision === headRev ? h('span', { class: 'badge ok' }, 'current') : h('span', { class: 'badge warn' }, 'older'), i.from_cache ? h('span', { class: 'badge', title: 'started from its local cache' }, 'cache') : null),
        h('td', {}, h('span', { class: 'badge ' + (rej ? 'bad' : i.status === 'applied' ? 'ok' : '') }, i.status || 'unknown'),
          rej ? h('div', { class: 'small reason' }, 'revision ' + (i.rejected_revision || '?') + ': ' + (i.error || 'no reason given')) : null),
        h('td', {}, when(i.updated || i.started))));
    }
    if (!insts.length) body.appendChild(h('tr', {}, h('td', { colspan: 6, class: 'empty-state' }, 'No live instances. Instances register through the SDK.')));
  }
  const summary = h('div', { class: 'muted', 'data-test': 'instance-summary' });
  mount(ws.body, h('div', { class: 'panel' },
    h('div', { class: 'row' }, summary, h('span', { class: 'spacer' }), dot, state),
    h('table', { 'data-test': 'instances' }, h('thead', {}, h('tr', {}, h('th', {}, 'Instance'), h('th', {}, 'Address'), h('th', {}, 'Labels'), h('th', { class: 'num' }, 'Applied revision'), h('th', {}, 'Status'), h('th', {}, 'Since'))), body)));
  render(api.list(await api.get(ws.base + '/instances'), 'instances'));
  const es = new EventSource('/v1' + ws.base + '/instances/watch');
  app.onCleanup(() => es.close());
  const onData = (ev) => {
    try {
      const v = JSON.parse(ev.data);
      if (v && typeof v.revision === 'number') headRev = v.revision;
      render(api.list(v, 'instances'));
    } catch (_) { /* ignore a malformed event; the next one replaces the list */ }
  };
  es.addEventListener('instances', onData);
  es.addEventListener('message', onData);
  es.addEventListener('open', () => { dot.classList.add('on'); state.textContent = 'live'; });
  es.addEventListener('error', () => { dot.classList.remove('on'); state.textContent = es.readyState === EventSource.CLOSED ? 'live updates unavailable' : 'reconnecting…'; });
}

// ---------------------------------------------------------------- links

async function linksTab(ws) {
  const { app } = ws;
  const links = (ws.head.links || []).slice();
  let groups = [];
  try { groups = api.list(await api.get('/shared'), 'groups', 'shared').map(nameOf); } catch (e) { app.showError(e, 'Shared groups'); }
  const pick = h('select', { 'aria-label': 'Shared group' }, groups.filter((g) => !links.includes(g)).map((g) => h('option', { value: g }, g)));
  mount(ws.body, h('div', { class: 'panel' },
    h('p', { class: 'muted' }, 'The SDK of ', ws.name, ' sees the files of linked groups as ', h('code', {}, 'group/file'), '.'),
    h('table', {}, h('tbody', {}, links.length ? links.map((g) => h('tr', {},
      h('td', {}, h('a', { href: '#/shared/' + encodeURIComponent(g) }, g)),
      h('td', {}, ws.editable ? h('button', { class: 'danger', onclick: async () => {
        if (!confirm('Unlink ' + g + ' from ' + ws.name + '?')) return;
        try { await api.del(ws.base + '/links/' + encodeURIComponent(g)); app.flash('Unlinked ' + g, 'ok'); location.reload(); } catch (e) { app.showError(e, 'Unlink'); }
      } }, 'Unlink') : null))) : h('tr', {}, h('td', { class: 'empty-state' }, 'No linked groups.')))),
    ws.editable && pick.options.length ? h('div', { class: 'row mt' }, pick, h('button', { class: 'primary', onclick: async () => {
      try { await api.put(ws.base + '/links/' + encodeURIComponent(pick.value), {}); app.flash('Linked ' + pick.value, 'ok'); location.reload(); } catch (e) { app.showError(e, 'Link'); }
    } }, 'Link group')) : null));
}

async function usersTab(ws) {
  const users = api.list(await api.get(ws.base + '/users'), 'users', 'services').map(nameOf);
  mount(ws.body, h('div', { class: 'panel' },
    h('p', { class: 'muted' }, 'A publish to this group reaches every service below.'),
    users.length ? h('div', { 'data-test': 'users' }, users.map((u) => h('a', { class: 'chip', href: '#/services/' + encodeURIComponent(u) }, u))) : h('div', { class: 'empty-state' }, 'No service uses this group.')));
}
