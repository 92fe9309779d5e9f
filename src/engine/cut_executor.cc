#include "engine/cut_executor.h"

#include <atomic>
#include <barrier>
#include <mutex>
#include <optional>
#include <thread>

#include "engine/fault_points.h"

namespace vmgroup::engine {
namespace {

// Resuming is never skipped, whatever the cut's deadline: allow it this long.
constexpr auto kResumeTimeout = std::chrono::seconds(30);

int64_t Micros(Duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

// Failure bookkeeping shared by the member threads: the first error wins.
class FirstError {
 public:
  void Set(const Status& s) {
    std::lock_guard lock(mu_);
    if (status_.ok()) status_ = s;
    failed_.store(true);
  }
  bool failed() const { return failed_.load(); }
  Status status() {
    std::lock_guard lock(mu_);
    return status_;
  }

 private:
  std::mutex mu_;
  Status status_;
  std::atomic<bool> failed_{false};
};

}  // namespace

CutOutcome ExecuteCut(Env* env, const std::vector<CutMember>& members, const std::string& bitmap,
                      Duration deadline_budget) {
  const size_t n = members.size();
  CutOutcome out;
  out.timings.resize(n);
  if (n == 0) return out;

  FirstError error, revert_error;
  std::vector<Clock::time_point> paused_at(n), resumed_at(n);
  std::vector<bool> paused_by_us(n, false);
  std::barrier all_paused(static_cast<std::ptrdiff_t>(n));
  std::barrier all_switched(static_cast<std::ptrdiff_t>(n));
  const hypervisor::Deadline deadline = env->Now() + deadline_budget;

  auto run_member = [&](size_t i) {
    const CutMember& m = members[i];
    auto fail = [&](const Status& s) { error.Set(s.Annotate("member " + m.name)); };

    if (m.pause) {
      paused_at[i] = env->Now();
      Status s = m.vm->Pause(deadline);
      // A timed-out stop may still take effect: treat the VM as paused by us.
      paused_by_us[i] = s.ok() || s.code() == Code::kTimeout;
      if (!s.ok()) fail(s);
      if (s.ok()) {
        Status f = env->Hit(fault::kMemberPaused, m.name);
        if (!f.ok()) fail(f);
      }
    }
    all_paused.arrive_and_wait();

    bool switched = false;
    if (!error.failed()) {
      Status s = env->Hit(fault::kMemberSwitch, m.name);
      if (s.ok()) s = m.vm->SwitchToOverlays(m.overlays, bitmap, deadline);
      // A timed-out transaction may have applied: revert checks what is active.
      switched = s.ok() || s.code() == Code::kTimeout;
      if (s.ok()) {
        out.timings[i].cut_time_us = env->NowMicros();
        s = env->Hit(fault::kMemberSwitched, m.name);
      }
      if (!s.ok()) fail(s);
    }
    all_switched.arrive_and_wait();

    if (!error.failed() && env->Now() > deadline) {
      error.Set(Status::Timeout("the cut did not finish within its deadline of " +
                                std::to_string(Micros(deadline_budget) / 1000) + " ms"));
    }
    if (error.failed() && switched) {
      Status r = m.vm->RevertOverlays(m.overlays);
      if (!r.ok()) revert_error.Set(r.Annotate("member " + m.name + ": revert"));
    }
    if (paused_by_us[i]) {
      Status r = m.vm->Resume(env->Now() + kResumeTimeout);
      resumed_at[i] = env->Now();
      if (!r.ok()) revert_error.Set(r.Annotate("member " + m.name + ": resume"));
      out.timings[i].pause_us = Micros(resumed_at[i] - paused_at[i]);
    }
  };

  std::vector<std::thread> threads;
  threads.reserve(n);
  for (size_t i = 0; i < n; ++i) threads.emplace_back(run_member, i);
  for (auto& t : threads) t.join();

  std::optional<Clock::time_point> first, last;
  for (size_t i = 0; i < n; ++i) {
    if (!paused_by_us[i]) continue;
    if (!first || paused_at[i] < *first) first = paused_at[i];
    if (!last || resumed_at[i] > *last) last = resumed_at[i];
  }
  if (first) out.window_us = Micros(*last - *first);
  out.status = error.status();
  out.revert_status = revert_error.status();
  return out;
}

}  // namespace vmgroup::engine
