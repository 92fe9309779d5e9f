// GuestFixture: GroupFixture with real Linux guests (tests/guest_kit: Debian's
// cloud kernel and a busybox initramfs whose workload the kernel command line
// picks), built once per test binary into the build folder.
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "group_fixture.h"
#include "testing/guest_kit.h"

namespace vmgroup::integration {

// For guests running "writer=raw":
// The highest "wrote N" the guest printed: records 1..N were acknowledged.
inline int64_t Acknowledged(const std::string& serial_log) {
  std::ifstream f(serial_log);
  std::string line;
  int64_t last = 0;
  static const std::regex kWrote("wrote ([0-9]+)");
  std::smatch m;
  while (std::getline(f, line)) {
    if (std::regex_search(line, m, kWrote)) last = std::stoll(m[1]);
  }
  return last;
}

// Reads the image (through its chain) and returns k if sectors 1..k hold
// records 1..k and no later sector holds any record; else an error.
inline Result<int64_t> GapFreePrefix(const std::string& image, const std::string& scratch) {
  auto r = Env::Default()->Run({"qemu-img", "convert", "-U", "-O", "raw", image, scratch});
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) return Status::IoError("qemu-img convert: " + r->err);
  auto raw = Env::Default()->ReadFile(scratch);
  (void)Env::Default()->RemoveFile(scratch);
  if (!raw.ok()) return raw.status();
  const std::string& data = *raw;
  const size_t sectors = data.size() / 512;
  int64_t k = 0;
  char want[32];
  for (size_t n = 1; n < sectors; ++n) {
    std::snprintf(want, sizeof want, "SEQ %08zu", n);
    if (data.compare(n * 512, 12, want) != 0) break;
    k = static_cast<int64_t>(n);
  }
  for (size_t n = static_cast<size_t>(k) + 1; n < sectors; ++n) {
    if (data.compare(n * 512, 4, "SEQ ") == 0) {
      return Status::Failed("record found at sector " + std::to_string(n) + " after a gap at " +
                            std::to_string(k + 1) + " in " + image);
    }
  }
  return k;
}

// Builds the guest kit into GUEST_KIT_DIR (cached): once per test binary.
inline void BuildGuestKit() {
  auto r = Env::Default()->Run({GUEST_KIT_BUILD, GUEST_KIT_DIR}, std::chrono::minutes(5));
  ASSERT_TRUE(r.ok() && r->exit_code == 0)
      << "cannot build the guest kit: " << (r.ok() ? r->err : r.status().ToString());
}

class GuestFixture : public GroupFixture {
 protected:
  static void SetUpTestSuite() { BuildGuestKit(); }

  // A one-disk guest of `memory_mib` running `workload` ("writer=raw", ...).
  static testing::TinyVmOptions Guest(const std::string& workload, int memory_mib = 128) {
    return {.disks = 1,
            .disk_bytes = 64 << 20,
            .config = {.memory_mib = memory_mib,
                       .kernel = std::string(GUEST_KIT_DIR) + "/vmlinuz",
                       .initrd = std::string(GUEST_KIT_DIR) + "/initrd.gz",
                       .append = testing::GuestKernelArgs(workload),
                       .extra_args = {"-no-reboot"}}};
  }

  std::string Serial(const std::string& vm_id) {
    return engine_->vms().RunDir(vm_id) + "/serial.log";
  }
  std::string SerialText(const std::string& vm_id) {
    std::stringstream text;
    text << std::ifstream(Serial(vm_id)).rdbuf();
    return text.str();
  }

  // Waits until every guest has acknowledged at least `at_least` more records
  // than `from` (by index). Fails at once if a guest's QEMU stops running.
  void WaitForWrites(const std::vector<std::string>& ids, const std::vector<int64_t>& from,
                     int64_t at_least) {
    const auto deadline = Clock::now() + std::chrono::minutes(2);
    for (size_t i = 0; i < ids.size(); ++i) {
      while (Acknowledged(Serial(ids[i])) < from[i] + at_least) {
        ASSERT_EQ(LiveState(ids[i]), hypervisor::RunState::kRunning)
            << "guest " << i << " stopped; serial log:\n"
            << SerialText(ids[i]);
        ASSERT_LT(Clock::now(), deadline) << "guest " << i << " is not writing; serial log:\n"
                                          << SerialText(ids[i]);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
  // `n` guests "<prefix>0".. running writer=raw, in a new group, whose
  // disks hold 16 MiB of data (0x5a at 32 MiB, away from the sectors they
  // write), started and writing.
  testing::TinyGroup WritingGroup(const std::string& prefix, int n) {
    auto g = testing::MakeTinyGroup(*engine_, dir_ / "images", prefix, n, Guest("writer=raw"),
                                    /*start=*/false);
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    if (!g.ok()) return {};
    for (const auto& id : g->vm_ids) {
      auto r = Env::Default()->Run({"qemu-io", "-c", "write -P 0x5a 32M 16M", Vm(id).disks[0]});
      EXPECT_TRUE(r.ok() && r->exit_code == 0);
      EXPECT_TRUE(engine_->vms().Start(id).ok());
    }
    WaitForWrites(g->vm_ids, std::vector<int64_t>(n, 0), 50);
    return *g;
  }
  std::vector<int64_t> AcknowledgedAll(const std::vector<std::string>& ids) {
    std::vector<int64_t> out;
    for (const auto& id : ids) out.push_back(Acknowledged(Serial(id)));
    return out;
  }

  // For guests with an ext4 filesystem ("writer=fs", "agent=1"):
  // Defines and starts a guest running `workload` on a disk that holds an
  // empty ext4 filesystem.
  std::string Ext4Guest(const std::string& name, const std::string& workload) {
    auto id = testing::DefineTinyVm(*engine_, dir_ / "images", name, Guest(workload));
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    if (!id.ok()) return "";
    Status made = testing::MakeExt4Image(Vm(*id).disks[0], 64 << 20);
    EXPECT_TRUE(made.ok()) << made.ToString();
    EXPECT_TRUE(engine_->vms().Start(*id).ok());
    return *id;
  }
  static bool Run(const std::vector<std::string>& argv) {
    auto r = Env::Default()->Run(argv, std::chrono::minutes(1));
    EXPECT_TRUE(r.ok() && r->exit_code == 0)
        << argv[0] << ": " << (r.ok() ? r->err + r->out : r.status().ToString());
    return r.ok() && r->exit_code == 0;
  }
  void WaitForSerial(const std::string& id, const std::string& marker) {
    const auto deadline = Clock::now() + std::chrono::minutes(2);
    while (SerialText(id).find(marker) == std::string::npos) {
      ASSERT_LT(Clock::now(), deadline) << "no " << marker << "; serial log:\n" << SerialText(id);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  // Waits until an agent guest's agent answers and it writes files.
  void AwaitAgent(const std::string& id) {
    WaitForSerial(id, "AGENT-READY");
    WaitForWrites({id}, {0}, 50);
  }
  // An ext4 guest with its agent, writing files; its live VM (null on failure).
  std::shared_ptr<hypervisor::Vm> AgentGuest(const std::string& name, std::string* id) {
    *id = Ext4Guest(name, "agent=1 writer=fs");
    if (id->empty()) return nullptr;
    AwaitAgent(*id);
    return engine_->vms().Live(*id);
  }
  // What `image` holds now, read beside the running QEMU: the exit code of
  // e2fsck -fn, and whether the journal must be replayed first.
  struct Check {
    int fsck = -1;
    bool needs_recovery = false;
  };
  Check Examine(const std::string& image) {
    const std::string raw = dir_ / "fsck.raw";
    std::filesystem::remove(raw);
    EXPECT_TRUE(Run({"qemu-img", "convert", "-U", "-O", "raw", image, raw}));
    Check c;
    auto fsck = Env::Default()->Run({"e2fsck", "-fn", raw}, std::chrono::minutes(1));
    auto header = Env::Default()->Run({"dumpe2fs", "-h", raw}, std::chrono::minutes(1));
    if (fsck.ok()) c.fsck = fsck->exit_code;
    c.needs_recovery = header.ok() && header->out.find("needs_recovery") != std::string::npos;
    std::filesystem::remove(raw);
    return c;
  }
  static Deadline Soon() { return Clock::now() + std::chrono::seconds(30); }
  // Waits until the guest's filesystems are thawed, by whoever thaws them,
  // at most `within` after `since`.
  void WaitThawed(hypervisor::Vm& vm, Clock::time_point since,
                  Duration within = std::chrono::seconds(10)) {
    while (*vm.FilesystemsFrozen(Soon())) {
      ASSERT_LT(Clock::now() - since, within) << "nobody thawed the guest";
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
};

}  // namespace vmgroup::integration
