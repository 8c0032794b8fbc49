// bench/node_ws_echo.js: Node's ws echo server for bench/http-bench.sh.
// usage: node node_ws_echo.js PORT   (ws from t/node/node_modules)
'use strict';
const path = require('path');
const { WebSocketServer } = require(path.join(__dirname, '..', 't', 'node',
  'node_modules', 'ws'));

const port = Number(process.argv[2]);
const wss = new WebSocketServer({ host: '127.0.0.1', port, backlog: 4096,
  perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => console.error(`node_ws_echo on 127.0.0.1:${port}`));
