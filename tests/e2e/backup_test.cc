// Backup sessions (issue 17) through a real vmgroupd, as a backup product
// drives them: `vmgroup backup ... --json` and raw CIM-XML (wbemcli), the
// disks read by nbdcopy, nbdinfo --map and qemu-img. The VMs are firmware
// VMs with a second monitor, through which the test writes at known places
// while they run, so the changed ranges a session gives are known exactly.
// They are defined through the engine before the daemon starts (the CLI and
// CIM cannot give a VM extra QEMU arguments, and should not), then started by
// the daemon, which runs them as it runs any VM.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "daemon_fixture.h"
#include "testing/guest_io.h"

namespace vmgroup::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;
constexpr int kVms = 2;
constexpr uint64_t kDiskBytes = 8 << 20;

class BackupTest : public DaemonFixture {
 protected:
  void SetUp() override {
    {
      auto e = engine::Engine::Open({.state_dir = StateDir(), .qemu = testing::TestQemu()});
      ASSERT_TRUE(e.ok()) << e.status().ToString();
      auto g = testing::MakeTinyGroup(**e, Images(), "bk", kVms,
                                      {.disks = 1, .disk_bytes = kDiskBytes, .guest_monitor = true},
                                      /*start=*/false);
      ASSERT_TRUE(g.ok()) << g.status().ToString();
      vm_ids_ = g->vm_ids;
    }
    StartDaemon();
    for (int i = 0; i < kVms; ++i) Ok({"vm", "start", "bk" + std::to_string(i)});
    Write(0x11, 0, 4 << 20);  // data for the full read
  }

  std::string Images() const { return dir_ / "images"; }

  // Writes `length` bytes of `pattern` at `at` of every member's disk, as
  // its guest would.
  void Write(int pattern, uint64_t at, uint64_t length) {
    for (int i = 0; i < kVms; ++i) {
      Status s = testing::WriteAsGuest(
          testing::GuestMonitorPath(Images(), "bk" + std::to_string(i)), 0, pattern, at, length);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }

  // `vmgroup backup begin bk ARGS --json`, parsed.
  json Begin(std::vector<std::string> args = {}) {
    args.insert(args.begin(), {"backup", "begin", "bk", "--json"});
    const std::string out = Ok(args);
    return json::accept(out) ? json::parse(out) : json::object();
  }

  // `vmgroup backup changes SESSION VM 0 --json` as (offset, length) pairs;
  // every disk is looked at whole.
  Ranges Changes(const std::string& session, const std::string& vm) {
    json c = json::parse(Ok({"backup", "changes", session, vm, "0", "--json"}));
    EXPECT_EQ(c["processed"], kDiskBytes);
    Ranges out;
    for (const auto& r : c["ranges"]) out.emplace_back(r["offset"], r["length"]);
    return out;
  }

  // The ranges nbdinfo --map says `context` marks (type bit 0) in `uri`.
  Ranges Map(const std::string& uri, const std::string& context) {
    CommandOutput r = Run({"nbdinfo", "--map=" + context, uri});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    Ranges out;
    std::istringstream lines(r.out);
    std::string line;
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      uint64_t offset = 0, length = 0, type = 0;
      if (fields >> offset >> length >> type && (type & 1)) out.emplace_back(offset, length);
    }
    return out;
  }

  // Nothing of the session `begun` (its `backup begin --json`) is left: no
  // socket, no reader can connect, no record, no directory, and no snapshot
  // it took (destroyed, or made a reference point).
  void ExpectGone(const json& begun) {
    const std::string id = begun["session"];
    for (const auto& d : begun["disks"]) {
      EXPECT_FALSE(fs::exists(d["socket"].get<std::string>())) << d["socket"];
      EXPECT_NE(Run({"nbdinfo", "--size", d["uri"]}).exit_code, 0) << "still served: " << d["uri"];
    }
    EXPECT_EQ(Cli({"backup", "show", id}).exit_code, 4);
    EXPECT_EQ(json::parse(Ok({"backup", "list", "--json"})), json::array());
    EXPECT_FALSE(fs::exists(fs::path(StateDir()) / "backups" / id));
    if (begun["snapshot_taken"] == true) {
      EXPECT_EQ(Cli({"snapshot", "show", begun["snapshot_id"]}).exit_code, 4)
          << "the snapshot the session took is gone";
    }
  }

  std::vector<std::string> vm_ids_;
};

// The value wbemcli prints for out-parameter `name` of `cm`, as in
// "ChangedByteOffsets (uint64): 1048576,6291456, ProcessedByteLength ...".
std::string OutParam(const std::string& out, const std::string& name) {
  std::smatch m;
  if (std::regex_search(out, m, std::regex(name + R"( \(\w+\): (.*?)(?:, \w+ \(|\n|$))"))) {
    return m[1];
  }
  return "";
}

TEST_F(BackupTest, AFullThenAnIncrementalCycleThroughTheCli) {
  // Round 1: every disk read whole, equal to the frozen image.
  json s1 = Begin();
  ASSERT_EQ(s1["disks"].size(), size_t{kVms}) << s1.dump();
  EXPECT_EQ(s1["snapshot_taken"], true);
  EXPECT_EQ(s1["incremental_from"], nullptr);
  EXPECT_EQ(s1["state"], "Serving");
  json snap = json::parse(Ok({"snapshot", "show", s1["snapshot_id"], "--json"}));
  std::map<std::string, std::string> frozen;  // by VM id
  for (const auto& m : snap["members"]) frozen[m["vm_id"]] = m["images"][0];
  for (const auto& d : s1["disks"]) {
    EXPECT_EQ(d["context"], nullptr) << "a full read";
    EXPECT_EQ(d["size"], kDiskBytes);
    EXPECT_EQ(fs::status(d["socket"].get<std::string>()).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                  fs::perms::group_write);
    const std::string copy = dir_ / ("full-" + d["vm"].get<std::string>() + ".raw");
    CommandOutput c = Run({"nbdcopy", d["uri"], copy});
    ASSERT_EQ(c.exit_code, 0) << c.err;
    CommandOutput same =
        Run({"qemu-img", "compare", "-U", "-f", "raw", copy, frozen.at(d["vm_id"])});
    EXPECT_EQ(same.exit_code, 0) << same.out << same.err;
    // qemu-img reads the export itself, too.
    CommandOutput direct = Run(
        {"qemu-img", "compare", "-U", "-f", "raw", "-F", "qcow2", d["uri"], frozen.at(d["vm_id"])});
    EXPECT_EQ(direct.exit_code, 0) << direct.out << direct.err;
  }
  const json rp = json::parse(Ok({"backup", "end", s1["session"], "--to-refpoint", "--json"}));
  ASSERT_EQ(rp["id"].get<std::string>().size(), 36u) << rp.dump();
  ExpectGone(s1);

  // Round 2: only what was written since the point, not what came after.
  Write(0x22, 1 << 20, 1 << 20);
  Write(0x33, 6 << 20, 64 << 10);
  json s2 = Begin({"--incremental-from", rp["id"]});
  ASSERT_EQ(s2["disks"].size(), size_t{kVms}) << s2.dump();
  EXPECT_EQ(s2["incremental_from"], rp["id"]);
  Write(0x44, 3 << 20, 64 << 10);  // after the cut: not this session's
  const Ranges written = {{1 << 20, 1 << 20}, {6 << 20, 64 << 10}};
  for (const auto& d : s2["disks"]) {
    ASSERT_TRUE(d["context"].is_string()) << d.dump();
    EXPECT_TRUE(d["context"].get<std::string>().starts_with("qemu:dirty-bitmap:"));
    EXPECT_FALSE(d.contains("full_read_reason"));
    EXPECT_EQ(Changes(s2["session"], d["vm_id"]), written) << d["vm"];
    EXPECT_EQ(Map(d["uri"], d["context"]), written) << d["vm"];
  }
  EXPECT_EQ(json::parse(Ok({"backup", "list", "--json"})).size(), 1u);
  json ended = json::parse(Ok({"backup", "end", s2["session"], "--json"}));
  EXPECT_EQ(ended["ended"], true);
  ExpectGone(s2);
  for (int i = 0; i < kVms; ++i) {
    EXPECT_EQ(json::parse(Ok({"vm", "show", "bk" + std::to_string(i), "--json"}))["state"],
              "running");
  }
}

// Vmgroup_BackupService.GetVirtualDiskChanges over CIM-XML, by wbemcli.
TEST_F(BackupTest, GetVirtualDiskChangesThroughCimXmlAnswersTheSameRangesAndRefusesBadInput) {
  const json rp = json::parse(Ok({"refpoint", "create", "bk", "--json"}));
  Write(0x22, 1 << 20, 1 << 20);
  Write(0x33, 6 << 20, 64 << 10);
  json s = Begin({"--incremental-from", rp["id"]});
  const std::string session = s["session"];
  CommandOutput names = Wbem("ein", "Vmgroup_BackupService");
  ASSERT_EQ(names.exit_code, 0) << names.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(names.out, m, std::regex(R"(:(Vmgroup_BackupService\..*))")))
      << names.out;
  const std::string service = m[1];
  // References last: wbemcli folds what follows a reference into its keys.
  auto call = [&](const std::string& vm, const std::string& offset, const std::string& length,
                  const std::string& id) {
    return Wbem("cm", service,
                {"GetVirtualDiskChanges.VirtualSystemIdentifier=\"" + vm +
                 "\",DiskIndex=0,ByteOffset=" + offset + ",ByteLength=" + length +
                 ",BackupSession=Vmgroup_BackupSession.InstanceID=\"" + id + "\""});
  };
  for (const auto& vm : vm_ids_) {
    CommandOutput r = call(vm, "0", "0", session);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("GetVirtualDiskChanges: 0"), std::string::npos) << r.out;
    EXPECT_EQ(OutParam(r.out, "ChangedByteOffsets"), "1048576,6291456") << r.out;
    EXPECT_EQ(OutParam(r.out, "ChangedByteLengths"), "1048576,65536") << r.out;
    EXPECT_EQ(OutParam(r.out, "ProcessedByteLength"), std::to_string(kDiskBytes)) << r.out;
  }

  CommandOutput unknown = call(vm_ids_[0], "0", "0", "no-such-session");
  EXPECT_NE(unknown.out.find("GetVirtualDiskChanges: 4"), std::string::npos) << unknown.out;
  EXPECT_EQ(OutParam(unknown.out, "Vmgroup_ErrorDescription"),
            "no backup session has id no-such-session")
      << unknown.out;
  CommandOutput past = call(vm_ids_[0], std::to_string(kDiskBytes), "65536", session);
  EXPECT_NE(past.out.find("GetVirtualDiskChanges: 4"), std::string::npos) << past.out;
  EXPECT_NE(OutParam(past.out, "Vmgroup_ErrorDescription").find("goes beyond disk 0"),
            std::string::npos)
      << past.out;

  // A served VM is not turned off nor shut down: its QEMU serves the reader.
  for (const char* stop : {"turn-off", "stop"}) {
    CommandOutput refused = Cli({"vm", stop, vm_ids_[0]});
    EXPECT_NE(refused.exit_code, 0) << stop;
    EXPECT_NE(refused.err.find("is served by backup session " + session), std::string::npos)
        << refused.err;
  }
  EXPECT_EQ(Run({"nbdinfo", "--size", s["disks"][0]["uri"]}).exit_code, 0) << "still read";

  // Refused, and nothing changed: the session serves the same ranges.
  EXPECT_EQ(json::parse(Ok({"backup", "list", "--json"})).size(), 1u);
  EXPECT_EQ(Changes(session, vm_ids_[0]), (Ranges{{1 << 20, 1 << 20}, {6 << 20, 64 << 10}}));
  Ok({"backup", "end", session});
  ExpectGone(s);
}

TEST_F(BackupTest, ASessionNobodyReadsEndsByItselfWithAWarning) {
  json s = Begin({"--idle-timeout", "2"});
  ASSERT_TRUE(s.contains("job")) << s.dump();
  CommandOutput waited = Cli({"job", "wait", s["job"], "--json"});
  EXPECT_EQ(waited.exit_code, 0) << waited.err;
  json job = json::parse(waited.out);
  EXPECT_EQ(job["state"], "Completed with warnings") << job.dump();
  EXPECT_NE(job["error"].get<std::string>().find("no reader"), std::string::npos) << job.dump();
  ExpectGone(s);
}

TEST_F(BackupTest, ADaemonStoppedWhileASessionServesEndsIt) {
  json s = Begin();
  ASSERT_EQ(s["disks"].size(), size_t{kVms}) << s.dump();
  StopDaemon(SIGTERM);
  for (const auto& d : s["disks"]) {
    EXPECT_FALSE(fs::exists(d["socket"].get<std::string>())) << d["socket"];
  }
  StartDaemon();
  ExpectGone(s);
  EXPECT_EQ(json::parse(Ok({"snapshot", "list", "bk", "--json"})), json::array());
  for (int i = 0; i < kVms; ++i) {
    EXPECT_EQ(json::parse(Ok({"vm", "show", "bk" + std::to_string(i), "--json"}))["state"],
              "running");
  }
}

TEST_F(BackupTest, BadInputIsRefusedAndChangesNothing) {
  const json rp = json::parse(Ok({"refpoint", "create", "bk", "--json"}));
  const std::string refpoints = Ok({"refpoint", "list", "bk", "--json"});

  CommandOutput no_group = Cli({"backup", "begin", "nope", "--json"});
  EXPECT_EQ(no_group.exit_code, 4);
  EXPECT_NE(no_group.err.find("nope"), std::string::npos) << no_group.err;
  CommandOutput no_base = Cli({"backup", "begin", "bk", "--incremental-from", "nope"});
  EXPECT_EQ(no_base.exit_code, 4) << no_base.err;
  CommandOutput no_session = Cli({"backup", "end", "nope"});
  EXPECT_EQ(no_session.exit_code, 4) << no_session.err;
  EXPECT_NE(no_session.err.find("nope"), std::string::npos) << no_session.err;
  CommandOutput changes_of_none = Cli({"backup", "changes", "nope", vm_ids_[0], "0", "--json"});
  EXPECT_EQ(changes_of_none.exit_code, 4) << changes_of_none.err;
  CommandOutput bad_disk = Cli({"backup", "changes", "nope", vm_ids_[0], "first", "--json"});
  EXPECT_EQ(bad_disk.exit_code, 2) << bad_disk.err;
  EXPECT_NE(bad_disk.err.find("DISK"), std::string::npos) << bad_disk.err;
  // This daemon has no --nbd-tls-dir: never TCP, and it says what to set.
  CommandOutput tcp = Cli({"backup", "begin", "bk", "--tcp", "--json"});
  EXPECT_EQ(tcp.exit_code, 1) << tcp.err;
  EXPECT_NE(tcp.err.find("--nbd-tls-dir"), std::string::npos) << tcp.err;

  EXPECT_EQ(json::parse(Ok({"backup", "list", "--json"})), json::array());
  EXPECT_EQ(json::parse(Ok({"snapshot", "list", "bk", "--json"})), json::array());
  EXPECT_EQ(Ok({"refpoint", "list", "bk", "--json"}), refpoints);
  EXPECT_TRUE(!fs::exists(fs::path(StateDir()) / "backups") ||
              fs::is_empty(fs::path(StateDir()) / "backups"));
  EXPECT_EQ(rp["id"].get<std::string>().size(), 36u);
}

}  // namespace
}  // namespace vmgroup::e2e
