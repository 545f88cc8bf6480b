// The admin API client: same-origin fetch under /v1 with the session cookie.
// State-changing requests send X-Sluice-CSRF copied from the CSRF cookie,
// and an Idempotency-Key: one per user action (one call of request), the
// same on each attempt, so that a write whose answer was lost is sent again
// without being applied twice.

// APIError carries the server's {"error":{code,message,details,request_id}}.
// The message is written for users; requestId names the request in the
// server's log, where the internals are (the X-Request-ID header when the
// body has none).
export class APIError extends Error {
  constructor(status, code, message, details, requestId) {
    super(message || ('HTTP ' + status));
    this.status = status;
    this.code = code || '';
    this.details = details || {};
    this.requestId = requestId || '';
  }
}

// Cancelled is thrown by a request whose view was left (its AbortSignal
// fired): the page that asked is gone, so nobody reports it.
export class Cancelled extends Error {
  constructor() { super('cancelled'); this.name = 'Cancelled'; }
}

// csrfToken returns the value of the CSRF cookie (the one readable cookie the
// server sets at sign-in), or ''.
export function csrfToken() {
  for (const part of document.cookie.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const name = part.slice(0, i).trim();
    if (/csrf/i.test(name)) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return '';
}

// path joins escaped segments: path('services', svc, 'files', f).
export function path(...segs) {
  return '/' + segs.map((s) => encodeURIComponent(String(s))).join('/');
}

// newKey returns a random idempotency key (a UUID v4). crypto.randomUUID
// exists only on secure origins; getRandomValues everywhere.
export function newKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = Array.from(b, (v) => v.toString(16).padStart(2, '0')).join('');
  return x.slice(0, 8) + '-' + x.slice(8, 12) + '-' + x.slice(12, 16) + '-' + x.slice(16, 20) + '-' + x.slice(20);
}

// sendTimes bounds the attempts of one write: a lost answer (the network
// failed after sending) or a key still in progress (409
// idempotency_in_progress) is retried under the same key.
const sendTimes = 3;

// request calls the API. body: a string is sent raw (text/plain), anything
// else as JSON. It resolves to parsed JSON, text, or null for 204; with
// opts.response it resolves to the Response. Non-2xx rejects with APIError;
// opts.signal aborts the call, which then rejects with Cancelled. A write
// (any method but GET and HEAD) carries an Idempotency-Key (opts.key, else
// a new one) and is sent again under it after a network failure or while
// the server still answers the first attempt.
export async function request(method, p, body, opts = {}) {
  const headers = new Headers(opts.headers || {});
  headers.set('Accept', opts.accept || 'application/json');
  const write = method !== 'GET' && method !== 'HEAD';
  if (write) {
    const t = csrfToken();
    if (t) headers.set('X-Sluice-CSRF', t);
    headers.set('Idempotency-Key', opts.key || newKey());
  }
  let payload;
  if (body !== undefined) {
    if (typeof body === 'string') {
      payload = body;
      if (!headers.has('Content-Type')) headers.set('Content-Type', 'text/plain; charset=utf-8');
    } else {
      payload = JSON.stringify(body);
      headers.set('Content-Type', 'application/json');
    }
  }
  let res;
  for (let attempt = 1; ; attempt++) {
    try {
      res = await fetch('/v1' + p, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store', signal: opts.signal });
    } catch (e) {
      if (opts.signal && opts.signal.aborted) throw new Cancelled();
      if (write && attempt < sendTimes) continue; // the answer may be lost: ask again under the key
      throw new APIError(0, 'network', 'The server cannot be reached: ' + e.message);
    }
    if (write && res.status === 409 && attempt < sendTimes && res.headers.get('Retry-After')) {
      const text = await res.clone().text().catch(() => '');
      if (text.includes('idempotency_in_progress')) {
        await pause(Math.min(5, Number(res.headers.get('Retry-After')) || 1) * 1000, opts.signal);
        continue;
      }
    }
    break;
  }
  try {
    return await answer(res, opts);
  } catch (e) {
    if (opts.signal && opts.signal.aborted) throw new Cancelled();
    throw e;
  }
}

// pause waits ms, or rejects with Cancelled when signal fires first.
function pause(ms, signal) {
  return new Promise((ok, fail) => {
    if (signal && signal.aborted) { fail(new Cancelled()); return; }
    const t = setTimeout(ok, ms);
    if (signal) signal.addEventListener('abort', () => { clearTimeout(t); fail(new Cancelled()); }, { once: true });
  });
}

async function answer(res, opts) {
  if (!res.ok) {
    let code = '', message = '', details = {}, requestId = res.headers.get('X-Request-ID') || '';
    const text = await res.text();
    try {
      const j = JSON.parse(text);
      const e = j.error || j;
      code = e.code || '';
      message = e.message || '';
      details = e.details || {};
      requestId = e.request_id || requestId;
    } catch (_) {
      message = text.trim().slice(0, 300);
    }
    if (!message) message = res.status + ' ' + res.statusText;
    if (res.status === 503 && res.headers.get('Retry-After')) message += ' (retry after ' + res.headers.get('Retry-After') + ' s)';
    if (code === 'outcome_unknown') message += ' — reload to see whether it was applied before trying again';
    const err = new APIError(res.status, code, message, details, requestId);
    if (res.status === 401 && !opts.quiet401 && typeof request.onUnauthorized === 'function') request.onUnauthorized(err);
    throw err;
  }
  if (opts.response) return res;
  if (res.status === 204) return null;
  const ct = res.headers.get('Content-Type') || '';
  if (ct.includes('json')) return res.json();
  return res.text();
}

export const get = (p, opts) => request('GET', p, undefined, opts);
export const post = (p, body, opts) => request('POST', p, body, opts);
export const put = (p, body, opts) => request('PUT', p, body, opts);
export const del = (p, opts) => request('DELETE', p, undefined, opts);

// bound returns {request, get, post, put, del} that pass signal with every
// call, so a view's requests end when the view does.
export function bound(signal) {
  const o = (opts) => ({ ...(opts || {}), signal });
  return {
    request: (method, p, body, opts) => request(method, p, body, o(opts)),
    get: (p, opts) => get(p, o(opts)),
    post: (p, body, opts) => post(p, body, o(opts)),
    put: (p, body, opts) => put(p, body, o(opts)),
    del: (p, opts) => del(p, o(opts)),
  };
}

// list pulls an array out of a list response, whether the server wraps it
// ({"services":[...]} / {"items":[...]}) or not.
export function list(v, ...keys) {
  if (Array.isArray(v)) return v;
  if (!v || typeof v !== 'object') return [];
  for (const k of [...keys, 'items', 'data', 'results']) if (Array.isArray(v[k])) return v[k];
  for (const k of Object.keys(v)) if (Array.isArray(v[k])) return v[k];
  return [];
}

// fileContent decodes a content field: a string, or base64 from a Go []byte
// encoded by encoding/json (used when content_encoding says so).
export function fileContent(c, enc) {
  if (c === undefined || c === null) return '';
  if (enc === 'base64') {
    const bin = atob(c);
    const bytes = Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
    return new TextDecoder().decode(bytes);
  }
  return String(c);
}
