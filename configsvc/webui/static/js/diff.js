// Line diffs: a Myers diff computed in the browser (draft vs live), and a
// parser for the unified diffs the server returns; both render the same way.
import { h } from './dom.js';
import { mergeView } from './editor.js';

const MAX_EDITS = 2000; // beyond this many edits, show "replace all"; keeps memory bounded

function lines(text) {
  if (text === '' || text === undefined || text === null) return [];
  const ls = String(text).split('\n');
  if (ls[ls.length - 1] === '') ls.pop();
  return ls;
}

// diffLines returns ops [{t:' '|'-'|'+', s, a, b}] turning text a into text b;
// a and b are 1-based line numbers in the old and new text.
export function diffLines(aText, bText) {
  const a = lines(aText), b = lines(bText);
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const A = a.slice(pre, a.length - suf), B = b.slice(pre, b.length - suf);
  const mid = myers(A, B);
  const ops = [];
  for (const s of a.slice(0, pre)) ops.push({ t: ' ', s });
  ops.push(...mid);
  for (const s of a.slice(a.length - suf)) ops.push({ t: ' ', s });
  let x = 1, y = 1;
  for (const op of ops) {
    if (op.t !== '+') op.a = x++;
    if (op.t !== '-') op.b = y++;
  }
  return ops;
}

function myers(A, B) {
  const N = A.length, M = B.length;
  if (N === 0) return B.map((s) => ({ t: '+', s }));
  if (M === 0) return A.map((s) => ({ t: '-', s }));
  const max = N + M, off = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace = [];
  for (let d = 0; d <= max; d++) {
    if (d > MAX_EDITS) return [...A.map((s) => ({ t: '-', s })), ...B.map((s) => ({ t: '+', s }))];
    trace.push(v.slice(off - d - 1, off + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let x = (k === -d || (k !== d && v[off + k - 1] < v[off + k + 1])) ? v[off + k + 1] : v[off + k - 1] + 1;
      let y = x - k;
      while (x < N && y < M && A[x] === B[y]) { x++; y++; }
      v[off + k] = x;
      if (x >= N && y >= M) return backtrack(trace, A, B);
    }
  }
  return [];
}

function backtrack(trace, A, B) {
  let x = A.length, y = B.length;
  const ops = [];
  for (let d = trace.length - 1; d >= 0; d--) {
    const w = trace[d]; // v at the start of step d, window [-d-1, d+1]
    const at = (k) => w[k + d + 1];
    const k = x - y;
    const prevK = (k === -d || (k !== d && at(k - 1) < at(k + 1))) ? k + 1 : k - 1;
    const prevX = at(prevK), prevY = prevX - prevK;
    while (x > prevX && y > prevY) { ops.push({ t: ' ', s: A[x - 1] }); x--; y--; }
    if (d > 0) {
      if (x === prevX) ops.push({ t: '+', s: B[y - 1] });
      else ops.push({ t: '-', s: A[x - 1] });
    }
    x = prevX; y = prevY;
  }
  return ops.reverse();
}

// hunks groups ops into unified-diff hunks with ctx lines of context:
// [{header, rows:[op]}]. No changes → [].
export function hunks(ops, ctx = 3) {
  const changed = [];
  ops.forEach((o, i) => { if (o.t !== ' ') changed.push(i); });
  const out = [];
  let g = 0;
  while (g < changed.length) {
    const first = changed[g];
    let last = first;
    g++;
    while (g < changed.length && changed[g] - last - 1 <= 2 * ctx) last = changed[g++];
    const rows = ops.slice(Math.max(0, first - ctx), Math.min(ops.length, last + 1 + ctx));
    const a0 = rows.find((r) => r.a)?.a || 0, b0 = rows.find((r) => r.b)?.b || 0;
    const an = rows.filter((r) => r.t !== '+').length, bn = rows.filter((r) => r.t !== '-').length;
    out.push({ header: `@@ -${a0},${an} +${b0},${bn} @@`, rows });
  }
  return out;
}

// parseUnified turns a unified diff text into hunks (the shape hunks returns).
export function parseUnified(text) {
  const out = [];
  let cur = null, a = 0, b = 0;
  for (const line of String(text || '').split('\n')) {
    if (line.startsWith('---') || line.startsWith('+++')) { if (!cur) continue; }
    const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (m) { cur = { header: line, rows: [] }; out.push(cur); a = +m[1]; b = +m[2]; continue; }
    if (!cur) continue;
    const t = line[0], s = line.slice(1);
    if (t === '+') cur.rows.push({ t, s, b: b++ });
    else if (t === '-') cur.rows.push({ t, s, a: a++ });
    else if (t === ' ') cur.rows.push({ t, s, a: a++, b: b++ });
    else if (line.startsWith('\\')) continue;
  }
  return out;
}

// showWhitespace returns text as nodes where runs of spaces and tabs are
// wrapped in <span class="ws"> (dots and arrows drawn by the stylesheet, the
// text itself unchanged, so a copy stays exact). all: every run, else only
// trailing whitespace.
function showWhitespace(text, all) {
  const out = [];
  const re = all ? /[ \t]+/g : /[ \t]+$/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(h('span', { class: 'ws' + (m[0].includes('\t') ? ' tab' : '') }, m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

const squash = (s) => s.replace(/\s+/g, '');

// wsOnly marks the removed and added lines of a hunk that differ from their
// counterpart only in whitespace (paired in order within each run of - then +).
function wsOnly(rows) {
  const marked = new Set();
  for (let i = 0; i < rows.length;) {
    if (rows[i].t !== '-') { i++; continue; }
    let j = i;
    while (j < rows.length && rows[j].t === '-') j++;
    let k = j;
    while (k < rows.length && rows[k].t === '+') k++;
    for (let n = 0; n < Math.min(j - i, k - j); n++) {
      const a = rows[i + n], b = rows[j + n];
      if (a.s !== b.s && squash(a.s) === squash(b.s)) { marked.add(a); marked.add(b); }
    }
    i = k;
  }
  return marked;
}

// renderFileDiff renders one file's hunks; status is e.g. "modified", "added",
// "deleted". Whitespace at the end of changed lines is drawn, and lines that
// changed only in whitespace are marked and show all their whitespace.
export function renderFileDiff(file, hs, status) {
  const cls = { added: 'ok', deleted: 'bad', removed: 'bad', modified: 'info' }[status] || '';
  const head = h('div', { class: 'file' }, file, status ? h('span', { class: 'badge ' + cls }, status) : null);
  if (!hs.length) return h('div', { class: 'diff', 'data-file': file }, head, h('div', { class: 'empty' }, 'No changes.'));
  const body = h('tbody');
  for (const hk of hs) {
    body.appendChild(h('tr', { class: 'hunk' }, h('td', { class: 'n' }), h('td', { class: 'n' }), h('td', {}, hk.header)));
    const ws = wsOnly(hk.rows);
    for (const r of hk.rows) {
      const cl = r.t === '+' ? 'add' : r.t === '-' ? 'del' : 'ctx';
      const only = ws.has(r);
      body.appendChild(h('tr', { class: cl + (only ? ' ws-only' : ''), title: only ? 'Only whitespace changed on this line' : null },
        h('td', { class: 'n' }, r.a || ''), h('td', { class: 'n' }, r.b || ''),
        h('td', {}, r.t, r.t === ' ' ? r.s : showWhitespace(r.s, only), only && r.t === '+' ? h('span', { class: 'badge warn ws-badge' }, 'whitespace only') : null)));
    }
  }
  return h('div', { class: 'diff', 'data-file': file }, head, h('table', {}, body));
}

// renderTextDiff diffs two texts of one file and renders the result.
export function renderTextDiff(file, before, after, status) {
  return renderFileDiff(file, hunks(diffLines(before, after)), status);
}

// sideBySide remembers, for this page load, whether the user switched diffs to
// side by side.
let sideBySide = false;

// diffBlock renders one file's change as a unified diff with a button that
// switches to a side-by-side merge view (CodeMirror's, whitespace shown).
// d: {file, status, before, after} with both texts, or {file, status, hunks,
// texts: async () => ({before, after})} for a server diff. onCleanup(fn)
// registers the merge view's teardown.
export function diffBlock(d, onCleanup) {
  const unified = d.hunks ? renderFileDiff(d.file, d.hunks, d.status) : renderTextDiff(d.file, d.before, d.after, d.status);
  // The button stays in place (and keeps the focus) while the view beside it
  // changes; its pressed state says which view shows.
  const btn = h('button', { type: 'button', class: 'small', 'data-test': 'side-by-side', 'aria-pressed': 'false' }, 'Side by side');
  const view = h('div', {}, unified);
  const holder = h('div', { class: 'diff-block', 'data-file': d.file }, btn, view);
  let mv = null, loading = false;
  async function show(side) {
    btn.setAttribute('aria-pressed', String(side));
    if (!side) { if (mv) { mv.destroy(); mv = null; } view.replaceChildren(unified); return; }
    let t = d;
    if (d.texts) {
      loading = true;
      btn.setAttribute('aria-busy', 'true');
      try { t = await d.texts(); } finally { loading = false; btn.removeAttribute('aria-busy'); }
    }
    if (btn.getAttribute('aria-pressed') !== 'true') return;
    mv = mergeView(d.file, t.before || '', t.after || '', { labels: d.labels || ['before', 'after'] });
    if (onCleanup) onCleanup(() => { if (mv) mv.destroy(); });
    view.replaceChildren(h('div', { class: 'diff merge-wrap' },
      h('div', { class: 'file' }, d.file, d.status ? h('span', { class: 'badge' }, d.status) : null,
        h('span', { class: 'muted small' }, (d.labels || ['before', 'after']).join(' ⟷ '))), mv.dom));
  }
  btn.addEventListener('click', () => {
    if (loading) return;
    sideBySide = btn.getAttribute('aria-pressed') !== 'true';
    show(sideBySide).catch(() => show(false));
  });
  if (sideBySide) show(true).catch(() => show(false));
  return holder;
}
