#!/usr/bin/env node
// The chat page in a real browser: headless Chromium (Debian `chromium`,
// never a downloaded one) driven over the DevTools protocol with Node's `ws`
// (Debian node-ws). `gust serve --chat` serves the page through its
// process_request hook; two pages open it, each sends a message through the
// server, and the test checks that both pages show both messages, in order.
//
// usage: node browser_chat.js GUST [screenshot.png]
// Ends with "N passed, M failed"; exits 77 (skip) without chromium or ws.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
let WebSocket;
try {
  ({ WebSocket } = require('ws'));
} catch (e) {
  console.log('SKIP: the ws module is not installed (Debian node-ws)');
  process.exit(77);
}
const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
if (!chromium) {
  console.log('SKIP: chromium is not installed (Debian chromium)');
  process.exit(77);
}

let passed = 0, failed = 0;
function check(ok, what) {
  if (ok) passed++; else failed++;
  console.log((ok ? 'ok   ' : 'FAIL ') + what);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timeout: ' + what);
    await sleep(100);
  }
}

// A minimal DevTools protocol client over one browser-level WebSocket.
class Cdp {
  constructor(url) {
    this.ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 << 20 });
    this.next = 1;
    this.pending = new Map();
    this.ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.id && this.pending.has(m.id)) {
        const { resolve, reject } = this.pending.get(m.id);
        this.pending.delete(m.id);
        m.error ? reject(new Error(m.error.message)) : resolve(m.result);
      }
    });
  }
  open() {
    return new Promise((resolve, reject) => { this.ws.once('open', resolve); this.ws.once('error', reject); });
  }
  send(method, params = {}, sessionId) {
    const id = this.next++;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    this.ws.send(JSON.stringify(msg));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      setTimeout(() => { if (this.pending.delete(id)) reject(new Error('timeout: ' + method)); }, 15000);
    });
  }
  async eval(sessionId, expression) {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true }, sessionId);
    return r.result.value;
  }
}

async function main(gust, screenshot) {
  const server = spawn(gust, ['serve', '--chat', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const serverExit = new Promise((resolve) => server.once('exit', (code) => resolve(code)));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'gust-chromium-'));
  let browser;
  try {
    const wsUrl = await until(() => {
      const out = server.stdout.read();
      return out && out.toString().split('\n')[0].split(' ').pop();
    }, 10000, 'listening line');
    const pageUrl = wsUrl.replace('ws://', 'http://');
    check(pageUrl.startsWith('http://127.0.0.1:'), 'gust serve --chat on ' + pageUrl);

    // The flags this closed network needs, or Chromium stalls.
    browser = spawn(chromium, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage', `--user-data-dir=${profile}`, '--remote-debugging-port=0', 'about:blank'],
      { stdio: ['ignore', 'ignore', 'ignore'] });
    const portFile = path.join(profile, 'DevToolsActivePort');
    const devtools = await until(() => {
      if (!fs.existsSync(portFile)) return null;
      const [port, p] = fs.readFileSync(portFile, 'utf8').split('\n');
      return port && p ? `ws://127.0.0.1:${port}${p}` : null;
    }, 30000, 'DevToolsActivePort');
    const cdp = new Cdp(devtools);
    await cdp.open();

    const pages = [];
    for (let i = 0; i < 2; i++) {
      const { targetId } = await cdp.send('Target.createTarget', { url: pageUrl });
      const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: true });
      pages.push(sessionId);
    }
    const status = (s) => cdp.eval(s, "document.getElementById('status') ? document.getElementById('status').textContent : ''");
    for (const [i, s] of pages.entries()) {
      const st = await until(async () => { const t = await status(s); return t.startsWith('connected') ? t : null; },
        15000, 'page connects');
      check(true, `page ${i + 1}: ${st}`);
    }
    const title = await cdp.eval(pages[0], 'document.title');
    check(title === 'gust chat', `the page's title is "${title}"`);

    const say = (s, text) => cdp.eval(s,
      `(() => { const t = document.getElementById('text'); t.value = ${JSON.stringify(text)};
                document.getElementById('form').requestSubmit(); return true; })()`);
    const lines = (s) => cdp.eval(s, "[...document.querySelectorAll('#log li')].map((li) => li.textContent)");
    await say(pages[0], 'hello from page 1');
    await until(async () => (await lines(pages[1])).includes('hello from page 1'), 10000, 'page 2 hears page 1');
    await say(pages[1], 'héllo from page 2 ✓');
    const want = ['hello from page 1', 'héllo from page 2 ✓'];
    for (const [i, s] of pages.entries()) {
      const got = await until(async () => { const l = await lines(s); return l.length >= 2 ? l : null; },
        10000, 'both messages');
      check(JSON.stringify(got) === JSON.stringify(want), `page ${i + 1} shows ${JSON.stringify(got)}`);
    }
    if (screenshot) {
      const { data } = await cdp.send('Page.captureScreenshot', { format: 'png' }, pages[1]);
      fs.writeFileSync(screenshot, Buffer.from(data, 'base64'));
      console.log('screenshot: ' + screenshot);
    }
    // Graceful shutdown: the pages see the close (1001) and say so.
    // The server may take up to its close timeout (10 s): connections still
    // in CONNECTING (Chromium's idle preconnect sockets) are kept so that a
    // late request gets its 503, then closed at that bound.
    server.kill('SIGTERM');
    const code = await Promise.race([serverExit, sleep(20000).then(() => 'timeout')]);
    check(code === 0, `gust serve exits 0 on SIGTERM (${code})`);
    const after = await until(async () => { const t = await status(pages[0]); return t.startsWith('disconnected') ? t : null; },
      10000, 'page sees the close');
    check(after.includes('1001'), `page 1 after shutdown: ${after}`);
    await cdp.send('Browser.close').catch(() => {});
  } finally {
    if (browser && browser.exitCode === null) browser.kill('SIGKILL');
    if (server.exitCode === null) server.kill('SIGKILL');
    await sleep(200);
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

const [gustArg, shot] = process.argv.slice(2);
if (!gustArg) {
  console.log('usage: node browser_chat.js GUST [screenshot.png]');
  process.exit(2);
}
Promise.race([main(path.resolve(gustArg), shot), sleep(120000).then(() => { throw new Error('timeout: whole test'); })])
  .catch((e) => check(false, 'error: ' + e.message))
  .finally(() => {
    console.log(`browser-chat: ${passed} passed, ${failed} failed`);
    process.exit(failed === 0 && passed > 0 ? 0 : 1);
  });
