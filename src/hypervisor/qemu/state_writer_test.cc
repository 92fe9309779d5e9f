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

}  // namespace
}  // namespace vmgroup::hypervisor::qemu
