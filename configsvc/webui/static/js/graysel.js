// Gray selectors in the browser: the sticky percent hash and the selector
// rule ported from configsvc (GrayBucket, Selector.Matches) exactly, the
// live instances a gray of a service or group can reach, and the selector
// editor with its preview of the instances that match, used by "publish as
// gray" (files.js) and "widen or narrow" (grays.js). The server decides the
// cohort; the preview uses the same rule, so it shows the same instances.
import { h, mount, tableWrap } from './dom.js';
import * as api from './api.js';

// The SHA-256 round constants (FIPS 180-4).
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const ror = (x, n) => (x >>> n) | (x << (32 - n));

// sha256 returns the SHA-256 digest of bytes (a Uint8Array) as 32 bytes.
// It is written out here because crypto.subtle exists only on secure
// origins (https or localhost), and a console served over plain http on
// a private network must preview cohorts too; it is also synchronous,
// which a preview redrawn on every key wants.
export function sha256(bytes) {
  const len = bytes.length;
  const n = ((len + 9 + 63) >> 6) << 6;
  const buf = new Uint8Array(n);
  buf.set(bytes);
  buf[len] = 0x80;
  const dv = new DataView(buf.buffer);
  dv.setUint32(n - 8, Math.floor(len / 0x20000000)); // the bit length's high word: len*8 / 2^32
  dv.setUint32(n - 4, (len * 8) >>> 0);
  const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const W = new Uint32Array(64);
  for (let off = 0; off < n; off += 64) {
    for (let i = 0; i < 16; i++) W[i] = dv.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const a = W[i - 15], b = W[i - 2];
      W[i] = W[i - 16] + (ror(a, 7) ^ ror(a, 18) ^ (a >>> 3)) + W[i - 7] + (ror(b, 17) ^ ror(b, 19) ^ (b >>> 10));
    }
    let [a, b, c, d, e, f, g, k] = H;
    for (let i = 0; i < 64; i++) {
      const t1 = (k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + W[i]) >>> 0;
      const t2 = ((ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      k = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += k;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) ov.setUint32(4 * i, H[i]);
  return out;
}

const encoder = new TextEncoder();

// grayBucket is configsvc.GrayBucket: the sticky bucket, 0 to 9999, of an
// instance id for a gray: the first 8 bytes of SHA-256(grayID "\x00"
// instanceID) as a big-endian number, modulo 10000.
export function grayBucket(grayID, instanceID) {
  const a = encoder.encode(grayID), b = encoder.encode(instanceID);
  const buf = new Uint8Array(a.length + 1 + b.length);
  buf.set(a);
  buf.set(b, a.length + 1);
  const d = sha256(buf);
  let x = 0n;
  for (let i = 0; i < 8; i++) x = (x << 8n) | BigInt(d[i]);
  return Number(x % 10000n);
}

// percentCut is the bucket bound of a percent: an instance is in when its
// bucket is below round(percent*100) (Go's math.Round and Math.round agree
// on the non-negative numbers a percent is).
export function percentCut(percent) {
  return Math.round((+percent || 0) * 100);
}

function hasLabels(have, want) {
  return Object.entries(want).every(([k, v]) => have && Object.prototype.hasOwnProperty.call(have, k) && have[k] === v);
}

// matchReason says why inst is in the cohort of gray grayID under sel
// (configsvc.Selector.Matches: any part matches), or '' when it is not:
// 'id', 'labels k=v,…' (the first map it carries), 'percent'. With no
// grayID (a gray not created yet) the percent part is unknown: '' unless
// another part matches; percentUnknown(sel) says whether that matters.
export function matchReason(sel, grayID, inst) {
  if ((sel.instances || []).includes(inst.id)) return 'id';
  for (const m of sel.labels || []) {
    if (Object.keys(m).length && hasLabels(inst.labels, m)) return 'labels ' + labelText(m);
  }
  if (grayID && sel.percent > 0 && grayBucket(grayID, inst.id) < percentCut(sel.percent)) return 'percent';
  return '';
}

// selectorMatches is configsvc.Selector.Matches.
export function selectorMatches(sel, grayID, inst) {
  return matchReason(sel, grayID, inst) !== '';
}

// labelText writes a label map as "k=v,k2=v2", keys sorted.
export function labelText(m) {
  return Object.keys(m).sort().map((k) => k + '=' + m[k]).join(',');
}

// selectorText is a short description of a selector: "ids a, b · labels
// zone=b | canary=true · 10 %", or "nobody" for the empty selector.
export function selectorText(sel) {
  const parts = [];
  if ((sel.instances || []).length) parts.push('ids ' + sel.instances.join(', '));
  if ((sel.labels || []).length) parts.push('labels ' + sel.labels.map(labelText).join(' | '));
  if (sel.percent > 0) parts.push(sel.percent + ' %');
  return parts.length ? parts.join(' · ') : 'nobody';
}

// INSTANCE_ID is the instance id rule (configsvc.ValidateInstanceID: a file name).
const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
// Limits of a selector (configsvc.MaxGrayInstances, MaxGrayLabelMaps,
// MaxGrayLabelsPerMap, MaxGrayLabelLen).
const MAX_IDS = 256, MAX_MAPS = 16, MAX_LABELS = 16, MAX_LABEL = 128;

// parseIDs reads instance ids separated by commas, spaces or new lines.
export function parseIDs(text) {
  return [...new Set(String(text).split(/[\s,]+/).filter(Boolean))];
}

// parseLabelMaps reads label maps, one a line, as "k=v, k2=v2". It returns
// {maps, problem}: problem names the line and what is wrong, or ''.
export function parseLabelMaps(text) {
  const maps = [];
  const lines = String(text).split('\n').map((l) => l.trim()).filter(Boolean);
  for (const [i, line] of lines.entries()) {
    const m = {};
    for (const pair of line.split(',').map((p) => p.trim()).filter(Boolean)) {
      const eq = pair.indexOf('=');
      const k = eq < 0 ? pair : pair.slice(0, eq).trim(), val = eq < 0 ? '' : pair.slice(eq + 1).trim();
      if (eq < 0 || !k) return { maps, problem: 'Line ' + (i + 1) + ': write each label as key=value (' + pair + ').' };
      if (k.length > MAX_LABEL || val.length > MAX_LABEL) return { maps, problem: 'Line ' + (i + 1) + ': label keys and values have at most ' + MAX_LABEL + ' characters.' };
      m[k] = val;
    }
    if (Object.keys(m).length > MAX_LABELS) return { maps, problem: 'Line ' + (i + 1) + ': at most ' + MAX_LABELS + ' labels in one map.' };
    maps.push(m);
  }
  if (maps.length > MAX_MAPS) return { maps, problem: 'At most ' + MAX_MAPS + ' label maps (lines).' };
  return { maps, problem: '' };
}

// percentProblem explains what is wrong with a percent field's text, or ''.
export function percentProblem(text) {
  if (String(text).trim() === '') return '';
  const p = Number(text);
  if (!Number.isFinite(p) || p < 0 || p > 100) return 'A percent is a number from 0 to 100.';
  if (Math.abs(p * 100 - Math.round(p * 100)) > 1e-6) return 'A percent has at most two decimals.';
  return '';
}

// liveInstances returns the live instances a gray of a service (kind
// 'service') or group can reach, as the server's cohort counts them
// (configsvc.LiveInstances): the service's, or those of every service that
// links the group, as [{service, id, addr, labels, grays}].
export async function liveInstances(v, kind, name) {
  const of = async (svc) => api.list(await v.api.get(api.path('services', svc, 'instances')), 'instances').map((i) => ({ ...i, service: i.service || svc }));
  if (kind !== 'group') return of(name);
  const users = api.list(await v.api.get(api.path('shared', name, 'users')), 'services');
  const lists = await Promise.all(users.map((u) => of(u).catch((e) => { if (e.status === 404) return []; throw e; })));
  return lists.flat();
}

// followInstances calls fn(list) with the live instances of a service
// whenever they change (its instance stream), or of a group every 5 s,
// until the returned stop() is called or the view ends.
export function followInstances(v, kind, name, fn) {
  let stop;
  if (kind === 'group') {
    const t = setInterval(() => { liveInstances(v, kind, name).then(fn).catch(() => { /* the next round tries again */ }); }, 5000);
    stop = () => clearInterval(t);
  } else {
    const es = new EventSource('/v1' + api.path('services', name, 'instances', 'watch'));
    stop = () => es.close();
    const on = (ev) => {
      let d;
      try { d = JSON.parse(ev.data); } catch (_) { return; /* a malformed event: the next one replaces the list */ }
      fn((Array.isArray(d.instances) ? d.instances : []).map((i) => ({ ...i, service: i.service || name })));
    };
    es.addEventListener('instances', on);
    es.addEventListener('message', on);
  }
  v.onCleanup(stop);
  return stop;
}

let seq = 0;

// selectorEditor edits a selector and previews its cohort over insts (the
// live instances). opts: {grayID: the gray's id, or '' for a gray not
// created yet; initial: the selector to start from; current: the gray's
// selector now, to show who joins and who leaves; group: list the
// service of each instance; onChange()}. It returns {el, selector(),
// problem(), setInstances(insts), count()}: problem() is '' or what keeps
// the selector from being sent.
export function selectorEditor(insts, opts = {}) {
  const id = 'sel' + ++seq;
  const grayID = opts.grayID || '';
  const init = opts.initial || {};
  const ids = h('input', { id: id + '-ids', class: 'message', value: (init.instances || []).join(', '), placeholder: 'orders-1, orders-2', autocomplete: 'off', 'data-test': 'sel-instances', 'aria-describedby': id + '-ids-hint' });
  const labels = h('textarea', { id: id + '-labels', rows: 2, class: 'message', placeholder: 'zone=b\ncanary=true, zone=a', 'data-test': 'sel-labels', 'aria-describedby': id + '-labels-hint' });
  labels.value = (init.labels || []).map(labelText).join('\n');
  const pct = h('input', { id: id + '-pct', type: 'number', min: 0, max: 100, step: 0.01, class: 'narrow', value: init.percent ? String(init.percent) : '', placeholder: '0', 'data-test': 'sel-percent', 'aria-describedby': id + '-pct-hint' });
  const problemBox = h('div', { class: 'field-error', role: 'alert', 'data-test': 'sel-problem' });
  const summary = h('p', { 'data-test': 'sel-summary', role: 'status', 'aria-live': 'polite' });
  const body = h('tbody');
  let list = insts.slice();
  let problem = '';

  function selector() {
    const sel = {};
    const is = parseIDs(ids.value);
    if (is.length) sel.instances = is;
    const { maps } = parseLabelMaps(labels.value);
    if (maps.length) sel.labels = maps;
    const p = Number(pct.value);
    if (pct.value.trim() !== '' && p > 0) sel.percent = Math.round(p * 100) / 100;
    return sel;
  }

  function check() {
    const is = parseIDs(ids.value);
    const bad = is.find((x) => !INSTANCE_ID.test(x));
    const lm = parseLabelMaps(labels.value);
    problem = bad ? 'Instance id ' + JSON.stringify(bad) + ' is not valid: 1-128 characters of A-Z, a-z, 0-9, ".", "_" and "-", starting with a letter or digit.'
      : is.length > MAX_IDS ? 'At most ' + MAX_IDS + ' instance ids.'
        : lm.problem || percentProblem(pct.value);
    ids.setAttribute('aria-invalid', bad || is.length > MAX_IDS ? 'true' : 'false');
    labels.setAttribute('aria-invalid', lm.problem ? 'true' : 'false');
    pct.setAttribute('aria-invalid', percentProblem(pct.value) ? 'true' : 'false');
    problemBox.textContent = problem;
  }

  function toggle(instID, on) {
    const is = parseIDs(ids.value).filter((x) => x !== instID);
    if (on) is.push(instID);
    ids.value = is.join(', ');
    render();
  }

  // render draws the preview: every live instance with whether (and why)
  // it is in the cohort; for a gray with an id, who joins and who leaves.
  function render() {
    check();
    const sel = selector();
    const pctOnly = !grayID && sel.percent > 0;
    let byRule = 0, others = 0, joins = 0, leaves = 0;
    const rows = list.map((i) => {
      const why = matchReason(sel, grayID, i);
      const was = opts.current ? selectorMatches(opts.current, grayID, i) : null;
      if (why) byRule++; else others++;
      let state;
      if (why) state = h('span', { class: 'badge ok' }, 'in', h('span', { class: 'sr-only' }, ' the cohort'), ' · ' + why);
      else if (pctOnly) state = h('span', { class: 'badge', title: 'which instances a percent takes depends on the gray\'s id, given when it is created' }, 'maybe (percent)');
      else state = h('span', { class: 'badge' }, 'out');
      let change = null;
      if (was !== null && was !== !!why) {
        if (why) joins++; else leaves++;
        change = h('span', { class: 'badge ' + (why ? 'info' : 'warn'), 'data-test': why ? 'joins' : 'leaves' }, why ? 'joins' : 'leaves');
      }
      const explicit = (sel.instances || []).includes(i.id);
      return h('tr', { 'data-instance': i.id, 'data-in': why ? 'true' : 'false' },
        h('td', {}, h('input', { type: 'checkbox', checked: explicit, 'aria-label': 'Pick ' + i.id + ' by id', 'data-test': 'pick-' + i.id, onchange: (e) => toggle(i.id, e.target.checked) })),
        opts.group ? h('td', { class: 'mono' }, i.service) : null,
        h('th', { scope: 'row', class: 'mono' }, i.id),
        h('td', {}, Object.entries(i.labels || {}).map(([k, val]) => h('span', { class: 'chip' }, k + '=' + val))),
        h('td', {}, state, change ? ' ' : null, change));
    });
    if (!list.length) rows.push(h('tr', {}, h('td', { colspan: opts.group ? 5 : 4, class: 'empty-state' }, 'No live instances. A gray still reaches the instances it matches when they start.')));
    mount(body, rows);
    const total = list.length;
    let text;
    if (pctOnly) {
      // A new gray's percent depends on its id, not known before it is
      // created: the expected count is what the preview can honestly say.
      const expect = Math.round(others * sel.percent / 100);
      text = (byRule ? byRule + ' of ' + total + ' live instances match by id or labels; ' : '') +
        'about ' + expect + ' of ' + (byRule ? 'the other ' : '') + others + ' live instances by ' + sel.percent + ' %. ' +
        'Which ones depends on the gray\'s id, given when it is created; the gray\'s page then lists its cohort exactly.';
    } else {
      text = byRule + ' of ' + total + (total === 1 ? ' live instance matches' : ' live instances match') + (byRule ? '.' : ': the gray reaches nobody yet.');
      if (opts.current) text += ' ' + joins + ' join, ' + leaves + ' leave.';
    }
    summary.textContent = text;
    if (opts.onChange) opts.onChange();
  }
  for (const el of [ids, labels, pct]) el.addEventListener('input', render);

  const el = h('div', { class: 'selector-editor', 'data-test': 'selector-editor' },
    h('div', { class: 'selector-fields' },
      field(id + '-ids', 'Instance ids', ids, 'Comma-separated, or tick them below.'),
      field(id + '-labels', 'Label maps', labels, 'One map a line: an instance matches a line when it carries all its labels.'),
      field(id + '-pct', 'Percent', pct, 'Sticky, 0–100, two decimals.')),
    h('p', { class: 'muted small' }, 'An instance is in the cohort when any part matches.'),
    problemBox,
    summary,
    h('div', { class: 'selector-preview' }, tableWrap('Live instances and the cohort', h('table', { class: 'small', 'data-test': 'sel-preview' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Pick by id')), opts.group ? h('th', { scope: 'col' }, 'Service') : null,
        h('th', { scope: 'col' }, 'Instance'), h('th', { scope: 'col' }, 'Labels'), h('th', { scope: 'col' }, 'Cohort'))), body))));
  render();
  return {
    el,
    selector,
    problem: () => { check(); return problem; },
    // setInstances redraws the preview over a new list of live instances.
    setInstances(next) { list = next.slice(); render(); },
    // count is how many live instances the selector matches for sure.
    count: () => list.filter((i) => selectorMatches(selector(), grayID, i)).length,
  };
}

// field is a form field: its label, the control, and a hint that
// describes it (aria-describedby, set on the control by the caller).
export function field(id, label, control, hint) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('span', { id: id + '-hint', class: 'small' }, hint) : null);
}
