// The workspace of one service or shared group: its header (revision, last
// change, delete), its tabs, and the small tabs (shared groups, used by,
// effective configuration). Files, history and instances have modules of
// their own.
import { h, mount, when, modal } from './dom.js';
import * as api from './api.js';
import { filesTab } from './files.js';
import { historyTab } from './history.js';
import { instancesTab } from './instances.js';
import { createEditor } from './editor.js';
import { graysTab } from './grays.js';

// basePath is the API path of a service or group.
export function basePath(kind, name) {
  return kind === 'group' ? api.path('shared', name) : api.path('services', name);
}

// hrefOf is the console address of a service or group.
export function hrefOf(kind, name) {
  return (kind === 'group' ? '#/shared/' : '#/services/') + encodeURIComponent(name);
}

// loadHead returns the head of a service or group ({revision, files, links, author, updated}).
export async function loadHead(v, kind, name) {
  return v.api.get(basePath(kind, name));
}

// TABS per kind: [key, label]. The routes page (sluice-system) shows files
// and history only: instances, links and grays mean nothing there (the
// proxies read the main line of routes.yaml).
const TABS = {
  service: [['files', 'Files'], ['history', 'History'], ['grays', 'Grays'], ['instances', 'Instances'], ['links', 'Shared groups'], ['effective', 'Effective config']],
  group: [['files', 'Files'], ['history', 'History'], ['grays', 'Grays'], ['users', 'Used by']],
  routes: [['files', 'Files'], ['history', 'History']],
};

// workspacePage shows one service or group. opts.hrefBase, opts.title and
// opts.tabs adapt it (the routes page reuses it for sluice-system).
export async function workspacePage(v, kind, name, tab, opts = {}) {
  const hrefBase = opts.hrefBase || hrefOf(kind, name);
  const tabs = TABS[opts.tabs || kind];
  const label = (tabs.find(([k]) => k === tab) || [tab, tab])[1];
  v.title(opts.title || name, label);
  const head = await loadHead(v, kind, name);
  const body = h('div', { 'data-test': 'tab-' + tab, role: 'tabpanel', 'aria-label': label });
  const editable = v.canEdit(kind, name);
  const revBadge = h('span', { class: 'badge info', 'data-test': 'head-revision' }, 'revision ' + (head.revision || 0));
  v.mount(
    h('div', { class: 'row' },
      h('h1', { 'data-test': 'title' }, opts.title || name),
      revBadge,
      kind === 'group' ? h('span', { class: 'badge' }, 'shared group') : null,
      editable ? null : h('span', { class: 'badge', 'data-test': 'read-only' }, 'read only'),
      h('span', { class: 'spacer' }),
      head.author ? h('span', { class: 'muted small' }, 'last change by ', head.author, ' ', when(head.updated)) : null,
      v.isAdmin() && !opts.tabs ? h('button', { class: 'danger', 'data-test': 'delete-' + kind, onclick: () => confirmDelete(v, kind, name) }, 'Delete ' + (kind === 'group' ? 'group' : 'service') + '…') : null),
    opts.before || null,
    h('nav', { class: 'tabs', 'aria-label': 'Sections of ' + name }, tabs.map(([k, l]) => h('a', { href: hrefBase + '/' + k, class: k === tab ? 'active' : '', 'aria-current': k === tab ? 'page' : null }, l))),
    body);
  const ws = {
    view: v, kind, name, head, body, editable, base: basePath(kind, name), hrefBase,
    // setRevision updates the revision badge in the page header.
    setRevision(n) { revBadge.textContent = 'revision ' + n; },
  };
  switch (tabs.some(([k]) => k === tab) ? tab : '') {
    case 'files': return filesTab(ws);
    case 'history': return historyTab(ws);
    case 'grays': return graysTab(ws);
    case 'instances': return instancesTab(ws);
    case 'links': return linksTab(ws);
    case 'users': return usersTab(ws);
    case 'effective': return effectiveTab(ws);
  }
  mount(body, h('div', { class: 'empty-state' }, 'No such tab.'));
}

// confirmDelete asks an admin to type the name before deleting a service or
// group, and shows what it reaches first: a service's live instances, the
// services that link a group.
async function confirmDelete(v, kind, name) {
  const isGroup = kind === 'group';
  const radius = h('div', { 'data-test': 'blast-radius', role: 'status' }, 'Looking up what this reaches…');
  const typed = h('input', { 'aria-label': 'Type ' + name + ' to confirm', autocomplete: 'off', 'data-test': 'confirm-name' });
  const go = h('button', { class: 'danger primary', disabled: true, 'data-test': 'confirm-delete' }, 'Delete ' + name);
  typed.addEventListener('input', () => { go.disabled = typed.value !== name; });
  const m = modal('Delete ' + (isGroup ? 'shared group ' : 'service ') + name + '?',
    h('p', {}, 'This deletes ', h('strong', {}, name), ' with all its files and its whole history. It cannot be undone.'),
    radius,
    h('label', { class: 'stack' }, h('span', {}, 'Type ', h('code', {}, name), ' to confirm'), typed),
    h('div', { class: 'actions' }, h('button', { onclick: () => m.close() }, 'Cancel'), go));
  go.addEventListener('click', async () => {
    go.disabled = true;
    try {
      await v.api.del(basePath(kind, name));
      m.close();
      v.flash((isGroup ? 'Shared group ' : 'Service ') + name + ' deleted', 'ok');
      location.hash = isGroup ? '#/shared' : '#/services';
    } catch (e) { go.disabled = typed.value !== name; v.showError(e, 'Not deleted'); }
  });
  try {
    if (isGroup) {
      const users = api.list(await v.api.get(api.path('shared', name, 'users')), 'services');
      mount(radius, users.length
        ? h('div', { class: 'notice' }, users.length + (users.length === 1 ? ' service links' : ' services link') + ' this group and read its files: ', users.map((u) => h('span', { class: 'chip' }, u)))
        : h('p', { class: 'muted' }, 'No service links this group.'));
    } else {
      const insts = api.list(await v.api.get(api.path('services', name, 'instances')), 'instances');
      mount(radius, insts.length
        ? h('div', { class: 'notice' }, insts.length + (insts.length === 1 ? ' live instance reads' : ' live instances read') + ' this service\'s config: ', insts.map((i) => h('span', { class: 'chip' }, i.id)))
        : h('p', { class: 'muted' }, 'No live instance reads this service.'));
    }
  } catch (e) {
    mount(radius, h('div', { class: 'notice error' }, 'What this reaches is unknown: ' + e.message));
  }
}

async function linksTab(ws) {
  const v = ws.view;
  const links = (ws.head.links || []).slice();
  let groups = [];
  try { groups = api.list(await v.api.get('/shared'), 'groups'); } catch (e) { v.showError(e, 'Shared groups'); }
  const pick = h('select', { 'aria-label': 'Shared group to link' }, groups.filter((g) => !links.includes(g)).map((g) => h('option', { value: g }, g)));
  const reload = () => { v.router.render(); };
  mount(ws.body, h('div', { class: 'panel' },
    h('p', { class: 'muted' }, 'The SDK of ', ws.name, ' sees the files of linked groups as ', h('code', {}, 'group/file'), '.'),
    h('table', {}, h('tbody', {}, links.length ? links.map((g) => h('tr', {},
      h('td', {}, h('a', { href: '#/shared/' + encodeURIComponent(g) }, g)),
      h('td', {}, ws.editable ? h('button', { class: 'danger', 'aria-label': 'Unlink ' + g, onclick: async () => {
        if (!confirm('Unlink ' + g + ' from ' + ws.name + '?')) return;
        try { await v.api.del(ws.base + '/links/' + encodeURIComponent(g)); v.flash('Unlinked ' + g, 'ok'); reload(); } catch (e) { v.showError(e, 'Unlink'); }
      } }, 'Unlink') : null))) : h('tr', {}, h('td', { class: 'empty-state' }, 'No linked groups.')))),
    ws.editable && pick.options.length ? h('div', { class: 'row mt' }, pick, h('button', { class: 'primary', onclick: async () => {
      try { await v.api.put(ws.base + '/links/' + encodeURIComponent(pick.value), {}); v.flash('Linked ' + pick.value, 'ok'); reload(); } catch (e) { v.showError(e, 'Link'); }
    } }, 'Link group')) : null));
}

async function usersTab(ws) {
  const users = api.list(await ws.view.api.get(ws.base + '/users'), 'services');
  mount(ws.body, h('div', { class: 'panel' },
    h('p', { class: 'muted' }, 'A publish to this group reaches every service below.'),
    users.length ? h('div', { 'data-test': 'users' }, users.map((u) => h('a', { class: 'chip', href: '#/services/' + encodeURIComponent(u) }, u))) : h('div', { class: 'empty-state' }, 'No service uses this group.')));
}

// effectiveTab shows the configuration as the service's SDK sees it: its own
// files and its linked groups' files as group/file
// (GET /v1/services/{svc}/effective).
async function effectiveTab(ws) {
  const v = ws.view;
  // GET /v1/services/{svc}/effective: {service, revision, links, files:
  // [{name, ref, file, revision, file_revision, format, content}]}, sorted
  // by name; a linked group's files are named "group/file".
  const res = await v.api.get(ws.base + '/effective');
  const files = Array.isArray(res.files) ? res.files : [];
  const list = h('ul', { class: 'files', 'data-test': 'effective-files', 'aria-label': 'Effective files' });
  const pane = h('div', { class: 'pane' });
  let editor = null;
  function show(f) {
    for (const b of list.querySelectorAll('button')) b.setAttribute('aria-pressed', String(b.dataset.file === f.name));
    if (editor) editor.destroy();
    editor = createEditor({ value: f.content || '', readOnly: true, file: f.name, label: f.name + ' (effective)' });
    v.onCleanup(() => editor.destroy());
    const group = String(f.ref || '').startsWith('group/') ? f.ref.slice('group/'.length) : '';
    mount(pane, h('div', { class: 'row mb' }, h('strong', { class: 'mono' }, f.name),
      group ? h('a', { class: 'badge info', href: '#/shared/' + encodeURIComponent(group) }, 'from group ' + group) : h('span', { class: 'badge' }, 'own file'),
      f.revision ? h('span', { class: 'muted small', 'data-test': 'effective-revision' }, (group || ws.name) + ' at revision ' + f.revision +
        (f.file_revision && f.file_revision !== f.revision ? ', file last changed in revision ' + f.file_revision : '')) : null), editor.el);
  }
  for (const f of files) list.appendChild(h('li', {}, h('button', { type: 'button', class: 'file-btn', 'data-file': f.name, onclick: () => show(f) }, f.name)));
  if (!files.length) list.appendChild(h('li', { class: 'muted' }, 'No files.'));
  mount(ws.body,
    h('p', { class: 'muted' }, 'What the SDK of ', ws.name, ' reads at revision ', String(res.revision || 0), ': its own files and, as ', h('code', {}, 'group/file'), ', the files of the groups it links.'),
    h('div', { class: 'workspace' }, h('div', { class: 'panel' }, list), h('div', { class: 'panel' }, pane)));
  if (files.length) show(files[0]);
  else mount(pane, h('div', { class: 'empty-state' }, 'Nothing to show.'));
}
