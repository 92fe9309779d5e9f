#include "engine/host_cuts.h"

#include <algorithm>
#include <condition_variable>
#include <limits>
#include <thread>

#include "base/ids.h"
#include "base/log.h"
#include "engine/export_layout.h"
#include "engine/reference_point_convert.h"
#include "engine/reference_point_destroy.h"
#include "engine/snapshot_create.h"
#include "engine/snapshot_destroy.h"
#include "engine/snapshot_export.h"

namespace vmgroup::engine {
namespace {

// The part's thread waits for a word in slices of real time at most this
// long and reads the Env's clock after each, as LeasedPause's watch does:
// its deadlines hold on a clock a test moves by hand.
constexpr auto kWaitSlice = std::chrono::milliseconds(5);
// After the lease's end, how long the part still waits for a Cut that
// LeasedPause would refuse anyway: only so that a word already on its way
// is answered with the lease's own reason.
constexpr auto kLeaseSlack = std::chrono::milliseconds(50);

std::string Millis(Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

const char* StepName(int word) {
  static const char* const kNames[] = {"none", "Pause", "Cut", "Resume", "Commit", "Abort"};
  return kNames[word];
}

}  // namespace

const char* HostCutStageName(HostCutStage stage) {
  switch (stage) {
    case HostCutStage::kPreparing:
      return "preparing";
    case HostCutStage::kPrepared:
      return "prepared";
    case HostCutStage::kPaused:
      return "paused";
    case HostCutStage::kCut:
      return "cut";
    case HostCutStage::kResumed:
      return "resumed";
    case HostCutStage::kEnded:
      return "ended";
  }
  return "?";
}

struct HostCuts::Part {
  HostCutRequest request;
  SnapshotRequest snapshot;  // what SnapshotCreate runs; its hooks call back here
  std::thread thread;        // runs Run; joined by whoever erases the part
  std::mutex mu;
  std::condition_variable changed;                // notified on every change of stage or word
  HostCutStage stage = HostCutStage::kPreparing;  // guarded by mu
  Word word = Word::kNone;                        // guarded by mu: the latest, not yet taken
  Duration lease{};                               // guarded by mu: Pause's
  bool cut_with_pause = false;                    // guarded by mu: Pause's `cut`
  std::unique_ptr<LeasedPause> pause;             // guarded by mu: from Pause on
  std::vector<std::string> vm_ids;                // guarded by mu: the pause's members' VMs
  Status step;                                    // guarded by mu: the answer to the latest step
  Status end;                                     // guarded by mu: once kEnded

  // Moves to `s` and wakes whoever waits. REQUIRES: mu held.
  void Enter(HostCutStage s) {
    stage = s;
    changed.notify_all();
  }
  // Waits for the coordinator's word until `until` on `env`'s clock; takes
  // and returns it, kNone when none came. REQUIRES: `l` holds mu.
  Word Await(Env* env, std::unique_lock<std::mutex>& l, Deadline until) {
    while (word == Word::kNone && env->Now() < until) changed.wait_for(l, kWaitSlice);
    return std::exchange(word, Word::kNone);
  }
};

HostCuts::~HostCuts() {
  std::map<std::string, std::shared_ptr<Part>> parts;
  {
    std::lock_guard lock(mu_);
    parts.swap(parts_by_id_);
  }
  for (auto& [id, part] : parts) {
    {
      std::lock_guard l(part->mu);
      if (part->stage != HostCutStage::kEnded) part->word = Word::kAbort;
      part->changed.notify_all();
    }
    part->thread.join();
  }
}

Status HostCuts::Prepare(const HostCutRequest& request) {
  if (request.snapshot_id.empty()) {
    return Status::InvalidArgument("a host's part of a snapshot needs the group snapshot's id");
  }
  if (request.type == kSnapshotStandard) {
    return Status::NotSupported(
        "a Standard snapshot cannot span hosts: a member's memory state is saved as it resumes, "
        "which the pause lease cannot wait for; take a recovery or disk-only snapshot");
  }
  auto part = std::make_shared<Part>();
  part->request = request;
  part->snapshot = {
      .collection_id = request.collection_id,
      .type = request.type,
      .name = request.name,
      .id = request.snapshot_id,
      .consistency = request.consistency,
      .fallback = request.fallback,
      // A member cut crash consistent is in the part's record; its host's log says why.
      .warning = [](const std::string& w) { Log(LogLevel::kWarning, w); },
      .cut = [this, p = part.get()](
                 const auto& members, const auto& tracking,
                 Deadline cut_by) { return CutOnWord(*p, members, tracking, cut_by); },
      .before_commit = [this, p = part.get()] { return AwaitCommit(*p); },
      .coordinated = true};
  {
    std::lock_guard lock(mu_);
    if (!parts_by_id_.emplace(request.snapshot_id, part).second) {
      return Status::AlreadyExists("this host has a part of snapshot " + request.snapshot_id +
                                   " under way already");
    }
    // Under mu_: no one finds the part before its thread exists.
    part->thread = std::thread([this, p = part.get()] { Run(*p); });
  }
  std::unique_lock l(part->mu);
  part->changed.wait(l, [&] { return part->stage != HostCutStage::kPreparing; });
  if (part->stage != HostCutStage::kEnded) return Status::Ok();
  const Status end = part->end;
  l.unlock();
  Collect(part);  // nothing is left of a part that did not prepare: it is not kept either
  return end;
}

void HostCuts::Collect(const std::shared_ptr<Part>& part) {
  bool ours = false;
  {
    std::lock_guard lock(mu_);
    auto it = parts_by_id_.find(part->request.snapshot_id);
    if (it != parts_by_id_.end() && it->second == part) {
      parts_by_id_.erase(it);
      ours = true;
    }
  }
  if (ours) part->thread.join();
}

void HostCuts::Run(Part& part) {
  SnapshotCreate create(parts_, part.snapshot, parts_.env->Now());
  Status st = runner_.Run(create);
  std::unique_ptr<LeasedPause> pause;
  std::lock_guard l(part.mu);
  pause = std::move(part.pause);  // destroyed after the lock: it may resume members
  part.end = st;
  part.Enter(HostCutStage::kEnded);
}

CutOutcome HostCuts::CutOnWord(Part& part, const std::vector<CutMember>& members,
                               const std::string& tracking, Deadline cut_by) {
  Env* env = parts_.env;
  const Duration step_timeout = part.request.step_timeout;
  std::unique_lock l(part.mu);
  // With the guests frozen (application consistency) every wait ends by
  // `cut_by` too: past it their guard thaws them, and a cut then would not
  // be consistent. `waited` says which bound it was.
  std::string waited;
  const auto await = [&](Deadline by_step) {
    waited = by_step <= cut_by
                 ? Millis(step_timeout)
                 : "the time the guests' freeze bound leaves (vmgroupd --freeze-bound)";
    return part.Await(env, l, std::min(by_step, cut_by));
  };
  // A failure past the pause: LeasedPause takes back what it did (a kept
  // switch reverted, the members resumed), as ExecuteCut's failures do.
  const auto failed = [&](const Status& why) {
    CutOutcome out{.status = why};
    if (part.pause) {
      l.unlock();
      out.revert_status = part.pause->Abort();
      l.lock();
    }
    return out;
  };
  const auto refused = [&](Word w, const char* awaited) {
    if (w == Word::kAbort) return failed(Status::Cancelled("aborted by the coordinator"));
    return failed(Status::Timeout(std::string("no ") + awaited +
                                  " came from the coordinator within " + waited +
                                  ": this host's part is undone"));
  };

  part.Enter(HostCutStage::kPrepared);
  Word w = await(env->Now() + step_timeout);
  if (w != Word::kPause) return refused(w, "pause");
  std::vector<LeasedMember> leased;
  for (const auto& m : members) {
    leased.push_back({.name = m.name, .vm = m.vm, .pause = m.pause, .overlays = m.overlays});
    part.vm_ids.push_back(m.vm_id);
  }
  // No longer than what is left of the guests' freeze: a host's lease may
  // be shorter than its coordinator's (it resumes earlier and refuses a
  // later cut), never longer.
  const Duration lease =
      cut_by == Deadline::max() ? part.lease : std::min<Duration>(part.lease, cut_by - env->Now());
  if (lease <= Duration::zero()) {
    return failed(
        Status::Timeout("the pause came after the time the guests' freeze bound left "
                        "(vmgroupd --freeze-bound): this host's part is undone"));
  }
  const bool cut_with_pause = part.cut_with_pause;
  const ArmResumeGuard arm = [this](const auto& vms, Duration within) {
    return parts_.vms->GuardResume(vms, within);
  };
  l.unlock();
  const Clock::time_point pausing = env->Now();
  auto paused = LeasedPause::Pause(env, std::move(leased), tracking, lease, arm);
  l.lock();
  if (!paused.ok()) return failed(paused.status());  // nothing is paused
  part.pause = std::move(*paused);
  if (!cut_with_pause) {
    part.step = Status::Ok();
    part.Enter(HostCutStage::kPaused);
    waited = "the pause lease of " + Millis(lease);
    w = part.Await(env, l, pausing + lease + kLeaseSlack);
    if (w != Word::kCut) return refused(w, "cut");
  }
  l.unlock();
  Status cut = part.pause->Cut();
  l.lock();
  if (!cut.ok()) return failed(cut);
  part.step = Status::Ok();
  part.Enter(HostCutStage::kCut);

  w = await(env->Now() + step_timeout);
  if (w != Word::kResume) return refused(w, "resume");
  l.unlock();
  auto resumed = part.pause->Resume();
  l.lock();
  if (!resumed.ok()) return failed(resumed.status());
  // The cut's outcome as ExecuteCut would answer it: each member's cut
  // and pause, and the window from the first pause to the last resume.
  CutOutcome out;
  int64_t first = std::numeric_limits<int64_t>::max(), last = 0;
  for (const LeasedTiming& t : resumed->members) {
    out.timings.push_back({.cut_time_us = t.cut_time_us, .pause_us = t.pause_us});
    if (t.paused_at_us == 0) continue;
    first = std::min(first, t.paused_at_us);
    last = std::max(last, t.paused_at_us + t.pause_us);
  }
  if (last > 0) out.window_us = last - first;
  return out;
}

Status HostCuts::AwaitCommit(Part& part) {
  Env* env = parts_.env;
  std::unique_lock l(part.mu);
  part.step = Status::Ok();
  part.Enter(HostCutStage::kResumed);  // Resume is answered now: the switches are finished
  const Word w = part.Await(env, l, env->Now() + part.request.step_timeout);
  if (w == Word::kCommit) return Status::Ok();
  if (w == Word::kAbort) return Status::Cancelled("aborted by the coordinator");
  return Status::Timeout("no commit came from the coordinator within " +
                         Millis(part.request.step_timeout) + ": this host's part is undone");
}

std::shared_ptr<HostCuts::Part> HostCuts::Find(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  auto it = parts_by_id_.find(snapshot_id);
  return it == parts_by_id_.end() ? nullptr : it->second;
}

Status HostCuts::Step(Part& part, HostCutStage at, Word word) {
  std::unique_lock l(part.mu);
  if (part.stage != at) {
    if (part.stage == HostCutStage::kEnded) {
      return part.end.ok() ? Status::InvalidState("this host's part of snapshot " +
                                                  part.request.snapshot_id + " is committed")
                           : part.end;
    }
    return Status::InvalidState(std::string(StepName(static_cast<int>(word))) +
                                " came for snapshot " + part.request.snapshot_id +
                                ", whose part on this host is " + HostCutStageName(part.stage));
  }
  part.word = word;
  part.changed.notify_all();
  part.changed.wait(l, [&] { return part.stage != at; });
  return part.stage == HostCutStage::kEnded ? part.end : part.step;
}

Result<HostCutStatus> HostCuts::Pause(const std::string& snapshot_id, Duration lease, bool cut) {
  auto part = Find(snapshot_id);
  if (!part) return Status::NotFound("this host has no part of snapshot " + snapshot_id);
  if (lease <= Duration::zero()) return Status::InvalidArgument("the pause lease must be > 0");
  {
    std::lock_guard l(part->mu);
    part->lease = lease;
    part->cut_with_pause = cut;
  }
  VMG_RETURN_IF_ERROR(Step(*part, HostCutStage::kPrepared, Word::kPause));
  return Answered(*part);
}

HostCutStatus HostCuts::StatusOf(Part& part) {
  std::lock_guard l(part.mu);
  HostCutStatus status{.stage = part.stage, .lease = {}, .vm_ids = part.vm_ids, .end = part.end};
  if (part.pause) status.lease = part.pause->report();
  return status;
}

Result<HostCutStatus> HostCuts::Answered(Part& part) {
  HostCutStatus status = StatusOf(part);
  if (status.stage != HostCutStage::kEnded) return status;
  return status.end.ok() ? Status::InvalidState("the part is committed already") : status.end;
}

Status HostCuts::Cut(const std::string& snapshot_id) {
  auto part = Find(snapshot_id);
  if (!part) return Status::NotFound("this host has no part of snapshot " + snapshot_id);
  return Step(*part, HostCutStage::kPaused, Word::kCut);
}

Result<HostCutStatus> HostCuts::Resume(const std::string& snapshot_id) {
  auto part = Find(snapshot_id);
  if (!part) return Status::NotFound("this host has no part of snapshot " + snapshot_id);
  VMG_RETURN_IF_ERROR(Step(*part, HostCutStage::kCut, Word::kResume));
  return Answered(*part);
}

Status HostCuts::Commit(const std::string& snapshot_id) {
  auto part = Find(snapshot_id);
  if (!part) return Status::NotFound("this host has no part of snapshot " + snapshot_id);
  Status committed = Step(*part, HostCutStage::kResumed, Word::kCommit);
  bool ended;
  {
    std::lock_guard l(part->mu);
    ended = part->stage == HostCutStage::kEnded;
  }
  if (ended) Collect(part);  // its answer is given
  return committed;
}

Status HostCuts::Abort(const std::string& snapshot_id) {
  if (auto part = Find(snapshot_id)) {
    {
      std::unique_lock l(part->mu);
      if (part->stage != HostCutStage::kEnded) part->word = Word::kAbort;
      part->changed.notify_all();
      part->changed.wait(l, [&] { return part->stage == HostCutStage::kEnded; });
    }
    Collect(part);
  }
  // What the catalog holds of it decides: a committed part (this run's or
  // an earlier one's) is destroyed; an undo that failed is recovery's.
  auto s = parts_.catalog->GetSnapshot(snapshot_id);
  if (s.status().code() == Code::kNotFound) return Status::Ok();
  if (!s.ok()) return s.status();
  if (s->state == catalog::SnapshotState::kIncomplete) {
    return Status::Failed("this host's part of snapshot " + snapshot_id +
                          " could not be undone; the next start of the service finishes it");
  }
  return DestroyCommitted(snapshot_id);
}

Status HostCuts::DestroyCommitted(const std::string& snapshot_id) {
  const DestroyRequest request{snapshot_id};
  SnapshotDestroy destroy(parts_, request);
  return runner_.Run(destroy).Annotate("destroying this host's part of snapshot " + snapshot_id);
}

Result<ExportManifest> HostCuts::ExportPart(const ExportRequest& request) {
  SnapshotExport op(parts_, request);
  VMG_RETURN_IF_ERROR(runner_.Run(op));
  return op.manifest();
}

Status HostCuts::RemoveExportPart(const std::string& snapshot_id, const std::string& directory) {
  return RemoveExport(parts_.env, *parts_.catalog, snapshot_id, directory)
      .Annotate("removing this host's export of snapshot " + snapshot_id);
}

Result<catalog::ReferencePointRecord> HostCuts::ConvertedInto(const std::string& snapshot_id,
                                                              const std::string& rp_id) {
  if (rp_id.empty()) return Status::NotFound("no reference point named");
  auto rp = parts_.catalog->GetReferencePoint(rp_id);
  if (rp.ok() && rp->snapshot_id != snapshot_id) {
    return Status::NotFound("reference point " + rp_id + " is not of snapshot " + snapshot_id);
  }
  return rp;
}

Status HostCuts::ValidateConvertPart(const std::string& snapshot_id, const std::string& rp_id) {
  if (ConvertedInto(snapshot_id, rp_id).ok()) return Status::Ok();
  return runner_.Validate(ReferencePointConvert(parts_, snapshot_id, rp_id));
}

Result<catalog::ReferencePointRecord> HostCuts::ConvertPart(const std::string& snapshot_id,
                                                            const std::string& rp_id) {
  if (auto done = ConvertedInto(snapshot_id, rp_id); done.ok()) return done;
  ReferencePointConvert op(parts_, snapshot_id, rp_id);
  VMG_RETURN_IF_ERROR(runner_.Run(op));
  return op.reference_point();
}

Status HostCuts::DestroyReferencePointPart(const std::string& rp_id) {
  if (parts_.catalog->GetReferencePoint(rp_id).status().code() == Code::kNotFound) {
    return Status::Ok();
  }
  ReferencePointDestroy op(parts_, rp_id);
  return runner_.Run(op);
}

Result<HostCutStatus> HostCuts::Get(const std::string& snapshot_id) {
  auto part = Find(snapshot_id);
  if (!part) return Status::NotFound("this host has no part of snapshot " + snapshot_id);
  return StatusOf(*part);
}

}  // namespace vmgroup::engine
