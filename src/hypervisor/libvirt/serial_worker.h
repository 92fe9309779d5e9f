// SerialWorker: one thread that runs the calls posted to it, one at a time,
// in order. A caller waits for a call's outcome until its own deadline and
// no longer: a libvirt call that blocks past it keeps the worker (and the
// calls queued behind it) but not the caller.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/env.h"
#include "base/result.h"

namespace vmgroup::hypervisor::libvirt {

class SerialWorker {
 public:
  SerialWorker();
  // Runs what is queued, then ends the thread.
  ~SerialWorker();
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  // Queues `call`; its outcome (a Status or Result) arrives in the future.
  template <typename R>
  std::shared_future<R> Post(std::function<R()> call) {
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(call));
    std::shared_future<R> outcome = task->get_future().share();
    Enqueue([task] { (*task)(); });
    return outcome;
  }

 private:
  void Enqueue(std::function<void()> task);
  void Run();

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::thread thread_;
};

// The outcome of `f` once ready, or Timeout ("`what` did not answer within
// its deadline") when `deadline`, a point on env's clock, passes first.
template <typename R>
R AwaitOutcome(Env* env, const std::shared_future<R>& f, Deadline deadline,
               const std::string& what) {
  if (f.wait_for(std::max<Duration>(deadline - env->Now(), {})) != std::future_status::ready) {
    return R(Status::Timeout(what + " did not answer within its deadline"));
  }
  return f.get();
}

}  // namespace vmgroup::hypervisor::libvirt
