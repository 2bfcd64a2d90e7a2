// Chunked both ways through one keep-alive socket: uploads a body in pieces with
// Transfer-Encoding: chunked to POST /echo, then reads a streamed (chunked) GET /stream, then
// repeats, and reports:
//   echo_status.R N        status of the upload's answer in round R (0 or 1)
//   echo_ok.R 0|1          the echoed body is what was uploaded
//   stream_status.R N      status of the streamed answer
//   stream_encoding.R X    its Transfer-Encoding header
//   stream_body.R TEXT     its body, JSON-quoted
//   sockets N              distinct sockets used (1 when keep-alive works)
// Usage: node chunked.js BASE_URL   (https:// through Node's https module, trusting
// NODE_EXTRA_CA_CERTS)
'use strict';

const base = process.argv[2];
const http = require(new URL(base).protocol === 'https:' ? 'https' : 'http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const sockets = new Set();

function request(method, path, pieces) {
  return new Promise((resolve, reject) => {
    const headers = pieces ? { 'Transfer-Encoding': 'chunked', 'Content-Type': 'text/plain' } : {};
    const req = http.request(new URL(path, base), { method, agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('socket', (s) => sockets.add(s));
    req.on('error', reject);
    if (!pieces) return req.end();
    // Each piece goes out on its own turn of the event loop: separate chunks on the wire.
    let i = 0;
    const next = () => {
      if (i === pieces.length) return req.end();
      req.write(pieces[i++]);
      setImmediate(next);
    };
    next();
  });
}

async function main() {
  const pieces = Array.from({ length: 20 }, (_, i) => `piece ${i} ${'z'.repeat(i * 100)}\n`);
  const lines = [];
  for (let round = 0; round < 2; ++round) {
    const echo = await request('POST', '/echo', pieces);
    lines.push(`echo_status.${round} ${echo.status}`);
    lines.push(`echo_ok.${round} ${echo.body === pieces.join('') ? 1 : 0}`);
    const stream = await request('GET', '/stream?chunks=4&interval_ms=5');
    lines.push(`stream_status.${round} ${stream.status}`);
    lines.push(`stream_encoding.${round} ${stream.headers['transfer-encoding']}`);
    lines.push(`stream_body.${round} ${JSON.stringify(stream.body)}`);
  }
  lines.push(`sockets ${sockets.size}`);
  console.log(lines.join('\n'));
  agent.destroy();
}

main().catch((e) => {
  console.error(`chunked.js: ${e.stack || e}`);
  process.exit(1);
});
