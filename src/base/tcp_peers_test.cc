#include "base/tcp_peers.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <vector>

#include "base/unique_fd.h"

namespace vmgroup {
namespace {

// An Env whose /proc/net/tcp is the text given and that has no tcp6.
class TableEnv final : public EnvWrapper {
 public:
  explicit TableEnv(std::string table) : EnvWrapper(Env::Default()), table_(std::move(table)) {}
  bool FileExists(const std::string& path) override { return path == "/proc/net/tcp"; }
  Result<std::string> ReadFile(const std::string& path) override {
    if (path != "/proc/net/tcp") return EnvWrapper::ReadFile(path);
    return table_;
  }

 private:
  std::string table_;
};

// Lines as Linux 6.1 prints them (trimmed after the inode): a listener on
// port 0x2A1C (10780), two clients connected to it (established; one gone,
// in close-wait), the client ends of those (remote port 10780), one in
// time-wait, and a connection of another port.
constexpr char kTable[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode\n"
    "   0: 0100007F:2A1C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 0 1\n"
    "   1: 0100007F:2A1C 0100007F:B5A2 01 00000000:00000000 00:00000000 00000000     0 0 2\n"
    "   2: 0100007F:2A1C 0100007F:B5A4 08 00000000:00000000 00:00000000 00000000     0 0 3\n"
    "   3: 0100007F:B5A2 0100007F:2A1C 01 00000000:00000000 00:00000000 00000000     0 0 4\n"
    "   4: 0100007F:2A1C 0100007F:B5A6 06 00000000:00000000 00:00000000 00000000     0 0 0\n"
    "   5: 0100007F:1F90 0100007F:B5A8 01 00000000:00000000 00:00000000 00000000     0 0 5\n";

TEST(TcpPeersTest, CountsTheServersConnectionsNotTheListenerNorTheClientEnds) {
  TableEnv env(kTable);
  auto peers = ConnectedTcpPeers(&env, 0x2A1C);
  ASSERT_TRUE(peers.ok()) << peers.status().ToString();
  EXPECT_EQ(*peers, 2);
  EXPECT_EQ(*ConnectedTcpPeers(&env, 0x1F90), 1);
  EXPECT_EQ(*ConnectedTcpPeers(&env, 1), 0);
}

TEST(TcpPeersTest, AnUnparsableLineIsAnError) {
  TableEnv env(std::string(kTable) + "garbage\n");
  EXPECT_EQ(ConnectedTcpPeers(&env, 0x2A1C).status().code(), Code::kIoError);
}

TEST(TcpPeersTest, FollowsRealConnectionsOnLoopback) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(listener.valid());
  sockaddr_in addr{.sin_family = AF_INET, .sin_port = 0, .sin_addr = {htonl(INADDR_LOOPBACK)}};
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(listener.get(), 8), 0);
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  EXPECT_EQ(*ConnectedTcpPeers(Env::Default(), port), 0) << "only the listener";

  std::vector<UniqueFd> clients;
  for (int i = 0; i < 2; ++i) {
    clients.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::connect(clients.back().get(), reinterpret_cast<sockaddr*>(&addr), len), 0);
  }
  EXPECT_EQ(*ConnectedTcpPeers(Env::Default(), port), 2) << "waiting in the backlog";
  UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted.valid());
  EXPECT_EQ(*ConnectedTcpPeers(Env::Default(), port), 2) << "one accepted, one waiting";
  clients.clear();
  accepted.reset();
  listener.reset();
  EXPECT_EQ(*ConnectedTcpPeers(Env::Default(), port), 0) << "all closed";
}

}  // namespace
}  // namespace vmgroup
