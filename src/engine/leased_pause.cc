#include "engine/leased_pause.h"

#include <algorithm>

#include "base/log.h"
#include "engine/cut_executor.h"
#include "engine/parallel.h"

namespace vmgroup::engine {
namespace {

// Resuming is never skipped, whatever is left of the lease: allow it this long.
constexpr auto kResumeTimeout = std::chrono::seconds(30);
// The watching thread waits in slices of real time at most this long and
// reads the Env's clock after each: the lease ends within a slice of its
// end on a clock a test moves by hand (testing/fake_clock_env.h), and
// exactly at it on the real clock.
constexpr auto kWatchSlice = std::chrono::milliseconds(5);

int64_t Micros(Duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

std::string Millis(Duration d) { return std::to_string(Micros(d) / 1000) + " ms"; }

// `s` with `more`'s message appended when both failed, so that neither is lost.
Status Also(Status s, const Status& more) {
  if (s.ok()) return more;
  if (more.ok()) return s;
  return Status(s.code(), s.message() + "; " + more.message());
}

}  // namespace

const char* LeaseStateName(LeaseState s) {
  switch (s) {
    case LeaseState::kPaused:
      return "paused";
    case LeaseState::kCut:
      return "cut";
    case LeaseState::kResumed:
      return "resumed";
    case LeaseState::kRanOut:
      return "lease ran out";
    case LeaseState::kUndone:
      return "undone";
  }
  return "?";
}

LeasedPause::LeasedPause(Env* env, std::vector<LeasedMember> members, std::string tracking)
    : env_(env),
      members_(std::move(members)),
      tracking_(std::move(tracking)),
      paused_by_us_(members_.size(), false),
      paused_at_(members_.size()),
      timings_(members_.size()) {}

Result<std::unique_ptr<LeasedPause>> LeasedPause::Pause(Env* env, std::vector<LeasedMember> members,
                                                        std::string tracking, Duration lease,
                                                        const ArmResumeGuard& arm) {
  std::unique_ptr<LeasedPause> p(new LeasedPause(env, std::move(members), std::move(tracking)));
  {
    std::lock_guard l(p->mu_);
    VMG_RETURN_IF_ERROR(p->PauseAll(lease, arm));
  }
  // Only now: a failed Pause has resumed everyone itself, within the lease.
  p->watch_ = std::thread([raw = p.get()] { raw->Watch(); });
  return p;
}

Status LeasedPause::PauseAll(Duration lease, const ArmResumeGuard& arm) {
  std::vector<std::shared_ptr<hypervisor::Vm>> ours;
  for (const auto& m : members_) {
    if (m.pause) ours.push_back(m.vm);
  }
  if (!ours.empty()) {
    // Before the first pause: no moment when a member is paused and this
    // process's death would leave it so.
    auto guard = arm(ours, lease + kResumeGuardMargin);
    if (guard.ok()) {
      guard_ = std::move(guard).value();
    } else if (guard.status().code() == Code::kNotSupported ||
               guard.status().code() == Code::kUnavailable) {
      unguarded_ = guard.status().message();
      Log(LogLevel::kWarning,
          "pausing under a lease without a resume guard (should this process die, "
          "the members stay paused until it restarts): " +
              unguarded_);
    } else {
      state_ = LeaseState::kUndone;
      return guard.status().Annotate("arming the resume guard");
    }
  }
  // Counted from before the first pause: no member stays paused past it.
  lease_end_ = env_->Now() + lease;
  for (size_t i = 0; i < members_.size(); ++i) {
    // Even a pause that fails or times out may take effect: each one sent
    // is resumed on failure (resuming a running VM changes nothing).
    paused_by_us_[i] = members_[i].pause;
  }
  // Vm::Pause waits for the member's in-flight I/O: one thread each, so
  // the pauses overlap and the slowest member sets the time.
  Status paused = ParallelFor(members_.size(), [&](size_t i) -> Status {
    if (!members_[i].pause) return Status::Ok();
    paused_at_[i] = env_->Now();
    timings_[i].paused_at_us = env_->NowMicros();
    return members_[i].vm->Pause(lease_end_).Annotate("member " + members_[i].name);
  });
  if (paused.ok() && env_->Now() >= lease_end_) {
    paused =
        Status::Timeout("pausing the members took longer than the pause lease of " + Millis(lease));
  }
  if (paused.ok()) return paused;
  state_ = LeaseState::kUndone;
  return Also(paused, ResumeLocked());
}

LeasedPause::~LeasedPause() {
  {
    // Never leave a VM paused: a caller that forgets Resume, or a request
    // handler that unwinds, resumes what it paused. A cut made is kept, as
    // when the lease runs out.
    std::lock_guard l(mu_);
    if (Holds(state_)) state_ = LeaseState::kResumed;
    Status resumed = ResumeLocked();
    if (!resumed.ok()) {
      Log(LogLevel::kWarning, "ending a pause lease: " + resumed.message() +
                                  (guard_ ? "; the resume guard tries again" : ""));
      // The last chance this object has: the guard's own connections.
      if (guard_) guard_->ResumeNow();
    }
    guard_.reset();
    disarmed_.notify_all();
  }
  if (watch_.joinable()) watch_.join();
}

void LeasedPause::Watch() {
  std::unique_lock l(mu_);
  while (Holds(state_)) {
    const Duration left = lease_end_ - env_->Now();
    if (left <= Duration::zero()) {
      // Neither "resume" nor a complete "cut" + "resume" came in time: the
      // coordinator may be gone or cut off, and the other hosts resume by
      // their leases as this one does.
      const bool cut = cut_kept_;
      Status resumed = RunOutIfDueLocked();
      // How late, for the operator (and the benchmark): the members were
      // paused that much longer than the lease.
      Log(resumed.ok() ? LogLevel::kInfo : LogLevel::kWarning,
          std::string("the pause lease ran out before resume: members resumed ") +
              Millis(env_->Now() - lease_end_) + " after its end" + (cut ? ", the cut kept" : "") +
              (resumed.ok() ? "" : "; " + resumed.message()));
      break;
    }
    disarmed_.wait_for(l, std::min<Duration>(left, kWatchSlice));
  }
}

Status LeasedPause::RunOutIfDueLocked() {
  if (!Holds(state_) || env_->Now() < lease_end_) return Status::Ok();
  state_ = LeaseState::kRanOut;
  disarmed_.notify_all();
  return ResumeLocked();
}

Status LeasedPause::Cut() {
  std::lock_guard l(mu_);
  // A resume failure here is the lease's, reported by Resume; the refusal
  // is what the caller must hear.
  (void)RunOutIfDueLocked();
  if (state_ == LeaseState::kRanOut && !cut_kept_) {
    // The other hosts may have resumed by their own leases: a cut now would
    // freeze these members at another instant than theirs.
    return Status::Timeout("the pause lease ran out " + Millis(env_->Now() - lease_end_) +
                           " ago; members were resumed");
  }
  if (state_ != LeaseState::kPaused) {
    return Status::InvalidState(std::string("no cut in state '") + LeaseStateName(state_) + "'");
  }
  // Paused already, by us or by the operator: the cut only switches. It
  // holds mu_ throughout, so the lease's end waits for its switch or revert.
  std::vector<CutMember> cut;
  for (const auto& m : members_) cut.push_back({m.name, m.vm, /*pause=*/false, m.overlays});
  CutOutcome out = ExecuteCut(env_, cut, tracking_, lease_end_ - env_->Now());
  if (out.status.ok()) {
    state_ = LeaseState::kCut;
    cut_kept_ = true;
    for (size_t i = 0; i < members_.size(); ++i) {
      timings_[i].cut_time_us = out.timings[i].cut_time_us;
    }
    return Status::Ok();
  }
  // ExecuteCut reverted every member while it was paused: only now resume.
  Status cause = out.status;
  if (env_->Now() >= lease_end_) cause = cause.Annotate("the pause lease ran out during the cut");
  cut_kept_ = !out.revert_status.ok();
  state_ = LeaseState::kUndone;
  disarmed_.notify_all();
  return Also(Also(cause, out.revert_status), ResumeLocked());
}

Result<LeaseReport> LeasedPause::Resume() {
  std::unique_lock l(mu_);
  (void)RunOutIfDueLocked();  // retried just below
  if (Holds(state_)) state_ = LeaseState::kResumed;
  disarmed_.notify_all();
  VMG_RETURN_IF_ERROR(ResumeLocked());
  return LeaseReport{state_, cut_kept_, timings_, unguarded_};
}

Status LeasedPause::Abort() {
  std::lock_guard l(mu_);
  (void)RunOutIfDueLocked();  // retried just below
  Status reverted;
  if (cut_kept_) {
    // Before the resume, while the lease holds: the members never run on
    // half a switch.
    reverted = RevertLocked();
    cut_kept_ = !reverted.ok();
    if (reverted.ok()) {
      for (auto& t : timings_) t.cut_time_us = 0;
    }
  }
  state_ = LeaseState::kUndone;
  disarmed_.notify_all();
  return Also(reverted, ResumeLocked());
}

LeaseReport LeasedPause::report() {
  std::lock_guard l(mu_);
  return {state_, cut_kept_, timings_, unguarded_};
}

Status LeasedPause::ResumeLocked() {
  const size_t n = members_.size();
  const Deadline deadline = env_->Now() + kResumeTimeout;
  // All requests back to back, then the replies: every member runs again
  // within microseconds of the others.
  std::vector<Status> sent(n);
  for (size_t i = 0; i < n; ++i) {
    if (paused_by_us_[i]) sent[i] = members_[i].vm->SendResume(deadline, /*save_state=*/false);
  }
  Status first;
  for (size_t i = 0; i < n; ++i) {
    if (!paused_by_us_[i]) continue;
    Status s = sent[i].ok() ? members_[i].vm->AwaitResume(deadline) : sent[i];
    if (!s.ok()) {
      if (first.ok()) first = s.Annotate("member " + members_[i].name + ": resume");
      continue;
    }
    paused_by_us_[i] = false;
    timings_[i].pause_us = Micros(env_->Now() - paused_at_[i]);
  }
  if (first.ok() && guard_) {
    guard_->Disarm();
    guard_.reset();
  }
  return first;
}

Status LeasedPause::RevertLocked() {
  return ParallelFor(members_.size(), [&](size_t i) -> Status {
    return members_[i]
        .vm->RevertOverlays(members_[i].overlays)
        .Annotate("member " + members_[i].name + ": revert");
  });
}

}  // namespace vmgroup::engine
