/**
 * The Nest transport (libs/nest-nsq) end to end, what happens when things go wrong, against the
 * official nsqd and ours: a failing handler is requeued until it succeeds; after maxAttempts the
 * message goes to the dead-letter topic with its story in the headers; a long handler is kept alive
 * by TOUCH; manualAck leaves the answer to the handler; app.close() waits for running handlers and
 * loses nothing; nsqd restarting mid-stream; publishing fails over to a second nsqd.
 */
import { afterAll, afterEach, beforeAll, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, Payload, RpcException } from '@nestjs/microservices';
import {
  HEADER,
  type NsqContext,
  NsqRecord,
  NsqStatus,
  type NsqMessageEvent,
  type NsqTransportHooks,
} from '../../libs/nest-nsq/src/index.js';
import { Cleanup, channelStats, settle, topicStats, uniqueName, warmChannels } from '../support/client.js';
import { describeEachImpl } from '../support/nsq-bin.js';
import { type NsqdProcess, startNsqd, stopAll } from '../support/processes.js';
import { emit, makeClient, nestLogs, readDeadLetters, serverOptions, startMicroservice } from '../support/transport.js';
import { sleep, waitFor } from '../support/wait.js';

const TEST_TIMEOUT = 45_000;
const cleanup = new Cleanup();

interface Call {
  data: unknown;
  attempts: number;
  id: string;
}

/** Hooks that record every requeue and dead letter, to assert on the transport's decisions. */
function recordingHooks(): NsqTransportHooks & { requeued: NonNullable<NsqTransportHooks['requeued']>; log: string[] } {
  const log: string[] = [];
  return {
    log,
    requeued: (e: NsqMessageEvent & { delayMs: number | undefined; error: string }) => log.push(`requeued ${e.topic} attempt ${e.attempts} delay ${e.delayMs}`),
    deadLettered: (e: NsqMessageEvent & { deadLetterTopic: string; reason: string }) => log.push(`dead ${e.topic} -> ${e.deadLetterTopic} (${e.reason})`),
    finished: (e: NsqMessageEvent) => log.push(`finished ${e.topic} attempt ${e.attempts}`),
  };
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describeEachImpl('Nest transport: failures and redelivery', (impl) => {
  let nsqd: NsqdProcess;
  // nsqd's msg_timeout is 1 s here, so the TOUCH and manualAck tests do not wait long
  const t = {
    retry: uniqueName('rel-retry'),
    dead: uniqueName('rel-dead'),
    deadRpc: uniqueName('rel-dead-rpc'),
    customDead: uniqueName('rel-cdead'),
    touched: uniqueName('rel-touch'),
    untouched: uniqueName('rel-notouch'),
    manual: uniqueName('rel-manual'),
    manualSilent: uniqueName('rel-msilent'),
  };

  beforeAll(async () => {
    nsqd = await startNsqd({ impl, args: ['--msg-timeout=1s'] });
    // Requeue delays and msg_timeout are noticed by the official nsqd's queue scanner, which only
    // picks up a new channel at its 5-second refresh: create and warm every channel once, up front.
    await warmChannels(nsqd, Object.values(t).map((topic) => [topic, 'svc'] as const));
  }, TEST_TIMEOUT);
  afterEach(() => cleanup.run());
  afterAll(stopAll);

  it(
    'a handler that fails twice is requeued twice, then succeeds on attempt 3; nothing is dead-lettered',
    async () => {
      const calls: Call[] = [];
      @Controller()
      class Retry {
        @EventPattern<string>(t.retry, { requeueDelay: 20, backoff: false })
        handle(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
          calls.push({ data, attempts: ctx.getAttempts(), id: ctx.getId() });
          if (ctx.getAttempts() < 3) throw new RpcException(`not yet (attempt ${ctx.getAttempts()})`);
        }
      }
      const hooks = recordingHooks();
      await startMicroservice(cleanup, [Retry], serverOptions(nsqd, { hooks }));
      const client = makeClient(cleanup, nsqd);
      await emit(client, t.retry, { order: 1 });

      await waitFor(() => calls.length >= 3, 15_000, 'three deliveries');
      await waitFor(async () => (await channelStats(nsqd, t.retry, 'svc'))?.in_flight_count === 0, 5000, 'the FIN counted');
      await sleep(300);
      expect(calls.map((c) => c.attempts)).toEqual([1, 2, 3]);
      expect(new Set(calls.map((c) => c.id)).size).toBe(1);
      expect(calls.every((c) => JSON.stringify(c.data) === '{"order":1}')).toBe(true);
      expect(hooks.log).toEqual([
        `requeued ${t.retry} attempt 1 delay 20`,
        `requeued ${t.retry} attempt 2 delay 20`,
        `finished ${t.retry} attempt 3`,
      ]);
      expect(await topicStats(nsqd, `${t.retry}.dead`)).toBeUndefined();
      const ch = await channelStats(nsqd, t.retry, 'svc');
      expect({ depth: ch?.depth, deferred: ch?.deferred_count, requeued: ch?.requeue_count }).toEqual({ depth: 0, deferred: 0, requeued: 2 });
    },
    TEST_TIMEOUT,
  );

  it(
    'maxAttempts 3: a handler that always fails is called 3 times, then the message goes to <topic>.dead with its story',
    async () => {
      const calls: Call[] = [];
      const rpcCalls: Call[] = [];
      @Controller()
      class AlwaysFails {
        // a plain Error: Nest's exception filter replaces it with its generic error before the transport sees it
        @EventPattern<string>(t.dead, { maxAttempts: 3, requeueDelay: 20, backoff: false })
        plain(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
          calls.push({ data, attempts: ctx.getAttempts(), id: ctx.getId() });
          throw new Error('payment service down');
        }

        // an RpcException keeps its text
        @EventPattern<string>(t.deadRpc, { maxAttempts: 3, requeueDelay: 20, backoff: false })
        rpc(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
          rpcCalls.push({ data, attempts: ctx.getAttempts(), id: ctx.getId() });
          throw new RpcException('order 42 cannot be paid');
        }
      }
      const hooks = recordingHooks();
      await startMicroservice(cleanup, [AlwaysFails], serverOptions(nsqd, { hooks }));
      const dead = await readDeadLetters(cleanup, nsqd, `${t.dead}.dead`);
      const deadRpc = await readDeadLetters(cleanup, nsqd, `${t.deadRpc}.dead`);
      const client = makeClient(cleanup, nsqd, { envelope: true });
      const payload = { order: 42, amount: '12.50' };
      await emit(client, t.dead, payload);
      await emit(client, t.deadRpc, payload);

      await waitFor(() => dead.length === 1 && deadRpc.length === 1, 15_000, 'both messages dead-lettered');
      await waitFor(async () => (await channelStats(nsqd, t.dead, 'svc'))?.in_flight_count === 0, 5000, 'the FIN counted');
      await sleep(300);
      expect(calls.map((c) => c.attempts)).toEqual([1, 2, 3]);
      expect(rpcCalls.map((c) => c.attempts)).toEqual([1, 2, 3]);
      expect(dead).toHaveLength(1);
      expect(deadRpc).toHaveLength(1);

      const letter = dead[0]!;
      expect(JSON.parse(letter.payload.toString('utf8'))).toEqual(payload);
      expect(letter.headers).toEqual({
        // the envelope's own headers travel on
        [HEADER.messageKey]: expect.any(String),
        [HEADER.timestamp]: expect.stringMatching(/^\d+$/),
        [HEADER.contentType]: 'application/json',
        [HEADER.deadLetterReason]: 'max_attempts',
        [HEADER.deadLetterError]: '{"status":"error","message":"Internal server error"}',
        [HEADER.originalTopic]: t.dead,
        [HEADER.originalChannel]: 'svc',
        [HEADER.originalMessageId]: calls[0]!.id,
        [HEADER.originalAttempts]: '3',
        [HEADER.originalTimestamp]: expect.stringMatching(/^\d{19}$/),
        [HEADER.originalNsqd]: nsqd.tcpAddress,
        [HEADER.deadLetteredAt]: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      });
      expect(deadRpc[0]!.headers[HEADER.deadLetterError]).toContain('order 42 cannot be paid');
      expect(deadRpc[0]!.headers[HEADER.originalAttempts]).toBe('3');
      expect(JSON.parse(deadRpc[0]!.payload.toString('utf8'))).toEqual(payload);

      expect(hooks.log.filter((l) => l.includes(t.dead + ' '))).toEqual([
        `requeued ${t.dead} attempt 1 delay 20`,
        `requeued ${t.dead} attempt 2 delay 20`,
        `dead ${t.dead} -> ${t.dead}.dead (max_attempts)`,
      ]);
      // the original is finished, not left to time out
      const ch = await channelStats(nsqd, t.dead, 'svc');
      expect({ depth: ch?.depth, inFlight: ch?.in_flight_count, deferred: ch?.deferred_count, timedOut: ch?.timeout_count }).toEqual({
        depth: 0,
        inFlight: 0,
        deferred: 0,
        timedOut: 0,
      });
    },
    TEST_TIMEOUT,
  );

  it(
    'deadLetterTopic: false drops the message after maxAttempts (finished, logged), publishing nothing',
    async () => {
      const topic = uniqueName('rel-nodlq');
      const calls: Call[] = [];
      @Controller()
      class NoDeadLetters {
        @EventPattern<string>(topic, { maxAttempts: 2, requeueDelay: 0, backoff: false, deadLetterTopic: false })
        handle(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
          calls.push({ data, attempts: ctx.getAttempts(), id: ctx.getId() });
          throw new RpcException('always');
        }
      }
      const hooks = recordingHooks();
      await startMicroservice(cleanup, [NoDeadLetters], serverOptions(nsqd, { hooks }));
      await emit(makeClient(cleanup, nsqd), topic, { drop: true });

      await waitFor(() => hooks.log.some((l) => l.startsWith('dead')), 10_000, 'the drop');
      await waitFor(async () => (await channelStats(nsqd, topic, 'svc'))?.in_flight_count === 0, 5000, 'the FIN counted');
      expect(calls.map((c) => c.attempts)).toEqual([1, 2]);
      expect(hooks.log.at(-1)).toBe(`dead ${topic} ->  (max_attempts)`);
      expect(await topicStats(nsqd, `${topic}.dead`)).toBeUndefined();
      expect(nestLogs.matching(new RegExp(`${topic}/svc: message \\w+ dropped \\(max_attempts`))).toHaveLength(1);
    },
    TEST_TIMEOUT,
  );

  it(
    'backoff (the default): a failure pauses the whole subscription (RDY 0), then it resumes',
    async () => {
      const topic = uniqueName('rel-backoff');
      const calls: Array<Call & { at: number }> = [];
      @Controller()
      class Backoff {
        // backoff level 1 pauses for multiplier x 2 = 1 s
        @EventPattern<string>(topic, { requeueDelay: 0, consumer: { backoffMultiplier: 500 } })
        handle(@Payload() data: { n: number }, @Ctx() ctx: NsqContext) {
          calls.push({ data, attempts: ctx.getAttempts(), id: ctx.getId(), at: Date.now() });
          if (data.n === 0 && ctx.getAttempts() === 1) throw new RpcException('first failure');
        }
      }
      await startMicroservice(cleanup, [Backoff], serverOptions(nsqd));
      const client = makeClient(cleanup, nsqd);
      await emit(client, topic, { n: 0 });
      await waitFor(() => calls.length === 1, 10_000, 'the failing delivery');
      const failedAt = calls[0]!.at;
      // paused: nsqd sees RDY 0 and holds the next message back
      await waitFor(async () => (await channelStats(nsqd, topic, 'svc'))?.clients?.[0]?.ready_count === 0, 2000, 'RDY 0');
      await emit(client, topic, { n: 1 });
      await waitFor(() => calls.length === 3, 10_000, 'the retry and the next message');
      const later = calls.slice(1);
      expect(later.map((c) => ({ n: (c.data as { n: number }).n, attempts: c.attempts })).sort((a, b) => a.n - b.n)).toEqual([
        { n: 0, attempts: 2 },
        { n: 1, attempts: 1 },
      ]);
      // nothing was delivered during the pause (lower bound only; 50 ms for timer granularity)
      for (const c of later) expect(c.at - failedAt).toBeGreaterThanOrEqual(1000 - 50);
      // and once the probe succeeded, RDY is back to maxInFlight
      await waitFor(async () => (await channelStats(nsqd, topic, 'svc'))?.clients?.[0]?.ready_count === 100, 5000, 'RDY restored');
    },
    TEST_TIMEOUT,
  );

  it(
    'a custom deadLetterTopic receives the dead letter instead of <topic>.dead',
    async () => {
      const dlq = uniqueName('rel-dlq');
      @Controller()
      class CustomDead {
        @EventPattern<string>(t.customDead, { maxAttempts: 1, deadLetterTopic: dlq, body: 'text' })
        handle() {
          throw new RpcException('rejected');
        }
      }
      await startMicroservice(cleanup, [CustomDead], serverOptions(nsqd));
      const dead = await readDeadLetters(cleanup, nsqd, dlq);
      const producer = cleanup.producer(nsqd);
      await producer.publish(t.customDead, 'plain text body');

      await waitFor(() => dead.length === 1, 10_000, 'the dead letter');
      expect(dead[0]!.payload.toString('utf8')).toBe('plain text body');
      expect(dead[0]!.headers).toMatchObject({
        [HEADER.deadLetterReason]: 'max_attempts',
        [HEADER.originalTopic]: t.customDead,
        [HEADER.originalAttempts]: '1',
      });
      expect(await topicStats(nsqd, `${t.customDead}.dead`)).toBeUndefined();
    },
    TEST_TIMEOUT,
  );

  it(
    'TOUCH keeps a 2.5 s handler alive past the 1 s msg_timeout; without autoTouch nsqd redelivers it',
    async () => {
      const touched: Call[] = [];
      const untouched: Call[] = [];
      let done = 0;
      @Controller()
      class Slow {
        @EventPattern<string>(t.touched)
        async slow(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
          touched.push({ data, attempts: ctx.getAttempts(), id: ctx.getId() });
          await sleep(2500);
          done++;
        }

        // the control: proves the 1 s timeout is live on these channels
        @EventPattern<string>(t.untouched, { autoTouch: false })
        async slowUntouched(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
          untouched.push({ data, attempts: ctx.getAttempts(), id: ctx.getId() });
          await sleep(2500);
        }
      }
      await startMicroservice(cleanup, [Slow], serverOptions(nsqd));
      const client = makeClient(cleanup, nsqd);
      await emit(client, t.touched, { slow: 1 });
      await emit(client, t.untouched, { slow: 2 });

      await waitFor(() => done === 1, 15_000, 'the touched handler finished');
      await waitFor(() => untouched.some((c) => c.attempts >= 2), 15_000, 'the untouched message redelivered');
      await waitFor(async () => (await channelStats(nsqd, t.touched, 'svc'))?.in_flight_count === 0, 5000, 'the FIN counted');
      // longer than a msg_timeout after the FIN: a redelivery would have shown up by now
      await sleep(1500);
      expect(touched.map((c) => c.attempts)).toEqual([1]);
      const ch = await channelStats(nsqd, t.touched, 'svc');
      expect({ timedOut: ch?.timeout_count, requeued: ch?.requeue_count, depth: ch?.depth }).toEqual({ timedOut: 0, requeued: 0, depth: 0 });
      expect((await channelStats(nsqd, t.untouched, 'svc'))?.timeout_count).toBeGreaterThanOrEqual(1);
    },
    TEST_TIMEOUT,
  );

  it(
    'manualAck: ctx.requeue(50) on the first attempt and ctx.finish() on the second',
    async () => {
      const calls: Call[] = [];
      @Controller()
      class Manual {
        @EventPattern<string>(t.manual, { manualAck: true })
        handle(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
          calls.push({ data, attempts: ctx.getAttempts(), id: ctx.getId() });
          if (ctx.getAttempts() === 1) ctx.requeue(50);
          else ctx.finish();
          expect(ctx.isAnswered).toBe(true);
        }
      }
      const hooks = recordingHooks();
      await startMicroservice(cleanup, [Manual], serverOptions(nsqd, { hooks }));
      const client = makeClient(cleanup, nsqd);
      await emit(client, t.manual, { manual: 1 });

      await waitFor(() => calls.length >= 2, 15_000, 'the second delivery');
      await waitFor(async () => (await channelStats(nsqd, t.manual, 'svc'))?.in_flight_count === 0, 5000, 'the FIN counted');
      await sleep(1500);
      expect(calls.map((c) => c.attempts)).toEqual([1, 2]);
      const ch = await channelStats(nsqd, t.manual, 'svc');
      expect({ requeued: ch?.requeue_count, timedOut: ch?.timeout_count, depth: ch?.depth }).toEqual({ requeued: 1, timedOut: 0, depth: 0 });
      // the handler answered itself: the transport neither requeued nor reported failures
      expect(hooks.log.filter((l) => l.startsWith('requeued'))).toEqual([]);
    },
    TEST_TIMEOUT,
  );

  it(
    'manualAck: a handler that returns without answering is not FINed by the transport; nsqd redelivers it after msg_timeout',
    async () => {
      const calls: Call[] = [];
      @Controller()
      class Silent {
        @EventPattern<string>(t.manualSilent, { manualAck: true })
        handle(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
          calls.push({ data, attempts: ctx.getAttempts(), id: ctx.getId() });
          if (ctx.getAttempts() >= 2) ctx.finish();
        }
      }
      await startMicroservice(cleanup, [Silent], serverOptions(nsqd));
      const client = makeClient(cleanup, nsqd);
      await emit(client, t.manualSilent, { silent: 1 });

      await waitFor(() => calls.length >= 2, 15_000, 'the redelivery after msg_timeout');
      await waitFor(async () => (await channelStats(nsqd, t.manualSilent, 'svc'))?.in_flight_count === 0, 5000, 'the FIN counted');
      await sleep(1500);
      expect(calls.map((c) => c.attempts)).toEqual([1, 2]);
      expect(calls[1]!.id).toBe(calls[0]!.id);
      const ch = await channelStats(nsqd, t.manualSilent, 'svc');
      expect({ timedOut: ch?.timeout_count, requeued: ch?.requeue_count, depth: ch?.depth }).toEqual({ timedOut: 1, requeued: 0, depth: 0 });
    },
    TEST_TIMEOUT,
  );

  it(
    'app.close() waits for running handlers and loses nothing: a second instance on the channel handles the rest',
    async () => {
      const topic = uniqueName('rel-drain');
      const started: Array<{ app: number; n: number }> = [];
      const finished: Array<{ app: number; n: number }> = [];
      const drainController = (app: number) => {
        @Controller()
        class Drain {
          @EventPattern<string>(topic, { maxInFlight: 10, concurrency: 4 })
          async handle(@Payload() data: { n: number }) {
            started.push({ app, n: data.n });
            await sleep(300);
            finished.push({ app, n: data.n });
          }
        }
        return Drain;
      };
      const first = await startMicroservice(cleanup, [drainController(1)], serverOptions(nsqd));
      const client = makeClient(cleanup, nsqd);
      await emit(client, topic, new NsqRecord(range(50).map((n) => ({ n })), { batch: true }));

      await waitFor(() => finished.length >= 4 && started.length > finished.length, 15_000, 'handlers running after a first round');
      await first.app.close();
      const startedBeforeClose = started.filter((s) => s.app === 1).map((s) => s.n);
      const finishedBeforeClose = finished.filter((s) => s.app === 1).map((s) => s.n);
      // close() resolved only after every handler it had started completed
      expect([...finishedBeforeClose].sort((a, b) => a - b)).toEqual([...startedBeforeClose].sort((a, b) => a - b));
      expect(finishedBeforeClose.length).toBeLessThan(50);
      await waitFor(async () => (await channelStats(nsqd, topic, 'svc'))?.clients?.length === 0, 5000, 'the first app disconnected');
      await sleep(500);
      expect(started.filter((s) => s.app === 1)).toHaveLength(startedBeforeClose.length);

      await startMicroservice(cleanup, [drainController(2)], serverOptions(nsqd));
      await waitFor(() => new Set(finished.map((f) => f.n)).size === 50, 30_000, 'all 50 handled by one app or the other');
      await waitFor(async () => (await channelStats(nsqd, topic, 'svc'))?.in_flight_count === 0, 5000, 'the last FINs counted');
      await sleep(500);
      // exactly once: what the first app finished was FINed, what it had not started went back to nsqd
      expect(finished.map((f) => f.n).sort((a, b) => a - b)).toEqual(range(50));
      expect(started).toHaveLength(50);
      const ch = await channelStats(nsqd, topic, 'svc');
      expect({ depth: ch?.depth, deferred: ch?.deferred_count, timedOut: ch?.timeout_count }).toEqual({ depth: 0, deferred: 0, timedOut: 0 });
    },
    TEST_TIMEOUT,
  );
});

describeEachImpl('Nest transport: nsqd restarts mid-stream', (impl) => {
  let nsqd: NsqdProcess;

  beforeAll(async () => {
    nsqd = await startNsqd({ impl });
  }, TEST_TIMEOUT);
  afterEach(() => cleanup.run());
  afterAll(stopAll);

  it(
    'the server and the client reconnect by themselves; every acknowledged message is handled',
    async () => {
      const topic = uniqueName('rel-restart');
      const handled = new Set<number>();
      let deliveries = 0;
      @Controller()
      class Stream {
        @EventPattern<string>(topic)
        handle(@Payload() data: { n: number }) {
          deliveries++;
          handled.add(data.n);
        }
      }
      const { app } = await startMicroservice(
        cleanup,
        [Stream],
        serverOptions(nsqd, { consumer: { maxReconnectDelay: 500 } }),
      );
      const serverStatus: string[] = [];
      const statusSub = app.status.subscribe((s) => serverStatus.push(s));
      cleanup.add(() => statusSub.unsubscribe());
      const client = makeClient(cleanup, nsqd, { producer: { maxReconnectDelay: 500 } });
      const clientStatus: string[] = [];
      const clientSub = client.status.subscribe((s) => clientStatus.push(s));
      cleanup.add(() => clientSub.unsubscribe());

      const acked: number[] = [];
      let restarted: Promise<void> | undefined;
      for (let n = 0; n < 200; n++) {
        if (n === 70) {
          await nsqd.stop();
          // while nsqd is down a publish fails at once (retries 0): the client really felt the restart
          const down = await settle(emit(client, topic, { n: -1 }));
          expect(down.ok).toBe(false);
          restarted = nsqd.restart();
        }
        const deadline = Date.now() + 20_000;
        while (true) {
          const r = await settle(emit(client, topic, { n }));
          if (r.ok) break;
          if (Date.now() > deadline) throw new Error(`emit ${n} kept failing: ${String(r.error)}`);
          await sleep(50);
        }
        acked.push(n);
        await sleep(10);
      }
      await restarted;

      await waitFor(() => acked.every((n) => handled.has(n)), 30_000, 'every acknowledged message handled');
      expect(handled.size).toBe(200);
      // at least once: a message in flight when nsqd went down comes back after the restart
      expect(deliveries).toBeGreaterThanOrEqual(200);
      // the restart was really felt by both sides
      expect(serverStatus).toEqual(expect.arrayContaining([NsqStatus.CONNECTED, NsqStatus.RECONNECTING]));
      expect(serverStatus.lastIndexOf(NsqStatus.RECONNECTING)).toBeGreaterThan(serverStatus.indexOf(NsqStatus.CONNECTED));
      expect(serverStatus.at(-1)).toBe(NsqStatus.CONNECTED);
      expect(clientStatus).toContain(NsqStatus.RECONNECTING);
      expect(clientStatus.at(-1)).toBe(NsqStatus.CONNECTED);
    },
    60_000,
  );
});

describeEachImpl('Nest transport: publishing fails over to the next nsqd', (impl) => {
  afterEach(() => cleanup.run());
  afterAll(stopAll);

  it(
    'with two nsqd, emits keep succeeding through the second after the first stops',
    async () => {
      const [first, second] = await Promise.all([startNsqd({ impl }), startNsqd({ impl })]);
      const topic = uniqueName('rel-failover');
      const client = makeClient(cleanup, first, { nsqdTCPAddresses: [first.tcpAddress, second.tcpAddress] });
      for (let n = 0; n < 10; n++) await emit(client, topic, { n });
      expect((await topicStats(first, topic))?.message_count).toBe(10);

      await first.stop();
      for (let n = 10; n < 30; n++) await emit(client, topic, { n });
      expect((await topicStats(second, topic))?.message_count).toBe(20);

      // and a subscriber on both sees the second nsqd's messages
      const seen: number[] = [];
      @Controller()
      class Both {
        @EventPattern<string>(topic)
        handle(@Payload() data: { n: number }) {
          seen.push(data.n);
        }
      }
      await startMicroservice(cleanup, [Both], serverOptions(second, { nsqdTCPAddresses: [first.tcpAddress, second.tcpAddress] }));
      await waitFor(() => seen.length >= 20, 10_000, 'the 20 messages on the second nsqd handled');
      expect([...seen].sort((a, b) => a - b)).toEqual(range(20).map((n) => n + 10));
    },
    TEST_TIMEOUT,
  );
});
