// The Node.js peer of bench/restart.sh (a benchmark, never run by CI): a program that replaces
// its HTTP server on the same port while it runs, the way Node.js programs commonly do it.
//
//   node restart_server.js [PORT]
//
// Listens on 127.0.0.1:PORT (0, the default: the kernel's choice) and prints
// "listening on http://127.0.0.1:PORT" once. GET / answers "generation N\n"; GET /next answers
// "generation N ends\n" and replaces the server: the pattern of a well-known answer to "how do
// I shut down a Node.js server immediately" (Stack Overflow question 14626636, the answer that
// restarts an HTTPS service after renewing a certificate):
//
//   server.close(callback);
//   setImmediate(function(){server.emit('close')});
//
// close() frees the port at once, but its callback would wait for every open connection to
// end; emitting 'close' on the next turn of the loop runs the callback right away, and the
// callback starts a new server listening on the same port. Open connections stay with the old
// server, as in that answer, which ends no socket itself (Node.js 19+'s close() does close the
// connections idle at that moment). Keep-alive idle timeout 60 s, as lameduck's default and
// bench/node/server.js. The process runs until it is stopped (the benchmark sends SIGTERM to
// its pid).
'use strict';
const http = require('http');

let port = Number(process.argv[2] || 0);
let generation = 0;

function answer(res, text) {
  const body = Buffer.from(text);
  res.statusCode = 200;
  res.setHeader('Content-Type', 'text/plain');
  res.setHeader('Content-Length', body.length);
  res.end(body);
}

function start() {
  const mine = ++generation;
  const server = http.createServer((req, res) => {
    if (req.url === '/next') {
      answer(res, `generation ${mine} ends\n`);
      if (server.listening) {
        // The seed's pattern, word for word; the callback starts the next server.
        server.close(start);
        setImmediate(function () { server.emit('close'); });
      }
      return;
    }
    answer(res, `generation ${mine}\n`);
  });
  server.keepAliveTimeout = 60000;
  server.on('error', (err) => {
    console.error(`restart_server.js: generation ${mine}: ${err.message}`);
    process.exit(1);
  });
  server.listen(port, '127.0.0.1', () => {
    if (mine === 1) {
      port = server.address().port;
      console.log(`listening on http://127.0.0.1:${port}`);
    } else {
      console.error(`generation ${mine} listening on 127.0.0.1:${port}`);
    }
  });
}

start();
