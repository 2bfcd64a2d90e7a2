// The PM2 peer of bench/reload.sh (a benchmark, never run by CI): a Node.js app that starts and
// stops the way PM2's documentation recommends ("Graceful Start/Shutdown"), run in cluster mode
// by pm2.config.js.
//
// - Graceful start: with wait_ready, PM2 counts the app as online (and goes on with a reload)
//   only once it calls process.send('ready'), here once the server listens.
// - Graceful stop: PM2 sends SIGINT to the old instance after its replacement is ready; the app
//   calls server.close() and exits in its callback, once its connections have ended (Node.js 19
//   and later also close the connections idle at that moment). PM2 kills it with SIGKILL if it
//   is still there after kill_timeout.
//
// It serves what lameduck-hello and examples/node/worker.js serve: GET / answers
// "Hello, World!\n". The port comes from the environment (PORT, set in pm2.config.js); in
// cluster mode the PM2 daemon holds the listening socket and hands connections to the
// instances.
'use strict';
const http = require('http');

const port = Number(process.env.PORT || 8080);
const hello = Buffer.from('Hello, World!\n');

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': hello.length });
  res.end(hello);
});

server.listen(port, '127.0.0.1', () => {
  // Here we send the ready signal to PM2 (wait_ready).
  if (process.send) process.send('ready');
});

process.on('SIGINT', () => {
  server.close(() => {
    process.exit(0);
  });
});
