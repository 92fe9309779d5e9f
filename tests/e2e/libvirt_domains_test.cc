// vmgroupd serving the domains of a libvirt connection (--libvirt URI): a
// private libvirtd (testing/private_libvirtd.h) runs real guests under TCG,
// each writing record n into sector n of its first disk; the vmgroup CLI
// groups and snapshots them, and virsh must tell the truth afterwards.
#include <gmock/gmock.h>

#include <nlohmann/json.hpp>

#include "../integration/guest_fixture.h"
#include "daemon_fixture.h"
#include "testing/private_libvirtd.h"

namespace vmgroup::e2e {
namespace {

using integration::Acknowledged;
using integration::GapFreePrefix;
using nlohmann::json;
using ::testing::HasSubstr;

constexpr uint64_t kDiskBytes = 64 << 20;

class LibvirtDomainsTest : public DaemonFixture {
 protected:
  static void SetUpTestSuite() {
    integration::BuildGuestKit();
    auto d = testing::PrivateLibvirtd::Start(Env::Default(), libvirt_dir_ / "libvirtd");
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    libvirtd_ = std::move(d).value();
  }
  static void TearDownTestSuite() { libvirtd_.reset(); }

  // The daemon starts once the test has defined its domains (Serve).
  void SetUp() override { ASSERT_TRUE(libvirtd_) << "no libvirtd"; }
  void TearDown() override {
    DaemonFixture::TearDown();
    for (const auto& name : defined_) {
      (void)libvirtd_->Virsh({"destroy", name});
      (void)libvirtd_->Virsh({"undefine", name});
    }
  }

  void Serve() { StartDaemon({"--insecure-loopback", "--libvirt", libvirtd_->uri()}); }

  std::string Image(const std::string& file) const { return dir_ / file; }
  std::string SerialOf(const std::string& name) const { return Image(name + ".serial"); }

  // A domain writing records, with two fresh qcow2 disks; its UUID.
  std::string Define(const std::string& name, bool start = true) {
    testing::GuestDomain g{.name = name,
                           .kernel = std::string(GUEST_KIT_DIR) + "/vmlinuz",
                           .initrd = std::string(GUEST_KIT_DIR) + "/initrd.gz",
                           .append = "console=ttyS0 panic=-1 quiet writer=raw",
                           .serial_log = SerialOf(name)};
    for (const char* disk : {"-a.qcow2", "-b.qcow2"}) {
      g.disks.push_back(Image(name + disk));
      EXPECT_TRUE(storage::QemuImg(Env::Default()).Create(g.disks.back(), kDiskBytes).ok());
    }
    auto uuid = libvirtd_->Define(g, start);
    EXPECT_TRUE(uuid.ok()) << uuid.status().ToString();
    defined_.push_back(name);
    return uuid.ok() ? *uuid : "";
  }

  void WaitForRecords(const std::string& name, int64_t at_least) {
    const auto deadline = Clock::now() + std::chrono::minutes(3);
    while (Acknowledged(SerialOf(name)) < at_least) {
      ASSERT_LT(Clock::now(), deadline) << name << " is not writing";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  std::string Virsh(const std::vector<std::string>& args) {
    auto out = libvirtd_->Virsh(args);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : "";
  }
  // The image of each disk `virsh domblklist` lists, in order.
  std::vector<std::string> Sources(const std::string& domain) {
    std::vector<std::string> out;
    std::istringstream lines(Virsh({"domblklist", domain}));
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::string target, source;
      if (words >> target >> source && source.starts_with("/")) out.push_back(source);
    }
    return out;
  }

  json ListVms() {
    auto listed = json::parse(Ok({"--json", "vm", "list"}), nullptr, false);
    return listed.is_array() ? listed : json::array();
  }
  json VmNamed(const std::string& name) {
    for (const auto& vm : ListVms()) {
      if (vm.value("name", "") == name) return vm;
    }
    return json::object();
  }
  // Until `done` holds for the listing (DomainSync follows libvirt's events
  // on a thread of its own): at most 20 s.
  void AwaitListing(const std::function<bool(const json&)>& done) {
    const auto until = Clock::now() + std::chrono::seconds(20);
    while (!done(ListVms())) {
      ASSERT_LT(Clock::now(), until) << "vmgroupd's listing did not follow libvirt";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::string Trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

  static inline testing::TempDir libvirt_dir_;
  static inline std::unique_ptr<testing::PrivateLibvirtd> libvirtd_;
  std::vector<std::string> defined_;
};

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
    auto check = Env::Default()->Run({"qemu-img", "check", "-U", before[n][0]});
    ASSERT_TRUE(check.ok());
    EXPECT_EQ(check->exit_code, 0) << check->out << check->err;
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
  CommandOutput recovery = Cli({"snapshot", "create", "r", "--type", "recovery"});
  EXPECT_NE(recovery.exit_code, 0);
  EXPECT_THAT(recovery.err, HasSubstr("disk-only")) << recovery.err;
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
