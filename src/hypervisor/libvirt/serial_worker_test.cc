#include "hypervisor/libvirt/serial_worker.h"

#include <gtest/gtest.h>

#include <future>
#include <vector>

#include "testing/fake_clock_env.h"

namespace vmgroup::hypervisor::libvirt {
namespace {

TEST(SerialWorkerTest, ACallerGivesUpAtItsDeadlineWhileTheCallRunsOnAndTheNextQueues) {
  SerialWorker worker;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::vector<int> order;
  auto blocked = worker.Post<Status>([&] {
    released.wait();  // a libvirt call that hangs
    order.push_back(1);
    return Status::Ok();
  });
  auto next = worker.Post<Result<int>>([&]() -> Result<int> {
    order.push_back(2);
    return 42;
  });
  // The deadline has passed: the caller is answered although the call hangs.
  Env* env = Env::Default();
  EXPECT_EQ(AwaitOutcome(env, blocked, env->Now(), "suspend").code(), Code::kTimeout);
  EXPECT_EQ(AwaitOutcome(env, next, env->Now(), "state").status().code(), Code::kTimeout);
  release.set_value();
  const Deadline later = env->Now() + std::chrono::minutes(1);
  EXPECT_TRUE(AwaitOutcome(env, blocked, later, "suspend").ok());
  auto value = AwaitOutcome(env, next, later, "state");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, 42);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

// The deadline is on the Env's clock: once that clock has passed it, the
// caller is answered at once, however far off it is in real time.
TEST(SerialWorkerTest, TheWaitEndsByTheEnvClock) {
  SerialWorker worker;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  // `released` by value: the call may still be waking when the test ends,
  // and the worker (declared first) outlives the test's own future.
  auto blocked = worker.Post<Status>([released] {
    released.wait();
    return Status::Ok();
  });
  vmgroup::testing::FakeClockEnv env;
  const Deadline deadline = env.Now() + std::chrono::seconds(5);
  env.Advance(std::chrono::seconds(10));
  const auto start = Clock::now();
  EXPECT_EQ(AwaitOutcome(&env, blocked, deadline, "suspend").code(), Code::kTimeout);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(1)) << "it waited by the real clock";
  release.set_value();
}

TEST(SerialWorkerTest, DestroyingItRunsWhatIsQueued) {
  int ran = 0;
  {
    SerialWorker worker;
    for (int i = 0; i < 3; ++i) {
      (void)worker.Post<Status>([&] {
        ++ran;
        return Status::Ok();
      });
    }
  }
  EXPECT_EQ(ran, 3);
}

}  // namespace
}  // namespace vmgroup::hypervisor::libvirt
