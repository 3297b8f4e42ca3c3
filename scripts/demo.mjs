// The sample in one command (`npm start`, after `npm run build`): starts the broker (nsqd +
// nsqlookupd + admin page, every message on disk), then order-service and points-service on
// embedded defaults (sql.js files in .data/), prefixes their log lines, prints the URLs and a curl
// line. Ctrl-C (or SIGTERM) stops the services, then the broker, each gracefully and by PID; a
// second Ctrl-C kills them. The children run in process groups of their own so that the
// terminal's Ctrl-C reaches only this launcher, which decides the order.
//
// Every variable the apps read passes through (ORDER_SERVICE_ADDRESS, ORDER_DB_URL,
// POINTS_SERVICE_ADDRESS, POINTS_DB_URL, HISTORY_DB_URL, NSQD_*, BROKER_*…). NSQ_NSQD_TCP_ADDRESSES
// and NSQ_LOOKUPD_HTTP_ADDRESSES default to the broker's actual addresses.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 25_000;
const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code, text) => (color ? `\u001b[${code}m${text}\u001b[0m` : text);
const say = (text) => process.stdout.write(`${text}\n`);

/** @type {Array<{name: string, child: import('node:child_process').ChildProcess, log: string, exited: Promise<{code: number|null, signal: string|null}>, done: boolean}>} */
const apps = [];
let stopping = false;

function start(name, app, args, env, tint) {
  const main = join(root, 'dist', 'apps', app, 'src', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first (npm start does)`);
  const child = spawn(process.execPath, [main, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const entry = { name, child, log: '', done: false, exited: undefined };
  const prefix = paint(tint, `[${name}]`.padEnd(17));
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream.setEncoding('utf8').on('data', (chunk) => {
      entry.log += chunk;
      if (entry.log.length > 1_000_000) entry.log = entry.log.slice(-500_000);
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) process.stdout.write(`${prefix} ${line}\n`);
    });
    stream.on('end', () => partial && process.stdout.write(`${prefix} ${partial}\n`));
  }
  entry.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      entry.done = true;
      resolve({ code, signal });
      if (!stopping) {
        process.stderr.write(`${paint('31', `${name} exited (code ${code}, signal ${signal})`)}: stopping the others\n`);
        void stopAll(1);
      }
    });
    child.once('error', (err) => {
      entry.done = true;
      process.stderr.write(`cannot start ${name}: ${err.message}\n`);
      resolve({ code: null, signal: null });
      if (!stopping) void stopAll(1);
    });
  });
  apps.push(entry);
  return entry;
}

/** Resolves with the first capture group of `pattern` once the app logs it. */
async function waitFor(entry, pattern, timeoutMs = START_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const match = pattern.exec(entry.log);
    if (match) return match[1] ?? match[0];
    if (entry.done) throw new Error(`${entry.name} exited before it was ready`);
    if (Date.now() > deadline) throw new Error(`${entry.name} not ready within ${timeoutMs} ms (waiting for ${pattern})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A wildcard listen address is dialled through loopback. */
function dialable(address) {
  return address.replace(/^(0\.0\.0\.0|\[::\]|::)(?=:\d+$)/, '127.0.0.1');
}

async function stopOne(entry) {
  if (entry.done) return;
  try {
    process.kill(entry.child.pid, 'SIGTERM');
  } catch {
    return;
  }
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve('late'), STOP_TIMEOUT_MS);
  });
  const outcome = await Promise.race([entry.exited, late]);
  clearTimeout(timer);
  if (outcome === 'late') {
    process.stderr.write(`${entry.name} did not stop within ${STOP_TIMEOUT_MS} ms: killing it\n`);
    try {
      process.kill(entry.child.pid, 'SIGKILL');
    } catch {
      // gone already
    }
    await entry.exited;
  }
}

/** The services first (they finish what they hold), then the broker. */
async function stopAll(code) {
  if (stopping) return;
  stopping = true;
  const broker = apps.find((a) => a.name === 'broker');
  await Promise.all(apps.filter((a) => a !== broker).map(stopOne));
  if (broker) await stopOne(broker);
  process.exit(code);
}

let firstSignalAt = 0;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    // npm forwards the terminal's Ctrl-C that reached us too: one keypress may arrive twice
    if (firstSignalAt !== 0 && Date.now() - firstSignalAt < 1000) return;
    if (firstSignalAt !== 0) {
      process.stderr.write(`second ${signal}: killing everything\n`);
      for (const a of apps) {
        try {
          if (!a.done) process.kill(a.child.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      process.exit(1);
    }
    firstSignalAt = Date.now();
    say(paint('33', `\n${signal}: stopping order-service and points-service, then the broker…`));
    void stopAll(0);
  });
}

async function main() {
  const broker = start('broker', 'broker', ['--data-path=.data/broker', '--mem-queue-size=0'], process.env, '36');
  await waitFor(broker, /\[broker\] ready/);
  const nsqdTcp = dialable(await waitFor(broker, /\[nsqd\] TCP: listening on (\S+)/));
  const lookupdHttp = dialable(await waitFor(broker, /\[nsqlookupd\] HTTP: listening on (\S+)/));
  let admin;
  try {
    admin = `http://${dialable(await waitFor(broker, /\[admin\] HTTP: listening on (\S+)/, 10_000))}`;
  } catch {
    admin = undefined; // --admin-address=off
  }

  // order-service publishes to the nsqd, points-service discovers it through the lookupd
  const orders = start('order-service', 'order-service', [], { ...process.env, NSQ_NSQD_TCP_ADDRESSES: process.env.NSQ_NSQD_TCP_ADDRESSES || nsqdTcp }, '32');
  const points = start('points-service', 'points-service', [], { ...process.env, NSQ_LOOKUPD_HTTP_ADDRESSES: process.env.NSQ_LOOKUPD_HTTP_ADDRESSES || lookupdHttp }, '35');
  const ordersUrl = await waitFor(orders, /order-service: listening on (http:\/\/\S+)/);
  const pointsUrl = await waitFor(points, /points-service: listening on (http:\/\/\S+)/);
  const o = ordersUrl.replace('//0.0.0.0:', '//127.0.0.1:');
  const p = pointsUrl.replace('//0.0.0.0:', '//127.0.0.1:');

  say('');
  say(paint('1', 'The sample is running (Ctrl-C stops it):'));
  say(`  order-service    ${o}   POST /orders, GET /orders/:id`);
  say(`  points-service   ${p}   GET /users/:id/points`);
  say(`  admin page       ${admin ?? '(off)'}   every message's history`);
  say(`  nsqd             ${nsqdTcp} (TCP); nsqlookupd http://${lookupdHttp}`);
  say('');
  say('Place an order, then see the points and the message on the admin page (search for the eventId):');
  say(`  curl -s -X POST ${o}/orders -H 'content-type: application/json' -d '{"userId":"u1","amountCents":1250}'`);
  say(`  curl -s ${p}/users/u1/points`);
  say('');
}

main().catch((err) => {
  process.stderr.write(`${paint('31', 'npm start failed')}: ${err.message}\n`);
  void stopAll(1);
});
