#!/usr/bin/env node
// Interop with Node's `ws` (Debian node-ws, or npm), a peer nobody here
// wrote:
//
//   client  new WebSocket()          ->  `gust serve --echo`
//   server  new WebSocketServer()    <-  `gust connect --echo`
//
// usage: node node_peers.js client|server GUST [--deflate]
//
// Echo of text and binary messages from 0 B to 16 MiB, fragmented messages
// (ws streams with fin=false), ping/pong, the closing handshake; for the
// client, graceful shutdown of the server on SIGTERM (1001, exit 0). Ends
// with "N passed, M failed"; exits 77 (skip) without the module.
'use strict';
const { spawn } = require('child_process');
const path = require('path');
let WebSocket, WebSocketServer;
try {
  ({ WebSocket, WebSocketServer } = require('ws'));
} catch (e) {
  console.log('SKIP: the ws module is not installed (Debian node-ws)');
  process.exit(77);
}

const MAX = 16 * 1024 * 1024;
const SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, MAX];
let passed = 0, failed = 0;
function check(ok, what) {
  if (ok) passed++; else failed++;
  console.log((ok ? 'ok   ' : 'FAIL ') + what);
}
function textPayload(n) {
  let block = '';
  for (let i = 0; i < 4096; i++) block += String.fromCharCode(97 + (i * 7) % 26);
  return block.repeat(Math.ceil(n / 4096) || 0).slice(0, n);
}
function binaryPayload(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31) & 0xff;
  return b;
}
function withTimeout(p, ms, what) {
  return Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error('timeout: ' + what)), ms))]);
}

// A queue of received messages over one socket.
function inbox(ws) {
  const queue = [], waiters = [];
  ws.on('message', (data, isBinary) => {
    const m = { data, isBinary };
    if (waiters.length) waiters.shift()(m); else queue.push(m);
  });
  return () => queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r));
}

async function exchange(ws, next, label) {
  for (const size of SIZES) {
    const t = textPayload(size);
    ws.send(t);
    let m = await withTimeout(next(), 60000, 'echo');
    check(!m.isBinary && m.data.toString() === t, `${label}: echo text ${size} B`);
    const b = binaryPayload(size);
    ws.send(b, { binary: true });
    m = await withTimeout(next(), 60000, 'echo');
    check(m.isBinary && Buffer.compare(m.data, b) === 0, `${label}: echo binary ${size} B`);
  }
  ws.send('frag-1 ', { fin: false });
  ws.send('frag-2 ', { fin: false });
  ws.send('frag-3', { fin: true });
  const m = await withTimeout(next(), 10000, 'fragments');
  check(m.data.toString() === 'frag-1 frag-2 frag-3', `${label}: fragmented text reassembled and echoed`);
  const uni = 'héllo ✓ 🌍 — ünïcödé';
  ws.send(uni);
  const u = await withTimeout(next(), 10000, 'unicode');
  check(u.data.toString() === uni, `${label}: non-ASCII text`);
  await withTimeout(new Promise((resolve) => { ws.once('pong', resolve); ws.ping('interop'); }), 5000, 'pong');
  check(true, `${label}: ping answered with a pong`);
}

function startServer(gust, deflate) {
  const args = ['serve', '--echo', '--port', '0', '--max-size', '16m'].concat(deflate ? ['--deflate'] : []);
  const proc = spawn(gust, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout.on('data', (d) => {
      buf += d;
      const line = buf.split('\n')[0];
      if (buf.includes('\n')) resolve(line.split(' ').pop());
    });
    proc.on('exit', (c) => reject(new Error('gust serve exited ' + c)));
  });
  return { proc, url: withTimeout(url, 10000, 'listening line') };
}

function opened(ws) {
  return withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 10000, 'open');
}
function closed(ws) {
  return withTimeout(new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))), 15000, 'close');
}

async function asClient(gust, deflate) {
  const { proc, url: urlPromise } = startServer(gust, deflate);
  try {
    const url = await urlPromise;
    check(url.startsWith('ws://127.0.0.1:'), 'gust serve says ' + url);
    const ws = new WebSocket(url, { perMessageDeflate: deflate, maxPayload: MAX });
    const next = inbox(ws);
    await opened(ws);
    const ext = ws.extensions;
    console.log('negotiated extensions: ' + JSON.stringify(ext));
    check(deflate ? ext.includes('permessage-deflate') : ext === '', deflate ? 'permessage-deflate negotiated' : 'no extension without --deflate');
    await exchange(ws, next, 'node client');
    const c = closed(ws);
    ws.close(1000, 'bye');
    const r = await c;
    check(r.code === 1000, `close handshake completed (${r.code})`);
    // Graceful shutdown: 1001 to open clients, exit status 0.
    const ws2 = new WebSocket(url);
    await opened(ws2);
    const c2 = closed(ws2);
    const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.kill('SIGTERM');
    const r2 = await c2;
    check(r2.code === 1001, `SIGTERM closes open connections with 1001 (${r2.code})`);
    const code = await withTimeout(exited, 10000, 'gust serve exit');
    check(code === 0, `gust serve exits 0 after SIGTERM (${code})`);
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  }
}

async function asServer(gust, deflate) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate, maxPayload: MAX });
  await new Promise((resolve) => wss.once('listening', resolve));
  const port = wss.address().port;
  const conn = new Promise((resolve) => wss.once('connection', (ws, req) => resolve({ ws, req })));
  const args = ['connect', `ws://127.0.0.1:${port}/echo?from=node`, '--echo', '--max-size', '16m'].concat(deflate ? ['--deflate'] : []);
  const proc = spawn(gust, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  try {
    const { ws, req } = await withTimeout(conn, 10000, 'connection');
    check(req.url === '/echo?from=node', 'request target ' + req.url);
    const next = inbox(ws);
    console.log('negotiated extensions: ' + JSON.stringify(ws.extensions));
    if (deflate) check(ws.extensions.includes('permessage-deflate'), 'permessage-deflate negotiated');
    await exchange(ws, next, 'node server');
    const c = closed(ws);
    ws.close(1000, 'done');
    const r = await c;
    check(r.code === 1000, `close handshake completed (${r.code})`);
    const code = await withTimeout(exited, 15000, 'gust connect exit');
    check(code === 0, `gust connect --echo exits 0 when the server closes (${code})`);
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    wss.close();
  }
}

const [role, gustArg] = process.argv.slice(2);
const deflate = process.argv.includes('--deflate');
if (!['client', 'server'].includes(role) || !gustArg) {
  console.log('usage: node node_peers.js client|server GUST [--deflate]');
  process.exit(2);
}
const gust = path.resolve(gustArg);
withTimeout((role === 'client' ? asClient : asServer)(gust, deflate), 300000, 'whole run')
  .catch((e) => check(false, 'error: ' + e.message))
  .finally(() => {
    console.log(`node-${role}${deflate ? ' (deflate)' : ''}: ${passed} passed, ${failed} failed`);
    process.exit(failed === 0 && passed > 0 ? 0 : 1);
  });
