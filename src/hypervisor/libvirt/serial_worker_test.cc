#include "hypervisor/libvirt/serial_worker.h"

#include <gtest/gtest.h>

#include <future>
#include <vector>

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
  EXPECT_EQ(AwaitOutcome(blocked, Clock::now(), "suspend").code(), Code::kTimeout);
  EXPECT_EQ(AwaitOutcome(next, Clock::now(), "state").status().code(), Code::kTimeout);
  release.set_value();
  const Deadline later = Clock::now() + std::chrono::minutes(1);
  EXPECT_TRUE(AwaitOutcome(blocked, later, "suspend").ok());
  auto value = AwaitOutcome(next, later, "state");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, 42);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
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
