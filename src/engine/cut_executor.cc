#include "engine/cut_executor.h"

#include <algorithm>
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

// QEMU names its vCPU threads "CPU <n>/TCG" or "CPU <n>/KVM".
bool IsVcpu(const std::string& thread_name) { return thread_name.starts_with("CPU "); }

// While the group is paused, the thread running the cut and the members'
// QEMU threads that answer it run before anything else on the host, so a
// busy host does not stretch the pause. Real time for a few milliseconds:
// the paused guests run no code, and the vCPU threads are left as they are
// (a busy vCPU at real-time priority could starve the very thread that must
// stop it): they get the highest time-sharing priority instead, since each
// must run to acknowledge the pause. Best effort: without CAP_SYS_NICE the cut runs as it was.
// Restored whatever happens; recovery resets what a crash left raised. The
// threads QEMU starts meanwhile (I/O workers that outlive the pause) start at
// the defaults: a raised thread does not pass its priority on.
class Urgency {
 public:
  // The cut above its members: it never waits for one of them to yield.
  static constexpr Scheduling kCut{true, 2};
  static constexpr Scheduling kMember{true, 1};
  static constexpr Scheduling kVcpu{false, -20};

  Urgency(Env* env, const std::vector<CutMember>& members) : env_(env) {
    if (!Raise(0, kCut)) return;  // no privilege: do not try the members
    for (const auto& m : members) {
      if (m.vm->pid() <= 0) continue;
      auto threads = env_->Threads(m.vm->pid());
      // Without named vCPU threads (a QEMU started without debug-threads)
      // they cannot be told apart: leave that member alone.
      if (!threads.ok() || std::none_of(threads->begin(), threads->end(),
                                        [](const ThreadInfo& t) { return IsVcpu(t.name); })) {
        continue;
      }
      for (const auto& t : *threads) Raise(t.tid, IsVcpu(t.name) ? kVcpu : kMember);
    }
  }
  ~Urgency() {
    for (auto it = raised_.rbegin(); it != raised_.rend(); ++it) {
      (void)env_->SetScheduling(it->first, it->second);
    }
  }

 private:
  bool Raise(int tid, const Scheduling& to) {
    auto before = env_->GetScheduling(tid);
    if (!before.ok() || *before == to || !env_->SetScheduling(tid, to).ok()) return false;
    raised_.emplace_back(tid, *before);
    return true;
  }

  Env* env_;
  std::vector<std::pair<int, Scheduling>> raised_;  // tid (0: this thread), as it was
};

}  // namespace

CutOutcome ExecuteCut(Env* env, const std::vector<CutMember>& members, const std::string& tracking,
                      Duration deadline_budget) {
  const size_t n = members.size();
  CutOutcome out;
  out.timings.resize(n);
  std::vector<bool> sent(n, false), paused_by_us(n, false);
  std::vector<Clock::time_point> paused_at(n), resumed_at(n);
  auto fail = [&](size_t i, const Status& s) {
    if (out.status.ok()) out.status = s.Annotate("member " + members[i].name);
  };
  const Urgency urgency(env, members);  // before the deadline starts: not part of the cut
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
      s = m.vm->SendSwitch(m.overlays, tracking, m.pause, deadline);
      sent[i] = s.ok();
    }
    if (!s.ok()) fail(i, s);
  }
  for (size_t i = 0; i < n; ++i) {
    if (!sent[i]) continue;
    bool paused = false;
    Status s = members[i].vm->AwaitSwitch(deadline, &paused);
    const Clock::time_point switched = env->Now();
    paused_by_us[i] = members[i].pause && paused;
    if (paused_by_us[i]) {
      const Clock::time_point stopped = members[i].vm->PauseAnsweredAt();
      out.timings[i].stopped_us =
          Micros((stopped == Clock::time_point{} ? switched : stopped) - paused_at[i]);
      out.timings[i].switched_us = Micros(switched - paused_at[i]);
    }
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
    // The memory state is taken only from a cut that happened.
    const bool save = out.status.ok() && members[i].save_state;
    if (!paused_by_us[i]) continue;
    out.timings[i].resume_sent_us = Micros(env->Now() - paused_at[i]);
    resumed[i] = members[i].vm->SendResume(resume_deadline, save);
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
