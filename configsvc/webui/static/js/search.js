// Search inside configs: GET /v1/search?q=&limit= over the services and
// groups the user may read; each hit opens its file at its line.
import { h, clear } from './dom.js';

const LIMIT = 200;

// refLink returns the console address of a search result's file at its line.
// ref is "service/name", "group/name", "shared/name" or a bare service name.
export function refLink(ref, file, line) {
  const [kind, ...rest] = String(ref).split('/');
  const group = kind === 'group' || kind === 'shared';
  const name = rest.length ? rest.join('/') : kind;
  const base = (group ? '#/shared/' : '#/services/') + encodeURIComponent(name) + '/files';
  return { name, group, href: base + '?' + new URLSearchParams({ file, line: String(line || 1) }) };
}

// mark wraps the matches of q in text (case-insensitive) in <mark>.
function mark(text, q) {
  const out = [];
  const lower = text.toLowerCase(), needle = q.toLowerCase();
  let i = 0;
  for (let j = needle ? lower.indexOf(needle) : -1; j >= 0; j = lower.indexOf(needle, i)) {
    out.push(text.slice(i, j), h('mark', {}, text.slice(j, j + q.length)));
    i = j + q.length;
  }
  out.push(text.slice(i));
  return out;
}

// searchPage searches file contents; the query is in the URL.
export async function searchPage(v) {
  const q0 = v.query.get('q') || '';
  v.title(q0 ? 'Search “' + q0 + '”' : 'Search');
  const input = h('input', { type: 'search', value: q0, 'aria-label': 'Search in config files', placeholder: 'text to find, e.g. redis.internal', 'data-test': 'config-search', size: 40 });
  const out = h('div', { 'data-test': 'search-results', 'aria-live': 'polite' });
  async function run() {
    const q = input.value.trim();
    v.setQuery({ q });
    v.title(q ? 'Search “' + q + '”' : 'Search');
    clear(out);
    if (!q) return;
    const res = await v.api.get('/search?' + new URLSearchParams({ q, limit: String(LIMIT) }));
    const results = Array.isArray(res.results) ? res.results : [];
    if (!results.length) { out.appendChild(h('p', { class: 'empty-state' }, 'Nothing found for “' + q + '”.')); return; }
    const byFile = new Map();
    for (const r of results) {
      const k = r.ref + '\u0000' + r.file;
      if (!byFile.has(k)) byFile.set(k, []);
      byFile.get(k).push(r);
    }
    out.appendChild(h('p', { class: 'muted', role: 'status' }, results.length + (results.length === 1 ? ' line' : ' lines') + ' in ' + byFile.size + (byFile.size === 1 ? ' file' : ' files') +
      (res.truncated ? ' — more matches exist; narrow the search.' : '')));
    for (const hits of byFile.values()) {
      const { name, group, href } = refLink(hits[0].ref, hits[0].file, hits[0].line);
      out.appendChild(h('div', { class: 'panel search-file', 'data-ref': hits[0].ref, 'data-file': hits[0].file },
        h('h2', {}, h('a', { href }, name, group ? h('span', { class: 'badge' }, ' group') : null, ' / ', h('span', { class: 'mono' }, hits[0].file))),
        h('ol', { class: 'hits' }, hits.map((r) => h('li', {}, h('a', { class: 'hit', href: refLink(r.ref, r.file, r.line).href },
          h('span', { class: 'n' }, 'line ' + r.line), h('code', {}, mark(String(r.text || ''), q))))))));
    }
  }
  v.mount(h('h1', {}, 'Search in configs'),
    h('form', { class: 'row mb', role: 'search', onsubmit: (e) => { e.preventDefault(); run().catch((err) => v.showError(err, 'Search')); } },
      input, h('button', { class: 'primary', type: 'submit', 'data-test': 'search-go' }, 'Search')),
    out);
  input.focus();
  if (q0) await run();
}
