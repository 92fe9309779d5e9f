// vmgroupd serving the domains of a libvirt connection (--libvirt URI): a
// private libvirtd (testing/private_libvirtd.h) runs real guests under TCG,
// each writing record n into sector n of its first disk; the vmgroup CLI
// groups and snapshots them, and virsh must tell the truth afterwards.
#include "libvirt_fixture.h"

namespace vmgroup::e2e {
namespace {

using ::testing::HasSubstr;

TEST_F(LibvirtDomainsTest, AGroupOfDomainsIsCutOnEveryDiskAndVirshNamesTheNewImages) {
  const std::vector<std::string> names = {"web0", "web1", "web2"};
  std::vector<std::string> uuids;
  std::map<std::string, std::vector<std::string>> before;
  for (const auto& n : names) uuids.push_back(Define(n));
  for (const auto& n : names) before[n] = Sources(n);
  Serve();

  for (size_t i = 0; i < names.size(); ++i) {
    json vm = VmNamed(names[i]);
    EXPECT_EQ(vm.value("id", ""), uuids[i]);
    EXPECT_EQ(vm.value("libvirt_uri", ""), libvirtd_->uri());
    EXPECT_EQ(vm.value("state", ""), "running");
    EXPECT_EQ(vm.value("disks", std::vector<std::string>{}), before[names[i]]);
  }
  EXPECT_THAT(Ok({"vm", "list"}), HasSubstr("libvirt " + libvirtd_->uri()));

  const std::string group = Trimmed(Ok({"group", "create", "shop"}));
  std::vector<std::string> add = {"group", "add", "shop"};
  add.insert(add.end(), uuids.begin(), uuids.end());
  Ok(add);
  for (const auto& n : names) WaitForRecords(n, 20);

  json snap = json::parse(Ok({"--json", "snapshot", "create", "shop", "--type", "disk"}));
  const std::string id = snap.value("id", "");
  ASSERT_FALSE(id.empty()) << snap.dump();
  json shown = json::parse(Ok({"--json", "snapshot", "show", id}));
  EXPECT_GT(shown.value("pause_window_us", 0), 0);
  ASSERT_EQ(shown["members"].size(), names.size()) << shown.dump();
  for (const auto& m : shown["members"]) {
    const std::string name = m.value("vm", "");
    const auto frozen = m.value("images", std::vector<std::string>{});
    // The cut froze the images the domain ran on...
    EXPECT_EQ(frozen, before[name]);
    EXPECT_GT(m.value("pause_us", 0), 0) << name;
    auto prefix = GapFreePrefix(frozen.at(0), Image("scratch.raw"));
    ASSERT_TRUE(prefix.ok()) << name << ": " << prefix.status().ToString();
    EXPECT_GE(*prefix, 20) << name;
    EXPECT_LE(*prefix, Acknowledged(SerialOf(name)) + 64) << name;
    // ...and libvirt, live and persistent, names the overlays now.
    const auto now = Sources(name);
    EXPECT_EQ(now, VmNamed(name).value("disks", std::vector<std::string>{}));
    ASSERT_EQ(now.size(), 2u);
    for (size_t d = 0; d < now.size(); ++d) {
      EXPECT_NE(now[d], before[name][d]) << name;
      EXPECT_THAT(Virsh({"dumpxml", "--inactive", name}), HasSubstr(now[d]));
    }
    // No libvirt snapshot metadata: vmgroup's catalog is the record.
    EXPECT_EQ(Trimmed(Virsh({"snapshot-list", name, "--name"})), "") << name;
    EXPECT_EQ(Trimmed(Virsh({"domstate", name})), "running") << name;
  }

  // Destroying the snapshot merges each overlay back (a live block commit):
  // the domains run on their first images again, holding every record.
  Ok({"snapshot", "delete", id});
  for (const auto& n : names) {
    EXPECT_EQ(Sources(n), before[n]) << n;
    EXPECT_EQ(Trimmed(Virsh({"domstate", n})), "running") << n;
    Status clean = libvirtd_->CheckClean(n, {before[n][0]});
    EXPECT_TRUE(clean.ok()) << clean.ToString();
  }
  for (const auto& n : names) {
    const int64_t acknowledged = Acknowledged(SerialOf(n));
    // Flushed by the writer's fsync before each acknowledgement.
    auto prefix = GapFreePrefix(before[n][0], Image("scratch.raw"));
    ASSERT_TRUE(prefix.ok()) << n << ": " << prefix.status().ToString();
    EXPECT_GE(*prefix, acknowledged) << n;
  }
  (void)group;
}

// What an operator types for a consistent backup of a database and its app
// server: every domain's filesystems frozen through its agent for the cut,
// and thawed after, by vmgroupd serving libvirt's domains.
TEST_F(LibvirtDomainsTest, AnApplicationConsistentSnapshotFreezesAndThawsEveryDomain) {
  const std::vector<std::string> names = {"db0", "app0"};
  std::vector<std::string> add = {"group", "add", "tier"};
  for (const auto& n : names) add.push_back(Define(n, /*start=*/true, /*agent=*/true));
  Serve();
  Ok({"group", "create", "tier"});
  Ok(add);
  for (const auto& n : names) WaitForRecords(n, 20);

  // The guests start their agents as they boot: until both answer, a
  // snapshot that must be application-consistent is refused.
  const auto until = Clock::now() + std::chrono::minutes(3);
  CommandOutput made;
  while ((made = Cli({"--json", "snapshot", "create", "tier", "--type", "disk", "--consistency",
                      "application"}))
             .exit_code != 0) {
    ASSERT_LT(Clock::now(), until) << "the agents never answered: " << made.err;
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  json snap = json::parse(made.out, nullptr, false);
  const std::string id = snap.value("id", "");
  ASSERT_FALSE(id.empty()) << made.out;
  json shown = json::parse(Ok({"--json", "snapshot", "show", id}));
  EXPECT_EQ(shown.value("consistency", ""), "application") << shown.dump();
  EXPECT_GT(shown.value("freeze_window_us", 0), 0) << shown.dump();
  for (const auto& m : shown["members"]) {
    EXPECT_EQ(m.value("consistency", ""), "application") << m.dump();
  }
  // Thawed: each guest's filesystem takes writes again.
  for (const auto& n : names) WaitForRecords(n, Acknowledged(SerialOf(n)) + 10);
}

TEST_F(LibvirtDomainsTest, AGroupMaySpanALibvirtDomainAndAVmOfVmgroupdsOwn) {
  const std::string uuid = Define("mixed0");
  const auto before = Sources("mixed0");
  Serve();
  const std::string own = NewVm("own");
  Ok({"group", "create", "mixed"});
  Ok({"group", "add", "mixed", uuid, own});
  WaitForRecords("mixed0", 5);
  json snap = json::parse(Ok({"--json", "snapshot", "create", "mixed", "--type", "disk"}));
  json shown = json::parse(Ok({"--json", "snapshot", "show", snap.value("id", "")}));
  ASSERT_EQ(shown["members"].size(), 2u) << shown.dump();
  const auto now = Sources("mixed0");
  ASSERT_EQ(now.size(), 2u);
  EXPECT_NE(now[0], before[0]);
  EXPECT_EQ(VmNamed("own").value("libvirt_uri", "x"), "");
  EXPECT_EQ(VmNamed("own").value("state", ""), "running");
}

TEST_F(LibvirtDomainsTest, WhatLibvirtCannotDoYetIsRefusedAndChangesNothing) {
  const std::string uuid = Define("refused0");
  const auto before = Sources("refused0");
  Serve();
  Ok({"group", "create", "r"});
  Ok({"group", "add", "r", uuid});
  CommandOutput standard = Cli({"snapshot", "create", "r", "--type", "standard"});
  EXPECT_NE(standard.exit_code, 0);
  EXPECT_THAT(standard.err, HasSubstr("with memory")) << standard.err;
  CommandOutput undefine = Cli({"vm", "delete", uuid});
  EXPECT_NE(undefine.exit_code, 0);
  EXPECT_THAT(undefine.err, HasSubstr("virsh undefine")) << undefine.err;
  EXPECT_EQ(Sources("refused0"), before);
  EXPECT_EQ(Trimmed(Virsh({"domstate", "refused0"})), "running");
  EXPECT_THAT(Virsh({"list", "--all", "--name"}), HasSubstr("refused0"));
}

TEST_F(LibvirtDomainsTest, DomainsDefinedStoppedAndUndefinedInLibvirtAreFollowed) {
  Define("follow0");
  Serve();
  EXPECT_EQ(VmNamed("follow0").value("state", ""), "running");
  const std::string later = Define("follow1", /*start=*/false);
  AwaitListing([&](const json& vms) {
    for (const auto& vm : vms) {
      if (vm.value("id", "") == later) return vm.value("state", "") == "off";
    }
    return false;
  });
  Virsh({"destroy", "follow0"});
  AwaitListing([](const json& vms) {
    for (const auto& vm : vms) {
      if (vm.value("name", "") == "follow0") return vm.value("state", "") == "off";
    }
    return false;
  });
  Virsh({"undefine", "follow1"});
  AwaitListing([&](const json& vms) {
    for (const auto& vm : vms) {
      if (vm.value("id", "") == later) return false;
    }
    return true;
  });
  // Started through vmgroup, the domain runs in libvirt.
  Ok({"vm", "start", "follow0"});
  EXPECT_EQ(Trimmed(Virsh({"domstate", "follow0"})), "running");
}

}  // namespace
}  // namespace vmgroup::e2e
