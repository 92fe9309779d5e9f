#include "engine/spanning_snapshots.h"

#include <algorithm>

#include "base/ids.h"
#include "base/log.h"
#include "engine/fault_points.h"
#include "engine/parallel.h"
#include "engine/snapshot_plan.h"

namespace vmgroup::engine {
namespace {

// How often the snapshots a host has not yet taken back are asked again.
constexpr auto kRetryEvery = std::chrono::seconds(10);

// The part of every host of `group`: this host's first when it has members
// here, then each peer's, in the order their members were added.
std::vector<catalog::SpanningPart> PartsOf(const catalog::CollectionRecord& group) {
  std::vector<catalog::SpanningPart> parts;
  if (!group.members.empty()) parts.push_back({.host = "", .vm_ids = group.members});
  for (const auto& m : group.remote_members) {
    auto it = std::find_if(parts.begin(), parts.end(),
                           [&](const catalog::SpanningPart& p) { return p.host == m.host; });
    if (it == parts.end()) it = parts.insert(parts.end(), {.host = m.host});
    it->vm_ids.push_back(m.vm_id);
  }
  return parts;
}

std::string HostsOf(const catalog::SpanningSnapshotRecord& s) {
  std::string out;
  for (const auto& p : s.parts)
    out += (out.empty() ? "" : ", ") + (p.host.empty() ? "this host" : p.host);
  return out;
}

}  // namespace

SpanningSnapshots::~SpanningSnapshots() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (retries_.joinable()) retries_.join();
}

bool SpanningSnapshots::Spans(const std::string& collection_id) {
  auto group = parts_.catalog->GetCollection(collection_id);
  return group.ok() && !group->remote_members.empty();
}

Status SpanningSnapshots::Validate(const SnapshotRequest& request) {
  VMG_ASSIGN_OR_RETURN(catalog::CollectionRecord group,
                       parts_.catalog->GetCollection(request.collection_id));
  return Check(request, group);
}

Status SpanningSnapshots::Check(const SnapshotRequest& request,
                                const catalog::CollectionRecord& group) {
  VMG_RETURN_IF_ERROR(CheckSnapshotType(request.type));
  if (request.type == kSnapshotStandard) {
    return Status::NotSupported(
        "a Standard snapshot of a group across hosts is not offered: each VM's memory is saved "
        "as it runs again, which no host's pause lease can wait for; take a recovery (2) or "
        "disk-only (32768) snapshot");
  }
  if (request.consistency != catalog::Consistency::kCrash) {
    return Status::NotSupported(
        "application consistency across hosts is not offered yet: the guests would stay frozen "
        "over every host's round trips; take a crash-consistent snapshot (ConsistencyLevel 2)");
  }
  if (!request.id.empty() && !IsGuid(request.id)) {
    return Status::InvalidArgument("snapshot id '" + request.id + "' is not a GUID");
  }
  if (peers_ == nullptr) {
    return Status::NotSupported("group " + group.name +
                                " has members on other hosts, and this vmgroupd has no peers "
                                "configured (--peer NAME=URL)");
  }
  for (const auto& part : PartsOf(group)) {
    if (!part.host.empty()) VMG_RETURN_IF_ERROR(peers_->Known(part.host));
  }
  return Status::Ok();
}

Result<std::unique_ptr<CutHost>> SpanningSnapshots::HostOf(const catalog::SpanningPart& part) {
  if (part.host.empty()) return std::unique_ptr<CutHost>(new LocalCutHost(&local_));
  if (peers_ == nullptr) {
    return Status::NotSupported("this vmgroupd has no peers configured to reach host " + part.host);
  }
  return peers_->Connect(part.host);
}

Result<catalog::SpanningSnapshotRecord> SpanningSnapshots::Take(const SnapshotRequest& request) {
  VMG_ASSIGN_OR_RETURN(catalog::CollectionRecord group,
                       parts_.catalog->GetCollection(request.collection_id));
  VMG_RETURN_IF_ERROR(Check(request, group));
  const int64_t now_us = parts_.env->NowMicros();
  catalog::SpanningSnapshotRecord s{
      .id = request.id.empty() ? NewGuid() : request.id,
      .collection_id = group.id,
      .name = request.name.empty() ? DefaultSnapshotName(group.name, now_us) : request.name,
      .type = request.type,
      .state = catalog::SpanningState::kTaking,
      .created_us = now_us,
      .parts = PartsOf(group)};
  std::vector<std::unique_ptr<CutHost>> hosts;
  for (const auto& part : s.parts) {
    VMG_ASSIGN_OR_RETURN(auto host, HostOf(part));
    hosts.push_back(std::move(host));
  }
  // In taking_ before its record exists: a pass of Recover (at start, or
  // retrying) running meanwhile must not take it back mid-way.
  {
    std::lock_guard lock(mu_);
    taking_.insert(s.id);
  }
  // Leaves taking_ however Take ends: the record is Recover's from then.
  struct Taken {
    SpanningSnapshots* self;
    std::string id;
    ~Taken() {
      std::lock_guard lock(self->mu_);
      self->taking_.erase(id);
    }
  } taken{this, s.id};
  VMG_RETURN_IF_ERROR(parts_.catalog->InsertSpanning(s));
  if (Status hit = parts_.env->Hit(fault::kSpanIntentRecorded, s.id); !hit.ok()) {
    (void)parts_.catalog->DeleteSpanning(s.id);
    return hit;
  }
  std::vector<CutHost*> steps;
  for (auto& h : hosts) steps.push_back(h.get());
  const SpanningCutRequest cut{.snapshot_id = s.id,
                               .collection_id = s.collection_id,
                               .name = s.name,
                               .type = s.type,
                               .lease = parts_.options.host_lease,
                               .step_timeout = parts_.options.host_step_timeout,
                               .cancelled = request.cancelled};
  Result<SpanningCutReport> report = TakeSpanningCut(parts_.env, steps, cut);
  Status done = report.status();
  if (done.ok()) {
    s.window_us = report->window_us;
    s.cut_spread_us = report->cut_spread_us;
    for (size_t i = 0; i < s.parts.size(); ++i) {
      const SpannedHost& h = report->hosts[i];
      catalog::SpanningPart& p = s.parts[i];
      p.vm_ids = h.resume.answer.vm_ids;
      p.earliest_cut_us = h.earliest_cut_us;
      p.latest_cut_us = h.latest_cut_us;
      for (const LeasedTiming& t : h.resume.answer.members) {
        p.longest_pause_us = std::max(p.longest_pause_us, t.pause_us);
      }
    }
    done = parts_.catalog->CompleteSpanning(s);
    if (done.ok()) {
      s.state = catalog::SpanningState::kComplete;
      return s;
    }
  }
  // Every host took its part back already when the cut failed; asked once
  // more, so that the record goes only once each host said its part is gone
  // (and stays, for Recover, while one has not).
  Status undone = Undo(s);
  if (undone.ok()) return done;
  RecoverInBackground();
  return Status(done.code(), done.message() + "; " + undone.message());
}

Status SpanningSnapshots::Undo(const catalog::SpanningSnapshotRecord& s) {
  VMG_RETURN_IF_ERROR(parts_.catalog->SetSpanningState(s.id, catalog::SpanningState::kUndoing));
  const std::vector<Status> aborted = EachInParallel(s.parts.size(), [&](size_t i) -> Status {
    VMG_ASSIGN_OR_RETURN(auto host, HostOf(s.parts[i]));
    return host->Abort(s.id).Annotate(host->name());
  });
  std::string failed;
  for (const Status& a : aborted) {
    if (!a.ok()) failed += (failed.empty() ? "" : "; ") + a.message();
  }
  if (!failed.empty()) {
    return Status::Unavailable("snapshot " + s.name + " is still being taken back on " + failed +
                               " (vmgroupd tries again until every host has answered)");
  }
  return parts_.catalog->DeleteSpanning(s.id);
}

Status SpanningSnapshots::ValidateDestroy(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s, parts_.catalog->GetSpanning(id));
  if (s.state == catalog::SpanningState::kTaking) {
    return Status::InvalidState("snapshot " + s.name + " is still being taken");
  }
  return Status::Ok();
}

Status SpanningSnapshots::Destroy(const std::string& id) {
  VMG_RETURN_IF_ERROR(ValidateDestroy(id));
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s, parts_.catalog->GetSpanning(id));
  return Undo(s);
}

catalog::SnapshotRecord SpanningSnapshots::AsGroupSnapshot(
    const catalog::SpanningSnapshotRecord& s) {
  return {.id = s.id,
          .collection_id = s.collection_id,
          .name = s.name,
          .type = s.type,
          .state = s.state == catalog::SpanningState::kComplete
                       ? catalog::SnapshotState::kComplete
                       : catalog::SnapshotState::kIncomplete,
          .created_us = s.created_us,
          .pause_window_us = s.window_us};
}

Status SpanningSnapshots::RefuseAcrossHosts(const std::string& id, const std::string& what) {
  auto s = parts_.catalog->GetSpanning(id);
  if (!s.ok()) return Status::Ok();
  return Status::InvalidState(what + " snapshot " + s->name + " is not offered yet: it spans " +
                              HostsOf(*s) + ", and " + what +
                              " a snapshot across hosts is not built yet");
}

int SpanningSnapshots::Recover() {
  // One pass at a time: the background's and a caller's would take the
  // same snapshots back twice over.
  std::lock_guard pass(recover_mu_);
  auto all = parts_.catalog->ListSpanning();
  if (!all.ok()) {
    Log(LogLevel::kWarning, "snapshots across hosts: " + all.status().ToString());
    return 1;
  }
  int left = 0;
  for (const auto& s : *all) {
    if (s.state == catalog::SpanningState::kComplete) continue;
    {
      std::lock_guard lock(mu_);
      if (taking_.count(s.id) > 0) continue;  // Take has it in hand
    }
    Status undone = Undo(s);
    if (undone.ok()) {
      Log(LogLevel::kInfo, "snapshot " + s.name + " (" + s.id +
                               "), left unfinished across hosts, is taken back on " + HostsOf(s));
    } else {
      Log(LogLevel::kWarning, undone.message());
      ++left;
    }
  }
  return left;
}

void SpanningSnapshots::RecoverInBackground() {
  std::thread done;
  {
    std::lock_guard lock(mu_);
    if (retrying_ || stopping_) return;
    retrying_ = true;
    done = std::move(retries_);
    // Waits on the steady clock, not the Env's: a background retry, which
    // no test's fake clock needs to drive (they call Recover).
    retries_ = std::thread([this] {
      std::unique_lock held(mu_);
      while (!stopping_) {
        held.unlock();
        const int left = Recover();
        held.lock();
        if (left == 0) break;
        stop_cv_.wait_for(held, kRetryEvery, [this] { return stopping_; });
      }
      retrying_ = false;
    });
  }
  if (done.joinable()) done.join();
}

}  // namespace vmgroup::engine
