// Export and restore of group snapshots holding libvirt domains: a private
// libvirtd (testing/private_libvirtd.h) runs two writing guests of the
// guest kit under TCG, grouped with one of vmgroupd's own VMs; one
// disk-only snapshot of the group is exported once per suite. The export
// must hold the frozen images and each domain's definition; a restore as
// new must define shut-off domains without <backingStore> on copies equal
// to the snapshot, which boot; refused restores make nothing; a restore
// killed at each of its fault points is taken back by recovery (domains
// undefined, copies removed).
#include <algorithm>
#include <filesystem>
#include <set>
#include <thread>

#include "engine/engine.h"
#include "engine/export_manifest.h"
#include "engine/fault_points.h"
#include "guest_fixture.h"
#include "hypervisor/libvirt/libvirt_driver.h"
#include "storage/checksum.h"
#include "testing/guest_kit.h"
#include "testing/private_libvirtd.h"
#include "testing/tiny_vms.h"

namespace vmgroup::integration {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kDiskBytes = 32 << 20;
constexpr int kDomains = 2;
constexpr int kDiskOnly = 32768;

class LibvirtExportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    BuildGuestKit();
    auto d = testing::PrivateLibvirtd::Start(Env::Default(), dir_ / "libvirtd");
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    libvirtd_ = std::move(d).value();
    auto driver = hypervisor::libvirt::LibvirtDriver::Connect(Env::Default(), libvirtd_->uri());
    ASSERT_TRUE(driver.ok()) << driver.status().ToString();
    driver_ = std::move(driver).value();
    fs::create_directories(Images());
    // The second domain boots its kernel through a link, as /boot/vmlinuz.
    fs::create_symlink(std::string(GUEST_KIT_DIR) + "/vmlinuz", Images() / "vmlinuz");
    for (int i = 0; i < kDomains; ++i) {
      const std::string name = "lx" + std::to_string(i);
      testing::GuestDomain g{.name = name,
                             .kernel = i == 0 ? std::string(GUEST_KIT_DIR) + "/vmlinuz"
                                              : (Images() / "vmlinuz").string(),
                             .initrd = std::string(GUEST_KIT_DIR) + "/initrd.gz",
                             .append = testing::GuestKernelArgs("writer=raw"),
                             .serial_log = Images() / (name + ".serial")};
      for (const char* disk : {"-a.qcow2", "-b.qcow2"}) {
        g.disks.push_back(Images() / (name + disk));
        ASSERT_TRUE(storage::QemuImg(Env::Default()).Create(g.disks.back(), kDiskBytes).ok());
      }
      auto uuid = libvirtd_->Define(g, /*start=*/true);
      ASSERT_TRUE(uuid.ok()) << uuid.status().ToString();
      names_.push_back(name);
      uuids_.push_back(*uuid);
    }
    for (const auto& name : names_) {
      const auto deadline = Clock::now() + std::chrono::minutes(3);
      while (Acknowledged(Images() / (name + ".serial")) < 5) {
        ASSERT_LT(Clock::now(), deadline) << name << " does not write";
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    auto e = Open(true);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    auto own = testing::DefineTinyVm(**e, Images(), "own0", {.disks = 1});
    ASSERT_TRUE(own.ok()) << own.status().ToString();
    own_ = *own;
    auto c =
        (*e)->collections().DefineCollection("mixed", "", catalog::CollectionType::kVirtualSystems);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    for (const auto& uuid : uuids_) ASSERT_TRUE((*e)->collections().AddMember(uuid, *c).ok());
    ASSERT_TRUE((*e)->collections().AddMember(own_, *c).ok());
    auto s = (*e)->snapshots().Create({.collection_id = *c, .type = kDiskOnly});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    snapshot_ = s->id;
    export_ = dir_ / "export";
    auto m = (*e)->snapshots().Export({.snapshot_id = snapshot_, .directory = export_});
    ASSERT_TRUE(m.ok()) << m.status().ToString();
  }
  static void TearDownTestSuite() {
    if (libvirtd_) {
      auto all = libvirtd_->Virsh({"list", "--all", "--name"});
      std::istringstream names(all.ok() ? *all : "");
      for (std::string name; std::getline(names, name);) {
        if (name.empty()) continue;
        (void)libvirtd_->Virsh({"destroy", name});
        (void)libvirtd_->Virsh({"undefine", name});
      }
    }
    driver_.reset();
    libvirtd_.reset();
  }

  void SetUp() override { ASSERT_TRUE(libvirtd_ && !snapshot_.empty()) << "no snapshot"; }
  void TearDown() override { engine_.reset(); }

  static Result<std::unique_ptr<engine::Engine>> Open(bool connected) {
    std::map<std::string, hypervisor::Driver*> libvirt;
    if (connected) libvirt[libvirtd_->uri()] = driver_.get();
    return engine::Engine::Open(
        {.state_dir = dir_ / "state", .qemu = testing::TestQemu(), .libvirt = libvirt});
  }
  void OpenEngine(bool connected = true) {
    auto e = Open(connected);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e).value();
  }

  std::string Virsh(const std::vector<std::string>& args) {
    auto out = libvirtd_->Virsh(args);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : "";
  }
  std::string Domains() { return Virsh({"list", "--all", "--name"}); }
  // Every file the restores may make: copies beside the images, run directories.
  static std::set<std::string> Made() {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(Images())) out.insert(e.path());
    for (const auto& e : fs::directory_iterator(dir_ / "state/vms")) out.insert(e.path());
    return out;
  }
  static bool Same(const std::string& a, const std::string& b) {
    auto r = Env::Default()->Run({"qemu-img", "compare", "-U", a, b}, std::chrono::minutes(1));
    return r.ok() && r->exit_code == 0;
  }

  static fs::path Images() { return fs::path(dir_.path()) / "images"; }

  static inline testing::TempDir dir_;
  static inline std::string export_;
  static inline std::unique_ptr<testing::PrivateLibvirtd> libvirtd_;
  static inline std::unique_ptr<hypervisor::libvirt::LibvirtDriver> driver_;
  static inline std::vector<std::string> names_, uuids_;
  static inline std::string own_, snapshot_;
  std::unique_ptr<engine::Engine> engine_;
};

TEST_F(LibvirtExportTest, ExportHoldsTheFrozenImagesAndEachDomainsDefinition) {
  OpenEngine();
  auto m = engine::ReadManifestIn(export_);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->version, 3) << "an export holding domains is version 3";
  auto s = engine_->catalog().GetSnapshot(snapshot_);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(m->vms.size(), 3u);
  for (size_t i = 0; i < m->vms.size(); ++i) {
    const engine::ExportedVm& vm = m->vms[i];
    const catalog::MemberSnapshot& member = s->members[i];
    ASSERT_EQ(vm.id, member.vm_id);
    if (vm.id == own_) {
      EXPECT_TRUE(vm.domain.empty()) << "vmgroupd's own VM is no domain";
    } else {
      EXPECT_EQ(vm.domain.uri, libvirtd_->uri());
      EXPECT_EQ(vm.domain.image_dir, Images().string());
      const std::string xml = export_ + "/" + vm.domain.definition.file;
      auto digest = storage::DigestFile(Env::Default(), xml);
      ASSERT_TRUE(digest.ok());
      EXPECT_EQ(digest->checksum, vm.domain.definition.checksum);
      auto text = Env::Default()->ReadFile(xml);
      ASSERT_TRUE(text.ok());
      EXPECT_NE(text->find("<name>" + vm.name + "</name>"), std::string::npos) << *text;
      EXPECT_NE(text->find("<uuid>" + vm.id + "</uuid>"), std::string::npos);
      EXPECT_FALSE(vm.kernel.empty()) << "the kernel the domain boots travels with it";
    }
    ASSERT_EQ(vm.disks.size(), member.disks.size());
    for (size_t k = 0; k < vm.disks.size(); ++k) {
      EXPECT_TRUE(Same(member.disks[k].frozen_image, export_ + "/" + vm.disks[k].file))
          << vm.name << " disk " << k;
    }
  }
}

TEST_F(LibvirtExportTest, RestoreAsNewDefinesShutOffDomainsOnCopiesThatBoot) {
  OpenEngine();
  auto s = engine_->catalog().GetSnapshot(snapshot_);
  ASSERT_TRUE(s.ok());
  auto r = engine_->restorer().Restore({.directory = export_, .as_new = true});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->vm_ids.size(), 3u);
  for (size_t i = 0; i < r->vm_ids.size(); ++i) {
    const std::string& id = r->vm_ids[i];
    auto vm = engine_->catalog().GetVm(id);
    ASSERT_TRUE(vm.ok()) << vm.status().ToString();
    EXPECT_EQ(vm->power, catalog::Power::kOff);
    ASSERT_EQ(vm->disks.size(), s->members[i].disks.size());
    for (size_t k = 0; k < vm->disks.size(); ++k) {
      EXPECT_TRUE(Same(vm->disks[k], s->members[i].disks[k].frozen_image)) << vm->disks[k];
    }
    if (s->members[i].vm_id == own_) {
      EXPECT_EQ(vm->libvirt_uri, "");
      continue;
    }
    EXPECT_EQ(vm->libvirt_uri, libvirtd_->uri()) << "vm list shows where it lives";
    EXPECT_TRUE(vm->name.ends_with("-restored")) << vm->name;
    EXPECT_NE(Virsh({"dominfo", id}).find("shut off"), std::string::npos);
    const std::string xml = Virsh({"dumpxml", "--inactive", id});
    EXPECT_EQ(xml.find("backingStore"), std::string::npos) << xml;
    for (const auto& disk : vm->disks) {
      EXPECT_EQ(fs::path(disk).parent_path(), Images()) << "copies lie beside the images";
      EXPECT_NE(xml.find("'" + disk + "'"), std::string::npos) << xml;
    }
  }
  // The restored domains boot from their copies and write on.
  for (const auto& id : r->vm_ids) {
    if (engine_->catalog().GetVm(id)->libvirt_uri.empty()) continue;
    ASSERT_TRUE(engine_->vms().Start(id).ok());
    const std::string console = Images() / (id + "-restored-console0.log");
    const auto deadline = Clock::now() + std::chrono::minutes(3);
    while (Acknowledged(console) < 5) {
      ASSERT_LT(Clock::now(), deadline) << id << " does not boot (" << console << ")";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(engine_->vms().Stop(id).ok());
  }
  // Out of the way of the next restores as new.
  for (const auto& id : r->vm_ids) {
    if (engine_->catalog().GetVm(id)->libvirt_uri.empty()) {
      ASSERT_TRUE(engine_->vms().Undefine(id).ok());
    } else {
      Virsh({"undefine", id});
      (void)engine_->vms().ForgetDomain(id);  // unless its listing was first
    }
  }
  ASSERT_TRUE(engine_->catalog().DeleteCollection(r->collection_id).ok());
}

TEST_F(LibvirtExportTest, RefusedRestoresMakeNothing) {
  const std::string domains = Domains();
  const auto made = Made();
  {
    OpenEngine(/*connected=*/false);
    auto r = engine_->restorer().Restore({.directory = export_, .as_new = true});
    EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
    EXPECT_NE(r.status().message().find("--libvirt " + libvirtd_->uri()), std::string::npos)
        << r.status().ToString();
    engine_.reset();
  }
  OpenEngine();
  const size_t vms = engine_->catalog().ListVms()->size();
  {
    // Another target than the one it came from, not open either.
    const std::string other = "qemu+unix:///system?socket=/nonexistent/libvirt-sock";
    auto r =
        engine_->restorer().Restore({.directory = export_, .as_new = true, .libvirt_uri = other});
    EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
    EXPECT_NE(r.status().message().find("--libvirt " + other), std::string::npos)
        << r.status().ToString();
  }
  {
    testing::GuestDomain taken{.name = "lx1-restored"};
    ASSERT_TRUE(libvirtd_->Define(taken, /*start=*/false).ok());
    auto r = engine_->restorer().Restore({.directory = export_, .as_new = true});
    EXPECT_EQ(r.status().code(), Code::kAlreadyExists) << r.status().ToString();
    EXPECT_NE(r.status().message().find("lx1-restored"), std::string::npos)
        << r.status().ToString();
    Virsh({"undefine", "lx1-restored"});
  }
  {
    // The same export, its first domain's XML carrying QEMU arguments (and
    // the manifest's checksum made to match: checksums do not authenticate).
    const std::string tampered = dir_ / "tampered";
    ASSERT_EQ(Env::Default()->Run({"cp", "-a", export_, tampered})->exit_code, 0);
    auto m = engine::ReadManifestIn(tampered);
    ASSERT_TRUE(m.ok());
    engine::ExportedVm& vm = m->vms[0];
    ASSERT_FALSE(vm.domain.empty());
    const std::string xml_path = tampered + "/" + vm.domain.definition.file;
    std::string xml = *Env::Default()->ReadFile(xml_path);
    xml.replace(xml.find("<domain "), 8,
                "<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0' ");
    xml.replace(xml.rfind("</domain>"), 9,
                "<qemu:commandline><qemu:arg value='-S'/></qemu:commandline></domain>");
    ASSERT_TRUE(Env::Default()->WriteFile(xml_path, xml).ok());
    auto digest = storage::DigestFile(Env::Default(), xml_path);
    vm.domain.definition.checksum = digest->checksum;
    vm.domain.definition.file_size = digest->bytes;
    ASSERT_TRUE(Env::Default()
                    ->WriteFile(tampered + "/" + engine::kManifestFile, engine::ManifestToJson(*m))
                    .ok());
    auto r = engine_->restorer().Restore({.directory = tampered, .as_new = true});
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
    EXPECT_NE(r.status().message().find("qemu:commandline"), std::string::npos)
        << r.status().ToString();
  }
  EXPECT_EQ(Domains(), domains) << "no domain defined";
  EXPECT_EQ(Made(), made) << "no file copied";
  EXPECT_EQ(engine_->catalog().ListVms()->size(), vms);
  EXPECT_TRUE(engine_->catalog().ListRestoreIntents()->empty());
}

// vmgroupd killed in the middle of a restore of domains, at each of its
// fault points: recovery undefines what was defined and removes every copy.
TEST_F(LibvirtExportTest, RecoveryUndefinesTheDomainsOfACrashedRestoreAndRemovesTheCopies) {
  for (std::string_view point :
       {engine::fault::kRestoreFileCopied, engine::fault::kRestoreVmDefined}) {
    SCOPED_TRACE(std::string(point));
    const std::string domains = Domains();
    const auto made = Made();
    auto crashed = Env::Default()->Run({CRASH_HELPER, "--libvirt", libvirtd_->uri(), dir_ / "state",
                                        "restore", export_, std::string(point)},
                                       std::chrono::minutes(2));
    ASSERT_TRUE(crashed.ok()) << crashed.status().ToString();
    ASSERT_EQ(crashed->exit_code, -1) << "the helper should have been killed: " << crashed->err;
    ASSERT_NE(Made(), made) << "the crash left copies behind";
    if (point == engine::fault::kRestoreVmDefined) {
      EXPECT_NE(Domains(), domains) << "the crash left a domain defined";
      // A start without the domain's connection keeps the intent, and
      // says which connection it needs.
      OpenEngine(/*connected=*/false);
      const Status& problems = engine_->recovery().problems;
      EXPECT_EQ(problems.code(), Code::kUnavailable) << problems.ToString();
      EXPECT_NE(problems.message().find("--libvirt " + libvirtd_->uri()), std::string::npos)
          << problems.ToString();
      EXPECT_EQ(engine_->catalog().ListRestoreIntents()->size(), 1u);
      EXPECT_NE(Domains(), domains);
      EXPECT_NE(Made(), made) << "the copies stay while the domain naming them is defined";
      engine_.reset();
    }

    OpenEngine();
    const auto& report = engine_->recovery();
    EXPECT_TRUE(report.problems.ok()) << report.problems.ToString();
    EXPECT_EQ(report.restores_taken_back.size(), 1u);
    EXPECT_EQ(Domains(), domains) << "the domain the restore defined is undefined";
    EXPECT_EQ(Made(), made) << "every copy is gone";
    EXPECT_TRUE(engine_->catalog().ListRestoreIntents()->empty());
    for (const auto& vm : *engine_->catalog().ListVms()) {
      EXPECT_FALSE(vm.name.ends_with("-restored")) << vm.name;
    }
    engine_.reset();
  }
}

}  // namespace
}  // namespace vmgroup::integration
