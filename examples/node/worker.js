// A Node.js worker for the lameduck supervisor: it serves on the listening sockets the
// supervisor passes, says when it is ready, and on SIGTERM drains without failing a request.
// Plain Node.js (18 or later), no dependency.
//
//   lameduck run --instances 4 --listen 127.0.0.1:8080 --ready fd -- node examples/node/worker.js
//   node examples/node/worker.js --port 8080      # alone, without a supervisor
//
// Options: --ready-fd N (the ready pipe's descriptor; by default the environment's
// LAMEDUCK_READY_FD, which the supervisor sets), --drain-timeout SECONDS (30), --idle-grace
// SECONDS (5), --port PORT (only without LISTEN_FDS; 127.0.0.1).
// GET / answers "Hello, World!\n" as lameduck-hello does; GET /delay?ms=N answers after N ms.
//
// Sockets. The supervisor binds the listening sockets once and passes them to every worker of
// every generation by systemd's protocol: LISTEN_FDS=n sockets from descriptor 3 on, for the
// process LISTEN_PID. `server.listen({fd: 3})` serves on the inherited socket. Every worker
// accepts from the same kernel queue, so a connection queued there is accepted by whichever
// worker comes first, and one that stops accepting leaves the queue to the others: nothing
// queued is lost when a worker goes.
//
// Readiness. With `--ready fd` the supervisor gives the worker the write end of a pipe as the
// first descriptor after the sockets (4 with one socket; `--ready-fd N` chooses it) and says
// which in LAMEDUCK_READY_FD; one write of "\n" once every socket is listening tells it the
// worker is ready (s6's convention), and the descriptor is closed after it. The supervisor stops
// an old worker only after its replacement is ready.
//
// Draining on SIGTERM (or SIGINT; a second one stops at once, exit 1):
//   1. Stop accepting: the listening socket is closed in this process only; the supervisor and
//      the other workers keep it open, so connections keep arriving and are accepted by them.
//      This uses net.Server's close(), not http.Server's: since Node.js 19, http.Server's
//      close() also closes the connections that are idle at that moment, and a client may have
//      sent its next request on one of them at that very moment (it is on the wire or in the
//      socket buffer, not yet read): that client sees its connection end, or reset, with no
//      answer. That is the race that costs PM2 apps their failed requests on every reload.
//   2. Every response from now on says `Connection: close` (a response whose head was already
//      written before the drain goes out as it is), and Node.js closes the connection right
//      after it: the client knows, before it sends anything else, that it must open a new
//      connection, which another worker accepts.
//   3. A connection with no request in flight (idle keep-alive, or accepted but silent) is left
//      alone: its next request is answered with `Connection: close` (step 2). Only when the
//      idle grace (--idle-grace) has passed are the ones still idle closed, by a half-close
//      (FIN), so that a request racing the close sees a clean end of stream, which HTTP
//      clients take as "retry on a new connection", rather than a reset.
//   4. The process exits 0 as soon as the last connection is gone, or 3 at the drain deadline
//      (--drain-timeout), when whatever is left is destroyed. Keep the supervisor's kill
//      timeout longer than the drain timeout.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');

const name = 'worker.js';
const log = (line) => process.stderr.write(`${name}[${process.pid}]: ${line}\n`);

// ------------------------------------------------------------------------------ options

function options(argv) {
  const o = {
    readyFd: process.env.LAMEDUCK_READY_FD,
    drainTimeout: 30,
    idleGrace: 5,
    port: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(0, eq) : a;
    const value = () => (eq > 0 ? a.slice(eq + 1) : argv[++i]);
    if (key === '--ready-fd') o.readyFd = value();
    else if (key === '--drain-timeout') o.drainTimeout = Number(value());
    else if (key === '--idle-grace') o.idleGrace = Number(value());
    else if (key === '--port') o.port = Number(value());
    else usage(`unknown option ${a}`);
  }
  if (o.readyFd !== undefined && o.readyFd !== '') {
    o.readyFd = Number(o.readyFd);
    if (!Number.isInteger(o.readyFd) || o.readyFd < 0) usage('--ready-fd must be a descriptor');
  } else {
    o.readyFd = undefined;
  }
  for (const k of ['drainTimeout', 'idleGrace']) {
    if (!Number.isFinite(o[k]) || o[k] < 0) usage(`--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} must be seconds`);
  }
  if (o.port !== undefined && !(Number.isInteger(o.port) && o.port >= 0 && o.port < 65536)) {
    usage('--port must be a port number');
  }
  return o;
}

function usage(why) {
  process.stderr.write(`${name}: ${why}\n(see the comment at the top of examples/node/worker.js)\n`);
  process.exit(2);
}

// The descriptors passed by the supervisor (systemd's LISTEN_FDS protocol), or none. The
// variables are removed so that a program this worker starts does not take them for its own.
function passedSockets() {
  const count = Number(process.env.LISTEN_FDS || 0);
  const pid = process.env.LISTEN_PID;
  delete process.env.LISTEN_FDS;
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDNAMES;
  if (!Number.isInteger(count) || count <= 0) return [];
  if (pid !== undefined && Number(pid) !== process.pid) {
    // They were meant for another process: a wrapper that started node without exec'ing it.
    log(`LISTEN_FDS is for pid ${pid}, not this one; start node with exec (sh -c 'exec node ...')`);
    process.exit(2);
  }
  return Array.from({ length: count }, (_, i) => 3 + i);
}

// ------------------------------------------------------------------------------ serving

const o = options(process.argv.slice(2));
const hello = Buffer.from('Hello, World!\n');
let draining = false;
// Every open connection, with the responses in flight on it.
const connections = new Map(); // socket -> { inFlight: Set<ServerResponse>, idleSince: number }

function send(res, status, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain');
  res.setHeader('Content-Length', body.length);
  if (draining) res.setHeader('Connection', 'close');
  res.end(body);
}

function handle(req, res) {
  // A request that raced the half-close of an idle connection (step 3 below) cannot be
  // answered: the client sees the end of stream and retries on a new connection.
  if (req.socket.writableEnded) return undefined;
  const state = connections.get(req.socket);
  if (state) {
    state.inFlight.add(res);
    res.on('close', () => {
      state.inFlight.delete(res);
      if (state.inFlight.size === 0) state.idleSince = Date.now();
    });
  }
  const url = new URL(req.url, 'http://x');
  if (req.method === 'GET' && url.pathname === '/') return send(res, 200, hello);
  if (req.method === 'GET' && url.pathname === '/delay') {
    const ms = Math.min(Math.max(Number(url.searchParams.get('ms')) || 0, 0), 3_600_000);
    const timer = setTimeout(() => send(res, 200, Buffer.from(`waited ${ms} ms\n`)), ms);
    res.on('close', () => clearTimeout(timer));
    return undefined;
  }
  return send(res, 404, Buffer.from('not found\n'));
}

function track(socket) {
  connections.set(socket, { inFlight: new Set(), idleSince: Date.now() });
  socket.on('close', () => {
    connections.delete(socket);
    if (draining && connections.size === 0) finish(0);
  });
}

function newServer() {
  const server = http.createServer(handle);
  // As lameduck's default: Node.js's 5 s would close idle keep-alive connections itself, each
  // such close racing the client's next request.
  server.keepAliveTimeout = 60_000;
  server.on('connection', track);
  server.on('error', (err) => {
    log(`cannot serve: ${err.message}`);
    process.exit(1);
  });
  return server;
}

const fds = passedSockets();
const servers = [];
let listening = 0;
const targets = fds.length > 0 ? fds.map((fd) => ({ fd })) : [{ port: o.port ?? 8080, host: '127.0.0.1' }];
for (const target of targets) {
  const server = newServer();
  servers.push(server);
  server.listen(target, () => {
    if (++listening === targets.length) ready();
  });
}

function ready() {
  const where = fds.length > 0 ? `descriptor${fds.length > 1 ? 's' : ''} ${fds.join(', ')}`
    : `http://127.0.0.1:${servers[0].address().port}`;
  log(`serving on ${where} (worker ${process.env.LAMEDUCK_WORKER ?? '-'}, generation ` +
      `${process.env.LAMEDUCK_GENERATION ?? '-'})`);
  if (o.readyFd !== undefined) {
    try {
      fs.writeSync(o.readyFd, '\n');
      fs.closeSync(o.readyFd);
    } catch (err) {
      log(`cannot say ready on descriptor ${o.readyFd}: ${err.message}`);
      process.exit(1);
    }
  } else if (process.env.NOTIFY_SOCKET) {
    // Node.js cannot send a datagram to a Unix socket without an addon: use --ready-fd.
    log('NOTIFY_SOCKET is set but Node.js cannot write to it; run the supervisor with --ready-fd');
  }
}

// ------------------------------------------------------------------------------ draining

let drainStarted = 0;
let graceTimer;
let deadlineTimer;

function drain(signal) {
  if (draining) {
    log(`${signal} again: stopping at once`);
    for (const socket of connections.keys()) socket.destroy();
    process.exit(1);
  }
  draining = true;
  drainStarted = Date.now();
  // 1. Stop accepting, without closing any connection (net.Server's close, see the top).
  for (const server of servers) net.Server.prototype.close.call(server);
  // 2. Responses whose head is not written yet will say Connection: close (send() above, and
  //    here for those in flight, answered later).
  let idle = 0;
  for (const state of connections.values()) {
    for (const res of state.inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
    if (state.inFlight.size === 0) idle++;
  }
  log(`${signal}: draining ${connections.size} connections (${idle} idle), ` +
      `idle grace ${o.idleGrace} s, deadline ${o.drainTimeout} s`);
  if (connections.size === 0) return finish(0);
  // 3. Connections still idle when the grace ends are closed by a half-close.
  graceTimer = setTimeout(closeIdle, o.idleGrace * 1000);
  // 4. The deadline.
  deadlineTimer = setTimeout(() => finish(3), o.drainTimeout * 1000);
  return undefined;
}

function closeIdle() {
  let closed = 0;
  for (const [socket, state] of connections) {
    if (state.inFlight.size === 0 && !socket.writableEnded) {
      socket.end(); // FIN; the client's end of stream (or the deadline) then closes it
      closed++;
    }
  }
  if (closed > 0) log(`idle grace over: closed ${closed} idle connections`);
}

function finish(status) {
  clearTimeout(graceTimer);
  clearTimeout(deadlineTimer);
  const left = connections.size;
  for (const socket of connections.keys()) socket.destroy();
  log(status === 0 ? `drained in ${Date.now() - drainStarted} ms`
    : `drain deadline: ${left} connections closed by force`);
  process.exit(status);
}

process.on('SIGTERM', () => drain('SIGTERM'));
process.on('SIGINT', () => drain('SIGINT'));
