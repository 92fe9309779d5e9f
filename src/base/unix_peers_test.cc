#include "base/unix_peers.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "base/unix_socket.h"
#include "testing/temp_dir.h"

namespace vmgroup {
namespace {

// An Env whose /proc/net/unix is the text given.
class TableEnv final : public EnvWrapper {
 public:
  explicit TableEnv(std::string table) : EnvWrapper(Env::Default()), table_(std::move(table)) {}
  Result<std::string> ReadFile(const std::string& path) override {
    if (path != "/proc/net/unix") return EnvWrapper::ReadFile(path);
    return table_;
  }

 private:
  std::string table_;
};

// Lines as Linux 6.1 printed them for a listener at /run/q/nbd.sock with
// two accepted connections, one waiting in its backlog, the unbound client
// ends, a datagram socket and a listener elsewhere.
constexpr char kTable[] =
    "Num       RefCount Protocol Flags    Type St Inode Path\n"
    "0000000043ba6613: 00000002 00000000 00010000 0001 01 3417252 /run/q/nbd.sock\n"
    "00000000fea5a38e: 00000003 00000000 00000000 0001 03 3417254 /run/q/nbd.sock\n"
    "00000000aa5a38e0: 00000003 00000000 00000000 0001 03 3417256 /run/q/nbd.sock\n"
    "0000000059981318: 00000003 00000000 00000000 0001 02     0 /run/q/nbd.sock\n"
    "0000000011111111: 00000003 00000000 00000000 0001 03 3417253\n"
    "0000000022222222: 00000003 00000000 00000000 0001 03 3417255\n"
    "0000000033333333: 00000002 00000000 00000000 0002 01 3417257 /run/q/nbd.sock\n"
    "0000000044444444: 00000002 00000000 00010000 0001 01 3417258 /run/q/nbd.sock2\n"
    "0000000055555555: 00000003 00000000 00000000 0001 03 3417259 /run/q/nbd.sock2\n";

TEST(UnixPeersTest, CountsAcceptedAndWaitingConnectionsNotTheListener) {
  TableEnv env(kTable);
  auto peers = ConnectedPeers(&env, "/run/q/nbd.sock");
  ASSERT_TRUE(peers.ok()) << peers.status().ToString();
  EXPECT_EQ(*peers, 3);
  EXPECT_EQ(*ConnectedPeers(&env, "/run/q/nbd.sock2"), 1);
  EXPECT_EQ(*ConnectedPeers(&env, "/run/q/nbd"), 0);  // a prefix is another path
  EXPECT_EQ(*ConnectedPeers(&env, "/run/q/other.sock"), 0);
}

TEST(UnixPeersTest, APathWithSpacesIsMatchedWhole) {
  TableEnv env(
      "Num       RefCount Protocol Flags    Type St Inode Path\n"
      "0000000043ba6613: 00000002 00000000 00010000 0001 01 3417252 /run/my q.sock\n"
      "00000000fea5a38e: 00000003 00000000 00000000 0001 03 3417254 /run/my q.sock\n");
  EXPECT_EQ(*ConnectedPeers(&env, "/run/my q.sock"), 1);
  EXPECT_EQ(*ConnectedPeers(&env, "/run/my"), 0);
}

TEST(UnixPeersTest, AnUnreadableLineIsAnIoError) {
  TableEnv env(
      "Num       RefCount Protocol Flags    Type St Inode Path\n"
      "0000000043ba6613: 00000002 zz\n");
  EXPECT_EQ(ConnectedPeers(&env, "/run/q/nbd.sock").status().code(), Code::kIoError);
}

// The kernel's own table: a listener in a temporary directory, two clients.
TEST(UnixPeersTest, CountsTheConnectionsOfARealListener) {
  testing::TempDir dir;
  const std::string path = dir / "s";
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_un addr = UnixAddress(path).value();
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 4), 0);
  EXPECT_EQ(*ConnectedPeers(Env::Default(), path), 0);

  auto a = ConnectUnix(Env::Default(), path, Clock::now());
  auto b = ConnectUnix(Env::Default(), path, Clock::now());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*ConnectedPeers(Env::Default(), path), 2);  // waiting in the backlog
  UniqueFd accepted_a(::accept(listener.get(), nullptr, nullptr));
  UniqueFd accepted_b(::accept(listener.get(), nullptr, nullptr));
  ASSERT_TRUE(accepted_a.valid() && accepted_b.valid());
  EXPECT_EQ(*ConnectedPeers(Env::Default(), path), 2);

  a->reset();
  accepted_a.reset();
  EXPECT_EQ(*ConnectedPeers(Env::Default(), path), 1);
  b->reset();
  accepted_b.reset();
  EXPECT_EQ(*ConnectedPeers(Env::Default(), path), 0);
}

}  // namespace
}  // namespace vmgroup
