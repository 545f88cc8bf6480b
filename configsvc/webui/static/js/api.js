// The admin API client: same-origin fetch under /v1 with the session cookie.
// State-changing requests send X-Sluice-CSRF copied from the CSRF cookie.

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

// request calls the API. body: a string is sent raw (text/plain), anything
// else as JSON. It resolves to parsed JSON, text, or null for 204; with
// opts.response it resolves to the Response. Non-2xx rejects with APIError;
// opts.signal aborts the call, which then rejects with Cancelled.
export async function request(method, p, body, opts = {}) {
  const headers = new Headers(opts.headers || {});
  headers.set('Accept', opts.accept || 'application/json');
  if (method !== 'GET' && method !== 'HEAD') {
    const t = csrfToken();
    if (t) headers.set('X-Sluice-CSRF', t);
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
  try {
    res = await fetch('/v1' + p, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store', signal: opts.signal });
  } catch (e) {
    if (opts.signal && opts.signal.aborted) throw new Cancelled();
    throw new APIError(0, 'network', 'The server cannot be reached: ' + e.message);
  }
  try {
    return await answer(res, opts);
  } catch (e) {
    if (opts.signal && opts.signal.aborted) throw new Cancelled();
    throw e;
  }
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

// bound returns {get, post, put, del} that pass signal with every call, so
// a view's requests end when the view does.
export function bound(signal) {
  const o = (opts) => ({ ...(opts || {}), signal });
  return {
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
