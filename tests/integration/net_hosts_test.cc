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
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/ids.h"
#include "base/return_codes.h"
#include "base/tied_command.h"
#include "cim/client.h"
#include "cli/output.h"
#include "hypervisor/qemu/qmp_client.h"
#include "hypervisor/qemu/qmp_commands.h"
#include "schema/classes.h"
#include "testing/daemon_ready.h"
#include "testing/process_status.h"
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
    // The daemon leaves its VMs running, as it does on any stop: ended here,
    // by pid.
    for (const auto& id : vm_ids_) {
      for (int pid : QemusOf(id)) {
        (void)Env::Default()->Kill(pid, SIGKILL);
        EXPECT_TRUE(Env::Default()->WaitGone(pid, std::chrono::seconds(30)).ok()) << pid;
      }
    }
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
    return Cli(address, {"group", "list"}, from);
  }

  // `vmgroup ARGS` against the daemon at `address`, as root with its
  // password, from the test's namespace or from inside `from`.
  CommandOutput Cli(const std::string& address, const std::vector<std::string>& args,
                    const NetHost* from = nullptr) {
    std::vector<std::string> argv = {"env",
                                     std::string("VMGROUP_PASSWORD=") + kPassword,
                                     VMGROUP_BIN,
                                     "--connect",
                                     "https://root@" + address + ":" + std::to_string(port_),
                                     "--cacert",
                                     ca_};
    argv.insert(argv.end(), args.begin(), args.end());
    argv = TiedToThisProcess(argv);  // a test that dies takes it along
    if (from) argv = from->Command(argv);
    auto r = Env::Default()->Run(argv, std::chrono::minutes(3));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CommandOutput{};
  }

  // `vmgroup ARGS --json` at `address`, parsed (null on a failure, which
  // the test is told of).
  nlohmann::json Json(const std::string& address, std::vector<std::string> args) {
    args.push_back("--json");
    CommandOutput r = Cli(address, args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? nlohmann::json::parse(r.out, nullptr, false) : nlohmann::json();
  }

  // What QEMU itself says of VM `id` of the daemon ("running", "paused"),
  // through the monitor vmgroupd keeps for its resume guard, free while no
  // guard is armed.
  std::string QemuStatus(const std::string& id) {
    const std::string socket = dir_ / ("state/vms/" + id + "/guard.sock");
    for (int tries = 0; tries < 100; ++tries) {  // a guard just disarmed lets go within moments
      auto qmp = hypervisor::qemu::QmpClient::Connect(Env::Default(), socket,
                                                      Clock::now() + std::chrono::seconds(2));
      if (qmp.ok()) {
        auto status =
            hypervisor::qemu::qmp::QueryStatus(**qmp, Clock::now() + std::chrono::seconds(10));
        return status.ok() ? *status : status.status().ToString();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "no monitor at " + socket;
  }

  TempDir dir_;
  std::vector<std::unique_ptr<NetHost>> hosts_;
  std::vector<std::string> vm_ids_;  // the daemon's VMs, ended by TearDown
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

// A coordinator's steps, sent to Vmgroup_HostCutService of a daemon in
// another host over HTTPS with PAM credentials.
class HostCutCalls {
 public:
  HostCutCalls(const std::string& endpoint, const std::string& ca) {
    auto http = cim::HttpClient::Create(endpoint, {.cacert = ca, .password = kPassword});
    EXPECT_TRUE(http.ok()) << http.status().ToString();
    if (!http.ok()) return;
    cim_ = std::make_unique<cim::CimClient>(std::move(*http), schema::kNamespace);
    auto service = cim_->EnumerateInstances(schema::HostCutService::kClass);
    EXPECT_TRUE(service.ok() && !service->empty())
        << (service.ok() ? "no service" : service.status().ToString());
    if (service.ok() && !service->empty()) service_ = (*service)[0].path;
  }

  // `method` of the part of snapshot `id`, with `more` arguments.
  cim::Response Step(const std::string& method, const std::string& id,
                     std::vector<cim::OutParam> more = {}) {
    more.insert(more.begin(), {"SnapshotID", "string", cim::Value::Scalar(id)});
    auto r = cim_->Invoke(service_, method, more);
    EXPECT_TRUE(r.ok()) << method << ": " << r.status().ToString();
    return r.ok() ? *r : cim::Response{.return_value = 0xFFFFFFFF};
  }

  static std::string Why(const cim::Response& r) {
    const cim::Param* p = r.Out("Vmgroup_ErrorDescription");
    return p ? p->value.scalar : "";
  }

 private:
  std::unique_ptr<cim::CimClient> cim_;
  cim::ObjectPath service_;
};

// Issue 20, one participant: a daemon in host 1 takes its part of a cut on
// the word of a coordinator (the test) in another namespace. When the
// coordinator's link to it goes down while its VMs are paused, the host
// resumes them by itself within the lease and refuses the late cut, leaving
// nothing of the part; in a whole exchange, the part commits as a snapshot
// of the host's VMs that its listing shows.
TEST_F(NetHostsTest, AHostTakesItsPartOfACutOverTheNetworkAndResumesByItselfWhenCutOff) {
  auto host = NetHost::Start(Env::Default(), AddressesOf(1));
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  hosts_.push_back(std::move(*host));
  const NetHost& one = *hosts_[0];
  ASSERT_NO_FATAL_FAILURE(StartDaemon(one));
  const std::string at = one.address();
  ASSERT_EQ(Cli(at, {"group", "create", "app"}).exit_code, 0);
  for (const char* vm : {"db", "web"}) {
    CommandOutput made =
        Cli(at, {"vm", "create", vm, "--memory", "64", "--disk", "16M", "--start"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    std::string id = made.out;
    while (!id.empty() && id.back() == '\n') id.pop_back();
    vm_ids_.push_back(id);
  }
  ASSERT_EQ(Cli(at, {"group", "add", "app", "db", "web"}).exit_code, 0);
  const nlohmann::json groups = Json(at, {"group", "list"});
  ASSERT_TRUE(groups.is_array() && groups.size() == 1) << groups.dump();
  const std::string group_id = groups[0]["id"];
  const cim::OutParam collection{
      "Collection", "reference",
      cim::Value::Reference({"",
                             {"root", "virtualization", "v2"},
                             schema::VirtualSystemCollection::kClass,
                             {{schema::VirtualSystemCollection::kCollectionID,
                               cim::KeyBinding::Kind::kString,
                               group_id,
                               {}}}})};
  const auto ms = [](const char* name, int v) {
    return cim::OutParam{name, "uint32", cim::Value::Scalar(std::to_string(v))};
  };
  HostCutCalls coordinator("https://root@" + at + ":" + std::to_string(port_), ca_);

  // Cut off while paused under a 500 ms lease.
  const std::string lost = NewGuid();
  cim::Response prepared = coordinator.Step("PrepareCut", lost, {collection});
  ASSERT_EQ(prepared.return_value, 0u) << HostCutCalls::Why(prepared);
  cim::Response paused = coordinator.Step("PauseCut", lost, {ms("Lease", 500)});
  ASSERT_EQ(paused.return_value, 0u) << HostCutCalls::Why(paused);
  ASSERT_TRUE(paused.Out("LeaseState"));
  EXPECT_EQ(paused.Out("LeaseState")->value.scalar, "paused");
  ASSERT_TRUE(paused.Out("VirtualSystemIdentifiers"));
  EXPECT_EQ(paused.Out("VirtualSystemIdentifiers")->value.array.size(), 2u);
  ASSERT_TRUE(hosts_[0]->SetLinkUp(false).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the lease, and then some
  ASSERT_TRUE(hosts_[0]->SetLinkUp(true).ok());
  for (const auto& id : vm_ids_) EXPECT_EQ(QemuStatus(id), "running") << id;
  cim::Response late = coordinator.Step("Cut", lost);
  EXPECT_EQ(late.return_value, kRcTimeout) << HostCutCalls::Why(late);
  EXPECT_NE(HostCutCalls::Why(late).find("pause lease"), std::string::npos)
      << HostCutCalls::Why(late);
  EXPECT_EQ(coordinator.Step("AbortCut", lost).return_value, 0u);
  EXPECT_TRUE(Json(at, {"snapshot", "list", "app"}).empty()) << "nothing of the part is left";

  // The whole exchange.
  const std::string kept = NewGuid();
  for (auto [method, more] : std::vector<std::pair<std::string, std::vector<cim::OutParam>>>{
           {"PrepareCut", {collection}},
           {"PauseCut", {ms("Lease", 10'000)}},
           {"Cut", {}},
           {"ResumeCut", {}},
           {"CommitCut", {}}}) {
    cim::Response r = coordinator.Step(method, kept, more);
    ASSERT_EQ(r.return_value, 0u) << method << ": " << HostCutCalls::Why(r);
    if (method == "ResumeCut") {
      ASSERT_TRUE(r.Out("PauseDurations") && r.Out("HostTime"));
      for (const auto& us : r.Out("PauseDurations")->value.array) EXPECT_GT(std::stoll(us), 0);
      EXPECT_EQ(r.Out("Unguarded")->value.scalar, "");
    }
  }
  const nlohmann::json snapshots = Json(at, {"snapshot", "list", "app"});
  ASSERT_EQ(snapshots.size(), 1u) << snapshots.dump();
  EXPECT_EQ(snapshots[0]["id"], kept);
  for (const auto& id : vm_ids_) EXPECT_EQ(QemuStatus(id), "running") << id;
  for (const auto& id : vm_ids_) EXPECT_EQ(Cli(at, {"vm", "turn-off", id}).exit_code, 0);
}

}  // namespace
}  // namespace vmgroup::testing
