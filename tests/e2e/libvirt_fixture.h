// LibvirtDomainsTest: vmgroupd serving the domains of a private libvirtd
// (testing/private_libvirtd.h) that runs real guests under TCG, each writing
// record n into sector n of its first disk, and the helpers that read what
// virsh and `vmgroup --json vm list` say about them. The libvirtd is
// started once per test suite and ended by PID; each test's domains are
// destroyed and undefined after it.
#pragma once

#include <gmock/gmock.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../integration/guest_fixture.h"
#include "daemon_fixture.h"
#include "testing/guest_kit.h"
#include "testing/private_libvirtd.h"

namespace vmgroup::e2e {

using integration::Acknowledged;
using integration::GapFreePrefix;
using nlohmann::json;

inline constexpr uint64_t kDiskBytes = 64 << 20;

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

  // A domain writing records, with two fresh qcow2 disks; its UUID. With
  // `agent`, the guest runs QEMU's guest agent (on its channel) and writes
  // its records into a file of an ext4 filesystem on the first disk.
  std::string Define(const std::string& name, bool start = true, bool agent = false) {
    testing::GuestDomain g{
        .name = name,
        .kernel = std::string(GUEST_KIT_DIR) + "/vmlinuz",
        .initrd = std::string(GUEST_KIT_DIR) + "/initrd.gz",
        .append = testing::GuestKernelArgs(agent ? "agent=1 writer=fs" : "writer=raw"),
        .serial_log = SerialOf(name),
        .agent = agent};
    for (const char* disk : {"-a.qcow2", "-b.qcow2"}) {
      g.disks.push_back(Image(name + disk));
      EXPECT_TRUE(storage::QemuImg(Env::Default()).Create(g.disks.back(), kDiskBytes).ok());
    }
    if (agent) {
      EXPECT_TRUE(testing::MakeExt4Image(g.disks[0], kDiskBytes).ok());
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
  // The domain's persistent definition, as `virsh dumpxml --inactive`.
  std::string InactiveXml(const std::string& domain) {
    return Virsh({"dumpxml", "--inactive", domain});
  }
  std::string Trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

  static inline testing::TempDir libvirt_dir_;
  static inline std::unique_ptr<testing::PrivateLibvirtd> libvirtd_;
  std::vector<std::string> defined_;
};

}  // namespace vmgroup::e2e
