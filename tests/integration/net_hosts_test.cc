// Hosts on one machine, each a network namespace (testing/net_hosts) with
// a vmgroupd of its own (testing/host_daemon): a daemon in host 1, on
// HTTPS at host 1's address, answers the built CLI from the test's
// namespace and from inside host 2 (host to host); with host 1's link down
// a request fails, and answers again once it is back up; at the end the
// holders, the daemon and the links are gone. Then issue 20 across them:
// one host's part of a cut on the word of a coordinator over HTTPS (the
// test), resumed by the host itself when the coordinator is cut off; and a
// snapshot of three hosts x two VMs taken by the coordinator's protocol
// (engine/spanning_cut) through remote::CimCutHost, then by a coordinating
// vmgroupd, which also exports it (each host's part in its folder) and
// destroys it everywhere, and is killed mid-way. The whole binary runs
// in a network namespace of its own: nothing touches the machine's network.
#include "testing/net_hosts.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "base/ids.h"
#include "cli/output.h"
#include "engine/export_manifest.h"
#include "engine/fault_points.h"
#include "engine/spanning_export.h"
#include "guest_fixture.h"
#include "remote/cim_cut_host.h"
#include "testing/guest_kit.h"
#include "testing/host_daemon.h"
#include "testing/temp_dir.h"

namespace vmgroup::testing {
namespace {

using namespace std::chrono_literals;

class PrivateNetwork : public ::testing::Environment {
 public:
  void SetUp() override {
    // The guest kit first (cached in the build folder): its build fetches
    // Debian's kernel, which the private network cannot reach.
    integration::BuildGuestKit();
    Status s = EnterPrivateNetwork(Env::Default());
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
};
// Before main's tests start any thread (gtest runs environments first).
[[maybe_unused]] ::testing::Environment* const kPrivateNetwork =
    ::testing::AddGlobalTestEnvironment(new PrivateNetwork);

// The export of `d`'s part of snapshot `id` in `dir`: an ordinary export of
// that snapshot whose every disk reads as the frozen image `d` lists.
void ExpectExportOf(const HostDaemon& d, const std::string& id, const std::string& dir) {
  auto part = engine::ReadManifestIn(dir);
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  EXPECT_EQ(part->snapshot_id, id);
  auto shown = d.Json({"snapshot", "show", id});
  ASSERT_TRUE(shown.ok()) << shown.status().ToString();
  std::map<std::string, std::vector<std::string>> frozen;  // by VM id
  for (const auto& m : (*shown)["members"]) frozen[m["vm_id"]] = m["images"];
  ASSERT_EQ(part->vms.size(), frozen.size());
  for (const auto& vm : part->vms) {
    ASSERT_EQ(vm.disks.size(), frozen[vm.id].size()) << vm.id;
    for (const auto& disk : vm.disks) {
      auto same = Env::Default()->Run({"qemu-img", "compare", "-U", dir + "/" + disk.file,
                                       frozen[vm.id][static_cast<size_t>(disk.index)]});
      ASSERT_TRUE(same.ok()) << same.status().ToString();
      EXPECT_EQ(same->exit_code, 0) << vm.id << " disk " << disk.index << ": " << same->out;
    }
  }
}

class NetHostsTest : public ::testing::Test {
 protected:
  // Daemons first: a host's namespace goes only once what runs in it is gone.
  void TearDown() override {
    daemons_.clear();
    hosts_.clear();
  }

  // Hosts 1..n, and a daemon in each of the first `daemons`.
  void StartHosts(int n, int daemons) {
    for (int i = 1; i <= n; ++i) {
      auto host = NetHost::Start(Env::Default(), AddressesOf(i));
      ASSERT_TRUE(host.ok()) << host.status().ToString();
      hosts_.push_back(std::move(*host));
    }
    for (int i = 0; i < daemons; ++i) {
      auto d = HostDaemon::Start(*hosts_[i], dir_ / ("host" + std::to_string(i + 1)),
                                 {.vmgroupd = VMGROUPD_BIN, .vmgroup = VMGROUP_BIN});
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      daemons_.push_back(std::move(*d));
    }
  }

  // `vmgroup ARGS` against daemon `d`; its output (a failed run fails the test).
  CommandOutput Cli(const HostDaemon& d, const std::vector<std::string>& args,
                    const NetHost* from = nullptr, const std::string& address = "") {
    auto r = d.Cli(args, from, address);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CommandOutput{};
  }
  // Cli that must succeed: false, and a test failure with its error, if not.
  bool CliOk(const HostDaemon& d, const std::vector<std::string>& args) {
    CommandOutput r = Cli(d, args);
    std::string command = "vmgroup";
    for (const auto& a : args) command += " " + a;
    EXPECT_EQ(r.exit_code, 0) << command << ": " << r.err;
    return r.exit_code == 0;
  }
  // `vmgroup ARGS --json` against `d`, parsed (null, and a test failure, if it fails).
  nlohmann::json Json(const HostDaemon& d, const std::vector<std::string>& args) {
    auto j = d.Json(args);
    EXPECT_TRUE(j.ok()) << j.status().ToString();
    return j.ok() ? *j : nlohmann::json();
  }
  // On daemon `d`: group "app" (with id `group_id` if given) of two running VMs,
  // "<prefix>db" and "<prefix>web"; their ids (a test failure if it cannot be made).
  std::vector<std::string> MakeGroup(const HostDaemon& d, const std::string& prefix,
                                     const std::string& group_id = "") {
    auto ids = d.MakeGroup({prefix + "db", prefix + "web"}, group_id);
    EXPECT_TRUE(ids.ok()) << ids.status().ToString();
    return ids.ok() ? *ids : std::vector<std::string>{};
  }
  // The id of group "app" on `d`.
  std::string GroupId(const HostDaemon& d) {
    const nlohmann::json groups = Json(d, {"group", "list"});
    EXPECT_TRUE(groups.is_array() && groups.size() == 1) << groups.dump();
    return groups.is_array() && groups.size() == 1 ? std::string(groups[0]["id"]) : "";
  }
  // Hosts 1..n, a daemon in each of hosts 2..n (peers "h2".."hn"), then in
  // host 1 one that coordinates them: --peer hI=<its endpoint>, their
  // passwords and CAs in its --peer-credentials directory.
  void StartCoordinatorAndPeers(int n) {
    ASSERT_NO_FATAL_FAILURE(StartHosts(n, 0));
    std::vector<std::unique_ptr<HostDaemon>> peers;
    std::map<std::string, const HostDaemon*> named;
    for (int i = 2; i <= n; ++i) {
      const std::string name = "h" + std::to_string(i);
      auto d = HostDaemon::Start(*hosts_[i - 1], dir_ / name,
                                 {.vmgroupd = VMGROUPD_BIN, .vmgroup = VMGROUP_BIN});
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      named[name] = d->get();
      peers.push_back(std::move(*d));
    }
    auto args = HostDaemon::CoordinatorArgs(named, dir_ / "peers");
    ASSERT_TRUE(args.ok()) << args.status().ToString();
    auto coordinator = HostDaemon::Start(*hosts_[0], dir_ / "h1",
                                         {.vmgroupd = VMGROUPD_BIN, .vmgroup = VMGROUP_BIN}, *args);
    ASSERT_TRUE(coordinator.ok()) << coordinator.status().ToString();
    daemons_.push_back(std::move(*coordinator));
    for (auto& p : peers) daemons_.push_back(std::move(p));
  }
  // On the coordinator (daemons_[0]): group "app" of its two VMs, joined by
  // two VMs of each peer, by `group add app --host hI`; every VM's id, by
  // host. Each VM made with `vm_options` (HostDaemon::MakeGroup's) if given.
  std::vector<std::vector<std::string>> MakeGroupAcrossHosts(
      const std::vector<std::string>& vm_options = {}) {
    const auto make = [&](const HostDaemon& d, const std::string& prefix) {
      auto ids = vm_options.empty() ? d.MakeGroup({prefix + "db", prefix + "web"})
                                    : d.MakeGroup({prefix + "db", prefix + "web"}, "", vm_options);
      EXPECT_TRUE(ids.ok()) << ids.status().ToString();
      return ids.ok() ? *ids : std::vector<std::string>{};
    };
    std::vector<std::vector<std::string>> vms = {make(*daemons_[0], "h1-")};
    for (size_t i = 1; i < daemons_.size(); ++i) {
      const std::string name = "h" + std::to_string(i + 1);
      vms.push_back(make(*daemons_[i], name + "-"));
      std::vector<std::string> add = {"group", "add", "app", "--host", name};
      add.insert(add.end(), vms.back().begin(), vms.back().end());
      CommandOutput added = Cli(*daemons_[0], add);
      EXPECT_EQ(added.exit_code, 0) << added.err;
    }
    group_id_ = Json(*daemons_[0], {"group", "show", "app"}).value("id", "");
    return vms;
  }
  // Every VM of `vms` (by host, as daemons_) runs, as its QEMU says, within
  // 30 s.
  void ExpectAllRunning(const std::vector<std::vector<std::string>>& vms) {
    for (size_t i = 0; i < vms.size(); ++i) {
      for (const auto& id : vms[i]) {
        std::string state;
        for (int t = 0; t < 300 && (state = daemons_[i]->QemuStatus(id)) != "running"; ++t) {
          std::this_thread::sleep_for(100ms);
        }
        EXPECT_EQ(state, "running") << "VM " << id << " of host " << i + 1;
      }
    }
  }
  // The ids of the snapshots `d` lists of the group across hosts (of its
  // part of it, on a peer: the same id; each peer has a group "app" of its own).
  std::set<std::string> SnapshotIds(const HostDaemon& d) {
    std::set<std::string> ids;
    for (const auto& s : Json(d, {"snapshot", "list", group_id_})) ids.insert(s.value("id", ""));
    return ids;
  }

  // `out` holds the export across hosts of snapshot `id` of
  // MakeGroupAcrossHosts's `vms`: its manifest names each host's folder
  // (a peer's by its name) and VMs, and each folder is an export of that
  // host's part (ExpectExportOf).
  void ExpectExportAcrossHosts(const std::string& out, const std::string& id,
                               const std::vector<std::vector<std::string>>& vms) {
    auto top = Env::Default()->ReadFile(out + "/" + engine::kManifestFile);
    ASSERT_TRUE(top.ok()) << top.status().ToString();
    const nlohmann::json manifest = nlohmann::json::parse(*top);
    EXPECT_EQ(manifest["format"], engine::kSpanningManifestFormat);
    EXPECT_EQ(manifest["snapshot"]["id"], id);
    ASSERT_EQ(manifest["parts"].size(), 3u) << manifest.dump();
    for (size_t i = 0; i < 3; ++i) {
      SCOPED_TRACE("host " + std::to_string(i + 1));
      const std::string folder = manifest["parts"][i]["folder"];
      if (i > 0) {
        EXPECT_EQ(folder, "h" + std::to_string(i + 1));
      }
      std::set<std::string> in_part;
      for (const auto& vm : manifest["parts"][i]["vm_ids"]) in_part.insert(vm);
      EXPECT_EQ(in_part, std::set<std::string>(vms[i].begin(), vms[i].end()));
      ExpectExportOf(*daemons_[i], id, out + "/" + folder);
    }
  }

  // A coordinator's view of daemon `d`: its Vmgroup_HostCutService over HTTPS.
  std::unique_ptr<remote::CimCutHost> CutHostOf(const HostDaemon& d) {
    auto h = remote::CimCutHost::Create(d.Endpoint(),
                                        {.cacert = d.ca(), .password = HostDaemon::kPassword});
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    return h.ok() ? std::move(*h) : nullptr;
  }

  TempDir dir_;
  std::string group_id_;  // MakeGroupAcrossHosts's group
  std::vector<std::unique_ptr<NetHost>> hosts_;
  std::vector<std::unique_ptr<HostDaemon>> daemons_;
};

// `ip -o link show` in the test's namespace: one line per link.
std::string Links() {
  auto r = Env::Default()->Run({"ip", "-o", "link", "show"});
  return r.ok() ? r->out : "";
}

TEST_F(NetHostsTest, DaemonInOneHostAnswersTheTestAndAnotherHostAndSurvivesItsLinkDown) {
  ASSERT_NO_FATAL_FAILURE(StartHosts(2, 1));
  const NetHost& one = *hosts_[0];
  const NetHost& two = *hosts_[1];
  EXPECT_EQ(one.address(), "10.77.1.2");
  EXPECT_NE(one.link(), two.link());
  EXPECT_LE(one.link().size(), 15u) << "a link name's limit";
  EXPECT_NE(Links().find(one.link()), std::string::npos) << Links();
  const HostDaemon& daemon = *daemons_[0];
  const auto group_list = [&](const std::string& address, const NetHost* from = nullptr) {
    return Cli(daemon, {"group", "list"}, from, address);
  };

  // The daemon listens in host 1 alone: not on the test's loopback.
  CommandOutput here = group_list("127.0.0.1");
  EXPECT_EQ(here.exit_code, cli::kExitUnreachable) << here.err;
  CommandOutput direct = group_list(one.address());
  EXPECT_EQ(direct.exit_code, 0) << direct.err;
  CommandOutput across = group_list(one.address(), &two);
  EXPECT_EQ(across.exit_code, 0) << across.err;

  // Host 1 vanishes: no answer, from here or from host 2. Unreachable once
  // the neighbour lookup gives up (exit 3), or, were packets lost on the
  // way, the CLI's timeout (exit 1): either way the request to that daemon
  // fails.
  ASSERT_TRUE(hosts_[0]->SetLinkUp(false).ok());
  const std::string unanswered = "vmgroupd at https://" + one.address() + ":";
  for (const NetHost* from : {static_cast<const NetHost*>(nullptr), &two}) {
    CommandOutput gone = group_list(one.address(), from);
    EXPECT_NE(gone.exit_code, 0) << (from ? "from host 2" : "from the test");
    EXPECT_NE(gone.err.find(unanswered), std::string::npos) << gone.err;
  }
  EXPECT_TRUE(Env::Default()->IsAlive(daemon.pid())) << "the daemon itself ran on";

  // And comes back.
  ASSERT_TRUE(hosts_[0]->SetLinkUp(true).ok());
  CommandOutput back = group_list(one.address());
  EXPECT_EQ(back.exit_code, 0) << back.err;
  CommandOutput back_across = group_list(one.address(), &two);
  EXPECT_EQ(back_across.exit_code, 0) << back_across.err;

  // Nothing is left: the daemon, the holders, the links.
  const int daemon_pid = daemon.pid();
  ASSERT_TRUE(daemons_[0]->Stop(SIGTERM).ok());
  daemons_.clear();
  std::vector<int> holders;
  for (const auto& h : hosts_) holders.push_back(h->holder_pid());
  hosts_.clear();
  EXPECT_FALSE(Env::Default()->IsAlive(daemon_pid));
  for (int pid : holders) EXPECT_FALSE(Env::Default()->IsAlive(pid)) << pid;
  const std::string links = Links();
  EXPECT_EQ(std::count(links.begin(), links.end(), '\n'), 1) << "lo alone:\n" << links;
  EXPECT_NE(links.find(": lo:"), std::string::npos) << links;
}

// Issue 20, one participant: the daemon in host 1 takes its part of a cut
// on the word of a coordinator (the test) in another namespace. When the
// coordinator's link to it goes down while its VMs are paused, the host
// resumes them by itself within the lease and refuses the late cut, leaving
// nothing of the part; in a whole exchange, the part commits as a snapshot
// of the host's VMs that its listing shows.
TEST_F(NetHostsTest, AHostTakesItsPartOfACutOverTheNetworkAndResumesByItselfWhenCutOff) {
  ASSERT_NO_FATAL_FAILURE(StartHosts(1, 1));
  const HostDaemon& d = *daemons_[0];
  const std::vector<std::string> vms = MakeGroup(d, "");
  const engine::HostCutRequest part{.collection_id = GroupId(d), .snapshot_id = NewGuid()};
  auto coordinator = CutHostOf(d);
  ASSERT_TRUE(coordinator);
  EXPECT_EQ(coordinator->name(), "host " + d.address() + ":" + std::to_string(d.port()));

  // Cut off while paused under a 500 ms lease.
  Status prepared = coordinator->Prepare(part);
  ASSERT_TRUE(prepared.ok()) << prepared.ToString();
  auto paused = coordinator->Pause(part.snapshot_id, 500ms, /*cut=*/false);
  ASSERT_TRUE(paused.ok()) << paused.status().ToString();
  EXPECT_EQ(paused->lease_state, "paused");
  EXPECT_EQ(paused->vm_ids, vms);
  EXPECT_EQ(paused->unguarded, "");
  ASSERT_TRUE(hosts_[0]->SetLinkUp(false).ok());
  std::this_thread::sleep_for(1500ms);  // the lease, and then some
  ASSERT_TRUE(hosts_[0]->SetLinkUp(true).ok());
  for (const auto& id : vms) EXPECT_EQ(d.QemuStatus(id), "running") << id;
  Status late = coordinator->Cut(part.snapshot_id);
  EXPECT_EQ(late.code(), Code::kTimeout) << late.ToString();
  EXPECT_NE(late.message().find("pause lease"), std::string::npos) << late.ToString();
  EXPECT_TRUE(coordinator->Abort(part.snapshot_id).ok());
  EXPECT_TRUE(Json(d, {"snapshot", "list", "app"}).empty()) << "nothing of the part is left";

  // The whole exchange.
  engine::HostCutRequest kept = part;
  kept.snapshot_id = NewGuid();
  ASSERT_TRUE(coordinator->Prepare(kept).ok());
  ASSERT_TRUE(coordinator->Pause(kept.snapshot_id, 10s, /*cut=*/false).ok());
  ASSERT_TRUE(coordinator->Cut(kept.snapshot_id).ok());
  auto resumed = coordinator->Resume(kept.snapshot_id);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  ASSERT_EQ(resumed->members.size(), 2u);
  for (const auto& t : resumed->members) EXPECT_GT(t.pause_us, 0);
  EXPECT_GT(resumed->host_time_us, 0);
  ASSERT_TRUE(coordinator->Commit(kept.snapshot_id).ok());
  const nlohmann::json snapshots = Json(d, {"snapshot", "list", "app"});
  ASSERT_EQ(snapshots.size(), 1u) << snapshots.dump();
  EXPECT_EQ(snapshots[0]["id"], kept.snapshot_id);
  for (const auto& id : vms) EXPECT_EQ(d.QemuStatus(id), "running") << id;
}

// Issue 20: three hosts, each a daemon with two VMs in its part of group
// "app" (the same id everywhere), snapshotted at one instant by the
// coordinator's protocol: each host's part Complete under the snapshot's
// id, each host's pauses and cuts reported, the cuts bounded on the
// coordinator's clock inside the group's pause window.
TEST_F(NetHostsTest, ASnapshotAcrossThreeHostsCommitsEveryHostsPart) {
  ASSERT_NO_FATAL_FAILURE(StartHosts(3, 3));
  const std::string group_id = NewGuid();
  std::vector<std::vector<std::string>> vms;
  std::vector<std::unique_ptr<remote::CimCutHost>> remotes;
  std::vector<engine::CutHost*> hosts;
  for (size_t i = 0; i < daemons_.size(); ++i) {
    vms.push_back(MakeGroup(*daemons_[i], "h" + std::to_string(i + 1) + "-", group_id));
    remotes.push_back(CutHostOf(*daemons_[i]));
    ASSERT_TRUE(remotes.back());
    hosts.push_back(remotes.back().get());
  }
  const engine::SpanningCutRequest request{
      .snapshot_id = NewGuid(), .collection_id = group_id, .name = "app across hosts"};
  auto report = engine::TakeSpanningCut(Env::Default(), hosts, request);
  ASSERT_TRUE(report.ok()) << report.status().ToString();

  ASSERT_EQ(report->hosts.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const engine::SpannedHost& h = report->hosts[i];
    EXPECT_EQ(h.resume.answer.vm_ids, vms[i]) << h.name;
    for (const auto& t : h.resume.answer.members) {
      EXPECT_GT(t.pause_us, 0) << h.name;
      EXPECT_GT(t.cut_time_us, 0) << h.name;
    }
    EXPECT_LE(h.earliest_cut_us, h.latest_cut_us) << h.name;
    // Every member of every host was paused before any host cut.
    EXPECT_GE(h.earliest_cut_us,
              report->hosts[0].pause.sent_us - (h.latest_cut_us - h.earliest_cut_us))
        << h.name;
    const nlohmann::json snapshots = Json(*daemons_[i], {"snapshot", "list", "app"});
    ASSERT_EQ(snapshots.size(), 1u) << h.name << ": " << snapshots.dump();
    EXPECT_EQ(snapshots[0]["id"], request.snapshot_id) << h.name;
    EXPECT_EQ(snapshots[0]["name"], request.name) << h.name;
    EXPECT_EQ(snapshots[0]["members"].size(), 2u) << h.name;
    for (const auto& id : vms[i]) EXPECT_EQ(daemons_[i]->QemuStatus(id), "running") << id;
  }
  EXPECT_GT(report->window_us, 0);
  EXPECT_LE(report->cut_spread_us, report->window_us);
}

// A host that vanishes (its link set down) just before the coordinator's
// step `at` would reach it; every step is then sent on as it is.
class VanishingHost final : public engine::CutHost {
 public:
  VanishingHost(engine::CutHost* inner, NetHost* host, std::string at)
      : inner_(inner), host_(host), at_(std::move(at)) {}
  std::string name() const override { return inner_->name(); }
  Status Prepare(const engine::HostCutRequest& r) override {
    Vanish("prepare");
    return inner_->Prepare(r);
  }
  Result<engine::HostLease> Pause(const std::string& id, Duration lease, bool cut) override {
    Vanish("pause");
    return inner_->Pause(id, lease, cut);
  }
  Status Cut(const std::string& id) override {
    Vanish("cut");
    return inner_->Cut(id);
  }
  Result<engine::HostLease> Resume(const std::string& id) override { return inner_->Resume(id); }
  Status Commit(const std::string& id) override { return inner_->Commit(id); }
  Status Abort(const std::string& id) override { return inner_->Abort(id); }
  Status Export(const std::string& id, const std::string& dir, bool storage,
                const std::string& base) override {
    return inner_->Export(id, dir, storage, base);
  }
  Status RemoveExport(const std::string& id, const std::string& dir) override {
    return inner_->RemoveExport(id, dir);
  }
  Status ValidateConvert(const std::string& id) override { return inner_->ValidateConvert(id); }
  Status Convert(const std::string& id, const std::string& rp) override {
    return inner_->Convert(id, rp);
  }
  Status DestroyReferencePoint(const std::string& rp) override {
    return inner_->DestroyReferencePoint(rp);
  }
  Result<engine::BackupSession> BeginBackup(const engine::HostBackupRequest& r) override {
    return inner_->BeginBackup(r);
  }
  Result<bool> BackupServing(const std::string& id) override { return inner_->BackupServing(id); }
  Status EndBackup(const std::string& id) override { return inner_->EndBackup(id); }
  Result<storage::MarkedRanges> BackupChanges(const std::string& id, const std::string& vm,
                                              int disk, uint64_t offset, uint64_t length) override {
    return inner_->BackupChanges(id, vm, disk, offset, length);
  }
  Status ValidateApply(const std::string& id) override { return inner_->ValidateApply(id); }
  Status PrepareApply(const std::string& id) override { return inner_->PrepareApply(id); }
  Status CommitApply(const std::string& id) override { return inner_->CommitApply(id); }
  Status AbortApply(const std::string& id) override { return inner_->AbortApply(id); }

 private:
  void Vanish(const std::string& step) {
    if (step != at_) return;
    EXPECT_TRUE(host_->SetLinkUp(false).ok());
  }
  engine::CutHost* inner_;
  NetHost* host_;
  std::string at_;
};

// The files a part of snapshot `id` made in the run directories of `d`'s
// VMs (its overlays are named after the snapshot's tag, "s" and the id's
// first 8 characters).
std::vector<std::string> PartFiles(const HostDaemon& d, const std::string& id) {
  std::vector<std::string> found;
  const std::string tag = "s" + id.substr(0, 8);
  auto vms = Env::Default()->ListDir(d.state_dir() + "/vms");
  if (!vms.ok()) return found;
  for (const auto& vm : *vms) {
    auto files = Env::Default()->ListDir(d.state_dir() + "/vms/" + vm);
    if (!files.ok()) continue;
    for (const auto& f : *files) {
      if (f.find(tag) != std::string::npos) found.push_back(vm + "/" + f);
    }
  }
  return found;
}

size_t CountOf(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The tags of every part whose overlays are in the run directories of `d`'s
// VMs ("disk<N>-<tag>.qcow2").
std::set<std::string> PartTags(const HostDaemon& d) {
  std::set<std::string> tags;
  auto vms = Env::Default()->ListDir(d.state_dir() + "/vms");
  if (!vms.ok()) return tags;
  for (const auto& vm : *vms) {
    auto files = Env::Default()->ListDir(d.state_dir() + "/vms/" + vm);
    if (!files.ok()) continue;
    for (const auto& f : *files) {
      const auto dash = f.find('-');
      if (f.starts_with("disk") && f.ends_with(".qcow2") && dash != std::string::npos) {
        tags.insert(f.substr(dash + 1, f.size() - dash - 1 - 6));
      }
    }
  }
  return tags;
}

// Issue 20: a host vanishes during prepare, pause or cut. The snapshot
// fails, naming it; the other hosts are left with nothing of it and every
// VM runs; once the host is back, it has undone its part by itself.
TEST_F(NetHostsTest, AHostThatVanishesFailsTheSnapshotCleanlyAndUndoesItsPartWhenBack) {
  ASSERT_NO_FATAL_FAILURE(StartHosts(3, 3));
  const std::string group_id = NewGuid();
  std::vector<std::vector<std::string>> vms;
  std::vector<std::unique_ptr<remote::CimCutHost>> remotes;
  for (size_t i = 0; i < daemons_.size(); ++i) {
    vms.push_back(MakeGroup(*daemons_[i], "h" + std::to_string(i + 1) + "-", group_id));
    remotes.push_back(CutHostOf(*daemons_[i]));
    ASSERT_TRUE(remotes.back());
  }
  for (const std::string step : {"prepare", "pause", "cut"}) {
    SCOPED_TRACE(step);
    VanishingHost third(remotes[2].get(), hosts_[2].get(), step);
    const std::vector<engine::CutHost*> hosts = {remotes[0].get(), remotes[1].get(), &third};
    const engine::SpanningCutRequest request{.snapshot_id = NewGuid(),
                                             .collection_id = group_id,
                                             .lease = 500ms,
                                             .step_timeout = 3s,
                                             .cut_with_pause = false};
    auto report = engine::TakeSpanningCut(Env::Default(), hosts, request);
    ASSERT_FALSE(report.ok());
    EXPECT_NE(report.status().message().find("on " + third.name()), std::string::npos)
        << report.status().ToString();
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_TRUE(Json(*daemons_[i], {"snapshot", "list", "app"}).empty());
      EXPECT_TRUE(PartFiles(*daemons_[i], request.snapshot_id).empty());
      for (const auto& id : vms[i]) EXPECT_EQ(daemons_[i]->QemuStatus(id), "running") << id;
    }
    ASSERT_TRUE(hosts_[2]->SetLinkUp(true).ok());
    // Back: whatever reached it late, its part ends within its step
    // timeout (or its lease) and is undone.
    const auto until = Clock::now() + 30s;
    while (Clock::now() < until && !PartFiles(*daemons_[2], request.snapshot_id).empty()) {
      std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(PartFiles(*daemons_[2], request.snapshot_id).empty());
    EXPECT_TRUE(Json(*daemons_[2], {"snapshot", "list", "app"}).empty());
    for (const auto& id : vms[2]) EXPECT_EQ(daemons_[2]->QemuStatus(id), "running") << id;
  }
}

}  // namespace
}  // namespace vmgroup::testing

namespace vmgroup::testing {
namespace {

// Issue 20 with the coordinator inside vmgroupd: a group on host 1 joined
// by VMs of hosts 2 and 3 (named by host and UUID in its listing, and each
// host holding its part under the group's id), snapshotted by `vmgroup
// snapshot create` on host 1 alone: Complete under one id on every host,
// listed on the coordinator with each host's part; exported by `vmgroup
// snapshot export` on host 1, each host's part into its folder (and, when a
// host cannot export its part, no part anywhere, nor any conversion);
// destroyed there, gone from every host; a snapshot converted there into
// one reference point on every host, destroyed everywhere; and a reference
// point created there for the group, on every host.
TEST_F(NetHostsTest, ACoordinatorVmgroupdSnapshotsAGroupAcrossHostsAndDestroysItEverywhere) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinatorAndPeers(3));
  const HostDaemon& coordinator = *daemons_[0];
  const auto vms = MakeGroupAcrossHosts();
  ASSERT_EQ(vms.size(), 3u);
  const nlohmann::json group = Json(coordinator, {"group", "show", "app"});
  const std::string group_id = group_id_;
  std::set<std::string> members;
  for (const auto& m : group["members"]) members.insert(m);
  for (const auto& id : vms[1]) EXPECT_EQ(members.count("h2:" + id), 1u) << group.dump();
  for (const auto& id : vms[2]) EXPECT_EQ(members.count("h3:" + id), 1u) << group.dump();
  // Each peer holds its part of the group under the group's id.
  for (size_t i = 1; i < 3; ++i) {
    bool found = false;
    for (const auto& g : Json(*daemons_[i], {"group", "list"})) {
      if (g.value("id", "") != group_id) continue;
      found = true;
      EXPECT_EQ(g["members"].size(), 2u) << g.dump();
    }
    EXPECT_TRUE(found) << "host " << i + 1 << " has no part of group " << group_id;
  }
  // A VM a peer does not have is refused, and changes nothing.
  CommandOutput refused = Cli(coordinator, {"group", "add", "app", "--host", "h2", NewGuid()});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("host h2"), std::string::npos) << refused.err;

  CommandOutput taken = Cli(coordinator, {"snapshot", "create", "app", "--type", "recovery"});
  ASSERT_EQ(taken.exit_code, 0) << taken.err;
  const nlohmann::json listed = Json(coordinator, {"snapshot", "list", "app"});
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  const std::string id = listed[0]["id"];
  ASSERT_EQ(listed[0]["hosts"].size(), 3u) << listed.dump();
  EXPECT_EQ(std::string(listed[0]["hosts"][1]).rfind("h2: 2 VMs, cut ", 0), 0u) << listed.dump();
  EXPECT_EQ(listed[0]["members"].size(), 2u) << "this host's part";
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_EQ(SnapshotIds(*daemons_[i]), std::set<std::string>{id}) << "host " << i + 1;
  }
  ExpectAllRunning(vms);

  // Exported by the coordinator: every host's part in the folder named for
  // it (the directory is shared here), the manifest across hosts last.
  const std::string out = dir_ / "export";
  CommandOutput exported = Cli(coordinator, {"snapshot", "export", id, out});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  ExpectExportAcrossHosts(out, id, vms);

  // A host whose part is gone (destroyed there by hand) fails the export:
  // the parts the other hosts finished are removed, and what the export
  // made with them.
  ASSERT_TRUE(CliOk(*daemons_[2], {"snapshot", "delete", id}));
  const std::string again = dir_ / "export-again";
  CommandOutput failed = Cli(coordinator, {"snapshot", "export", id, again});
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_NE(failed.err.find("h3"), std::string::npos) << failed.err;
  EXPECT_FALSE(Env::Default()->FileExists(again)) << failed.err;
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(SnapshotIds(*daemons_[i]), std::set<std::string>{id});
  // Nor is it converted to a reference point: every host checks its part
  // before any converts, and none did.
  CommandOutput unconverted = Cli(coordinator, {"snapshot", "to-refpoint", id});
  EXPECT_NE(unconverted.exit_code, 0);
  EXPECT_NE(unconverted.err.find("h3"), std::string::npos) << unconverted.err;
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(SnapshotIds(*daemons_[i]), std::set<std::string>{id});

  CommandOutput destroyed = Cli(coordinator, {"snapshot", "delete", id});
  ASSERT_EQ(destroyed.exit_code, 0) << destroyed.err;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(SnapshotIds(*daemons_[i]).empty()) << "host " << i + 1;
    EXPECT_TRUE(PartFiles(*daemons_[i], id).empty()) << "host " << i + 1;
  }

  // A snapshot converted by the coordinator: every host's part a reference
  // point of one id, no snapshot left; deleted there, gone from every host.
  ASSERT_TRUE(CliOk(coordinator, {"snapshot", "create", "app", "--type", "recovery"}));
  const std::string next = Json(coordinator, {"snapshot", "list", "app"}).at(0)["id"];
  const std::string full = dir_ / "full";
  ASSERT_TRUE(CliOk(coordinator, {"snapshot", "export", next, full}));
  CommandOutput converted = Cli(coordinator, {"snapshot", "to-refpoint", next});
  ASSERT_EQ(converted.exit_code, 0) << converted.err;
  const nlohmann::json points = Json(coordinator, {"refpoint", "list", group_id});
  ASSERT_EQ(points.size(), 1u) << points.dump();
  const std::string rp = points[0]["id"];
  for (size_t i = 0; i < 3; ++i) {
    const nlohmann::json here = Json(*daemons_[i], {"refpoint", "list", group_id});
    ASSERT_EQ(here.size(), 1u) << "host " << i + 1 << ": " << here.dump();
    EXPECT_EQ(here[0]["id"], rp) << "host " << i + 1;
    EXPECT_EQ(here[0]["vms"].size(), 2u) << "host " << i + 1 << ": " << here.dump();
    EXPECT_TRUE(SnapshotIds(*daemons_[i]).empty()) << "host " << i + 1;
  }
  // The next snapshot exported on top of it: each host's part an
  // incremental export on its own part of the full one, whose every disk
  // reads, through it, as the frozen image that host lists.
  ASSERT_TRUE(CliOk(coordinator, {"snapshot", "create", "app", "--type", "recovery"}));
  const std::string later = Json(coordinator, {"snapshot", "list", "app"}).at(0)["id"];
  const std::string incremental = dir_ / "incremental";
  CommandOutput on_top = Cli(coordinator, {"snapshot", "export", later, incremental, "--base", rp});
  ASSERT_EQ(on_top.exit_code, 0) << on_top.err;
  ExpectExportAcrossHosts(incremental, later, vms);
  auto top = engine::ParseSpanningManifest(
      Env::Default()->ReadFile(incremental + "/" + engine::kManifestFile).value_or(""));
  ASSERT_TRUE(top.ok()) << top.status().ToString();
  EXPECT_EQ(top->base_reference_point_id, rp);
  for (const auto& p : top->parts) {
    auto part = engine::ReadManifestIn(incremental + "/" + p.folder);
    ASSERT_TRUE(part.ok()) << p.folder << ": " << part.status().ToString();
    EXPECT_EQ(part->base.reference_point_id, rp) << p.folder;
  }
  // ExportReferencePoint of it: while `later` sits between it and the
  // VMs' disks, the hosts refuse their parts and the snapshot taken for
  // the export is destroyed again; once `later` is gone, each host exports
  // what changed since its part of it, through a snapshot taken and
  // destroyed again.
  const std::string since = dir_ / "since";
  CommandOutput between = Cli(coordinator, {"refpoint", "export", rp, since});
  EXPECT_NE(between.exit_code, 0);
  EXPECT_NE(between.err.find("export in full"), std::string::npos) << between.err;
  EXPECT_FALSE(Env::Default()->FileExists(since)) << between.err;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(SnapshotIds(*daemons_[i]), std::set<std::string>{later}) << "host " << i + 1;
  }
  ASSERT_TRUE(CliOk(coordinator, {"snapshot", "delete", later}));
  CommandOutput changes = Cli(coordinator, {"refpoint", "export", rp, since});
  ASSERT_EQ(changes.exit_code, 0) << changes.err;
  auto since_top = engine::ParseSpanningManifest(
      Env::Default()->ReadFile(since + "/" + engine::kManifestFile).value_or(""));
  ASSERT_TRUE(since_top.ok()) << since_top.status().ToString();
  EXPECT_EQ(since_top->base_reference_point_id, rp);
  ASSERT_EQ(since_top->parts.size(), 3u);
  for (const auto& p : since_top->parts) {
    SCOPED_TRACE(p.folder);
    auto part = engine::ReadManifestIn(since + "/" + p.folder);
    ASSERT_TRUE(part.ok()) << part.status().ToString();
    EXPECT_EQ(part->base.reference_point_id, rp);
    EXPECT_EQ(part->vms.size(), 2u);
    // The guests sit in their firmware, writing nothing: each disk reads,
    // through the full export under it, as the full export's.
    for (const auto& vm : part->vms) {
      for (const auto& disk : vm.disks) {
        auto same = Env::Default()->Run({"qemu-img", "compare", "-U",
                                         since + "/" + p.folder + "/" + disk.file,
                                         full + "/" + p.folder + "/" + disk.file});
        ASSERT_TRUE(same.ok()) << same.status().ToString();
        EXPECT_EQ(same->exit_code, 0) << disk.file << ": " << same->out << same->err;
      }
    }
  }
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(SnapshotIds(*daemons_[i]).empty()) << "host " << i + 1;
    EXPECT_EQ(Json(*daemons_[i], {"refpoint", "list", group_id}).size(), 1u) << "host " << i + 1;
  }
  CommandOutput forgotten = Cli(coordinator, {"refpoint", "delete", rp});
  ASSERT_EQ(forgotten.exit_code, 0) << forgotten.err;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(Json(*daemons_[i], {"refpoint", "list", group_id}).empty()) << "host " << i + 1;
  }
  // One created for the group by the coordinator: the same on every host.
  CommandOutput created = Cli(coordinator, {"refpoint", "create", "app"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  const nlohmann::json made = Json(coordinator, {"refpoint", "list", group_id});
  ASSERT_EQ(made.size(), 1u) << made.dump();
  for (size_t i = 1; i < 3; ++i) {
    const nlohmann::json here = Json(*daemons_[i], {"refpoint", "list", group_id});
    ASSERT_EQ(here.size(), 1u) << "host " << i + 1 << ": " << here.dump();
    EXPECT_EQ(here[0]["id"], made[0]["id"]) << "host " << i + 1;
    EXPECT_TRUE(SnapshotIds(*daemons_[i]).empty()) << "host " << i + 1;
  }
  ExpectAllRunning(vms);
}

// The coordinating vmgroupd SIGKILLed while its snapshot across hosts is
// under way, at three moments: every VM of every host runs again (the
// hosts' leases), and once it is restarted the snapshot is on every host
// or on none (a host's part without the coordinator's commit is taken
// back), with no part's files left where it is on none.
// A backup session across hosts, as a backup product drives it: every
// disk of every host read with nbdcopy from the host that serves it, equal
// to that host's frozen image; ended into a reference point across hosts,
// the next session publishes each host's changes since it; a session nobody
// reads ends by itself on every host. Nothing of a session is left anywhere.
TEST_F(NetHostsTest, ABackupSessionAcrossHostsServesEveryHostsDisksAndEndsEverywhere) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinatorAndPeers(3));
  const HostDaemon& coordinator = *daemons_[0];
  const auto vms = MakeGroupAcrossHosts();
  ASSERT_EQ(vms.size(), 3u);
  const std::map<std::string, size_t> daemon_of = {{"", 0}, {"h2", 1}, {"h3", 2}};
  // Nothing of any session, nor a snapshot, left on any host.
  const auto expect_nothing_left = [&] {
    for (size_t i = 0; i < 3; ++i) {
      SCOPED_TRACE("host " + std::to_string(i + 1));
      EXPECT_EQ(Json(*daemons_[i], {"backup", "list"}), nlohmann::json::array());
      EXPECT_TRUE(SnapshotIds(*daemons_[i]).empty());
    }
  };

  const nlohmann::json s1 = Json(coordinator, {"backup", "begin", "app"});
  ASSERT_EQ(s1["disks"].size(), 6u) << s1.dump();
  std::map<std::string, nlohmann::json> shown;  // by host: its part of the snapshot
  for (const auto& [host, i] : daemon_of) {
    shown[host] = Json(*daemons_[i], {"snapshot", "show", s1["snapshot_id"]});
  }
  for (const auto& d : s1["disks"]) {
    const std::string host = d.value("host", "");
    ASSERT_EQ(daemon_of.count(host), 1u) << d.dump();
    const std::string vm = d["vm_id"];
    EXPECT_EQ(std::count(vms[daemon_of.at(host)].begin(), vms[daemon_of.at(host)].end(), vm), 1)
        << "served by the host it runs on: " << d.dump();
    const std::string copy = dir_ / ("full-" + vm + ".raw");
    auto read = Env::Default()->Run({"nbdcopy", d["uri"], copy}, std::chrono::minutes(2));
    ASSERT_TRUE(read.ok() && read->exit_code == 0) << (read.ok() ? read->err : "") << d.dump();
    std::string frozen;
    for (const auto& m : shown[host]["members"]) {
      if (m["vm_id"] == vm) frozen = m["images"][0];
    }
    ASSERT_FALSE(frozen.empty()) << shown[host].dump();
    auto same = Env::Default()->Run({"qemu-img", "compare", "-U", copy, frozen});
    EXPECT_TRUE(same.ok() && same->exit_code == 0) << "disk of " << vm << " on " << host;
  }
  // The coordinator lists one session; each host serves its part in one of its own.
  EXPECT_EQ(Json(coordinator, {"backup", "list"}).size(), 2u) << "the group's and its part";
  for (size_t i = 1; i < 3; ++i) EXPECT_EQ(Json(*daemons_[i], {"backup", "list"}).size(), 1u);

  const nlohmann::json rp = Json(coordinator, {"backup", "end", s1["session"], "--to-refpoint"});
  const std::string rp_id = rp.value("id", "");
  ASSERT_FALSE(rp_id.empty()) << rp.dump();
  for (size_t i = 0; i < 3; ++i) {
    const nlohmann::json here = Json(*daemons_[i], {"refpoint", "list", group_id_});
    ASSERT_EQ(here.size(), 1u) << "host " << i + 1 << ": " << here.dump();
    EXPECT_EQ(here[0]["id"], rp_id) << "host " << i + 1;
  }
  expect_nothing_left();

  // Incremental from it: each host's disks with the context of its changes.
  const nlohmann::json s2 =
      Json(coordinator, {"backup", "begin", "app", "--incremental-from", rp_id});
  ASSERT_EQ(s2["disks"].size(), 6u) << s2.dump();
  for (const auto& d : s2["disks"]) {
    ASSERT_TRUE(d["context"].is_string()) << "a context, not a full read: " << d.dump();
    const std::string context = d["context"];
    auto map = Env::Default()->Run({"nbdinfo", "--map=" + context, d["uri"]});
    EXPECT_TRUE(map.ok() && map->exit_code == 0) << (map.ok() ? map->err : "") << d.dump();
    // The same changes through the coordinator, which asks the host that serves it.
    const nlohmann::json changes =
        Json(coordinator, {"backup", "changes", s2["session"], d["vm_id"], "0"});
    EXPECT_EQ(changes.value("processed", uint64_t{0}), d["size"].get<uint64_t>()) << changes.dump();
  }
  ASSERT_TRUE(CliOk(coordinator, {"backup", "end", s2["session"]}));
  expect_nothing_left();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(Json(*daemons_[i], {"refpoint", "list", group_id_}).size(), 1u) << "kept";
  }

  // Read by nobody: every host's session idles out, then the group's.
  const nlohmann::json idle = Json(coordinator, {"backup", "begin", "app", "--idle-timeout", "1"});
  ASSERT_EQ(idle["disks"].size(), 6u) << idle.dump();
  for (int t = 0; t < 300 && !Json(coordinator, {"backup", "list"}).empty(); ++t) {
    std::this_thread::sleep_for(100ms);
  }
  expect_nothing_left();
  ExpectAllRunning(vms);
}

TEST_F(NetHostsTest, ACoordinatorKilledMidSnapshotLeavesItOnEveryHostOrNoneOnceRestarted) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinatorAndPeers(3));
  HostDaemon& coordinator = *daemons_[0];
  const auto vms = MakeGroupAcrossHosts();
  size_t complete = 0, taken_back = 0;  // so far
  for (int delay_ms : {0, 60, 250}) {
    SCOPED_TRACE("killed " + std::to_string(delay_ms) + " ms into the snapshot");
    CommandOutput sent = Cli(coordinator, {"snapshot", "create", "app", "--no-wait"});
    ASSERT_EQ(sent.exit_code, 0) << sent.err;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ASSERT_TRUE(coordinator.Stop(SIGKILL).ok());
    ExpectAllRunning(vms);
    ASSERT_TRUE(coordinator.Restart().ok());
    // Its recovery runs in the background; a part it missed ends by itself
    // within the host's step timeout (30 s). Settled: the same snapshots
    // listed on every host, and no host keeping files of a part that the
    // group does not have (a part being taken is listed nowhere).
    std::set<std::string> kept, on2, on3;
    std::vector<std::string> stray;
    for (int t = 0; t < 450; ++t) {
      kept = SnapshotIds(coordinator);
      on2 = SnapshotIds(*daemons_[1]);
      on3 = SnapshotIds(*daemons_[2]);
      std::set<std::string> tags;
      for (const auto& id : kept) tags.insert("s" + id.substr(0, 8));
      stray.clear();
      for (size_t i = 0; i < 3; ++i) {
        for (const auto& tag : PartTags(*daemons_[i])) {
          if (tags.count(tag) == 0) stray.push_back("host " + std::to_string(i + 1) + ": " + tag);
        }
      }
      if (on2 == kept && on3 == kept && stray.empty()) break;
      std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(on2, kept);
    EXPECT_EQ(on3, kept);
    EXPECT_TRUE(stray.empty()) << "files of parts the group does not have: " << stray[0];
    // Which way it went (for the reader of the test's output; each is right).
    auto log = Env::Default()->ReadFile(coordinator.state_dir() + "/../vmgroupd.log");
    const size_t undone = log.ok() ? CountOf(*log, "left unfinished across hosts") : 0;
    std::printf("killed %d ms in: %s\n", delay_ms,
                kept.size() > complete ? "Complete on every host"
                : undone > taken_back  ? "taken back on every host by the restart"
                                       : "no host had begun, or a host ended its part by itself");
    complete = kept.size();
    taken_back = undone;
    ExpectAllRunning(vms);
  }
  // Whatever each kill left, the group snapshots again and destroys again.
  CommandOutput taken = Cli(coordinator, {"snapshot", "create", "app"});
  EXPECT_EQ(taken.exit_code, 0) << taken.err;
  for (const auto& id : SnapshotIds(coordinator)) {
    CommandOutput destroyed = Cli(coordinator, {"snapshot", "delete", id});
    EXPECT_EQ(destroyed.exit_code, 0) << destroyed.err;
  }
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(SnapshotIds(*daemons_[i]).empty()) << "host " << i + 1;
  }
}

}  // namespace
}  // namespace vmgroup::testing

namespace vmgroup::testing {
namespace {

// The highest "wrote N" guest `vm_id` of `d` printed on its serial line:
// records 1..N are acknowledged.
int64_t Acknowledged(const HostDaemon& d, const std::string& vm_id) {
  return integration::Acknowledged(d.state_dir() + "/vms/" + vm_id + "/serial.log");
}

// `vm create` options of a guest-kit guest (128 MiB, one 64 MiB disk)
// running `workload` (testing::GuestKernelArgs).
std::vector<std::string> WriterGuest(const std::string& workload) {
  const std::string dir = GUEST_KIT_DIR;
  return {"--memory", "128",
          "--disk",   "64M",
          "--kernel", dir + "/vmlinuz",
          "--initrd", dir + "/initrd.gz",
          "--append", testing::GuestKernelArgs(workload)};
}

// The guests of `vms` (by host, as daemons) each acknowledged 20 records
// by `deadline` (a fatal failure otherwise).
void AwaitWriting(const std::vector<std::unique_ptr<HostDaemon>>& daemons,
                  const std::vector<std::vector<std::string>>& vms, Clock::time_point deadline) {
  for (size_t i = 0; i < vms.size(); ++i) {
    for (const auto& id : vms[i]) {
      while (Acknowledged(*daemons[i], id) < 20 && Clock::now() < deadline) {
        std::this_thread::sleep_for(200ms);
      }
      ASSERT_GE(Acknowledged(*daemons[i], id), 20) << "guest " << id << " is not writing";
    }
  }
}

// Issue 20's group of 3 hosts x 2 guests, each writing its sequence of
// records as fast as it can (the guest kit's writer): snapshotted by the
// coordinating vmgroupd, every frozen image on every host holds a gap-free
// prefix of its guest's records, each host's pause is in the listing, and
// every guest writes on after. Then application consistent: every guest on
// every host frozen by its agent through the cut and thawed after.
TEST_F(NetHostsTest, EveryFrozenImageOfWritingGuestsOnThreeHostsIsAGapFreePrefix) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinatorAndPeers(3));
  const auto vms = MakeGroupAcrossHosts(WriterGuest("agent=1 writer=raw"));
  ASSERT_EQ(vms.size(), 3u);
  const auto deadline = Clock::now() + std::chrono::minutes(3);
  ASSERT_NO_FATAL_FAILURE(AwaitWriting(daemons_, vms, deadline));
  CommandOutput taken = Cli(*daemons_[0], {"snapshot", "create", "app"});
  ASSERT_EQ(taken.exit_code, 0) << taken.err;
  const nlohmann::json listed = Json(*daemons_[0], {"snapshot", "list", "app"});
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  ASSERT_EQ(listed[0]["hosts"].size(), 3u) << listed.dump();
  for (const auto& h : listed[0]["hosts"]) {
    EXPECT_NE(std::string(h).find("longest pause"), std::string::npos) << h;
  }
  const std::string scratch = dir_ / "image.raw";
  for (size_t i = 0; i < 3; ++i) {
    const nlohmann::json part = Json(*daemons_[i], {"snapshot", "list", group_id_});
    ASSERT_EQ(part.size(), 1u) << "host " << i + 1 << ": " << part.dump();
    ASSERT_EQ(part[0]["members"].size(), 2u) << part.dump();
    for (const auto& m : part[0]["members"]) {
      ASSERT_EQ(m["images"].size(), 1u) << m.dump();
      auto k = integration::GapFreePrefix(m["images"][0], scratch);
      ASSERT_TRUE(k.ok()) << "host " << i + 1 << ": " << k.status().ToString();
      EXPECT_GE(*k, 20) << "host " << i + 1 << " VM " << m.value("vm_id", "")
                        << ": the cut came after 20 acknowledged records";
    }
  }
  // Exported while they write on: each host's folder holds its part, every
  // disk as its frozen image reads.
  const std::string out = dir_ / "export";
  CommandOutput exported = Cli(*daemons_[0], {"snapshot", "export", listed[0]["id"], out});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  ExpectExportAcrossHosts(out, listed[0]["id"], vms);

  // Application consistent: each host froze its guests (their agents ran
  // before their writers) as it prepared, and thawed them as it resumed.
  CommandOutput frozen =
      Cli(*daemons_[0], {"snapshot", "create", "app", "--consistency", "application"});
  ASSERT_EQ(frozen.exit_code, 0) << frozen.err;
  const nlohmann::json both = Json(*daemons_[0], {"snapshot", "list", "app"});
  ASSERT_EQ(both.size(), 2u) << both.dump();
  const std::string consistent = both[1]["id"] == listed[0]["id"] ? both[0]["id"] : both[1]["id"];
  for (size_t i = 0; i < 3; ++i) {
    auto part = daemons_[i]->Json({"snapshot", "show", consistent});
    ASSERT_TRUE(part.ok()) << "host " << i + 1 << ": " << part.status().ToString();
    EXPECT_EQ((*part)["consistency"], "application") << "host " << i + 1;
    EXPECT_GT((*part)["freeze_window_us"], 0) << "host " << i + 1 << ": " << part->dump();
    for (const auto& m : (*part)["members"]) {
      EXPECT_EQ(m["consistency"], "application") << "host " << i + 1 << ": " << m.dump();
    }
  }
  // And they write on, on their new images (thawed).
  for (size_t i = 0; i < 3; ++i) {
    for (const auto& id : vms[i]) {
      const int64_t at = Acknowledged(*daemons_[i], id);
      while (Acknowledged(*daemons_[i], id) <= at + 5 && Clock::now() < deadline) {
        std::this_thread::sleep_for(200ms);
      }
      EXPECT_GT(Acknowledged(*daemons_[i], id), at + 5) << "guest " << id << " stopped writing";
    }
  }
}

// The same group of writing guests applied back to a snapshot by the
// coordinating vmgroupd: a host that cannot apply its part (destroyed there)
// fails the apply before any guest stops; then applied, every guest of
// every host is off, each disk a new overlay that reads as the frozen image
// of its cut, a gap-free prefix of its writes.
TEST_F(NetHostsTest, AnApplyAcrossHostsTakesEveryWritingGuestBackToItsCut) {
  ASSERT_NO_FATAL_FAILURE(StartCoordinatorAndPeers(3));
  const auto vms = MakeGroupAcrossHosts(WriterGuest("writer=raw"));
  ASSERT_EQ(vms.size(), 3u);
  ASSERT_NO_FATAL_FAILURE(AwaitWriting(daemons_, vms, Clock::now() + std::chrono::minutes(3)));
  const HostDaemon& coordinator = *daemons_[0];
  ASSERT_TRUE(CliOk(coordinator, {"snapshot", "create", "app"}));
  const std::string id = Json(coordinator, {"snapshot", "list", "app"}).at(0)["id"];
  ASSERT_TRUE(CliOk(coordinator, {"snapshot", "create", "app"}));
  std::set<std::string> both = SnapshotIds(coordinator);
  both.erase(id);
  ASSERT_EQ(both.size(), 1u);
  const std::string later = *both.begin();

  ASSERT_TRUE(CliOk(*daemons_[2], {"snapshot", "delete", later}));
  CommandOutput refused = Cli(coordinator, {"snapshot", "apply", later});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("h3"), std::string::npos) << refused.err;
  ExpectAllRunning(vms);

  CommandOutput applied = Cli(coordinator, {"snapshot", "apply", id});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  const std::string scratch = dir_ / "image.raw";
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE("host " + std::to_string(i + 1));
    auto part = daemons_[i]->Json({"snapshot", "show", id});
    ASSERT_TRUE(part.ok()) << part.status().ToString();
    ASSERT_EQ((*part)["members"].size(), 2u) << part->dump();
    for (const auto& m : (*part)["members"]) {
      const nlohmann::json vm = Json(*daemons_[i], {"vm", "show", m.value("vm_id", "")});
      EXPECT_EQ(vm.value("state", ""), "off") << vm.dump();
      ASSERT_EQ(vm["disks"].size(), 1u) << vm.dump();
      const std::string disk = vm["disks"][0];
      const std::string frozen = m["images"][0];
      EXPECT_NE(disk, frozen) << "a new overlay";
      auto same = Env::Default()->Run({"qemu-img", "compare", "-U", disk, frozen});
      ASSERT_TRUE(same.ok()) << same.status().ToString();
      EXPECT_EQ(same->exit_code, 0) << disk << ": " << same->out << same->err;
      auto k = integration::GapFreePrefix(disk, scratch);
      ASSERT_TRUE(k.ok()) << k.status().ToString();
      EXPECT_GE(*k, 20) << "VM " << vm.value("name", "");
    }
  }
}

}  // namespace
}  // namespace vmgroup::testing

namespace vmgroup::testing {
namespace {

// Hosts 2 and 3 real vmgroupd in their namespaces (peers "h2", "h3"), each
// with two VMs; their coordinator crash_helper (the engine vmgroupd runs),
// on a state directory of the test's, its group across them defined.
class HelperCoordinatedTest : public NetHostsTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StartHosts(3, 0));
    std::map<std::string, const HostDaemon*> named;
    for (int i = 2; i <= 3; ++i) {
      auto d = HostDaemon::Start(*hosts_[i - 1], dir_ / ("h" + std::to_string(i)),
                                 {.vmgroupd = VMGROUPD_BIN, .vmgroup = VMGROUP_BIN});
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      named["h" + std::to_string(i)] = d->get();
      daemons_.push_back(std::move(*d));
    }
    auto args = HostDaemon::CoordinatorArgs(named, dir_ / "peers");
    ASSERT_TRUE(args.ok()) << args.status().ToString();
    // crash_helper --peers DIR NAME=URL... -- STATE ...
    helper_ = {CRASH_HELPER, "--peers", dir_ / "peers"};
    for (size_t i = 2; i + 1 < args->size(); i += 2) helper_.push_back((*args)[i + 1]);
    helper_.push_back("--");
    helper_.push_back(dir_ / "coordinator");
    std::vector<std::string> members;
    for (size_t i = 0; i < daemons_.size(); ++i) {
      vms_.push_back(MakeGroup(*daemons_[i], "h" + std::to_string(i + 2) + "-"));
      for (const auto& id : vms_.back()) members.push_back("h" + std::to_string(i + 2) + ":" + id);
    }
    std::vector<std::string> define = {"span-group"};
    define.insert(define.end(), members.begin(), members.end());
    CommandOutput made = Run(define);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    group_id_ = made.out.substr(0, made.out.find('\n'));
  }
  // crash_helper, as the coordinator, with `more`.
  CommandOutput Run(const std::vector<std::string>& more) {
    std::vector<std::string> argv = helper_;
    argv.insert(argv.end(), more.begin(), more.end());
    auto r = Env::Default()->Run(argv, std::chrono::minutes(2));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CommandOutput{};
  }

  std::vector<std::string> helper_;
  std::vector<std::vector<std::string>> vms_;  // by host, as daemons_
};

// The coordinator SIGKILLed at every phase of a snapshot across hosts (the
// engine's span.* fault points): after each kill every guest of the hosts
// runs, and once the coordinator is back (its recovery) no host keeps any
// of the snapshot, not even files.
TEST_F(HelperCoordinatedTest, ACoordinatorKilledAtEveryPhaseLeavesNoPartOnAnyHostOnceBack) {
  for (std::string_view point : engine::fault::kSpanAll) {
    SCOPED_TRACE(std::string(point));
    CommandOutput killed = Run({"span", group_id_, std::string(point)});
    EXPECT_EQ(killed.exit_code, -1) << "not killed at the point: " << killed.err;
    // The hosts resume by themselves (the lease): every guest runs.
    ExpectAllRunning(vms_);
    CommandOutput back = Run({"span-recover"});
    EXPECT_EQ(back.exit_code, 0) << back.out << back.err;
    for (size_t i = 0; i < daemons_.size(); ++i) {
      EXPECT_TRUE(SnapshotIds(*daemons_[i]).empty()) << "host " << i + 2;
      EXPECT_TRUE(PartTags(*daemons_[i]).empty()) << "host " << i + 2;
    }
  }
}

// The coordinator SIGKILLed at every point of an apply across hosts: from
// the prepare on, each host holds its part (its VMs off, and a start of one
// refused) while the coordinator is away; once it is back, an apply not
// decided is taken back on every host (each VM runs again on its images)
// and a decided one is committed on every host (each VM off, on a new
// overlay of its frozen image). A host's operator releases its part without
// the coordinator.
TEST_F(HelperCoordinatedTest, ACoordinatorKilledMidApplyHoldsEveryHostsPartUntilItDecides) {
  for (std::string_view point : engine::fault::kSpanApplyAll) {
    SCOPED_TRACE(std::string(point));
    // Every VM runs (the last round's apply left them off).
    for (size_t i = 0; i < daemons_.size(); ++i) {
      for (const auto& id : vms_[i]) {
        if (Json(*daemons_[i], {"vm", "show", id}).value("state", "") == "off") {
          ASSERT_TRUE(CliOk(*daemons_[i], {"vm", "start", id}));
        }
      }
    }
    CommandOutput taken = Run({"span-snapshot", group_id_});
    ASSERT_EQ(taken.exit_code, 0) << taken.err;
    const std::string id = taken.out.substr(0, taken.out.find('\n'));
    std::map<std::string, nlohmann::json> before;  // each VM's disks
    for (size_t i = 0; i < daemons_.size(); ++i) {
      for (const auto& vm : vms_[i]) before[vm] = Json(*daemons_[i], {"vm", "show", vm})["disks"];
    }
    CommandOutput killed = Run({"span-apply", id, std::string(point)});
    EXPECT_EQ(killed.exit_code, -1) << "not killed at the point: " << killed.err;
    // Held, and listed so with the way out (or off once committed, when
    // decided).
    for (size_t i = 0; i < daemons_.size(); ++i) {
      for (const auto& vm : vms_[i]) {
        const nlohmann::json shown = Json(*daemons_[i], {"vm", "show", vm});
        const std::string state = shown.value("state", "");
        EXPECT_TRUE(state == "held" ||
                    (state == "off" && point != engine::fault::kSpanApplyPrepared))
            << shown.dump();
        if (state == "held") {
          EXPECT_NE(shown.value("reason", "").find("vmgroup snapshot release " + id),
                    std::string::npos)
              << shown.dump();
        }
        if (point == engine::fault::kSpanApplyPrepared) {
          EXPECT_EQ(shown["disks"], before[vm]) << "not committed";
        }
      }
    }
    // A held VM's start is refused, naming the way out.
    if (point == engine::fault::kSpanApplyPrepared) {
      CommandOutput start = Cli(*daemons_[0], {"vm", "start", vms_[0][0]});
      EXPECT_NE(start.exit_code, 0);
      EXPECT_NE(start.err.find("vmgroup snapshot release " + id), std::string::npos) << start.err;
      // Host 3's operator gives up on the coordinator: its VMs run again.
      ASSERT_TRUE(CliOk(*daemons_[1], {"snapshot", "release", id}));
      for (const auto& vm : vms_[1]) {
        EXPECT_EQ(Json(*daemons_[1], {"vm", "show", vm}).value("state", ""), "running");
      }
    }
    CommandOutput back = Run({"span-recover"});
    EXPECT_EQ(back.exit_code, 0) << back.out << back.err;
    const bool decided = point != engine::fault::kSpanApplyPrepared;
    for (size_t i = 0; i < daemons_.size(); ++i) {
      for (const auto& vm : vms_[i]) {
        const nlohmann::json shown = Json(*daemons_[i], {"vm", "show", vm});
        EXPECT_EQ(shown.value("state", ""), decided ? "off" : "running")
            << "host " << i + 2 << ": " << shown.dump();
        EXPECT_EQ(shown["disks"] != before[vm], decided)
            << "host " << i + 2 << ": " << shown.dump();
      }
      EXPECT_EQ(SnapshotIds(*daemons_[i]).count(id), 1u) << "the snapshot stays";
    }
  }
}

}  // namespace
}  // namespace vmgroup::testing
