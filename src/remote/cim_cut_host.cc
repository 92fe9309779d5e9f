#include "remote/cim_cut_host.h"

#include <algorithm>

#include "base/env.h"
#include "base/return_codes.h"
#include "schema/classes.h"
#include "schema/values.h"

namespace vmgroup::remote {
namespace {

using HC = schema::HostCutService;
using Job = schema::ConcreteJob;
using BS = schema::BackupService;
using Session = schema::BackupSession;
using Disk = schema::BackupDisk;

// Beyond the lease, how long an answer to Pause, Cut or Resume may still be
// waited for: the host's own resume when its lease ran out (LeasedPause),
// and the finishing of its switches after Resume.
constexpr Duration kAnswerMargin = std::chrono::seconds(5);

// A job is looked at after 20 ms, for an export without disks ends at
// once, then ever less often, up to every 250 ms (as the CLI waits for a
// job).
constexpr Duration kFirstLook = std::chrono::milliseconds(20);
constexpr Duration kLongestLook = std::chrono::milliseconds(250);
// How long a job's PercentComplete may stand still: longer than the
// host lets one disk's copy take (storage::kDiskCopyTimeout, 12 h), so only
// a job stuck on the host reaches it.
constexpr Duration kJobStall = std::chrono::hours(13);

// "host 10.77.1.2:5989" for https://root@10.77.1.2:5989: what messages
// name the host by, with no credentials in it.
std::string HostName(const std::string& endpoint) {
  std::string where = endpoint;
  if (auto scheme = where.find("://"); scheme != std::string::npos) where.erase(0, scheme + 3);
  if (auto at = where.rfind('@'); at != std::string::npos) where.erase(0, at + 1);
  return "host " + where;
}

cim::OutParam Millis(const char* name, Duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return {name, "uint32", cim::Value::Scalar(std::to_string(ms))};
}

// The uint64 array `name` of `r`, by member.
Result<std::vector<int64_t>> Numbers(const cim::Response& r, const char* name) {
  const cim::Param* p = r.Out(name);
  if (!p) return Status::Failed(std::string("the answer has no ") + name);
  std::vector<int64_t> out;
  for (const auto& v : p->value.array) {
    char* end = nullptr;
    out.push_back(std::strtoll(v.c_str(), &end, 10));
    if (v.empty() || *end != '\0') {
      return Status::Failed(std::string("the answer's ") + name + " holds '" + v + "'");
    }
  }
  return out;
}

std::string Text(const cim::Response& r, const char* name) {
  const cim::Param* p = r.Out(name);
  return p ? p->value.scalar : "";
}

// The status a method's ReturnValue other than 0 and 4096 stands for.
Status Refusal(const cim::Response& r) {
  return StatusOfReturnCodeA(r.return_value, Text(r, schema::MethodOut::kErrorDescription));
}

// The integer property `name` of `i`; 0 when it is absent or NULL.
int64_t Number(const cim::Instance& i, const char* name) {
  const cim::Property* p = i.Find(name);
  return p ? std::strtoll(p->value.scalar.c_str(), nullptr, 10) : 0;
}

// JobState: 7 and above are ended, but for 11 (Service) and 12 (Query
// Pending).
bool Ended(int64_t state) {
  using S = schema::JobState;
  return state >= S::kCompleted && state != S::kService && state != S::kQueryPending;
}

// An ended job's outcome: OK when it completed, with warnings or not; else
// its ErrorCode, a family-A return value, with its ErrorDescription (a job
// ended by recovery or a cancel may have none: then its state).
Status OutcomeOf(const cim::Instance& job) {
  const int64_t state = Number(job, Job::kJobState);
  if (state == schema::JobState::kCompleted || state == schema::JobState::kCompletedWithWarnings) {
    return Status::Ok();
  }
  const cim::Property* why = job.Find(Job::kErrorDescription);
  return StatusOfReturnCodeA(static_cast<uint32_t>(Number(job, Job::kErrorCode)),
                             why && !why->value.scalar.empty()
                                 ? why->value.scalar
                                 : "its job ended in state " + std::to_string(state));
}

// The path of the instance of `class_name` whose string key `key` is `value`.
cim::ObjectPath KeyRef(const char* class_name, const char* key, const std::string& value) {
  return {"", {}, class_name, {{key, cim::KeyBinding::Kind::kString, value, {}}}};
}

cim::OutParam RefArg(const char* name, cim::ObjectPath path) {
  return {name, "reference", cim::Value::Reference(std::move(path))};
}

// The string property `name` of `i`; "" when absent.
std::string Str(const cim::Instance& i, const char* name) {
  const cim::Property* p = i.Find(name);
  return p ? p->value.scalar : "";
}

// PauseCut's and ResumeCut's answer.
Result<engine::HostLease> LeaseOf(const cim::Response& r) {
  engine::HostLease lease;
  if (const cim::Param* ids = r.Out(HC::kVirtualSystemIdentifiers)) lease.vm_ids = ids->value.array;
  VMG_ASSIGN_OR_RETURN(auto paused_at, Numbers(r, HC::kPausedAt));
  VMG_ASSIGN_OR_RETURN(auto pauses, Numbers(r, HC::kPauseDurations));
  VMG_ASSIGN_OR_RETURN(auto cuts, Numbers(r, HC::kCutTimes));
  if (paused_at.size() != lease.vm_ids.size() || pauses.size() != lease.vm_ids.size() ||
      cuts.size() != lease.vm_ids.size()) {
    return Status::Failed("the answer's timings are not one per VM");
  }
  for (size_t i = 0; i < lease.vm_ids.size(); ++i) {
    lease.members.push_back(
        {.paused_at_us = paused_at[i], .pause_us = pauses[i], .cut_time_us = cuts[i]});
  }
  lease.lease_state = Text(r, HC::kLeaseState);
  lease.unguarded = Text(r, HC::kUnguarded);
  lease.host_time_us = std::strtoll(Text(r, HC::kHostTime).c_str(), nullptr, 10);
  return lease;
}

}  // namespace

Result<std::unique_ptr<CimCutHost>> CimCutHost::Create(const std::string& endpoint,
                                                       const cim::HttpClient::Options& options,
                                                       const std::string& name) {
  VMG_ASSIGN_OR_RETURN(auto http, cim::HttpClient::Create(endpoint, options));
  return std::unique_ptr<CimCutHost>(
      new CimCutHost(name.empty() ? HostName(endpoint) : name,
                     std::make_unique<cim::CimClient>(std::move(http), schema::kNamespace)));
}

Result<cim::Response> CimCutHost::Ask(const std::string& method, const std::string& snapshot_id,
                                      Duration within, std::vector<cim::OutParam> more) {
  cim_->set_timeout(std::chrono::duration_cast<std::chrono::milliseconds>(within));
  if (service_.class_name.empty()) {
    VMG_ASSIGN_OR_RETURN(auto found, cim_->EnumerateInstances(HC::kClass));
    if (found.empty())
      return Status::NotSupported("its vmgroupd serves no " + std::string(HC::kClass));
    service_ = found[0].path;
  }
  if (!snapshot_id.empty()) {
    more.insert(more.begin(), {HC::kSnapshotID, "string", cim::Value::Scalar(snapshot_id)});
  }
  return cim_->Invoke(service_, method, more);
}

Result<cim::Response> CimCutHost::Call(const std::string& method, const std::string& snapshot_id,
                                       Duration within, std::vector<cim::OutParam> more) {
  VMG_ASSIGN_OR_RETURN(cim::Response r, Ask(method, snapshot_id, within, std::move(more)));
  if (r.return_value == kRcCompleted) return r;
  return Refusal(r);
}

Status CimCutHost::Prepare(const engine::HostCutRequest& request) {
  const cim::ObjectPath collection{"",
                                   {},
                                   schema::VirtualSystemCollection::kClass,
                                   {{schema::VirtualSystemCollection::kCollectionID,
                                     cim::KeyBinding::Kind::kString,
                                     request.collection_id,
                                     {}}}};
  step_timeout_ = request.step_timeout;
  return Call(HC::PrepareCut::kMethod, request.snapshot_id, step_timeout_,
              {{HC::PrepareCut::kCollection, "reference", cim::Value::Reference(collection)},
               {HC::PrepareCut::kSnapshotType, "uint16",
                cim::Value::Scalar(std::to_string(request.type))},
               {HC::PrepareCut::kElementName, "string", cim::Value::Scalar(request.name)},
               Millis(HC::PrepareCut::kStepTimeout, request.step_timeout),
               {HC::PrepareCut::kConsistencyLevel, "uint16",
                cim::Value::Scalar(std::to_string(static_cast<int>(request.consistency)))},
               {HC::PrepareCut::kAllowCrashConsistentFallback, "boolean",
                cim::Value::Scalar(request.fallback ? "true" : "false")}})
      .status();
}

Result<engine::HostLease> CimCutHost::Pause(const std::string& snapshot_id, Duration lease,
                                            bool cut) {
  lease_ = lease;
  VMG_ASSIGN_OR_RETURN(
      cim::Response r,
      Call(HC::PauseCut::kMethod, snapshot_id, lease_ + kAnswerMargin,
           {Millis(HC::PauseCut::kLease, lease),
            {HC::PauseCut::kCutAtOnce, "boolean", cim::Value::Scalar(cut ? "true" : "false")}}));
  return LeaseOf(r);
}

Status CimCutHost::Cut(const std::string& snapshot_id) {
  return Call(HC::Cut::kMethod, snapshot_id, lease_ + kAnswerMargin).status();
}

Result<engine::HostLease> CimCutHost::Resume(const std::string& snapshot_id) {
  VMG_ASSIGN_OR_RETURN(cim::Response r,
                       Call(HC::ResumeCut::kMethod, snapshot_id, lease_ + kAnswerMargin));
  return LeaseOf(r);
}

Status CimCutHost::Commit(const std::string& snapshot_id) {
  return Call(HC::CommitCut::kMethod, snapshot_id, step_timeout_).status();
}

Status CimCutHost::Abort(const std::string& snapshot_id) {
  return Call(HC::AbortCut::kMethod, snapshot_id, step_timeout_).status();
}

Status CimCutHost::Export(const std::string& snapshot_id, const std::string& directory,
                          bool copy_storage, const std::string& base) {
  using E = HC::ExportPart;
  std::vector<cim::OutParam> args = {
      {E::kExportDirectory, "string", cim::Value::Scalar(directory)},
      {E::kCopyStorage, "boolean", cim::Value::Scalar(copy_storage ? "true" : "false")}};
  if (!base.empty()) args.push_back({E::kBaseReferencePointID, "string", cim::Value::Scalar(base)});
  VMG_ASSIGN_OR_RETURN(cim::Response r, Ask(E::kMethod, snapshot_id, step_timeout_, args));
  return Finished(E::kMethod, r);
}

Status CimCutHost::Finished(const char* method, const cim::Response& r) {
  if (r.return_value == kRcCompleted) return Status::Ok();
  if (r.return_value != kRcJobStarted) return Refusal(r);
  const cim::Param* job = r.Out(schema::MethodOut::kJob);
  if (!job || job->value.refs.empty()) {
    return Status::Failed(std::string(method) + " answered 4096 without its Job");
  }
  return AwaitJob(job->value.refs[0]);
}

Status CimCutHost::AwaitJob(const cim::ObjectPath& job) {
  Env* env = Env::Default();
  cim_->set_timeout(std::chrono::duration_cast<std::chrono::milliseconds>(step_timeout_));
  const cim::KeyBinding* key = job.Key(Job::kInstanceID);
  const std::string what = "its job " + (key ? key->value : std::string("?"));
  Duration interval = kFirstLook;
  auto answered = env->Now(), moved = env->Now();
  int64_t percent = -1;
  while (true) {
    Result<cim::Instance> j = cim_->GetInstance(job);
    const auto now = env->Now();
    if (j.ok()) {
      if (Ended(Number(*j, Job::kJobState))) return OutcomeOf(*j);
      answered = now;
      if (const int64_t p = Number(*j, Job::kPercentComplete); p != percent) {
        percent = p;
        moved = now;
      }
    }
    // One look that fails is not the end of an export that takes hours: a
    // host that is gone answers none for the step timeout.
    if (!j.ok() && now - answered > step_timeout_) {
      return j.status().Annotate("following " + what);
    }
    if (now - moved > kJobStall) {
      return Status::Timeout(
          what + " stayed at " + std::to_string(percent) + "% for " +
          std::to_string(std::chrono::duration_cast<std::chrono::hours>(kJobStall).count()) +
          " hours; it may still run on the host");
    }
    env->SleepFor(interval);
    interval = std::min<Duration>(interval * 2, kLongestLook);
  }
}

Status CimCutHost::RemoveExport(const std::string& snapshot_id, const std::string& directory) {
  using R = HC::RemoveExportPart;
  return Call(R::kMethod, snapshot_id, step_timeout_,
              {{R::kExportDirectory, "string", cim::Value::Scalar(directory)}})
      .status();
}

Status CimCutHost::ValidateConvert(const std::string& snapshot_id) {
  return Call(HC::ValidateConvertPart::kMethod, snapshot_id, step_timeout_).status();
}

Status CimCutHost::Convert(const std::string& snapshot_id, const std::string& rp_id) {
  using C = HC::ConvertPart;
  VMG_ASSIGN_OR_RETURN(cim::Response r,
                       Ask(C::kMethod, snapshot_id, step_timeout_,
                           {{HC::kReferencePointID, "string", cim::Value::Scalar(rp_id)}}));
  return Finished(C::kMethod, r);
}

Status CimCutHost::ValidateApply(const std::string& snapshot_id) {
  return Call(HC::ValidateApplyPart::kMethod, snapshot_id, step_timeout_).status();
}

Status CimCutHost::PrepareApply(const std::string& snapshot_id) {
  return Call(HC::PrepareApplyPart::kMethod, snapshot_id, step_timeout_).status();
}

Status CimCutHost::CommitApply(const std::string& snapshot_id) {
  return Call(HC::CommitApplyPart::kMethod, snapshot_id, step_timeout_).status();
}

Status CimCutHost::AbortApply(const std::string& snapshot_id) {
  return Call(HC::AbortApplyPart::kMethod, snapshot_id, step_timeout_).status();
}

Status CimCutHost::DestroyReferencePoint(const std::string& rp_id) {
  return Call(HC::DestroyReferencePointPart::kMethod, "", step_timeout_,
              {{HC::kReferencePointID, "string", cim::Value::Scalar(rp_id)}})
      .status();
}

Result<cim::Response> CimCutHost::AskBackupService(const std::string& method,
                                                   std::vector<cim::OutParam> args) {
  cim_->set_timeout(std::chrono::duration_cast<std::chrono::milliseconds>(step_timeout_));
  if (backup_service_.class_name.empty()) {
    VMG_ASSIGN_OR_RETURN(auto found, cim_->EnumerateInstances(BS::kClass));
    if (found.empty())
      return Status::NotSupported("its vmgroupd serves no " + std::string(BS::kClass));
    backup_service_ = found[0].path;
  }
  return cim_->Invoke(backup_service_, method, args);
}

Result<engine::BackupSession> CimCutHost::BeginBackup(const engine::HostBackupRequest& request) {
  using B = BS::BeginBackup;
  const auto idle = std::chrono::duration_cast<std::chrono::seconds>(request.idle_timeout);
  std::vector<cim::OutParam> args = {
      RefArg(B::kCollection,
             KeyRef(schema::VirtualSystemCollection::kClass,
                    schema::VirtualSystemCollection::kCollectionID, request.collection_id)),
      RefArg(B::kSnapshotCollection,
             KeyRef(schema::SnapshotCollection::kClass, schema::SnapshotCollection::kCollectionID,
                    request.snapshot_id)),
      {B::kIdleTimeout, "uint32", cim::Value::Scalar(std::to_string(idle.count()))},
      {B::kTransport, "uint16",
       cim::Value::Scalar(std::to_string(request.transport == engine::BackupTransport::kTcp
                                             ? schema::BackupTransport::kTcp
                                             : schema::BackupTransport::kUnix))}};
  if (!request.incremental_from.empty()) {
    args.push_back(
        RefArg(B::kBaseReferencePointCollection,
               KeyRef(schema::ReferencePointCollection::kClass,
                      schema::ReferencePointCollection::kCollectionID, request.incremental_from)));
  }
  VMG_ASSIGN_OR_RETURN(cim::Response r, AskBackupService(B::kMethod, std::move(args)));
  if (r.return_value != kRcJobStarted) return Refusal(r);
  const cim::Param* job = r.Out(schema::MethodOut::kJob);
  const cim::Param* session = r.Out(B::kResultingBackupSession);
  if (!job || job->value.refs.empty() || !session || session->value.refs.empty()) {
    return Status::Failed(std::string(B::kMethod) + " answered without its Job or session");
  }
  const cim::KeyBinding* key = session->value.refs[0].Key(Session::kInstanceID);
  if (!key) return Status::Failed(std::string(B::kMethod) + " answered a session with no id");
  const std::string id = key->value;
  // The session serves once its job has taken it that far; a job that
  // ends first failed (or the session ended at once).
  Env* env = Env::Default();
  const auto give_up = env->Now() + step_timeout_;
  Duration interval = kFirstLook;
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool serving, BackupServing(id));
    if (serving) break;
    VMG_ASSIGN_OR_RETURN(cim::Instance j, cim_->GetInstance(job->value.refs[0]));
    if (Ended(Number(j, Job::kJobState))) {
      VMG_RETURN_IF_ERROR(OutcomeOf(j));
      return Status::Failed("its backup session " + id + " ended as it began");
    }
    if (env->Now() > give_up) {
      (void)EndBackup(id);
      return Status::Timeout(
          "its backup session " + id + " did not serve within " +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(step_timeout_).count()) +
          " s");
    }
    env->SleepFor(interval);
    interval = std::min<Duration>(interval * 2, kLongestLook);
  }
  VMG_ASSIGN_OR_RETURN(auto members, BackupMembers(id));
  return engine::BackupSession{.id = id,
                               .collection_id = request.collection_id,
                               .snapshot_id = request.snapshot_id,
                               .incremental_from = request.incremental_from,
                               .members = std::move(members)};
}

Result<storage::MarkedRanges> CimCutHost::BackupChanges(const std::string& session_id,
                                                        const std::string& vm_id, int disk,
                                                        uint64_t offset, uint64_t length) {
  using C = BS::GetVirtualDiskChanges;
  VMG_ASSIGN_OR_RETURN(
      cim::Response r,
      AskBackupService(
          C::kMethod,
          {RefArg(C::kBackupSession, KeyRef(Session::kClass, Session::kInstanceID, session_id)),
           {C::kVirtualSystemIdentifier, "string", cim::Value::Scalar(vm_id)},
           {C::kDiskIndex, "uint32", cim::Value::Scalar(std::to_string(disk))},
           {C::kByteOffset, "uint64", cim::Value::Scalar(std::to_string(offset))},
           {C::kByteLength, "uint64", cim::Value::Scalar(std::to_string(length))}}));
  if (r.return_value != kRcCompleted) return Refusal(r);
  VMG_ASSIGN_OR_RETURN(auto offsets, Numbers(r, C::kChangedByteOffsets));
  VMG_ASSIGN_OR_RETURN(auto lengths, Numbers(r, C::kChangedByteLengths));
  if (offsets.size() != lengths.size()) {
    return Status::Failed("the answer's offsets and lengths are not one per range");
  }
  storage::MarkedRanges out{.processed = static_cast<uint64_t>(std::strtoull(
                                Text(r, C::kProcessedByteLength).c_str(), nullptr, 10))};
  for (size_t i = 0; i < offsets.size(); ++i) {
    out.ranges.push_back({static_cast<uint64_t>(offsets[i]), static_cast<uint64_t>(lengths[i])});
  }
  return out;
}

Result<std::vector<engine::BackupMember>> CimCutHost::BackupMembers(const std::string& session_id) {
  VMG_ASSIGN_OR_RETURN(auto disks, cim_->EnumerateInstances(Disk::kClass));
  std::vector<engine::BackupMember> members;
  for (const auto& d : disks) {
    const cim::Instance& i = d.instance;
    if (Str(i, Disk::kSessionID) != session_id) continue;
    const std::string vm = Str(i, Disk::kVirtualSystemIdentifier);
    auto m = std::find_if(members.begin(), members.end(),
                          [&](const engine::BackupMember& b) { return b.vm_id == vm; });
    if (m == members.end()) {
      members.push_back({.vm_id = vm, .vm_name = Str(i, Disk::kVirtualSystemName)});
      m = members.end() - 1;
    }
    m->disks.push_back({.index = static_cast<int>(Number(i, Disk::kDiskIndex)),
                        .export_name = Str(i, Disk::kExportName),
                        .socket = Str(i, Disk::kSocketPath),
                        .uri = Str(i, Disk::kURI),
                        .size = static_cast<uint64_t>(Number(i, Disk::kSize)),
                        .context = Str(i, Disk::kMetadataContext),
                        .full_read_reason = Str(i, Disk::kFullReadReason)});
  }
  return members;
}

Result<bool> CimCutHost::BackupServing(const std::string& session_id) {
  cim_->set_timeout(std::chrono::duration_cast<std::chrono::milliseconds>(step_timeout_));
  auto s = cim_->GetInstance(KeyRef(Session::kClass, Session::kInstanceID, session_id));
  if (s.status().code() == Code::kNotFound) return false;
  VMG_RETURN_IF_ERROR(s.status());
  return true;
}

Status CimCutHost::EndBackup(const std::string& session_id) {
  using E = BS::EndBackup;
  VMG_ASSIGN_OR_RETURN(
      cim::Response r,
      AskBackupService(
          E::kMethod,
          {RefArg(E::kBackupSession, KeyRef(Session::kClass, Session::kInstanceID, session_id))}));
  Status ended = Finished(E::kMethod, r);
  if (ended.ok()) return ended;
  // Refused because it ended meanwhile (by itself, once idle): done.
  auto serving = BackupServing(session_id);
  return serving.ok() && !*serving ? Status::Ok() : ended;
}

}  // namespace vmgroup::remote
