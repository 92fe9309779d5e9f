// The accelerator probe's and QemuDriver::Create's decisions, with QEMU's
// run replaced (Env::Run): what a report, a timeout or an early exit mean.
#include "hypervisor/qemu/accel_probe.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "hypervisor/qemu/qemu_driver.h"

namespace vmgroup::hypervisor::qemu {
namespace {

// Answers every Run with `answer`, recording the command line and the
// firmware file QEMU was given as it was when QEMU ran.
class FakeQemuEnv : public EnvWrapper {
 public:
  explicit FakeQemuEnv(Result<CommandOutput> answer)
      : EnvWrapper(Env::Default()), answer_(std::move(answer)) {}

  Result<CommandOutput> Run(const std::vector<std::string>& argv, Duration timeout) override {
    argv_ = argv;
    timeout_ = timeout;
    auto bios = std::find(argv.begin(), argv.end(), "-bios");
    if (bios != argv.end() && bios + 1 != argv.end()) {
      bios_path_ = *(bios + 1);
      auto image = ReadFile(bios_path_);
      if (image.ok()) firmware_ = *image;
    }
    ++runs_;
    return answer_;
  }

  Result<CommandOutput> answer_;
  std::vector<std::string> argv_;
  Duration timeout_{};
  std::string bios_path_, firmware_;
  int runs_ = 0;
};

CommandOutput Exited(int code, std::string err = "") {
  return {.exit_code = code, .out = "", .err = std::move(err)};
}

bool Has(const std::vector<std::string>& argv, const std::string& flag, const std::string& value) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag && argv[i + 1] == value) return true;
  }
  return false;
}

TEST(AccelProbeTest, TheGuestsReportIsOk) {
  FakeQemuEnv env(Exited((0x2a << 1) | 1));
  AccelProbe probe{
      .binary = "qemu-x", .run_as = {"setpriv", "--reuid=7"}, .deadline = std::chrono::seconds(3)};
  ASSERT_TRUE(ProbeAccel(&env, "kvm", probe).ok());
  ASSERT_GE(env.argv_.size(), 3u);
  EXPECT_EQ(env.argv_[0], "setpriv");  // as the VMs' user
  EXPECT_EQ(env.argv_[2], "qemu-x");
  EXPECT_TRUE(Has(env.argv_, "-accel", "kvm"));
  EXPECT_TRUE(Has(env.argv_, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"));
  EXPECT_EQ(env.timeout_, std::chrono::seconds(3));
  // The firmware: 64 KiB, a far jump at the reset vector, gone afterwards.
  ASSERT_EQ(env.firmware_.size(), 65536u);
  EXPECT_EQ(static_cast<uint8_t>(env.firmware_[0xfff0]), 0xea);
  EXPECT_EQ(static_cast<uint8_t>(env.firmware_[0]), 0xfa);  // cli
  EXPECT_FALSE(env.FileExists(env.bios_path_));
}

TEST(AccelProbeTest, NoReportInTimeIsTimeout) {
  FakeQemuEnv env(Status::Timeout("qemu did not finish in time and was killed"));
  Status s = ProbeAccel(&env, "kvm", {});
  EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
}

TEST(AccelProbeTest, QemuEndingOtherwiseIsUnavailableWithItsStderr) {
  FakeQemuEnv no_kvm(Exited(1, "Could not access KVM kernel module: No such file or directory"));
  Status s = ProbeAccel(&no_kvm, "kvm", {});
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("Could not access KVM"), std::string::npos) << s.ToString();
  // A guest that faults (triple fault: -no-reboot ends QEMU with 0).
  FakeQemuEnv faulted(Exited(0));
  EXPECT_EQ(ProbeAccel(&faulted, "kvm", {}).code(), Code::kUnavailable);
}

TEST(AccelProbeTest, AutoIsKvmOnlyWhenTheProbePasses) {
  FakeQemuEnv works(Exited((0x2a << 1) | 1));
  auto kvm = QemuDriver::Create(&works, {.accel = Accel::kAuto});
  ASSERT_TRUE(kvm.ok()) << kvm.status().ToString();
  EXPECT_EQ((*kvm)->accel(), Accel::kKvm);
  EXPECT_TRUE((*kvm)->kvm_refusal().ok());
  EXPECT_TRUE(Has(works.argv_, "-accel", "kvm"));

  FakeQemuEnv hangs(Status::Timeout("killed"));
  auto tcg = QemuDriver::Create(&hangs, {.accel = Accel::kAuto});
  ASSERT_TRUE(tcg.ok());
  EXPECT_EQ((*tcg)->accel(), Accel::kTcg);
  EXPECT_EQ((*tcg)->kvm_refusal().code(), Code::kTimeout);
  const auto argv = (*tcg)->CommandLine({.uuid = "u", .name = "a", .run_dir = "/r"});
  EXPECT_TRUE(Has(argv, "-accel", "tcg"));
  EXPECT_FALSE(Has(argv, "-accel", "kvm"));
}

TEST(AccelProbeTest, AnExplicitAcceleratorIsNotProbed) {
  for (Accel accel : {Accel::kKvm, Accel::kTcg}) {
    FakeQemuEnv env(Status::Timeout("never asked"));
    auto driver = QemuDriver::Create(&env, {.accel = accel});
    ASSERT_TRUE(driver.ok());
    EXPECT_EQ(env.runs_, 0);
    EXPECT_EQ((*driver)->accel(), accel);
    EXPECT_TRUE((*driver)->kvm_refusal().ok());
    const auto argv = (*driver)->CommandLine({.uuid = "u", .name = "a", .run_dir = "/r"});
    EXPECT_TRUE(Has(argv, "-accel", AccelName(accel)));
  }
}

}  // namespace
}  // namespace vmgroup::hypervisor::qemu
