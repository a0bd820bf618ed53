// The `gust` command line: `gust serve` (echo or chat server) and
// `gust connect` (a client for the terminal, or an echo client for tests).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "chat_page.hpp"
#include "gust/net.hpp"

namespace {

constexpr std::string_view main_usage =
    "usage: gust <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve     run a WebSocket server (chat page and broadcast, or echo)\n"
    "  connect   connect to a WebSocket server from the terminal\n"
    "\n"
    "`gust <command> --help` describes each command's options.\n";

constexpr std::string_view serve_usage =
    "usage: gust serve [--host H] [--port P] [--adapter A] [--echo | --chat]\n"
    "                  [--deflate] [--max-size N] [--threads N] [--verbose] [--stats]\n"
    "\n"
    "Runs a WebSocket server and prints `listening on ws://HOST:PORT/` once ready.\n"
    "\n"
    "  --host H       address to listen on (default 127.0.0.1; :: for every address)\n"
    "  --port P       port (default 8765; 0 picks a free one)\n"
    "  --adapter A    event loop (default: $GUST_ADAPTER, else the first built;\n"
    "                 the adapters built are listed below)\n"
    "  --chat         serve a chat page at / and broadcast every message to every\n"
    "                 connected client (the default)\n"
    "  --echo         send every message back with the same opcode\n"
    "  --deflate      accept permessage-deflate compression\n"
    "  --max-size N   largest message accepted, in bytes (suffixes k, m: KiB, MiB;\n"
    "                 default 1m); larger ones close the connection with 1009\n"
    "  --threads N    event loops, one per thread, each with its own listener\n"
    "                 on the same port (SO_REUSEPORT; default 1)\n"
    "  --verbose      log connections and errors to standard error\n"
    "  --stats        at exit, print the message and byte counters to standard\n"
    "                 error (exact message counts for profiling runs)\n"
    "  --help         this text\n"
    "\n"
    "/healthz answers 200 in every mode. SIGTERM or SIGINT closes every\n"
    "connection with 1001 and exits once they are closed (a second signal exits\n"
    "at once).\n";

constexpr std::string_view connect_usage =
    "usage: gust connect URL [--adapter A] [--echo] [--deflate] [--max-size N]\n"
    "                    [--subprotocol P]... [--header 'Name: value']...\n"
    "\n"
    "Connects to URL (ws://host[:port][/path][?query]). Lines read from standard\n"
    "input are sent as text messages; received messages are written to standard\n"
    "output, one per line. At the end of the input the connection is closed.\n"
    "\n"
    "  --adapter A       event loop (default: $GUST_ADAPTER, else the first built;\n"
    "                    the adapters built are listed below)\n"
    "  --echo            send every received message back with the same opcode\n"
    "                    (standard input is not read); exits 0 when the server\n"
    "                    closes the connection\n"
    "  --deflate         offer permessage-deflate compression\n"
    "  --max-size N      largest message accepted, in bytes (k, m suffixes)\n"
    "  --subprotocol P   offer subprotocol P (repeatable, in order of preference)\n"
    "  --header 'N: v'   add a request header (repeatable)\n"
    "  --timeout S       opening handshake timeout in seconds (default 10)\n"
    "  --help            this text\n";

struct usage_error {
  std::string message;
};

// Options: "--name value" or "--name=value", flags "--name"; in any order.
struct args {
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> options;  // name, value
};

std::optional<args> parse(int argc, char** argv, int first,
                          const std::vector<std::string_view>& with_value,
                          const std::vector<std::string_view>& flags, std::string& error) {
  args a;
  for (int i = first; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h") arg = "--help";
    if (arg.size() < 3 || arg.substr(0, 2) != "--") {
      if (!arg.empty() && arg[0] == '-' && arg != "-") {
        error = "unknown option '" + std::string(arg) + "'";
        return std::nullopt;
      }
      a.positional.emplace_back(arg);
      continue;
    }
    std::string name(arg.substr(2));
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    auto known = [&](const std::vector<std::string_view>& list) {
      for (auto n : list)
        if (n == name) return true;
      return false;
    };
    if (known(with_value)) {
      if (!value) {
        if (i + 1 >= argc) {
          error = "option --" + name + " needs a value";
          return std::nullopt;
        }
        value = argv[++i];
      }
      a.options.emplace_back(name, *value);
    } else if (known(flags)) {
      if (value) {
        error = "option --" + name + " takes no value";
        return std::nullopt;
      }
      a.options.emplace_back(name, "");
    } else {
      error = "unknown option '--" + name + "'";
      return std::nullopt;
    }
  }
  return a;
}

bool parse_uint(std::string_view s, unsigned long long max, unsigned long long& out, bool suffixes) {
  if (s.empty()) return false;
  unsigned long long v = 0, mult = 1;
  if (suffixes) {
    char last = s.back();
    if (last == 'k' || last == 'K') mult = 1024, s.remove_suffix(1);
    else if (last == 'm' || last == 'M') mult = 1024 * 1024, s.remove_suffix(1);
    else if (last == 'g' || last == 'G') mult = 1024ull * 1024 * 1024, s.remove_suffix(1);
  }
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned long long>(c - '0');
    if (v > max) return false;
  }
  if (v > max / mult) return false;
  out = v * mult;
  return true;
}

std::string adapters_list() {
  std::string s;
  for (auto a : gust::available_adapters()) {
    if (!s.empty()) s += ", ";
    s += gust::to_string(a);
  }
  return s;
}

gust::adapter adapter_option(const std::string& name) {
  auto a = gust::parse_adapter(name);
  if (!a) throw usage_error{"unknown adapter '" + name + "' (available: " + adapters_list() + ")"};
  if (!gust::adapter_available(*a))
    throw usage_error{"adapter '" + name + "' is not available in this build (available: " +
                      adapters_list() + ")"};
  return *a;
}

/// --adapter's default: $GUST_ADAPTER (so a test suite can run every command
/// on each adapter), else the first adapter of this build.
gust::adapter default_adapter() {
  const char* env = std::getenv("GUST_ADAPTER");
  if (!env || !*env) return gust::available_adapters().front();
  try {
    return adapter_option(env);
  } catch (const usage_error& e) {
    throw usage_error{"GUST_ADAPTER: " + e.message};
  }
}

std::size_t size_option(const std::string& name, const std::string& v) {
  unsigned long long n;
  if (!parse_uint(v, 1ull << 40, n, true) || n == 0)
    throw usage_error{"--" + name + ": not a size in bytes: '" + v + "'"};
  return static_cast<std::size_t>(n);
}

// Signals: blocked in every thread, taken by one waiting thread.
sigset_t termination_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

template <class OnSignal>
void watch_signals(OnSignal on_signal) {
  std::thread([on_signal] {
    sigset_t set = termination_signals();
    for (int count = 0;; ++count) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) return;
      if (count > 0) std::_Exit(128 + sig);  // the second one: at once
      on_signal(sig);
    }
  }).detach();
}

gust::log_sink stderr_log(std::string_view who) {
  return [who = std::string(who)](gust::log_level l, std::string_view msg) {
    static std::mutex m;
    std::lock_guard lock(m);
    std::fprintf(stderr, "%s: %.*s: %.*s\n", who.c_str(), int(gust::to_string(l).size()),
                 gust::to_string(l).data(), int(msg.size()), msg.data());
  };
}

gust::http::response text_response(int status, std::string_view content_type, std::string_view body) {
  gust::http::response r;
  r.status = status;
  r.headers.add("Content-Type", content_type);
  r.headers.add("Cache-Control", "no-store");
  r.body.assign(body);
  return r;
}

// ---------------------------------------------------------------------------

int serve(int argc, char** argv) {
  std::string error;
  auto a = parse(argc, argv, 2, {"host", "port", "adapter", "max-size", "threads"},
                 {"echo", "chat", "deflate", "verbose", "stats", "help"}, error);
  if (!a) throw usage_error{error};
  gust::server_config cfg;
  cfg.adapter = default_adapter();
  cfg.host = "127.0.0.1";
  cfg.port = 8765;
  bool echo = false, chat = false, verbose = false, print_stats = false;
  for (auto& [name, v] : a->options) {
    if (name == "help") {
      std::cout << serve_usage << "\nadapters in this build: " << adapters_list() << "\n";
      return 0;
    }
    if (name == "host") {
      if (v.empty()) throw usage_error{"--host: empty"};
      cfg.host = v;
    } else if (name == "port") {
      unsigned long long p;
      if (!parse_uint(v, 65535, p, false)) throw usage_error{"--port: not a port number: '" + v + "'"};
      cfg.port = static_cast<std::uint16_t>(p);
    } else if (name == "adapter") {
      cfg.adapter = adapter_option(v);
    } else if (name == "max-size") {
      cfg.settings.limits.max_message_size = size_option(name, v);
    } else if (name == "threads") {
      unsigned long long t;
      if (!parse_uint(v, 256, t, false) || t == 0) throw usage_error{"--threads: 1 to 256, not '" + v + "'"};
      cfg.threads = static_cast<int>(t);
    } else if (name == "echo") {
      echo = true;
    } else if (name == "chat") {
      chat = true;
    } else if (name == "deflate") {
      cfg.settings.deflate.enabled = true;
    } else if (name == "verbose") {
      verbose = true;
    } else if (name == "stats") {
      print_stats = true;
    }
  }
  if (!a->positional.empty()) throw usage_error{"unexpected argument '" + a->positional.front() + "'"};
  if (echo && chat) throw usage_error{"--echo and --chat exclude each other"};
  if (!echo) chat = true;
  if (verbose) cfg.log = stderr_log("gust serve");
  // Large messages are allowed up to --max-size; let the send buffer hold a
  // few of them before the hard limit closes a peer that does not read.
  cfg.backpressure.hard_limit = std::max<std::size_t>(cfg.backpressure.hard_limit,
                                                      4 * cfg.settings.limits.max_message_size);

  // Neither mode reads the request after on_request: do not keep it.
  cfg.options.keep_request = false;
  gust::server* srv_ptr = nullptr;
  cfg.handlers.on_request = [&, chat](gust::websocket& ws, const gust::http::request& req) {
    const bool upgrade = req.headers.contains("Upgrade");
    if (req.path() == "/healthz") {
      (void)ws.respond(text_response(200, "text/plain; charset=utf-8", "ok\n"));
    } else if (!upgrade && req.path() == "/" && chat) {
      (void)ws.respond(text_response(200, "text/html; charset=utf-8", gust::tools::chat_page));
    } else if (!upgrade) {
      (void)ws.respond(text_response(chat ? 404 : 426, "text/plain; charset=utf-8",
                                     chat ? "not found\n"
                                          : "this is a WebSocket echo server: connect with a WebSocket client\n"));
    }
  };
  if (echo) {
    cfg.handlers.on_message = [](gust::websocket& ws, const gust::message_event& m) {
      (void)ws.send(m.type, m.data);
    };
  } else {
    cfg.handlers.on_message = [&srv_ptr](gust::websocket&, const gust::message_event& m) {
      (void)srv_ptr->broadcast(m.type, m.data);
    };
  }
  if (verbose) {
    cfg.handlers.on_open = [](gust::websocket& ws) {
      std::fprintf(stderr, "gust serve: open %s\n", ws.remote_address().to_string().c_str());
    };
    cfg.handlers.on_close = [](gust::websocket& ws, const gust::close_event& e) {
      std::fprintf(stderr, "gust serve: close %s %u (%s)\n", ws.remote_address().to_string().c_str(),
                   unsigned(e.code), std::string(gust::to_string(e.cause)).c_str());
    };
  }

  sigset_t set = termination_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread starts
  gust::server srv(std::move(cfg));
  srv_ptr = &srv;
  if (auto ec = srv.listen()) {
    std::fprintf(stderr, "gust serve: cannot listen on %s:%u: %s\n", srv.config().host.c_str(),
                 unsigned(srv.config().port), ec.message().c_str());
    return 1;
  }
  watch_signals([&srv](int) {
    std::fprintf(stderr, "gust serve: shutting down\n");
    srv.shutdown();
  });
  std::printf("listening on %s\n", srv.url().c_str());
  std::fflush(stdout);
  if (chat) {
    std::string page = srv.url();
    page.replace(0, 2, "http");  // ws://host:port/ -> http://host:port/
    std::fprintf(stderr, "chat page: open %s in two browser windows (Ctrl-C stops the server)\n",
                 page.c_str());
  }
  srv.run();
  if (print_stats) {
    const gust::stats s = srv.stats();
    std::fprintf(stderr, "gust serve: stats messages_in %llu messages_out %llu bytes_in %llu bytes_out %llu\n",
                 static_cast<unsigned long long>(s.messages_in), static_cast<unsigned long long>(s.messages_out),
                 static_cast<unsigned long long>(s.bytes_in), static_cast<unsigned long long>(s.bytes_out));
  }
  return 0;
}

// ---------------------------------------------------------------------------

// Lets the stdin thread post to the loop only while it exists.
struct mailbox {
  std::mutex m;
  gust::event_loop* loop = nullptr;
  void post(std::function<void()> fn) {
    std::lock_guard lock(m);
    if (loop) loop->post(std::move(fn));
  }
};

int connect(int argc, char** argv) {
  std::string error;
  auto a = parse(argc, argv, 2, {"adapter", "max-size", "subprotocol", "header", "timeout"},
                 {"echo", "deflate", "help"}, error);
  if (!a) throw usage_error{error};
  gust::client_config cfg;
  gust::adapter adapter = default_adapter();
  bool echo = false;
  for (auto& [name, v] : a->options) {
    if (name == "help") {
      std::cout << connect_usage << "\nadapters in this build: " << adapters_list() << "\n";
      return 0;
    }
    if (name == "adapter") {
      adapter = adapter_option(v);
    } else if (name == "max-size") {
      cfg.settings.limits.max_message_size = size_option(name, v);
    } else if (name == "subprotocol") {
      if (v.empty()) throw usage_error{"--subprotocol: empty"};
      cfg.subprotocols.push_back(v);
    } else if (name == "header") {
      auto colon = v.find(':');
      if (colon == std::string::npos || colon == 0)
        throw usage_error{"--header: expected 'Name: value', not '" + v + "'"};
      std::string value = v.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      cfg.headers.add(v.substr(0, colon), value);
    } else if (name == "timeout") {
      unsigned long long s;
      if (!parse_uint(v, 3600, s, false) || s == 0) throw usage_error{"--timeout: seconds, not '" + v + "'"};
      cfg.open_timeout = std::chrono::seconds(s);
    } else if (name == "echo") {
      echo = true;
    } else if (name == "deflate") {
      cfg.settings.deflate.enabled = true;
    }
  }
  if (a->positional.empty()) throw usage_error{"a URL is needed (ws://host:port/path)"};
  if (a->positional.size() > 1) throw usage_error{"unexpected argument '" + a->positional[1] + "'"};
  cfg.url = a->positional.front();
  {
    gust::ws_url u;
    std::string why;
    if (gust::parse_ws_url(cfg.url, u, &why)) throw usage_error{"invalid URL '" + cfg.url + "': " + why};
  }
  cfg.backpressure.hard_limit = std::max<std::size_t>(cfg.backpressure.hard_limit,
                                                      4 * cfg.settings.limits.max_message_size);

  int status = 1;
  bool opened = false;
  // Lines typed before the connection opens wait here (loop thread only).
  std::vector<std::string> queued;
  bool input_done = false;
  gust::client* cli_ptr = nullptr;
  cfg.on_connect_error = [&](const gust::connect_error& e) {
    std::fprintf(stderr, "gust connect: %s\n", e.message.c_str());
  };
  cfg.handlers.on_open = [&](gust::websocket& ws) {
    opened = true;
    for (auto& line : queued) (void)ws.send_text(line);
    queued.clear();
    if (input_done) cli_ptr->close(1000);
  };
  cfg.handlers.on_message = [echo](gust::websocket& ws, const gust::message_event& m) {
    if (echo) {
      (void)ws.send(m.type, m.data);
      return;
    }
    std::fwrite(m.data.data(), 1, m.data.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  };
  cfg.handlers.on_close = [&](gust::websocket&, const gust::close_event& e) {
    const bool normal = e.code == 1000 || e.code == 1001 || e.code == 1005;
    status = (e.clean && normal) ? 0 : 1;
    if (!normal || !e.clean)
      std::fprintf(stderr, "gust connect: connection closed: %u%s%.*s (%s)\n", unsigned(e.code),
                   e.reason.empty() ? "" : " ", int(e.reason.size()), e.reason.data(),
                   std::string(gust::to_string(e.cause)).c_str());
  };

  sigset_t set = termination_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::unique_ptr<gust::event_loop> loop;
  try {
    loop = std::make_unique<gust::event_loop>(adapter);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "gust connect: %s\n", ex.what());
    return 1;
  }
  gust::client cli(*loop, std::move(cfg));
  cli_ptr = &cli;
  if (auto ec = cli.connect()) {
    std::fprintf(stderr, "gust connect: %s\n", ec.message().c_str());
    return 1;
  }
  auto box = std::make_shared<mailbox>();
  box->loop = loop.get();
  watch_signals([box, &cli](int) { box->post([&cli] { cli.close(1000, "interrupted"); }); });
  if (!echo) {
    std::thread([box, &cli, &queued, &input_done] {
      std::string line;
      while (std::getline(std::cin, line)) {
        box->post([&cli, &queued, line] {
          if (auto* ws = cli.connection(); ws && ws->state() == gust::state::open)
            (void)ws->send_text(line);
          else
            queued.push_back(line);
        });
      }
      // End of input: close once what was sent has gone (close follows the
      // queued messages). If the connection is not open yet, close when it is.
      box->post([&cli, &input_done] {
        input_done = true;
        if (auto* ws = cli.connection(); ws && ws->state() == gust::state::open) cli.close(1000);
      });
    }).detach();
  }
  loop->run();
  {
    std::lock_guard lock(box->m);
    box->loop = nullptr;
  }
  if (!opened) return 1;
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(main_usage.data(), stderr);
    return 2;
  }
  const std::string_view cmd = argv[1];
  try {
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::cout << main_usage;
      return 0;
    }
    if (cmd == "serve") return serve(argc, argv);
    if (cmd == "connect") return connect(argc, argv);
    std::fprintf(stderr, "gust: unknown command '%s'\n\n%s", argv[1], main_usage.data());
    return 2;
  } catch (const usage_error& e) {
    std::fprintf(stderr, "gust %s: %s (see gust %s --help)\n", argv[1], e.message.c_str(), argv[1]);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gust %s: %s\n", argv[1], e.what());
    return 1;
  }
}
