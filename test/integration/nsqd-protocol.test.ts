/**
 * Protocol V2 golden tests for our NSQD: every case sends the same bytes to the official nsqd 1.3.0
 * and to ours, and both must answer with the same frames and the same decision to close the
 * connection. Each case also carries nsqd 1.3.0's recorded answer (its golden outcome), so a harness
 * bug cannot make both sides agree on nonsense and the table documents nsqd's behaviour.
 *
 * Then, against ours only: a client sending random garbage does not disturb a producer/consumer pair
 * on the same NSQD, and lengths that claim 2 GiB bodies are answered without allocating them.
 *
 * Outcome notation: `R <data>` response frame, `E <data>` error frame, `M attempts=<n> <body>`
 * message frame, `CLOSED` the server closed the connection, `topic depth=<n>` / `topic absent` the
 * case's topic in /stats afterwards. Bytes outside printable ASCII are shown as \xNN, message ids
 * a script saw as <id>.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants as zlibConstants, createDeflateRaw, createInflateRaw, type DeflateRaw, type InflateRaw } from 'node:zlib';
import { Consumer } from '../../libs/nsq/src/client/consumer.js';
import { silentLogger } from '../../libs/nsq/src/client/logger.js';
import { Producer } from '../../libs/nsq/src/client/producer.js';
import { NSQD } from '../../libs/nsq/src/nsqd/nsqd.js';
import type { NsqdInput } from '../../libs/nsq/src/nsqd/options.js';
import { nsqdStats } from '../support/client.js';
import { describeWithNsq } from '../support/nsq-bin.js';
import { startNsqd, stopAll, type NsqdProcess } from '../support/processes.js';
import { makeSelfSignedCert, type SelfSignedCert } from '../support/tls.js';
import { sleep, waitFor } from '../support/wait.js';

const SETUP_TIMEOUT = 30_000;
/** After the last byte in either direction, how long a connection must stay silent to count as settled. */
const QUIET_MS = 400;
/** Cases run this many at a time (each against both servers at once). */
const CONCURRENCY = 6;

/** Small limits on both servers, so the limit errors are cheap to provoke. */
const MAX_MSG_SIZE = 1024;
const MAX_BODY_SIZE = 8192;
const MAX_RDY_COUNT = 50;
const GO_LIMIT_ARGS = [`--max-msg-size=${MAX_MSG_SIZE}`, `--max-body-size=${MAX_BODY_SIZE}`, `--max-rdy-count=${MAX_RDY_COUNT}`];
const OUR_LIMITS: NsqdInput = { maxMsgSize: MAX_MSG_SIZE, maxBodySize: MAX_BODY_SIZE, maxRdyCount: MAX_RDY_COUNT };

// ---- bytes ---------------------------------------------------------------------------------------

type Part = string | Buffer;

const MAGIC = '  V2';

/** Strings are taken byte for byte (latin1), so '\xff' is the byte 0xff. */
function bytes(...parts: Part[]): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
}
function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  if (n > 0x7fffffff) b.writeUInt32BE(n, 0);
  else b.writeInt32BE(n, 0);
  return b;
}
/** [int32 length][body] */
function sized(body: Part): Buffer {
  const b = bytes(body);
  return bytes(int32(b.length), b);
}
function cmd(...words: string[]): string {
  return `${words.join(' ')}\n`;
}
function pub(topic: Part, body: Part = 'x'): Buffer {
  return bytes('PUB ', topic, '\n', sized(body));
}
function dpub(topic: string, deferMs: string, body: Part = 'x'): Buffer {
  return bytes(cmd('DPUB', topic, deferMs), sized(body));
}
/** MPUB with the outer length computed from the parts (unless given). */
function mpub(topic: string, messages: Buffer[], outerLength?: number): Buffer {
  const inner = bytes(int32(messages.length), ...messages);
  return bytes(cmd('MPUB', topic), int32(outerLength ?? inner.length), inner);
}
function identify(json: unknown): Buffer {
  return bytes(cmd('IDENTIFY'), sized(typeof json === 'string' ? json : JSON.stringify(json)));
}
const UNKNOWN_ID = '0123456789abcdef';

/** nsqd 1.3.0's IDENTIFY answer for these limits, in its key order, with `over` replacing values. */
function identifyReply(over: Record<string, unknown> = {}): string {
  const defaults = {
    max_rdy_count: MAX_RDY_COUNT,
    version: '1.3.0',
    max_msg_timeout: 900000,
    msg_timeout: 60000,
    tls_v1: false,
    deflate: false,
    deflate_level: 6,
    max_deflate_level: 6,
    snappy: false,
    sample_rate: 0,
    auth_required: false,
    output_buffer_size: 16384,
    output_buffer_timeout: 250,
  };
  return `R ${JSON.stringify({ ...defaults, ...over })}`;
}

/** Printable ASCII as is, everything else (and the backslash) escaped, so byte differences show. */
function show(b: Buffer): string {
  let s = '';
  for (const x of b) {
    if (x === 0x5c) s += '\\\\';
    else if (x >= 0x20 && x < 0x7f) s += String.fromCharCode(x);
    else s += `\\x${x.toString(16).padStart(2, '0')}`;
  }
  return s;
}

// ---- raw connection ------------------------------------------------------------------------------

interface Frame {
  type: number;
  data: Buffer;
}

/**
 * A raw TCP client: writes bytes, splits what comes back into `[size][type][data]` frames, notes
 * when the server ends or resets the connection. Can switch both directions to raw deflate.
 */
class RawConn {
  readonly frames: Frame[] = [];
  /** The server ended (FIN) or reset the connection. */
  closed = false;
  /** Bytes the server sent that are not a frame (a negative or absurd size). */
  garbage: Buffer | undefined;
  private pending: Buffer = Buffer.alloc(0);
  private lastActivity = Date.now();
  private cursor = 0;
  private inflateAfterFrames = -1;
  private inflater: InflateRaw | undefined;
  private deflater: DeflateRaw | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('end', () => this.onClosed());
    socket.on('close', () => this.onClosed());
    socket.on('error', () => this.onClosed());
  }

  static open(address: string): Promise<RawConn> {
    const [host, port] = splitAddress(address);
    return new Promise((resolve, reject) => {
      const socket = connect(port, host);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawConn(socket));
      });
    });
  }

  /** Writes unless the server already closed (writing then only races the reset against our reads). */
  write(data: Part): void {
    if (this.closed) return;
    this.lastActivity = Date.now();
    const buf = bytes(data);
    if (this.deflater) {
      this.deflater.write(buf);
      this.deflater.flush(zlibConstants.Z_SYNC_FLUSH);
    } else {
      this.socket.write(buf);
    }
  }

  /** Each part is one write, `gapMs` apart. */
  async send(parts: Part[], gapMs = 20): Promise<void> {
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) await sleep(gapMs);
      this.write(parts[i]!);
    }
  }

  /** Half-closes our side: the server reads EOF. */
  end(): void {
    if (!this.closed) this.socket.end();
  }

  /** Everything after the `n`th frame from the server is raw deflate (nsqd's deflate upgrade). */
  inflateAfter(n: number): void {
    this.inflateAfterFrames = n;
  }

  /** From now on our writes are raw deflate with a sync flush each. */
  deflateWrites(level = 6): void {
    const deflater = createDeflateRaw({ level });
    deflater.on('data', (chunk: Buffer) => {
      if (!this.closed) this.socket.write(chunk);
    });
    this.deflater = deflater;
  }

  /** The next frame (after those already taken) that satisfies `pred`. */
  async next(pred: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      for (let i = this.cursor; i < this.frames.length; i++) {
        const f = this.frames[i]!;
        if (pred(f)) {
          this.cursor = i + 1;
          return f;
        }
      }
      if (this.closed || Date.now() > deadline) {
        const why = this.closed ? 'the server closed the connection' : `nothing within ${timeoutMs} ms`;
        throw new Error(`no expected frame: ${why}; got: ${this.outcome().join(' | ') || 'nothing'}`);
      }
      await sleep(5);
    }
  }

  /** Waits until the server closed, or nothing moved for QUIET_MS (then the connection is open). */
  async settle(maxMs = 10_000): Promise<void> {
    const deadline = Date.now() + maxMs;
    while (!this.closed && Date.now() - this.lastActivity < QUIET_MS && Date.now() < deadline) await sleep(10);
  }

  outcome(ids: readonly string[] = []): string[] {
    const out = this.frames.map((f) => {
      let text = describeFrame(f);
      for (const id of ids) text = text.split(id).join('<id>');
      return text;
    });
    if (this.garbage) out.push(`GARBAGE ${show(this.garbage)}`);
    if (this.closed) out.push('CLOSED');
    return out;
  }

  destroy(): void {
    this.socket.destroy();
    this.inflater?.destroy();
    this.deflater?.destroy();
  }

  private onBytes(chunk: Buffer): void {
    this.lastActivity = Date.now();
    if (this.inflater) this.inflater.write(chunk);
    else this.parse(chunk);
  }

  private parse(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 4 && this.garbage === undefined) {
      const size = this.pending.readInt32BE(0);
      if (size < 4 || size > 64 * 1024 * 1024) {
        this.garbage = this.pending;
        this.pending = Buffer.alloc(0);
        return;
      }
      if (this.pending.length < 4 + size) return;
      this.frames.push({ type: this.pending.readInt32BE(4), data: Buffer.from(this.pending.subarray(8, 4 + size)) });
      this.pending = this.pending.subarray(4 + size);
      if (this.frames.length === this.inflateAfterFrames && !this.inflater) {
        const rest = this.pending;
        this.pending = Buffer.alloc(0);
        const inflater = createInflateRaw();
        inflater.on('data', (c: Buffer) => {
          this.lastActivity = Date.now();
          this.parse(c);
        });
        inflater.on('error', (err) => {
          this.garbage = Buffer.from(`inflate: ${err.message}`);
        });
        this.inflater = inflater;
        if (rest.length > 0) inflater.write(rest);
        return;
      }
    }
  }

  private onClosed(): void {
    if (!this.closed) this.lastActivity = Date.now();
    this.closed = true;
  }
}

function describeFrame(f: Frame): string {
  if (f.type === 0) return `R ${show(f.data)}`;
  if (f.type === 1) return `E ${show(f.data)}`;
  if (f.type === 2 && f.data.length >= 26) return `M attempts=${f.data.readUInt16BE(8)} ${show(f.data.subarray(26))}`;
  return `T${f.type} ${show(f.data)}`;
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), Number(address.slice(i + 1))];
}

// ---- cases ---------------------------------------------------------------------------------------

/** Names of one case: the same on both servers, distinct between cases. */
interface Names {
  topic: string;
  channel: string;
  /** Where the liveness probe publishes (never the case's topic). */
  probeTopic: string;
}

/** NOP, then a PUB that must be answered `R OK`: the connection is alive and in sync. */
const probe = (n: Names): Buffer => bytes(cmd('NOP'), pub(n.probeTopic, 'probe'));

interface Server {
  label: string;
  tcpAddress: string;
  httpAddress: string;
}

/** What a scripted case may use: its names, fresh connections, and a list of ids to mask. */
interface Session {
  names: Names;
  ids: string[];
  /** A new connection with the magic already written. */
  open(): Promise<RawConn>;
  /** Publishes over a separate connection and waits for its OK. */
  publish(topic: string, body: string): Promise<void>;
  /** The id of the next message frame on `conn` (recorded for masking). */
  message(conn: RawConn): Promise<string>;
}

interface ProtocolCase {
  name: string;
  /** One write per element, a short pause between them; the magic is prepended unless `noMagic`. */
  send?: (n: Names) => Part[];
  /** For cases that react to the server: returns the connection whose outcome is compared. */
  script?: (s: Session) => Promise<RawConn>;
  noMagic?: boolean;
  gapMs?: number;
  /** Half-close after the writes (the server reads EOF). */
  halfClose?: boolean;
  /** Also report the case's topic from /stats (its depth, or that it does not exist). */
  checkTopic?: boolean;
  /** nsqd 1.3.0's outcome. */
  golden: string[];
}

const OK = 'R OK';
const CLOSED = 'CLOSED';
const fatal = (text: string): string[] => [`E ${text}`, CLOSED];

const connectionCases: ProtocolCase[] = [
  { name: 'bad magic "  V3"', noMagic: true, send: () => ['  V3'], golden: fatal('E_BAD_PROTOCOL') },
  { name: 'an HTTP request instead of the magic', noMagic: true, send: () => ['GET / HTTP/1.1\r\nHost: x\r\n\r\n'], golden: fatal('E_BAD_PROTOCOL') },
  { name: 'the lookupd magic "  V1"', noMagic: true, send: () => ['  V1PING\n'], golden: fatal('E_BAD_PROTOCOL') },
  { name: 'four NUL bytes as magic', noMagic: true, send: () => ['\0\0\0\0'], golden: fatal('E_BAD_PROTOCOL') },
  { name: 'a truncated magic, then EOF', noMagic: true, send: () => ['  V'], halfClose: true, golden: [CLOSED] },
  { name: 'the magic alone, then EOF', noMagic: true, send: () => [MAGIC], halfClose: true, golden: [CLOSED] },
  {
    name: 'the magic split across three writes, then a PUB',
    noMagic: true,
    send: (n) => [' ', ' V', '2', pub(n.topic)],
    checkTopic: true,
    golden: [OK, 'topic depth=1'],
  },
  {
    name: 'the magic and three commands in one write',
    send: (n) => [bytes(pub(n.topic, 'a'), pub(n.topic, 'b'), probe(n))],
    checkTopic: true,
    golden: [OK, OK, OK, 'topic depth=2'],
  },
  {
    name: 'the magic and a PUB one byte per write',
    noMagic: true,
    gapMs: 2,
    send: (n) => [...bytes(MAGIC, pub(n.topic, 'split'))].map((b) => Buffer.from([b])),
    checkTopic: true,
    golden: [OK, 'topic depth=1'],
  },
  { name: 'a PUB, then EOF: answered, then closed', send: (n) => [pub(n.topic)], halfClose: true, checkTopic: true, golden: [OK, CLOSED, 'topic depth=1'] },
];

const commandLineCases: ProtocolCase[] = [
  { name: 'an empty line', send: () => ['\n'], golden: fatal('E_INVALID invalid command ') },
  { name: 'an empty line ending \\r\\n', send: () => ['\r\n'], golden: fatal('E_INVALID invalid command ') },
  { name: 'an unknown command', send: () => ['FOO bar\n'], golden: fatal('E_INVALID invalid command FOO') },
  { name: 'lowercase pub', send: (n) => [bytes(cmd('pub', n.topic), sized('x'))], golden: fatal('E_INVALID invalid command pub') },
  { name: 'a leading space', send: (n) => [bytes(` PUB ${n.topic}\n`, sized('x'))], golden: fatal('E_INVALID invalid command ') },
  { name: 'a command of non-UTF-8 bytes', send: () => ['\xff\xfe\x01\n'], golden: fatal('E_INVALID invalid command \\xff\\xfe\\x01') },
  {
    name: 'PUB ending \\r\\n is accepted',
    send: (n) => [bytes(`PUB ${n.topic}\r\n`, sized('x'))],
    checkTopic: true,
    golden: [OK, 'topic depth=1'],
  },
  {
    name: 'PUB with \\r\\r\\n keeps one \\r in the topic',
    send: () => [bytes('PUB crcr\r\r\n', sized('x'))],
    golden: fatal(String.raw`E_BAD_TOPIC PUB topic name "crcr\\r" is not valid`),
  },
  { name: 'double space: "PUB  t" has an empty topic', send: (n) => [bytes(`PUB  ${n.topic}\n`, sized('x'))], golden: fatal('E_BAD_TOPIC PUB topic name "" is not valid') },
  { name: 'a trailing space: "PUB t " is fine', send: (n) => [bytes(`PUB ${n.topic} \n`, sized('x'))], checkTopic: true, golden: [OK, 'topic depth=1'] },
  { name: 'NOP with parameters', send: (n) => [bytes('NOP x y\n', probe(n))], golden: [OK] },
  {
    name: 'a line of 16383 bytes plus newline is read',
    send: () => [`${'x'.repeat(16383)}\n`],
    golden: fatal(`E_INVALID invalid command ${'x'.repeat(16383)}`),
  },
  { name: 'a line of 16384 bytes plus newline closes without a frame', send: () => [`${'x'.repeat(16384)}\n`], golden: [CLOSED] },
  { name: 'over 16 KiB without a newline closes without a frame', send: () => ['x'.repeat(20_000)], golden: [CLOSED] },
  { name: 'over 16 KiB without a newline, in three writes', send: () => ['x'.repeat(8000), 'x'.repeat(8000), 'x'.repeat(8000)], golden: [CLOSED] },
];
const identifyCases: ProtocolCase[] = [
  { name: 'IDENTIFY with feature_negotiation', send: () => [identify({ feature_negotiation: true, client_id: 'c', hostname: 'h', user_agent: 'ua' })], golden: [identifyReply()] },
  { name: 'IDENTIFY without feature_negotiation answers OK', send: () => [identify({ client_id: 'c' })], golden: [OK] },
  { name: 'IDENTIFY with feature_negotiation false answers OK', send: () => [identify({ feature_negotiation: false, msg_timeout: 5000 })], golden: [OK] },
  { name: 'IDENTIFY with the body null answers OK', send: () => [identify('null')], golden: [OK] },
  { name: 'IDENTIFY with an empty object answers OK', send: () => [identify('{}')], golden: [OK] },
  { name: 'IDENTIFY with bad JSON', send: () => [identify('{"feature_negotiation":')], golden: fatal('E_BAD_BODY IDENTIFY failed to decode JSON body') },
  { name: 'IDENTIFY with a JSON array', send: () => [identify('[]')], golden: fatal('E_BAD_BODY IDENTIFY failed to decode JSON body') },
  { name: 'IDENTIFY with a JSON string', send: () => [identify('"x"')], golden: fatal('E_BAD_BODY IDENTIFY failed to decode JSON body') },
  { name: 'IDENTIFY with trailing garbage after the JSON', send: () => [identify('{} x')], golden: fatal('E_BAD_BODY IDENTIFY failed to decode JSON body') },
  { name: 'IDENTIFY heartbeat_interval "x"', send: () => [identify({ heartbeat_interval: 'x' })], golden: fatal('E_BAD_BODY IDENTIFY failed to decode JSON body') },
  { name: 'IDENTIFY heartbeat_interval 1.5', send: () => [identify('{"heartbeat_interval":1.5}')], golden: fatal('E_BAD_BODY IDENTIFY failed to decode JSON body') },
  { name: 'IDENTIFY heartbeat_interval 1e3 (not an integer literal)', send: () => [identify('{"heartbeat_interval":1e3}')], golden: fatal('E_BAD_BODY IDENTIFY failed to decode JSON body') },
  { name: 'IDENTIFY msg_timeout 2000.0 (not an integer literal)', send: () => [identify('{"msg_timeout":2000.0}')], golden: fatal('E_BAD_BODY IDENTIFY failed to decode JSON body') },
  { name: 'IDENTIFY feature_negotiation "true"', send: () => [identify({ feature_negotiation: 'true' })], golden: fatal('E_BAD_BODY IDENTIFY failed to decode JSON body') },
  { name: 'IDENTIFY client_id 5', send: () => [identify({ client_id: 5 })], golden: fatal('E_BAD_BODY IDENTIFY failed to decode JSON body') },
  { name: 'IDENTIFY sample_rate 2147483648 (beyond int32)', send: () => [identify('{"sample_rate":2147483648}')], golden: fatal('E_BAD_BODY IDENTIFY failed to decode JSON body') },
  {
    name: 'IDENTIFY heartbeat_interval 3000000000 (beyond int32, within int)',
    send: () => [identify('{"heartbeat_interval":3000000000}')],
    golden: fatal('E_BAD_BODY IDENTIFY heartbeat interval (3000000000) is invalid'),
  },
  ...(
    [
      ['heartbeat_interval', 999, 'heartbeat interval (999) is invalid'],
      ['heartbeat_interval', 60001, 'heartbeat interval (60001) is invalid'],
      ['heartbeat_interval', -2, 'heartbeat interval (-2) is invalid'],
      ['output_buffer_size', 63, 'output buffer size (63) is invalid'],
      ['output_buffer_size', 65537, 'output buffer size (65537) is invalid'],
      ['output_buffer_size', -2, 'output buffer size (-2) is invalid'],
      ['output_buffer_timeout', 1, 'output buffer timeout (1) is invalid'],
      ['output_buffer_timeout', 24, 'output buffer timeout (24) is invalid'],
      ['output_buffer_timeout', 30001, 'output buffer timeout (30001) is invalid'],
      ['sample_rate', 100, 'sample rate (100) is invalid'],
      ['sample_rate', -1, 'sample rate (-1) is invalid'],
      ['msg_timeout', 999, 'msg timeout (999) is invalid'],
      ['msg_timeout', 900001, 'msg timeout (900001) is invalid'],
      ['msg_timeout', -1, 'msg timeout (-1) is invalid'],
    ] as const
  ).map(
    ([key, value, text]): ProtocolCase => ({
      name: `IDENTIFY ${key} ${value} is out of range`,
      send: () => [identify({ feature_negotiation: true, [key]: value })],
      golden: fatal(`E_BAD_BODY IDENTIFY ${text}`),
    }),
  ),
  {
    name: 'IDENTIFY with several bad values reports the heartbeat first',
    send: () => [identify({ msg_timeout: 1, sample_rate: 100, output_buffer_size: 1, heartbeat_interval: 1 })],
    golden: fatal('E_BAD_BODY IDENTIFY heartbeat interval (1) is invalid'),
  },
  {
    name: 'IDENTIFY with a bad output buffer timeout and size reports the timeout first',
    send: () => [identify({ output_buffer_size: 1, output_buffer_timeout: 1 })],
    golden: fatal('E_BAD_BODY IDENTIFY output buffer timeout (1) is invalid'),
  },
  {
    name: 'IDENTIFY at the upper limits',
    send: () => [identify({ feature_negotiation: true, heartbeat_interval: 60000, output_buffer_size: 65536, output_buffer_timeout: 30000, sample_rate: 99, msg_timeout: 900000 })],
    golden: [identifyReply({ msg_timeout: 900000, sample_rate: 99, output_buffer_size: 65536, output_buffer_timeout: 30000 })],
  },
  {
    name: 'IDENTIFY at the lower limits',
    send: () => [identify({ feature_negotiation: true, heartbeat_interval: 1000, output_buffer_size: 64, output_buffer_timeout: 25, sample_rate: 1, msg_timeout: 1000 })],
    golden: [identifyReply({ msg_timeout: 1000, sample_rate: 1, output_buffer_size: 64, output_buffer_timeout: 25 })],
  },
  {
    name: 'IDENTIFY unbuffered output (-1, -1)',
    send: () => [identify({ feature_negotiation: true, output_buffer_size: -1, output_buffer_timeout: -1, heartbeat_interval: -1 })],
    golden: [identifyReply({ output_buffer_size: 1, output_buffer_timeout: 0 })],
  },
  {
    name: 'IDENTIFY output_buffer_size -1 also zeroes the timeout',
    send: () => [identify({ feature_negotiation: true, output_buffer_size: -1, output_buffer_timeout: 500 })],
    golden: [identifyReply({ output_buffer_size: 1, output_buffer_timeout: 0 })],
  },
  {
    name: 'IDENTIFY ignores unknown keys',
    send: () => [identify({ feature_negotiation: true, short_id: 'x', long_id: 'y', topology_zone: 'z', foo: { bar: [1, null] } })],
    golden: [identifyReply()],
  },
  {
    name: 'IDENTIFY keys are case-insensitive',
    send: () => [identify('{"Feature_Negotiation":true,"MSG_TIMEOUT":5000,"Sample_Rate":10,"OUTPUT_buffer_size":128}')],
    golden: [identifyReply({ msg_timeout: 5000, sample_rate: 10, output_buffer_size: 128 })],
  },
  {
    name: 'IDENTIFY with a key twice (in two cases): the last wins',
    send: () => [identify('{"feature_negotiation":true,"msg_timeout":2000,"MSG_TIMEOUT":3000}')],
    golden: [identifyReply({ msg_timeout: 3000 })],
  },
  {
    name: 'IDENTIFY null values leave the defaults',
    send: () => [identify('{"feature_negotiation":true,"msg_timeout":null,"client_id":null,"sample_rate":null}')],
    golden: [identifyReply()],
  },
  { name: 'IDENTIFY tls_v1 on an nsqd without TLS: no upgrade', send: (n) => [identify({ feature_negotiation: true, tls_v1: true }), probe(n)], golden: [identifyReply(), OK] },
  { name: 'IDENTIFY deflate false keeps deflate_level 6', send: () => [identify({ feature_negotiation: true, deflate: false, deflate_level: 3 })], golden: [identifyReply()] },
  { name: 'IDENTIFY snappy on an nsqd with snappy off: no upgrade', send: (n) => [identify({ feature_negotiation: true, snappy: true }), probe(n)], golden: [identifyReply(), OK] },
  {
    name: 'IDENTIFY deflate + snappy on an nsqd with snappy off: deflate only',
    script: (s) => deflateSession(s, { feature_negotiation: true, deflate: true, snappy: true }),
    golden: [identifyReply({ deflate: true }), OK, OK],
  },
  {
    name: 'IDENTIFY deflate_level 9 is capped at max_deflate_level',
    script: (s) => deflateSession(s, { feature_negotiation: true, deflate: true, deflate_level: 9 }),
    golden: [identifyReply({ deflate: true }), OK, OK],
  },
  {
    name: 'IDENTIFY deflate_level 1',
    script: (s) => deflateSession(s, { feature_negotiation: true, deflate: true, deflate_level: 1 }),
    golden: [identifyReply({ deflate: true, deflate_level: 1 }), OK, OK],
  },
  { name: 'IDENTIFY body length 0', send: () => [bytes(cmd('IDENTIFY'), int32(0))], golden: fatal('E_BAD_BODY IDENTIFY invalid body size 0') },
  { name: 'IDENTIFY body length -1', send: () => [bytes(cmd('IDENTIFY'), int32(-1), '{}')], golden: fatal('E_BAD_BODY IDENTIFY invalid body size -1') },
  {
    name: 'IDENTIFY body length over max-body-size',
    send: () => [bytes(cmd('IDENTIFY'), int32(MAX_BODY_SIZE + 1), '{}')],
    golden: fatal(`E_BAD_BODY IDENTIFY body too big ${MAX_BODY_SIZE + 1} > ${MAX_BODY_SIZE}`),
  },
  {
    name: 'IDENTIFY body length 0x7fffffff',
    send: () => [bytes(cmd('IDENTIFY'), int32(0x7fffffff), '{}')],
    golden: fatal(`E_BAD_BODY IDENTIFY body too big 2147483647 > ${MAX_BODY_SIZE}`),
  },
  {
    name: 'IDENTIFY body length 0x80000000 is negative',
    send: () => [bytes(cmd('IDENTIFY'), int32(0x80000000), '{}')],
    golden: fatal('E_BAD_BODY IDENTIFY invalid body size -2147483648'),
  },
  {
    name: 'IDENTIFY twice before SUB: both answered',
    send: () => [identify({ feature_negotiation: true }), identify({ feature_negotiation: true, msg_timeout: 7000 })],
    golden: [identifyReply(), identifyReply({ msg_timeout: 7000 })],
  },
  {
    name: 'IDENTIFY after SUB',
    send: (n) => [bytes(cmd('SUB', n.topic, n.channel), identify({ feature_negotiation: true }))],
    golden: [OK, ...fatal('E_INVALID cannot IDENTIFY in current state')],
  },
  { name: 'IDENTIFY with parameters: they are ignored', send: () => [bytes('IDENTIFY x y\n', sized('{"feature_negotiation":true}'))], golden: [identifyReply()] },
  {
    name: 'IDENTIFY body cut short by EOF',
    send: () => [bytes(cmd('IDENTIFY'), int32(20), '{"feature')],
    halfClose: true,
    golden: fatal('E_BAD_BODY IDENTIFY failed to read body'),
  },
  { name: 'IDENTIFY length cut short by EOF', send: () => [bytes(cmd('IDENTIFY'), '\0\0')], halfClose: true, golden: fatal('E_BAD_BODY IDENTIFY failed to read body size') },
];

const longTopic = (n: Names, length: number): string => `${n.topic}-`.padEnd(length, 'x');

const pubCases: ProtocolCase[] = [
  { name: 'PUB without a topic', send: () => ['PUB\n'], golden: fatal('E_INVALID PUB insufficient number of parameters') },
  { name: 'PUB with an empty topic', send: () => [bytes('PUB \n', sized('x'))], golden: fatal('E_BAD_TOPIC PUB topic name "" is not valid') },
  { name: 'PUB with a 64-character topic', send: (n) => [pub(longTopic(n, 64))], golden: [OK] },
  { name: 'PUB with a 65-character topic', send: () => [pub('t'.repeat(65))], golden: fatal(`E_BAD_TOPIC PUB topic name "${'t'.repeat(65)}" is not valid`) },
  { name: 'PUB with a slash in the topic', send: () => [pub('a/b')], golden: fatal('E_BAD_TOPIC PUB topic name "a/b" is not valid') },
  { name: 'PUB with a colon in the topic', send: () => [pub('a:b')], golden: fatal('E_BAD_TOPIC PUB topic name "a:b" is not valid') },
  { name: 'PUB with a quote and a backslash in the topic', send: () => [pub('a"b\\c')], golden: fatal(String.raw`E_BAD_TOPIC PUB topic name "a\\"b\\\\c" is not valid`) },
  { name: 'PUB with a control character in the topic (Go %q)', send: () => [pub('a\x01b')], golden: fatal(String.raw`E_BAD_TOPIC PUB topic name "a\\x01b" is not valid`) },
  { name: 'PUB with DEL in the topic (Go %q)', send: () => [pub('a\x7fb')], golden: fatal(String.raw`E_BAD_TOPIC PUB topic name "a\\x7fb" is not valid`) },
  { name: 'PUB with a tab in the topic (Go %q)', send: () => [pub('a\tb')], golden: fatal(String.raw`E_BAD_TOPIC PUB topic name "a\\tb" is not valid`) },
  { name: 'PUB with UTF-8 in the topic (printed as is)', send: () => [pub(Buffer.from('caf\u00e9', 'utf8'))], golden: fatal('E_BAD_TOPIC PUB topic name "caf\\xc3\\xa9" is not valid') },
  { name: 'PUB with invalid UTF-8 in the topic (Go %q)', send: () => [pub('a\xffb')], golden: fatal(String.raw`E_BAD_TOPIC PUB topic name "a\\xffb" is not valid`) },
  { name: 'PUB to "#ephemeral" alone', send: () => [pub('#ephemeral')], golden: fatal('E_BAD_TOPIC PUB topic name "#ephemeral" is not valid') },
  { name: 'PUB to an ephemeral topic', send: (n) => [pub(`${n.topic}#ephemeral`), probe(n)], golden: [OK, OK] },
  { name: 'PUB to "x#ephemeral#ephemeral"', send: () => [pub('x#ephemeral#ephemeral')], golden: fatal('E_BAD_TOPIC PUB topic name "x#ephemeral#ephemeral" is not valid') },
  { name: 'PUB to "x#EPHEMERAL"', send: () => [pub('x#EPHEMERAL')], golden: fatal('E_BAD_TOPIC PUB topic name "x#EPHEMERAL" is not valid') },
  { name: 'PUB body size 0', send: (n) => [bytes(cmd('PUB', n.topic), int32(0))], checkTopic: true, golden: [...fatal('E_BAD_MESSAGE PUB invalid message body size 0'), 'topic absent'] },
  { name: 'PUB body size -5', send: (n) => [bytes(cmd('PUB', n.topic), int32(-5), 'xxxxx')], golden: fatal('E_BAD_MESSAGE PUB invalid message body size -5') },
  {
    name: 'PUB body size 0x80000000 is negative',
    send: (n) => [bytes(cmd('PUB', n.topic), int32(0x80000000))],
    golden: fatal('E_BAD_MESSAGE PUB invalid message body size -2147483648'),
  },
  {
    name: 'PUB body over max-msg-size',
    send: (n) => [bytes(cmd('PUB', n.topic), int32(MAX_MSG_SIZE + 1), 'x'.repeat(MAX_MSG_SIZE + 1))],
    checkTopic: true,
    golden: [...fatal(`E_BAD_MESSAGE PUB message too big ${MAX_MSG_SIZE + 1} > ${MAX_MSG_SIZE}`), 'topic absent'],
  },
  {
    name: 'PUB body size 0x7fffffff',
    send: (n) => [bytes(cmd('PUB', n.topic), int32(0x7fffffff), 'xx')],
    golden: fatal(`E_BAD_MESSAGE PUB message too big 2147483647 > ${MAX_MSG_SIZE}`),
  },
  { name: 'PUB body of exactly max-msg-size', send: (n) => [pub(n.topic, 'y'.repeat(MAX_MSG_SIZE))], checkTopic: true, golden: [OK, 'topic depth=1'] },
  { name: 'PUB with a bad topic and a bad body: the topic is reported', send: () => [bytes('PUB a/b\n', int32(0))], golden: fatal('E_BAD_TOPIC PUB topic name "a/b" is not valid') },
  { name: 'PUB with extra parameters', send: (n) => [bytes(cmd('PUB', n.topic, 'extra'), sized('x'))], checkTopic: true, golden: [OK, 'topic depth=1'] },
  { name: 'PUB body cut short by EOF', send: (n) => [bytes(cmd('PUB', n.topic), int32(10), 'abc')], halfClose: true, checkTopic: true, golden: [...fatal('E_BAD_MESSAGE PUB failed to read message body'), 'topic absent'] },
  { name: 'PUB length cut short by EOF', send: (n) => [bytes(cmd('PUB', n.topic), '\0')], halfClose: true, golden: fatal('E_BAD_MESSAGE PUB failed to read message body size') },
];

const dpubCases: ProtocolCase[] = [
  { name: 'DPUB without a defer', send: (n) => [bytes(cmd('DPUB', n.topic), sized('x'))], golden: fatal('E_INVALID DPUB insufficient number of parameters') },
  { name: 'DPUB defer -1', send: (n) => [dpub(n.topic, '-1')], golden: fatal('E_INVALID DPUB could not parse timeout -1') },
  { name: 'DPUB defer abc', send: (n) => [dpub(n.topic, 'abc')], golden: fatal('E_INVALID DPUB could not parse timeout abc') },
  { name: 'DPUB defer 1.5', send: (n) => [dpub(n.topic, '1.5')], golden: fatal('E_INVALID DPUB could not parse timeout 1.5') },
  { name: 'DPUB defer over max-req-timeout', send: (n) => [dpub(n.topic, '3600001')], checkTopic: true, golden: [...fatal('E_INVALID DPUB timeout 3600001 out of range 0-3600000'), 'topic absent'] },
  { name: 'DPUB defer of exactly max-req-timeout', send: (n) => [dpub(n.topic, '3600000')], checkTopic: true, golden: [OK, 'topic depth=1'] },
  { name: 'DPUB with an empty defer (0)', send: (n) => [bytes(`DPUB ${n.topic} \n`, sized('x'))], checkTopic: true, golden: [OK, 'topic depth=1'] },
  {
    name: 'DPUB defer 18446744073709551615 (wraps to negative)',
    send: (n) => [dpub(n.topic, '18446744073709551615')],
    golden: fatal('E_INVALID DPUB timeout 18446744073709551615 out of range 0-3600000'),
  },
  {
    name: 'DPUB defer 99999999999999999999 (overflows the parser)',
    send: (n) => [dpub(n.topic, '99999999999999999999')],
    golden: fatal('E_INVALID DPUB timeout 7766279631452241919 out of range 0-3600000'),
  },
  { name: 'DPUB with a bad topic', send: () => [dpub('a/b', '10')], golden: fatal('E_BAD_TOPIC DPUB topic name "a/b" is not valid') },
  { name: 'DPUB with a bad topic and a bad defer: the topic is reported', send: () => [dpub('a/b', 'x')], golden: fatal('E_BAD_TOPIC DPUB topic name "a/b" is not valid') },
  { name: 'DPUB body size 0', send: (n) => [bytes(cmd('DPUB', n.topic, '10'), int32(0))], golden: fatal('E_BAD_MESSAGE DPUB invalid message body size 0') },
  {
    name: 'DPUB body over max-msg-size',
    send: (n) => [bytes(cmd('DPUB', n.topic, '10'), int32(MAX_MSG_SIZE + 1))],
    golden: fatal(`E_BAD_MESSAGE DPUB message too big ${MAX_MSG_SIZE + 1} > ${MAX_MSG_SIZE}`),
  },
];

const m = (body: string): Buffer => sized(body);

const mpubCases: ProtocolCase[] = [
  { name: 'MPUB without a topic', send: () => ['MPUB\n'], golden: fatal('E_INVALID MPUB insufficient number of parameters') },
  { name: 'MPUB with a bad topic (code repeated in the text)', send: () => [mpub('a/b', [m('x')])], golden: fatal('E_BAD_TOPIC E_BAD_TOPIC MPUB topic name "a/b" is not valid') },
  { name: 'MPUB of three messages', send: (n) => [mpub(n.topic, [m('a'), m('b'), m('c')])], checkTopic: true, golden: [OK, 'topic depth=3'] },
  { name: 'MPUB body size 0 (the topic is created anyway)', send: (n) => [bytes(cmd('MPUB', n.topic), int32(0))], checkTopic: true, golden: [...fatal('E_BAD_BODY MPUB invalid body size 0'), 'topic depth=0'] },
  { name: 'MPUB body size -1', send: (n) => [bytes(cmd('MPUB', n.topic), int32(-1))], golden: fatal('E_BAD_BODY MPUB invalid body size -1') },
  {
    name: 'MPUB body over max-body-size',
    send: (n) => [bytes(cmd('MPUB', n.topic), int32(MAX_BODY_SIZE + 1))],
    golden: fatal(`E_BAD_BODY MPUB body too big ${MAX_BODY_SIZE + 1} > ${MAX_BODY_SIZE}`),
  },
  { name: 'MPUB count 0', send: (n) => [bytes(cmd('MPUB', n.topic), int32(4), int32(0))], checkTopic: true, golden: [...fatal('E_BAD_BODY MPUB invalid message count 0'), 'topic depth=0'] },
  { name: 'MPUB count -1', send: (n) => [bytes(cmd('MPUB', n.topic), int32(9), int32(-1), m('x'))], golden: fatal('E_BAD_BODY MPUB invalid message count -1') },
  { name: 'MPUB count 0x7fffffff', send: (n) => [bytes(cmd('MPUB', n.topic), int32(100), int32(0x7fffffff), m('x'))], golden: fatal('E_BAD_BODY MPUB invalid message count 2147483647') },
  {
    name: 'MPUB count just over (max-body-size - 4) / 5',
    send: (n) => [bytes(cmd('MPUB', n.topic), int32(100), int32(Math.floor((MAX_BODY_SIZE - 4) / 5) + 1), m('x'))],
    golden: fatal(`E_BAD_BODY MPUB invalid message count ${Math.floor((MAX_BODY_SIZE - 4) / 5) + 1}`),
  },
  {
    name: 'MPUB with an empty message among good ones publishes nothing',
    send: (n) => [mpub(n.topic, [m('a'), int32(0), m('c')])],
    checkTopic: true,
    golden: [...fatal('E_BAD_MESSAGE MPUB invalid message(1) body size 0'), 'topic depth=0'],
  },
  {
    name: 'MPUB with a too big message among good ones publishes nothing',
    send: (n) => [mpub(n.topic, [m('a'), m('b'), m('z'.repeat(MAX_MSG_SIZE + 1))])],
    checkTopic: true,
    golden: [...fatal(`E_BAD_MESSAGE MPUB message too big ${MAX_MSG_SIZE + 1} > ${MAX_MSG_SIZE}`), 'topic depth=0'],
  },
  {
    name: 'MPUB with a negative message size among good ones',
    send: (n) => [mpub(n.topic, [m('a'), m('b'), int32(-1)])],
    checkTopic: true,
    golden: [...fatal('E_BAD_MESSAGE MPUB invalid message(2) body size -1'), 'topic depth=0'],
  },
  {
    name: 'MPUB whose outer length is smaller than its parts (not cross-checked)',
    send: (n) => [mpub(n.topic, [m('first'), m('second')], 5), probe(n)],
    checkTopic: true,
    golden: [OK, OK, 'topic depth=2'],
  },
  {
    name: 'MPUB cut short by EOF after one of two messages',
    send: (n) => [bytes(cmd('MPUB', n.topic), int32(100), int32(2), m('a'))],
    halfClose: true,
    checkTopic: true,
    golden: [...fatal('E_BAD_MESSAGE MPUB failed to read message(1) body size'), 'topic depth=0'],
  },
];

const sub = (n: Names, channel = n.channel): string => cmd('SUB', n.topic, channel);

const subRdyCases: ProtocolCase[] = [
  { name: 'SUB before IDENTIFY is fine', send: (n) => [bytes(sub(n), probe(n))], golden: [OK, OK] },
  { name: 'SUB without params', send: () => ['SUB\n'], golden: fatal('E_INVALID SUB insufficient number of parameters') },
  { name: 'SUB without a channel', send: (n) => [cmd('SUB', n.topic)], golden: fatal('E_INVALID SUB insufficient number of parameters') },
  { name: 'SUB with extra params', send: (n) => [bytes(cmd('SUB', n.topic, n.channel, 'extra'), probe(n))], golden: [OK, OK] },
  { name: 'SUB twice', send: (n) => [bytes(sub(n), sub(n, 'other'))], golden: [OK, ...fatal('E_INVALID cannot SUB in current state')] },
  { name: 'SUB with a bad topic', send: () => ['SUB a/b ch\n'], golden: fatal('E_BAD_TOPIC SUB topic name "a/b" is not valid') },
  { name: 'SUB with a bad channel', send: (n) => [sub(n, 'c/d')], golden: fatal('E_BAD_CHANNEL SUB channel name "c/d" is not valid') },
  { name: 'SUB to channel "#ephemeral" alone', send: (n) => [sub(n, '#ephemeral')], golden: fatal('E_BAD_CHANNEL SUB channel name "#ephemeral" is not valid') },
  { name: 'SUB with a bad topic and a bad channel: the topic is reported', send: () => ['SUB a/b c/d\n'], golden: fatal('E_BAD_TOPIC SUB topic name "a/b" is not valid') },
  { name: 'SUB to an ephemeral channel', send: (n) => [bytes(sub(n, 'ch#ephemeral'), probe(n))], golden: [OK, OK] },
  {
    name: 'SUB with heartbeats disabled',
    send: (n) => [bytes(identify({ heartbeat_interval: -1 }), sub(n))],
    golden: [OK, ...fatal('E_INVALID cannot SUB with heartbeats disabled')],
  },
  {
    name: 'SUB with heartbeats disabled checks that before the params',
    send: () => [bytes(identify({ heartbeat_interval: -1 }), 'SUB\n')],
    golden: [OK, ...fatal('E_INVALID cannot SUB with heartbeats disabled')],
  },
  { name: 'RDY before SUB', send: () => ['RDY 1\n'], golden: fatal('E_INVALID cannot RDY in current state') },
  { name: 'RDY -1', send: (n) => [bytes(sub(n), 'RDY -1\n')], golden: [OK, ...fatal('E_INVALID RDY could not parse count -1')] },
  { name: 'RDY abc', send: (n) => [bytes(sub(n), 'RDY abc\n')], golden: [OK, ...fatal('E_INVALID RDY could not parse count abc')] },
  {
    name: 'RDY over max-rdy-count',
    send: (n) => [bytes(sub(n), `RDY ${MAX_RDY_COUNT + 1}\n`)],
    golden: [OK, ...fatal(`E_INVALID RDY count ${MAX_RDY_COUNT + 1} out of range 0-${MAX_RDY_COUNT}`)],
  },
  {
    name: 'RDY 18446744073709551615 (wraps to -1)',
    send: (n) => [bytes(sub(n), 'RDY 18446744073709551615\n')],
    golden: [OK, ...fatal(`E_INVALID RDY count -1 out of range 0-${MAX_RDY_COUNT}`)],
  },
  { name: 'RDY of exactly max-rdy-count', send: (n) => [bytes(sub(n), `RDY ${MAX_RDY_COUNT}\n`, probe(n))], golden: [OK, OK] },
  { name: 'RDY without a param (means 1)', send: (n) => [bytes(sub(n), 'RDY\n', probe(n))], golden: [OK, OK] },
  { name: 'RDY with an empty param (means 0)', send: (n) => [bytes(sub(n), 'RDY \n', probe(n))], golden: [OK, OK] },
  { name: 'RDY 0', send: (n) => [bytes(sub(n), 'RDY 0\n', probe(n))], golden: [OK, OK] },
];

const finCases: ProtocolCase[] = [
  { name: 'FIN before SUB', send: () => [cmd('FIN', UNKNOWN_ID)], golden: fatal('E_INVALID cannot FIN in current state') },
  { name: 'REQ before SUB', send: () => [cmd('REQ', UNKNOWN_ID, '0')], golden: fatal('E_INVALID cannot REQ in current state') },
  { name: 'TOUCH before SUB', send: () => [cmd('TOUCH', UNKNOWN_ID)], golden: fatal('E_INVALID cannot TOUCH in current state') },
  {
    name: 'FIN of an unknown id is not fatal',
    send: (n) => [bytes(sub(n), cmd('FIN', UNKNOWN_ID), probe(n))],
    golden: [OK, `E E_FIN_FAILED FIN ${UNKNOWN_ID} failed ID not in flight`, OK],
  },
  {
    name: 'REQ of an unknown id is not fatal',
    send: (n) => [bytes(sub(n), cmd('REQ', UNKNOWN_ID, '0'), probe(n))],
    golden: [OK, `E E_REQ_FAILED REQ ${UNKNOWN_ID} failed ID not in flight`, OK],
  },
  {
    name: 'TOUCH of an unknown id is not fatal',
    send: (n) => [bytes(sub(n), cmd('TOUCH', UNKNOWN_ID), probe(n))],
    golden: [OK, `E E_TOUCH_FAILED TOUCH ${UNKNOWN_ID} failed ID not in flight`, OK],
  },
  {
    name: 'REQ of an unknown id with a timeout over max-req-timeout (clamped, not fatal)',
    send: (n) => [bytes(sub(n), cmd('REQ', UNKNOWN_ID, '99999999999'), probe(n))],
    golden: [OK, `E E_REQ_FAILED REQ ${UNKNOWN_ID} failed ID not in flight`, OK],
  },
  {
    name: 'FIN of an unknown non-ASCII id echoes its bytes',
    send: (n) => [bytes(sub(n), 'FIN \xff\xfe0123456789abcd\n', probe(n))],
    golden: [OK, 'E E_FIN_FAILED FIN \\xff\\xfe0123456789abcd failed ID not in flight', OK],
  },
  { name: 'FIN with a short id', send: (n) => [bytes(sub(n), 'FIN abc\n')], golden: [OK, ...fatal('E_INVALID invalid message ID')] },
  { name: 'FIN with a 17-byte id', send: (n) => [bytes(sub(n), `FIN ${UNKNOWN_ID}0\n`)], golden: [OK, ...fatal('E_INVALID invalid message ID')] },
  { name: 'FIN without an id', send: (n) => [bytes(sub(n), 'FIN\n')], golden: [OK, ...fatal('E_INVALID FIN insufficient number of params')] },
  { name: 'TOUCH without an id', send: (n) => [bytes(sub(n), 'TOUCH\n')], golden: [OK, ...fatal('E_INVALID TOUCH insufficient number of params')] },
  { name: 'TOUCH with a short id', send: (n) => [bytes(sub(n), 'TOUCH 1\n')], golden: [OK, ...fatal('E_INVALID invalid message ID')] },
  { name: 'REQ without a timeout', send: (n) => [bytes(sub(n), cmd('REQ', UNKNOWN_ID))], golden: [OK, ...fatal('E_INVALID REQ insufficient number of params')] },
  { name: 'REQ with timeout abc', send: (n) => [bytes(sub(n), cmd('REQ', UNKNOWN_ID, 'abc'))], golden: [OK, ...fatal('E_INVALID REQ could not parse timeout abc')] },
  { name: 'REQ with timeout -1', send: (n) => [bytes(sub(n), cmd('REQ', UNKNOWN_ID, '-1'))], golden: [OK, ...fatal('E_INVALID REQ could not parse timeout -1')] },
  { name: 'REQ with a short id and a bad timeout: the id is reported', send: (n) => [bytes(sub(n), 'REQ abc x\n')], golden: [OK, ...fatal('E_INVALID invalid message ID')] },
  {
    name: "REQ / FIN / TOUCH of another client's message are not fatal",
    script: async (s) => {
      const owner = await s.open();
      owner.write(bytes(sub(s.names), 'RDY 1\n'));
      await owner.next((f) => f.type === 0);
      const other = await s.open();
      other.write(sub(s.names));
      await other.next((f) => f.type === 0);
      await s.publish(s.names.topic, 'owned');
      const id = await s.message(owner);
      other.write(bytes(cmd('REQ', id, '0'), cmd('FIN', id), cmd('TOUCH', id), probe(s.names)));
      await other.settle();
      owner.destroy();
      return other;
    },
    golden: [
      OK,
      'E E_REQ_FAILED REQ <id> failed client does not own message',
      'E E_FIN_FAILED FIN <id> failed client does not own message',
      'E E_TOUCH_FAILED TOUCH <id> failed client does not own message',
      OK,
    ],
  },
  {
    name: 'FIN twice: the second is not in flight',
    script: async (s) => {
      const c = await s.open();
      c.write(bytes(sub(s.names), 'RDY 1\n'));
      await c.next((f) => f.type === 0);
      await s.publish(s.names.topic, 'once');
      const id = await s.message(c);
      c.write(bytes(cmd('TOUCH', id), cmd('FIN', id), cmd('FIN', id), probe(s.names)));
      return c;
    },
    golden: [OK, 'M attempts=1 once', 'E E_FIN_FAILED FIN <id> failed ID not in flight', OK],
  },
  {
    name: 'REQ 0 redelivers with attempts 2',
    script: async (s) => {
      const c = await s.open();
      c.write(bytes(sub(s.names), 'RDY 1\n'));
      await c.next((f) => f.type === 0);
      await s.publish(s.names.topic, 'again');
      const id = await s.message(c);
      c.write(cmd('REQ', id, '0'));
      await s.message(c);
      c.write(bytes(cmd('FIN', id), probe(s.names)));
      return c;
    },
    golden: [OK, 'M attempts=1 again', 'M attempts=2 again', OK],
  },
];

const clsAuthCases: ProtocolCase[] = [
  { name: 'CLS before SUB', send: () => ['CLS\n'], golden: fatal('E_INVALID cannot CLS in current state') },
  { name: 'CLS after PUB (a producer connection)', send: (n) => [bytes(pub(n.topic), 'CLS\n')], golden: [OK, ...fatal('E_INVALID cannot CLS in current state')] },
  { name: 'CLS then RDY is ignored', send: (n) => [bytes(sub(n), 'CLS\n', 'RDY 10\n', probe(n))], golden: [OK, 'R CLOSE_WAIT', OK] },
  { name: 'CLS then an unparsable RDY is ignored too', send: (n) => [bytes(sub(n), 'CLS\n', 'RDY abc\n', probe(n))], golden: [OK, 'R CLOSE_WAIT', OK] },
  { name: 'CLS twice', send: (n) => [bytes(sub(n), 'CLS\n', 'CLS\n')], golden: [OK, 'R CLOSE_WAIT', ...fatal('E_INVALID cannot CLS in current state')] },
  { name: 'CLS then SUB', send: (n) => [bytes(sub(n), 'CLS\n', sub(n))], golden: [OK, 'R CLOSE_WAIT', ...fatal('E_INVALID cannot SUB in current state')] },
  {
    name: 'CLS then FIN of an unknown id is still answered E_FIN_FAILED',
    send: (n) => [bytes(sub(n), 'CLS\n', cmd('FIN', UNKNOWN_ID), probe(n))],
    golden: [OK, 'R CLOSE_WAIT', `E E_FIN_FAILED FIN ${UNKNOWN_ID} failed ID not in flight`, OK],
  },
  {
    name: 'CLS, CLOSE_WAIT, then TOUCH and FIN of the in-flight message',
    script: async (s) => {
      const c = await s.open();
      c.write(bytes(sub(s.names), 'RDY 1\n'));
      await c.next((f) => f.type === 0);
      await s.publish(s.names.topic, 'inflight');
      const id = await s.message(c);
      c.write('CLS\n');
      await c.next((f) => f.type === 0);
      c.write(bytes(cmd('TOUCH', id), cmd('FIN', id), 'RDY 5\n', probe(s.names)));
      return c;
    },
    golden: [OK, 'M attempts=1 inflight', 'R CLOSE_WAIT', OK],
  },
  { name: 'AUTH when auth is disabled', send: () => [bytes('AUTH\n', sized('secret'))], golden: fatal('E_AUTH_DISABLED AUTH disabled') },
  { name: 'AUTH with params', send: () => [bytes('AUTH secret\n', sized('secret'))], golden: fatal('E_INVALID AUTH invalid number of parameters') },
  { name: 'AUTH with body size 0', send: () => [bytes('AUTH\n', int32(0))], golden: fatal('E_BAD_BODY AUTH invalid body size 0') },
  {
    name: 'AUTH with body over max-body-size',
    send: () => [bytes('AUTH\n', int32(MAX_BODY_SIZE + 1))],
    golden: fatal(`E_BAD_BODY AUTH body too big ${MAX_BODY_SIZE + 1} > ${MAX_BODY_SIZE}`),
  },
  { name: 'AUTH after SUB', send: (n) => [bytes(sub(n), 'AUTH\n', sized('secret'))], golden: [OK, ...fatal('E_INVALID cannot AUTH in current state')] },
];

const ALL_CASES: Array<[group: string, cases: ProtocolCase[]]> = [
  ['connection start', connectionCases],
  ['command lines', commandLineCases],
  ['IDENTIFY', identifyCases],
  ['PUB', pubCases],
  ['DPUB', dpubCases],
  ['MPUB', mpubCases],
  ['SUB and RDY', subRdyCases],
  ['FIN, REQ, TOUCH', finCases],
  ['CLS and AUTH', clsAuthCases],
];

/** IDENTIFY with deflate, then (over deflate both ways) a NOP and a PUB that must be answered. */
async function deflateSession(s: Session, body: Record<string, unknown>): Promise<RawConn> {
  const c = await s.open();
  c.inflateAfter(1);
  c.write(identify(body));
  const reply = await c.next();
  const negotiated = JSON.parse(reply.data.toString()) as { deflate?: boolean; deflate_level?: number };
  if (negotiated.deflate) {
    await c.next();
    c.deflateWrites(negotiated.deflate_level);
    c.write(probe(s.names));
  }
  return c;
}

// ---- running ---------------------------------------------------------------------------------------

async function publishOk(server: Server, topic: string, body: string): Promise<void> {
  const c = await RawConn.open(server.tcpAddress);
  try {
    c.write(bytes(MAGIC, pub(topic, body)));
    const f = await c.next();
    if (describeFrame(f) !== OK) throw new Error(`publish to ${server.label}: ${describeFrame(f)}`);
  } finally {
    c.destroy();
  }
}

async function topicLine(server: Server, topic: string): Promise<string> {
  const stats = await nsqdStats(server, topic);
  const t = stats.topics.find((x) => x.topic_name === topic);
  return t === undefined ? 'topic absent' : `topic depth=${t.depth}`;
}

async function runCase(c: ProtocolCase, server: Server, names: Names): Promise<string[]> {
  const opened: RawConn[] = [];
  const ids: string[] = [];
  const session: Session = {
    names,
    ids,
    open: async () => {
      const conn = await RawConn.open(server.tcpAddress);
      opened.push(conn);
      conn.write(MAGIC);
      return conn;
    },
    publish: (topic, body) => publishOk(server, topic, body),
    message: async (conn) => {
      const f = await conn.next((x) => x.type === 2);
      const id = f.data.subarray(10, 26).toString('latin1');
      ids.push(id);
      return id;
    },
  };
  try {
    let conn: RawConn;
    if (c.script) {
      conn = await c.script(session);
    } else {
      conn = await RawConn.open(server.tcpAddress);
      opened.push(conn);
      const parts = c.send!(names);
      if (!c.noMagic) parts[0] = bytes(MAGIC, parts[0] ?? '');
      await conn.send(parts, c.gapMs);
      if (c.halfClose) conn.end();
    }
    await conn.settle();
    const outcome = conn.outcome(ids);
    if (c.checkTopic) outcome.push(await topicLine(server, names.topic));
    return outcome;
  } finally {
    for (const conn of opened) conn.destroy();
  }
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

interface Compared {
  theirs: string[];
  ours: string[];
}

/** Runs every case against both servers (both at once per case) and keeps the outcomes by name. */
async function compareAll(cases: readonly ProtocolCase[], theirs: Server, ours: Server, prefix: string): Promise<Map<string, Compared>> {
  const results = new Map<string, Compared>();
  const indexed = cases.map((c, i) => ({ c, i }));
  await pool(indexed, CONCURRENCY, async ({ c, i }) => {
    const topic = `${prefix}-${i}`;
    const names: Names = { topic, channel: 'ch', probeTopic: `${topic}.probe` };
    const safe = (server: Server): Promise<string[]> => runCase(c, server, names).catch((err: unknown) => [`HARNESS ERROR ${(err as Error).message}`]);
    const [t, o] = await Promise.all([safe(theirs), safe(ours)]);
    results.set(c.name, { theirs: t, ours: o });
  });
  return results;
}

function uniquePrefix(tag: string): string {
  return `${tag}-${process.pid}-${Date.now() % 1_000_000}`;
}

function ourServer(nsqd: NSQD): Server {
  return { label: 'ours', tcpAddress: nsqd.tcpAddress, httpAddress: nsqd.httpAddress };
}

function goServer(nsqd: NsqdProcess): Server {
  return { label: 'nsqd 1.3.0', tcpAddress: nsqd.tcpAddress, httpAddress: nsqd.httpAddress };
}

async function startOurs(extra: NsqdInput = {}): Promise<{ nsqd: NSQD; dataPath: string }> {
  const dataPath = mkdtempSync(join(tmpdir(), 'nsqd-protocol-'));
  const nsqd = new NSQD({
    tcpAddress: '127.0.0.1:0',
    httpAddress: '127.0.0.1:0',
    dataPath,
    broadcastAddress: '127.0.0.1',
    logger: silentLogger,
    ...extra,
  });
  await nsqd.start();
  return { nsqd, dataPath };
}

// ---- suites --------------------------------------------------------------------------------------

describeWithNsq(
  'protocol V2: our NSQD answers byte for byte like nsqd 1.3.0',
  () => {
    let go: NsqdProcess;
    let ours: NSQD;
    let oursData: string;
    let results: Map<string, Compared>;
    const cases = ALL_CASES.flatMap(([, c]) => c);

    beforeAll(async () => {
      // Our NSQD does not implement snappy (it always answers snappy:false), so nsqd runs with it off.
      go = await startNsqd({ args: [...GO_LIMIT_ARGS, '--snappy=false'] });
      ({ nsqd: ours, dataPath: oursData } = await startOurs(OUR_LIMITS));
      results = await compareAll(cases, goServer(go), ourServer(ours), uniquePrefix('pg'));
    }, 180_000);

    afterAll(async () => {
      await ours?.close();
      if (oursData) rmSync(oursData, { recursive: true, force: true });
      await stopAll();
    }, SETUP_TIMEOUT);

    it('has unique case names', () => {
      expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    });

    for (const [group, groupCases] of ALL_CASES) {
      describe(group, () => {
        for (const c of groupCases) {
          it(c.name, () => {
            const r = results.get(c.name)!;
            expect({ nsqd: r.theirs }).toEqual({ nsqd: c.golden });
            expect({ ours: r.ours }).toEqual({ ours: r.theirs });
          });
        }
      });
    }
  },
  ['nsqd'],
);

describeWithNsq(
  'protocol V2 with --tls-required=tcp-https: our NSQD answers like nsqd 1.3.0',
  () => {
    let cert: SelfSignedCert;
    let ours: NSQD;
    let oursData: string;
    let results: Map<string, Compared>;
    const tlsCases: ProtocolCase[] = [
      { name: 'PUB before TLS', send: (n) => [pub(n.topic)], golden: fatal('E_INVALID cannot PUB in current state (TLS required)') },
      { name: 'NOP before TLS', send: () => ['NOP\n'], golden: fatal('E_INVALID cannot NOP in current state (TLS required)') },
      { name: 'an unknown command before TLS', send: () => ['FOO\n'], golden: fatal('E_INVALID cannot FOO in current state (TLS required)') },
      {
        name: 'IDENTIFY without tls_v1, then PUB',
        send: (n) => [bytes(identify({ feature_negotiation: true }), pub(n.topic))],
        golden: [identifyReply(), ...fatal('E_INVALID cannot PUB in current state (TLS required)')],
      },
      { name: 'IDENTIFY without feature negotiation, then SUB', send: (n) => [bytes(identify({}), sub(n))], golden: [OK, ...fatal('E_INVALID cannot SUB in current state (TLS required)')] },
    ];

    beforeAll(async () => {
      cert = makeSelfSignedCert();
      const go = await startNsqd({
        args: [
          ...GO_LIMIT_ARGS,
          '--snappy=false',
          '--tls-required=tcp-https',
          `--tls-cert=${cert.certPath}`,
          `--tls-key=${cert.keyPath}`,
          // a cert makes nsqd open HTTPS, by default on 0.0.0.0:4152
          '--https-address=127.0.0.1:0',
        ],
      });
      ({ nsqd: ours, dataPath: oursData } = await startOurs({ ...OUR_LIMITS, tlsRequired: 'tcp-https', tlsCert: cert.certPath, tlsKey: cert.keyPath }));
      results = await compareAll(tlsCases, goServer(go), ourServer(ours), uniquePrefix('ptls'));
    }, 60_000);

    afterAll(async () => {
      await ours?.close();
      if (oursData) rmSync(oursData, { recursive: true, force: true });
      cert?.remove();
      await stopAll();
    }, SETUP_TIMEOUT);

    for (const c of tlsCases) {
      it(c.name, () => {
        const r = results.get(c.name)!;
        expect({ nsqd: r.theirs }).toEqual({ nsqd: c.golden });
        expect({ ours: r.ours }).toEqual({ ours: r.theirs });
      });
    }
  },
  ['nsqd'],
);

// ---- ours only ---------------------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so a failing fuzz run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random protocol-shaped garbage: command lines with odd params, lengths and bodies, and raw bytes. */
class Fuzzer {
  lines = 0;
  binaries = 0;
  private readonly rnd: () => number;

  constructor(seed: number) {
    this.rnd = prng(seed);
  }

  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  randomBytes(max: number): Buffer {
    const b = Buffer.alloc(1 + this.int(max));
    for (let i = 0; i < b.length; i++) b[i] = this.int(256);
    return b;
  }

  token(): string {
    switch (this.int(9)) {
      case 0:
        return '';
      case 1:
        return String(this.int(1_000_000));
      case 2:
        return String(-this.int(1000));
      case 3:
        return this.pick(['18446744073709551615', '99999999999999999999', '0', '2500', '-1', '3600001']);
      case 4:
        return 'f'.repeat(this.pick([15, 16, 17]));
      case 5:
        return `fz-${this.int(50)}${this.pick(['', '#ephemeral', '/', ':', '\xff', '\x00'])}`;
      case 6:
        return 'x'.repeat(this.int(100));
      case 7:
        return this.randomBytes(12).toString('latin1').replace(/\n/g, '');
      default:
        return this.pick(['ch', 'topic', 'fz', '#ephemeral', 'NOP']);
    }
  }

  length(): number {
    return this.pick([-1, 0, 1, 4, 16, 26, 100, 1024, 1025, 0x7fffffff, -0x80000000, this.int(300)]);
  }

  /** One command line, sometimes followed by a length and a body that may not match it. */
  item(): Buffer {
    if (this.int(8) === 0) {
      this.binaries++;
      return this.randomBytes(400);
    }
    this.lines++;
    const name = this.pick(['PUB', 'MPUB', 'DPUB', 'SUB', 'RDY', 'FIN', 'REQ', 'TOUCH', 'CLS', 'NOP', 'IDENTIFY', 'AUTH', 'pub', 'GET', '', 'X'.repeat(this.int(40))]);
    const params = Array.from({ length: this.int(4) }, () => this.token());
    const line = Buffer.from(`${[name, ...params].join(this.pick([' ', ' ', '  ']))}${this.pick(['\n', '\r\n', '\n', ''])}`, 'latin1');
    if (!['PUB', 'MPUB', 'DPUB', 'IDENTIFY', 'AUTH'].includes(name) || this.int(4) === 0) return line;
    if (name === 'IDENTIFY' && this.int(2) === 0) {
      const json = JSON.stringify({ feature_negotiation: this.int(2) === 0, heartbeat_interval: this.pick([-1, 0, 999, 1000, 'x']), msg_timeout: this.pick([0, 1, 1000, 1.5]), deflate: this.int(4) === 0 });
      return Buffer.concat([line, sized(json)]);
    }
    const len = this.length();
    const body = this.int(3) === 0 ? Buffer.alloc(0) : this.randomBytes(this.pick([10, 100, 2000]));
    return Buffer.concat([line, int32(len), body]);
  }
}

describe('our NSQD under malformed input', () => {
  let ours: NSQD;
  let oursData: string;

  beforeAll(async () => {
    ({ nsqd: ours, dataPath: oursData } = await startOurs());
  }, SETUP_TIMEOUT);

  afterAll(async () => {
    await ours?.close();
    if (oursData) rmSync(oursData, { recursive: true, force: true });
  }, SETUP_TIMEOUT);

  it(
    'keeps a producer and a consumer going while another client sends random garbage',
    async () => {
      const topic = uniquePrefix('fuzz-pair');
      const received = new Set<string>();
      const consumer = new Consumer({
        topic,
        channel: 'ch',
        nsqdTCPAddresses: [ours.tcpAddress],
        maxInFlight: 50,
        logger: silentLogger,
        handler: (msg) => {
          received.add(msg.body.toString());
        },
      });
      const producer = new Producer(ours.tcpAddress, { logger: silentLogger });
      const fuzzer = new Fuzzer(0x5eed);
      let fuzzing = true;
      const fuzzLoop = async (): Promise<void> => {
        while (fuzzing || fuzzer.lines < 3000) {
          const conn = await RawConn.open(ours.tcpAddress);
          try {
            const magic = fuzzer.int(10) === 0 ? fuzzer.randomBytes(4) : Buffer.from(MAGIC);
            const items = Array.from({ length: 5 + fuzzer.int(25) }, () => fuzzer.item());
            // some connections get everything in one write, others item by item
            if (fuzzer.int(2) === 0) conn.write(Buffer.concat([magic, ...items]));
            else await conn.send([magic, ...items], 0);
            await sleep(fuzzer.int(3) === 0 ? 20 : 1);
          } finally {
            conn.destroy();
          }
        }
      };
      try {
        await consumer.start();
        const fuzzers = [fuzzLoop(), fuzzLoop(), fuzzLoop()];
        const expected: string[] = [];
        for (let i = 0; i < 1000; i += 10) {
          const batch = Array.from({ length: 10 }, (_, k) => `m-${i + k}`);
          expected.push(...batch);
          await Promise.all(batch.map((b) => producer.publish(topic, b)));
        }
        await waitFor(() => received.size === 1000, 30_000, 'all 1000 messages consumed');
        fuzzing = false;
        await Promise.all(fuzzers);
        expect([...received].sort()).toEqual(expected.sort());
        expect(fuzzer.lines).toBeGreaterThanOrEqual(3000);
        expect(fuzzer.binaries).toBeGreaterThan(0);
      } finally {
        fuzzing = false;
        await consumer.close();
        await producer.close();
      }

      // still serving, and the fuzzing connections are gone
      const after = await RawConn.open(ours.tcpAddress);
      try {
        after.write(bytes(MAGIC, pub(topic, 'after')));
        expect(describeFrame(await after.next())).toBe(OK);
      } finally {
        after.destroy();
      }
      await waitFor(() => ours.clients.size === 0, 5000, 'every client connection forgotten');
      const stats = await nsqdStats(ourServer(ours), topic);
      expect(stats.topics.find((t) => t.topic_name === topic)?.message_count).toBe(1001);
    },
    120_000,
  );

  it(
    'answers lengths of 0x7fffffff with the size error, without allocating them',
    async () => {
      const topic = uniquePrefix('huge');
      const claims: Array<[Buffer, string]> = [
        [bytes(cmd('PUB', topic), int32(0x7fffffff), 'x'.repeat(1000)), 'E_BAD_MESSAGE PUB message too big 2147483647 > 1048576'],
        [bytes(cmd('DPUB', topic, '10'), int32(0x7fffffff)), 'E_BAD_MESSAGE DPUB message too big 2147483647 > 1048576'],
        [bytes(cmd('MPUB', topic), int32(0x7fffffff)), 'E_BAD_BODY MPUB body too big 2147483647 > 5242880'],
        [bytes(cmd('MPUB', topic), int32(100), int32(0x7fffffff)), 'E_BAD_BODY MPUB invalid message count 2147483647'],
        [bytes(cmd('MPUB', topic), int32(100), int32(1), int32(0x7fffffff)), 'E_BAD_MESSAGE MPUB message too big 2147483647 > 1048576'],
        [bytes(cmd('IDENTIFY'), int32(0x7fffffff)), 'E_BAD_BODY IDENTIFY body too big 2147483647 > 5242880'],
        [bytes('AUTH\n', int32(0x7fffffff)), 'E_BAD_BODY AUTH body too big 2147483647 > 5242880'],
      ];
      const rssBefore = process.memoryUsage().rss;
      const conns = await Promise.all(Array.from({ length: 70 }, () => RawConn.open(ours.tcpAddress)));
      try {
        conns.forEach((c, i) => c.write(bytes(MAGIC, claims[i % claims.length]![0])));
        await Promise.all(conns.map((c) => c.settle()));
        conns.forEach((c, i) => expect(c.outcome()).toEqual(fatal(claims[i % claims.length]![1])));
      } finally {
        conns.forEach((c) => c.destroy());
      }
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(256 * 1024 * 1024);
    },
    60_000,
  );

  it(
    'waits for bodies claimed at 0x7fffffff (within raised limits) without allocating them up front',
    async () => {
      const { nsqd: big, dataPath } = await startOurs({ maxMsgSize: 0x7fffffff, maxBodySize: 0x7fffffff });
      const conns: RawConn[] = [];
      try {
        const topic = uniquePrefix('claim');
        const claims = [
          bytes(cmd('PUB', topic), int32(0x7fffffff)),
          bytes(cmd('DPUB', topic, '10'), int32(0x7fffffff)),
          bytes(cmd('IDENTIFY'), int32(0x7fffffff)),
          bytes(cmd('MPUB', topic), int32(0x7fffffff), int32(400_000_000), int32(0x7fffffff)),
        ];
        const rssBefore = process.memoryUsage().rss;
        for (let i = 0; i < 40; i++) {
          const c = await RawConn.open(big.tcpAddress);
          conns.push(c);
          c.write(bytes(MAGIC, claims[i % claims.length]!, Buffer.alloc(64 * 1024, 0x61)));
        }
        await Promise.all(conns.map((c) => c.settle()));
        // 40 claims of 2 GiB each: a server that allocated them would be far past this
        expect(process.memoryUsage().rss - rssBefore).toBeLessThan(256 * 1024 * 1024);
        for (const c of conns) expect(c.outcome()).toEqual([]);
        // and it still serves others
        const other = await RawConn.open(big.tcpAddress);
        conns.push(other);
        other.write(bytes(MAGIC, pub(topic, 'fine')));
        expect(describeFrame(await other.next())).toBe(OK);
      } finally {
        conns.forEach((c) => c.destroy());
        await big.close();
        rmSync(dataPath, { recursive: true, force: true });
      }
    },
    60_000,
  );
});
