#include "engine/spanning_snapshots.h"

#include <algorithm>
#include <mutex>
#include <set>

#include "base/ids.h"
#include "base/log.h"
#include "engine/export_layout.h"
#include "engine/export_manifest.h"
#include "engine/fault_points.h"
#include "engine/member_checks.h"
#include "engine/parallel.h"
#include "engine/reference_point_export.h"
#include "engine/snapshot_plan.h"
#include "storage/untrusted_files.h"

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

// Whether `dir` holds the manifest across hosts of snapshot `id`: an export
// of it there is whole, and that manifest is its own to remove.
bool HoldsManifestOf(const std::string& dir, const std::string& id) {
  auto text = storage::ReadBounded(dir + "/" + kManifestFile, kMaxManifestBytes, "the manifest");
  if (!text.ok()) return false;
  auto m = ParseSpanningManifest(*text);
  return m.ok() && m->snapshot_id == id;
}

// What a snapshot converted to a reference point answers to anything
// asked of it as a snapshot.
Status ConvertedAlready(const catalog::SpanningSnapshotRecord& s) {
  return Status::NotFound("snapshot " + s.name + " (" + s.id +
                          ") was converted to reference point " + s.reference_point_id);
}

// InvalidState unless `s` is Complete: "... only a complete snapshot
// <does_what>".
Status RequireComplete(const catalog::SpanningSnapshotRecord& s, const std::string& does_what) {
  using State = catalog::SpanningState;
  if (s.state == State::kComplete) return Status::Ok();
  const char* being = s.state == State::kTaking ? "still being taken"
                      : s.state == State::kApplying || s.state == State::kApplyCommitting
                          ? "being applied"
                          : "being taken back";
  return Status::InvalidState("snapshot " + s.name + " is " + being +
                              ": only a complete snapshot " + does_what);
}

std::string HostsOf(const catalog::SpanningSnapshotRecord& s) {
  std::string out;
  for (const auto& p : s.parts)
    out += (out.empty() ? "" : ", ") + (p.host.empty() ? "this host" : p.host);
  return out;
}

}  // namespace

SpanningSnapshots::InHand::InHand(SpanningSnapshots* self, std::set<std::string>* set,
                                  std::string key)
    : self_(self), set_(set), key_(std::move(key)) {
  std::lock_guard lock(self_->mu_);
  held_ = set_->insert(key_).second;
}

SpanningSnapshots::InHand::~InHand() {
  if (!held_) return;
  std::lock_guard lock(self_->mu_);
  set_->erase(key_);
}

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
  if (part.host.empty())
    return std::unique_ptr<CutHost>(new LocalCutHost(&local_, &applies_, &backups_));
  if (peers_ == nullptr) {
    return Status::NotSupported("this vmgroupd has no peers configured to reach host " + part.host);
  }
  return peers_->Connect(part.host);
}

Result<std::vector<std::unique_ptr<CutHost>>> SpanningSnapshots::Reach(
    const std::vector<catalog::SpanningPart>& parts) {
  std::vector<std::unique_ptr<CutHost>> hosts;
  for (const auto& part : parts) {
    VMG_ASSIGN_OR_RETURN(auto host, HostOf(part));
    hosts.push_back(std::move(host));
  }
  return hosts;
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
      .consistency = request.consistency,
      .state = catalog::SpanningState::kTaking,
      .created_us = now_us,
      .parts = PartsOf(group)};
  VMG_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<CutHost>> hosts, Reach(s.parts));
  // In taking_ before its record exists: a pass of Recover (at start, or
  // retrying) running meanwhile must not take it back mid-way.
  InHand taken(this, &taking_, s.id);
  if (!taken.held()) return Status::AlreadyExists("snapshot " + s.id + " is being taken already");
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
                               .consistency = s.consistency,
                               .fallback = request.fallback,
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

std::vector<Status> SpanningSnapshots::EachHost(
    const catalog::SpanningSnapshotRecord& s, const std::function<Status(CutHost&, size_t)>& step) {
  return EachInParallel(s.parts.size(), [&](size_t i) -> Status {
    VMG_ASSIGN_OR_RETURN(auto host, HostOf(s.parts[i]));
    return step(*host, i).Annotate(host->name());
  });
}

Status SpanningSnapshots::OnEachHost(const catalog::SpanningSnapshotRecord& s,
                                     const std::function<Status(CutHost&, size_t)>& step) {
  for (const Status& done : EachHost(s, step)) VMG_RETURN_IF_ERROR(done);
  return Status::Ok();
}

Status SpanningSnapshots::OnEveryHost(const catalog::SpanningSnapshotRecord& s,
                                      const std::string& left,
                                      const std::function<Status(CutHost&, size_t)>& step) {
  const std::vector<Status> done = EachHost(s, step);
  std::string failed;
  for (const Status& d : done) {
    if (!d.ok()) failed += (failed.empty() ? "" : "; ") + d.message();
  }
  if (failed.empty()) return Status::Ok();
  return Status::Unavailable(left + " on " + failed +
                             " (vmgroupd tries again until every host has answered)");
}

Status SpanningSnapshots::Undo(const catalog::SpanningSnapshotRecord& s) {
  VMG_RETURN_IF_ERROR(parts_.catalog->SetSpanningState(s.id, catalog::SpanningState::kUndoing));
  VMG_RETURN_IF_ERROR(OnEveryHost(s, "snapshot " + s.name + " is still being taken back",
                                  [&](CutHost& host, size_t) { return host.Abort(s.id); }));
  return parts_.catalog->DeleteSpanning(s.id);
}

Status SpanningSnapshots::KnownHosts(const catalog::SpanningSnapshotRecord& s) {
  for (const auto& part : s.parts) {
    if (!part.host.empty() && peers_ != nullptr) VMG_RETURN_IF_ERROR(peers_->Known(part.host));
  }
  return Status::Ok();
}

Status SpanningSnapshots::ValidateConvert(const std::string& snapshot_id,
                                          const std::string& rp_id) {
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s, parts_.catalog->GetSpanning(snapshot_id));
  return CheckConvert(s, rp_id);
}

Status SpanningSnapshots::CheckConvert(const catalog::SpanningSnapshotRecord& s,
                                       const std::string& rp_id) {
  if (!IsSnapshot(s)) return ConvertedAlready(s);
  VMG_RETURN_IF_ERROR(RequireComplete(s, "becomes a reference point"));
  if (!rp_id.empty() && !IsGuid(rp_id)) {
    return Status::InvalidArgument("reference point id '" + rp_id + "' is not a GUID");
  }
  return KnownHosts(s);
}

Result<catalog::SpanningSnapshotRecord> SpanningSnapshots::Convert(const std::string& snapshot_id,
                                                                   const std::string& rp_id) {
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s, parts_.catalog->GetSpanning(snapshot_id));
  VMG_RETURN_IF_ERROR(CheckConvert(s, rp_id));
  InHand held(this, &taking_, s.id);
  if (!held.held()) return Status::Busy("snapshot " + s.name + " is in another operation");
  // Every host checks before any converts: once one has, there is no way back.
  VMG_RETURN_IF_ERROR(
      OnEachHost(s, [&](CutHost& host, size_t) { return host.ValidateConvert(s.id); }));
  s.reference_point_id = rp_id.empty() ? NewGuid() : rp_id;
  s.converted_us = parts_.env->NowMicros();
  VMG_RETURN_IF_ERROR(parts_.catalog->ConvertSpanning(s.id, s.reference_point_id, s.converted_us));
  s.state = catalog::SpanningState::kConverting;
  VMG_RETURN_IF_ERROR(parts_.env->Hit(fault::kSpanConvertRecorded, s.id));
  if (Status done = ConvertEverywhere(s); !done.ok()) {
    RecoverInBackground();
    return done;
  }
  s.state = catalog::SpanningState::kReferencePoint;
  return s;
}

Result<catalog::SpanningSnapshotRecord> SpanningSnapshots::CreateReferencePoint(
    const std::string& collection_id, const std::string& name, const std::string& rp_id) {
  VMG_ASSIGN_OR_RETURN(
      catalog::SpanningSnapshotRecord s,
      Take({.collection_id = collection_id, .type = kSnapshotRecovery, .name = name}));
  auto converted = Convert(s.id, rp_id);
  if (converted.ok()) return converted;
  // Converted nowhere (a host refused): the snapshot goes, as on one host.
  auto now = parts_.catalog->GetSpanning(s.id);
  if (now.ok() && IsSnapshot(*now)) {
    if (Status destroyed = Destroy(s.id); !destroyed.ok()) {
      return Status(converted.status().code(), converted.status().message() +
                                                   "; and its snapshot " + s.name + " remains (" +
                                                   destroyed.message() + ")");
    }
  }
  return converted.status();
}

Status SpanningSnapshots::ConvertEverywhere(const catalog::SpanningSnapshotRecord& s) {
  const Status converted = OnEveryHost(
      s,
      "snapshot " + s.name + " is still to be converted to reference point " + s.reference_point_id,
      [&](CutHost& host, size_t) {
        VMG_RETURN_IF_ERROR(host.Convert(s.id, s.reference_point_id));
        return parts_.env->Hit(fault::kSpanHostConverted, s.id);
      });
  VMG_RETURN_IF_ERROR(converted);
  return parts_.catalog->SetSpanningState(s.id, catalog::SpanningState::kReferencePoint);
}

bool SpanningSnapshots::HasReferencePoint(const std::string& rp_id) {
  return parts_.catalog->GetSpanningReferencePoint(rp_id).ok();
}

Status SpanningSnapshots::DestroyReferencePoint(const std::string& rp_id) {
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s,
                       parts_.catalog->GetSpanningReferencePoint(rp_id));
  InHand held(this, &taking_, s.id);
  if (!held.held()) {
    return Status::Busy("reference point " + s.name + " is being converted or destroyed");
  }
  return Forget(s);
}

Status SpanningSnapshots::Forget(const catalog::SpanningSnapshotRecord& s) {
  VMG_RETURN_IF_ERROR(parts_.catalog->SetSpanningState(s.id, catalog::SpanningState::kForgetting));
  const Status destroyed = OnEveryHost(s, "reference point " + s.name + " is still being destroyed",
                                       [&](CutHost& host, size_t) {
                                         // A host that had not converted its part still holds the
                                         // snapshot.
                                         VMG_RETURN_IF_ERROR(host.Abort(s.id));
                                         return host.DestroyReferencePoint(s.reference_point_id);
                                       });
  VMG_RETURN_IF_ERROR(destroyed);
  return parts_.catalog->DeleteSpanning(s.id);
}

Status SpanningSnapshots::ValidateDestroy(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s, parts_.catalog->GetSpanning(id));
  if (!IsSnapshot(s)) return ConvertedAlready(s);
  if (s.state == catalog::SpanningState::kTaking) {
    return Status::InvalidState("snapshot " + s.name + " is still being taken");
  }
  if (s.state == catalog::SpanningState::kApplying ||
      s.state == catalog::SpanningState::kApplyCommitting) {
    return Status::InvalidState("snapshot " + s.name +
                                " is being applied; destroy it once the apply has ended");
  }
  // Its export's parts are removed by what the snapshot's parts name.
  VMG_ASSIGN_OR_RETURN(auto intents, parts_.catalog->ListExportIntents());
  for (const auto& intent : intents) {
    if (intent.across_hosts && intent.snapshot_id == id) {
      return Status::InvalidState("snapshot " + s.name + " is being exported into " +
                                  intent.directory + ", or that export is still being removed; " +
                                  "try again once it has ended");
    }
  }
  return Status::Ok();
}

Status SpanningSnapshots::Destroy(const std::string& id) {
  VMG_RETURN_IF_ERROR(ValidateDestroy(id));
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s, parts_.catalog->GetSpanning(id));
  return Undo(s);
}

bool SpanningSnapshots::Has(const std::string& id) {
  auto s = parts_.catalog->GetSpanning(id);
  return s.ok() && IsSnapshot(*s);
}

std::string SpanningSnapshots::FolderOf(const catalog::SpanningPart& part) const {
  return part.host.empty() ? parts_.options.host_name : part.host;
}

std::string SpanningSnapshots::PartDir(const std::string& dir,
                                       const catalog::SpanningPart& part) const {
  return dir + "/" + FolderOf(part);
}

Status SpanningSnapshots::ValidateExport(const ExportRequest& request) {
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s,
                       parts_.catalog->GetSpanning(request.snapshot_id));
  return CheckExport(s, request);
}

Status SpanningSnapshots::CheckExport(const catalog::SpanningSnapshotRecord& s,
                                      const ExportRequest& request) {
  VMG_RETURN_IF_ERROR(RequireComplete(s, "is exported"));
  if (!request.base.empty()) VMG_RETURN_IF_ERROR(CheckBase(s, request.base));
  VMG_RETURN_IF_ERROR(CheckExportDirectory(parts_, request.directory));
  VMG_RETURN_IF_ERROR(KnownHosts(s));
  std::set<std::string> folders;
  for (const auto& part : s.parts) {
    if (!folders.insert(FolderOf(part)).second) {
      return Status::InvalidState("two hosts of snapshot " + s.name + " would export into " +
                                  request.directory + "/" + FolderOf(part) +
                                  ": this host's name is a peer's (set vmgroupd's host name "
                                  "apart from its peers' names)");
    }
  }
  return Status::Ok();
}

Status SpanningSnapshots::CheckBase(const catalog::SpanningSnapshotRecord& s,
                                    const std::string& base) {
  auto rp = parts_.catalog->GetSpanningReferencePoint(base);
  if (!rp.ok() || rp->state != catalog::SpanningState::kReferencePoint) {
    return Status::NotSupported("snapshot " + s.name + " spans " + HostsOf(s) +
                                ": an incremental export across hosts " +
                                "builds on a reference point across hosts, which " + base +
                                " is not; export it in full (no DifferentialBackupBase)");
  }
  if (rp->collection_id != s.collection_id) {
    return Status::InvalidArgument("reference point " + rp->name + " is not of snapshot " + s.name +
                                   "'s group");
  }
  std::set<std::string> hosts, based;
  for (const auto& p : s.parts) hosts.insert(p.host);
  for (const auto& p : rp->parts) based.insert(p.host);
  if (hosts != based) {
    return Status::InvalidState("snapshot " + s.name + " spans " + HostsOf(s) +
                                ", reference point " + rp->name + " " + HostsOf(*rp) +
                                ": a host without a part of it has nothing to build on; export "
                                "in full");
  }
  return Status::Ok();
}

Result<SpanningExportManifest> SpanningSnapshots::Export(const ExportRequest& request) {
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s,
                       parts_.catalog->GetSpanning(request.snapshot_id));
  VMG_RETURN_IF_ERROR(CheckExport(s, request));
  VMG_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<CutHost>> hosts, Reach(s.parts));
  const std::string& dir = request.directory;
  const catalog::ExportIntent intent{.directory = dir,
                                     .snapshot_id = s.id,
                                     .made = OutermostMissing(parts_.env, dir),
                                     .across_hosts = true};
  // In exporting_ before its intent exists: a pass of Recover meanwhile
  // must not take it back mid-way.
  InHand held(this, &exporting_, dir);
  if (!held.held()) return Status::AlreadyExists("an export into " + dir + " is in progress");
  VMG_RETURN_IF_ERROR(parts_.catalog->InsertExportIntent(intent));
  if (Status hit = parts_.env->Hit(fault::kSpanExportIntentRecorded, s.id); !hit.ok()) {
    (void)parts_.catalog->DeleteExportIntent(dir);
    return hit;
  }
  std::mutex progress_mu;
  size_t finished = 0;
  const std::vector<Status> exported = EachInParallel(s.parts.size(), [&](size_t i) -> Status {
    Status done = hosts[i]
                      ->Export(s.id, PartDir(dir, s.parts[i]), request.copy_storage, request.base)
                      .Annotate(hosts[i]->name());
    std::lock_guard lock(progress_mu);
    ++finished;
    if (request.progress) request.progress(static_cast<int>(100 * finished / s.parts.size()));
    return done;
  });
  Status failed;
  for (const Status& e : exported) {
    if (!e.ok()) {
      failed = e;
      break;
    }
  }
  if (failed.ok()) failed = parts_.env->Hit(fault::kSpanExportPartsDone, s.id);
  if (failed.ok()) {
    SpanningExportManifest m{.exported_us = parts_.env->NowMicros(),
                             .collection_id = s.collection_id,
                             .snapshot_id = s.id,
                             .snapshot_name = s.name,
                             .cut_spread_us = s.cut_spread_us,
                             .storage = request.copy_storage,
                             .base_reference_point_id = request.base};
    for (const auto& part : s.parts) {
      m.parts.push_back({.host = part.host, .folder = FolderOf(part), .vm_ids = part.vm_ids});
    }
    failed = WriteSpanningManifest(dir, m, !intent.made.empty());
    if (failed.ok()) {
      // Finished: an intent left behind is forgotten by Recover, which
      // finds the manifest.
      VMG_RETURN_IF_ERROR(parts_.env->Hit(fault::kSpanExportWritten, s.id));
      if (Status forgot = parts_.catalog->DeleteExportIntent(dir); !forgot.ok()) {
        Log(LogLevel::kWarning, forgot.ToString());
      }
      return m;
    }
  }
  // Presumed abort: every part that was finished goes.
  Status undone = RemoveExportEverywhere(s, intent, &exported);
  if (!undone.ok()) RecoverInBackground();
  return Status(failed.code(),
                failed.message() + (undone.ok() ? " (the parts the hosts finished were removed)"
                                                : "; " + undone.message()));
}

Status SpanningSnapshots::ValidateExportReferencePoint(const std::string& rp_id,
                                                       const ExportRequest& request) {
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord rp,
                       parts_.catalog->GetSpanningReferencePoint(rp_id));
  return CheckExportReferencePoint(rp, request);
}

Status SpanningSnapshots::CheckExportReferencePoint(const catalog::SpanningSnapshotRecord& rp,
                                                    const ExportRequest& request) {
  if (rp.state != catalog::SpanningState::kReferencePoint) {
    return Status::InvalidState(
        "reference point " + rp.name + " is being " +
        (rp.state == catalog::SpanningState::kConverting ? "made" : "destroyed") +
        " on its hosts: only a whole one is exported");
  }
  VMG_ASSIGN_OR_RETURN(catalog::CollectionRecord group,
                       parts_.catalog->GetCollection(rp.collection_id));
  const SnapshotRequest take = SnapshotToExport(rp);
  VMG_RETURN_IF_ERROR(Check(take, group));
  // The snapshot Take will make, as Export will find it.
  const catalog::SpanningSnapshotRecord s{.collection_id = group.id,
                                          .name = take.name,
                                          .state = catalog::SpanningState::kComplete,
                                          .parts = PartsOf(group)};
  ExportRequest on_base = request;
  if (on_base.base.empty()) on_base.base = rp.reference_point_id;
  return CheckExport(s, on_base);
}

SnapshotRequest SpanningSnapshots::SnapshotToExport(const catalog::SpanningSnapshotRecord& rp) {
  return {.collection_id = rp.collection_id,
          .type = kSnapshotRecovery,
          .name = "Export of reference point " + rp.name};
}

Result<SpanningExportManifest> SpanningSnapshots::ExportReferencePoint(const std::string& rp_id,
                                                                       ExportRequest request) {
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord rp,
                       parts_.catalog->GetSpanningReferencePoint(rp_id));
  VMG_RETURN_IF_ERROR(CheckExportReferencePoint(rp, request));
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s, Take(SnapshotToExport(rp)));
  request.snapshot_id = s.id;
  if (request.base.empty()) request.base = rp_id;
  request.copy_storage = true;
  Result<SpanningExportManifest> exported = Export(request);
  // Taken only to be read: each host destroys its part, merging its
  // overlays back, and its bitmaps mark those writes too.
  VMG_RETURN_IF_ERROR(AfterTakenBack(exported.status(), Destroy(s.id), s.name, request.directory));
  return exported;
}

Status SpanningSnapshots::RemoveExportEverywhere(const catalog::SpanningSnapshotRecord& s,
                                                 const catalog::ExportIntent& intent,
                                                 const std::vector<Status>* exported) {
  const std::string& dir = intent.directory;
  VMG_RETURN_IF_ERROR(OnEveryHost(
      s, "the export of snapshot " + s.name + " into " + dir + " is still being removed",
      [&](CutHost& host, size_t i) {
        if (exported != nullptr && !(*exported)[i].ok()) return Status::Ok();  // it made nothing
        return host.RemoveExport(s.id, PartDir(dir, s.parts[i]));
      }));
  // The manifest across hosts too, should it have been written.
  if (HoldsManifestOf(dir, s.id)) {
    VMG_RETURN_IF_ERROR(parts_.env->RemoveFile(dir + "/" + kManifestFile));
  }
  VMG_RETURN_IF_ERROR(RemoveEmptyDirs(parts_.env, MadeDirs(dir, intent.made)));
  return parts_.catalog->DeleteExportIntent(dir);
}

Status SpanningSnapshots::WriteSpanningManifest(const std::string& dir,
                                                const SpanningExportManifest& m, bool made) {
  Env* env = parts_.env;
  VMG_RETURN_IF_ERROR(env->CreateDirs(dir));
  if (made) VMG_RETURN_IF_ERROR(storage::SetAccess(dir, kExportDirMode, parts_.options.admin_gid));
  const std::string file = dir + "/" + kManifestFile;
  VMG_RETURN_IF_ERROR(env->WriteFile(file, SpanningManifestToJson(m)));
  return storage::SetAccess(file, kExportFileMode, parts_.options.admin_gid);
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
          .pause_window_us = s.window_us,
          .consistency = s.consistency};
}

catalog::ReferencePointRecord SpanningSnapshots::AsGroupReferencePoint(
    const catalog::SpanningSnapshotRecord& s) {
  int64_t cut_us = 0;
  for (const auto& p : s.parts) {
    if (p.earliest_cut_us > 0 && (cut_us == 0 || p.earliest_cut_us < cut_us)) {
      cut_us = p.earliest_cut_us;
    }
  }
  return {.id = s.reference_point_id,
          .collection_id = s.collection_id,
          .name = s.name,
          .snapshot_id = s.id,
          .cut_us = cut_us,
          .created_us = s.converted_us};
}

Status SpanningSnapshots::ValidateApply(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s, parts_.catalog->GetSpanning(id));
  return CheckApply(s);
}

Status SpanningSnapshots::CheckApply(const catalog::SpanningSnapshotRecord& s) {
  if (!IsSnapshot(s)) return ConvertedAlready(s);
  VMG_RETURN_IF_ERROR(RequireComplete(s, "is applied"));
  VMG_RETURN_IF_ERROR(KnownHosts(s));
  // Each host checks that its part's members are the snapshot's; a host
  // the group gained since has no part to apply.
  VMG_ASSIGN_OR_RETURN(catalog::CollectionRecord group,
                       parts_.catalog->GetCollection(s.collection_id));
  for (const auto& now : PartsOf(group)) {
    const bool had =
        std::any_of(s.parts.begin(), s.parts.end(),
                    [&](const catalog::SpanningPart& p) { return p.host == now.host; });
    if (!had) {
      return Status::InvalidState("the group's members changed since snapshot " + s.name + ": " +
                                  (now.host.empty() ? "this host" : "host " + now.host) +
                                  " has members of it now, and none in the snapshot; it can only "
                                  "be applied to the VMs it was taken of");
    }
  }
  return Status::Ok();
}

Result<catalog::SpanningSnapshotRecord> SpanningSnapshots::Apply(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s, parts_.catalog->GetSpanning(id));
  InHand held(this, &taking_, s.id);
  if (!held.held()) return Status::Busy("snapshot " + s.name + " is in another operation");
  VMG_RETURN_IF_ERROR(CheckApply(s));
  // Every host checks before any stops a member: a refusal changes nothing.
  VMG_RETURN_IF_ERROR(
      OnEachHost(s, [&](CutHost& host, size_t) { return host.ValidateApply(s.id); }));
  VMG_RETURN_IF_ERROR(parts_.catalog->SetSpanningState(s.id, catalog::SpanningState::kApplying));
  s.state = catalog::SpanningState::kApplying;
  Status prepared = OnEachHost(s, [&](CutHost& host, size_t) { return host.PrepareApply(s.id); });
  if (prepared.ok()) prepared = parts_.env->Hit(fault::kSpanApplyPrepared, s.id);
  // The decision, recorded before any host hears it: from here on the
  // apply is finished on every host, never taken back.
  if (prepared.ok()) {
    prepared = parts_.catalog->SetSpanningState(s.id, catalog::SpanningState::kApplyCommitting);
  }
  if (!prepared.ok()) {
    const Status undone = AbortApplyEverywhere(s);
    if (undone.ok()) return prepared;
    RecoverInBackground();
    return Status(prepared.code(), prepared.message() + "; " + undone.message());
  }
  s.state = catalog::SpanningState::kApplyCommitting;
  VMG_RETURN_IF_ERROR(parts_.env->Hit(fault::kSpanApplyDecided, s.id));
  if (Status done = CommitApplyEverywhere(s); !done.ok()) {
    RecoverInBackground();
    return done;
  }
  s.state = catalog::SpanningState::kComplete;
  return s;
}

Status SpanningSnapshots::AbortApplyEverywhere(const catalog::SpanningSnapshotRecord& s) {
  VMG_RETURN_IF_ERROR(OnEveryHost(s,
                                  "the apply of snapshot " + s.name + " is still being taken back",
                                  [&](CutHost& host, size_t) { return host.AbortApply(s.id); }));
  return parts_.catalog->SetSpanningState(s.id, catalog::SpanningState::kComplete);
}

Status SpanningSnapshots::CommitApplyEverywhere(const catalog::SpanningSnapshotRecord& s) {
  const Status committed =
      OnEveryHost(s, "the apply of snapshot " + s.name + " is still to be committed",
                  [&](CutHost& host, size_t) {
                    VMG_RETURN_IF_ERROR(host.CommitApply(s.id));
                    return parts_.env->Hit(fault::kSpanHostApplied, s.id);
                  });
  VMG_RETURN_IF_ERROR(committed);
  return parts_.catalog->SetSpanningState(s.id, catalog::SpanningState::kComplete);
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
    using State = catalog::SpanningState;
    if (s.state == State::kComplete || s.state == State::kReferencePoint) continue;
    InHand held(this, &taking_, s.id);
    if (!held.held()) continue;  // Take, Convert or DestroyReferencePoint has it in hand
    // Held now, it may have moved on since the listing.
    auto now = parts_.catalog->GetSpanning(s.id);
    if (!now.ok() || now->state != s.state) continue;
    Status done;
    std::string what;
    if (s.state == State::kConverting) {
      done = ConvertEverywhere(s);
      what = "converted to reference point " + s.reference_point_id;
    } else if (s.state == State::kApplying) {
      done = AbortApplyEverywhere(s);
      what = "no longer being applied (taken back)";
    } else if (s.state == State::kApplyCommitting) {
      done = CommitApplyEverywhere(s);
      what = "applied";
    } else if (s.state == State::kForgetting) {
      done = Forget(s);
      what = "destroyed as reference point " + s.reference_point_id;
    } else {
      done = Undo(s);
      what = "taken back";
    }
    if (done.ok()) {
      Log(LogLevel::kInfo, "snapshot " + s.name + " (" + s.id +
                               "), left unfinished across hosts, is " + what + " on " + HostsOf(s));
    } else {
      Log(LogLevel::kWarning, done.message());
      ++left;
    }
  }
  left += RecoverExports();
  return also_recover_ ? left + also_recover_() : left;
}

int SpanningSnapshots::RecoverExports() {
  auto intents = parts_.catalog->ListExportIntents();
  if (!intents.ok()) {
    Log(LogLevel::kWarning, "exports across hosts: " + intents.status().ToString());
    return 1;
  }
  int left = 0;
  for (const auto& intent : *intents) {
    if (!intent.across_hosts) continue;
    {
      std::lock_guard lock(mu_);
      if (exporting_.count(intent.directory) > 0) continue;  // Export has it in hand
    }
    const std::string& dir = intent.directory;
    // Finished: the manifest was written, only the intent was left.
    if (HoldsManifestOf(dir, intent.snapshot_id)) {
      if (Status forgot = parts_.catalog->DeleteExportIntent(dir); !forgot.ok()) ++left;
      continue;
    }
    auto s = parts_.catalog->GetSpanning(intent.snapshot_id);
    if (s.status().code() == Code::kNotFound) {
      // Nothing names its hosts any more (Destroy refuses while it is
      // recorded: a catalog changed by hand); said, and forgotten.
      Log(LogLevel::kWarning, "the export across hosts into " + dir + " of snapshot " +
                                  intent.snapshot_id +
                                  ", left unfinished, names a snapshot this host no longer has: "
                                  "remove its parts on the hosts by hand");
      if (Status forgot = parts_.catalog->DeleteExportIntent(dir); !forgot.ok()) ++left;
      continue;
    }
    Status undone = s.ok() ? RemoveExportEverywhere(*s, intent, nullptr) : s.status();
    if (undone.ok()) {
      Log(LogLevel::kInfo, "the export of snapshot " + s->name + " into " + dir +
                               ", left unfinished, is removed on " + HostsOf(*s));
    } else {
      Log(LogLevel::kWarning, "the export across hosts into " + dir + ": " + undone.ToString());
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
