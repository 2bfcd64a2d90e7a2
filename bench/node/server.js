// The Node.js peers of bench/shutdown.sh (a benchmark, never run by CI).
//
//   node server.js PORT MODE
//
// Serves what lameduck-hello serves for the benchmark, on 127.0.0.1:PORT: GET / answers
// "Hello, World!\n"; GET /delay?ms=N answers "waited N ms\n" after N ms. Keep-alive idle timeout
// 60 s, as lameduck's default. On SIGTERM it stops the way MODE says:
//   close        server.close()  (Node 19+ also closes the connections idle at that moment)
//   closeall     server.close(); server.closeAllConnections()
//   terminator   http-terminator: terminate(), gracefulTerminationTimeout 30 s
//   stoppable    stoppable(server, 30 s): server.stop()
// 30 s is lameduck-hello's default --drain-timeout. The process exits by itself once nothing is
// left on its event loop; the benchmark notes when.
'use strict';
const http = require('http');

const port = Number(process.argv[2]);
const mode = process.argv[3] || 'close';
const hello = Buffer.from('Hello, World!\n');

function answer(res, body) {
  res.statusCode = 200;
  res.setHeader('Content-Type', 'text/plain');
  res.setHeader('Content-Length', body.length);
  res.end(body);
}

let server = http.createServer((req, res) => {
  if (req.url.startsWith('/delay')) {
    const ms = Number(new URL(req.url, 'http://x').searchParams.get('ms') || 0);
    setTimeout(() => answer(res, Buffer.from(`waited ${ms} ms\n`)), ms);
    return;
  }
  answer(res, hello);
});
server.keepAliveTimeout = 60000;

let stop;
switch (mode) {
  case 'close':
    stop = () => server.close();
    break;
  case 'closeall':
    stop = () => {
      server.close();
      server.closeAllConnections();
    };
    break;
  case 'terminator': {
    const { createHttpTerminator } = require('http-terminator');
    const terminator = createHttpTerminator({ server, gracefulTerminationTimeout: 30000 });
    stop = () => terminator.terminate();
    break;
  }
  case 'stoppable':
    server = require('stoppable')(server, 30000);
    stop = () => server.stop();
    break;
  default:
    console.error(`server.js: unknown mode ${mode}`);
    process.exit(2);
}

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  stop();
});

server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port} (${mode})`));
