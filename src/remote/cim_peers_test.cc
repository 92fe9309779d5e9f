// CimPeers without a peer that answers: its table, its credentials files
// (read at each call), and the bounds of a call to a peer that is gone or
// silent. Join and Leave against a host's real services are in
// daemon/peers_test.cc, where both meet.
#include "remote/cim_peers.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <fstream>

#include "base/unique_fd.h"
#include "testing/temp_dir.h"

namespace vmgroup::remote {
namespace {

class CimPeersTest : public ::testing::Test {
 protected:
  CimPeers Peers(std::map<std::string, std::string> endpoints,
                 Duration timeout = std::chrono::seconds(30)) {
    return CimPeers(
        Env::Default(),
        {.endpoints = std::move(endpoints), .credentials_dir = dir_.path(), .timeout = timeout});
  }
  void Write(const std::string& file, const std::string& text) {
    std::ofstream(dir_ / file) << text;
  }

  testing::TempDir dir_;
};

TEST_F(CimPeersTest, KnowsItsConfiguredPeersAndSaysHowToAddAnother) {
  CimPeers peers = Peers({{"db1", "https://root@10.0.0.2:5989"}});
  EXPECT_TRUE(peers.Known("db1").ok());
  Status unknown = peers.Known("db2");
  EXPECT_EQ(unknown.code(), Code::kNotFound);
  EXPECT_NE(unknown.message().find("no peer named 'db2'"), std::string::npos) << unknown.message();
  EXPECT_NE(unknown.message().find("peer = db2=https://USER@HOST:PORT"), std::string::npos)
      << unknown.message();
  EXPECT_NE(unknown.message().find("vmgroupd.conf"), std::string::npos) << unknown.message();
  // Every door says the same.
  EXPECT_EQ(peers.Connect("db2").status().code(), Code::kNotFound);
  EXPECT_EQ(peers.Join("db2", "g", "web", "vm").code(), Code::kNotFound);
  EXPECT_EQ(peers.Leave("db2", "g", "vm").code(), Code::kNotFound);
}

TEST_F(CimPeersTest, AMissingPasswordFileIsNamedWithWhatItMustHold) {
  CimPeers peers = Peers({{"db1", "https://root@10.0.0.2:5989"}});
  for (const Status& s : {peers.Connect("db1").status(), peers.Join("db1", "g", "web", "vm"),
                          peers.Leave("db1", "g", "vm")}) {
    EXPECT_EQ(s.code(), Code::kFileNotFound) << s.ToString();
    EXPECT_NE(s.message().find(dir_ / "db1.password"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("on its first line, the password of user root"), std::string::npos)
        << s.message();
  }
  Write("db1.password", "\n");
  Status empty = peers.Connect("db1").status();
  EXPECT_EQ(empty.code(), Code::kInvalidArgument);
  EXPECT_NE(empty.message().find("empty first line"), std::string::npos) << empty.message();
}

TEST_F(CimPeersTest, ThePasswordIsTheFilesFirstLineReadAtEachCall) {
  CimPeers peers = Peers({{"db1", "https://root@10.0.0.2:5989"}});
  Write("db1.password", "s3cret\n");
  auto c = peers.Credentials("db1");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->password, "s3cret");
  EXPECT_EQ(c->cacert, "") << "no ca.pem: the system's CA store";

  // Changed, it is used without a restart; only its first line counts.
  Write("db1.password", "n3w pass\r\nnot this\n");
  Write("ca.pem", "PEM");
  c = peers.Credentials("db1");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->password, "n3w pass");
  EXPECT_EQ(c->cacert, dir_ / "ca.pem");

  Write("db1.password", "no newline");
  EXPECT_EQ(peers.Credentials("db1")->password, "no newline");
}

TEST_F(CimPeersTest, AnEndpointWithoutAUserNeedsNoPassword) {
  CimPeers peers = Peers({{"local", "unix:" + (dir_ / "none.sock")}});
  auto c = peers.Credentials("local");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->password, "");
  auto host = peers.Connect("local");
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  EXPECT_EQ((*host)->name(), "host local") << "named after the peer, not its address";
}

TEST_F(CimPeersTest, ACutHostIsNamedAfterItsPeer) {
  CimPeers peers = Peers({{"db1", "https://root@10.0.0.2:5989"}});
  Write("db1.password", "s3cret\n");
  auto host = peers.Connect("db1");  // lazily: nothing is sent
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  EXPECT_EQ((*host)->name(), "host db1");
}

TEST_F(CimPeersTest, APeerThatCannotBeReachedIsUnavailableNamedAfterIt) {
  CimPeers peers = Peers({{"db1", "unix:" + (dir_ / "gone.sock")}});
  Status join = peers.Join("db1", "g", "web", "vm");
  EXPECT_EQ(join.code(), Code::kUnavailable) << join.ToString();
  EXPECT_TRUE(join.message().starts_with("host db1: ")) << join.message();
  Status leave = peers.Leave("db1", "g", "vm");
  EXPECT_EQ(leave.code(), Code::kUnavailable) << leave.ToString();
}

// A peer that takes the connection and never answers: the call ends at its
// timeout, not at HTTP's minute.
TEST_F(CimPeersTest, ASilentPeerFailsWithinTheTimeout) {
  const std::string path = dir_ / "silent.sock";
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_GE(fd.get(), 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd.get(), 8), 0);  // never accepted: the backlog holds the client

  CimPeers peers = Peers({{"db1", "unix:" + path}}, std::chrono::milliseconds(300));
  const auto start = Clock::now();
  Status join = peers.Join("db1", "g", "web", "vm");
  EXPECT_EQ(join.code(), Code::kTimeout) << join.ToString();
  EXPECT_TRUE(join.message().starts_with("host db1")) << join.message();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace vmgroup::remote
