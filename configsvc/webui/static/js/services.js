// The lists of services and shared groups: one summary request per page
// (GET /v1/summary/services or /v1/summary/shared), sorted, filtered and
// paged by the server, with the filters written to the URL.
import { h, mount, clear, when, tableWrap } from './dom.js';
import * as api from './api.js';
import { countBadges } from './instances.js';

const SYSTEM = 'sluice-system';
const PAGE = 50;

// NAME_PATTERN is the service and group name rule (configsvc.ValidateServiceName)
// as an HTML pattern: valid under the v flag Chromium compiles patterns with
// (a "-" in a class must be escaped there).
export const NAME_PATTERN = '[a-z0-9](?:[a-z0-9\\-]{0,61}[a-z0-9])?';
const NAME_RE = new RegExp('^' + NAME_PATTERN + '$');
// OWNER_RE is what the summary's owner filter takes (a grant pattern).
const OWNER_RE = /^[a-z0-9*?-]{1,63}$/;

// nameProblem explains why name is not a valid service or group name, or ''.
export function nameProblem(name) {
  if (!name) return 'Enter a name.';
  if (name.length > 63) return 'A name has at most 63 characters.';
  if (!NAME_RE.test(name)) return 'Use a-z, 0-9 and "-", starting and ending with a letter or digit.';
  return '';
}

// createForm offers to create a service or a group; the name is checked in
// the browser first, with the reason next to the field.
export function createForm(v, kind) {
  const what = kind === 'group' ? 'group' : 'service';
  const hint = h('span', { class: 'field-error', id: 'new-name-hint', 'data-test': 'new-name-error', role: 'alert' });
  const input = h('input', {
    placeholder: 'new-' + what, pattern: NAME_PATTERN, maxlength: 63, title: 'a-z, 0-9 and -, up to 63 characters',
    'aria-label': 'New ' + what + ' name', 'aria-describedby': 'new-name-hint', 'data-test': 'new-name', required: true, autocomplete: 'off',
  });
  const check = () => {
    const p = input.value ? nameProblem(input.value.trim()) : '';
    input.setCustomValidity(p);
    hint.textContent = p;
    input.setAttribute('aria-invalid', p ? 'true' : 'false');
    return !p;
  };
  input.addEventListener('input', check);
  return h('form', { class: 'row', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const name = input.value.trim();
    const p = nameProblem(name);
    if (p) { input.setCustomValidity(p); hint.textContent = p; input.focus(); return; }
    try {
      await v.api.put(api.path(kind === 'group' ? 'shared' : 'services', name), {});
      v.flash((kind === 'group' ? 'Shared group ' : 'Service ') + name + ' created', 'ok');
      location.hash = (kind === 'group' ? '#/shared/' : '#/services/') + encodeURIComponent(name);
    } catch (ex) { v.showError(ex, 'Create ' + name); }
  } }, input, h('button', { class: 'primary', type: 'submit', 'data-test': 'create' }, kind === 'group' ? 'Create group' : 'Create service'), hint);
}

// count reads a summary field that is a number or a list.
function count(x) { return Array.isArray(x) ? x.length : (typeof x === 'number' ? x : 0); }

function chips(list, base) {
  if (!Array.isArray(list) || !list.length) return h('span', { class: 'muted' }, typeof list === 'number' ? String(list) : '—');
  return list.map((n) => h('a', { class: 'chip', href: base + encodeURIComponent(n) }, n));
}

// summaryPage is the list of services (kind 'service') or groups.
async function summaryPage(v, kind) {
  const isSvc = kind === 'service';
  const base = isSvc ? '#/services/' : '#/shared/';
  v.title(isSvc ? 'Services' : 'Shared groups');
  const q = v.query;
  const sorts = [['name', 'Sort by name'], ['-updated', 'Recently changed first'], ['updated', 'Least recently changed first']];
  const state = { q: q.get('q') || '', owner: q.get('owner') || '', rejected: q.get('rejected') === 'true', sort: sorts.some(([k]) => k === q.get('sort')) ? q.get('sort') : 'name', cursor: q.get('cursor') || '', back: [] };
  const search = h('input', { type: 'search', value: state.q, placeholder: 'Name, or a glob (orders-*)', 'aria-label': 'Filter by name or glob', 'data-test': 'search' });
  // owner: a grant pattern, the names a team owns (team-a-*); the server
  // refuses anything else, so the field says so first.
  const ownerHint = h('span', { class: 'field-error', id: 'owner-hint', role: 'alert' });
  const owner = h('input', { type: 'search', value: state.owner, placeholder: 'Owner glob (team-a-*)', 'aria-label': 'Owner: a grant pattern such as team-a-*', 'aria-describedby': 'owner-hint', 'data-test': 'owner', size: 16 });
  const rejected = h('input', { type: 'checkbox', checked: state.rejected, 'data-test': 'filter-rejected' });
  const sort = h('select', { 'aria-label': 'Sort', 'data-test': 'sort' }, sorts.map(([k, l]) => h('option', { value: k, selected: state.sort === k }, l)));
  const body = h('tbody');
  const status = h('span', { class: 'muted', role: 'status', 'data-test': 'list-status' });
  const prev = h('button', { type: 'button', 'data-test': 'prev-page' }, '← Previous');
  const next = h('button', { type: 'button', 'data-test': 'next-page' }, 'Next →');
  const cols = isSvc ? ['Service', 'Revision', 'Last change', 'Files', 'Shared groups', 'Instances'] : ['Group', 'Revision', 'Last change', 'Files', 'Used by'];

  function row(it) {
    const cells = [
      h('th', { scope: 'row' }, h('a', { href: base + encodeURIComponent(it.name) }, it.name), it.name === SYSTEM ? h('span', { class: 'badge' }, ' system') : null),
      h('td', { class: 'num' }, it.revision ? String(it.revision) : '—'),
      h('td', {}, it.author ? it.author + ' ' : '', when(it.updated)),
      h('td', { class: 'num' }, String(count(it.files))),
    ];
    if (isSvc) cells.push(h('td', {}, chips(it.links, '#/shared/')), h('td', {}, countBadges(it.instances)));
    else cells.push(h('td', {}, chips(it.users, '#/services/')));
    return h('tr', { [isSvc ? 'data-service' : 'data-group']: it.name }, cells);
  }

  async function load() {
    const p = new URLSearchParams({ sort: state.sort, limit: String(PAGE) });
    if (state.q) p.set('q', state.q);
    if (state.owner) p.set('owner', state.owner);
    if (state.rejected && isSvc) p.set('rejected', 'true');
    if (state.cursor) p.set('cursor', state.cursor);
    v.setQuery({ q: state.q, owner: state.owner, rejected: state.rejected && isSvc ? 'true' : '', sort: state.sort === 'name' ? '' : state.sort, cursor: state.cursor });
    status.textContent = 'Loading…';
    let res;
    try {
      res = await v.api.get('/summary/' + (isSvc ? 'services' : 'shared') + '?' + p);
    } catch (e) {
      if (e instanceof api.APIError && e.status === 404 && /^no endpoint /.test(e.message)) return fallback();
      throw e;
    }
    const items = Array.isArray(res.items) ? res.items : [];
    clear(body);
    for (const it of items) body.appendChild(row(it));
    if (!items.length) body.appendChild(h('tr', {}, h('td', { colspan: cols.length, class: 'empty-state' }, state.q || state.owner || state.rejected ? 'Nothing matches.' : isSvc ? 'No services yet.' : 'No shared groups yet.')));
    const total = typeof res.total === 'number' ? res.total : items.length;
    const first = state.back.length * PAGE;
    status.textContent = items.length ? 'Showing ' + (first + 1) + '–' + (first + items.length) + ' of ' + total : total + ' in all';
    state.next = res.next || '';
    next.disabled = !state.next;
    prev.disabled = !state.back.length;
  }

  // fallback lists names only, from a server without the summary endpoint.
  async function fallback() {
    const key = isSvc ? 'services' : 'groups';
    const names = api.list(await v.api.get(isSvc ? '/services' : '/shared'), key).filter((n) => n.includes(state.q));
    clear(body);
    for (const n of names) body.appendChild(row({ name: n }));
    status.textContent = names.length + ' (this server gives no summary: open one for its details)';
    next.disabled = prev.disabled = true;
  }

  const reload = () => { state.cursor = ''; state.back = []; load().catch((e) => v.showError(e)); };
  let timer = 0;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { state.q = search.value.trim(); reload(); }, 250); });
  owner.addEventListener('input', () => {
    clearTimeout(timer);
    const o = owner.value.trim();
    const bad = o && !OWNER_RE.test(o) ? 'An owner is a name or a glob of a-z, 0-9, "-", "*" and "?" (team-a-*), up to 63 characters.' : '';
    ownerHint.textContent = bad;
    owner.setAttribute('aria-invalid', bad ? 'true' : 'false');
    if (!bad) timer = setTimeout(() => { state.owner = o; reload(); }, 250);
  });
  v.onCleanup(() => clearTimeout(timer));
  rejected.addEventListener('change', () => { state.rejected = rejected.checked; reload(); });
  sort.addEventListener('change', () => { state.sort = sort.value; reload(); });
  next.addEventListener('click', () => { if (!state.next) return; state.back.push(state.cursor); state.cursor = state.next; load().catch((e) => v.showError(e)); });
  prev.addEventListener('click', () => { if (!state.back.length) return; state.cursor = state.back.pop(); load().catch((e) => v.showError(e)); });

  v.mount(
    h('div', { class: 'row' }, h('h1', {}, isSvc ? 'Services' : 'Shared groups'), h('span', { class: 'spacer' }),
      v.canEditAny() ? createForm(v, kind) : null),
    h('div', { class: 'row mb filters' }, search, owner,
      isSvc ? h('label', {}, rejected, 'with rejected instances') : null, sort, h('span', { class: 'spacer' }), status, ownerHint),
    h('div', { class: 'panel' }, tableWrap(isSvc ? 'Services' : 'Shared groups', h('table', { 'data-test': isSvc ? 'services' : 'groups' },
      h('thead', {}, h('tr', {}, cols.map((c, i) => h('th', { scope: 'col', class: i === 1 || i === 3 ? 'num' : null }, c)))), body))),
    h('div', { class: 'row' }, prev, next));
  await load();
}

// servicesPage lists services with their revision, last change, links and
// instance states.
export function servicesPage(v) { return summaryPage(v, 'service'); }

// groupsPage lists shared groups and the services that use each.
export function groupsPage(v) { return summaryPage(v, 'group'); }
