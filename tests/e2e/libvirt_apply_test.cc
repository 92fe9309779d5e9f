// Applying and destroying group snapshots of libvirt domains through
// vmgroupd: the hand-made revert (destroy, a new overlay on each frozen
// image, a definition with no <backingStore>, start again as it was) and the
// offline merge of a shut-off domain, with virsh telling the truth after
// each. Real guests under TCG in a private libvirtd (libvirt_fixture.h).
#include <regex>

#include "libvirt_fixture.h"

namespace vmgroup::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class LibvirtApplyTest : public LibvirtDomainsTest {
 protected:
  // A disk-only snapshot of `group`; its id.
  std::string Snapshot(const std::string& group) {
    json snap = json::parse(Ok({"--json", "snapshot", "create", group, "--type", "disk"}));
    const std::string id = snap.value("id", "");
    EXPECT_FALSE(id.empty()) << snap.dump();
    return id;
  }
  // The images snapshot `id` froze, by VM name.
  std::map<std::string, std::vector<std::string>> Frozen(const std::string& id) {
    std::map<std::string, std::vector<std::string>> out;
    json shown = json::parse(Ok({"--json", "snapshot", "show", id}));
    for (const auto& m : shown["members"]) {
      out[m.value("vm", "")] = m.value("images", std::vector<std::string>{});
    }
    return out;
  }
  std::vector<std::string> Listed(const std::string& name) {
    return VmNamed(name).value("disks", std::vector<std::string>{});
  }
  std::string State(const std::string& name) { return Trimmed(Virsh({"domstate", name})); }

  // True when the two images read the same, guest-visible byte for byte.
  static bool Identical(const std::string& a, const std::string& b) {
    auto r = Env::Default()->Run({"qemu-img", "compare", "-U", a, b});
    return r.ok() && r->exit_code == 0;
  }
  static bool Clean(const std::string& image) {
    auto r = Env::Default()->Run({"qemu-img", "check", "-U", image});
    return r.ok() && r->exit_code == 0;
  }
  static std::string BackingOf(const std::string& image) {
    auto r = Env::Default()->Run({"qemu-img", "info", "-U", "--output=json", image});
    if (!r.ok() || r->exit_code != 0) return "";
    return json::parse(r->out, nullptr, false).value("backing-filename", "");
  }

  // The definition names each of `images` and no chain below them (an empty
  // <backingStore/>, "no backing", is what libvirt writes itself after a
  // live merge onto an image without one). With `redefined` (by vmgroupd),
  // not even that: libvirt reads every chain from the images' headers.
  void ExpectDefinedOn(const std::string& name, const std::vector<std::string>& images,
                       bool redefined = true) {
    const std::string xml = InactiveXml(name);
    for (const auto& image : images) EXPECT_THAT(xml, HasSubstr(image)) << name;
    EXPECT_THAT(xml, Not(HasSubstr(redefined ? "<backingStore" : "<backingStore type"))) << name;
    EXPECT_EQ(Sources(name), images) << name;
    EXPECT_EQ(Listed(name), images) << name;
  }

  // Until the guest's serial log, past its first `offset` bytes (all of it
  // if the log was started anew since), acknowledges record `at_least`.
  void WaitForRecordsAfter(const std::string& name, size_t offset, int64_t at_least) {
    static const std::regex kWrote("wrote ([0-9]+)");
    const auto deadline = Clock::now() + std::chrono::minutes(3);
    for (;;) {
      std::string log = Env::Default()->ReadFile(SerialOf(name)).value_or("");
      log = log.size() >= offset ? log.substr(offset) : log;
      int64_t last = 0;
      for (std::sregex_iterator m(log.begin(), log.end(), kWrote), end; m != end; ++m) {
        last = std::max<int64_t>(last, std::stoll((*m)[1]));
      }
      if (last >= at_least) return;
      ASSERT_LT(Clock::now(), deadline) << name << " is not writing";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  size_t SerialSize(const std::string& name) {
    return Env::Default()->ReadFile(SerialOf(name)).value_or("").size();
  }
};

TEST_F(LibvirtApplyTest, ApplyRevertsEachDomainOntoANewOverlayWithNoStaleChain) {
  const std::vector<std::string> names = {"ap0", "ap1"};
  std::vector<std::string> uuids;
  for (const auto& n : names) uuids.push_back(Define(n));
  Serve();
  Ok({"group", "create", "g"});
  Ok({"group", "add", "g", uuids[0], uuids[1]});
  for (const auto& n : names) WaitForRecords(n, 10);
  const std::string id = Snapshot("g");
  auto frozen = Frozen(id);
  std::map<std::string, std::vector<std::string>> cut;  // the overlays the cut made
  for (const auto& n : names) {
    cut[n] = Listed(n);
    auto prefix = GapFreePrefix(frozen[n].at(0), Image("scratch.raw"));
    ASSERT_TRUE(prefix.ok()) << prefix.status().ToString();
    WaitForRecords(n, *prefix + 20);  // the disks move on past the snapshot
  }
  Ok({"vm", "pause", "ap1"});
  std::map<std::string, size_t> serial_at;
  for (const auto& n : names) serial_at[n] = SerialSize(n);

  Ok({"snapshot", "apply", id});
  for (const auto& n : names) {
    const auto now = Sources(n);
    ASSERT_EQ(now.size(), 2u) << n;
    ExpectDefinedOn(n, now);
    for (size_t d = 0; d < now.size(); ++d) {
      EXPECT_NE(now[d], cut[n][d]) << n;
      EXPECT_EQ(BackingOf(now[d]), frozen[n][d]) << n;
      EXPECT_FALSE(Env::Default()->FileExists(cut[n][d])) << "the discarded overlay stayed";
    }
    EXPECT_EQ(Trimmed(Virsh({"snapshot-list", n, "--name"})), "") << n;
  }
  // ap1 came back paused, as it was: its disks are exactly the snapshot's.
  EXPECT_EQ(State("ap1"), "paused");
  EXPECT_EQ(VmNamed("ap1").value("state", ""), "paused");
  for (size_t d = 0; d < 2; ++d) EXPECT_TRUE(Identical(frozen["ap1"][d], Sources("ap1")[d]));
  // ap0 runs again and writes on; so does ap1 once resumed.
  EXPECT_EQ(State("ap0"), "running");
  Ok({"vm", "resume", "ap1"});
  for (const auto& n : names) {
    WaitForRecordsAfter(n, serial_at[n], 10);
    auto prefix = GapFreePrefix(Sources(n)[0], Image("scratch.raw"));
    EXPECT_TRUE(prefix.ok()) << n << ": " << prefix.status().ToString();
  }
}

TEST_F(LibvirtApplyTest, AShutOffMemberStaysOffRedefinedAndItsSnapshotMergesOffline) {
  const std::string on = Define("on0");
  const std::string off = Define("off0", /*start=*/false);
  const auto original = Sources("off0");
  Serve();
  Ok({"group", "create", "h"});
  Ok({"group", "add", "h", on, off});
  WaitForRecords("on0", 5);
  const std::string id = Snapshot("h");
  auto frozen = Frozen(id);

  Ok({"snapshot", "apply", id});
  EXPECT_EQ(State("off0"), "shut off");
  EXPECT_EQ(VmNamed("off0").value("state", ""), "off");
  EXPECT_EQ(State("on0"), "running");
  const auto applied = Sources("off0");
  ASSERT_EQ(applied.size(), 2u);
  ExpectDefinedOn("off0", applied);
  ExpectDefinedOn("on0", Sources("on0"));
  for (size_t d = 0; d < applied.size(); ++d) {
    EXPECT_EQ(BackingOf(applied[d]), frozen["off0"][d]);
    EXPECT_TRUE(Identical(frozen["off0"][d], applied[d]));
  }

  // Destroyed while off0 is shut off: its overlays are merged with
  // qemu-img, and libvirt names the images that remain.
  Ok({"snapshot", "delete", id});
  EXPECT_EQ(State("off0"), "shut off");
  const auto remain = Sources("off0");
  EXPECT_EQ(remain, original);
  ExpectDefinedOn("off0", remain);
  for (size_t d = 0; d < remain.size(); ++d) {
    EXPECT_TRUE(Clean(remain[d])) << remain[d];
    EXPECT_FALSE(Env::Default()->FileExists(applied[d])) << "the merged overlay stayed";
  }
  ExpectDefinedOn("on0", Sources("on0"), /*redefined=*/false);  // merged by libvirt, live
  Status clean = libvirtd_->CheckClean("on0", Sources("on0"));
  EXPECT_TRUE(clean.ok()) << clean.ToString();
  // libvirt starts it on what remains.
  Ok({"vm", "start", "off0"});
  WaitForRecords("off0", 5);
}

TEST_F(LibvirtApplyTest, DestroyWhileADomainIsShutOffMergesWithQemuImgAndRedefinesIt) {
  const std::string uuid = Define("down0");
  const auto original = Sources("down0");
  Serve();
  Ok({"group", "create", "d"});
  Ok({"group", "add", "d", uuid});
  WaitForRecords("down0", 5);
  const std::string id = Snapshot("d");
  WaitForRecords("down0", Acknowledged(SerialOf("down0")) + 10);  // records in the overlay too
  const auto overlays = Sources("down0");
  Ok({"vm", "turn-off", "down0"});
  const int64_t acknowledged = Acknowledged(SerialOf("down0"));

  Ok({"snapshot", "delete", id});
  EXPECT_EQ(State("down0"), "shut off");
  EXPECT_EQ(Sources("down0"), original);
  ExpectDefinedOn("down0", original);
  for (size_t d = 0; d < original.size(); ++d) {
    EXPECT_TRUE(Clean(original[d])) << original[d];
    EXPECT_EQ(BackingOf(original[d]), "");
    EXPECT_FALSE(Env::Default()->FileExists(overlays[d])) << "the merged overlay stayed";
  }
  // Every record the guest had acknowledged is in the image that remains.
  auto prefix = GapFreePrefix(original[0], Image("scratch.raw"));
  ASSERT_TRUE(prefix.ok()) << prefix.status().ToString();
  EXPECT_GE(*prefix, acknowledged);
  Ok({"vm", "start", "down0"});
  EXPECT_EQ(State("down0"), "running");
}

TEST_F(LibvirtApplyTest, AGroupOfADomainAndAVmOfVmgroupdsOwnApplies) {
  const std::string uuid = Define("mix0");
  Serve();
  const std::string own = NewVm("own");
  Ok({"group", "create", "m"});
  Ok({"group", "add", "m", uuid, own});
  WaitForRecords("mix0", 5);
  const std::string id = Snapshot("m");
  const auto own_before = Listed("own");
  auto frozen = Frozen(id);
  Ok({"snapshot", "apply", id});
  EXPECT_EQ(State("mix0"), "running");
  const auto now = Sources("mix0");
  ASSERT_EQ(now.size(), 2u);
  ExpectDefinedOn("mix0", now);
  EXPECT_EQ(BackingOf(now[0]), frozen["mix0"][0]);
  // vmgroupd's own VM is back on the snapshot too, off (it has no memory state).
  EXPECT_EQ(VmNamed("own").value("state", ""), "off");
  ASSERT_EQ(Listed("own").size(), 1u);
  EXPECT_NE(Listed("own"), own_before);
  EXPECT_EQ(BackingOf(Listed("own")[0]), frozen["own"].at(0));
}

TEST_F(LibvirtApplyTest, ARefusedApplyLeavesEveryDomainAsItWas) {
  const std::string a = Define("ref0");
  const std::string b = Define("ref1");
  Serve();
  Ok({"group", "create", "r"});
  Ok({"group", "add", "r", a});
  const std::string id = Snapshot("r");
  Ok({"group", "add", "r", b});
  const std::map<std::string, std::string> xml = {{"ref0", InactiveXml("ref0")},
                                                  {"ref1", InactiveXml("ref1")}};
  const auto disks = Sources("ref0");

  CommandOutput refused = Cli({"snapshot", "apply", id});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("members changed")) << refused.err;
  for (const auto& [name, definition] : xml) {
    EXPECT_EQ(InactiveXml(name), definition) << name;
    EXPECT_EQ(State(name), "running") << name;
  }
  EXPECT_EQ(Sources("ref0"), disks);
  EXPECT_EQ(Listed("ref0"), disks);
}

}  // namespace
}  // namespace vmgroup::e2e
