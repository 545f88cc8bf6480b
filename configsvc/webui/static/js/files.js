// The files tab: the file list, the editor, and publishing (review with
// diffs and the server's dry run: validation with the violations at their
// lines, blast radius, routes, approval; the server's refusals at their
// line; change requests under an approval policy; concurrent publishes
// shown with the other person's change), to every instance or as a gray
// to the instances a selector picks (grays.js, graysel.js).
import { h, mount, clear, modal } from './dom.js';
import * as api from './api.js';
import { createEditor } from './editor.js';
import { formatOf } from './validate.js';
import { checkAsync } from './checker.js';
import { diffBlock } from './diff.js';
import { dryRunPanel, dryRunFailed, governControls, submitted, openChanges } from './changes.js';
import { activeGraysNotice, grayHref } from './grays.js';
import { selectorEditor, selectorText, liveInstances, followInstances, field } from './graysel.js';

const SYNC_MS = 150;
const REVIEW = 'Review and publish…';

// serverErrors reads a 422, or a dry run's violations ({details:
// {violations}}), into {file: [{line, column, message}]}. The details are
// one error ({file, line, column}) or a list of them (schema violations:
// {file, pointer, line, column, keyword, message}); a route schema error
// names its field and says "(line N)" in the message. files are the files
// of the publish, for errors that do not name theirs.
export function serverErrors(e, files) {
  const d = e.details || {};
  const list = Array.isArray(d) ? d : Array.isArray(d.errors) ? d.errors : Array.isArray(d.violations) ? d.violations : [d];
  const out = {};
  for (const x of list) {
    let msg = x.message || (list.length === 1 ? e.message : '') || e.message;
    let file = x.file || files.find((f) => msg.startsWith(f + ':') || msg.startsWith(f + ' ')) || (files.length === 1 ? files[0] : '');
    if (!file) continue;
    let line = +x.line || 0, column = +x.column || 0;
    if (!line) {
      const m = /\(line (\d+)(?:, column (\d+))?\)/.exec(msg) || new RegExp('^' + file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + ':(\\d+)(?::(\\d+))?:').exec(msg);
      if (m) { line = +m[1]; column = +(m[2] || 0); }
    }
    // The editor shows the position itself: drop a leading "file:line:column: ".
    if (msg.startsWith(file + ':')) msg = msg.slice(file.length).replace(/^(:\d+){0,2}: /, '');
    if (x.pointer) msg = x.pointer + ': ' + msg;
    (out[file] = out[file] || []).push({ line, column, message: msg });
  }
  return out;
}

async function loadSnapshot(ws) {
  const s = await ws.view.api.get(ws.base + '/snapshot');
  const files = {};
  for (const [k, x] of Object.entries(s.files || {})) files[k] = api.fileContent(typeof x === 'object' && x !== null ? x.content : x, s.content_encoding);
  return { revision: s.revision || 0, files };
}

// filesTab edits the files of a service or group and publishes them.
export async function filesTab(ws) {
  const v = ws.view;
  const snap = await loadSnapshot(ws);
  // busy is set while our own publish is in flight, so its watch event is not
  // mistaken for someone else's. pending: the editor holds edits not yet in draft.
  // grays: the summaries of the active grays ({id, files, selector}).
  const st = { live: snap.files, base: snap.revision, draft: {}, selected: null, clientErr: {}, serverErr: {}, busy: false, pending: false, grays: ws.head.grays || [] };
  const list = h('ul', { class: 'files', 'data-test': 'files', 'aria-label': 'Files' });
  const tools = h('div', { class: 'row mb' });
  const pane = h('div', { class: 'pane' });
  const bar = h('div', { class: 'row mt' });
  const notices = h('div', { 'data-test': 'notices' });
  const pending = h('div', { 'data-test': 'pending' }); // open change requests
  const graysBox = h('div'); // active grays
  // heldBy returns the active gray that holds file f, or null.
  const heldBy = (f) => st.grays.find((g) => (g.files || []).includes(f)) || null;
  // grayable: a gray reaches instances through the SDK; the proxies read
  // the main line of sluice-system's routes, so it gets no grays.
  const grayable = ws.editable && !(ws.kind === 'service' && ws.name === 'sluice-system');
  let editor = null;
  let timer = 0;

  // sync moves the editor's text into the draft (a large file is read only
  // when needed, not on every key).
  function sync() {
    if (!editor || !st.pending) return;
    st.pending = false;
    const f = st.selected;
    const text = editor.value;
    if (f in st.live && text === st.live[f] && st.draft[f] !== null) delete st.draft[f];
    else st.draft[f] = text;
  }
  const names = () => [...new Set([...Object.keys(st.live), ...Object.keys(st.draft)])].sort();
  const current = (f) => { if (f === st.selected) sync(); return f in st.draft ? st.draft[f] : st.live[f]; };
  const changed = () => { sync(); return names().filter((f) => f in st.draft && st.draft[f] !== (f in st.live ? st.live[f] : undefined) && !(st.draft[f] === null && !(f in st.live))); };
  const errorCount = () => changed().reduce((n, f) => n + (st.draft[f] === null ? 0 : (st.clientErr[f] || []).length), 0);
  v.dirty = () => changed().length > 0;

  // validate checks a draft (live content passed the server's check); the
  // answer comes from the worker for large files.
  function validate(f) {
    const text = st.draft[f];
    if (text === null || text === undefined) { st.clientErr[f] = []; return; }
    checkAsync(f, text).then((errs) => {
      if (st.draft[f] !== text || !v.alive()) return;
      st.clientErr[f] = errs;
      renderList();
      renderBar();
    });
  }
  function select(f) {
    sync();
    st.selected = f;
    renderList();
    renderPane();
    renderBar();
  }
  function renderList() {
    const had = list.contains(document.activeElement) ? document.activeElement.dataset.file : null;
    clear(list);
    const ch = changed();
    for (const f of names()) {
      const isNew = !(f in st.live), del = st.draft[f] === null, mod = ch.includes(f);
      const errs = (st.clientErr[f] || []).length + (st.serverErr[f] || []).length;
      const held = heldBy(f);
      const mark = errs ? h('span', { class: 'dot badge bad' }, errs + (errs === 1 ? ' error' : ' errors'))
        : mod ? h('span', { class: 'dot badge warn' }, isNew ? 'new' : del ? 'deleted' : 'edited')
          : held ? h('span', { class: 'dot badge info', title: 'gray ' + held.id + ' holds it: its cohort reads the gray\'s version' }, 'gray') : null;
      list.appendChild(h('li', { class: (f === st.selected ? 'active' : '') + (del ? ' deleted' : '') },
        h('button', { type: 'button', class: 'file-btn', 'data-file': f, 'aria-current': f === st.selected ? 'true' : null, onclick: () => select(f) },
          h('span', { class: 'name' }, f), mark)));
    }
    if (!names().length) list.appendChild(h('li', { class: 'muted' }, 'No files yet.'));
    // A keyboard user on a file button stays on it.
    if (had && document.activeElement === document.body) list.querySelector('[data-file="' + CSS.escape(had) + '"]')?.focus();
  }
  // Secret files (docs/secrets.md): a name with ".secret."; without the
  // secrets grant the server sends a placeholder instead of the value.
  function isSecret(f) { return f.includes('.secret.') && !f.endsWith('.schema.json'); }
  function hiddenSecret(f) { return isSecret(f) && !(f in st.draft) && (st.live[f] || '').startsWith('# sluice: secret file'); }
  function renderTools() {
    const f = st.selected;
    if (!f) { clear(tools); return; }
    const del = st.draft[f] === null;
    mount(tools,
      h('strong', { class: 'mono' }, f), h('span', { class: 'badge' }, formatOf(f)),
      isSecret(f) ? h('span', { class: 'badge', 'data-test': 'secret-badge', title: 'Encrypted at rest; its value is shown only with the secrets grant (docs/secrets.md).' },
        hiddenSecret(f) ? 'secret: value hidden' : 'secret') : null,
      del ? h('span', { class: 'badge bad' }, 'will be deleted') : null,
      h('span', { class: 'spacer' }),
      ws.editable && f in st.draft ? h('button', { 'data-test': 'revert-file', onclick: () => {
        sync();
        delete st.draft[f]; delete st.serverErr[f];
        validate(f);
        select(f in st.live ? f : names()[0] || null);
      } }, 'Revert file') : null,
      ws.editable && !del && f in st.live ? h('button', { class: 'danger', 'data-test': 'delete-file', onclick: () => { sync(); st.draft[f] = null; validate(f); select(f); } }, 'Delete file') : null);
  }
  function renderPane() {
    if (editor) { editor.destroy(); editor = null; }
    st.pending = false;
    const f = st.selected;
    renderTools();
    if (!f) {
      mount(pane, tools, h('div', { class: 'empty-state' }, ws.editable ? 'Pick a file, or add one.' : 'Pick a file.'));
      return;
    }
    const del = st.draft[f] === null;
    editor = createEditor({
      // A secret file shown without the secrets grant holds a placeholder:
      // it is not editable (the server refuses to publish one).
      value: current(f) || '', readOnly: !ws.editable || del || hiddenSecret(f), file: f, label: f,
      onChange: () => {
        const first = !(f in st.draft);
        st.pending = true;
        delete st.serverErr[f];
        clearTimeout(timer);
        const refresh = () => { sync(); renderList(); renderTools(); renderBar(); };
        // The first edit of a file shows at once (Revert, the change count,
        // Publish); later keys only every SYNC_MS, so a large file is not
        // read on every key.
        if (first) refresh();
        else timer = setTimeout(refresh, SYNC_MS);
      },
      onErrors: (errs) => {
        const own = errs.filter((e) => e.source !== 'server');
        // The check runs after every pause in typing; the list and the bar
        // change only when its answer does.
        if (JSON.stringify(own) === JSON.stringify(st.clientErr[f] || [])) return;
        st.clientErr[f] = own;
        renderList();
        renderBar();
      },
    });
    mount(pane, tools, editor.el);
    if (st.serverErr[f]) editor.setServerErrors(st.serverErr[f]);
  }
  function renderBar() {
    const n = changed().length, errs = errorCount();
    mount(bar,
      h('span', { class: 'muted', 'data-test': 'change-count', role: 'status' }, n ? n + ' unpublished ' + (n === 1 ? 'change' : 'changes') : 'No unpublished changes'),
      errs ? h('span', { class: 'badge bad', 'data-test': 'error-count' }, errs + (errs === 1 ? ' error' : ' errors') + ' to fix before publishing') : null,
      h('span', { class: 'spacer' }),
      n ? h('button', { onclick: () => { if (confirm('Discard all unpublished changes?')) { sync(); st.draft = {}; st.serverErr = {}; st.clientErr = {}; select(st.selected in st.live ? st.selected : names()[0] || null); } } }, 'Discard all') : null,
      h('button', { class: 'primary', disabled: !n || errs > 0, 'data-test': 'review', 'aria-keyshortcuts': 'Control+S', title: 'Ctrl+S', onclick: review }, REVIEW));
  }

  function addFileForm() {
    const input = h('input', { placeholder: 'new-file.json', 'data-test': 'new-file', 'aria-label': 'New file name', size: 14, autocomplete: 'off' });
    return h('form', { class: 'row mt', onsubmit: (e) => {
      e.preventDefault();
      const f = input.value.trim();
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(f)) { v.flash('A file name is 1-128 characters of A-Z, a-z, 0-9, ".", "_" and "-", starting with a letter or digit.', 'error'); return; }
      sync();
      if (f in st.live || f in st.draft) { if (st.draft[f] === null) delete st.draft[f]; select(f); return; }
      st.draft[f] = '';
      input.value = '';
      validate(f);
      select(f);
      if (editor) editor.focus();
    } }, input, h('button', { type: 'submit', 'data-test': 'add-file' }, 'Add'));
  }

  function diffsFor(files, against, labels) {
    return files.map((f) => diffBlock({
      file: f, labels,
      before: f in against ? against[f] : '',
      after: st.draft[f] === null ? '' : st.draft[f],
      status: st.draft[f] === null ? 'deleted' : !(f in against) ? 'added' : 'modified',
    }, (fn) => v.onCleanup(fn)));
  }

  async function review() {
    const files = changed();
    // The editor's check runs a moment after typing: check now, so a publish
    // of content the browser knows is invalid is not offered. A large file
    // takes a moment (in the worker); the button says so meanwhile.
    if (st.checking) return;
    st.checking = true;
    const btn = bar.querySelector('[data-test=review]');
    if (btn) btn.textContent = 'Checking…';
    try {
      for (const f of files) if (st.draft[f] !== null) st.clientErr[f] = await checkAsync(f, st.draft[f]);
    } finally {
      st.checking = false;
      if (btn) btn.textContent = REVIEW;
    }
    if (!v.alive()) return;
    if (errorCount()) {
      renderList();
      renderBar();
      v.flash('Fix the errors marked in the files before publishing.', 'error');
      return;
    }
    const changes = files.map((f) => (st.draft[f] === null ? { file: f, delete: true } : { file: f, content: st.draft[f] }));
    // The dry run: validation (formats and schemas), the diff, who it would
    // hit, and whether an approval policy makes the publish a change request.
    let dry = null, dryErr = null;
    try {
      dry = await v.api.post(ws.base + '/revisions?dry_run=true', { base_revision: st.base, changes });
    } catch (e) {
      if (e instanceof api.Cancelled || e.status === 401) return; // left, or the sign-in dialog is open: review again once signed in
      if (e.status === 409 || e.status === 412) { await conflict('Someone published while you were editing; nothing was overwritten.'); return; }
      dryErr = e;
    }
    if (!v.alive()) return;
    if (dry && !dry.valid) markServerErrors(serverErrors({ details: { violations: dry.violations || [] }, message: '' }, files), false);
    const msg = h('input', { class: 'message', placeholder: 'What changed and why', maxlength: 4096, 'data-test': 'message', 'aria-label': 'Publish message', autofocus: true });
    const go = h('button', { class: 'primary', 'data-test': 'confirm-publish' });
    const gov = governControls(v, go, 'Publish revision ' + (st.base + 1));
    gov.update(dry);
    // A violation in the list closes the dialog and shows it in the editor.
    const showViolation = (x) => {
      m.close();
      const byFile = serverErrors({ details: { violations: [x] }, message: '' }, files);
      const f = Object.keys(byFile)[0];
      if (!f) return;
      select(f);
      const at = byFile[f][0];
      if (at && at.line > 0 && editor) editor.focusLine(at.line, at.column || 1);
    };
    const gray = grayable ? grayChoice(files, changes, dry, msg, go, gov, () => m) : null;
    const m = modal('Publish ' + files.length + (files.length === 1 ? ' file' : ' files') + ' to ' + ws.name,
      dry ? dryRunPanel(dry, showViolation) : dryRunFailed(dryErr),
      h('p', { class: 'muted' }, 'Diff against live revision ', String(st.base), ':'),
      h('div', { 'data-test': 'publish-diff' }, diffsFor(files, st.live, ['live revision ' + st.base, 'yours'])),
      gray ? [gray.fieldset, gray.form] : null,
      h('label', { class: 'stack' }, 'Message', msg),
      gov.el,
      h('div', { class: 'actions' }, h('button', { onclick: () => m.close() }, 'Cancel'), go, gray ? gray.btn : null));
    go.addEventListener('click', async () => {
      let headers;
      try { headers = gov.headers({ 'If-Match': '"' + st.base + '"' }); } catch (e) { v.flash(e.message, 'error'); return; }
      go.disabled = true;
      st.busy = true;
      try {
        const res = await v.api.request('POST', ws.base + '/revisions', { base_revision: st.base, message: msg.value, changes }, { headers, response: true });
        const out = await res.json().catch(() => ({}));
        m.close();
        if (res.status === 202) {
          // A change request: nothing is published; the edits live on in it.
          sync();
          st.draft = {};
          st.serverErr = {};
          submitted(v, out);
          return;
        }
        const rev = (out && out.revision) || st.base + 1;
        v.flash('Published revision ' + rev, 'ok');
        await reload();
      } catch (e) {
        go.disabled = false;
        if (e instanceof api.Cancelled) return;
        if (e.status === 422) {
          m.close();
          markServerErrors(serverErrors(e, files), true);
          v.showError(e, 'Not published');
        } else if (e.status === 409 || e.status === 412) {
          m.close();
          await conflict('Someone published while you were editing; nothing was overwritten.');
        } else {
          v.showError(e, 'Not published');
        }
      } finally {
        st.busy = false;
      }
    });
  }

  // grayChoice is the part of the review that publishes as a gray: the
  // choice between every instance and a gray, the gray's name, its
  // selector with the preview of the live instances it matches, and its
  // button. dialog() returns the review's dialog.
  function grayChoice(files, changes, dry, msg, go, gov, dialog) {
    const name = 'reach-' + Math.random().toString(36).slice(2);
    const all = h('input', { type: 'radio', name, value: 'all', checked: true, 'data-test': 'reach-all' });
    const gray = h('input', { type: 'radio', name, value: 'gray', 'data-test': 'reach-gray' });
    const fieldset = h('fieldset', { class: 'reach' }, h('legend', {}, 'Who gets it'),
      h('label', {}, all, ' Every instance: publish revision ' + (st.base + 1)),
      h('label', {}, gray, ' A gray: only the instances chosen below, until it is promoted'));
    const held = files.map((f) => [f, heldBy(f)]).filter(([, g]) => g);
    const grayName = h('input', { id: name + '-name', maxlength: 128, autocomplete: 'off', placeholder: 'bigger pool', 'data-test': 'gray-name' });
    const holder = h('div', { 'data-test': 'gray-selector' }, h('p', { class: 'muted', role: 'status' }, 'Loading the live instances…'));
    const err = h('div', { 'data-test': 'gray-error' });
    const form = h('div', { class: 'gray-form', hidden: true, 'data-test': 'gray-form' },
      h('p', { class: 'muted' }, 'Main stays at revision ' + st.base + '. The instances the selector matches apply main with these changes on top; ',
        'the gray\'s page then shows what each reports, and lets you widen it, roll it out, promote it to main or abandon it.'),
      held.length ? h('div', { class: 'notice error', 'data-test': 'gray-held', role: 'alert' },
        held.map(([f, g]) => [h('span', { class: 'mono' }, f), ' is held by active gray ', h('a', { href: grayHref(ws.kind, ws.name, g.id) }, g.id), '. ']),
        'A file has at most one active gray: promote or abandon that one first, or leave the file out.') : null,
      field(name + '-name', 'Name of the gray (optional)', grayName),
      holder, err);
    const btn = h('button', { class: 'primary', hidden: true, 'data-test': 'confirm-gray' }, 'Create the gray');
    let ed = null, loading = false;
    async function choose() {
      const isGray = gray.checked;
      form.hidden = !isGray;
      btn.hidden = !isGray;
      go.hidden = isGray;
      if (isGray) gov.el.hidden = true; // the approval options are the publish's
      else gov.update(dry);
      btn.disabled = held.length > 0 || !!(dry && !dry.valid);
      if (!isGray || ed || loading) return;
      loading = true;
      let insts = [], why = '';
      try { insts = await liveInstances(v, ws.kind, ws.name); } catch (e) {
        if (e instanceof api.Cancelled) return;
        why = e.message;
      }
      loading = false;
      ed = selectorEditor(insts, { group: ws.kind === 'group' });
      mount(holder, why ? h('div', { class: 'notice error', role: 'alert' }, 'The live instances cannot be read (' + why + '): the preview shows none.') : null, ed.el);
      if (!why) dialog().onClose(followInstances(v, ws.kind, ws.name, (list) => ed.setInstances(list)));
    }
    all.addEventListener('change', choose);
    gray.addEventListener('change', choose);
    btn.addEventListener('click', async () => {
      if (!ed) return;
      const p = ed.problem();
      if (p) { mount(err, h('div', { class: 'notice error', role: 'alert' }, p)); return; }
      mount(err);
      btn.disabled = true;
      try {
        const g = await v.api.post(ws.base + '/grays', { name: grayName.value.trim(), message: msg.value, base_revision: st.base, changes, selector: ed.selector() });
        dialog().close();
        sync();
        st.draft = {};
        st.serverErr = {};
        v.flash('Gray ' + g.id + ' created for ' + selectorText(g.selector) + '; main stays at revision ' + st.base, 'ok');
        location.hash = grayHref(ws.kind, ws.name, g.id);
      } catch (e) {
        btn.disabled = false;
        if (e instanceof api.Cancelled) return;
        if (e.status === 422) {
          dialog().close();
          markServerErrors(serverErrors(e, files), true);
          v.showError(e, 'Gray not created');
        } else if (e.status === 409 && e.details && e.details.gray) {
          // Another gray holds a file (it started since the review opened).
          mount(err, h('div', { class: 'notice error', role: 'alert', 'data-test': 'gray-conflict' }, e.message, ' ',
            h('a', { href: grayHref(ws.kind, ws.name, e.details.gray) }, 'Open gray ' + e.details.gray)));
        } else if (e.status === 409 || e.status === 412) {
          dialog().close();
          await conflict('Someone published while you were editing; no gray was created.');
        } else {
          v.showError(e, 'Gray not created');
        }
      }
    });
    return { fieldset, form, btn };
  }

  // markServerErrors shows the server's errors ({file: [{line, column,
  // message}]}: a 422's, or a dry run's violations) at their lines: the
  // file list counts them, the editor marks them, and the first file with
  // one is shown; focus moves the cursor to its first line.
  function markServerErrors(byFile, focus) {
    const first = Object.keys(byFile)[0];
    if (!first) return;
    Object.assign(st.serverErr, byFile);
    select(first);
    const at = byFile[first].find((x) => x.line > 0);
    if (focus && at && editor) editor.focusLine(at.line, at.column || 1);
  }

  async function reload() {
    sync();
    const s = await loadSnapshot(ws);
    st.live = s.files;
    st.base = s.revision;
    for (const f of Object.keys(st.draft)) if (st.draft[f] === (f in st.live ? st.live[f] : null)) delete st.draft[f];
    st.serverErr = {};
    for (const f of names()) validate(f);
    ws.setRevision(st.base);
    if (!(st.selected in st.live) && !(st.selected in st.draft)) st.selected = names()[0] || null;
    clear(notices);
    renderList();
    renderPane();
    renderBar();
  }

  // conflict shows what the other person changed (their revisions against
  // the base the user edited), then the new live content against the user's
  // edits, and lets them keep their edits on top of it or drop them.
  async function conflict(why) {
    sync();
    const s = await loadSnapshot(ws);
    const files = changed();
    const theirs = [...new Set([...Object.keys(st.live), ...Object.keys(s.files)])].sort().filter((f) => st.live[f] !== s.files[f]);
    let revs = [];
    try {
      revs = api.list(await v.api.get(ws.base + '/revisions?limit=20'), 'revisions').filter((r) => r.revision > st.base).reverse();
    } catch (_) { /* who published stays unnamed */ }
    const theirBlocks = theirs.map((f) => diffBlock({
      file: f, labels: ['revision ' + st.base + ' (your base)', 'revision ' + s.revision + ' (live)'],
      before: st.live[f] || '', after: s.files[f] || '',
      status: !(f in st.live) ? 'added' : !(f in s.files) ? 'deleted' : 'modified',
    }, (fn) => v.onCleanup(fn)));
    const m = modal('Revision ' + s.revision + ' is live now',
      h('p', {}, why),
      h('h3', {}, 'Their change: revision ', String(st.base), ' → ', String(s.revision)),
      h('ul', { class: 'plain', 'data-test': 'their-revisions' }, revs.map((r) => h('li', {}, h('strong', {}, 'Revision ' + r.revision), ' by ', r.author || 'someone', r.message ? ': “' + r.message + '”' : ''))),
      h('div', { 'data-test': 'their-change' }, theirBlocks.length ? theirBlocks : h('p', { class: 'muted' }, 'No file content changed.')),
      h('h3', {}, 'Your edits compared with revision ', String(s.revision), ' (', h('span', { class: 'badge bad' }, '− live'), ' ', h('span', { class: 'badge ok' }, '+ yours'), ')'),
      h('div', { 'data-test': 'conflict-diff' }, diffsFor(files, s.files, ['live revision ' + s.revision, 'yours'])),
      h('div', { class: 'actions' },
        h('button', { onclick: async () => { m.close(); st.draft = {}; await reload(); } }, 'Discard my edits'),
        h('button', { class: 'primary', 'data-test': 'rebase', onclick: async () => { m.close(); await reload(); v.flash('Your edits now apply on top of revision ' + st.base + '. Review before publishing.', 'info'); } }, 'Keep my edits on top of revision ' + s.revision)));
    return m;
  }

  // Live updates: a new revision reloads a clean editor, and warns a dirty one.
  if (!v.alive()) return;
  const es = new EventSource('/v1' + ws.base + '/watch?changes=true&since=' + st.base);
  v.onCleanup(() => es.close());
  // The active grays (event: grays, when the stream opens and after every change).
  es.addEventListener('grays', (ev) => {
    let d = {};
    try { d = JSON.parse(ev.data); } catch (_) { return; /* a malformed event: the stream goes on */ }
    const next = Array.isArray(d.grays) ? d.grays : [];
    if (JSON.stringify(next) === JSON.stringify(st.grays)) return;
    st.grays = next;
    activeGraysNotice(ws.kind, ws.name, st.grays, graysBox);
    renderList();
  });
  // News of the change requests of this service or group (event: change).
  es.addEventListener('change', (ev) => {
    let n = {};
    try { n = JSON.parse(ev.data); } catch (_) { return; /* a malformed event: the stream goes on */ }
    v.flash('Change request ' + n.id + ' ' + n.event + ' by ' + (n.actor || 'someone') + '.', 'info');
    openChanges(v, ws.base, pending);
  });
  es.addEventListener('revision', async (ev) => {
    let r = {};
    try { r = JSON.parse(ev.data); } catch (_) { return; }
    const n = r.revision || +ev.lastEventId;
    if (!n || n <= st.base || st.busy) return;
    if (!changed().length) {
      await reload();
      v.flash('Revision ' + n + ' was published by ' + (r.author || 'someone') + ' and is shown now.', 'info');
      return;
    }
    mount(notices, h('div', { class: 'notice', 'data-test': 'remote-change', role: 'status' },
      'Revision ', String(n), ' was published by ', r.author || 'someone', r.message ? ' (“' + r.message + '”)' : '', ' while you were editing. ',
      h('button', { class: 'primary', onclick: () => conflict('Your edits are kept until you choose.').catch((e) => v.showError(e)) }, 'Show the diff')));
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
  if (ws.editable) {
    const onKey = (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key === 's') {
        e.preventDefault();
        sync();
        renderBar();
        const b = bar.querySelector('[data-test=review]');
        if (b && !b.disabled && !document.querySelector('.modal')) b.click();
      }
    };
    document.addEventListener('keydown', onKey);
    v.onCleanup(() => document.removeEventListener('keydown', onKey));
  }
  v.onCleanup(() => { clearTimeout(timer); if (editor) editor.destroy(); });

  const left = h('div', { class: 'panel' }, list, ws.editable ? addFileForm() : null);
  mount(ws.body, pending, graysBox, notices, h('div', { class: 'workspace' }, left, h('div', { class: 'panel' }, pane, ws.editable ? bar : null)));
  activeGraysNotice(ws.kind, ws.name, st.grays, graysBox);
  for (const f of names()) validate(f);
  // ?file=…&line=… (from search) opens that file at that line.
  const want = v.query.get('file');
  st.selected = want && names().includes(want) ? want : names()[0] || null;
  renderList();
  renderPane();
  renderBar();
  const line = +v.query.get('line');
  if (want === st.selected && line > 0 && editor) editor.focusLine(line, 1);
  await openChanges(v, ws.base, pending);
}
