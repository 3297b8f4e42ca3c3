/**
 * The broker's admin page (served at `GET /`): one self-contained HTML document, inline CSS and
 * vanilla JS, no framework, no build step and no request to anything but the broker's own
 * `/api/*` (the Content-Security-Policy below enforces that). Every value from the API reaches the
 * DOM through textContent / createElement, never as markup.
 *
 * The script is plain ES2017 in a string: it avoids backticks and `${` so that this TypeScript
 * template literal carries it verbatim.
 */
import { createHash } from 'node:crypto';
import { HISTORY_STATUSES } from '../../../../libs/message-history/src/index.js';

const STYLE = `
  :root { color-scheme: light; --line: #d0d4da; --muted: #5b6470; --bad: #a31515; --bg-bad: #fdecec; --accent: #0b5cad; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2329; background: #fafbfc; }
  header { padding: 10px 16px; background: #1d2b3a; color: #f3f5f7; }
  header h1 { margin: 0 0 6px; font-size: 18px; }
  header dl { display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 0; }
  header dl div { display: flex; gap: 6px; }
  header dt { color: #a9b6c4; }
  header dd { margin: 0; font-family: ui-monospace, monospace; }
  header .bad { color: #ffb3b3; }
  header .muted { color: #a9b6c4; font-size: 12px; font-weight: normal; }
  main { padding: 8px 16px 40px; }
  section { margin: 16px 0; }
  h2 { font-size: 16px; margin: 0 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
  h3 { font-size: 14px; margin: 12px 0 6px; }
  table { border-collapse: collapse; background: #fff; }
  th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
  th { background: #eef1f4; font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.mono, dd.mono, .mono { font-family: ui-monospace, monospace; }
  tr.channel td.name { padding-left: 28px; }
  tr.channel td.name::before { content: "\\21B3  "; color: var(--muted); }
  tr.clickable { cursor: pointer; }
  tr.clickable:hover { background: #eef5ff; }
  .badge { display: inline-block; margin-left: 6px; padding: 0 6px; border-radius: 8px; font-size: 12px; background: #ffe7b3; }
  .muted { color: var(--muted); }
  .error { border: 1px solid var(--bad); background: var(--bg-bad); color: var(--bad); padding: 6px 10px; margin: 8px 0; white-space: pre-wrap; }
  [hidden] { display: none !important; }
  form.search { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 6px 12px; align-items: end; max-width: 1100px; }
  form.search label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
  form.search input, form.search select { font: inherit; padding: 3px 5px; }
  form.search .buttons { display: flex; gap: 8px; }
  button { font: inherit; padding: 3px 12px; cursor: pointer; }
  #auth { border: 1px solid var(--accent); background: #eef5ff; padding: 8px 12px; margin: 8px 0; }
  .item { border: 1px solid var(--line); background: #fff; padding: 8px 12px; margin: 10px 0; }
  .item dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
  .item dt { color: var(--muted); }
  .item dd { margin: 0; }
  pre.body { margin: 0; padding: 6px; background: #f4f6f8; border: 1px solid var(--line); max-height: 240px; overflow: auto; white-space: pre-wrap; word-break: break-all; }
  .pager { margin-top: 6px; display: flex; gap: 12px; align-items: center; }
`;

const SCRIPT = `
'use strict';
(function () {
  var REFRESH_MS = 2000;
  var PREVIEW_CHARS = 80;
  var token = new URLSearchParams(window.location.search).get('token') || '';
  var needToken = false;
  var search = { params: null, page: 1 };

  function $(id) { return document.getElementById(id); }

  /** createElement with attributes and children; strings become text nodes (never markup). */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  function append(node, child) {
    if (child === null || child === undefined) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function show(node, visible) { node.hidden = !visible; }

  function text(v) { return v === null || v === undefined || v === '' ? '\\u2013' : String(v); }
  function num(v) { return el('td', { 'class': 'num' }, text(v)); }
  function rate(v) { return el('td', { 'class': 'num' }, typeof v === 'number' ? v.toFixed(1) : '\\u2013'); }
  function cell(v, cls) { return el('td', cls ? { 'class': cls } : null, text(v)); }
  function addr(a) { return a ? a.tcpAddress + ' (tcp), ' + a.httpAddress + ' (http)' : 'off'; }

  function ApiError(status, message, parameter) {
    this.status = status;
    this.message = message;
    this.parameter = parameter;
  }

  /** The server's message: Nest puts a string (or a list of them) in "message". */
  function messageOf(status, statusText, body) {
    if (body && typeof body === 'object') {
      var m = body.message;
      if (Array.isArray(m)) return m.join('; ');
      if (typeof m === 'string' && m !== '') return m;
    }
    return 'HTTP ' + status + (statusText ? ' ' + statusText : '');
  }

  /** GET api/<path> (relative, so the page also works under a path prefix) with the token. */
  function api(path) {
    var headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    return fetch('api/' + path, { headers: headers, cache: 'no-store' }).then(
      function (res) {
        return res.text().then(function (raw) {
          var body = null;
          try { body = raw ? JSON.parse(raw) : null; } catch (e) { body = null; }
          if (res.status === 401) askForToken(messageOf(res.status, res.statusText, body));
          if (!res.ok) throw new ApiError(res.status, messageOf(res.status, res.statusText, body), body && body.parameter);
          return body;
        });
      },
      function (err) { throw new ApiError(0, 'the broker did not answer: ' + (err && err.message ? err.message : String(err))); }
    );
  }

  function errorText(err) {
    return err instanceof ApiError ? (err.status ? err.status + ': ' : '') + err.message : String(err);
  }

  function showError(box, err) {
    box.textContent = errorText(err);
    show(box, true);
  }

  // ---- access token ------------------------------------------------------------------------

  function askForToken(message) {
    needToken = true;
    $('auth-message').textContent = message + (token ? ' (the token given was not accepted)' : '');
    show($('auth'), true);
  }

  $('token-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    token = $('token-input').value.trim();
    needToken = false;
    show($('auth'), false);
    refreshHealth();
    refreshTopics();
  });

  // ---- header: health and recorder stats -----------------------------------------------------

  function refreshHealth() {
    return api('health').then(function (h) {
      var dl = $('health');
      clear(dl);
      function item(label, value, cls) {
        dl.appendChild(el('div', null, el('dt', null, label), el('dd', { 'class': cls || null, 'data-field': label }, text(value))));
      }
      item('role', h.role);
      item('nsqd', h.nsqd ? h.nsqd.identity : 'off');
      if (h.nsqd) item('nsqd addresses', addr(h.nsqd));
      item('lookupd', addr(h.lookupd));
      var history = h.history || {};
      item('history', history.enabled ? history.backend : 'off');
      var s = history.stats;
      if (s) {
        item('queued', s.queued);
        item('written', s.written);
        item('spooled', s.spooled);
        item('last error', s.lastError || 'none', s.lastError ? 'bad' : null);
      }
      $('health-error').textContent = '';
      $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    }, function (err) {
      $('health-error').textContent = errorText(err);
    });
  }

  // ---- topics and channels -------------------------------------------------------------------

  function refreshTopics() {
    return api('topics').then(function (data) {
      var body = $('topics-body');
      clear(body);
      var topics = (data && data.topics) || [];
      if (topics.length === 0) body.appendChild(el('tr', null, el('td', { colspan: 10, 'class': 'muted' }, 'no topics')));
      topics.forEach(function (t) {
        body.appendChild(el('tr', { 'class': 'topic', 'data-testid': 'topic-row', 'data-topic': t.topic },
          el('td', { 'class': 'name mono' }, t.topic, t.paused ? el('span', { 'class': 'badge' }, 'paused') : null),
          num(t.depth), num(t.inFlight), num(t.deferred), num(t.messageCount), el('td'), el('td'), el('td'), rate(t.rate)));
        (t.channels || []).forEach(function (c) {
          body.appendChild(el('tr', { 'class': 'channel', 'data-testid': 'channel-row', 'data-topic': t.topic, 'data-channel': c.channel },
            el('td', { 'class': 'name mono' }, c.channel, c.paused ? el('span', { 'class': 'badge' }, 'paused') : null),
            num(c.depth), num(c.inFlight), num(c.deferred), num(c.messageCount), num(c.requeueCount), num(c.timeoutCount),
            num(c.clients), rate(c.rate)));
        });
      });
      $('topics-at').textContent = data && data.at ? 'as of ' + data.at : '';
      show($('topics-error'), false);
    }, function (err) {
      showError($('topics-error'), err);
    });
  }

  /** Polls fn every REFRESH_MS, never two at once; waits while a token is needed. */
  function poll(fn) {
    function next() { window.setTimeout(tick, REFRESH_MS); }
    function tick() {
      if (needToken) { next(); return; }
      fn().then(next, next);
    }
    tick();
  }

  // ---- search --------------------------------------------------------------------------------

  /** A datetime-local value (browser's time zone) as ISO 8601; anything else goes to the API as typed. */
  function timeParam(v) {
    if (!/^\\d{4,}-\\d\\d-\\d\\dT\\d\\d:\\d\\d(:\\d\\d(\\.\\d+)?)?$/.test(v)) return v;
    var d = new Date(v);
    return isNaN(d.getTime()) ? v : d.toISOString();
  }

  function formParams() {
    var p = new URLSearchParams();
    function add(name, value) { if (value !== '') p.set(name, value); }
    add('topic', $('search-topic').value.trim());
    add('channel', $('search-channel').value.trim());
    add('status', $('search-status').value);
    add('from', timeParam($('search-from').value.trim()));
    add('to', timeParam($('search-to').value.trim()));
    add('body', $('search-body').value);
    add('limit', $('search-limit').value.trim());
    return p;
  }

  function setSearchError(err) {
    if (err) showError($('search-error'), err); else show($('search-error'), false);
  }

  $('search-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    setSearchError(null);
    var id = $('search-id').value.trim();
    if (id !== '') {
      search.params = null;
      show($('next-page'), false);
      $('results-info').textContent = '';
      api('messages/' + encodeURIComponent(id)).then(function (data) {
        var items = (data && data.items) || [];
        renderResults(items.map(function (d) { return d.message || { nsqd: d.nsqd, messageId: d.messageId }; }));
        renderTimeline(items);
      }, function (err) {
        setSearchError(err);
        renderResults([]);
      });
      return;
    }
    search.params = formParams();
    search.page = 1;
    runSearch(null);
  });

  $('next-page').addEventListener('click', function () {
    var cursor = $('next-page').getAttribute('data-cursor');
    if (search.params && cursor) { search.page++; runSearch(cursor); }
  });

  function runSearch(cursor) {
    var p = new URLSearchParams(search.params);
    if (cursor) p.set('cursor', cursor);
    var qs = p.toString();
    setSearchError(null);
    return api('messages' + (qs ? '?' + qs : '')).then(function (data) {
      var items = (data && data.items) || [];
      renderResults(items);
      $('results-info').textContent = 'page ' + search.page + ': ' + items.length + ' message' + (items.length === 1 ? '' : 's');
      var next = $('next-page');
      if (data && data.nextCursor) next.setAttribute('data-cursor', data.nextCursor); else next.removeAttribute('data-cursor');
      show(next, Boolean(data && data.nextCursor));
    }, function (err) {
      setSearchError(err);
      renderResults([]);
      show($('next-page'), false);
    });
  }

  function preview(v) {
    if (v === null || v === undefined) return el('td', { 'class': 'muted' }, '(binary or not stored)');
    var s = String(v);
    return el('td', { 'class': 'mono', title: s }, s.length > PREVIEW_CHARS ? s.slice(0, PREVIEW_CHARS) + '\\u2026' : s);
  }

  function renderResults(items) {
    var body = $('results-body');
    clear(body);
    show($('results'), items.length > 0);
    items.forEach(function (m) {
      var row = el('tr', { 'class': 'clickable', 'data-testid': 'result-row', 'data-id': m.messageId, 'data-nsqd': m.nsqd, title: 'show the timeline' },
        cell(m.publishedAt, 'mono'), cell(m.topic, 'mono'), cell(m.messageId, 'mono'), cell(m.messageKey, 'mono'),
        cell(m.status), num(m.attempts), num(m.size), preview(m.preview !== undefined ? m.preview : m.bodyUtf8));
      row.addEventListener('click', function () { openTimeline(m.messageId, m.nsqd); });
      body.appendChild(row);
    });
  }

  // ---- timeline ------------------------------------------------------------------------------

  function openTimeline(messageId, nsqd) {
    setSearchError(null);
    var qs = nsqd ? '?nsqd=' + encodeURIComponent(nsqd) : '';
    return api('messages/' + encodeURIComponent(messageId) + qs).then(function (data) {
      renderTimeline((data && data.items) || []);
      $('timeline-section').scrollIntoView();
    }, function (err) { setSearchError(err); });
  }

  function bodyBlock(m) {
    if (m.bodyBase64 === null || m.bodyBase64 === undefined) return el('span', { 'class': 'muted' }, '(body not stored)');
    var utf8 = m.bodyUtf8 !== null && m.bodyUtf8 !== undefined;
    var note = (utf8 ? 'utf-8' : 'base64') + ', ' + m.size + ' bytes' + (m.bodyTruncated ? ', truncated: only the first bytes are stored' : '');
    return el('div', null,
      el('div', { 'class': 'muted', 'data-testid': 'body-note' }, note),
      el('pre', { 'class': 'body', 'data-testid': 'body', 'data-encoding': utf8 ? 'utf8' : 'base64', 'data-truncated': m.bodyTruncated ? 'true' : 'false' },
        utf8 ? m.bodyUtf8 : m.bodyBase64));
  }

  function renderItem(d) {
    var m = d.message;
    var fields = el('dl');
    function field(label, value, cls) { fields.appendChild(el('dt', null, label)); fields.appendChild(el('dd', { 'class': cls || null, 'data-field': label }, value)); }
    if (m) {
      field('key', text(m.messageKey), 'mono');
      field('topic', m.topic, 'mono');
      field('status', m.status);
      field('attempts', String(m.attempts));
      field('published at', m.publishedAt, 'mono');
      field('producer', text(m.producer), 'mono');
      field('deferred until', text(m.deferredUntil), 'mono');
      field('finished at', text(m.finishedAt), 'mono');
      field('dead-lettered at', text(m.deadLetteredAt), 'mono');
      field('body', bodyBlock(m));
    } else {
      field('message', el('span', { 'class': 'muted' }, 'no publish recorded; only events of it'));
    }

    var channels = el('tbody');
    d.channels.forEach(function (c) {
      channels.appendChild(el('tr', { 'data-testid': 'channel-status-row', 'data-channel': c.channel },
        cell(c.channel, 'mono'), cell(c.status), num(c.attempts), cell(c.firstDeliveredAt, 'mono'), cell(c.finishedAt, 'mono'),
        cell(c.deadLetteredAt, 'mono'), cell(c.lastEventAt, 'mono')));
    });
    if (d.channels.length === 0) channels.appendChild(el('tr', null, el('td', { colspan: 7, 'class': 'muted' }, 'not delivered to any channel')));

    var events = el('tbody');
    d.events.forEach(function (e) {
      events.appendChild(el('tr', { 'data-testid': 'event-row', 'data-type': e.type, 'data-attempt': e.attempt === null ? '' : e.attempt, 'data-channel': e.channel || '' },
        cell(e.at, 'mono'), cell(e.type), cell(e.channel, 'mono'), cell(e.consumer, 'mono'), num(e.attempt), cell(e.detail)));
    });

    return el('div', { 'class': 'item', 'data-testid': 'timeline-item', 'data-nsqd': d.nsqd, 'data-id': d.messageId },
      el('h3', null, 'nsqd ', el('span', { 'class': 'mono' }, d.nsqd), ' \\u00b7 message ', el('span', { 'class': 'mono' }, d.messageId)),
      fields,
      el('h3', null, 'Channels'),
      el('table', null,
        el('thead', null, el('tr', null, ['channel', 'status', 'attempts', 'first delivered', 'finished', 'dead-lettered', 'last event'].map(function (h) { return el('th', null, h); }))),
        channels),
      el('h3', null, 'Events'),
      el('table', { 'data-testid': 'events' },
        el('thead', null, el('tr', null, ['time', 'type', 'channel', 'consumer', 'attempt', 'detail'].map(function (h) { return el('th', null, h); }))),
        events));
  }

  function renderTimeline(items) {
    var box = $('timeline');
    clear(box);
    if (items.length === 0) { box.appendChild(el('p', { 'class': 'muted' }, 'no history for this message')); return; }
    items.forEach(function (d) { box.appendChild(renderItem(d)); });
  }

  poll(refreshHealth);
  poll(refreshTopics);
})();
`;

const STATUS_OPTIONS = HISTORY_STATUSES.map((s) => `<option value="${s}">${s.replace('_', ' ')}</option>`).join('');

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Only this page's own script and style run; it talks to nothing but its own origin. */
const CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

export const ADMIN_PAGE_HTML: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>NSQ broker admin</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>NSQ broker <span class="muted" id="updated"></span></h1>
  <dl id="health" data-testid="health"></dl>
  <div id="health-error" class="bad" role="alert"></div>
</header>
<main>
  <div id="auth" hidden>
    <p id="auth-message"></p>
    <form id="token-form">
      <label>Access token (--admin-token) <input id="token-input" type="password" autocomplete="off"></label>
      <button id="token-submit" type="submit">Use token</button>
    </form>
  </div>

  <section id="topics-section">
    <h2>Topics &amp; channels</h2>
    <div id="topics-error" class="error" role="alert" hidden></div>
    <table id="topics">
      <thead><tr><th>topic / channel</th><th>depth</th><th>in-flight</th><th>deferred</th><th>messages</th><th>requeued</th><th>timed out</th><th>clients</th><th>rate (msg/s)</th></tr></thead>
      <tbody id="topics-body"></tbody>
    </table>
    <div class="muted" id="topics-at"></div>
  </section>

  <section id="search-section">
    <h2>Search</h2>
    <form id="search-form" class="search">
      <label>message id or key <input id="search-id" name="id" autocomplete="off" placeholder="0a1b2c3d4e5f6789"></label>
      <label>topic <input id="search-topic" name="topic" autocomplete="off"></label>
      <label>channel <input id="search-channel" name="channel" autocomplete="off"></label>
      <label>status <select id="search-status" name="status"><option value="">any</option>${STATUS_OPTIONS}</select></label>
      <label>published from <input id="search-from" name="from" type="datetime-local" step="1"></label>
      <label>published to <input id="search-to" name="to" type="datetime-local" step="1"></label>
      <label>body contains <input id="search-body" name="body" autocomplete="off"></label>
      <label>limit <input id="search-limit" name="limit" type="number" min="1" max="500" placeholder="50"></label>
      <div class="buttons"><button id="search-submit" type="submit">Search</button><button type="reset">Clear</button></div>
    </form>
    <div id="search-error" class="error" data-testid="error-box" role="alert" hidden></div>
    <table id="results" hidden>
      <thead><tr><th>published at</th><th>topic</th><th>id</th><th>key</th><th>status</th><th>attempts</th><th>size</th><th>preview</th></tr></thead>
      <tbody id="results-body"></tbody>
    </table>
    <div class="pager"><span id="results-info" class="muted"></span><button id="next-page" type="button" hidden>Next page</button></div>
  </section>

  <section id="timeline-section">
    <h2>Timeline</h2>
    <div id="timeline" data-testid="timeline"><p class="muted">Search for a message id, or click a search result.</p></div>
  </section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
