// vmgroupd as systemd runs it: readiness told through NOTIFY_SOCKET
// (Type=notify) only once it serves, and its stop announced; the unix
// socket and the TCP socket a socket unit passes (socket activation, played
// here by systemd-socket-activate) served, the unix one left in place when
// the daemon stops; a passed socket that no --listen names refused at start.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <future>

#include "base/unique_fd.h"
#include "base/unix_socket.h"
#include "daemon_fixture.h"

namespace vmgroup::e2e {
namespace {

class SystemdTest : public DaemonFixture {
 protected:
  void SetUp() override {}  // each test starts the daemon its own way

  // A datagram socket at `path`, as systemd's notification socket.
  UniqueFd NotifySocket(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    auto addr = UnixAddress(path);
    EXPECT_TRUE(addr.ok()) << addr.status().ToString();
    if (addr.ok()) {
      EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr), 0);
    }
    return fd;
  }
  // The next notification within `timeout`, or "".
  static std::string Receive(const UniqueFd& fd, std::chrono::milliseconds timeout) {
    timeval tv{.tv_sec = timeout.count() / 1000, .tv_usec = (timeout.count() % 1000) * 1000};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[512];
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }
};

TEST_F(SystemdTest, ReadinessIsToldOnceItServesAndItsStopAnnounced) {
  const std::string path = dir_ / "notify";
  UniqueFd notify = NotifySocket(path);
  launcher_ = {"env", "NOTIFY_SOCKET=" + path};
  StartDaemon();
  const std::string ready = Receive(notify, std::chrono::seconds(10));
  EXPECT_NE(ready.find("READY=1"), std::string::npos) << ready;
  // It was sent after the listeners were up: the CLI is answered.
  EXPECT_EQ(Cli({"vm", "list"}).exit_code, 0);
  StopDaemon();
  const std::string stopping = Receive(notify, std::chrono::seconds(10));
  EXPECT_NE(stopping.find("STOPPING=1"), std::string::npos) << stopping;
}

TEST_F(SystemdTest, APassedSocketIsServedAndOutlivesTheDaemon) {
  launcher_ = {"systemd-socket-activate", "-l", Socket()};
  // systemd-socket-activate starts the daemon at the first connection: the
  // CLI's, which the daemon then answers on the very socket it was passed.
  auto first = std::async(std::launch::async, [&] {
    while (!Env::Default()->FileExists(Socket())) {
      Env::Default()->SleepFor(std::chrono::milliseconds(10));
    }
    return Cli({"vm", "list", "--json"});
  });
  StartDaemon({"--insecure-loopback"}, "");
  const CommandOutput listed = first.get();
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out, "[]\n");
  EXPECT_NE(LogText().find("listening on unix:" + Socket() + " (passed by systemd)"),
            std::string::npos)
      << LogText();
  StopDaemon();
  EXPECT_TRUE(Env::Default()->FileExists(Socket())) << "the socket unit's, not the daemon's";
}

TEST_F(SystemdTest, APassedTcpSocketIsServedOnItsPort) {
  // A port nobody uses now (the kernel's pick, released at once).
  int port = 0;
  {
    UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{.sin_family = AF_INET, .sin_port = 0, .sin_addr = {htonl(INADDR_LOOPBACK)}};
    ASSERT_EQ(::bind(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port = ntohs(addr.sin_port);
  }
  const std::string where = "127.0.0.1:" + std::to_string(port);
  launcher_ = {"systemd-socket-activate", "-l", where};
  const std::string url = "http://" + where;
  auto first = std::async(std::launch::async, [&] {
    // Until systemd-socket-activate listens, a connection is refused (3).
    CommandOutput r;
    for (int i = 0; i < 1000; ++i) {
      r = Run({VMGROUP_BIN, "--connect", url, "--json", "vm", "list"});
      if (r.exit_code != 3) break;
      Env::Default()->SleepFor(std::chrono::milliseconds(10));
    }
    return r;
  });
  StartDaemon({"--insecure-loopback"}, url);
  const CommandOutput listed = first.get();
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out, "[]\n");
  EXPECT_NE(LogText().find("listening on " + url +
                           " (no authentication: loopback only) (passed by systemd)"),
            std::string::npos)
      << LogText();
}

TEST_F(SystemdTest, APassedSocketNoListenNamesIsRefusedAtStart) {
  const std::string other = dir_ / "other.sock";
  auto pid = Env::Default()->Spawn(
      {"systemd-socket-activate", "-l", other, VMGROUPD_BIN, "--no-config", "--state-dir",
       StateDir(), "--listen", "unix:" + Socket(), "--accel", "tcg"},
      {.log_path = dir_ / "vmgroupd.log", .new_session = false});
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  while (!Env::Default()->FileExists(other)) {
    Env::Default()->SleepFor(std::chrono::milliseconds(10));
  }
  auto poke = ConnectUnix(Env::Default(), other, Env::Default()->Now() + std::chrono::seconds(10));
  ASSERT_TRUE(poke.ok()) << poke.status().ToString();
  ASSERT_TRUE(Env::Default()->WaitGone(*pid, std::chrono::seconds(60)).ok()) << LogText();
  EXPECT_NE(LogText().find("cannot start"), std::string::npos) << LogText();
  EXPECT_NE(LogText().find("that no --listen names"), std::string::npos) << LogText();
  EXPECT_FALSE(Env::Default()->FileExists(Socket())) << "nothing served";
}

}  // namespace
}  // namespace vmgroup::e2e
