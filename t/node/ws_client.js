// t/node/ws_client.js: Node's ws as an outside WebSocket client for the
// 7xx tests. Usage: node ws_client.js URL
// Prints one line per check, as t/py/ws_client.py does.
'use strict';
const WebSocket = require('ws');

const ws = new WebSocket(process.argv[2]);
const steps = [];
let next = null;
ws.on('message', (data, isBinary) => next(data, isBinary));
const recv = () => new Promise((resolve) => {
  next = (data, isBinary) => resolve({ data, isBinary });
});

ws.on('open', async () => {
  ws.send('h\u00e9llo \u2713');
  let m = await recv();
  console.log('text', m.data.toString());
  ws.send(Buffer.from([0, 1, 255]));
  m = await recv();
  console.log('binary', m.isBinary ? 'bytes' : 'str', m.data.toString('hex'));
  ws.send('x'.repeat(200000));
  m = await recv();
  console.log('large', m.data.length);
  ws.send('frag', { fin: false });
  ws.send('ment', { fin: false });
  ws.send('\u00e9d', { fin: true });
  m = await recv();
  console.log('fragmented', m.data.toString());
  ws.once('pong', () => {
    console.log('pong');
    ws.close(1000);
  });
  ws.ping('are you there');
});
ws.on('close', (code) => {
  console.log('closed', code);
  process.exit(0);
});
ws.on('error', (e) => {
  console.log('error', e.message);
  process.exit(1);
});
setTimeout(() => { console.log('timeout'); process.exit(2); }, 30000);
