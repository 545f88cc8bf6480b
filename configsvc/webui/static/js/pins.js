// Debug pins: create (targets from the live registry), list and revoke.
import { h, mount, clear, when, modal, tableWrap } from './dom.js';
import * as api from './api.js';

function pinState(p) {
  if (p.state) return [p.state, { active: 'ok', revoked: 'bad' }[p.state] || ''];
  if (p.revoked) return ['revoked', 'bad'];
  if (p.expires && new Date(p.expires) <= new Date()) return ['expired', ''];
  return ['active', 'ok'];
}

// pinsPage creates, lists and revokes debug pins.
export async function pinsPage(v) {
  v.title('Debug pins');
  const services = api.list(await v.api.get('/services'), 'services').filter((s) => s !== 'sluice-system');
  const listBody = h('tbody');
  const created = h('div', { 'data-test': 'pin-created' });
  const targets = h('div', { 'data-test': 'pin-targets' });

  function targetRow() {
    const svc = h('select', { 'aria-label': 'Service', 'data-test': 'pin-service' }, h('option', { value: '' }, 'service…'), services.filter((s) => v.canEdit('service', s)).map((s) => h('option', { value: s }, s)));
    const inst = h('select', { 'aria-label': 'Instance', 'data-test': 'pin-instance', disabled: true }, h('option', { value: '' }, 'instance…'));
    svc.addEventListener('change', async () => {
      clear(inst).appendChild(h('option', { value: '' }, svc.value ? 'loading…' : 'instance…'));
      inst.disabled = true;
      if (!svc.value) return;
      try {
        const insts = api.list(await v.api.get(api.path('services', svc.value, 'instances')), 'instances');
        clear(inst).appendChild(h('option', { value: '' }, insts.length ? 'instance…' : 'no live instances'));
        for (const i of insts) inst.appendChild(h('option', { value: i.id }, i.id + (i.addr ? ' (' + i.addr + ')' : '') + ' · rev ' + i.revision));
        inst.disabled = !insts.length;
      } catch (e) { v.showError(e, 'Instances of ' + svc.value); }
    });
    const row = h('div', { class: 'row mb' }, svc, '→', inst,
      h('button', { type: 'button', class: 'link', onclick: () => { if (targets.children.length > 1) row.remove(); } }, 'remove'));
    row.read = () => [svc.value, inst.value];
    return row;
  }

  const ttl = h('select', { 'aria-label': 'Time to live', 'data-test': 'pin-ttl' }, ['15m', '30m', '1h', '4h', '24h'].map((t) => h('option', { value: t, selected: t === '30m' }, t)));
  const note = h('input', { placeholder: 'note, e.g. debugging ticket 123', 'aria-label': 'Note', size: 32, 'data-test': 'pin-note' });
  targets.appendChild(targetRow());
  const form = h('form', { class: 'panel', onsubmit: async (e) => {
    e.preventDefault();
    const t = {};
    for (const row of targets.children) {
      const [s, i] = row.read();
      if (s && i) t[s] = i;
    }
    if (!Object.keys(t).length) { v.flash('Pick at least one service and one of its instances.', 'error'); return; }
    try {
      const res = await v.api.post('/pins', { targets: t, ttl: ttl.value, note: note.value });
      const token = res.token;
      const pin = res.pin || res;
      const curl = res.curl || "curl -H 'X-Sluice-Pin: " + token + "' http://127.0.0.1:7080/";
      mount(created, h('div', { class: 'panel' },
        h('h2', {}, 'Pin ', h('code', {}, pin.id || ''), ' created'),
        h('p', {}, h('strong', {}, 'Copy the token now: it is shown only once. '), 'Send it as the ', h('code', {}, 'X-Sluice-Pin'), ' header (or the ', h('code', {}, 'sluice_pin'), ' cookie) through the proxy.'),
        h('div', { class: 'token-once', 'data-test': 'pin-token' }, token),
        h('p', { class: 'muted' }, 'Ready to paste (the proxy listens on 127.0.0.1:7080 unless it was started with another --addr; add your path):'),
        h('div', { class: 'token-once', 'data-test': 'pin-curl' }, curl),
        h('div', { class: 'row mt' },
          h('button', { type: 'button', onclick: () => navigator.clipboard && navigator.clipboard.writeText(token).then(() => v.flash('Token copied', 'ok')) }, 'Copy token'),
          h('button', { type: 'button', onclick: () => navigator.clipboard && navigator.clipboard.writeText(curl).then(() => v.flash('curl line copied', 'ok')) }, 'Copy curl line'),
          h('button', { type: 'button', onclick: () => clear(created) }, 'Done, hide the token'))));
      note.value = '';
      await refresh();
    } catch (ex) { v.showError(ex, 'Pin not created'); }
  } },
  h('h2', {}, 'New pin'),
  h('p', { class: 'muted' }, 'Send your own requests to chosen instances while everyone else is load-balanced. You need edit rights on every service you pin.'),
  targets,
  h('div', { class: 'row' },
    h('button', { type: 'button', onclick: () => targets.appendChild(targetRow()) }, '+ another service'),
    h('label', {}, 'expires in', ttl), note,
    h('button', { class: 'primary', type: 'submit', 'data-test': 'pin-create' }, 'Create pin')));

  async function refresh() {
    const pins = api.list(await v.api.get('/pins'), 'pins');
    clear(listBody);
    for (const p of pins) {
      const [state, cls] = pinState(p);
      listBody.appendChild(h('tr', { 'data-pin': p.id },
        h('td', { class: 'mono' }, p.id),
        h('td', {}, Object.entries(p.targets || {}).map(([s, i]) => h('span', { class: 'chip' }, s + ' → ' + i))),
        h('td', {}, p.note || ''),
        h('td', {}, p.created_by || '—', ' ', when(p.created)),
        h('td', {}, when(p.expires)),
        h('td', {}, h('span', { class: 'badge ' + cls, 'data-test': 'pin-state' }, state), p.revoked_by ? h('span', { class: 'muted small' }, ' by ' + p.revoked_by) : null),
        h('td', {}, state === 'active' && Object.keys(p.targets || {}).every((svc) => v.canEdit('service', svc)) ? h('button', { class: 'danger', 'data-test': 'revoke-' + p.id, onclick: () => revoke(p) }, 'Revoke…') : null)));
    }
    if (!pins.length) listBody.appendChild(h('tr', {}, h('td', { colspan: 7, class: 'empty-state' }, 'No pins.')));
  }

  function revoke(p) {
    const go = h('button', { class: 'danger primary', 'data-test': 'confirm-revoke' }, 'Revoke pin');
    const m = modal('Revoke pin ' + p.id + '?',
      h('p', {}, 'Requests carrying this pin get 403 “pin revoked” from now on. Targets: ', Object.entries(p.targets || {}).map(([s, i]) => h('span', { class: 'chip' }, s + ' → ' + i))),
      h('div', { class: 'actions' }, h('button', { onclick: () => m.close() }, 'Cancel'), go));
    go.addEventListener('click', async () => {
      go.disabled = true;
      try {
        await v.api.del(api.path('pins', p.id));
        m.close();
        v.flash('Pin ' + p.id + ' revoked', 'ok');
        await refresh();
      } catch (e) { go.disabled = false; v.showError(e, 'Revoke refused'); }
    });
  }

  v.mount(h('h1', {}, 'Debug pins'),
    v.canEditAny() ? form : h('p', { class: 'muted' }, 'You can see pins; creating one needs edit rights on its services.'),
    created,
    h('div', { class: 'panel' }, h('h2', {}, 'Pins'), tableWrap('Pins', h('table', { 'data-test': 'pins' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Id'), h('th', {}, 'Targets'), h('th', {}, 'Note'), h('th', {}, 'Created'), h('th', {}, 'Expires'), h('th', {}, 'State'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))), listBody))));
  await refresh();
}
