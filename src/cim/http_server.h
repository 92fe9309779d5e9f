// HttpServer: the CIM-XML transport of vmgroupd. Listens on unix sockets and
// TCP, one thread per connection, HTTP/1.1 keep-alive, bounded head and body
// sizes and bounded waits, so a slow, broken or hostile client costs one
// connection and never the server. TCP listeners may require HTTP Basic
// credentials, checked by an Authenticator (PAM in the daemon).
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "cim/http_message.h"

namespace vmgroup::cim {

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // True if `user` may use the service with `password`.
  using Authenticator = std::function<bool(const std::string& user, const std::string& password)>;

  struct Options {
    size_t max_head_bytes = 64 << 10;
    size_t max_body_bytes = 4 << 20;
    int max_connections = 128;
    std::chrono::milliseconds idle_timeout{60'000};     // between requests
    std::chrono::milliseconds request_timeout{30'000};  // one request, head to body
    // Niceness of the connection threads (0..19). Answering requests can
    // wait; a group snapshot's pause should not wait for them.
    int connection_nice = 0;
  };

  HttpServer(Handler handler, Options options);
  ~HttpServer();  // Stop()

  // Listens on a unix socket at `path` (a stale socket file is replaced),
  // with file mode `mode`: the mode and the socket's group are the access
  // control of this listener.
  Status ListenUnix(const std::string& path, unsigned mode);
  // Listens on TCP `host`:`port` (port 0: any free port) and returns the
  // port. With `auth`, every request must carry Basic credentials it accepts.
  Result<int> ListenTcp(const std::string& host, int port, Authenticator auth);

  // Serves every listener on its own thread until Stop().
  void Start();
  // Stops accepting, closes every connection, waits for their threads.
  void Stop();

 private:
  struct Listener {
    UniqueFd fd;
    std::string unix_path;
    Authenticator auth;
    std::thread thread;
  };
  struct Connection {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void AcceptLoop(Listener* l);
  void Serve(Connection* c, const Authenticator& auth);
  void ReapDone();

  Handler handler_;
  const Options options_;
  int wake_[2] = {-1, -1};  // a pipe: readable once Stop() began
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::atomic<bool> stopping_{false};

  std::mutex mu_;
  std::list<std::unique_ptr<Connection>> connections_;  // guarded by mu_
};

}  // namespace vmgroup::cim
