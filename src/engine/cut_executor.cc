#include "engine/cut_executor.h"

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

}  // namespace

CutOutcome ExecuteCut(Env* env, const std::vector<CutMember>& members, const std::string& bitmap,
                      Duration deadline_budget) {
  const size_t n = members.size();
  CutOutcome out;
  out.timings.resize(n);
  std::vector<bool> sent(n, false), paused_by_us(n, false);
  std::vector<Clock::time_point> paused_at(n), resumed_at(n);
  auto fail = [&](size_t i, const Status& s) {
    if (out.status.ok()) out.status = s.Annotate("member " + members[i].name);
  };
  const Deadline deadline = env->Now() + deadline_budget;

  // 1. Pause and switch every member: all requests go out back to back, then
  //    the replies are collected. The cut is consistent because no member
  //    resumes before every member is paused; each member's switch may
  //    follow its own pause at once.
  for (size_t i = 0; i < n && out.status.ok(); ++i) {
    const CutMember& m = members[i];
    Status s = env->Hit(fault::kMemberSwitch, m.name);
    if (s.ok()) {
      paused_at[i] = env->Now();
      s = m.vm->SendSwitch(m.overlays, bitmap, m.pause, deadline);
      sent[i] = s.ok();
    }
    if (!s.ok()) fail(i, s);
  }
  for (size_t i = 0; i < n; ++i) {
    if (!sent[i]) continue;
    bool paused = false;
    Status s = members[i].vm->AwaitSwitch(deadline, &paused);
    paused_by_us[i] = members[i].pause && paused;
    if (s.ok()) {
      out.timings[i].cut_time_us = env->NowMicros();
      s = env->Hit(fault::kMemberSwitched, members[i].name);
    }
    if (!s.ok()) fail(i, s);
  }
  if (out.status.ok() && env->Now() > deadline) {
    out.status = Status::Timeout("the cut did not finish within its deadline of " +
                                 std::to_string(Micros(deadline_budget) / 1000) + " ms");
  }

  // 2. On failure, revert every member a switch was sent to, still paused.
  //    Revert checks what is active and undoes only that. Reverts merge
  //    images, so they run in parallel.
  if (!out.status.ok()) {
    std::vector<Status> reverts(n);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < n; ++i) {
      if (!sent[i]) continue;
      threads.emplace_back(
          [&, i] { reverts[i] = members[i].vm->RevertOverlays(members[i].overlays); });
    }
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < n; ++i) {
      if (!reverts[i].ok() && out.revert_status.ok()) {
        out.revert_status = reverts[i].Annotate("member " + members[i].name + ": revert");
      }
    }
  }

  // 3. Resume the members the cut paused, all requests back to back.
  const Deadline resume_deadline = env->Now() + kResumeTimeout;
  std::vector<Status> resumed(n);
  for (size_t i = 0; i < n; ++i) {
    if (paused_by_us[i]) resumed[i] = members[i].vm->SendResume(resume_deadline);
  }
  for (size_t i = 0; i < n; ++i) {
    if (!paused_by_us[i]) continue;
    if (resumed[i].ok()) resumed[i] = members[i].vm->AwaitResume(resume_deadline);
    resumed_at[i] = env->Now();
    out.timings[i].pause_us = Micros(resumed_at[i] - paused_at[i]);
    if (!resumed[i].ok() && out.revert_status.ok()) {
      out.revert_status = resumed[i].Annotate("member " + members[i].name + ": resume");
    }
  }

  std::optional<Clock::time_point> first, last;
  for (size_t i = 0; i < n; ++i) {
    if (!paused_by_us[i]) continue;
    if (!first || paused_at[i] < *first) first = paused_at[i];
    if (!last || resumed_at[i] > *last) last = resumed_at[i];
  }
  if (first) out.window_us = Micros(*last - *first);
  return out;
}

}  // namespace vmgroup::engine
