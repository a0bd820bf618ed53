// The page `gust serve --chat` serves at "/": plain HTML and JavaScript, no
// dependencies. It connects back to the server that served it and shows
// every broadcast message.
#pragma once

#include <string_view>

namespace gust::tools {

inline constexpr std::string_view chat_page = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gust chat</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  #log { border: 1px solid #ccc; border-radius: 6px; height: 22rem; overflow-y: auto; padding: .5rem; margin: 0; list-style: none; }
  #log li { padding: .15rem 0; }
  #log li.system { color: #777; font-style: italic; }
  form { display: flex; gap: .5rem; margin-top: .75rem; }
  #text { flex: 1; padding: .4rem; }
  #status { font-size: .9rem; color: #555; }
</style>
</head>
<body>
<h1>gust chat</h1>
<p id="status">connecting…</p>
<ul id="log"></ul>
<form id="form">
  <input id="text" autocomplete="off" placeholder="say something" disabled>
  <button id="send" disabled>Send</button>
</form>
<script>
  const log = document.getElementById('log');
  const status = document.getElementById('status');
  const text = document.getElementById('text');
  const send = document.getElementById('send');
  function add(line, cls) {
    const li = document.createElement('li');
    li.textContent = line;
    if (cls) li.className = cls;
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
  }
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
  const ws = new WebSocket(url);
  ws.onopen = () => {
    status.textContent = 'connected to ' + url;
    text.disabled = send.disabled = false;
    text.focus();
  };
  ws.onmessage = (ev) => add(typeof ev.data === 'string' ? ev.data : '[binary message]');
  ws.onclose = (ev) => {
    status.textContent = 'disconnected (' + ev.code + (ev.reason ? ': ' + ev.reason : '') + ')';
    text.disabled = send.disabled = true;
    add('connection closed', 'system');
  };
  document.getElementById('form').onsubmit = (ev) => {
    ev.preventDefault();
    if (text.value && ws.readyState === WebSocket.OPEN) ws.send(text.value);
    text.value = '';
  };
</script>
</body>
</html>
)html";

}  // namespace gust::tools
