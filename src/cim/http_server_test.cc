#include "cim/http_server.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "base/unique_fd.h"
#include "cim/http_client.h"
#include "testing/fake_clock_env.h"
#include "testing/raw_http.h"

namespace vmgroup::cim {
namespace {

using namespace std::chrono_literals;

using vmgroup::testing::ConnectTcp;
using vmgroup::testing::ConnectUnix;
using vmgroup::testing::HttpStatus;
using vmgroup::testing::ReceiveHttp;
using vmgroup::testing::SendAll;

class HttpServerTest : public ::testing::Test {
 protected:
  HttpServerTest() { Start({}); }
  ~HttpServerTest() override { server_->Stop(); }

  // (Re)starts the server with `o` on a unix socket (peers resolved to
  // readers, or admins for root) and TCP with Basic alice:s3cret.
  void Start(HttpServer::Options o, HttpServer::UnixListener unix_listener = {},
             HttpServer::TcpListener tcp = {}) {
    if (server_) server_->Stop();
    o.log = [this](LogLevel, std::string_view line) {
      std::lock_guard lock(log_mu_);
      log_ += std::string(line) + "\n";
    };
    server_ = std::make_unique<HttpServer>(
        [this](const HttpRequest& r) {
          ++handled_;
          if (r.body == "throw") throw std::runtime_error("provider bug");
          if (r.body == "bad_alloc") throw std::bad_alloc();
          HttpResponse resp{200, {{"Content-Type", "text/plain"}}, "echo:" + r.body};
          resp.headers.emplace_back("X-Peer", r.peer.name);
          resp.headers.emplace_back("X-Role", std::to_string(static_cast<int>(r.peer.role)));
          return resp;
        },
        o);
    unix_listener.path = socket_;
    unix_listener.who = [](uid_t uid, gid_t) {
      return Peer{"uid " + std::to_string(uid), uid == 0 ? Role::kAdmin : Role::kReader, "", ""};
    };
    ASSERT_TRUE(server_->ListenUnix(unix_listener).ok());
    tcp.host = "127.0.0.1";
    tcp.auth = [](const std::string& user, const std::string& password) -> std::optional<Peer> {
      if (user != "alice" || password != "s3cret") return std::nullopt;
      return Peer{"alice", Role::kAdmin, "", ""};
    };
    auto port = server_->ListenTcp(tcp);
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    port_ = *port;
  }

  Result<HttpResponse> Post(const std::string& endpoint, const std::string& body) {
    auto client = HttpClient::Create(endpoint);
    if (!client.ok()) return client.status();
    return (*client)->Post("/cimom", {{"Content-Type", "text/plain"}}, body, 30s);
  }
  std::string Url(const std::string& userinfo = "alice:s3cret@") const {
    return "http://" + userinfo + "127.0.0.1:" + std::to_string(port_);
  }
  std::string Log() {
    std::lock_guard lock(log_mu_);
    return log_;
  }

  const std::string socket_ = "/tmp/vmg-http-" + std::to_string(::getpid()) + ".sock";
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  std::atomic<int> handled_{0};
  std::mutex log_mu_;
  std::string log_;
};

TEST_F(HttpServerTest, ServesUnixAndTcpWithCredentialsAndKeepsConnectionsAlive) {
  auto local = HttpClient::Create("unix:" + socket_);
  ASSERT_TRUE(local.ok());
  for (int i = 0; i < 3; ++i) {
    auto r = (*local)->Post("/cimom", {}, "hi", 10s);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "echo:hi");
    EXPECT_EQ(*r->Header("X-Peer"), "uid 0");
    EXPECT_EQ(*r->Header("X-Role"), "2");
  }
  auto good = Post(Url(), "tcp");
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(good->body, "echo:tcp");
  EXPECT_EQ(*good->Header("X-Peer"), "alice");

  for (const char* who : {"alice:wrong@", "", "bob:s3cret@"}) {
    auto refused = Post(Url(who), "tcp");
    ASSERT_TRUE(refused.ok());
    EXPECT_EQ(refused->status, 401) << who;
    EXPECT_NE(refused->Header("WWW-Authenticate"), nullptr);
  }
  auto lost = Post("unix:" + socket_, "");
  EXPECT_EQ(lost->status, 200);
  EXPECT_EQ(handled_, 5);
  server_->Stop();
  EXPECT_EQ((*local)->Post("/cimom", {}, "hi", 10s).status().code(), Code::kUnavailable);
}

TEST_F(HttpServerTest, AmbiguousFramingIsRefusedBeforeTheHandler) {
  struct Case {
    std::string head;
    int status;
  };
  const std::string start = "POST /cimom HTTP/1.1\r\nHost: x\r\n";
  for (const Case& c : std::vector<Case>{
           {start + "Transfer-Encoding: gzip\r\n\r\n", 400},
           {start + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501},
           {start + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400},
           {start + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", 400},
           {start + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400},
           {start + "Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc", 400},
           {start + "Content-Length: 99999999999\r\n\r\n", 413},
           {start + "Content-Length: 3x\r\n\r\nabc", 400},
           {"POST /cimom HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
           {"POST /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404},
       }) {
    UniqueFd fd = ConnectUnix(socket_);
    ASSERT_TRUE(SendAll(fd.get(), c.head));
    const std::string answer = ReceiveHttp(fd.get(), false);
    EXPECT_EQ(HttpStatus(answer), c.status) << c.head << "\n" << answer;
  }
  EXPECT_EQ(handled_, 0);
  auto fine = Post("unix:" + socket_, "still serving");
  EXPECT_EQ(fine->body, "echo:still serving");
}

TEST_F(HttpServerTest, MetricsPassOnlyWhereTheListenerServesThemAndAfterCredentials) {
  const std::string get = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  auto status = [&](UniqueFd fd, const std::string& head) {
    EXPECT_TRUE(SendAll(fd.get(), head));
    return HttpStatus(ReceiveHttp(fd.get(), /*stop_at_head=*/true));
  };
  EXPECT_EQ(status(ConnectUnix(socket_), get), 404);
  EXPECT_EQ(handled_, 0);

  Start({}, {.metrics = true}, {.metrics = true});
  EXPECT_EQ(status(ConnectUnix(socket_), get), 200);
  EXPECT_EQ(status(ConnectTcp(port_), get), 401) << "credentials first, as for /cimom";
  EXPECT_EQ(
      status(ConnectTcp(port_),
             "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n\r\n"),
      200);
  EXPECT_EQ(handled_, 2);
}

// 10 + 0xfffffffffffffff6 wraps to 0: the old server's body limit check
// passed, and it read on forever.
TEST_F(HttpServerTest, AChunkOfAlmostTwoToTheSixtyFourIsCutOffAtTheLimit) {
  UniqueFd fd = ConnectUnix(socket_);
  ASSERT_TRUE(SendAll(fd.get(),
                      "POST /cimom HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "a\r\n0123456789\r\nfffffffffffffff6\r\n"));
  // The server stops taking bytes soon after the 4 MiB limit: 64 MiB never
  // all go through.
  const std::string block(1 << 20, 'x');
  size_t sent = 0;
  while (sent < (64u << 20) && SendAll(fd.get(), block)) sent += block.size();
  EXPECT_LT(sent, 64u << 20);
  EXPECT_EQ(handled_, 0);
  EXPECT_NE(Log().find("chunked body passed"), std::string::npos) << Log();
  // A chunked body within the limit is served.
  fd = ConnectUnix(socket_);
  ASSERT_TRUE(SendAll(fd.get(),
                      "POST /cimom HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"));
  const std::string answer = ReceiveHttp(fd.get(), true);
  EXPECT_EQ(HttpStatus(answer), 200) << answer;
}

TEST_F(HttpServerTest, CredentialsAreJudgedBeforeTheBody) {
  // A body that never comes: the 401 comes anyway, and no 100 Continue.
  for (const std::string& expect : {std::string(), std::string("Expect: 100-continue\r\n")}) {
    UniqueFd fd = ConnectTcp(port_);
    ASSERT_TRUE(SendAll(fd.get(), "POST /cimom HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n" +
                                      expect + "\r\n"));
    const std::string answer = ReceiveHttp(fd.get(), false);
    EXPECT_EQ(HttpStatus(answer), 401) << answer;
    EXPECT_NE(answer.find("WWW-Authenticate: Basic"), std::string::npos) << answer;
  }
  // With credentials, 100 Continue invites the body.
  UniqueFd fd = ConnectTcp(port_);
  ASSERT_TRUE(SendAll(fd.get(),
                      "POST /cimom HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n"
                      "Expect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  EXPECT_EQ(HttpStatus(ReceiveHttp(fd.get(), true)), 100);
  ASSERT_TRUE(SendAll(fd.get(), "body"));
  const std::string answer = ReceiveHttp(fd.get(), true);
  EXPECT_EQ(HttpStatus(answer), 200) << answer;
  EXPECT_EQ(handled_, 1);
}

TEST_F(HttpServerTest, TheRequestMemoryBudgetIsChargedBeforeTheBodyComes) {
  // Room for one 40 KB body: 40 KB x 18 = 720 KB of 1 MiB.
  Start({.request_memory_budget = 1 << 20});
  const std::string head = "POST /cimom HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n\r\n";
  // The server answers 100 Continue once it has charged the head.
  UniqueFd holder = ConnectUnix(socket_);
  ASSERT_TRUE(SendAll(holder.get(),
                      "POST /cimom HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n"
                      "Expect: 100-continue\r\n\r\n"));
  ASSERT_EQ(HttpStatus(ReceiveHttp(holder.get(), true)), 100);
  ASSERT_TRUE(SendAll(holder.get(), "part of it"));
  // A second big request finds the budget spent.
  UniqueFd second = ConnectUnix(socket_);
  SendAll(second.get(), head + std::string(40000, 'b'));
  const std::string answer = ReceiveHttp(second.get(), true);
  EXPECT_EQ(HttpStatus(answer), 503) << answer;
  EXPECT_NE(answer.find("Retry-After: 2"), std::string::npos) << answer;
  // Small requests still fit beside it.
  EXPECT_EQ(Post("unix:" + socket_, "small")->status, 200);
  // Once the first one is whole and answered, its share is free again.
  ASSERT_TRUE(SendAll(holder.get(), std::string(40000 - 10, 'y')));
  EXPECT_EQ(HttpStatus(ReceiveHttp(holder.get(), true)), 200);
  holder.reset();
  auto again = HttpClient::Create("unix:" + socket_);
  auto big = (*again)->Post("/cimom", {}, std::string(40000, 'z'), 30s);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->status, 200);
}

TEST_F(HttpServerTest, AnExceptionInTheHandlerIsA500AndTheServerServesOn) {
  for (const char* body : {"throw", "bad_alloc"}) {
    auto r = Post("unix:" + socket_, body);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 500) << body;
  }
  EXPECT_NE(Log().find("provider bug"), std::string::npos) << Log();
  EXPECT_NE(Log().find("out of memory"), std::string::npos) << Log();
  EXPECT_EQ(Post("unix:" + socket_, "after")->body, "echo:after");
}

TEST_F(HttpServerTest, ASlowHeadIsCutOffAtItsDeadline) {
  Start({.header_timeout = 1s});
  UniqueFd fd = ConnectUnix(socket_);
  // One byte every 100 ms keeps the connection active, never idle: only
  // the head's deadline ends it. 600 bytes would take a minute.
  const std::string head = "POST /cimom HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(600, 'a');
  bool cut = false;
  for (size_t i = 0; i < head.size() && !cut; ++i) {
    cut = !SendAll(fd.get(), head.substr(i, 1));
    pollfd p{fd.get(), POLLIN, 0};
    cut = cut || (::poll(&p, 1, 100) > 0 && ReceiveHttp(fd.get(), false).empty());
  }
  EXPECT_TRUE(cut);
  EXPECT_NE(Log().find("request head did not arrive in time"), std::string::npos) << Log();
  EXPECT_EQ(Post("unix:" + socket_, "ok")->status, 200);
}

// The deadlines are on the server's Env clock: moving that clock on cuts a
// half-sent head off long before its deadline would come in real time.
TEST_F(HttpServerTest, DeadlinesAreOnTheServersEnvClock) {
  vmgroup::testing::FakeClockEnv env;
  Start({.env = &env});
  UniqueFd fd = ConnectUnix(socket_);
  ASSERT_TRUE(SendAll(fd.get(), "POST /cimom HTTP/1.1\r\nHost: x\r\n"));
  bool cut = false;
  // The server moves the connection into its head phase on its own thread:
  // the clock goes on a head timeout at a time until that deadline passed.
  for (int i = 0; i < 50 && !cut; ++i) {
    env.Advance(11s);
    pollfd p{fd.get(), POLLIN, 0};
    cut = ::poll(&p, 1, 100) > 0 && ReceiveHttp(fd.get(), false).empty();
  }
  EXPECT_TRUE(cut) << "cut only by real time";
  EXPECT_NE(Log().find("request head did not arrive in time"), std::string::npos) << Log();
  server_->Stop();  // before `env` goes
}

TEST_F(HttpServerTest, ListenersHaveTheirOwnBudgetsAndTcpPeersTheirOwnShare) {
  Start({}, {}, {.max_connections = 4, .max_per_address = 2});
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 2; ++i) idle.push_back(ConnectTcp(port_));
  // A third connection from the same address is closed unanswered.
  UniqueFd third = ConnectTcp(port_);
  SendAll(third.get(), "POST /cimom HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(ReceiveHttp(third.get(), false), "");
  // The unix socket does not notice.
  EXPECT_EQ(Post("unix:" + socket_, "fine")->status, 200);
  // Once they close, the address has its share back (libmicrohttpd counts
  // a connection until its thread has ended).
  idle.clear();
  Result<HttpResponse> again = Status::Unavailable("not yet");
  for (int i = 0; i < 100 && !again.ok(); ++i) {
    again = Post(Url(), "tcp again");
    if (!again.ok()) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->status, 200);
}

TEST_F(HttpServerTest, TheUnixSocketKeepsRoomForRoot) {
  Start({}, {.max_connections = 6, .root_reserved = 2, .max_per_uid = 3});
  // Another user (nobody) opens as many connections as it can; each one
  // answers whether it was admitted. Everything the child needs is made
  // before fork: it only makes system calls.
  const std::string request = "POST /cimom HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
  int report[2], go[2];
  ASSERT_EQ(::pipe(report), 0);
  ASSERT_EQ(::pipe(go), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(1);
    int fds[5];
    for (int i = 0; i < 5; ++i) {
      fds[i] = ::socket(AF_UNIX, SOCK_STREAM, 0);
      char status = '?';
      if (::connect(fds[i], reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        // A refusal may come (and the server close) before the request goes.
        (void)::send(fds[i], request.data(), request.size(), MSG_NOSIGNAL);
        char buf[64];
        if (::recv(fds[i], buf, sizeof buf, 0) >= 12) status = buf[9];  // '2'00 or '5'03
      }
      (void)!::write(report[1], &status, 1);
    }
    char wait;
    (void)!::read(go[0], &wait, 1);  // holds its connections until told
    _exit(0);
  }
  char seen[5];
  for (char& c : seen) ASSERT_EQ(::read(report[0], &c, 1), 1);
  EXPECT_EQ(std::string(seen, 5), "22255") << "3 per uid; the rest refused";
  EXPECT_NE(Log().find("uid 65534 has 3 connections open"), std::string::npos) << Log();
  // Root gets in beside them, also past the non-root share.
  std::vector<std::unique_ptr<HttpClient>> root;
  for (int i = 0; i < 3; ++i) {
    root.push_back(*HttpClient::Create("unix:" + socket_));
    auto r = root.back()->Post("/cimom", {}, "root", 10s);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 200) << i;
  }
  (void)!::write(go[1], "x", 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  for (int fd : {report[0], report[1], go[0], go[1]}) ::close(fd);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace vmgroup::cim
