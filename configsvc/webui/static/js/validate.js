// Client-side format checks, so errors show at their line before a publish.
// The server validates again (422 with file, line, column); this is a convenience.
// JSON is checked by checkJSON below; YAML and TOML by the parsers in the
// vendored bundle (yaml and smol-toml from npm).
import { parseYAMLDocuments, parseTOML } from '../vendor/parsers.js';

// checkJSON returns null when text is valid JSON, else {line, column, message}
// (1-based), found by a strict recursive-descent scan (RFC 8259).
export function checkJSON(text) {
  let i = 0;
  const n = text.length;
  function fail(msg) { throw { pos: i, msg }; }
  function ws() { while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++; }
  function desc() { return i >= n ? 'end of input' : JSON.stringify(text[i]); }
  function value(depth) {
    if (depth > 500) fail('nesting too deep');
    ws();
    const c = text[i];
    if (c === '{') return object(depth);
    if (c === '[') return array(depth);
    if (c === '"') return string();
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    for (const lit of ['true', 'false', 'null']) {
      if (text.startsWith(lit, i)) { i += lit.length; return; }
    }
    fail('unexpected ' + desc() + ', expected a value');
  }
  function object(depth) {
    i++; ws();
    if (text[i] === '}') { i++; return; }
    for (;;) {
      ws();
      if (text[i] !== '"') fail('unexpected ' + desc() + ', expected a string key' + (text[i] === '}' ? ' (trailing comma?)' : ''));
      string(); ws();
      if (text[i] !== ':') fail('unexpected ' + desc() + ', expected ":" after the key');
      i++;
      value(depth + 1); ws();
      if (text[i] === ',') { i++; continue; }
      if (text[i] === '}') { i++; return; }
      fail('unexpected ' + desc() + ', expected "," or "}"');
    }
  }
  function array(depth) {
    i++; ws();
    if (text[i] === ']') { i++; return; }
    for (;;) {
      ws();
      if (text[i] === ']') fail('unexpected "]", expected a value (trailing comma?)');
      value(depth + 1); ws();
      if (text[i] === ',') { i++; continue; }
      if (text[i] === ']') { i++; return; }
      fail('unexpected ' + desc() + ', expected "," or "]"');
    }
  }
  function string() {
    i++;
    while (i < n) {
      const c = text[i];
      if (c === '"') { i++; return; }
      if (c === '\\') {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) { i++; fail('invalid \\u escape'); }
          i += 6; continue;
        }
        if (!'"\\/bfnrt'.includes(e) || e === undefined) { i++; fail('invalid escape ' + desc()); }
        i += 2; continue;
      }
      if (c < ' ') fail('control character in string (newline inside quotes?)');
      i++;
    }
    fail('unterminated string');
  }
  function number() {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m || m[0] === '-') fail('invalid number');
    i += m[0].length;
  }
  try {
    ws();
    if (i >= n) fail('empty document, expected a value');
    value(0); ws();
    if (i < n) fail('unexpected ' + desc() + ' after the end of the value');
    return null;
  } catch (e) {
    if (!e || typeof e.pos !== 'number') throw e;
    return { ...position(text, e.pos), message: e.msg };
  }
}

// position turns a character offset into a 1-based line and column.
export function position(text, pos) {
  let line = 1, col = 1;
  for (let k = 0; k < pos && k < text.length; k++) {
    if (text[k] === '\n') { line++; col = 1; } else col++;
  }
  return { line, column: col };
}

// formatOf mirrors configsvc.FormatOf.
export function formatOf(name) {
  const m = /\.([^.]+)$/.exec(name || '');
  const ext = m ? m[1].toLowerCase() : '';
  return { json: 'json', yaml: 'yaml', yml: 'yaml', toml: 'toml', properties: 'properties', env: 'env' }[ext] || 'text';
}

// checkYAML returns the YAML parser's errors, [{line, column, message}]:
// syntax, and duplicate keys (which the server refuses too).
export function checkYAML(text) {
  const out = [];
  for (const doc of parseYAMLDocuments(text)) {
    for (const e of doc.errors) {
      const p = (e.linePos && e.linePos[0]) || { line: 0, col: 0 };
      out.push({ line: p.line, column: p.col, message: e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '') });
    }
  }
  return out;
}

// checkTOML returns null when text is valid TOML, else {line, column, message}.
export function checkTOML(text) {
  try {
    parseTOML(text);
    return null;
  } catch (e) {
    if (typeof e.line !== 'number') throw e;
    return { line: e.line, column: e.column, message: String(e.message).split('\n')[0].replace(/^Invalid TOML document: /, '') };
  }
}

// check validates text for file's format; it returns [] or [{line, column, message}].
// JSON, YAML and TOML are checked in the browser; other formats by the server.
export function check(file, text) {
  switch (formatOf(file)) {
    case 'json': { const e = checkJSON(text); return e ? [e] : []; }
    case 'yaml': return checkYAML(text);
    case 'toml': { const e = checkTOML(text); return e ? [e] : []; }
  }
  return [];
}
