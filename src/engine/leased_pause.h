// One host's part of a cut across hosts (issue 20): this host's members
// paused under a lease, then cut, then resumed, each step on a coordinator's
// word. The coordinator sends "cut" only once every host has reported its
// members paused, so the cuts of all hosts fall inside one window where every
// member of the group is paused.
//
// The lease is why this is its own object rather than ExecuteCut split in
// two: the coordinator is another machine, and it may die or the network may
// split between its "pause" and its "resume". The host therefore enforces the
// lease by itself: once it runs out, a thread of this object resumes the
// members and every later Cut is refused, so no VM stays paused much longer
// than the lease whatever becomes of the coordinator. A late cut is refused
// because the other hosts may have resumed already: cutting then would freeze
// this host's members at a different instant from theirs.
//
// The lease and Cut exclude each other: a Cut under way finishes (or, past
// the lease, reverts) before the lease's end resumes anyone, so no member ever
// runs on half a switch. A lease that runs out after a complete Cut resumes
// the members and keeps the cut: every host cut while all were paused, so it
// is consistent, and whether it is kept or undone (Abort) is the
// coordinator's to decide once it hears from every host.
//
// Members already paused (by the operator) take part in the cut but are
// neither paused nor resumed here, as in ExecuteCut.
//
// A member stays paused past the lease only as long as its resume takes.
// The lease's thread is this process's; for this process dying while
// members are paused, a resume guard (hypervisor::ResumeGuard, a process of
// its own) is armed over the members it pauses, before the first pause, for
// the lease plus kResumeGuardMargin: the lease's thread acts first, and the
// guard resumes them only if this process is gone or stalled past that
// margin. It is disarmed once every member we paused runs again. A driver
// that has no resume guard, or a QEMU without the guard's monitor (started
// by an older vmgroupd), leaves the pause unguarded: it goes on, logs a
// warning and says so in the report (LeaseReport::unguarded), because the
// lease still holds while this process lives, and refusing would make such
// a host unable to take part in any cut across hosts.
//
// Thread-safe: Cut, Resume, Abort and report may be called from any thread,
// and run one at a time.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/env.h"
#include "hypervisor/driver.h"

namespace vmgroup::engine {

// How long after the lease the resume guard acts: long enough for this
// process, alive, to finish a cut's switch or revert that the lease's end
// waits for and resume the members itself; short enough that a VM whose
// vmgroupd died runs again within seconds.
inline constexpr Duration kResumeGuardMargin = std::chrono::seconds(2);

// Arms a resume guard over `vms` that acts after `within` (or when this
// process dies): hypervisor::Driver::GuardResume, through whichever driver
// each VM lives on.
using ArmResumeGuard = std::function<Result<std::unique_ptr<hypervisor::ResumeGuard>>(
    const std::vector<std::shared_ptr<hypervisor::Vm>>& vms, Duration within)>;

struct LeasedMember {
  std::string name;  // for messages and fault points
  std::shared_ptr<hypervisor::Vm> vm;
  bool pause = true;  // false for a member already paused: left as it is
  // Opened already (Vm::OpenOverlays, and Vm::PrepareTracking for the
  // cut's tracking): the cut only switches.
  std::vector<hypervisor::Overlay> overlays;
};

enum class LeaseState {
  kPaused,   // every member paused, the lease holds, no cut yet
  kCut,      // every member switched, still paused, the lease holds
  kResumed,  // Resume came in time; the cut, if made, is kept
  kRanOut,   // the lease ran out first: members resumed by the host; a cut made is kept
  kUndone,   // a Cut failed, or Abort: switches reverted (see cut_kept), members resumed
};
const char* LeaseStateName(LeaseState s);

struct LeasedTiming {
  int64_t paused_at_us = 0;  // wall clock when its pause was sent (0: not paused by us)
  int64_t pause_us = 0;      // pause sent -> resume answered (0 while paused, or not ours)
  int64_t cut_time_us = 0;   // wall clock when its switch returned (0: no cut kept)
};

struct LeaseReport {
  LeaseState state = LeaseState::kPaused;
  // The members run (or will) on their overlays; after a failed revert,
  // they may.
  bool cut_kept = false;
  std::vector<LeasedTiming> members;  // by member index
  // Empty when a resume guard was armed over the members we paused (or we
  // paused none); else why none could be: should this process die while
  // they are paused, they stay paused until it restarts.
  std::string unguarded;
};

class LeasedPause {
 public:
  // Arms a resume guard with `arm` over every member with `pause` (see
  // above; NotSupported or Unavailable: unguarded, any other error is
  // returned before anything is paused), then pauses them (in parallel) and
  // arms a lease of `lease` on `env`'s clock, counted from before the first
  // pause is sent. OK once every member is paused. Timeout when the pauses
  // did not all answer within the lease; otherwise the first member's
  // error. On error, every member a pause was sent to is resumed again and
  // the guard disarmed: nothing changed. `tracking` is what the cut starts
  // (ExecuteCut's).
  // REQUIRES: `env` outlives the result; a member's overlays are open.
  static Result<std::unique_ptr<LeasedPause>> Pause(Env* env, std::vector<LeasedMember> members,
                                                    std::string tracking, Duration lease,
                                                    const ArmResumeGuard& arm);

  // Resumes every member still paused by us (the cut, if made, is kept);
  // if one does not resume, has the guard resume them at once.
  ~LeasedPause();

  LeasedPause(const LeasedPause&) = delete;
  LeasedPause& operator=(const LeasedPause&) = delete;

  // Switches every member to its overlays (ExecuteCut), bounded by what is
  // left of the lease. OK when every member switched: still paused, state
  // kCut. On a member's failure, or the lease running out mid-switch, every
  // member is reverted while still paused and then resumed (state kUndone)
  // and that error is returned (Timeout for the lease), with a failed
  // revert's error appended: that member needs recovery.
  // Timeout, changing nothing, when the lease had run out before
  // ("the pause lease ran out N ms ago; members were resumed").
  // InvalidState in any state but kPaused.
  Status Cut();

  // Resumes what we paused and disarms the lease (state kResumed, unless
  // the lease ran out first or the cut was undone: the state says what
  // happened then). Retries a member whose resume failed before. OK with
  // the report once every member we paused runs again; else the first
  // member's error.
  // After a kept cut, the caller then finishes the switch (Vm::FinishSwitch)
  // before it commits, as SnapshotCreate does.
  Result<LeaseReport> Resume();

  // Takes back what this object did, in any state: reverts a kept switch
  // (while still paused if the lease holds; else the VMs run on, and what
  // they wrote meanwhile is merged down), resumes what we paused and disarms
  // the lease (state kUndone). OK when every member is on its images from
  // before and runs as before; else the first error, by member (a failed
  // revert leaves cut_kept: that member needs recovery).
  Status Abort();

  // The state and the timings as they are now.
  LeaseReport report();

 private:
  LeasedPause(Env* env, std::vector<LeasedMember> members, std::string tracking);

  // The lease's own thread: waits on the Env's clock until the lease ends or
  // stops holding, and resumes the members if it ends first.
  void Watch();
  // Arms the resume guard (or records why none), then pauses the members
  // (Pause's work). REQUIRES: mu_ held.
  Status PauseAll(Duration lease, const ArmResumeGuard& arm);
  // If the lease holds but its time is up: resumes the members (state
  // kRanOut). Every entry point calls it first, so that nothing acts on a
  // lease the watching thread has not yet seen run out. REQUIRES: mu_ held.
  Status RunOutIfDueLocked();
  // Resumes every member we paused that is still paused, the requests back
  // to back; the first failure, by member (still counted as paused, so that
  // the next call tries it again, and the guard stays armed). Once all run,
  // disarms the guard. REQUIRES: mu_ held.
  Status ResumeLocked();
  // Reverts the switch on every member (in parallel); the first failure, by
  // member. REQUIRES: mu_ held.
  Status RevertLocked();
  static bool Holds(LeaseState s) { return s == LeaseState::kPaused || s == LeaseState::kCut; }

  Env* const env_;
  const std::vector<LeasedMember> members_;
  const std::string tracking_;
  Deadline lease_end_;  // set once by Pause, before Watch starts

  std::mutex mu_;
  std::condition_variable disarmed_;                // notified when the lease stops holding
  LeaseState state_ = LeaseState::kPaused;          // guarded by mu_
  bool cut_kept_ = false;                           // guarded by mu_
  std::vector<bool> paused_by_us_;                  // guarded by mu_: and not resumed since
  std::vector<Clock::time_point> paused_at_;        // guarded by mu_: pause sent (Env clock)
  std::vector<LeasedTiming> timings_;               // guarded by mu_
  std::unique_ptr<hypervisor::ResumeGuard> guard_;  // guarded by mu_: armed while any is paused
  std::string unguarded_;                           // guarded by mu_: LeaseReport::unguarded
  std::thread watch_;                               // runs Watch; joined by the destructor
};

}  // namespace vmgroup::engine
