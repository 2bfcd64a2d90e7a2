// PM2's ecosystem file for bench/reload.sh (a benchmark, never run by CI): pm2_app.js in cluster
// mode with 4 instances, graceful start (wait_ready: the app says 'ready') and stop (SIGINT,
// then SIGKILL after kill_timeout), as PM2's documentation recommends. The port and the number
// of instances come from the environment of the `pm2 start` that reads this file.
'use strict';
const path = require('path');

module.exports = {
  apps: [
    {
      name: 'reload-bench',
      script: path.join(__dirname, 'pm2_app.js'),
      exec_mode: 'cluster',
      instances: Number(process.env.PM2_BENCH_INSTANCES || 4),
      wait_ready: true,
      listen_timeout: 10000,
      kill_timeout: 5000,
      autorestart: true,
      env: { PORT: String(process.env.PM2_BENCH_PORT || 8080) },
    },
  ],
};
