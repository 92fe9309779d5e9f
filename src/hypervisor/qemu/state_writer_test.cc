#include "hypervisor/qemu/state_writer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "testing/temp_dir.h"

namespace vmgroup::hypervisor::qemu {
namespace {

TEST(StateWriterTest, WhatComesThroughThePipeEndsUpInTheFile) {
  testing::TempDir dir;
  Env* env = Env::Default();
  const std::string path = dir.path() + "/state";
  auto writer = StartStateWriter(env, path, dir.path() + "/log");
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  const std::string stream(1 << 20, 'm');
  for (size_t done = 0; done < stream.size();) {
    const ssize_t n = ::write(writer->pipe.get(), stream.data() + done, stream.size() - done);
    ASSERT_GT(n, 0);
    done += static_cast<size_t>(n);
  }
  writer->pipe.reset();  // the stream ends: the writer exits
  ASSERT_TRUE(env->WaitGone(writer->pid, std::chrono::seconds(10)).ok());
  auto written = env->ReadFile(path);
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(*written, stream);
}

TEST(StateWriterTest, AStateThatExistsIsNeverOverwritten) {
  testing::TempDir dir;
  Env* env = Env::Default();
  const std::string path = dir.path() + "/state";
  ASSERT_TRUE(env->WriteFile(path, "earlier").ok());
  auto writer = StartStateWriter(env, path, dir.path() + "/log");
  EXPECT_EQ(writer.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(env->ReadFile(path).value_or(""), "earlier");
}

// The writer and QEMU's streaming thread run real time, the rest of QEMU
// as it was (a QEMU's threads, as an Env would list them).
TEST(StateWriterTest, TheStreamRunsRealTimeAtBothEnds) {
  struct QemuThreads : EnvWrapper {
    QemuThreads() : EnvWrapper(Env::Default()) {}
    Result<std::vector<ThreadInfo>> Threads(int pid) override {
      if (pid != 4242) return Status::Unavailable("process " + std::to_string(pid) + " is gone");
      return std::vector<ThreadInfo>{
          {4242, "qemu-system-x86"}, {4243, "CPU 0/TCG"}, {4244, "bg_snapshot"}, {4245, "worker"}};
    }
    Result<int> Spawn(const std::vector<std::string>& argv, const SpawnOptions& o) override {
      spawned_at = o.realtime_priority;
      return EnvWrapper::Spawn(argv, o);
    }
    Status SetScheduling(int tid, const Scheduling& s) override {
      set.emplace_back(tid, s);
      return Status::Ok();
    }
    int spawned_at = 0;
    std::vector<std::pair<int, Scheduling>> set;
  } env;
  testing::TempDir dir;
  auto writer = StartStateWriter(&env, dir.path() + "/state", dir.path() + "/log");
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  EXPECT_EQ(env.spawned_at, 1);
  writer->pipe.reset();
  ASSERT_TRUE(env.WaitGone(writer->pid, std::chrono::seconds(10)).ok());

  RaiseStateSaver(&env, 4242);
  EXPECT_EQ(env.set, (std::vector<std::pair<int, Scheduling>>{{4244, {true, 1}}}));
  RaiseStateSaver(&env, 1);  // a QEMU gone: nothing to raise, no error
  EXPECT_EQ(env.set.size(), 1u);
}

}  // namespace
}  // namespace vmgroup::hypervisor::qemu
