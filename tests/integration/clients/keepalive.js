// Sends COUNT requests for PATH through one keep-alive agent of at most MAX_SOCKETS sockets,
// one after another (MODE "sequential") or all at once (MODE "concurrent"), and reports:
//   requests N      responses received
//   ok N            responses with status 200
//   sockets N       distinct sockets the requests went out on
//   peers N         distinct client ports the server saw (the body of /peer)
//   bad TEXT        the first unexpected answer, if any
// Usage: node keepalive.js BASE_URL PATH COUNT MAX_SOCKETS MODE
// An https:// BASE_URL goes through Node's https module (trusting NODE_EXTRA_CA_CERTS).
'use strict';

const [base, path, countText, maxText, mode] = process.argv.slice(2);
const count = Number(countText);
const url = new URL(path, base);
const http = require(url.protocol === 'https:' ? 'https' : 'http');
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(maxText) });
const sockets = new Set();

function get() {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', reject);
    });
    req.on('socket', (s) => sockets.add(s));
    req.on('error', reject);
  });
}

async function main() {
  const results = [];
  if (mode === 'concurrent') {
    results.push(...await Promise.all(Array.from({ length: count }, get)));
  } else {
    for (let i = 0; i < count; ++i) results.push(await get());
  }
  const peers = new Set(results.map((r) => r.body));
  const bad = results.find((r) => r.status !== 200);
  const lines = [
    `requests ${results.length}`,
    `ok ${results.filter((r) => r.status === 200).length}`,
    `sockets ${sockets.size}`,
    `peers ${peers.size}`,
  ];
  if (bad) lines.push(`bad ${bad.status} ${JSON.stringify(bad.body)}`);
  console.log(lines.join('\n'));
  agent.destroy();
}

main().catch((e) => {
  console.error(`keepalive.js: ${e.stack || e}`);
  process.exit(1);
});
