// Change governance in the console (docs/governance.md): the dry-run panel
// every publish and rollback dialog shows, the emergency option admins have
// under an approval policy, the change request inbox (diff, validation,
// blast radius, thread; approve, decline, apply, rebase), the emergency
// changes waiting for after-the-fact review, and the approval policies
// (admins). The pages are routes of the router (app.js): #/changes and
// #/changes/KIND/NAME/ID.
import { h, mount, when, tableWrap } from './dom.js';
import * as api from './api.js';
import { renderFileDiff, parseUnified } from './diff.js';
import { basePath, hrefOf } from './workspace.js';

// EMERGENCY_HEADER carries an admin's reason to publish past a policy.
const EMERGENCY_HEADER = 'X-Sluice-Emergency';

// changeHref is the console address of a change request.
export function changeHref(kind, name, id) {
  return '#/changes/' + encodeURIComponent(kind) + '/' + encodeURIComponent(name) + '/' + encodeURIComponent(id);
}

// violationText reads a violation as "file:line:column pointer message
// (keyword)", leaving out what is unknown.
function violationText(v) {
  return [(v.file || '') + (v.line ? ':' + v.line + (v.column ? ':' + v.column : '') : ''), v.pointer || '', v.message + (v.keyword ? ' (' + v.keyword + ')' : '')]
    .filter(Boolean).join(' ');
}

// dryRunPanel shows what a publish would do (…?dry_run=true): the
// validation, the services and live instances it would reach with the
// revisions they run, the routes it changes, and whether an approval
// policy makes it a change request. onViolation(v), when given, makes each
// violation a button that shows it in the editor.
export function dryRunPanel(d, onViolation) {
  const targets = d.targets || [];
  const insts = targets.reduce((n, t) => n + (t.instances || []).length, 0);
  const violations = d.violations || [];
  return h('div', { class: 'notice', 'data-test': 'dry-run', role: 'group', 'aria-label': 'Dry run' },
    d.valid ? h('div', { 'data-test': 'dry-run-valid' }, h('span', { class: 'badge ok' }, 'valid'), ' Formats and schemas pass.')
      : h('div', { 'data-test': 'dry-run-violations' }, h('span', { class: 'badge bad' }, (violations.length + (d.violations_omitted || 0)) + ' violation(s)'),
        ' Publishing would be refused:',
        h('ul', { class: 'plain' }, violations.map((v) => h('li', { class: 'mono small', 'data-line': v.line || '' },
          onViolation && v.file ? h('button', { type: 'button', class: 'link', title: 'Show it in the editor', onclick: () => onViolation(v) }, violationText(v)) : violationText(v))),
        d.violations_omitted ? h('li', { class: 'muted' }, d.violations_omitted + ' more not listed') : null)),
    h('div', { 'data-test': 'blast-radius' }, 'Reaches ', String(targets.length), targets.length === 1 ? ' service, ' : ' services, ',
      String(insts), insts === 1 ? ' live instance' : ' live instances', targets.length ? ': ' : '.',
      targets.map((t) => h('span', { class: 'chip', title: 'head revision ' + t.revision + ((t.instances || []).length ? '; ' + t.instances.map((i) => i.id + ' on revision ' + i.revision).join(', ') : '') },
        t.service + ' (' + (t.instances || []).length + ')'))),
    insts ? tableWrap('Live instances it reaches', h('table', { class: 'small', 'data-test': 'dry-run-instances' },
      h('thead', {}, h('tr', {}, ['Service', 'Instance', 'Address', 'Runs'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, targets.flatMap((t) => (t.instances || []).map((i) => h('tr', {},
        h('td', { class: 'mono' }, t.service), h('td', { class: 'mono' }, i.id), h('td', { class: 'mono' }, i.addr || ''),
        h('td', {}, 'on revision ' + (i.revision || 0) + (i.status === 'rejected' ? ' (rejected the last one)' : '')))))))) : null,
    (d.routes || []).length ? h('div', { 'data-test': 'route-changes' }, 'Routes: ', d.routes.map((r) => h('span', { class: 'chip' }, r.change + ' ' + r.route))) : null,
    d.change_request && d.policy ? h('div', { 'data-test': 'needs-approval' }, h('span', { class: 'badge warn' }, 'needs approval'),
      ' Policy ' + (d.policy.policies || []).join(', ') + ' requires ' + d.policy.approvals + ' approval(s)' +
      (d.policy.approver_role === 'admin' ? ' by admins' : '') + ': publishing creates a change request.') : null);
}

// dryRunFailed says that the dry run could not run, and why.
export function dryRunFailed(err) {
  return h('div', { class: 'notice error', 'data-test': 'dry-run-failed', role: 'alert' },
    'The dry run failed (', err.message, '): validation and blast radius are unknown. Publishing still validates.');
}

// governControls is the part of a publish dialog that depends on the dry
// run: the label and state of the publish button (publish, or submit a
// change request; disabled when the content is invalid), and, for an
// admin under an approval policy, the emergency option with its reason.
export function governControls(v, go, directLabel) {
  let dry = null, blocked = false;
  const reason = h('input', { class: 'message', maxlength: 2048, placeholder: 'Why this cannot wait for approval', 'data-test': 'emergency-reason', 'aria-label': 'Emergency reason' });
  const box = h('input', { type: 'checkbox', 'data-test': 'emergency' });
  const reasonRow = h('label', { class: 'stack' }, 'Reason (audited; the change is listed for review)', reason);
  const el = h('div', { class: 'notice', 'data-test': 'emergency-box' },
    h('label', {}, box, ' Emergency: publish now, past the approval policy'), reasonRow);
  function render() {
    const request = !!(dry && dry.change_request);
    el.hidden = !(request && v.isAdmin());
    reasonRow.hidden = !box.checked;
    go.textContent = request && !box.checked ? 'Submit for approval' : directLabel + (request ? ' now (emergency)' : '');
    go.disabled = blocked || !!(dry && !dry.valid);
  }
  box.addEventListener('change', render);
  render();
  return {
    el,
    // update shows the answer of a new dry run (null: none); blocked
    // disables publishing for a reason of the dialog's own.
    update(d, b = false) { dry = d; blocked = b; render(); },
    // headers returns hs with the emergency reason when the admin chose the
    // emergency path; it throws when the reason is missing or not plain text.
    headers(hs = {}) {
      if (el.hidden || !box.checked) return hs;
      const r = reason.value.trim();
      if (!r) throw new Error('Give the reason for the emergency change.');
      if (!/^[\x20-\x7e]+$/.test(r)) throw new Error('The emergency reason travels in a header: use plain ASCII text.');
      return { ...hs, [EMERGENCY_HEADER]: r };
    },
  };
}

// submitted tells the author their publish became a change request and
// opens it.
export function submitted(v, cr) {
  v.flash('Change request ' + cr.id + ' submitted: it needs ' + cr.policy.approvals + ' approval(s) before it applies.', 'ok');
  location.hash = changeHref(cr.kind, cr.name, cr.id);
}

// openChanges lists the open change requests of a service or group in box
// (above its files); nothing when there are none or they cannot be read.
export async function openChanges(v, base, box) {
  let crs = [];
  try { crs = api.list(await v.api.get(base + '/changes'), 'changes'); } catch (_) { return; /* the files are what matters here */ }
  if (!v.alive()) return;
  mount(box, crs.length ? h('div', { class: 'notice', 'data-test': 'open-changes', role: 'status' },
    crs.length === 1 ? 'A change request waits for approval: ' : crs.length + ' change requests wait for approval: ',
    crs.map((c) => h('a', { class: 'chip', href: changeHref(c.kind, c.name, c.id), title: (c.message || '').split('\n')[0] },
      c.id + ' by ' + c.author + ' (' + c.approvals + '/' + c.policy.approvals + ')'))) : null);
}

function stateBadge(c) {
  const cls = c.state === 'open' ? 'warn' : c.state === 'applied' ? 'ok' : '';
  return h('span', { class: 'badge ' + cls, 'data-test': 'change-state' }, c.state);
}

// changesPage lists change requests (open ones, or all with ?all=true),
// the emergency changes to review and, for admins, the approval policies.
export async function changesPage(v) {
  v.title('Change requests');
  const all = v.query.get('all') === 'true';
  const [list, ems, pols] = await Promise.all([v.api.get('/changes' + (all ? '?all=true' : '')), v.api.get('/emergencies'),
    v.isAdmin() ? v.api.get('/policies') : Promise.resolve(null)]);
  const changes = api.list(list, 'changes');
  const emergencies = api.list(ems, 'emergencies');
  const reload = () => v.router.render();
  const cols = ['Change', 'Target', 'State', 'Author', 'Approvals', 'Message', 'Submitted', 'Expires'];
  v.mount(
    h('div', { class: 'row' }, h('h1', {}, 'Change requests'), h('span', { class: 'spacer' }),
      h('label', {}, h('input', { type: 'checkbox', checked: all, 'data-test': 'show-closed', onchange: (e) => { v.setQuery({ all: e.target.checked ? 'true' : '' }); reload(); } }), ' Show applied and expired')),
    h('div', { class: 'panel' }, tableWrap('Change requests', h('table', { 'data-test': 'changes' },
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, changes.length ? changes.map((c) => h('tr', { 'data-change': c.id },
        h('th', { scope: 'row', class: 'mono' }, h('a', { href: changeHref(c.kind, c.name, c.id) }, c.id)),
        h('td', {}, h('a', { href: hrefOf(c.kind, c.name) }, c.kind + '/' + c.name), ' ', h('span', { class: 'badge' }, c.operation)),
        h('td', {}, stateBadge(c)),
        h('td', {}, c.author),
        h('td', {}, c.approvals + ' / ' + c.policy.approvals, c.declines ? [' ', h('span', { class: 'badge bad' }, c.declines + ' declined')] : null),
        h('td', {}, (c.message || '').split('\n')[0]),
        h('td', {}, when(c.created)),
        h('td', {}, c.state === 'open' ? when(c.expires) : '—'))) : h('tr', {}, h('td', { colspan: cols.length, class: 'empty-state' }, all ? 'No change requests.' : 'No change request waits for approval.')))))),
    h('h2', {}, 'Emergency changes to review'),
    h('div', { class: 'panel' }, tableWrap('Emergency changes', h('table', { 'data-test': 'emergencies' },
      h('thead', {}, h('tr', {}, ['Change', 'Operation', 'Actor', 'Reason', 'Time'].map((c) => h('th', { scope: 'col' }, c)), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
      h('tbody', {}, emergencies.length ? emergencies.map((e) => h('tr', { 'data-emergency': e.id },
        h('th', { scope: 'row' }, h('a', { href: hrefOf(e.kind, e.name) + '/revisions/' + e.revision }, e.kind + '/' + e.name + ' revision ' + e.revision)),
        h('td', {}, e.operation),
        h('td', {}, e.actor),
        h('td', {}, e.reason),
        h('td', {}, when(e.time)),
        h('td', {}, h('button', { 'data-test': 'mark-reviewed', 'aria-label': 'Mark reviewed: ' + e.kind + '/' + e.name + ' revision ' + e.revision, onclick: async () => {
          try { await v.api.post('/emergencies/' + encodeURIComponent(e.id) + '/review', { comment: 'reviewed in the console' }); v.flash('Marked reviewed', 'ok'); reload(); } catch (err) { v.showError(err, 'Review'); }
        } }, 'Mark reviewed')))) : h('tr', {}, h('td', { colspan: 6, class: 'empty-state' }, 'No emergency change waits for review.')))))),
    pols ? policiesPanel(v, api.list(pols, 'policies'), reload) : null);
}

// policiesPanel lists the approval policies and edits them (admins).
function policiesPanel(v, policies, reload) {
  const name = h('input', { placeholder: 'payments', 'data-test': 'policy-name', size: 14, required: true, autocomplete: 'off' });
  const pattern = h('input', { placeholder: 'pay-*', 'data-test': 'policy-pattern', size: 14, required: true, autocomplete: 'off' });
  const approvals = h('input', { type: 'number', min: 1, max: 10, value: 1, 'data-test': 'policy-approvals', class: 'narrow' });
  const role = h('select', { 'data-test': 'policy-role' }, h('option', { value: 'editor' }, 'editors approve'), h('option', { value: 'admin' }, 'admins approve'));
  const self = h('input', { type: 'checkbox', 'data-test': 'policy-author-may-approve' });
  const blocks = h('input', { type: 'checkbox', checked: true, 'data-test': 'policy-decline-blocks' });
  const expiry = h('input', { placeholder: '168h', 'data-test': 'policy-expiry', size: 6, autocomplete: 'off' });
  function edit(p) {
    name.value = p.name; pattern.value = p.pattern; approvals.value = p.approvals; role.value = p.approver_role || 'editor';
    self.checked = !!p.author_may_approve; blocks.checked = !!p.decline_blocks; expiry.value = p.expiry || '';
    name.focus();
  }
  const form = h('form', { class: 'row mt', 'aria-label': 'Approval policy', onsubmit: async (e) => {
    e.preventDefault();
    const body = { pattern: pattern.value.trim(), approvals: +approvals.value, approver_role: role.value,
      author_may_approve: self.checked, decline_blocks: blocks.checked, expiry: expiry.value.trim() || undefined };
    try {
      await v.api.put('/policies/' + encodeURIComponent(name.value.trim()), body);
      v.flash('Policy ' + name.value.trim() + ' saved', 'ok');
      reload();
    } catch (err) { v.showError(err, 'Policy not saved'); }
  } },
  h('label', { class: 'stack' }, 'Name', name), h('label', { class: 'stack' }, 'Services and groups', pattern),
  h('label', { class: 'stack' }, 'Approvals', approvals), h('label', { class: 'stack' }, 'Approvers', role),
  h('label', { class: 'stack' }, 'Expiry', expiry),
  h('label', {}, self, ' author may approve'), h('label', {}, blocks, ' a decline blocks'),
  h('button', { class: 'primary', type: 'submit', 'data-test': 'policy-save' }, 'Save policy'));
  const cols = ['Name', 'Pattern', 'Approvals', 'Approvers', 'Author may approve', 'Decline blocks', 'Expiry', 'Updated'];
  return [h('h2', {}, 'Approval policies'),
    h('div', { class: 'panel' },
      h('p', { class: 'muted' }, 'Where a policy matches, a publish or rollback by anyone becomes a change request that waits for approvals; an admin may publish past it with an emergency reason.'),
      tableWrap('Approval policies', h('table', { 'data-test': 'policies' },
        h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        h('tbody', {}, policies.length ? policies.map((p) => h('tr', { 'data-policy': p.name },
          h('th', { scope: 'row', class: 'mono' }, p.name), h('td', { class: 'mono' }, p.pattern), h('td', {}, String(p.approvals)), h('td', {}, p.approver_role),
          h('td', {}, p.author_may_approve ? 'yes' : 'no'), h('td', {}, p.decline_blocks ? 'yes' : 'no'), h('td', {}, p.expiry || '168h'),
          h('td', {}, when(p.updated), ' by ', p.updated_by || '—'),
          h('td', { class: 'actions-cell' }, h('button', { 'aria-label': 'Edit policy ' + p.name, onclick: () => edit(p) }, 'Edit'),
            h('button', { class: 'danger', 'data-test': 'policy-delete-' + p.name, 'aria-label': 'Delete policy ' + p.name, onclick: async () => {
              if (!confirm('Delete policy ' + p.name + '? Open change requests keep the rule they were submitted under.')) return;
              try { await v.api.del('/policies/' + encodeURIComponent(p.name)); v.flash('Policy ' + p.name + ' deleted', 'ok'); reload(); } catch (err) { v.showError(err, 'Delete policy'); }
            } }, 'Delete')))) : h('tr', {}, h('td', { colspan: cols.length + 1, class: 'empty-state' }, 'No approval policy: every publish applies at once.'))))),
      form)];
}

// changePage shows one change request: what it changes (the diff against
// the head, validation and blast radius, from a fresh dry run), its
// approvals and thread, and the actions; news arrive on the service's
// event stream and refresh it.
export async function changePage(v, kind, name, id) {
  if (kind !== 'service' && kind !== 'group') {
    v.title('Not found');
    v.mount(h('h1', {}, 'No such page'), h('div', { class: 'empty-state' }, h('a', { href: '#/changes' }, 'All change requests')));
    return;
  }
  v.title('Change request ' + id, kind + '/' + name);
  const ref = basePath(kind, name);
  const base = ref + '/changes/' + encodeURIComponent(id);
  const comment = h('input', { class: 'message', placeholder: 'Comment', maxlength: 2048, 'data-test': 'review-comment', 'aria-label': 'Comment' });
  const reason = h('input', { class: 'message', placeholder: 'Why this cannot wait for approval', maxlength: 2048, 'data-test': 'emergency-reason', 'aria-label': 'Emergency reason' });
  const view = h('div', { 'data-test': 'change' });

  async function act(action, label, opts = {}) {
    try {
      const res = await v.api.request('POST', base + '/' + action, opts.body, { headers: opts.headers });
      if (action === 'apply' && res.revision) v.flash('Applied as revision ' + res.revision, 'ok');
      else if (action === 'apply') v.flash('Applied: gray ' + res.id + ' created', 'ok'); // gray.create: main does not move
      else v.flash(label + ': done', 'ok');
      comment.value = '';
      await render();
    } catch (e) { v.showError(e, label); }
  }
  const button = (action, label, cls, opts) => h('button', { class: cls || '', 'data-test': action, onclick: () => act(action, label, typeof opts === 'function' ? opts() : opts) }, label);

  async function render() {
    const c = await v.api.get(base);
    if (!v.alive()) return;
    const open = c.state === 'open';
    const stale = open && !c.dry_run;
    const ready = open && !stale && c.approvals >= c.policy.approvals && !(c.policy.decline_blocks && c.declines > 0);
    const target = h('a', { href: hrefOf(kind, name) }, kind + '/' + name);
    mount(view,
      h('div', { class: 'row' }, h('h1', { 'data-test': 'change-title' }, 'Change request ', h('span', { class: 'mono' }, c.id)), stateBadge(c),
        h('span', { class: 'spacer' }), h('a', { href: '#/changes' }, 'All change requests')),
      h('div', { class: 'panel' },
        h('p', {}, h('strong', {}, c.operation), c.rollback_of ? ' to revision ' + c.rollback_of : '', ' of ', target, ' on revision ' + c.base_revision + ' by ' + c.author + ', ', when(c.created),
          open ? [' · expires ', when(c.expires)] : null),
        c.message ? h('p', { class: 'mono' }, c.message) : null,
        h('p', { 'data-test': 'approvals' }, c.approvals + ' of ' + c.policy.approvals + ' approval(s)', c.declines ? ', ' + c.declines + ' decline(s)' : '',
          ' — policy ' + (c.policy.policies || []).join(', ') + (c.policy.approver_role === 'admin' ? '; admins approve' : '; editors approve') +
          (c.policy.author_may_approve ? '' : '; the author may not approve') + (c.policy.decline_blocks ? '; a decline blocks' : '')),
        c.applied_revision ? h('p', { 'data-test': 'applied' }, 'Applied as revision ' + c.applied_revision + ' by ' + c.applied_by + (c.emergency ? ' (emergency: ' + c.emergency + ')' : '')) : null,
        stale ? h('div', { class: 'notice', 'data-test': 'needs-rebase' }, 'The head moved past revision ' + c.base_revision + ', its base: its author rebases it (re-submits it on the new head, keeping this thread) before it can apply.') : null,
        c.dry_run ? dryRunPanel(c.dry_run) : null,
        c.dry_run ? h('div', { 'data-test': 'change-diff' }, (c.dry_run.files || []).map((f) => renderFileDiff(f.file, parseUnified(f.diff || ''), f.status))) : null),
      h('h2', {}, 'Thread'),
      h('div', { class: 'panel' }, h('ul', { class: 'plain', 'data-test': 'thread' }, (c.thread || []).map((e) => h('li', { 'data-event': e.kind },
        h('strong', {}, e.kind), ' by ', e.actor, ' ', when(e.time), e.revision ? ' (revision ' + e.revision + ')' : '', e.comment ? ': ' + e.comment : '')))),
      open ? h('div', { class: 'panel' },
        h('div', { class: 'row' }, comment, button('approve', 'Approve', 'primary', () => ({ body: { comment: comment.value } })),
          button('decline', 'Decline', 'danger', () => ({ body: { comment: comment.value } }))),
        h('div', { class: 'row mt' },
          ready ? button('apply', 'Apply', 'primary') : h('span', { class: 'muted', 'data-test': 'not-ready' }, stale ? 'Rebase it before it can apply.' : 'It applies once it has its approvals.'),
          stale ? button('rebase', 'Rebase onto the head') : null),
        v.isAdmin() && !ready ? h('div', { class: 'row mt', 'data-test': 'emergency-apply' }, reason,
          h('button', { class: 'danger', 'data-test': 'apply-emergency', onclick: () => {
            const r = reason.value.trim();
            if (!r || !/^[\x20-\x7e]+$/.test(r)) { v.flash('Give the reason for the emergency change, in plain ASCII text.', 'error'); return; }
            act('apply', 'Emergency apply', { headers: { [EMERGENCY_HEADER]: r } });
          } }, 'Apply now (emergency)')) : null) : null);
  }

  v.mount(view);
  await render();
  if (!v.alive()) return;
  const es = new EventSource('/v1' + ref + '/watch?changes=true');
  v.onCleanup(() => es.close());
  es.addEventListener('change', (ev) => {
    let n = {};
    try { n = JSON.parse(ev.data); } catch (_) { return; }
    if (n.id === id) render().catch((e) => v.showError(e));
  });
}
