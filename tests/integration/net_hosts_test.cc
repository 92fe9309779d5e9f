// Hosts on one machine, each a network namespace (testing/net_hosts): a
// vmgroupd inside host 1, on HTTPS at host 1's address, answers the built
// CLI from the test's namespace and from inside host 2 (host to host); with
// host 1's link down a request fails, and answers again once it is back up;
// at the end the holders, the daemon and the links are gone. The whole
// binary runs in a network namespace of its own: nothing touches the
// machine's network.
#include "testing/net_hosts.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>

#include "base/tied_command.h"
#include "cli/output.h"
#include "testing/daemon_ready.h"
#include "testing/temp_dir.h"
#include "testing/test_certs.h"

namespace vmgroup::testing {
namespace {

class PrivateNetwork : public ::testing::Environment {
 public:
  void SetUp() override {
    Status s = EnterPrivateNetwork(Env::Default());
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
};
// Before main's tests start any thread (gtest runs environments first).
[[maybe_unused]] ::testing::Environment* const kPrivateNetwork =
    ::testing::AddGlobalTestEnvironment(new PrivateNetwork);

constexpr const char* kPassword = "s3cret";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class NetHostsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    StopDaemon(SIGKILL);
    hosts_.clear();
  }

  // /etc/shadow with root's password set to kPassword, for the daemon's
  // eyes only (bind-mounted in a mount namespace of its own): PAM then
  // admits root over TCP, as the daemon requires off loopback, and the
  // machine's accounts stay untouched. (--admin-group root then lets it
  // manage: over TCP, groups decide, not the uid.)
  std::string ShadowWithRootPassword() {
    auto hash = Env::Default()->Run({"openssl", "passwd", "-6", "-salt", "vmgnethosts", kPassword});
    EXPECT_TRUE(hash.ok() && hash->exit_code == 0);
    std::string root = "root:" + (hash.ok() ? hash->out : "");
    while (root.back() == '\n') root.pop_back();
    std::string shadow = root + ":19000:0:99999:7:::\n";
    std::istringstream lines(ReadAll("/etc/shadow"));
    for (std::string line; std::getline(lines, line);) {
      if (!line.starts_with("root:")) shadow += line + "\n";
    }
    const std::string path = dir_ / "shadow";
    EXPECT_TRUE(Env::Default()->WriteFile(path, shadow).ok());
    return path;
  }

  // Starts vmgroupd inside `host` on https://<its address>:<a free port>
  // and waits until it serves.
  void StartDaemon(const NetHost& host) {
    auto certs = MakeTestCerts(dir_.path(), "host", host.address());
    ASSERT_TRUE(certs.ok()) << certs.status().ToString();
    ca_ = certs->ca;
    const std::string shadow = ShadowWithRootPassword();
    const std::string log = dir_ / "vmgroupd.log";
    // nsenter, setpriv, sh and unshare each exec the next: the pid is
    // vmgroupd's, and it dies with this process.
    auto pid = Env::Default()->Spawn(
        host.Command(TiedToThisProcess({"unshare",
                                        "-m",
                                        "--propagation",
                                        "private",
                                        "sh",
                                        "-c",
                                        "mount --bind \"$1\" /etc/shadow && shift && exec \"$@\"",
                                        "sh",
                                        shadow,
                                        VMGROUPD_BIN,
                                        "--no-config",
                                        "--state-dir",
                                        dir_ / "state",
                                        "--accel",
                                        "tcg",
                                        "--admin-group",
                                        "root",
                                        "--listen",
                                        "https://" + host.address() + ":0",
                                        "--tls-cert",
                                        certs->server_cert,
                                        "--tls-key",
                                        certs->server_key})),
        {.log_path = log, .new_session = false});
    ASSERT_TRUE(pid.ok()) << pid.status().ToString();
    daemon_pid_ = *pid;
    auto port = AwaitDaemonReady(daemon_pid_, log, 0, host.address());
    ASSERT_TRUE(port.ok()) << port.status().message();
    ASSERT_NE(*port, 0) << "vmgroupd named no port at " << host.address() << ":\n" << ReadAll(log);
    port_ = *port;
  }

  void StopDaemon(int signal) {
    if (daemon_pid_ == 0) return;
    EXPECT_TRUE(Env::Default()->Kill(daemon_pid_, signal).ok());
    EXPECT_TRUE(Env::Default()->WaitGone(daemon_pid_, std::chrono::seconds(30)).ok());
    daemon_pid_ = 0;
  }

  // `vmgroup group list` against the daemon at `address`, from the test's
  // namespace, or from inside `from`.
  CommandOutput GroupList(const std::string& address, const NetHost* from = nullptr) {
    std::vector<std::string> argv = {"env",
                                     std::string("VMGROUP_PASSWORD=") + kPassword,
                                     VMGROUP_BIN,
                                     "--connect",
                                     "https://root@" + address + ":" + std::to_string(port_),
                                     "--cacert",
                                     ca_,
                                     "group",
                                     "list"};
    argv = TiedToThisProcess(argv);  // a test that dies takes it along
    if (from) argv = from->Command(argv);
    auto r = Env::Default()->Run(argv, std::chrono::minutes(3));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CommandOutput{};
  }

  TempDir dir_;
  std::vector<std::unique_ptr<NetHost>> hosts_;
  int daemon_pid_ = 0;
  int port_ = 0;
  std::string ca_;
};

// `ip -o link show` in the test's namespace: one line per link.
std::string Links() {
  auto r = Env::Default()->Run({"ip", "-o", "link", "show"});
  return r.ok() ? r->out : "";
}

TEST_F(NetHostsTest, DaemonInOneHostAnswersTheTestAndAnotherHostAndSurvivesItsLinkDown) {
  for (int i : {1, 2}) {
    auto host = NetHost::Start(Env::Default(), AddressesOf(i));
    ASSERT_TRUE(host.ok()) << host.status().ToString();
    hosts_.push_back(std::move(*host));
  }
  const NetHost& one = *hosts_[0];
  const NetHost& two = *hosts_[1];
  EXPECT_EQ(one.address(), "10.77.1.2");
  EXPECT_NE(one.link(), two.link());
  EXPECT_LE(one.link().size(), 15u) << "a link name's limit";
  EXPECT_NE(Links().find(one.link()), std::string::npos) << Links();
  ASSERT_NO_FATAL_FAILURE(StartDaemon(one));

  // The daemon listens in host 1 alone: not on the test's loopback.
  CommandOutput here = GroupList("127.0.0.1");
  EXPECT_EQ(here.exit_code, cli::kExitUnreachable) << here.err;
  CommandOutput direct = GroupList(one.address());
  EXPECT_EQ(direct.exit_code, 0) << direct.err;
  CommandOutput across = GroupList(one.address(), &two);
  EXPECT_EQ(across.exit_code, 0) << across.err;

  // Host 1 vanishes: no answer, from here or from host 2. Unreachable once
  // the neighbour lookup gives up (exit 3), or, were packets lost on the
  // way, the CLI's timeout (exit 1): either way the request to that daemon
  // fails.
  ASSERT_TRUE(hosts_[0]->SetLinkUp(false).ok());
  const std::string unanswered = "vmgroupd at https://" + one.address() + ":";
  for (const NetHost* from : {static_cast<const NetHost*>(nullptr), &two}) {
    CommandOutput gone = GroupList(one.address(), from);
    EXPECT_NE(gone.exit_code, 0) << (from ? "from host 2" : "from the test");
    EXPECT_NE(gone.err.find(unanswered), std::string::npos) << gone.err;
  }
  EXPECT_TRUE(Env::Default()->IsAlive(daemon_pid_)) << "the daemon itself ran on";

  // And comes back.
  ASSERT_TRUE(hosts_[0]->SetLinkUp(true).ok());
  CommandOutput back = GroupList(one.address());
  EXPECT_EQ(back.exit_code, 0) << back.err;
  CommandOutput back_across = GroupList(one.address(), &two);
  EXPECT_EQ(back_across.exit_code, 0) << back_across.err;

  // Nothing is left: the daemon, the holders, the links.
  const int daemon = daemon_pid_;
  StopDaemon(SIGTERM);
  std::vector<int> holders;
  for (const auto& h : hosts_) holders.push_back(h->holder_pid());
  hosts_.clear();
  EXPECT_FALSE(Env::Default()->IsAlive(daemon));
  for (int pid : holders) EXPECT_FALSE(Env::Default()->IsAlive(pid)) << pid;
  const std::string links = Links();
  EXPECT_EQ(std::count(links.begin(), links.end(), '\n'), 1) << "lo alone:\n" << links;
  EXPECT_NE(links.find(": lo:"), std::string::npos) << links;
}

}  // namespace
}  // namespace vmgroup::testing
