#include "cim/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"
#include "cim/http_io.h"
#include "cim/model.h"

namespace vmgroup::cim {
namespace {

std::string Render(const HttpResponse& r, bool keep_alive) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + ReasonPhrase(r.status) + "\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += keep_alive ? "Connection: Keep-Alive\r\n" : "Connection: close\r\n";
  return out + "\r\n" + r.body;
}

// The user whose Basic credentials `auth` accepts, or empty.
std::string Authenticated(const HttpRequest& req, const HttpServer::Authenticator& auth) {
  const std::string* h = req.Header("Authorization");
  if (!h || h->size() < 6 || !NameEquals(h->substr(0, 6), "Basic ")) return "";
  auto decoded = Base64Decode(h->substr(6));
  if (!decoded.ok()) return "";
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos || colon == 0) return "";
  std::string user = decoded->substr(0, colon);
  return auth(user, decoded->substr(colon + 1)) ? user : "";
}

bool WantsKeepAlive(const HttpRequest& req, const std::string& version) {
  const std::string* c = req.Header("Connection");
  const bool close = c && c->find("lose") != std::string::npos;   // "close", "Close"
  const bool keep = c && (c->find("eep-") != std::string::npos);  // "Keep-Alive", "keep-alive"
  return version == "HTTP/1.0" ? keep : !close;
}

}  // namespace

HttpServer::HttpServer(Handler handler, Options options)
    : handler_(std::move(handler)), options_(options) {
  if (::pipe2(wake_, O_CLOEXEC) != 0) wake_[0] = wake_[1] = -1;
}

HttpServer::~HttpServer() {
  Stop();
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

Status HttpServer::ListenUnix(const std::string& path, unsigned mode) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Status::InvalidArgument("socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::IoError(std::string("socket: ") + std::strerror(errno));
  // A socket file nobody listens on is left by a daemon that died; one that
  // answers belongs to a daemon still running, which must not be robbed.
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    return Status::AlreadyExists("another server is listening on " + path);
  }
  fd = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Status::IoError("cannot bind " + path + ": " + std::strerror(errno));
  }
  if (::chmod(path.c_str(), mode) != 0 || ::listen(fd.get(), 128) != 0) {
    return Status::IoError("cannot listen on " + path + ": " + std::strerror(errno));
  }
  auto l = std::make_unique<Listener>();
  l->fd = std::move(fd);
  l->unix_path = path;
  listeners_.push_back(std::move(l));
  return Status::Ok();
}

Result<int> HttpServer::ListenTcp(const std::string& host, int port, Authenticator auth) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
      rc != 0) {
    return Status::InvalidArgument("cannot resolve " + host + ": " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
  UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::IoError(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd.get(), 128) != 0) {
    return Status::IoError("cannot listen on " + host + ":" + service + ": " +
                           std::strerror(errno));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
  const int actual = bound.ss_family == AF_INET6
                         ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                         : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  auto l = std::make_unique<Listener>();
  l->fd = std::move(fd);
  l->auth = std::move(auth);
  listeners_.push_back(std::move(l));
  return actual;
}

void HttpServer::Start() {
  for (auto& l : listeners_) l->thread = std::thread([this, p = l.get()] { AcceptLoop(p); });
}

void HttpServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_[1] >= 0) {
    char c = 1;
    (void)!::write(wake_[1], &c, 1);
  }
  for (auto& l : listeners_) {
    if (l->thread.joinable()) l->thread.join();
    l->fd.reset();
    if (!l->unix_path.empty()) ::unlink(l->unix_path.c_str());
  }
  std::list<std::unique_ptr<Connection>> conns;
  {
    std::lock_guard lock(mu_);
    for (auto& c : connections_) {
      if (c->fd >= 0) ::shutdown(c->fd, SHUT_RDWR);
    }
    conns.swap(connections_);
  }
  for (auto& c : conns) c->thread.join();
}

void HttpServer::ReapDone() {
  std::list<std::unique_ptr<Connection>> finished;
  {
    std::lock_guard lock(mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      if ((*it)->done) {
        finished.push_back(std::move(*it));
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : finished) c->thread.join();
}

void HttpServer::AcceptLoop(Listener* l) {
  while (!stopping_) {
    pollfd fds[2] = {{l->fd.get(), POLLIN, 0}, {wake_[0], POLLIN, 0}};
    int n = ::poll(fds, 2, 1000);
    ReapDone();
    if (n <= 0 || (fds[1].revents & POLLIN)) continue;
    int fd = ::accept4(l->fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::unique_lock lock(mu_);
    if (static_cast<int>(connections_.size()) >= options_.max_connections || stopping_) {
      lock.unlock();
      HttpConnection refused{UniqueFd(fd)};
      (void)refused.Write(Render(TextResponse(503, "too many connections; try again"), false),
                          Clock::now() + std::chrono::seconds(1));
      continue;
    }
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    Connection* raw = c.get();
    connections_.push_back(std::move(c));
    raw->thread = std::thread([this, raw, auth = l->auth] { Serve(raw, auth); });
  }
}

void HttpServer::Serve(Connection* c, const Authenticator& auth) {
  if (options_.connection_nice > 0) {
    // Linux schedules threads on their own: this thread alone is niced.
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)),
                        options_.connection_nice);
  }
  HttpConnection conn{UniqueFd(c->fd)};  // closes after the lock below is released
  auto answer = [&](const HttpResponse& r, bool keep) {
    return conn.Write(Render(r, keep), Clock::now() + options_.request_timeout).ok() && keep;
  };
  bool keep = true;
  while (keep && !stopping_) {
    auto head = conn.ReadHead(Clock::now() + options_.idle_timeout, options_.max_head_bytes);
    if (!head.ok()) {
      if (head.status().code() == Code::kTooLarge) {
        answer(TextResponse(431, head.status().message(), "request-not-valid"), false);
      } else if (head.status().code() == Code::kInvalidArgument) {
        answer(TextResponse(400, head.status().message()), false);
      }
      break;  // closed, idle too long, or unreadable
    }
    const Deadline deadline = Clock::now() + options_.request_timeout;
    std::string version;
    auto req = ParseRequestHead(*head, &version);
    if (!req.ok()) {
      answer(TextResponse(400, req.status().message()), false);
      break;
    }
    keep = WantsKeepAlive(*req, version);
    auto length = ContentLength(req->headers);
    if (!length.ok()) {
      answer(TextResponse(400, length.status().message()), false);
      break;
    }
    if (req->Header("Transfer-Encoding")) {
      auto body = conn.ReadChunked(deadline, options_.max_body_bytes);
      if (!body.ok()) {
        const bool big = body.status().code() == Code::kTooLarge;
        answer(
            TextResponse(big ? 413 : 400, body.status().message(), big ? "request-not-valid" : ""),
            false);
        break;
      }
      req->body = std::move(body).value();
    } else if (*length > 0) {
      if (static_cast<size_t>(*length) > options_.max_body_bytes) {
        // The body is not read: the connection cannot be reused.
        answer(TextResponse(413,
                            "the request body is over the limit of " +
                                std::to_string(options_.max_body_bytes) + " bytes",
                            "request-not-valid"),
               false);
        break;
      }
      auto body = conn.ReadBody(static_cast<size_t>(*length), deadline);
      if (!body.ok()) break;
      req->body = std::move(body).value();
    }
    if (auth) {
      req->peer_user = Authenticated(*req, auth);
      if (req->peer_user.empty()) {
        HttpResponse r =
            TextResponse(401, "credentials required (HTTP Basic, a user of this host)");
        r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"vmgroupd\"");
        if (!answer(r, keep)) break;
        continue;
      }
    }
    if (req->target != "/cimom" && req->target != "/") {
      if (!answer(TextResponse(404, "CIM operations are posted to /cimom"), keep)) break;
      continue;
    }
    if (!answer(handler_(*req), keep)) break;
  }
  // Stop() shuts connections down by fd under mu_: forget it before it closes.
  std::lock_guard lock(mu_);
  c->fd = -1;
  c->done = true;
}

}  // namespace vmgroup::cim
