#include "hypervisor/qemu/thaw_guard.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>

#include "testing/process_status.h"

namespace vmgroup::hypervisor::qemu {
namespace {

// The PIDs of this process's children.
std::vector<int> Children() {
  std::vector<int> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (testing::ProcessStatus(std::stoi(name), "PPid") == std::to_string(::getpid())) {
      out.push_back(std::stoi(name));
    }
  }
  return out;
}

TEST(ThawGuardTest, AGuardForkedWhereSigtermIsBlockedStillAnswersIt) {
  std::unique_ptr<ThawGuard> guard;
  std::thread([&] {
    sigset_t stop;  // as vmgroupd's threads
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    auto g = StartThawGuard({}, std::chrono::minutes(1));
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    guard = std::move(g).value();
  }).join();
  ASSERT_TRUE(guard);
  const auto children = Children();
  ASSERT_EQ(children.size(), 1u);
  const int pid = children[0];
  // Asleep means waiting for its time or its caller: set up by then.
  const auto ready_by = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!testing::ProcessStatus(pid, "State").starts_with("S")) {
    ASSERT_LT(std::chrono::steady_clock::now(), ready_by) << "the guard never waited";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // SIGPIPE stays ignored (a write to a gone QEMU must not end it), no
  // signal is blocked.
  EXPECT_EQ(testing::ProcessStatus(pid, "SigBlk"), "0000000000000000");
  EXPECT_EQ(testing::ProcessStatus(pid, "SigIgn"), "0000000000001000");
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (testing::ProcessStatus(pid, "State").find("zombie") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the guard ignored SIGTERM";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  guard.reset();  // reaps it
}

}  // namespace
}  // namespace vmgroup::hypervisor::qemu
