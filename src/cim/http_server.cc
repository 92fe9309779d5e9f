#include "cim/http_server.h"

#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdarg>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "base/env.h"
#include "base/unique_fd.h"
#include "base/unix_socket.h"
#include "cim/http_framing.h"

namespace vmgroup::cim {
namespace {

// TLS 1.2 and 1.3 only, GnuTLS's default ciphers for them.
constexpr const char* kTlsPriorities = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
constexpr const char* kRealm = "vmgroupd";
constexpr const char* kRetryAfterSeconds = "2";
// libmicrohttpd's per-connection pool: the request head and its read buffer.
constexpr size_t kConnectionMemory = 64 << 10;

// Bytes charged against a limit, from any thread.
class Budget {
 public:
  explicit Budget(uint64_t limit) : limit_(limit) {}
  bool TryCharge(uint64_t n) {
    uint64_t used = used_.load();
    do {
      if (n > limit_ - used) return false;
    } while (!used_.compare_exchange_weak(used, used + n));
    return true;
  }
  void Release(uint64_t n) { used_ -= n; }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
};

// Where a connection is; each phase but kHandling has a deadline.
enum class Phase { kIdle, kHead, kBody, kHandling };

}  // namespace

class HttpServer::Impl {
 public:
  Impl(Handler handler, Options options)
      : handler_(std::move(handler)),
        options_(std::move(options)),
        budget_(options_.request_memory_budget) {
    if (::pipe2(wake_, O_CLOEXEC) != 0) wake_[0] = wake_[1] = -1;
    internal_error_ = MHD_create_response_from_buffer(
        sizeof kInternalError - 1, const_cast<char*>(kInternalError), MHD_RESPMEM_PERSISTENT);
    watchdog_ = std::thread([this] { Watchdog(); });
  }
  ~Impl() {
    Stop();
    if (internal_error_) MHD_destroy_response(internal_error_);
    for (int fd : wake_) {
      if (fd >= 0) ::close(fd);
    }
  }

  Status ListenUnix(const UnixListener& spec);
  Result<int> ListenTcp(const TcpListener& spec);
  void Stop();

 private:
  // One listener: a libmicrohttpd daemon and what its admission needs.
  struct Listener {
    Impl* impl = nullptr;
    MHD_Daemon* daemon = nullptr;
    bool is_unix = false;
    TcpListener tcp;
    UnixListener unix_;
    int unix_fd = -1;  // ours until Stop(); libmicrohttpd owns a TCP listener's
    std::thread acceptor;
    std::mutex log_mu;
    std::string last_error;  // libmicrohttpd's last complaint, for start failures
    // Unix admission, guarded by mu_: connections admitted, in all and
    // by uid, and the credentials of those libmicrohttpd has not picked up yet.
    unsigned admitted = 0;
    std::map<uid_t, unsigned> by_uid;
    std::map<int, ucred> pending;
  };

  // A connection (libmicrohttpd's socket context).
  struct Conn {
    Listener* listener = nullptr;
    int fd = -1;
    Phase phase = Phase::kIdle;        // guarded by mu_
    Clock::time_point deadline;        // guarded by mu_
    bool cut = false;                  // guarded by mu_
    std::optional<ucred> cred;         // unix: admitted with these ids
    std::optional<Peer> peer;          // unix: resolved once; TCP: last proven
    std::string proven_authorization;  // TCP: the header `peer` was proven with
  };

  // A request (libmicrohttpd's request context).
  struct Req {
    Conn* conn = nullptr;
    bool head_done = false;
    bool chunked = false;
    uint64_t charged = 0;
    HttpRequest request;
  };

  static constexpr char kInternalError[] =
      "the server failed on this request (logged); it serves on\n";

  Status Start(Listener* l, int listen_fd);
  void AcceptUnix(Listener* l);
  // Hands the connection `fd` to libmicrohttpd, or answers 503 and closes
  // it. Throws (out of memory) only while `fd` is still the caller's.
  void Hand(Listener* l, int fd, const sockaddr_un& addr, socklen_t len);
  // Admits a peer with `cred` if its uid has room (Listener's caps); else
  // false and `why`.
  bool TakeSlot(Listener* l, const ucred& cred, std::string* why);
  // Frees the slot of a connection of `uid`. REQUIRES: mu_ held.
  void GiveBack(Listener* l, uid_t uid);
  void Watchdog();
  void Note(std::string_view what, LogLevel level = LogLevel::kInfo) const {
    if (options_.log) options_.log(level, what);
  }
  // Moves `c` into `phase`, whose deadline is `within` from now.
  void Arm(Conn* c, Phase phase, std::chrono::seconds within);

  MHD_Result Head(Listener* l, MHD_Connection* c, Req* r, const char* url, const char* method,
                  const char* version);
  MHD_Result Body(Req* r, const char* upload, size_t* upload_size);
  MHD_Result Answer(MHD_Connection* c, Req* r);
  bool Identify(Listener* l, MHD_Connection* c, Req* r);
  void Release(Req* r);
  MHD_Result LastResort(MHD_Connection* c, const char* what);

  static Conn* ConnOf(MHD_Connection* c);
  // A libmicrohttpd response that owns `resp`'s body (moved out) and has
  // its headers; null when out of memory.
  static MHD_Response* Make(HttpResponse& resp);
  static MHD_Result Queue(MHD_Connection* c, HttpResponse resp);
  static MHD_Result OnAccess(void* cls, MHD_Connection* c, const char* url, const char* method,
                             const char* version, const char* upload, size_t* upload_size,
                             void** req_cls);
  static void* OnRequestLine(void* cls, const char* uri, MHD_Connection* c);
  static void OnRequestDone(void* cls, MHD_Connection* c, void** req_cls,
                            MHD_RequestTerminationCode why);
  static void OnConnection(void* cls, MHD_Connection* c, void** socket_context,
                           MHD_ConnectionNotificationCode what);
  static void OnLibraryLog(void* cls, const char* format, va_list args);

  Handler handler_;
  const Options options_;
  Budget budget_;
  MHD_Response* internal_error_ = nullptr;
  int wake_[2] = {-1, -1};  // readable once Stop() began: ends the unix acceptors
  std::vector<std::unique_ptr<Listener>> listeners_;

  std::mutex mu_;
  std::vector<Conn*> conns_;  // every open connection, for the watchdog
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread watchdog_;
};

HttpServer::Impl::Conn* HttpServer::Impl::ConnOf(MHD_Connection* c) {
  const MHD_ConnectionInfo* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return info ? static_cast<Conn*>(info->socket_context) : nullptr;
}

namespace {

MHD_Result CollectHeader(void* cls, MHD_ValueKind, const char* key, size_t key_size,
                         const char* value, size_t value_size) {
  static_cast<Headers*>(cls)->emplace_back(std::string(key, key_size),
                                           std::string(value ? value : "", value ? value_size : 0));
  return MHD_YES;
}

void Nice(int niceness) {
  thread_local bool done = false;
  if (done || niceness <= 0) return;
  done = true;
  // Linux schedules threads on their own: this thread alone is niced.
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), niceness);
}

HttpResponse Busy() {
  HttpResponse r = TextResponse(503, "the server is busy with other requests; retry shortly");
  r.headers.emplace_back("Retry-After", kRetryAfterSeconds);
  return r;
}

}  // namespace

void HttpServer::Impl::Arm(Conn* c, Phase phase, std::chrono::seconds within) {
  std::lock_guard lock(mu_);
  c->phase = phase;
  c->deadline = options_.env->Now() + within;
}

MHD_Response* HttpServer::Impl::Make(HttpResponse& resp) {
  auto* body = new std::string(std::move(resp.body));
  MHD_Response* m = MHD_create_response_from_buffer_with_free_callback_cls(
      body->size(), body->data(), [](void* cls) { delete static_cast<std::string*>(cls); }, body);
  if (!m) {
    delete body;
    return nullptr;
  }
  for (const auto& [k, v] : resp.headers) (void)MHD_add_response_header(m, k.c_str(), v.c_str());
  return m;
}

MHD_Result HttpServer::Impl::Queue(MHD_Connection* c, HttpResponse resp) {
  MHD_Response* m = Make(resp);
  if (!m) return MHD_NO;
  const MHD_Result queued = MHD_queue_response(c, static_cast<unsigned>(resp.status), m);
  MHD_destroy_response(m);
  return queued;
}

MHD_Result HttpServer::Impl::LastResort(MHD_Connection* c, const char* what) {
  // Nothing here may allocate much: memory may be what ran out.
  Note(what, LogLevel::kError);
  if (MHD_queue_response(c, 500, internal_error_) == MHD_YES) return MHD_YES;
  return MHD_NO;  // mid-body: libmicrohttpd closes the connection
}

MHD_Result HttpServer::Impl::OnAccess(void* cls, MHD_Connection* c, const char* url,
                                      const char* method, const char* version, const char* upload,
                                      size_t* upload_size, void** req_cls) {
  auto* l = static_cast<Listener*>(cls);
  Impl* self = l->impl;
  try {
    auto* r = static_cast<Req*>(*req_cls);
    if (!r) {  // OnRequestLine ran out of memory
      r = new Req{ConnOf(c)};
      *req_cls = r;
    }
    if (!r->head_done) return self->Head(l, c, r, url, method, version);
    if (*upload_size > 0) return self->Body(r, upload, upload_size);
    return self->Answer(c, r);
  } catch (const std::bad_alloc&) {
    return self->LastResort(c, "last resort: out of memory while serving a request");
  } catch (const std::exception& e) {
    std::string what = "last resort: a request failed with an exception: ";
    try {
      what += e.what();
    } catch (...) {
    }
    return self->LastResort(c, what.c_str());
  } catch (...) {
    return self->LastResort(c, "last resort: a request failed with an unknown exception");
  }
}

MHD_Result HttpServer::Impl::Head(Listener* l, MHD_Connection* c, Req* r, const char* url,
                                  const char* method, const char* version) {
  Nice(options_.connection_nice);
  r->head_done = true;
  if (r->conn) Arm(r->conn, Phase::kBody, options_.body_timeout);
  HttpRequest& req = r->request;
  req.method = method;
  req.target = url;
  MHD_get_connection_values_n(c, MHD_HEADER_KIND, &CollectHeader, &req.headers);
  auto framing = CheckFraming(req.headers, version, options_.max_body_bytes);
  if (auto* bad = std::get_if<FramingError>(&framing)) {
    return Queue(
        c, TextResponse(bad->status, bad->reason, bad->status == 413 ? "request-not-valid" : ""));
  }
  if (!Identify(l, c, r)) {
    HttpResponse text = TextResponse(401, "credentials required (HTTP Basic, a user of this host)");
    MHD_Response* m = Make(text);
    if (!m) return MHD_NO;
    const MHD_Result queued = MHD_queue_basic_auth_fail_response(c, kRealm, m);
    MHD_destroy_response(m);
    return queued;
  }
  const bool metrics = req.target == "/metrics" && (l->is_unix ? l->unix_.metrics : l->tcp.metrics);
  if (!metrics && req.target != "/cimom" && req.target != "/") {
    return Queue(c, TextResponse(404, "CIM operations are posted to /cimom"));
  }
  const BodyFraming& body = std::get<BodyFraming>(framing);
  r->chunked = body.kind == BodyFraming::Kind::kChunked;
  if (body.kind == BodyFraming::Kind::kLength) {
    // Charged before a byte of the body comes: a request the budget cannot
    // hold is answered now, and none is read that would pass it.
    const uint64_t cost = body.length * HttpServer::kParseFactor;
    if (!budget_.TryCharge(cost)) {
      Note("503 to a request of " + std::to_string(body.length) +
           " bytes: the request memory budget is spent");
      return Queue(c, Busy());
    }
    r->charged = cost;
  }
  return MHD_YES;
}

bool HttpServer::Impl::Identify(Listener* l, MHD_Connection* c, Req* r) {
  // Without a Conn (out of memory when it started) nothing is remembered:
  // a unix peer is nobody, TCP credentials are checked every time.
  Conn scratch{l};
  Conn* conn = r->conn ? r->conn : &scratch;
  if (l->is_unix) {
    if (!conn->peer) {
      conn->peer = conn->cred ? l->unix_.who(conn->cred->uid, conn->cred->gid) : Peer{};
    }
    r->request.peer = *conn->peer;
    return true;
  }
  if (!l->tcp.auth) {
    r->request.peer = Peer{"anonymous (--insecure-loopback)", Role::kAdmin, "", ""};
    return true;
  }
  const std::string* presented = r->request.Header("Authorization");
  if (!presented) return false;
  if (conn->peer && conn->proven_authorization == *presented) {
    r->request.peer = *conn->peer;
    return true;
  }
  char* password = nullptr;
  char* user = MHD_basic_auth_get_username_password(c, &password);
  std::optional<Peer> peer;
  if (user && password && *user) peer = l->tcp.auth(user, password);
  if (password) {
    ::explicit_bzero(password, std::strlen(password));
    MHD_free(password);
  }
  if (user) MHD_free(user);
  if (!peer) return false;
  conn->peer = std::move(peer);
  conn->proven_authorization = *presented;
  r->request.peer = *conn->peer;
  return true;
}

MHD_Result HttpServer::Impl::Body(Req* r, const char* upload, size_t* upload_size) {
  const size_t n = *upload_size;
  // libmicrohttpd hands over no more than a Content-Length declared (and
  // CheckFraming bounded); a chunked body is bounded here, as it comes.
  if (r->request.body.size() + n > options_.max_body_bytes) {
    Note("closed a connection: its chunked body passed " + std::to_string(options_.max_body_bytes) +
         " bytes");
    return MHD_NO;
  }
  if (r->chunked) {
    const uint64_t cost = n * HttpServer::kParseFactor;
    if (!budget_.TryCharge(cost)) {
      Note("closed a connection: its chunked body would pass the request memory budget");
      return MHD_NO;
    }
    r->charged += cost;
  }
  r->request.body.append(upload, n);
  *upload_size = 0;
  return MHD_YES;
}

MHD_Result HttpServer::Impl::Answer(MHD_Connection* c, Req* r) {
  if (r->conn) Arm(r->conn, Phase::kHandling, std::chrono::seconds(0));
  HttpResponse resp = handler_(r->request);
  Release(r);  // the body is parsed and answered: what it pinned is free
  return Queue(c, std::move(resp));
}

void HttpServer::Impl::Release(Req* r) {
  std::string().swap(r->request.body);
  budget_.Release(r->charged);
  r->charged = 0;
}

void* HttpServer::Impl::OnRequestLine(void* cls, const char*, MHD_Connection* c) {
  auto* l = static_cast<Listener*>(cls);
  Conn* conn = ConnOf(c);
  if (conn) l->impl->Arm(conn, Phase::kHead, l->impl->options_.header_timeout);
  return new (std::nothrow) Req{conn};
}

void HttpServer::Impl::OnRequestDone(void* cls, MHD_Connection* c, void** req_cls,
                                     MHD_RequestTerminationCode) {
  auto* l = static_cast<Listener*>(cls);
  auto* r = static_cast<Req*>(*req_cls);
  *req_cls = nullptr;
  if (r) {
    l->impl->Release(r);
    delete r;
  }
  if (Conn* conn = ConnOf(c)) l->impl->Arm(conn, Phase::kIdle, l->impl->options_.idle_timeout);
}

void HttpServer::Impl::OnConnection(void* cls, MHD_Connection* c, void** socket_context,
                                    MHD_ConnectionNotificationCode what) {
  auto* l = static_cast<Listener*>(cls);
  Impl* self = l->impl;
  if (what == MHD_CONNECTION_NOTIFY_STARTED) {
    auto* conn = new (std::nothrow) Conn{l};
    if (!conn) return;  // no deadlines for it; libmicrohttpd's idle timeout still holds
    const MHD_ConnectionInfo* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    conn->fd = info ? info->connect_fd : -1;
    std::lock_guard lock(self->mu_);
    if (l->is_unix) {
      if (auto it = l->pending.find(conn->fd); it != l->pending.end()) {
        conn->cred = it->second;
        l->pending.erase(it);
      }
    }
    conn->phase = Phase::kIdle;
    conn->deadline = self->options_.env->Now() + self->options_.idle_timeout;
    try {
      self->conns_.push_back(conn);
    } catch (...) {  // out of memory: no deadlines for it, as above
      delete conn;
      return;
    }
    *socket_context = conn;
    return;
  }
  auto* conn = static_cast<Conn*>(*socket_context);
  if (!conn) return;
  {
    // libmicrohttpd closes the socket after this returns: the watchdog,
    // which shuts sockets down under mu_, never touches a reused number.
    std::lock_guard lock(self->mu_);
    std::erase(self->conns_, conn);
    if (conn->cred) self->GiveBack(l, conn->cred->uid);
  }
  delete conn;
  *socket_context = nullptr;
}

void HttpServer::Impl::OnLibraryLog(void* cls, const char* format, va_list args) {
  auto* l = static_cast<Listener*>(cls);
  char line[512];
  std::vsnprintf(line, sizeof line, format, args);
  line[std::strcspn(line, "\r\n")] = '\0';
  try {
    {
      std::lock_guard lock(l->log_mu);  // connection threads log too
      l->last_error = line;
    }
    // Its complaints are mostly about clients (limits, TLS handshakes) or
    // socket options a unix socket lacks: for debugging, not the journal.
    l->impl->Note(std::string("libmicrohttpd: ") + line, LogLevel::kDebug);
  } catch (...) {  // out of memory: the line is lost, nothing else
  }
}

void HttpServer::Impl::Watchdog() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, std::chrono::milliseconds(250));
    const auto now = options_.env->Now();
    for (Conn* c : conns_) {
      if (c->cut || c->phase == Phase::kHandling || now < c->deadline || c->fd < 0) continue;
      c->cut = true;
      // Said before it happens, so whoever sees the connection end finds
      // the reason logged. An idle keep-alive connection ending is no news.
      try {
        if (c->phase == Phase::kHead) {
          Note("closing a connection: its request head did not arrive in time");
        } else if (c->phase == Phase::kBody) {
          Note("closing a connection: its request body did not arrive in time");
        }
      } catch (...) {  // out of memory: the line is lost, nothing else
      }
      // The connection's thread sees its socket end and closes it.
      ::shutdown(c->fd, SHUT_RDWR);
    }
  }
}

Status HttpServer::Impl::Start(Listener* l, int listen_fd) {
  const bool tls = !l->is_unix && !l->tcp.tls_cert_pem.empty();
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                   MHD_USE_ITC | MHD_USE_ERROR_LOG;
  if (tls) flags |= MHD_USE_TLS;
  if (l->is_unix) flags |= MHD_USE_NO_LISTEN_SOCKET;
  // Unix admission is ours (TakeSlot); libmicrohttpd's own cap sits above it,
  // as its count of closed connections lags behind ours.
  const unsigned limit = l->is_unix ? 2 * l->unix_.max_connections : l->tcp.max_connections;
  std::vector<MHD_OptionItem> opts = {
      {MHD_OPTION_EXTERNAL_LOGGER, reinterpret_cast<intptr_t>(&OnLibraryLog), l},
      {MHD_OPTION_CONNECTION_LIMIT, limit, nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, static_cast<intptr_t>(options_.idle_timeout.count()),
       nullptr},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemory, nullptr},
      {MHD_OPTION_STRICT_FOR_CLIENT, 1, nullptr},
      {MHD_OPTION_NOTIFY_COMPLETED, reinterpret_cast<intptr_t>(&OnRequestDone), l},
      {MHD_OPTION_NOTIFY_CONNECTION, reinterpret_cast<intptr_t>(&OnConnection), l},
      {MHD_OPTION_URI_LOG_CALLBACK, reinterpret_cast<intptr_t>(&OnRequestLine), l},
  };
  if (!l->is_unix) {
    opts.push_back({MHD_OPTION_LISTEN_SOCKET, listen_fd, nullptr});
    opts.push_back({MHD_OPTION_PER_IP_CONNECTION_LIMIT, l->tcp.max_per_address, nullptr});
  }
  if (tls) {
    opts.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, l->tcp.tls_cert_pem.data()});
    opts.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, l->tcp.tls_key_pem.data()});
    opts.push_back({MHD_OPTION_HTTPS_PRIORITIES, 0, const_cast<char*>(kTlsPriorities)});
  }
  opts.push_back({MHD_OPTION_END, 0, nullptr});
  l->daemon = MHD_start_daemon(flags, 0, nullptr, nullptr, &OnAccess, l, MHD_OPTION_ARRAY,
                               opts.data(), MHD_OPTION_END);
  if (!l->daemon) {
    std::lock_guard lock(l->log_mu);
    return Status::InvalidArgument(
        std::string(tls ? "cannot serve HTTPS (is the certificate and key PEM, and do they "
                          "match?)"
                        : "cannot start serving") +
        (l->last_error.empty() ? "" : ": " + l->last_error));
  }
  return Status::Ok();
}

Status HttpServer::Impl::ListenUnix(const UnixListener& spec) {
  UniqueFd fd;
  const bool inherited = spec.inherited_fd >= 0;
  if (inherited) {
    fd.reset(spec.inherited_fd);
    // The accept loop polls; a blocking accept would hang on a peer that
    // left the queue before it was taken.
    const int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
      return Status::IoError("the socket passed for " + spec.path + ": " + std::strerror(errno));
    }
  } else {
    VMG_ASSIGN_OR_RETURN(const sockaddr_un addr, UnixAddress(spec.path));
    // A socket file nobody listens on is left by a daemon that died; one
    // that answers belongs to a daemon still running, which must not be
    // robbed.
    if (ConnectUnix(options_.env, spec.path, options_.env->Now()).ok()) {
      return Status::AlreadyExists("another server is listening on " + spec.path);
    }
    fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return Status::IoError(std::string("socket: ") + std::strerror(errno));
    ::unlink(spec.path.c_str());
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      return Status::IoError("cannot bind " + spec.path + ": " + std::strerror(errno));
    }
    if (::chmod(spec.path.c_str(), spec.mode) != 0 || ::listen(fd.get(), 128) != 0) {
      ::unlink(spec.path.c_str());
      return Status::IoError("cannot listen on " + spec.path + ": " + std::strerror(errno));
    }
  }
  auto l = std::make_unique<Listener>();
  l->impl = this;
  l->is_unix = true;
  l->unix_ = spec;
  if (Status s = Start(l.get(), -1); !s.ok()) {
    if (!inherited) ::unlink(spec.path.c_str());
    return s;
  }
  l->unix_fd = fd.get();
  Listener* raw = l.get();
  listeners_.push_back(std::move(l));
  raw->acceptor = std::thread([this, raw, keep = std::move(fd)]() mutable {
    AcceptUnix(raw);
    keep.reset();
  });
  return Status::Ok();
}

bool HttpServer::Impl::TakeSlot(Listener* l, const ucred& cred, std::string* why) {
  const UnixListener& u = l->unix_;
  std::lock_guard lock(mu_);
  const unsigned mine = l->by_uid.contains(cred.uid) ? l->by_uid[cred.uid] : 0;
  if (l->admitted >= u.max_connections) {
    *why = "all " + std::to_string(u.max_connections) + " connections are in use";
  } else if (cred.uid != 0 && l->admitted >= u.max_connections - u.root_reserved) {
    *why = "the remaining connections are kept for root";
  } else if (cred.uid != 0 && mine >= u.max_per_uid) {
    *why = "uid " + std::to_string(cred.uid) + " has " + std::to_string(mine) +
           " connections open, the most one user may";
  } else {
    ++l->admitted;
    ++l->by_uid[cred.uid];
    return true;
  }
  return false;
}

void HttpServer::Impl::AcceptUnix(Listener* l) {
  while (true) {
    pollfd fds[2] = {{l->unix_fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[1].revents & POLLIN) break;
    sockaddr_un addr{};
    socklen_t len = sizeof addr;
    const int fd = ::accept4(l->unix_fd, reinterpret_cast<sockaddr*>(&addr), &len,
                             SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    try {
      Hand(l, fd, addr, len);
    } catch (...) {  // out of memory before `fd` was handed on: dropped
      ::close(fd);
    }
  }
}

void HttpServer::Impl::Hand(Listener* l, int fd, const sockaddr_un& addr, socklen_t len) {
  ucred cred{};
  socklen_t cred_len = sizeof cred;
  std::string why = "its credentials cannot be read";
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0 ||
      !TakeSlot(l, cred, &why)) {
    const std::string text = "connection refused: " + why + "; retry shortly\n";
    const std::string answer =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Retry-After: " +
        std::string(kRetryAfterSeconds) +
        "\r\nConnection: close\r\nContent-Length: " + std::to_string(text.size()) + "\r\n\r\n" +
        text;
    (void)::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::close(fd);
    try {
      Note("refused a unix-socket connection of uid " + std::to_string(cred.uid) + ": " + why);
    } catch (...) {  // out of memory: the line is lost, nothing else
    }
    return;
  }
  try {
    std::lock_guard lock(mu_);
    l->pending[fd] = cred;
  } catch (...) {
    std::lock_guard lock(mu_);
    GiveBack(l, cred.uid);
    throw;
  }
  if (MHD_add_connection(l->daemon, fd, reinterpret_cast<const sockaddr*>(&addr), len) != MHD_YES) {
    // libmicrohttpd closed it: take back its slot.
    std::lock_guard lock(mu_);
    if (l->pending.erase(fd) > 0) GiveBack(l, cred.uid);
  }
}

void HttpServer::Impl::GiveBack(Listener* l, uid_t uid) {
  --l->admitted;
  if (--l->by_uid[uid] == 0) l->by_uid.erase(uid);
}

namespace {

// A TCP socket bound to the listener's host and port, listening.
// InvalidArgument for an address that does not resolve.
Result<UniqueFd> BindTcp(const HttpServer::TcpListener& spec) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(spec.port);
  if (int rc = ::getaddrinfo(spec.host.empty() ? nullptr : spec.host.c_str(), service.c_str(),
                             &hints, &res);
      rc != 0) {
    return Status::InvalidArgument("cannot resolve " + spec.host + ": " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
  UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return Status::IoError(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd.get(), 128) != 0) {
    return Status::IoError("cannot listen on " + spec.host + ":" + service + ": " +
                           std::strerror(errno));
  }
  return fd;
}

}  // namespace

Result<int> HttpServer::Impl::ListenTcp(const TcpListener& spec) {
  UniqueFd fd;
  if (spec.inherited_fd >= 0) {
    fd.reset(spec.inherited_fd);
  } else {
    VMG_ASSIGN_OR_RETURN(fd, BindTcp(spec));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
  const int port = bound.ss_family == AF_INET6
                       ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                       : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  // libmicrohttpd gets a descriptor of its own, which it closes when it stops.
  const int given = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0);
  if (given < 0) return Status::IoError(std::string("dup: ") + std::strerror(errno));
  auto l = std::make_unique<Listener>();
  l->impl = this;
  l->tcp = spec;
  if (Status s = Start(l.get(), given); !s.ok()) {
    // libmicrohttpd closes the socket on some of its failures and not on
    // others: close `given` only if it still is this socket.
    struct stat ours {
    }, theirs{};
    if (::fstat(fd.get(), &ours) == 0 && ::fstat(given, &theirs) == 0 &&
        ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev) {
      ::close(given);
    }
    return s;
  }
  listeners_.push_back(std::move(l));
  return port;
}

void HttpServer::Impl::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (wake_[1] >= 0) {
    char c = 1;
    (void)!::write(wake_[1], &c, 1);
  }
  for (auto& l : listeners_) {
    if (l->acceptor.joinable()) l->acceptor.join();
    if (l->daemon) MHD_stop_daemon(l->daemon);
    l->daemon = nullptr;
    if (l->is_unix && l->unix_.inherited_fd < 0) ::unlink(l->unix_.path.c_str());
    ::explicit_bzero(l->tcp.tls_key_pem.data(), l->tcp.tls_key_pem.size());
  }
  if (watchdog_.joinable()) watchdog_.join();
}

HttpServer::HttpServer(Handler handler, Options options)
    : impl_(std::make_unique<Impl>(std::move(handler), std::move(options))) {}

HttpServer::~HttpServer() = default;

Status HttpServer::ListenUnix(const UnixListener& listener) { return impl_->ListenUnix(listener); }

Result<int> HttpServer::ListenTcp(const TcpListener& listener) {
  return impl_->ListenTcp(listener);
}

void HttpServer::Stop() { impl_->Stop(); }

}  // namespace vmgroup::cim
