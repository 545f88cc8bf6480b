// API tokens (admins): create with grants and an expiry (the token is shown
// once), list, revoke. The server keeps only a hash.
import { h, mount, clear, when, validTime, modal, tableWrap } from './dom.js';
import * as api from './api.js';

const ROLES = ['viewer', 'editor', 'admin', 'agent', 'proxy'];
const TTLS = [['', 'never'], ['1h', '1 hour'], ['24h', '1 day'], ['168h', '7 days'], ['720h', '30 days'], ['2160h', '90 days']];

function grantRow(rows) {
  const role = h('select', { 'aria-label': 'Role', 'data-test': 'grant-role' }, ROLES.map((r) => h('option', { value: r }, r)));
  const pattern = h('input', { 'aria-label': 'On services (name or glob)', placeholder: 'orders or team-a-*', value: '*', 'data-test': 'grant-pattern', size: 18 });
  const row = h('div', { class: 'row mb grant' }, role, h('span', { class: 'muted' }, 'on'), pattern,
    h('button', { type: 'button', class: 'link', 'aria-label': 'Remove this grant', onclick: () => { if (rows.children.length > 1) row.remove(); } }, 'remove'));
  role.addEventListener('change', () => { if (role.value === 'admin') pattern.value = '*'; pattern.disabled = role.value === 'admin'; });
  row.read = () => ({ role: role.value, pattern: role.value === 'admin' ? '*' : pattern.value.trim() });
  return row;
}

const grantText = (g) => (g.role === 'admin' ? 'admin' : g.role + ' on ' + g.pattern);

// tokensPage lists, creates and revokes API tokens.
export async function tokensPage(v) {
  v.title('Tokens');
  if (!v.isAdmin()) {
    v.mount(h('h1', {}, 'Tokens'), h('p', { class: 'muted' }, 'Only admins manage tokens.'));
    return;
  }
  const listBody = h('tbody');
  const created = h('div', { 'data-test': 'token-created' });
  const rows = h('div', { 'data-test': 'grants' });
  rows.appendChild(grantRow(rows));
  const name = h('input', { 'aria-label': 'Token name', placeholder: 'ci-deploy', required: true, maxlength: 64, 'data-test': 'token-name', autocomplete: 'off' });
  const ttl = h('select', { 'aria-label': 'Expires after', 'data-test': 'token-ttl' }, TTLS.map(([val, l]) => h('option', { value: val, selected: val === '720h' }, l)));

  const form = h('form', { class: 'panel', onsubmit: async (e) => {
    e.preventDefault();
    const roles = [...rows.children].map((r) => r.read());
    if (!name.value.trim()) { v.flash('Give the token a name.', 'error'); name.focus(); return; }
    if (roles.some((g) => !g.pattern)) { v.flash('Every grant needs a service name or glob.', 'error'); return; }
    const req = { name: name.value.trim(), roles };
    if (ttl.value) req.ttl = ttl.value;
    try {
      const t = await v.api.post('/tokens', req);
      mount(created, h('div', { class: 'panel', role: 'status' },
        h('h2', {}, 'Token ', h('code', {}, t.name), ' created'),
        h('p', {}, h('strong', {}, 'Copy it now: it is shown only once. '), 'Use it with ', h('code', {}, 'SLUICE_TOKEN'), ' or sign in here with it.'),
        h('div', { class: 'token-once', 'data-test': 'token-value' }, t.token),
        h('div', { class: 'row mt' },
          h('button', { type: 'button', onclick: () => navigator.clipboard && navigator.clipboard.writeText(t.token).then(() => v.flash('Token copied', 'ok')) }, 'Copy token'),
          h('button', { type: 'button', onclick: () => clear(created) }, 'Done, hide the token'))));
      name.value = '';
      await refresh();
    } catch (ex) { v.showError(ex, 'Token not created'); }
  } },
  h('h2', {}, 'New token'),
  h('div', { class: 'row mb' }, h('label', {}, 'Name', name), h('label', {}, 'expires after', ttl)),
  h('p', { class: 'muted small' }, 'Grants: a role on a service name or a glob (* and ?). Admin covers everything.'),
  rows,
  h('div', { class: 'row' }, h('button', { type: 'button', onclick: () => rows.appendChild(grantRow(rows)) }, '+ another grant'),
    h('span', { class: 'spacer' }), h('button', { class: 'primary', type: 'submit', 'data-test': 'token-create' }, 'Create token')));

  async function refresh() {
    const tokens = api.list(await v.api.get('/tokens'), 'tokens');
    clear(listBody);
    for (const t of tokens) {
      const exp = validTime(t.expires);
      const expired = exp && exp <= new Date();
      listBody.appendChild(h('tr', { 'data-token': t.id },
        h('th', { scope: 'row' }, t.name, t.id === v.me.id ? h('span', { class: 'badge info' }, ' you') : null),
        h('td', { class: 'mono small' }, t.id),
        h('td', {}, (t.roles || []).map((g) => h('span', { class: 'chip' }, grantText(g)))),
        h('td', {}, t.created_by || '—', ' ', when(t.created)),
        h('td', {}, exp ? [when(t.expires), expired ? h('span', { class: 'badge bad' }, ' expired') : null] : h('span', { class: 'muted' }, 'never')),
        h('td', {}, t.id === v.me.id ? null : h('button', { class: 'danger', 'data-test': 'revoke-token-' + t.id, 'aria-label': 'Revoke token ' + t.name, onclick: () => revoke(t) }, 'Revoke…'))));
    }
    if (!tokens.length) listBody.appendChild(h('tr', {}, h('td', { colspan: 6, class: 'empty-state' }, 'No tokens.')));
  }

  function revoke(t) {
    const go = h('button', { class: 'danger primary', 'data-test': 'confirm-revoke-token' }, 'Revoke ' + t.name);
    const m = modal('Revoke token ' + t.name + '?',
      h('p', {}, 'Every client using it is refused from now on (401), and its console sessions end. Grants: ', (t.roles || []).map((g) => h('span', { class: 'chip' }, grantText(g)))),
      h('div', { class: 'actions' }, h('button', { onclick: () => m.close() }, 'Cancel'), go));
    go.addEventListener('click', async () => {
      go.disabled = true;
      try {
        await v.api.del(api.path('tokens', t.id));
        m.close();
        v.flash('Token ' + t.name + ' revoked', 'ok');
        await refresh();
      } catch (e) { go.disabled = false; v.showError(e, 'Not revoked'); }
    });
  }

  v.mount(h('h1', {}, 'API tokens'), form, created,
    h('div', { class: 'panel' }, h('h2', {}, 'Tokens'), tableWrap('Tokens', h('table', { 'data-test': 'tokens' },
      h('thead', {}, h('tr', {}, ['Name', 'Id', 'Grants', 'Created', 'Expires'].map((c) => h('th', { scope: 'col' }, c)), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))), listBody))));
  await refresh();
}
