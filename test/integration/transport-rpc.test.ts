/**
 * The Nest transport (libs/nest-nsq) end to end, request/response: NsqClient.send → a
 * @MessagePattern handler → replies on the client's ephemeral reply topic, against the official
 * nsqd and ours. Plain, async and streamed (Observable) results, RpcException and plain errors,
 * a pattern nobody serves (timeout), a topic with only an event handler, correlation of many
 * concurrent requests; and configuration errors that must surface at start-up.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { type Observable, concatWith, firstValueFrom, interval, lastValueFrom, map, of, take, tap, throwError, toArray } from 'rxjs';
import {
  HEADER,
  NO_MESSAGE_HANDLER,
  NsqClient,
  type NsqContext,
  NsqRecord,
  NsqRequestTimeoutError,
  NsqServer,
  type NsqServerOptions,
  NsqTransportConfigError,
} from '../../libs/nest-nsq/src/index.js';
import { Cleanup, channelStats, settle, uniqueName } from '../support/client.js';
import { describeEachImpl } from '../support/nsq-bin.js';
import { type NsqdProcess, startNsqd, stopAll } from '../support/processes.js';
import { makeClient, nestLogs, serverOptions, startMicroservice } from '../support/transport.js';
import { sleep, waitFor } from '../support/wait.js';

const TEST_TIMEOUT = 30_000;
const cleanup = new Cleanup();

interface Topics {
  sum: string;
  echo: string;
  stream: string;
  fails: string;
  streamFails: string;
  kinds: string;
  crashes: string;
  silent: string;
  eventOnly: string;
}

function rpcController(t: Topics, calls: { echo: number; eventOnly: number }) {
  @Controller()
  class Rpc {
    @MessagePattern(t.sum)
    sum(@Payload() data: number[]) {
      return data.reduce((a, b) => a + b, 0);
    }

    @MessagePattern(t.echo)
    async echo(@Payload() data: { i: number }, @Ctx() ctx: NsqContext) {
      calls.echo++;
      // answers out of order on purpose: correlation must not depend on timing
      await sleep((data.i * 7) % 20);
      return { i: data.i, doubled: data.i * 2, topic: ctx.getTopic(), header: ctx.getHeader('x-req') ?? null };
    }

    @MessagePattern(t.stream)
    stream(@Payload() data: { count: number }): Observable<{ seq: number }> {
      return interval(5).pipe(
        take(data.count),
        map((seq) => ({ seq })),
      );
    }

    @MessagePattern(t.streamFails)
    streamFails() {
      return of(1, 2).pipe(concatWith(throwError(() => new RpcException({ code: 'mid-stream' }))));
    }

    @MessagePattern(t.kinds)
    kinds(@Payload() kind: string) {
      if (kind === 'buffer') return Buffer.from([0x00, 0x01, 0xfe, 0xff]);
      if (kind === 'string') return 'plain string';
      if (kind === 'null') return null;
      return of(1, 'two', null, Buffer.from('4'));
    }

    @MessagePattern(t.fails)
    fails(@Payload() data: { code: string }) {
      throw new RpcException({ code: data.code, detail: 'refused' });
    }

    @MessagePattern(t.crashes)
    crashes(): never {
      throw new Error('secret internals');
    }

    @MessagePattern(t.silent)
    silent(): void {
      return undefined;
    }

    @EventPattern<string>(t.eventOnly)
    eventOnly() {
      calls.eventOnly++;
    }
  }
  return Rpc;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  const r = await settle(p);
  if (r.ok) throw new Error(`expected a rejection, got ${JSON.stringify(r.value)}`);
  return r.error;
}

describeEachImpl('Nest transport: request/response', (impl) => {
  let nsqd: NsqdProcess;
  let client: NsqClient;
  const t: Topics = {
    sum: uniqueName('rpc-sum'),
    echo: uniqueName('rpc-echo'),
    stream: uniqueName('rpc-stream'),
    fails: uniqueName('rpc-fails'),
    streamFails: uniqueName('rpc-sfails'),
    kinds: uniqueName('rpc-kinds'),
    crashes: uniqueName('rpc-crash'),
    silent: uniqueName('rpc-silent'),
    eventOnly: uniqueName('rpc-event'),
  };
  const calls = { echo: 0, eventOnly: 0 };
  const appCleanup = new Cleanup();

  beforeAll(async () => {
    nsqd = await startNsqd({ impl });
    await startMicroservice(appCleanup, [rpcController(t, calls)], serverOptions(nsqd));
    client = makeClient(appCleanup, nsqd, { requestTimeout: 10_000 });
  }, TEST_TIMEOUT);
  afterEach(() => cleanup.run());
  afterAll(async () => {
    await appCleanup.run();
    await stopAll();
  });

  it(
    "send() returns the handler's value",
    async () => {
      expect(await firstValueFrom(client.send(t.sum, [1, 2, 3, 4]))).toBe(10);
      expect(await lastValueFrom(client.send(t.sum, [40, 2]).pipe(toArray()))).toEqual([42]);
    },
    TEST_TIMEOUT,
  );

  it(
    'an Observable result yields every value, then completes',
    async () => {
      const values = await lastValueFrom(client.send(t.stream, { count: 5 }).pipe(toArray()));
      expect(values).toEqual([{ seq: 0 }, { seq: 1 }, { seq: 2 }, { seq: 3 }, { seq: 4 }]);
      // an empty stream completes without a value
      expect(await lastValueFrom(client.send(t.stream, { count: 0 }).pipe(toArray()))).toEqual([]);
    },
    TEST_TIMEOUT,
  );

  it(
    'replies keep their kind: Buffer, string, null, and a mix in one stream',
    async () => {
      expect(await firstValueFrom(client.send(t.kinds, 'buffer'))).toEqual(Buffer.from([0x00, 0x01, 0xfe, 0xff]));
      expect(await firstValueFrom(client.send(t.kinds, 'string'))).toBe('plain string');
      expect(await lastValueFrom(client.send(t.kinds, 'null').pipe(toArray()))).toEqual([null]);
      expect(await lastValueFrom(client.send(t.kinds, 'mixed').pipe(toArray()))).toEqual([1, 'two', null, Buffer.from('4')]);
    },
    TEST_TIMEOUT,
  );

  it(
    'a stream that fails after two values delivers both, then the error',
    async () => {
      const values: unknown[] = [];
      const error = await rejection(lastValueFrom(client.send(t.streamFails, {}).pipe(tap((v) => values.push(v)))));
      expect(values).toEqual([1, 2]);
      expect(error).toBeInstanceOf(RpcException);
      expect((error as RpcException).getError()).toEqual({ code: 'mid-stream' });
    },
    TEST_TIMEOUT,
  );

  it(
    'a handler that returns nothing completes the request without a value',
    async () => {
      expect(await lastValueFrom(client.send(t.silent, {}).pipe(toArray()))).toEqual([]);
    },
    TEST_TIMEOUT,
  );

  it(
    "RpcException({ code }) reaches send()'s subscriber as an RpcException with that object",
    async () => {
      const error = await rejection(firstValueFrom(client.send(t.fails, { code: 'x' })));
      expect(error).toBeInstanceOf(RpcException);
      expect((error as RpcException).getError()).toEqual({ code: 'x', detail: 'refused' });
    },
    TEST_TIMEOUT,
  );

  it(
    "a plain Error becomes Nest's generic error: its text stays on the server",
    async () => {
      const error = await rejection(firstValueFrom(client.send(t.crashes, {})));
      expect(error).toBeInstanceOf(RpcException);
      expect((error as RpcException).getError()).toEqual({ status: 'error', message: 'Internal server error' });
      expect(JSON.stringify((error as RpcException).getError())).not.toContain('secret internals');
    },
    TEST_TIMEOUT,
  );

  it(
    'a request to a topic with only an event handler is answered with "no matching message handler"',
    async () => {
      const before = calls.eventOnly;
      const error = await rejection(firstValueFrom(client.send(t.eventOnly, { q: 1 })));
      expect(error).toBeInstanceOf(RpcException);
      expect((error as RpcException).getError()).toEqual({ status: 'error', message: NO_MESSAGE_HANDLER });
      expect(calls.eventOnly).toBe(before);
    },
    TEST_TIMEOUT,
  );

  it(
    'a pattern no handler serves times out with NsqRequestTimeoutError (requestTimeout)',
    async () => {
      const impatient = makeClient(cleanup, nsqd, { requestTimeout: 500 });
      const topic = uniqueName('rpc-nobody');
      const error = await rejection(firstValueFrom(impatient.send(topic, { q: 1 })));
      expect(error).toBeInstanceOf(NsqRequestTimeoutError);
      expect(error).toBeInstanceOf(RpcException);
      expect((error as RpcException).getError()).toEqual({
        status: 'error',
        code: 'ERR_NSQ_REQUEST_TIMEOUT',
        message: expect.stringContaining(topic),
      });
    },
    TEST_TIMEOUT,
  );

  it(
    'a request whose deadline passed while nobody served it is finished unhandled when a handler shows up',
    async () => {
      const topic = uniqueName('rpc-late');
      const impatient = makeClient(cleanup, nsqd, { requestTimeout: 300 });
      await rejection(firstValueFrom(impatient.send(topic, { stale: true })));
      const handled: unknown[] = [];
      @Controller()
      class Late {
        @MessagePattern(topic)
        late(@Payload() data: unknown) {
          handled.push(data);
          return 'fresh';
        }
      }
      await startMicroservice(cleanup, [Late], serverOptions(nsqd));
      // the stale request is in the channel already; a fresh one is answered
      expect(await firstValueFrom(impatient.send(topic, { stale: false }))).toBe('fresh');
      await waitFor(
        async () => {
          const ch = await channelStats(nsqd, topic, 'svc');
          return ch && ch.message_count === 2 && ch.depth === 0 && ch.in_flight_count === 0 && ch.deferred_count === 0;
        },
        5000,
        'both requests finished',
      );
      expect(handled).toEqual([{ stale: false }]);
    },
    TEST_TIMEOUT,
  );

  it(
    '200 concurrent sends each get their own answer; NsqRecord headers reach the handler',
    async () => {
      const before = calls.echo;
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          firstValueFrom(client.send(t.echo, i % 10 === 0 ? new NsqRecord({ i }, { headers: { 'x-req': `r${i}` } }) : { i })),
        ),
      );
      answers.forEach((answer, i) => {
        expect(answer).toEqual({ i, doubled: i * 2, topic: t.echo, header: i % 10 === 0 ? `r${i}` : null });
      });
      expect(calls.echo - before).toBe(200);
    },
    TEST_TIMEOUT,
  );

  it(
    'send() refuses a delayed or batched NsqRecord instead of ignoring the option',
    async () => {
      for (const options of [{ delayMs: 10 }, { batch: true }]) {
        const error = await rejection(firstValueFrom(client.send(t.sum, new NsqRecord([1, 2], options))));
        expect(error).toBeInstanceOf(RpcException);
        expect((error as RpcException).getError()).toMatchObject({ status: 'error', message: expect.stringMatching(/cannot be delayed or batched/) });
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'two clients sending at once get only their own replies',
    async () => {
      const other = makeClient(cleanup, nsqd);
      const [a, b] = await Promise.all([
        Promise.all(Array.from({ length: 30 }, (_, i) => firstValueFrom(client.send(t.sum, [i, 1000])))),
        Promise.all(Array.from({ length: 30 }, (_, i) => firstValueFrom(other.send(t.sum, [i, 2000])))),
      ]);
      expect(a).toEqual(Array.from({ length: 30 }, (_, i) => i + 1000));
      expect(b).toEqual(Array.from({ length: 30 }, (_, i) => i + 2000));
    },
    TEST_TIMEOUT,
  );

  it(
    'an object pattern makes listen() reject with a message naming the pattern',
    async () => {
      @Controller()
      class ObjectPattern {
        @MessagePattern({ cmd: 'x' })
        x() {
          return 1;
        }
      }
      const error = await rejection(startMicroservice(cleanup, [ObjectPattern], serverOptions(nsqd)));
      expect(error).toBeInstanceOf(NsqTransportConfigError);
      expect((error as Error).message).toMatch(/pattern \{"cmd":"x"\} is not an NSQ topic name/);
    },
    TEST_TIMEOUT,
  );

  it(
    'an invalid channel in the extras makes listen() reject',
    async () => {
      const topic = uniqueName('rpc-badch');
      @Controller()
      class BadChannel {
        @EventPattern<string>(topic, { channel: 'no spaces allowed' })
        x() {
          return undefined;
        }
      }
      const error = await rejection(startMicroservice(cleanup, [BadChannel], serverOptions(nsqd)));
      expect(error).toBeInstanceOf(NsqTransportConfigError);
      expect((error as Error).message).toMatch(/not a valid NSQ channel name/);
    },
    TEST_TIMEOUT,
  );

  it(
    'the request header deadline travels with the request',
    async () => {
      const topic = uniqueName('rpc-hdr');
      const headers: Array<Record<string, string>> = [];
      @Controller()
      class Headers {
        @MessagePattern(topic)
        h(@Ctx() ctx: NsqContext) {
          headers.push({ ...ctx.getHeaders() });
          return true;
        }
      }
      await startMicroservice(cleanup, [Headers], serverOptions(nsqd));
      const sentAt = Date.now();
      expect(await firstValueFrom(client.send(topic, {}))).toBe(true);
      const h = headers[0]!;
      expect(h[HEADER.replyTo]).toMatch(/^reply\.[0-9a-f]{16}#ephemeral$/);
      expect(h[HEADER.correlationId]).toEqual(expect.any(String));
      // the client's requestTimeout (10 s) after the send
      expect(Number(h[HEADER.deadline])).toBeGreaterThanOrEqual(sentAt + 10_000);
    },
    TEST_TIMEOUT,
  );
});

// No nsqd needed: these fail in the constructor, before any connection is made.
describe('Nest transport: options checked at construction', () => {
  it('NsqServer without a channel throws NsqTransportConfigError', () => {
    expect(() => new NsqServer({ nsqdTCPAddresses: ['127.0.0.1:4150'] } as unknown as NsqServerOptions)).toThrow(NsqTransportConfigError);
    expect(() => new NsqServer({ nsqdTCPAddresses: ['127.0.0.1:4150'], channel: '' })).toThrow(/channel option is required/);
  });

  it('NsqServer and NsqClient without any address throw NsqTransportConfigError', () => {
    expect(() => new NsqServer({ channel: 'c' })).toThrow(NsqTransportConfigError);
    expect(() => new NsqClient({})).toThrow(NsqTransportConfigError);
    expect(() => new NsqClient({ nsqdTCPAddresses: ['127.0.0.1:4150'], replyTopicPrefix: 'bad prefix' })).toThrow(NsqTransportConfigError);
  });

  it('an app whose NsqServer never listened closes cleanly', async () => {
    const ref = await Test.createTestingModule({}).setLogger(nestLogs).compile();
    const app = ref.createNestMicroservice({ strategy: new NsqServer({ nsqdTCPAddresses: ['127.0.0.1:1'], channel: 'c' }), logger: nestLogs });
    await app.close();
  });
});
