/**
 * The sample services in-process (Nest testing module, real HTTP, a real nsqd: our broker's),
 * on sql.js and on MariaDB: POST /orders validation (400 per rule), GET /orders/:id 404, the
 * outbox row in the order's transaction (a failing outbox insert leaves neither row), the
 * published event (envelope with message-key = eventId), and points-service's idempotence (a
 * duplicated event awards once, directly and over NSQ).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { randomUUID } from 'node:crypto';
import { Consumer, NsqdHttpClient, Producer, silentLogger } from '../../libs/nsq/src/index.js';
import { decodeEnvelope, encodeEnvelope } from '../../libs/nest-nsq/src/index.js';
import { SampleDatabase, type DatabaseConnectionOptions } from '../../apps/shared/src/index.js';
import type { OrderServiceConfig } from '../../apps/order-service/src/config.js';
import { OrderServiceModule } from '../../apps/order-service/src/order-service.module.js';
import type { PointsServiceConfig } from '../../apps/points-service/src/config.js';
import { createNsqServer } from '../../apps/points-service/src/nsq-server.js';
import type { OrderCreated } from '../../apps/points-service/src/order-created.js';
import { PointsServiceModule } from '../../apps/points-service/src/points-service.module.js';
import { PointsService } from '../../apps/points-service/src/points.service.js';
import { Cleanup, channelStats } from '../support/client.js';
import { MARIADB, createTestDatabase, historyBackends } from '../support/mariadb.js';
import { type NsqdProcess, startNsqd, stopAll } from '../support/processes.js';
import { nestLogs } from '../support/transport.js';
import { waitFor } from '../support/wait.js';

const { backends, missing } = await historyBackends();

let nsqd: NsqdProcess;
const cleanup = new Cleanup();
const dirs: string[] = [];

beforeAll(async () => {
  nsqd = await startNsqd({ impl: 'ts' });
}, 30_000);

afterEach(() => cleanup.run());

afterAll(async () => {
  await stopAll();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh database of `backend` for one app (dropped by cleanup). */
async function database(backend: 'sqljs' | 'mariadb', prefix: string): Promise<DatabaseConnectionOptions> {
  if (backend === 'sqljs') {
    const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
    dirs.push(dir);
    return { type: 'sqljs', location: join(dir, `${prefix}.sqlite`) };
  }
  if (missing !== undefined) throw new Error(missing);
  const db = await createTestDatabase(prefix);
  cleanup.add(() => db.drop());
  return { type: 'mariadb', host: MARIADB.host, port: MARIADB.port, username: MARIADB.user, password: MARIADB.password, database: db.name };
}

async function startOrderService(db: DatabaseConnectionOptions, owner: Cleanup = cleanup): Promise<{ app: INestApplication; url: string; db: SampleDatabase }> {
  const config: OrderServiceConfig = {
    address: { host: '127.0.0.1', port: 0 },
    db,
    nsqdTCPAddresses: [nsqd.tcpAddress],
    history: undefined,
    relay: { pollInterval: 200 },
  };
  const ref = await Test.createTestingModule({ imports: [OrderServiceModule.forRoot(config)] })
    .setLogger(nestLogs)
    .compile();
  const app = ref.createNestApplication({ logger: nestLogs, forceCloseConnections: true });
  owner.add(() => app.close());
  await app.listen(0, '127.0.0.1');
  return { app, url: await app.getUrl(), db: app.get(SampleDatabase) };
}

async function post(url: string, body: string, contentType = 'application/json'): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}/orders`, { method: 'POST', headers: { 'content-type': contentType }, body });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function count(db: SampleDatabase, table: string): Promise<number> {
  const rows = (await db.read((em) => em.query(`SELECT COUNT(*) AS n FROM ${table}`))) as Array<{ n: number | string }>;
  return Number(rows[0]?.n ?? 0);
}

describe('order-service HTTP API', () => {
  // one app for the whole block, closed after it
  const blockCleanup = new Cleanup();
  let url: string;

  beforeAll(async () => {
    url = (await startOrderService(await database('sqljs', 'orders'), blockCleanup)).url;
  }, 30_000);

  afterAll(() => blockCleanup.run());

  it.each([
    ['a JSON array', '[1]', 'body', /must be a JSON object/],
    ['an unknown field', '{"userId":"u1","amountCents":100,"coupon":"X"}', 'coupon', /unknown field "coupon"/],
    ['no userId', '{"amountCents":100}', 'userId', /userId is required/],
    ['a userId that is not a string', '{"userId":1,"amountCents":100}', 'userId', /must be a string/],
    ['a userId with bad characters', '{"userId":"a/b","amountCents":100}', 'userId', /1-64 characters/],
    ['no amountCents', '{"userId":"u1"}', 'amountCents', /amountCents is required/],
    ['amountCents as a string', '{"userId":"u1","amountCents":"100"}', 'amountCents', /JSON number/],
    ['a fractional amountCents', '{"userId":"u1","amountCents":1.5}', 'amountCents', /whole number/],
    ['amountCents out of range', '{"userId":"u1","amountCents":0}', 'amountCents', /between 1 and/],
  ])('POST /orders with %s: 400 naming the field', async (_name, body, field, message) => {
    const { status, json } = await post(url, body);
    expect(status).toBe(400);
    expect(json).toMatchObject({ statusCode: 400, error: 'Bad Request', field });
    expect(json.message).toMatch(message);
  });

  it('POST /orders with malformed JSON or no JSON content type: 400', async () => {
    const malformed = await post(url, '{"userId":');
    expect(malformed.status).toBe(400);
    const plain = await post(url, 'userId=u1&amountCents=100', 'text/plain');
    expect(plain.status).toBe(400);
    expect(plain.json.message).toMatch(/must be a JSON object|userId is required/);
  });

  it('GET /orders/:id: 404 for an unknown or malformed id, 200 for a placed order', async () => {
    const unknown = await fetch(`${url}/orders/${randomUUID()}`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ statusCode: 404, message: expect.stringMatching(/^no order /) });
    expect((await fetch(`${url}/orders/not-an-id`)).status).toBe(404);

    const placed = await post(url, '{"userId":"u1","amountCents":1999}');
    expect(placed.status).toBe(201);
    expect(placed.json).toMatchObject({ userId: 'u1', amountCents: 1999, points: 19, event: { topic: 'order.created' } });
    const got = await fetch(`${url}/orders/${String(placed.json.id)}`);
    expect(got.status).toBe(200);
    expect(await got.json()).toMatchObject({ id: placed.json.id, userId: 'u1', amountCents: 1999, points: 19 });
  });
});

describe.each(backends)('order-service outbox [%s]', (backend) => {
  it('writes the outbox row in the order transaction: a failing outbox insert leaves neither row', async () => {
    const { url, db } = await startOrderService(await database(backend, 'orders'));
    const trigger =
      backend === 'sqljs'
        ? "CREATE TRIGGER outbox_refuses BEFORE INSERT ON outbox_event BEGIN SELECT RAISE(ABORT, 'outbox refuses inserts'); END"
        : "CREATE TRIGGER outbox_refuses BEFORE INSERT ON outbox_event FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'outbox refuses inserts'";
    await db.transaction((em) => em.query(trigger));

    const refused = await post(url, '{"userId":"u1","amountCents":500}');
    expect(refused.status).toBe(500);
    expect(await count(db, 'orders')).toBe(0);
    expect(await count(db, 'outbox_event')).toBe(0);

    await db.transaction((em) => em.query('DROP TRIGGER outbox_refuses'));
    const accepted = await post(url, '{"userId":"u1","amountCents":500}');
    expect(accepted.status).toBe(201);
    expect(await count(db, 'orders')).toBe(1);
    expect(await count(db, 'outbox_event')).toBe(1);
  });

  it('publishes each order.created once nsqd acknowledges it, with message-key = eventId, and marks it sent', async () => {
    const topicApi = new NsqdHttpClient(nsqd.httpAddress);
    await topicApi.createTopic('order.created');
    await topicApi.createChannel('order.created', `check-${backend}`);
    const received: Array<{ headers: Record<string, string>; payload: OrderCreated }> = [];
    const consumer = new Consumer({
      topic: 'order.created',
      channel: `check-${backend}`,
      nsqdTCPAddresses: [nsqd.tcpAddress],
      logger: silentLogger,
      maxInFlight: 10,
      handler: (msg) => {
        const { headers, payload } = decodeEnvelope(msg.body);
        received.push({ headers: { ...headers }, payload: JSON.parse(payload.toString('utf8')) as OrderCreated });
      },
    });
    cleanup.track(consumer);
    await consumer.start();

    const { url } = await startOrderService(await database(backend, 'orders'));
    const placed = await post(url, '{"userId":"u7","amountCents":4321}');
    expect(placed.status).toBe(201);
    const event = placed.json.event as { eventId: string };
    const mine = await waitFor(() => received.find((r) => r.payload.eventId === event.eventId), 10_000, 'the published event');
    expect(mine.headers['message-key']).toBe(event.eventId);
    expect(mine.payload).toEqual({
      eventId: event.eventId,
      orderId: placed.json.id,
      userId: 'u7',
      amountCents: 4321,
      points: 43,
      createdAt: placed.json.createdAt,
    });
    await waitFor(async () => {
      const res = await fetch(`${url}/orders/${String(placed.json.id)}`);
      return ((await res.json()) as { event: { sentAt: string | null } }).event.sentAt !== null;
    }, 10_000, 'the outbox row marked sent');
  });
});

function orderCreated(userId: string, points: number): OrderCreated {
  return { eventId: randomUUID(), orderId: randomUUID(), userId, amountCents: points * 100 + 7, points, createdAt: new Date().toISOString() };
}

async function startPoints(db: DatabaseConnectionOptions, nsqdTcpAddress: string | undefined): Promise<{ app: INestApplication; url: string; points: PointsService }> {
  const config: PointsServiceConfig = {
    address: { host: '127.0.0.1', port: 0 },
    db,
    lookupdHTTPAddresses: undefined,
    nsqdTCPAddresses: [nsqdTcpAddress ?? nsqd.tcpAddress],
    history: undefined,
  };
  const ref = await Test.createTestingModule({ imports: [PointsServiceModule.forRoot(config)] })
    .setLogger(nestLogs)
    .compile();
  const app = ref.createNestApplication({ logger: nestLogs, forceCloseConnections: true });
  cleanup.add(() => app.close());
  if (nsqdTcpAddress !== undefined) {
    app.connectMicroservice<MicroserviceOptions>({ strategy: createNsqServer(config, undefined) }, { inheritAppConfig: true });
    await app.startAllMicroservices();
  }
  await app.listen(0, '127.0.0.1');
  return { app, url: await app.getUrl(), points: app.get(PointsService) };
}

describe.each(backends)('points-service idempotence [%s]', (backend) => {
  it('a duplicated event awards once, even when the copies run at the same time', async () => {
    const { url, points } = await startPoints(await database(backend, 'points'), undefined);
    const event = orderCreated('dup-user', 12);
    const outcomes = await Promise.all(Array.from({ length: 5 }, () => points.award({ ...event })));
    expect(outcomes.filter((o) => o === 'done')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'duplicate')).toHaveLength(4);
    expect(await points.award({ ...event })).toBe('duplicate');
    expect(await points.award(orderCreated('dup-user', 3))).toBe('done');

    const res = await fetch(`${url}/users/dup-user/points`);
    expect(await res.json()).toEqual({ userId: 'dup-user', points: 15, awards: 2 });
    expect(await (await fetch(`${url}/users/nobody/points`)).json()).toEqual({ userId: 'nobody', points: 0, awards: 0 });
    expect((await fetch(`${url}/users/${encodeURIComponent('a b')}/points`)).status).toBe(400);
  });

  it('over NSQ: the same event published twice is finished twice and awarded once, on both channels', async () => {
    // an nsqd of its own: no order.created from the other tests
    const own = await startNsqd({ impl: 'ts' });
    cleanup.add(() => own.kill('SIGKILL'));
    const { url, points } = await startPoints(await database(backend, 'points'), own.tcpAddress);
    const event = orderCreated(`nsq-${backend}`, 42);
    const producer = cleanup.track(new Producer(own.tcpAddress, { logger: silentLogger }));
    const body = encodeEnvelope({ 'message-key': event.eventId, 'content-type': 'application/json' }, Buffer.from(JSON.stringify(event)));
    await producer.publish('order.created', body);
    await producer.publish('order.created', body);
    await waitFor(async () => {
      const ch = await channelStats(own, 'order.created', 'points');
      return ch !== undefined && ch.message_count === 2 && ch.depth === 0 && ch.in_flight_count === 0;
    }, 15_000, 'both copies finished on channel points');
    await waitFor(async () => (await points.counts()).notifications >= 1, 15_000, 'the notification');
    expect(await (await fetch(`${url}/users/${event.userId}/points`)).json()).toEqual({ userId: event.userId, points: 42, awards: 1 });
    expect(await points.counts()).toEqual({ awards: 1, notifications: 1 });
  });
});
