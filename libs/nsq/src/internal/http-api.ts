/**
 * What nsqd's and nsqlookupd's HTTP APIs have in common (nsq 1.3.0 `internal/http_api`, plus the
 * parts of httprouter, net/url and net/http they answer with), so both servers answer alike:
 *
 * - http_api.V1 replies: `X-NSQ-Content-Type: nsq; version=1.0`, JSON with Go's HTML-safe escaping,
 *   errors as `{"message":"CODE"}` with the status; http_api.PlainText without the X-NSQ header.
 * - httprouter's routing: static segments and `:name` parameters; a trailing slash or wrong letter
 *   case is redirected (301 for GET, 307 otherwise); a known path with another method is 405 with
 *   `Allow` (OPTIONS answers `Allow`); anything else 404.
 * - url.ParseQuery (first value wins; `;` or a bad `%` escape is an error).
 *
 * What differs between the two servers (how a response is written, how the peer is named in the
 * log, TLS, request bodies) is passed in by each of them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { posix } from 'node:path';
import type { Duplex } from 'node:stream';
import type { NsqLogger } from '../client/logger.js';

export const V1_CONTENT_TYPE = 'nsq; version=1.0';
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
export const TEXT_CONTENT_TYPE = 'text/plain; charset=utf-8';
/** The headers of every http_api.V1 JSON answer (errors included). */
export const V1_JSON_HEADERS: Readonly<Record<string, string>> = { 'Content-Type': JSON_CONTENT_TYPE, 'X-NSQ-Content-Type': V1_CONTENT_TYPE };
const STATUS_TEXT: Readonly<Record<number, string>> = { 301: 'Moved Permanently', 307: 'Temporary Redirect' };

/** An error answer: `{"message":code}` with `status`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
  ) {
    super(code);
  }
}

/**
 * What a handler answers with: JSON, text as http_api.V1 sends it (with the X-NSQ header), text as
 * http_api.PlainText sends it (`plain`, without), or an empty 200.
 */
export type Reply = { json: string } | { text: string | Buffer; plain?: boolean } | { empty: true };

/** Writes one whole response; each server decides what else happens around it. */
export type Send = (status: number, headers: Readonly<Record<string, string>>, body: string | Buffer) => void;

/** Writes a response with its Content-Length and ends it. */
export function writeResponse(res: ServerResponse, status: number, headers: Readonly<Record<string, string>>, body: string | Buffer): void {
  const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.writeHead(status, { ...headers, 'Content-Length': String(buf.length) });
  res.end(buf);
}

/** A 200 with `reply`, as http_api.V1 / PlainText write it. */
export function sendReply(send: Send, reply: Reply): void {
  if ('json' in reply) {
    send(200, V1_JSON_HEADERS, reply.json);
  } else if ('text' in reply) {
    // Go sniffs text/plain for these bodies; PlainText (/ping) adds no X-NSQ header
    const headers: Record<string, string> = reply.plain ? {} : { 'X-NSQ-Content-Type': V1_CONTENT_TYPE };
    if (reply.text.length > 0) headers['Content-Type'] = TEXT_CONTENT_TYPE;
    send(200, headers, reply.text);
  } else {
    send(200, { 'X-NSQ-Content-Type': V1_CONTENT_TYPE }, '');
  }
}

/** http_api.V1 error: `{"message":code}`. */
export function sendV1Error(send: Send, status: number, code: string): void {
  send(status, V1_JSON_HEADERS, goJson({ message: code }));
}

/**
 * Runs a handler and answers with its reply (200) or its HttpError; returns the status sent (a
 * promise when the handler is async). Any other error is left to the caller (500, as a Go panic).
 */
export function runHandler(
  handler: () => Reply | Promise<Reply>,
  answer: (reply: Reply) => void,
  fail: (err: HttpError) => void,
): number | Promise<number> {
  const ok = (reply: Reply): number => {
    answer(reply);
    return 200;
  };
  const failed = (err: unknown): number => {
    if (!(err instanceof HttpError)) throw err;
    fail(err);
    return err.status;
  };
  let reply: Reply | Promise<Reply>;
  try {
    reply = handler();
  } catch (err) {
    return failed(err);
  }
  if (reply instanceof Promise) return reply.then(ok, failed);
  return ok(reply);
}

/**
 * Routes a request and writes the access log line (`status method uri (peer) elapsed`); a throwing
 * or rejecting route is httprouter's PanicHandler: logged, 500 INTERNAL_ERROR.
 */
export function serveRequest(
  req: IncomingMessage,
  res: ServerResponse,
  opts: { readonly logger: NsqLogger; readonly send: Send; remote(): string },
  route: () => number | Promise<number>,
): void {
  const started = process.hrtime.bigint();
  const logDone = (status: number): void => {
    const elapsedUs = Number(process.hrtime.bigint() - started) / 1000;
    opts.logger.debug(`${status} ${req.method ?? ''} ${req.url ?? ''} (${opts.remote()}) ${elapsedUs.toFixed(0)}µs`);
  };
  const internalError = (err: unknown): number => {
    opts.logger.error(`panic in HTTP handler - ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    if (!res.headersSent) sendV1Error(opts.send, 500, 'INTERNAL_ERROR');
    else res.destroy();
    return 500;
  };
  let result: number | Promise<number>;
  try {
    result = route();
  } catch (err) {
    result = internalError(err);
  }
  if (typeof result === 'number') {
    logDone(result);
    return;
  }
  result.then(logDone, (err: unknown) => logDone(internalError(err)));
}

/** The http.Server 'clientError' listener: Go's 400 for a request that does not parse. */
export function clientErrorHandler(logger: NsqLogger): (err: Error, socket: Duplex) => void {
  return (err, socket) => {
    logger.debug(`HTTP: client error - ${err.message}`);
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request');
    else socket.destroy();
  };
}

/** url.ParseQuery, parsed on first use (Go's handlers parse only when they need it); 400 INVALID_REQUEST if it does not parse. */
export function lazyQuery(raw: string, onInvalid?: (error: string) => void): () => Map<string, string> {
  let parsed: Map<string, string> | undefined;
  return () => {
    if (parsed === undefined) {
      const { values, error } = parseGoQuery(raw);
      if (error !== undefined) {
        onInvalid?.(error);
        throw new HttpError(400, 'INVALID_REQUEST');
      }
      parsed = values;
    }
    return parsed;
  };
}

// ---- routing (httprouter) ------------------------------------------------------------------------

export interface ApiRoute {
  readonly method: string;
  readonly pattern: string;
  readonly segments: readonly string[];
}

export function apiRoute<T extends object>(method: string, pattern: string, extra: T): ApiRoute & T {
  return { ...extra, method, pattern, segments: pattern.split('/').slice(1) };
}

/** Where httprouter sends a request. */
export type RouteDecision<R extends ApiRoute> =
  | { kind: 'match'; route: R; path: string; params: Record<string, string>; rawQuery: string }
  /** The path does not unescape: Go's server answers 400 before routing. */
  | { kind: 'bad-request' }
  | { kind: 'redirect'; code: number; location: string }
  | { kind: 'options'; allow: string }
  | { kind: 'method-not-allowed'; allow: string }
  | { kind: 'not-found' };

/**
 * httprouter's ServeHTTP for `url` (the request target). `stripPathFragment` cuts a `#…` from the
 * path as well (nsqd's reading of the target); a fragment is always cut from the query.
 */
export function resolveRoute<R extends ApiRoute>(routes: readonly R[], method: string, url: string, stripPathFragment: boolean): RouteDecision<R> {
  const target = splitTarget(url, stripPathFragment);
  const path = unescapeGo(target.path, false);
  if (path === undefined) return { kind: 'bad-request' };

  for (const route of routes) {
    if (route.method !== method) continue;
    const params = matchRoute(route.segments, path);
    if (params !== undefined) return { kind: 'match', route, path, params, rawQuery: target.query };
  }

  const sameMethod = routes.filter((r) => r.method === method);
  if (sameMethod.length > 0 && method !== 'CONNECT' && path !== '/') {
    const code = method === 'GET' ? 301 : 307;
    const query = target.hasQuery ? `?${target.query}` : '';
    if (path.length > 1 && path.endsWith('/') && sameMethod.some((r) => matchRoute(r.segments, path.slice(0, -1)) !== undefined)) {
      return { kind: 'redirect', code, location: escapePath(path.slice(0, -1)) + query };
    }
    const fixed = findCaseInsensitive(sameMethod, cleanPath(path));
    if (fixed !== undefined) return { kind: 'redirect', code, location: escapePath(fixed) + query };
  }

  const allowed = new Set(routes.filter((r) => r.method !== method && matchRoute(r.segments, path) !== undefined).map((r) => r.method));
  if (allowed.size > 0) {
    const allow = [...allowed, 'OPTIONS'].sort().join(', ');
    return method === 'OPTIONS' ? { kind: 'options', allow } : { kind: 'method-not-allowed', allow };
  }
  return { kind: 'not-found' };
}

/** Answers every decision but a match; returns the status sent. */
export function sendUnrouted(res: ServerResponse, send: Send, method: string, decision: Exclude<RouteDecision<ApiRoute>, { kind: 'match' }>): number {
  switch (decision.kind) {
    case 'bad-request':
      send(400, { 'Content-Type': TEXT_CONTENT_TYPE, Connection: 'close' }, '400 Bad Request');
      return 400;
    case 'redirect': {
      // Go's http.Redirect: an HTML body for GET, none otherwise
      const { code, location } = decision;
      const html = method === 'GET' || method === 'HEAD';
      const body = method === 'GET' ? `<a href="${htmlEscape(location)}">${STATUS_TEXT[code]}</a>.\n\n` : '';
      send(code, html ? { 'Content-Type': 'text/html; charset=utf-8', Location: location } : { Location: location }, body);
      return code;
    }
    case 'options':
      send(200, { Allow: decision.allow }, '');
      return 200;
    case 'method-not-allowed':
      res.setHeader('Allow', decision.allow);
      sendV1Error(send, 405, 'METHOD_NOT_ALLOWED');
      return 405;
    case 'not-found':
      sendV1Error(send, 404, 'NOT_FOUND');
      return 404;
  }
}

/**
 * The path and raw query of a request target (origin-form or absolute-form). Node hands over the
 * `#…` the client sent: it is cut from the query, and from the path too if `stripPathFragment`.
 */
function splitTarget(target: string, stripPathFragment: boolean): { path: string; query: string; hasQuery: boolean } {
  let rest = target;
  if (!rest.startsWith('/') && /^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) {
    const afterScheme = rest.indexOf('//') + 2;
    const slash = rest.indexOf('/', afterScheme);
    rest = slash === -1 ? '/' : rest.slice(slash);
  }
  const q = rest.indexOf('?');
  const path = q === -1 ? rest : rest.slice(0, q);
  if (stripPathFragment) {
    const hash = path.indexOf('#');
    if (hash !== -1) return { path: path.slice(0, hash), query: '', hasQuery: false };
  }
  if (q === -1) return { path, query: '', hasQuery: false };
  const query = rest.slice(q + 1);
  const hash = query.indexOf('#');
  return { path, query: hash === -1 ? query : query.slice(0, hash), hasQuery: true };
}

/** httprouter: static segments match exactly, `:name` matches one non-empty segment. */
function matchRoute(segments: readonly string[], path: string): Record<string, string> | undefined {
  if (!path.startsWith('/')) return undefined;
  const parts = path.slice(1).split('/');
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const part = parts[i]!;
    if (seg.startsWith(':')) {
      if (part === '') return undefined;
      params[seg.slice(1)] = part;
    } else if (seg !== part) {
      return undefined;
    }
  }
  return params;
}

/** httprouter's findCaseInsensitivePath (with trailing-slash fixing); parameters keep their text. */
function findCaseInsensitive(routes: readonly ApiRoute[], path: string): string | undefined {
  const candidates = path.length > 1 && path.endsWith('/') ? [path, path.slice(0, -1)] : [path];
  for (const candidate of candidates) {
    const parts = candidate.slice(1).split('/');
    for (const r of routes) {
      if (parts.length !== r.segments.length) continue;
      const fixed: string[] = [];
      let ok = true;
      for (let i = 0; i < parts.length && ok; i++) {
        const seg = r.segments[i]!;
        const part = parts[i]!;
        if (seg.startsWith(':')) {
          ok = part !== '';
          fixed.push(part);
        } else {
          ok = seg.toLowerCase() === part.toLowerCase();
          fixed.push(seg);
        }
      }
      if (ok) return `/${fixed.join('/')}`;
    }
  }
  return undefined;
}

/** httprouter's CleanPath: path.Clean that keeps a trailing slash. */
function cleanPath(path: string): string {
  return posix.normalize(path.startsWith('/') ? path : `/${path}`);
}

/** Go's URL.EscapedPath (shouldEscape in encodePath mode) for the Location of a redirect. */
function escapePath(path: string): string {
  return path.replace(/[^A-Za-z0-9\-._~$&+,;=:@/]/g, (c) =>
    [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  );
}

function htmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' })[c]!);
}

// ---- Go encodings --------------------------------------------------------------------------------

/** JSON.stringify with encoding/json's HTML-safe escaping. */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A duration in ms as Go marshals a time.Duration (ns), for values within 2^53. */
export function msToNs(ms: number): number {
  return ms * 1_000_000;
}

/** ms (truncated) as exact decimal ns, for values beyond 2^53 (UnixNano timestamps), written into JSON by hand. */
export function msToNsString(ms: number): string {
  return (BigInt(Math.trunc(ms)) * 1_000_000n).toString();
}

/**
 * url.ParseQuery: `&`-separated, `+` is a space, `%XX` escapes; the first error (Go's text) is kept
 * and parsing goes on.
 */
export function parseGoQuery(raw: string): { values: Map<string, string>; error: string | undefined } {
  const values = new Map<string, string>();
  let error: string | undefined;
  for (const part of raw.split('&')) {
    if (part === '') continue;
    if (part.includes(';')) {
      error ??= 'invalid semicolon separator in query';
      continue;
    }
    const eq = part.indexOf('=');
    const key = unescapeGo(eq === -1 ? part : part.slice(0, eq), true);
    const value = unescapeGo(eq === -1 ? '' : part.slice(eq + 1), true);
    if (key === undefined || value === undefined) {
      error ??= `invalid URL escape in ${JSON.stringify(part)}`;
      continue;
    }
    if (!values.has(key)) values.set(key, value);
  }
  return { values, error };
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/**
 * Go's url unescape: `%XX` must be valid; in a query component `+` is a space. Undefined on error.
 * Node's parser rejects a request target with non-ASCII bytes, so other characters only come from
 * direct callers: they stand for their UTF-8 bytes.
 */
export function unescapeGo(s: string, query: boolean): string | undefined {
  if (!s.includes('%') && !(query && s.includes('+'))) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      if (i + 2 >= s.length || !isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) return undefined;
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c === 0x2b && query) {
      bytes.push(0x20);
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      bytes.push(...Buffer.from(s[i]!, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
