#include "base/socket_io.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "base/unique_fd.h"
#include "testing/fake_clock_env.h"

namespace vmgroup {
namespace {

// A connected pair of unix stream sockets.
std::pair<UniqueFd, UniqueFd> Pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return {};
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// The kernel's wait is sized by the Env's clock, the one the deadline is on:
// once that clock has passed it, nothing is waited for, whatever real time says.
TEST(SocketIoTest, ReadSomeWaitsOnlyAsLongAsTheEnvClockLeaves) {
  auto [a, b] = Pair();
  ASSERT_TRUE(a.valid());
  testing::FakeClockEnv env;
  const Deadline deadline = env.Now() + std::chrono::seconds(5);
  env.Advance(std::chrono::seconds(10));
  const auto start = Clock::now();
  std::string got;
  EXPECT_EQ(ReadSome(&env, a.get(), deadline, &got).code(), Code::kTimeout);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(1)) << "it waited by the real clock";
  EXPECT_TRUE(got.empty());
}

TEST(SocketIoTest, ReadSomeTakesWhatArrivedBeforeTheDeadline) {
  auto [a, b] = Pair();
  ASSERT_TRUE(a.valid());
  testing::FakeClockEnv env;
  ASSERT_TRUE(WriteAll(&env, b.get(), "hello", env.Now() + std::chrono::seconds(5)).ok());
  std::string got;
  ASSERT_TRUE(ReadSome(&env, a.get(), env.Now() + std::chrono::seconds(5), &got).ok());
  EXPECT_EQ(got, "hello");
}

}  // namespace
}  // namespace vmgroup
