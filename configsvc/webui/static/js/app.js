// The console shell: sign-in, navigation, hash routing, flash messages and
// the permission checks that decide which controls a user sees.
import { h, mount, globMatch, closeModals, modal } from './dom.js';
import * as api from './api.js';
import { servicesPage, workspacePage, groupsPage } from './services.js';
import { pinsPage, auditPage, routesPage } from './admin.js';
import { changesPage } from './changes.js';

const root = document.getElementById('app');
const flashBox = h('div', { class: 'flash', 'aria-live': 'polite', 'data-test': 'flash' });
let me = null;
let cleanups = [];

// flash shows a message for a while; errors stay until clicked.
export function flash(message, kind = 'info', code = '') {
  if (!flashBox.isConnected) document.body.appendChild(flashBox);
  const m = h('div', { class: 'msg ' + kind, role: kind === 'error' ? 'alert' : 'status' },
    h('button', { class: 'x', title: 'Dismiss', 'aria-label': 'Dismiss', onclick: () => m.remove() }, '×'),
    message, code ? h('span', { class: 'code' }, code) : null);
  flashBox.appendChild(m);
  // Keep the newest few; an error stays longer than a confirmation.
  while (flashBox.children.length > 3) flashBox.firstChild.remove();
  setTimeout(() => m.remove(), kind === 'error' ? 15000 : 4000);
}

// showError reports a failed call with the server's own message.
export function showError(err, what) {
  const prefix = what ? what + ': ' : '';
  if (err instanceof api.APIError) flash(prefix + err.message, 'error', err.code ? err.status + ' ' + err.code : String(err.status || ''));
  else flash(prefix + (err && err.message ? err.message : String(err)), 'error');
}

function roles() {
  const rs = (me && (me.roles || me.grants)) || [];
  return rs.map((r) => {
    if (typeof r === 'string') {
      const [role, pattern = '*'] = r.split(':');
      return { role, pattern };
    }
    return { role: r.role || r.name, pattern: r.pattern || r.on || r.target || '*' };
  });
}

// isAdmin reports whether the signed-in user holds the admin role.
export function isAdmin() { return !!(me && me.admin) || roles().some((r) => r.role === 'admin'); }

// canEdit reports whether the user may change service (kind 'service') or
// group (kind 'group') name. sluice-system is admin-only. The server decides;
// this only hides controls a user could not use.
export function canEdit(kind, name) {
  if (isAdmin()) return true;
  if (kind === 'service' && name === 'sluice-system') return false;
  return roles().some((r) => r.role === 'editor' && globMatch(r.pattern, name));
}

// canEditAny reports whether the user may edit something (to offer "create").
export function canEditAny() { return isAdmin() || roles().some((r) => r.role === 'editor'); }

// onCleanup registers fn to run when the user leaves the current page
// (closing event streams and timers).
export function onCleanup(fn) { cleanups.push(fn); }

function runCleanups() {
  closeModals();
  const fns = cleanups;
  cleanups = [];
  for (const fn of fns) { try { fn(); } catch (_) { /* a failed cleanup must not block navigation */ } }
}

// guard.dirty, when set by a page, reports unsaved edits; leaving such a
// page (navigation, sign-out, closing the tab) asks first.
export const guard = { dirty: null };

function mayLeave() {
  return !(guard.dirty && guard.dirty()) || confirm('You have unpublished edits. Leave this page and discard them?');
}

function signIn(message) {
  runCleanups();
  me = null;
  const token = h('input', { type: 'password', name: 'token', id: 'token', autocomplete: 'off', placeholder: 'slc_…', required: true, 'data-test': 'token' });
  const err = h('div', { class: 'notice error', hidden: !message, 'data-test': 'signin-error' }, message || '');
  const btn = h('button', { class: 'primary', type: 'submit', 'data-test': 'signin' }, 'Sign in');
  const form = h('form', { class: 'panel signin', onsubmit: async (e) => {
    e.preventDefault();
    btn.disabled = true;
    err.hidden = true;
    try {
      await api.post('/session', { token: token.value.trim() }, { quiet401: true });
      token.value = '';
      await boot();
    } catch (ex) {
      token.value = '';
      err.textContent = ex.status === 401 ? 'That token was not accepted: ' + ex.message : ex.message;
      err.hidden = false;
    } finally {
      btn.disabled = false;
    }
  } },
  h('h1', {}, h('img', { src: 'favicon.svg', width: 28, height: 28, alt: '' }), 'Sluice console'),
  h('p', { class: 'muted' }, 'Sign in with an API token. It is exchanged for a session cookie and is not kept in the browser. The first admin token is in ', h('code', {}, 'sluice-data/admin.token'), '.'),
  err,
  h('label', { class: 'stack', for: 'token' }, 'API token', token),
  h('div', { class: 'row mt' }, btn));
  mount(root, form);
  token.focus();
}

async function signOut() {
  if (!mayLeave()) return;
  guard.dirty = null;
  try { await api.del('/session', { quiet401: true }); } catch (e) { if (e.status !== 401) showError(e, 'Sign out'); }
  location.hash = '';
  signIn('');
}

const navItems = [
  ['services', 'Services'], ['shared', 'Shared groups'], ['changes', 'Changes'], ['routes', 'Routes'], ['pins', 'Pins'], ['audit', 'Audit'],
];

function shell() {
  const who = me.name || me.id || 'signed in';
  const roleText = roles().map((r) => r.role === 'admin' ? 'admin' : r.role + ' ' + r.pattern).join(', ');
  // The audit log is admin-only on the server; others would only get a refusal.
  const items = navItems.filter(([k]) => k !== 'audit' || isAdmin());
  const nav = h('nav', {}, items.map(([k, label]) => h('a', { href: '#/' + k, 'data-nav': k }, label)));
  const main = h('main', { id: 'main' });
  mount(root,
    h('header', { class: 'top' },
      h('a', { class: 'logo', href: '#/services' }, h('img', { src: 'favicon.svg', width: 22, height: 22, alt: '' }), 'Sluice'),
      nav,
      h('div', { class: 'me' }, h('span', { 'data-test': 'whoami', title: roleText }, who, ' · ', roleText || 'no roles'),
        h('button', { onclick: signOut, 'data-test': 'signout' }, 'Sign out'))),
    main);
  return { nav, main };
}

let frame = null;
let lastHash = '';

async function route() {
  if (!me) return;
  if (location.hash !== lastHash && !mayLeave()) {
    history.replaceState(null, '', lastHash || '#/services');
    return;
  }
  guard.dirty = null;
  lastHash = location.hash;
  runCleanups();
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const section = parts[0] || 'services';
  for (const a of frame.nav.children) a.classList.toggle('active', a.dataset.nav === section);
  const main = frame.main;
  mount(main, h('div', { class: 'muted' }, 'Loading…'));
  const app = { main, flash, showError, canEdit, canEditAny, isAdmin, onCleanup, guard, me };
  try {
    switch (section) {
      case 'services':
        if (parts[1]) await workspacePage(app, 'service', parts[1], parts[2] || 'files');
        else await servicesPage(app);
        break;
      case 'shared':
        if (parts[1]) await workspacePage(app, 'group', parts[1], parts[2] || 'files');
        else await groupsPage(app);
        break;
      case 'changes': await changesPage(app, parts[1], parts[2], parts[3]); break;
      case 'routes': await routesPage(app, parts[1] || 'files'); break;
      case 'pins': await pinsPage(app); break;
      case 'audit': await auditPage(app); break;
      default: mount(main, h('div', { class: 'empty-state' }, 'No such page. ', h('a', { href: '#/services' }, 'Go to services')));
    }
  } catch (e) {
    if (e instanceof api.APIError && e.status === 401) return;
    mount(main, h('div', { class: 'notice error', 'data-test': 'page-error' }, e.message || String(e)));
  }
}

async function boot() {
  try {
    me = await api.get('/whoami', { quiet401: true });
  } catch (e) {
    if (e.status === 401) { signIn(''); return; }
    mount(root, h('div', { class: 'panel signin' }, h('div', { class: 'notice error' }, 'The server answered: ' + e.message),
      h('button', { onclick: boot }, 'Try again')));
    return;
  }
  frame = shell();
  if (!location.hash || location.hash === '#/') history.replaceState(null, '', '#/services');
  lastHash = '';
  await route();
}

let reauthOpen = false;

// reauth asks for a token in a dialog, so a session that ends during an edit
// does not throw the unpublished edits away. The refused call can be retried.
function reauth() {
  if (reauthOpen) return;
  reauthOpen = true;
  const token = h('input', { type: 'password', autocomplete: 'off', placeholder: 'slc_…', 'aria-label': 'API token', 'data-test': 'reauth-token' });
  const err = h('div', { class: 'notice error', hidden: true });
  const m = modal('Your session has ended',
    h('p', {}, 'Your unpublished edits are still here. Sign in again to continue, then repeat the last action.'),
    err, h('label', { class: 'stack' }, 'API token', token),
    h('div', { class: 'actions' },
      h('button', { onclick: () => { reauthOpen = false; m.close(); guard.dirty = null; signIn(''); } }, 'Discard edits and sign in'),
      h('button', { class: 'primary', 'data-test': 'reauth', onclick: async () => {
        try {
          await api.post('/session', { token: token.value.trim() }, { quiet401: true });
          token.value = '';
          reauthOpen = false;
          m.close();
          flash('Signed in again', 'ok');
        } catch (e) {
          token.value = '';
          err.textContent = e.message;
          err.hidden = false;
        }
      } }, 'Sign in')));
  token.focus();
}

api.request.onUnauthorized = () => {
  if (!me) return;
  if (guard.dirty && guard.dirty()) reauth();
  else signIn('Your session has ended. Sign in again.');
};
window.addEventListener('hashchange', route);
window.addEventListener('beforeunload', (e) => { if (guard.dirty && guard.dirty()) { e.preventDefault(); e.returnValue = ''; } });
boot();
