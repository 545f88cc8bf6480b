// The console shell: sign-in, the header and navigation, the route table and
// the permission checks that decide which controls a user sees.
import { h, mount, globMatch, modal } from './dom.js';
import * as api from './api.js';
import { toast } from './notify.js';
import { Router } from './router.js';
import { servicesPage, groupsPage } from './services.js';
import { workspacePage } from './workspace.js';
import { revisionPage } from './history.js';
import { routesPage } from './routes.js';
import { pinsPage } from './pins.js';
import { auditPage } from './audit.js';
import { tokensPage } from './tokens.js';
import { searchPage } from './search.js';
import { changesPage, changePage } from './changes.js';
import { grayPage } from './grays.js';

const root = document.getElementById('app');
let me = null;
let router = null;

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
function isAdmin() { return !!(me && me.admin) || roles().some((r) => r.role === 'admin'); }

// canEdit reports whether the user may change service (kind 'service') or
// group (kind 'group') name. sluice-system is admin-only. The server decides;
// this only hides controls a user could not use.
function canEdit(kind, name) {
  if (isAdmin()) return true;
  if (kind === 'service' && name === 'sluice-system') return false;
  return roles().some((r) => r.role === 'editor' && globMatch(r.pattern, name));
}

// canEditAny reports whether the user may edit something (to offer "create").
function canEditAny() { return isAdmin() || roles().some((r) => r.role === 'editor'); }

// The pages, by hash. A page is page(view, params); see router.js. Tabs of a
// service or group are segments after its name.
function routes(r) {
  const ws = (kind) => (v, p) => workspacePage(v, kind, p.name, p.tab || 'files');
  const rev = (kind) => (v, p) => revisionPage(v, kind, p.name, +p.rev, p.file || '');
  return r
    .add('services', servicesPage, { nav: 'services' })
    .add('services/:name', ws('service'), { nav: 'services' })
    .add('services/:name/:tab', ws('service'), { nav: 'services' })
    .add('services/:name/revisions/:rev', rev('service'), { nav: 'services' })
    .add('services/:name/revisions/:rev/:file', rev('service'), { nav: 'services' })
    .add('services/:name/grays/:id', (v, p) => grayPage(v, 'service', p.name, p.id), { nav: 'services' })
    .add('shared', groupsPage, { nav: 'shared' })
    .add('shared/:name', ws('group'), { nav: 'shared' })
    .add('shared/:name/:tab', ws('group'), { nav: 'shared' })
    .add('shared/:name/revisions/:rev', rev('group'), { nav: 'shared' })
    .add('shared/:name/revisions/:rev/:file', rev('group'), { nav: 'shared' })
    .add('shared/:name/grays/:id', (v, p) => grayPage(v, 'group', p.name, p.id), { nav: 'shared' })
    .add('routes', (v) => routesPage(v, 'files'), { nav: 'routes' })
    .add('routes/:tab', (v, p) => routesPage(v, p.tab), { nav: 'routes' })
    .add('routes/revisions/:rev', (v, p) => revisionPage(v, 'service', 'sluice-system', +p.rev, ''), { nav: 'routes' })
    .add('routes/revisions/:rev/:file', (v, p) => revisionPage(v, 'service', 'sluice-system', +p.rev, p.file), { nav: 'routes' })
    .add('changes', changesPage, { nav: 'changes' })
    .add('changes/:kind/:name/:id', (v, p) => changePage(v, p.kind, p.name, p.id), { nav: 'changes' })
    .add('pins', pinsPage, { nav: 'pins' })
    .add('search', searchPage, { nav: 'search' })
    .add('audit', auditPage, { nav: 'audit' })
    .add('tokens', tokensPage, { nav: 'tokens' });
}

const navItems = [
  ['services', 'Services'], ['shared', 'Shared groups'], ['changes', 'Changes'], ['routes', 'Routes'], ['pins', 'Pins'], ['search', 'Search'],
  ['audit', 'Audit', 'admin'], ['tokens', 'Tokens', 'admin'],
];

function signIn(message) {
  if (router) router.stop();
  router = null;
  me = null;
  document.title = 'Sign in · Sluice';
  const token = h('input', { type: 'password', name: 'token', id: 'token', autocomplete: 'off', placeholder: 'slc_…', required: true, 'data-test': 'token' });
  const err = h('div', { class: 'notice error', role: 'alert', hidden: !message, 'data-test': 'signin-error' }, message || '');
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
  mount(root, h('main', { id: 'main' }, form));
  token.focus();
}

async function signOut() {
  if (router && !router.mayLeave()) return;
  if (router && router.view) router.view.dirty = null;
  try { await api.del('/session', { quiet401: true }); } catch (e) { if (e.status !== 401) toast('Sign out: ' + e.message, 'error'); }
  history.replaceState(null, '', location.pathname);
  signIn('');
}

function shell() {
  const who = me.name || me.id || 'signed in';
  const roleText = roles().map((r) => r.role === 'admin' ? 'admin' : r.role + ' ' + r.pattern).join(', ');
  // The audit log and tokens are admin-only on the server; others would only get a refusal.
  const items = navItems.filter(([, , only]) => only !== 'admin' || isAdmin());
  const nav = h('nav', { 'aria-label': 'Main' }, items.map(([k, label]) => h('a', { href: '#/' + k, 'data-nav': k }, label)));
  const main = h('main', { id: 'main', tabindex: '-1' });
  const skip = h('button', { class: 'skip', onclick: () => main.focus() }, 'Skip to content');
  mount(root,
    skip,
    h('header', { class: 'top' },
      h('a', { class: 'logo', href: '#/services' }, h('img', { src: 'favicon.svg', width: 22, height: 22, alt: '' }), 'Sluice'),
      nav,
      h('div', { class: 'me' }, h('span', { 'data-test': 'whoami', title: roleText }, who, ' · ', roleText || 'no roles'),
        h('button', { onclick: signOut, 'data-test': 'signout' }, 'Sign out'))),
    main);
  return { nav, main };
}

async function boot() {
  try {
    me = await api.get('/whoami', { quiet401: true });
  } catch (e) {
    if (e.status === 401) { signIn(''); return; }
    mount(root, h('main', { id: 'main' }, h('div', { class: 'panel signin' }, h('div', { class: 'notice error', role: 'alert' }, 'The server answered: ' + e.message),
      h('button', { onclick: boot }, 'Try again'))));
    return;
  }
  const frame = shell();
  router = routes(new Router(frame.main, { canEdit, canEditAny, isAdmin, me }, (view, route) => {
    const section = route ? route.nav : '';
    for (const a of frame.nav.children) {
      const on = a.dataset.nav === section;
      a.classList.toggle('active', on);
      if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
  }));
  if (!location.hash || location.hash === '#/') history.replaceState(null, '', '#/services');
  await router.render();
}

let reauthOpen = false;

// reauth asks for a token in a dialog, so a session that ends during an edit
// does not throw the unpublished edits away. The refused call can be retried.
function reauth() {
  if (reauthOpen) return;
  reauthOpen = true;
  const token = h('input', { type: 'password', autocomplete: 'off', placeholder: 'slc_…', 'aria-label': 'API token', 'data-test': 'reauth-token' });
  const err = h('div', { class: 'notice error', role: 'alert', hidden: true });
  const m = modal('Your session has ended',
    h('p', {}, 'Your unpublished edits are still here. Sign in again to continue, then repeat the last action.'),
    err, h('label', { class: 'stack' }, 'API token', token),
    h('div', { class: 'actions' },
      h('button', { onclick: () => { reauthOpen = false; m.close(); if (router && router.view) router.view.dirty = null; signIn(''); } }, 'Discard edits and sign in'),
      h('button', { class: 'primary', 'data-test': 'reauth', onclick: async () => {
        try {
          await api.post('/session', { token: token.value.trim() }, { quiet401: true });
          token.value = '';
          reauthOpen = false;
          m.close();
          toast('Signed in again', 'ok');
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
  const v = router && router.view;
  if (v && v.dirty && v.dirty()) reauth();
  else signIn('Your session has ended. Sign in again.');
};
window.addEventListener('hashchange', () => { if (router) router.render(); });
window.addEventListener('beforeunload', (e) => {
  const v = router && router.view;
  if (v && v.dirty && v.dirty()) { e.preventDefault(); e.returnValue = ''; }
});
boot();
