/**
 * The Nest transport (libs/nest-nsq) end to end, as Nest apps wire it, against the official nsqd
 * and ours: NsqModule.forRoot / forRootAsync providing NsqBroker and NsqClient (publish,
 * publishMany, DPUB, subscribe from code, shutdown), ClientsModule with NsqClient as customClass,
 * and a hybrid HTTP + NSQ application.
 */
import { afterAll, afterEach, beforeAll, expect, it } from '@jest/globals';
import { Controller, Get, Inject, Injectable, Module, Query } from '@nestjs/common';
import { type ClientProxy, ClientsModule, Ctx, EventPattern, MessagePattern, Payload, Transport } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { firstValueFrom, lastValueFrom } from 'rxjs';
import {
  NSQ_TRANSPORT,
  NsqBroker,
  type NsqBrokerSubscription,
  NsqClient,
  type NsqContext,
  NsqModule,
  NsqServer,
  NsqStatus,
} from '../../libs/nest-nsq/src/index.js';
import { Cleanup, channelStats, uniqueName } from '../support/client.js';
import { describeEachImpl } from '../support/nsq-bin.js';
import { type NsqdProcess, startNsqd, stopAll } from '../support/processes.js';
import { nestLogs, serverOptions } from '../support/transport.js';
import { sleep, waitFor } from '../support/wait.js';

const TEST_TIMEOUT = 30_000;
const cleanup = new Cleanup();

interface OrderPlaced {
  orderId: string;
  lines: Array<{ sku: string; qty: number }>;
}

interface Got<T> {
  payload: T;
  attempts: number;
  headers: Record<string, string>;
  at: number;
}

const NSQD_ADDRESS = 'NSQD_ADDRESS';

describeEachImpl('Nest transport: NsqModule, ClientsModule, hybrid apps', (impl) => {
  let nsqd: NsqdProcess;

  beforeAll(async () => {
    nsqd = await startNsqd({ impl });
  }, TEST_TIMEOUT);
  afterEach(() => cleanup.run());
  afterAll(stopAll);

  it(
    'NsqModule.forRoot: NsqBroker publishes (one, many, delayed, with headers) and subscribes from code; shutdown closes it all',
    async () => {
      const topic = uniqueName('mod-orders');
      const ref = await Test.createTestingModule({
        imports: [
          NsqModule.forRoot({
            nsqdTCPAddresses: [nsqd.tcpAddress],
            subscription: { maxInFlight: 5 },
          }),
        ],
      })
        .setLogger(nestLogs)
        .compile();
      cleanup.add(() => ref.close());
      const broker = ref.get(NsqBroker);
      const client = ref.get(NsqClient);
      expect(client).toBeInstanceOf(NsqClient);
      // one NsqClient per module: the broker publishes through the injected one
      expect(ref.get(NsqClient)).toBe(client);

      const got: Array<Got<OrderPlaced>> = [];
      const sub: NsqBrokerSubscription = await broker.subscribe<OrderPlaced>(topic, 'billing', (order, ctx) => {
        // typed: order.lines is known to be an array of lines
        const qty = order.lines.reduce((sum, line) => sum + line.qty, 0);
        expect(qty).toBeGreaterThan(0);
        got.push({ payload: order, attempts: ctx.getAttempts(), headers: { ...ctx.getHeaders() }, at: Date.now() });
      });
      expect({ topic: sub.topic, channel: sub.channel }).toEqual({ topic, channel: 'billing' });

      const order = (n: number): OrderPlaced => ({ orderId: `o-${n}`, lines: [{ sku: `s${n}`, qty: n }] });
      await broker.publish<OrderPlaced>(topic, order(1));
      await broker.publishMany<OrderPlaced>(topic, [order(2), order(3), order(4)]);
      await broker.publish(topic, order(5), { headers: { 'x-tenant': 'acme' } });
      const delayedAt = Date.now();
      await broker.publish(topic, order(6), { delayMs: 800 });

      // the official nsqd notices a new channel's deferred messages at its next 5 s scan-list refresh
      await waitFor(() => got.length === 6, 15_000, 'six orders handled');
      expect(got.map((g) => g.payload.orderId).sort()).toEqual(['o-1', 'o-2', 'o-3', 'o-4', 'o-5', 'o-6']);
      expect(got.every((g) => g.attempts === 1)).toBe(true);
      expect(got.find((g) => g.payload.orderId === 'o-5')!.headers).toMatchObject({ 'x-tenant': 'acme', 'content-type': 'application/json' });
      expect(got.find((g) => g.payload.orderId === 'o-1')!.headers).toEqual({});
      expect(got.find((g) => g.payload.orderId === 'o-6')!.at - delayedAt).toBeGreaterThanOrEqual(800 - 50);
      expect(await channelStats(nsqd, topic, 'billing')).toMatchObject({ clients: [expect.anything()] });

      // closing one subscription leaves the channel; module shutdown closes the rest and the client
      const second = await broker.subscribe(topic, 'audit', () => undefined);
      await sub.close();
      await waitFor(async () => (await channelStats(nsqd, topic, 'billing'))?.clients?.length === 0, 5000, 'billing unsubscribed');
      expect((await channelStats(nsqd, topic, 'audit'))?.clients).toHaveLength(1);
      const status: string[] = [];
      client.status.subscribe((s) => status.push(s));
      await ref.close();
      await waitFor(async () => (await channelStats(nsqd, topic, 'audit'))?.clients?.length === 0, 5000, 'audit unsubscribed on shutdown');
      expect(status.at(-1)).toBe(NsqStatus.DISCONNECTED);
      await second.close();
    },
    TEST_TIMEOUT,
  );

  it(
    'NsqBroker.subscribe: a failing handler is retried, then dead-lettered with the module defaults',
    async () => {
      const topic = uniqueName('mod-fail');
      const ref = await Test.createTestingModule({
        imports: [
          NsqModule.forRoot({
            nsqdTCPAddresses: [nsqd.tcpAddress],
            subscription: { maxAttempts: 2, requeueDelay: 0, backoff: false },
          }),
        ],
      })
        .setLogger(nestLogs)
        .compile();
      cleanup.add(() => ref.close());
      const broker = ref.get(NsqBroker);
      const attempts: number[] = [];
      await broker.subscribe(topic, 'c', (_payload, ctx) => {
        attempts.push(ctx.getAttempts());
        throw new Error(`failed attempt ${ctx.getAttempts()}`);
      });
      const dead: Array<Got<unknown>> = [];
      await broker.subscribe(`${topic}.dead`, 'inspect', (payload, ctx) => {
        dead.push({ payload, attempts: ctx.getAttempts(), headers: { ...ctx.getHeaders() }, at: Date.now() });
      });
      await broker.publish(topic, { doomed: true });

      await waitFor(() => dead.length === 1, 10_000, 'the dead letter');
      expect(attempts).toEqual([1, 2]);
      expect(dead[0]!.payload).toEqual({ doomed: true });
      // handlers given to NsqBroker are plain functions: no Nest exception filter rewrites their errors
      expect(dead[0]!.headers).toMatchObject({
        'dead-letter-reason': 'max_attempts',
        'dead-letter-error': 'failed attempt 2',
        'original-topic': topic,
        'original-channel': 'c',
        'original-attempts': '2',
      });
    },
    TEST_TIMEOUT,
  );

  it(
    'NsqModule.forRootAsync (useFactory with an injected value) provides a working NsqClient and NsqBroker to a service',
    async () => {
      const topic = uniqueName('mod-async');

      @Module({ providers: [{ provide: NSQD_ADDRESS, useValue: nsqd.tcpAddress }], exports: [NSQD_ADDRESS] })
      class ConfigLikeModule {}

      @Injectable()
      class Orders {
        constructor(
          @Inject(NsqBroker) readonly broker: NsqBroker,
          @Inject(NsqClient) readonly client: NsqClient,
        ) {}

        place(order: OrderPlaced): Promise<void> {
          return this.broker.publish(topic, order);
        }
      }

      @Module({
        imports: [
          NsqModule.forRootAsync({
            imports: [ConfigLikeModule],
            inject: [NSQD_ADDRESS],
            useFactory: async (address: string) => {
              await sleep(1);
              return { nsqdTCPAddresses: [address], envelope: true };
            },
          }),
        ],
        providers: [Orders],
      })
      class OrdersModule {}

      const ref = await Test.createTestingModule({ imports: [OrdersModule] }).setLogger(nestLogs).compile();
      cleanup.add(() => ref.close());
      const orders = ref.get(Orders);
      const got: Array<Got<OrderPlaced>> = [];
      await orders.broker.subscribe<OrderPlaced>(topic, 'c', (payload, ctx) => {
        got.push({ payload, attempts: ctx.getAttempts(), headers: { ...ctx.getHeaders() }, at: Date.now() });
      });
      await orders.place({ orderId: 'a-1', lines: [{ sku: 'x', qty: 1 }] });
      await firstValueFrom(orders.client.emit(topic, { orderId: 'a-2', lines: [] }), { defaultValue: undefined });

      await waitFor(() => got.length === 2, 10_000, 'both orders handled');
      expect(got.map((g) => g.payload.orderId).sort()).toEqual(['a-1', 'a-2']);
      // envelope: true came from the factory
      expect(got.every((g) => typeof g.headers['message-key'] === 'string')).toBe(true);
    },
    TEST_TIMEOUT,
  );

  it(
    "ClientsModule.register with customClass NsqClient: @Inject('NSQ') emits and sends",
    async () => {
      const events = uniqueName('mod-cm-ev');
      const requests = uniqueName('mod-cm-rq');

      @Injectable()
      class Notifier {
        constructor(@Inject('NSQ') readonly client: ClientProxy) {}

        notify(text: string): Promise<void> {
          return firstValueFrom(this.client.emit(events, { text }), { defaultValue: undefined });
        }
      }

      const got: unknown[] = [];
      @Controller()
      class Handlers {
        @EventPattern<string>(events)
        onEvent(@Payload() data: unknown) {
          got.push(data);
        }

        @MessagePattern(requests)
        upper(@Payload() data: string[]) {
          return data.map((s) => s.toUpperCase());
        }
      }

      const ref = await Test.createTestingModule({
        imports: [
          ClientsModule.register([
            { name: 'NSQ', customClass: NsqClient, options: { nsqdTCPAddresses: [nsqd.tcpAddress], requestTimeout: 10_000 } },
          ]),
        ],
        controllers: [Handlers],
        providers: [Notifier],
      })
        .setLogger(nestLogs)
        .compile();
      const app = ref.createNestMicroservice({ strategy: new NsqServer(serverOptions(nsqd)), logger: nestLogs });
      cleanup.add(() => app.close());
      await app.listen();

      const notifier = app.get(Notifier);
      expect(notifier.client).toBeInstanceOf(NsqClient);
      await notifier.notify('hello');
      await waitFor(() => got.length === 1, 10_000, 'the event handled');
      expect(got).toEqual([{ text: 'hello' }]);
      expect(await lastValueFrom(notifier.client.send(requests, ['a', 'b']))).toEqual(['A', 'B']);
    },
    TEST_TIMEOUT,
  );

  it(
    'hybrid app: HTTP routes and NSQ handlers in one application; app.close() closes the NSQ side',
    async () => {
      const topic = uniqueName('mod-hybrid');
      const sumTopic = uniqueName('mod-hybrid-sum');
      const otherTransport = uniqueName('mod-hybrid-tcp');
      const events: Array<{ data: unknown; channel: string }> = [];

      @Controller('api')
      class Hybrid {
        constructor(@Inject(NsqClient) private readonly client: NsqClient) {}

        // HTTP → NSQ request → the NSQ handler below, in the same app
        @Get('sum')
        sum(@Query('a') a: string, @Query('b') b: string): Promise<number> {
          return firstValueFrom(this.client.send<number>(sumTopic, [Number(a), Number(b)]));
        }

        @Get('emit')
        async emit(@Query('text') text: string): Promise<{ ok: true }> {
          await firstValueFrom(this.client.emit(topic, { text }), { defaultValue: undefined });
          return { ok: true };
        }

        @MessagePattern(sumTopic, NSQ_TRANSPORT)
        add(@Payload() data: number[]) {
          return data.reduce((x, y) => x + y, 0);
        }

        @EventPattern<string>(topic, NSQ_TRANSPORT, { channel: 'hybrid' })
        onEvent(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
          events.push({ data, channel: ctx.getChannel() });
        }

        // bound to another transport: NsqServer must not subscribe to it
        @EventPattern<string>(otherTransport, Transport.TCP)
        elsewhere() {
          return undefined;
        }
      }

      const ref = await Test.createTestingModule({
        imports: [NsqModule.forRoot({ nsqdTCPAddresses: [nsqd.tcpAddress], requestTimeout: 10_000 })],
        controllers: [Hybrid],
      })
        .setLogger(nestLogs)
        .compile();
      const app = ref.createNestApplication({ logger: nestLogs });
      const server = new NsqServer(serverOptions(nsqd));
      app.connectMicroservice({ strategy: server });
      let closed = false;
      cleanup.add(() => (closed ? undefined : app.close()));
      await app.startAllMicroservices();
      await app.listen(0, '127.0.0.1');
      const url = await app.getUrl();

      expect(server.unwrap().consumers.map((c) => `${c.topic}/${c.channel}`).sort()).toEqual([`${topic}/hybrid`, `${sumTopic}/svc`].sort());

      const res = await fetch(`${url}/api/sum?a=19&b=23`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('42');
      const emitted = await fetch(`${url}/api/emit?text=hi`);
      expect(await emitted.json()).toEqual({ ok: true });
      await waitFor(() => events.length === 1, 10_000, 'the NSQ event handled');
      expect(events).toEqual([{ data: { text: 'hi' }, channel: 'hybrid' }]);

      const status: string[] = [];
      server.status.subscribe((s) => status.push(s));
      expect(status.at(-1)).toBe(NsqStatus.CONNECTED);
      await app.close();
      closed = true;
      expect(status.at(-1)).toBe(NsqStatus.DISCONNECTED);
      await waitFor(
        async () => (await channelStats(nsqd, topic, 'hybrid'))?.clients?.length === 0 && (await channelStats(nsqd, sumTopic, 'svc'))?.clients?.length === 0,
        5000,
        'both NSQ subscriptions gone',
      );
      await expect(fetch(`${url}/api/sum?a=1&b=2`)).rejects.toThrow();
    },
    TEST_TIMEOUT,
  );
});
