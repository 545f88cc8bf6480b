// The router owns the current view. Every navigation makes a new View with
// its own container, AbortSignal and clean-ups, and ends the one before: its
// requests are aborted, its event streams closed, its dialogs and error
// toasts removed, and whatever it still renders goes into its own container,
// which is no longer in the page. So a slow page can never replace the one
// the user moved to.
//
// Routes are patterns of hash segments ('services/:name/:tab'); the query
// after '?' is the view's (filters written to the URL). New pages add a
// route to the table in app.js.
import { h, mount, closeModals } from './dom.js';
import * as api from './api.js';
import { toast, clearErrors } from './notify.js';

// parseHash splits '#/a/b?x=1' into {segs: ['a', 'b'], query}.
export function parseHash(hash) {
  const raw = hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const segs = path.split('/').filter(Boolean).map((s) => { try { return decodeURIComponent(s); } catch (_) { return s; } });
  return { segs, query: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
}

// href builds '#/a/b?x=1' from segments and optional query parameters.
export function href(segs, query) {
  const q = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '' && v !== null && v !== undefined)).toString() : '';
  return '#/' + segs.map((s) => encodeURIComponent(String(s))).join('/') + (q ? '?' + q : '');
}

// View is one page as the user sees it, from navigation to the next one.
// Pages receive it: they render into view.main, call the API through
// view.api (aborted when the view ends) and register clean-ups.
export class View {
  constructor(router, segs, query, ctx) {
    this.router = router;
    this.segs = segs;
    this.query = query;
    this.controller = new AbortController();
    this.signal = this.controller.signal;
    this.api = api.bound(this.signal);
    this.main = h('div', { class: 'view' });
    this.cleanups = [];
    // dirty, when a page sets it, reports unsaved edits: leaving asks first.
    this.dirty = null;
    Object.assign(this, ctx);
  }

  // alive reports whether this view is still the one shown.
  alive() { return this.router.view === this && !this.signal.aborted; }

  // onCleanup registers fn to run when the view ends (at once if it has).
  onCleanup(fn) {
    if (this.alive()) this.cleanups.push(fn);
    else fn();
  }

  // title sets document.title to "parts · Sluice".
  title(...parts) {
    if (this.alive()) document.title = [...parts.filter(Boolean), 'Sluice'].join(' · ');
  }

  // mount replaces what the view shows.
  mount(...children) { mount(this.main, ...children); }

  // setQuery writes q into the URL without a new navigation (filters).
  setQuery(q) {
    if (!this.alive()) return;
    const next = href(this.segs, q);
    history.replaceState(null, '', next);
    this.router.lastHash = location.hash;
    this.query = new URLSearchParams(next.split('?')[1] || '');
  }

  flash(message, kind, code) { if (this.alive()) toast(message, kind, code); }

  // showError reports a failed call with the server's own message, unless
  // the view has ended (its calls were cancelled on purpose).
  showError(err, what) {
    if (!this.alive() || err instanceof api.Cancelled) return;
    const prefix = what ? what + ': ' : '';
    if (err instanceof api.APIError) toast(prefix + err.message, 'error', errorCode(err));
    else toast(prefix + (err && err.message ? err.message : String(err)), 'error');
  }

  end() {
    this.controller.abort();
    const fns = this.cleanups;
    this.cleanups = [];
    for (const fn of fns) { try { fn(); } catch (_) { /* a failed clean-up must not block navigation */ } }
  }
}

// errorCode is the small print of an API error: its status and code, and
// the request id under which the server logged what went wrong inside.
export function errorCode(err) {
  const parts = [];
  if (err.status) parts.push(err.status + (err.code ? ' ' + err.code : ''));
  if (err.requestId) parts.push('request ' + err.requestId);
  return parts.join(' · ');
}

// Router maps the location hash to pages and owns the current View.
export class Router {
  // outlet: the element views are shown in; ctx: what every view carries
  // (permission checks, the signed-in user); onRoute(view, route) runs
  // before a page renders (navigation highlight).
  constructor(outlet, ctx, onRoute) {
    this.outlet = outlet;
    this.ctx = ctx;
    this.onRoute = onRoute;
    this.routes = [];
    this.view = null;
    this.lastHash = '';
  }

  // add registers page for pattern ('services/:name'); page(view, params)
  // may be async. meta.nav names the navigation item it belongs to.
  add(pattern, page, meta = {}) {
    this.routes.push({ parts: pattern.split('/').filter(Boolean), page, ...meta });
    return this;
  }

  match(segs) {
    for (const r of this.routes) {
      if (r.parts.length !== segs.length) continue;
      const params = {};
      if (r.parts.every((p, i) => (p.startsWith(':') ? ((params[p.slice(1)] = segs[i]), true) : p === segs[i]))) return { route: r, params };
    }
    return null;
  }

  // mayLeave asks before a view with unsaved edits is left.
  mayLeave() {
    const v = this.view;
    return !(v && v.dirty && v.dirty()) || confirm('You have unpublished edits. Leave this page and discard them?');
  }

  // stop ends the current view (sign-out).
  stop() {
    if (this.view) this.view.end();
    this.view = null;
    closeModals();
    clearErrors();
  }

  // render shows the page for the current hash, ending the view before.
  async render() {
    if (this.view && location.hash !== this.lastHash && !this.mayLeave()) {
      history.replaceState(null, '', this.lastHash || '#/services');
      return;
    }
    this.lastHash = location.hash;
    this.stop();
    const { segs, query } = parseHash(location.hash);
    const view = new View(this, segs, query, this.ctx);
    this.view = view;
    const m = this.match(segs);
    if (this.onRoute) this.onRoute(view, m && m.route);
    mount(this.outlet, view.main);
    view.mount(h('div', { class: 'muted', role: 'status' }, 'Loading…'));
    if (!m) {
      view.title('Not found');
      view.mount(h('h1', {}, 'No such page'), h('div', { class: 'empty-state' }, h('a', { href: '#/services' }, 'Go to services')));
      return;
    }
    try {
      await m.route.page(view, m.params);
    } catch (e) {
      if (!view.alive() || e instanceof api.Cancelled) return;
      if (e instanceof api.APIError && e.status === 401) return;
      view.mount(h('h1', {}, 'This page cannot be shown'), h('div', { class: 'notice error', role: 'alert', 'data-test': 'page-error' }, e.message || String(e),
        e instanceof api.APIError && e.requestId ? h('div', { class: 'small muted', 'data-test': 'request-id' }, errorCode(e)) : null));
    }
  }
}
