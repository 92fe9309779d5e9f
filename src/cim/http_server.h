// HttpServer: the CIM-XML transport of vmgroupd, on libmicrohttpd. Each
// listener (a unix socket, TCP, TCP with TLS) is its own libmicrohttpd
// daemon with its own connection budget, one thread per connection, so a
// peer that fills one listener never locks anyone out of another.
//
// What a request must get past before the handler sees it, in order:
// - admission: TCP: a cap per listener and per client address; unix: a cap
//   per listener of which some slots only root may use, and a cap per uid
//   for everyone else (SO_PEERCRED);
// - deadlines: the request line within idle_timeout of the connection
//   becoming idle (accepted, or its last answer sent), the rest of the head
//   within header_timeout of the request line, the body within
//   body_timeout of the head; a peer that trickles bytes is cut off there;
// - its head alone, answered at once without reading the body: framing
//   (CheckFraming), credentials on listeners that need them (401), the
//   target (404: /cimom, and /metrics where the listener serves it), the body's size (413), and the
//   memory the body would pin against the daemon-wide request budget (503 with Retry-After);
// - its body, counted as it arrives; a chunked body that passes either limit
//   has its connection closed (libmicrohttpd cannot answer mid-body).
// The handler runs under a last resort: an exception (std::bad_alloc too)
// becomes a 500 and the server serves on.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/env.h"
#include "base/log.h"
#include "base/result.h"
#include "cim/http_message.h"

namespace vmgroup::cim {

class HttpServer {
 public:
  // Runs on a connection's thread, many at once. May block.
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Checks HTTP Basic credentials: the peer they prove, or nullopt to refuse
  // them (401). May block (PAM's failure delay). Called at most once per
  // connection for the same credentials.
  using Authenticator =
      std::function<std::optional<Peer>(const std::string& user, const std::string& password)>;
  // Who the owner of a unix-socket peer is, from its SO_PEERCRED ids.
  // Called once per connection.
  using PeerResolver = std::function<Peer(uid_t uid, gid_t gid)>;
  // Events an operator wants in the log: exceptions caught (kError),
  // connections cut at a deadline or over a budget and libmicrohttpd's own
  // complaints (kInfo).
  using Logger = std::function<void(LogLevel, std::string_view)>;

  struct Options {
    uint64_t max_body_bytes = 4 << 20;
    // What the bodies of all requests in flight may pin together, across
    // every listener: each is charged kParseFactor times its body, the peak
    // a CIM-XML body of tiny elements reaches while it is parsed (DOM) with
    // the body itself. Past it new requests get 503 and Retry-After.
    uint64_t request_memory_budget = 256ull << 20;
    std::chrono::seconds idle_timeout{30};
    std::chrono::seconds header_timeout{10};
    std::chrono::seconds body_timeout{30};
    // Niceness of the connection threads (0..19). Answering requests can
    // wait; a group snapshot's pause should not wait for them.
    int connection_nice = 0;
    Logger log;
    // Whose clock the deadlines above run on (the watchdog looks at it every
    // 250 ms of real time). REQUIRES: outlives the server.
    Env* env = Env::Default();
  };
  static constexpr uint64_t kParseFactor = 18;

  struct TcpListener {
    std::string host;  // an address or name to bind
    int port = 0;      // 0: any free port
    // Null: every peer is an anonymous admin (--insecure-loopback).
    Authenticator auth;
    // Both set: HTTPS, TLS 1.2 or newer only. PEM text.
    std::string tls_cert_pem, tls_key_pem;
    unsigned max_connections = 64;
    unsigned max_per_address = 16;
    bool metrics = false;  // also passes GET /metrics to the handler
    // A listening socket the server takes over instead of binding one (a
    // socket systemd passed: socket activation); host and port then only
    // name it. -1: bind host:port.
    int inherited_fd = -1;
  };
  struct UnixListener {
    std::string path;  // a stale socket file is replaced
    unsigned mode = 0666;
    PeerResolver who;
    unsigned max_connections = 64;
    unsigned root_reserved = 8;  // of max_connections, for uid 0 alone
    unsigned max_per_uid = 16;   // for every uid but 0
    bool metrics = false;        // also passes GET /metrics to the handler
    // A listening socket bound to `path` the server takes over (socket
    // activation); its file is then systemd's and stays when the server
    // stops. -1: bind `path` (and remove it on Stop).
    int inherited_fd = -1;
  };

  HttpServer(Handler handler, Options options);
  ~HttpServer();  // Stop()

  // Starts serving on the unix socket at once. AlreadyExists when a server
  // answers on that path; IoError when it cannot be bound.
  Status ListenUnix(const UnixListener& listener);
  // Starts serving on TCP at once; returns the port. InvalidArgument for an
  // address that does not resolve or a certificate or key TLS cannot use.
  Result<int> ListenTcp(const TcpListener& listener);

  // Stops every listener: no new connections, open ones closed, their
  // threads (and handlers running on them) waited for.
  void Stop();

 private:
  class Impl;  // libmicrohttpd's daemons and callbacks
  std::unique_ptr<Impl> impl_;
};

}  // namespace vmgroup::cim
