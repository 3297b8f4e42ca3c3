/**
 * The broker's admin listener (role all, `--admin-address`): the JSON API over plain HTTP (bad
 * parameters, unknown ids, the access token, malformed requests) and the admin page driven in
 * headless Chromium: a message published, requeued twice and finished is found by id and by
 * topic, its timeline shows every step with its attempt, an API error reaches the error box, and
 * the topics table lists the topic and its channel.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { HistoryMessageDetail } from '../../libs/message-history/src/index.js';
import { Consumer, Producer, silentLogger, type Message } from '../../libs/nsq/src/index.js';
import { BrokerProcess, killBrokers } from '../support/broker.js';
import { describeWithChromium, launchChromium } from '../support/browser.js';
import { uniqueName } from '../support/client.js';
import { repoRoot } from '../support/nsq-bin.js';
import { waitFor } from '../support/wait.js';

const TEST_TIMEOUT = 60_000;
const TOKEN = 's3cret-token';
const SCREENSHOT = join(repoRoot(), 'test-artifacts', 'admin-timeline.png');

interface Admin {
  broker: BrokerProcess;
  /** http://127.0.0.1:<admin port> */
  url: string;
  /** 127.0.0.1:<nsqd TCP port> */
  nsqdTcp: string;
}

interface ApiError {
  statusCode: number;
  message: string;
  error?: string;
  parameter?: string;
}

interface Health {
  status: string;
  role: string;
  nsqd: { tcpAddress: string; httpAddress: string; identity: string } | null;
  history: { enabled: boolean; backend: string | null; stats: { queued: number; written: number; spooled: number; failures: number } | null };
}

const tempDirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'broker-admin-'));
  tempDirs.push(dir);
  return dir;
}

/** Role all with history on sql.js and the admin listener, every port OS-picked. */
async function startBroker(extra: string[] = []): Promise<Admin> {
  const dir = tempDir();
  const broker = new BrokerProcess([
    '--admin-address=127.0.0.1:0',
    `--history-db=sqljs:${join(dir, 'history.sqlite')}`,
    `--data-path=${dir}`,
    '--tcp-address=127.0.0.1:0',
    '--http-address=127.0.0.1:0',
    '--nsqlookupd-tcp-address=127.0.0.1:0',
    '--nsqlookupd-http-address=127.0.0.1:0',
    ...extra,
  ]);
  const adminPort = await broker.port(/\[admin\] HTTP: listening on 127\.0\.0\.1:(\d+)/);
  const tcpPort = await broker.port(/\[nsqd\] TCP: listening on 127\.0\.0\.1:(\d+)/);
  return { broker, url: `http://127.0.0.1:${adminPort}`, nsqdTcp: `127.0.0.1:${tcpPort}` };
}

async function get<T>(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body: body as T };
}

/**
 * Writes `request` as is on a fresh TCP connection and resolves with everything the server sent
 * until it closed the connection (or '' when it closed without answering).
 */
function rawHttp(port: number, request: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('latin1');
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no end of the answer within 10 s; so far: ${answer.slice(0, 200)}`)));
    socket.on('data', (chunk: string) => (answer += chunk));
    // the server may reset the connection right after answering a request it could not parse
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? resolve(answer) : reject(err)));
    socket.on('close', () => resolve(answer));
    socket.on('connect', () => socket.write(request));
  });
}

const statusLine = (answer: string): string => answer.split('\r\n', 1)[0] ?? '';

let main: Admin;

beforeAll(async () => {
  main = await startBroker();
}, TEST_TIMEOUT);

afterAll(async () => {
  await killBrokers();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('broker admin API', () => {
  it('GET / serves the page: one HTML document that loads nothing from elsewhere', async () => {
    const res = await fetch(`${main.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toMatch(/^<!doctype html>/i);
    expect(html).toContain('<script>');
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+stylesheet|(?:src|href)="(?:https?:)?\/\//i);
  });

  it('GET /api/health: role, nsqd identity and addresses, the history backend', async () => {
    const { status, body } = await get<Health>(`${main.url}/api/health`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ status: 'ok', role: 'all', history: { enabled: true, backend: 'sqljs' } });
    expect(body.nsqd?.tcpAddress).toBe(main.nsqdTcp);
    expect(body.nsqd?.identity).toEqual(expect.any(String));
    expect(body.history.stats).toMatchObject({ queued: expect.any(Number), written: expect.any(Number) });
  });

  it.each([
    ['messages?from=yesterday', 'from'],
    ['messages?to=2024-13-45T99:00', 'to'],
    ['messages?limit=0', 'limit'],
    ['messages?limit=many', 'limit'],
    ['messages?status=lost', 'status'],
    ['messages?cursor=not-a-cursor', 'cursor'],
    ['counts?from=soon', 'from'],
  ])('GET /api/%s: 400 with a message naming "%s"', async (path, parameter) => {
    const { status, body } = await get<ApiError>(`${main.url}/api/${path}`);
    expect(status).toBe(400);
    expect(body.statusCode).toBe(400);
    expect(body.message).toEqual(expect.stringContaining(parameter));
  });

  it('GET /api/messages/<unknown id>: 404 "no history for message <id>"', async () => {
    const { status, body } = await get<ApiError>(`${main.url}/api/messages/00000000000000ff`);
    expect(status).toBe(404);
    expect(body).toMatchObject({ statusCode: 404, message: 'no history for message 00000000000000ff' });
  });

  it(
    'with --admin-token: /api/* answers 401 without the token (or a wrong one) and 200 with it; the page needs none',
    async () => {
      const secured = await startBroker([`--admin-token=${TOKEN}`]);
      const health = `${secured.url}/api/health`;
      const denied = await get<ApiError>(health);
      expect(denied.status).toBe(401);
      expect(denied.body).toMatchObject({ statusCode: 401, error: 'Unauthorized' });
      expect((await get(health, { authorization: 'Bearer wrong' })).status).toBe(401);
      expect((await get(`${secured.url}/api/topics`)).status).toBe(401);
      expect((await get(`${secured.url}/api/messages/00000000000000ff`)).status).toBe(401);

      expect((await get<Health>(health, { authorization: `Bearer ${TOKEN}` })).body).toMatchObject({ status: 'ok' });
      expect((await get(`${health}?token=${TOKEN}`)).status).toBe(200);
      expect((await fetch(`${secured.url}/`)).status).toBe(200);
      await secured.broker.kill();
    },
    TEST_TIMEOUT,
  );

  it(
    'malformed requests are answered with 4xx and never take the broker down',
    async () => {
      const port = Number(new URL(main.url).port);
      const garbage = Buffer.concat([Buffer.from([0, 1, 2, 0xff, 0xfe]), Buffer.from(' \u00e9\r\nnot http at all\r\n\r\n', 'utf8')]);
      expect(statusLine(await rawHttp(port, garbage))).toMatch(/^HTTP\/1\.1 400/);
      // a request line over Node's 16 KiB header limit (small enough to be read whole, so the
      // server's close is a FIN after its answer, not a reset racing it)
      const longUrl = await rawHttp(port, `GET /api/messages/${'a'.repeat(32_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(statusLine(longUrl)).toMatch(/^HTTP\/1\.1 4\d\d/);
      // long but within Node's header limit: reaches the API, which refuses the id
      const longId = await get<ApiError>(`${main.url}/api/messages/${'a'.repeat(5000)}`);
      expect(longId.status).toBeGreaterThanOrEqual(400);
      expect(longId.status).toBeLessThan(500);
      const badEscapePath = await rawHttp(port, 'GET /api/messages/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(statusLine(badEscapePath)).toMatch(/^HTTP\/1\.1 4\d\d/);
      const badEscapeQuery = await rawHttp(port, 'GET /api/messages?topic=%ZZ&from=%&body=%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(statusLine(badEscapeQuery)).toMatch(/^HTTP\/1\.1 [24]\d\d/);
      const headerGarbage = await rawHttp(port, 'GET /api/health HTTP/1.1\r\nHost: x\r\nBad Header\u0000: \u0001\r\n\r\n');
      expect(statusLine(headerGarbage)).toMatch(/^HTTP\/1\.1 4\d\d/);

      expect(main.broker.running).toBe(true);
      expect((await get<Health>(`${main.url}/api/health`)).body).toMatchObject({ status: 'ok' });
    },
    TEST_TIMEOUT,
  );
});

describeWithChromium('broker admin page in headless Chromium', () => {
  /** Markup characters on purpose: the page must show them as text. */
  const BODY = '<img src=x onerror="document.title=1"> & "quotes" \u00e9';
  const topic = uniqueName('admin-page');
  const channel = 'audit';
  let messageId: string;
  let browser: Browser;
  let page: Page;
  /** Page errors, CSP violations and requests to other origins, per test. */
  let problems: string[];

  beforeAll(async () => {
    browser = await launchChromium();

    const producer = new Producer(main.nsqdTcp, { logger: silentLogger });
    const deliveries: string[] = [];
    const consumer = new Consumer({
      nsqdTCPAddresses: [main.nsqdTcp],
      topic,
      channel,
      logger: silentLogger,
      outputBufferTimeout: 25,
      handler: (msg: Message) => {
        deliveries.push(msg.id);
        // REQ twice, then the handler returns and the consumer FINs
        if (deliveries.length <= 2) msg.requeue(0, { backoff: false });
      },
    });
    consumer.on('error', () => undefined);
    try {
      await consumer.start();
      await producer.connect();
      await producer.publish(topic, BODY);
      await waitFor(() => deliveries.length >= 3, 20_000, 'the third delivery');
    } finally {
      await consumer.close(1000).catch(() => undefined);
      await producer.close();
    }
    messageId = deliveries[0]!;
    expect(deliveries).toEqual([messageId, messageId, messageId]);
    await waitFor(
      async () => {
        const { status, body } = await get<{ items: HistoryMessageDetail[] }>(`${main.url}/api/messages/${messageId}`);
        return status === 200 && body.items[0]?.events.some((e) => e.type === 'finished');
      },
      20_000,
      `the finished event of ${messageId} in /api/messages/:id`,
    );
  }, TEST_TIMEOUT);

  afterAll(async () => {
    await browser?.close();
  });

  beforeEach(async () => {
    problems = [];
    page = await browser.newPage();
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    page.on('request', (r) => {
      if (!r.url().startsWith('http://127.0.0.1:') && !r.url().startsWith('data:')) problems.push(`request to ${r.url()}`);
    });
  });

  afterEach(async () => {
    await page.close();
    expect(problems).toEqual([]);
  });

  /** The type and attempt columns of the timeline's event rows, as shown, once there are `n` of them. */
  async function shownEvents(n: number): Promise<{ types: string[]; attempts: string[]; dataTypes: Array<string | null> }> {
    const rows = page.locator('#timeline [data-testid=event-row]');
    // (not waitForFunction: it evaluates a string in the page, which the page's CSP forbids)
    await rows.nth(n - 1).waitFor();
    return {
      types: await rows.locator('td:nth-child(2)').allTextContents(),
      attempts: await rows.locator('td:nth-child(5)').allTextContents(),
      dataTypes: await Promise.all((await rows.all()).map((r) => r.getAttribute('data-type'))),
    };
  }

  const EXPECTED_TYPES = ['published', 'delivered', 'requeued', 'delivered', 'requeued', 'delivered', 'finished'];
  // '–' (en dash): published has no attempt
  const EXPECTED_ATTEMPTS = ['\u2013', '1', '1', '2', '2', '3', '3'];

  it(
    'search by message id: the timeline shows every step in order with its attempt, the body as text',
    async () => {
      await page.goto(`${main.url}/`);
      await page.fill('#search-id', messageId);
      await page.click('#search-submit');

      const events = await shownEvents(7);
      expect(events.types).toEqual(EXPECTED_TYPES);
      expect(events.dataTypes).toEqual(EXPECTED_TYPES);
      expect(events.attempts).toEqual(EXPECTED_ATTEMPTS);

      const item = page.locator('#timeline [data-testid=timeline-item]');
      expect(await item.count()).toBe(1);
      expect(await item.getAttribute('data-id')).toBe(messageId);
      expect(await item.locator('[data-field=topic]').textContent()).toBe(topic);
      expect(await item.locator('[data-field=status]').textContent()).toBe('finished');
      expect(await item.locator('[data-testid=body]').textContent()).toBe(BODY);
      expect(await item.locator('[data-testid=body]').getAttribute('data-encoding')).toBe('utf8');
      expect(await page.locator('#timeline img').count()).toBe(0);
      expect(await item.locator('[data-testid=channel-status-row][data-channel=audit] td:nth-child(2)').textContent()).toBe('finished');
      expect(await page.locator('[data-testid=result-row]').count()).toBe(1);
      // the header has loaded meanwhile
      await page.locator('#health [data-field=history]').waitFor();
      expect(await page.locator('#health [data-field=history]').textContent()).toBe('sqljs');
      // every batch reached the database (none failed over to the spool)
      expect(await page.locator('#health [data-field="last error"]').textContent()).toBe('none');
      expect((await get<Health>(`${main.url}/api/health`)).body.history.stats).toMatchObject({ failures: 0, spooled: 0 });
      expect(await page.title()).toBe('NSQ broker admin');

      mkdirSync(join(repoRoot(), 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    },
    TEST_TIMEOUT,
  );

  it(
    'search by topic (and a published-from time) lists the message; clicking the row opens its timeline',
    async () => {
      await page.goto(`${main.url}/`);
      await page.fill('#search-topic', topic);
      await page.click('#search-submit');
      const row = page.locator(`[data-testid=result-row][data-id="${messageId}"]`);
      await row.waitFor();
      expect(await page.locator('[data-testid=result-row]').count()).toBe(1);
      expect(await row.locator('td:nth-child(5)').textContent()).toBe('finished');

      await row.click();
      const events = await shownEvents(7);
      expect(events.types).toEqual(EXPECTED_TYPES);
      expect(await page.locator('#timeline [data-testid=timeline-item]').getAttribute('data-id')).toBe(messageId);

      // datetime-local is the browser's local time; the page sends it as an instant
      await page.fill('#search-from', localDateTime(new Date(Date.now() - 3600_000)));
      await page.click('#search-submit');
      await row.waitFor();
      await page.fill('#search-from', localDateTime(new Date(Date.now() + 3600_000)));
      await page.click('#search-submit');
      await page.locator('#results-info').filter({ hasText: 'page 1: 0 messages' }).waitFor();
      expect(await page.locator('[data-testid=result-row]').count()).toBe(0);
    },
    TEST_TIMEOUT,
  );

  it(
    'an API error (400 for a bad "from") is shown in the error box with the server\'s message',
    async () => {
      const expected = await get<ApiError>(`${main.url}/api/messages?from=last+tuesday`);
      expect(expected.status).toBe(400);
      await page.goto(`${main.url}/`);
      // A datetime-local field drops what is not a date as it is typed; browsers without the
      // input type show a text field, and the page hands its text to the API as is.
      await page.evaluate("document.getElementById('search-from').type = 'text'");
      await page.fill('#search-from', 'last tuesday');
      await page.click('#search-submit');
      const box = page.locator('#search-error');
      await box.waitFor({ state: 'visible' });
      expect(await box.textContent()).toBe(`400: ${expected.body.message}`);
      expect(await page.locator('#results').isVisible()).toBe(false);
    },
    TEST_TIMEOUT,
  );

  it(
    'the topics table shows the topic and, under it, the channel with its requeue count',
    async () => {
      await page.goto(`${main.url}/`);
      const topicRow = page.locator(`[data-testid=topic-row][data-topic="${topic}"]`);
      await topicRow.waitFor();
      expect(await topicRow.locator('td:first-child').textContent()).toBe(topic);
      const channelRow = page.locator(`[data-testid=channel-row][data-topic="${topic}"][data-channel="${channel}"]`);
      await channelRow.waitFor();
      expect(await channelRow.locator('td:first-child').textContent()).toBe(channel);
      expect(await channelRow.locator('td:nth-child(6)').textContent()).toBe('2');
      // the channel row directly follows its topic's row
      const rows = await page.locator('#topics-body tr').all();
      const order = await Promise.all(rows.map(async (r) => (await r.getAttribute('data-channel')) ?? (await r.getAttribute('data-topic'))));
      expect(order[order.indexOf(topic) + 1]).toBe(channel);
    },
    TEST_TIMEOUT,
  );

  it(
    'with --admin-token: a 401 shows the token input, and the token from it (or from ?token=) unlocks the page',
    async () => {
      const secured = await startBroker([`--admin-token=${TOKEN}`]);
      await page.goto(`${secured.url}/`);
      await page.locator('#auth').waitFor({ state: 'visible' });
      expect(await page.locator('#health [data-field=role]').count()).toBe(0);
      await page.fill('#token-input', TOKEN);
      await page.click('#token-submit');
      await page.locator('#health [data-field=role]').waitFor();
      expect(await page.locator('#health [data-field=role]').textContent()).toBe('all');
      expect(await page.locator('#auth').isVisible()).toBe(false);

      await page.goto(`${secured.url}/?token=${TOKEN}`);
      await page.locator('#topics-at').filter({ hasText: 'as of' }).waitFor();
      expect(await page.locator('#auth').isVisible()).toBe(false);
      await secured.broker.kill();
    },
    TEST_TIMEOUT,
  );
});

/** `date` as a datetime-local value (local time, to the second). */
function localDateTime(date: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}T${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}`;
}
