// The coordinator inside the engine, over the fake driver for this host's
// members and scripted peers for the others: a group's members on other
// hosts, a snapshot across hosts recorded first and Complete only once
// every host committed, any failure taken back everywhere, a coordinator
// that dies at every phase leaving nothing after its restart, and what is
// refused for such groups. Over real daemons in network namespaces:
// tests/integration/net_hosts_test.
#include "engine/spanning_snapshots.h"

#include <future>
#include <mutex>
#include <thread>

#include "base/ids.h"
#include "engine/export_manifest.h"
#include "engine/fake_group_test.h"
#include "engine/fault_points.h"

namespace vmgroup::engine {
namespace {

using namespace std::chrono_literals;

// One peer: the parts it holds by snapshot id and the stage each reached,
// the steps it was asked, and what it is told to fail.
struct FakePeer {
  std::mutex mu;
  std::map<std::string, std::string> parts;           // snapshot id -> last step done
  std::vector<std::string> steps;                     // "<step> <snapshot id>"
  std::set<std::string> members;                      // "<group id>/<vm id>" (Join, Leave)
  std::map<std::string, std::string> points;          // reference point id -> its snapshot's id
  std::vector<std::string> bases;                     // each export's base ("": in full)
  HostCutRequest prepared;                            // the latest Prepare's request
  std::string fail_at;                                // a step that fails
  bool unreachable = false;                           // every call fails: Unavailable
  std::function<void()> exporting;                    // called as it exports, unlocked
  std::map<std::string, HostBackupRequest> sessions;  // backup session id -> what it serves
  int sessions_begun = 0;
  std::set<std::string> held;        // parts of applies prepared, by snapshot id
  std::vector<std::string> applied;  // parts of applies committed, in order
};

class FakeCutHost final : public CutHost {
 public:
  FakeCutHost(std::string name, FakePeer* peer) : name_(std::move(name)), peer_(peer) {}
  std::string name() const override { return "host " + name_; }
  Status Prepare(const HostCutRequest& r) override {
    VMG_RETURN_IF_ERROR(Step("prepare", r.snapshot_id));
    std::lock_guard l(peer_->mu);
    peer_->prepared = r;
    return Status::Ok();
  }
  Result<HostLease> Pause(const std::string& id, Duration, bool) override {
    VMG_RETURN_IF_ERROR(Step("pause", id));
    return Lease("paused");
  }
  Status Cut(const std::string& id) override { return Step("cut", id); }
  Result<HostLease> Resume(const std::string& id) override {
    VMG_RETURN_IF_ERROR(Step("resume", id));
    return Lease("resumed");
  }
  Status Commit(const std::string& id) override { return Step("commit", id); }
  Status Abort(const std::string& id) override {
    std::lock_guard l(peer_->mu);
    peer_->steps.push_back("abort " + id);
    if (peer_->unreachable) return Status::Unavailable(name_ + " cannot be reached");
    peer_->parts.erase(id);
    return Status::Ok();
  }
  // An export is its folder with a manifest naming the snapshot in it.
  Status Export(const std::string& id, const std::string& dir, bool,
                const std::string& base) override {
    VMG_RETURN_IF_ERROR(Step("export", id));
    {
      std::lock_guard l(peer_->mu);
      peer_->bases.push_back(base);
    }
    if (peer_->exporting) peer_->exporting();
    VMG_RETURN_IF_ERROR(Env::Default()->CreateDirs(dir));
    return Env::Default()->WriteFile(dir + "/" + kManifestFile, id);
  }
  Status RemoveExport(const std::string& id, const std::string& dir) override {
    VMG_RETURN_IF_ERROR(Step("remove-export", id));
    VMG_RETURN_IF_ERROR(Env::Default()->RemoveFile(dir + "/" + kManifestFile));
    return Env::Default()->RemoveDir(dir);
  }
  // A part converted is a reference point in `points`, its part gone.
  Status ValidateConvert(const std::string& id) override {
    return RequirePart("validate-convert", id);
  }
  Status Convert(const std::string& id, const std::string& rp) override {
    std::lock_guard l(peer_->mu);
    VMG_RETURN_IF_ERROR(Log("convert", id));
    if (peer_->points.count(rp) > 0) return Status::Ok();  // done already
    if (peer_->parts.count(id) == 0) return Status::NotFound("no part " + id);
    peer_->parts.erase(id);
    peer_->points[rp] = id;
    return Status::Ok();
  }
  Status DestroyReferencePoint(const std::string& rp) override {
    std::lock_guard l(peer_->mu);
    VMG_RETURN_IF_ERROR(Log("destroy-rp", rp));
    peer_->points.erase(rp);
    return Status::Ok();
  }
  // A backup session serves its part's one member's one disk.
  Result<BackupSession> BeginBackup(const HostBackupRequest& r) override {
    std::lock_guard l(peer_->mu);
    VMG_RETURN_IF_ERROR(Log("begin-backup", r.snapshot_id));
    if (peer_->parts.count(r.snapshot_id) == 0) return Status::NotFound("no part " + r.snapshot_id);
    const std::string id = name_ + "-session-" + std::to_string(++peer_->sessions_begun);
    peer_->sessions[id] = r;
    return BackupSession{
        .id = id,
        .snapshot_id = r.snapshot_id,
        .members = {{.vm_id = "u-" + name_,
                     .vm_name = "vm-" + name_,
                     .disks = {{.uri = "nbd://" + name_ + "/disk0",
                                .context = r.incremental_from.empty()
                                               ? ""
                                               : "qemu:dirty-bitmap:" + r.incremental_from}}}}};
  }
  Result<bool> BackupServing(const std::string& id) override {
    std::lock_guard l(peer_->mu);
    if (peer_->unreachable) return Status::Unavailable(name_ + " cannot be reached");
    return peer_->sessions.count(id) > 0;
  }
  Status EndBackup(const std::string& id) override {
    std::lock_guard l(peer_->mu);
    VMG_RETURN_IF_ERROR(Log("end-backup", id));
    peer_->sessions.erase(id);
    return Status::Ok();
  }
  // Its disk changed in its first 64 KiB.
  Result<storage::MarkedRanges> BackupChanges(const std::string& id, const std::string& vm,
                                              int disk, uint64_t, uint64_t) override {
    std::lock_guard l(peer_->mu);
    VMG_RETURN_IF_ERROR(Log("changes", id));
    if (peer_->sessions.count(id) == 0 || vm != "u-" + name_ || disk != 0) {
      return Status::NotFound("no such disk in session " + id);
    }
    return storage::MarkedRanges{.ranges = {{0, 64 << 10}}, .processed = 1 << 20};
  }
  // An apply's part is held once prepared, until committed (applied) or
  // aborted; each answers OK when given again.
  Status ValidateApply(const std::string& id) override { return RequirePart("validate-apply", id); }
  Status PrepareApply(const std::string& id) override {
    std::lock_guard l(peer_->mu);
    VMG_RETURN_IF_ERROR(Log("prepare-apply", id));
    peer_->held.insert(id);
    return Status::Ok();
  }
  Status CommitApply(const std::string& id) override {
    std::lock_guard l(peer_->mu);
    VMG_RETURN_IF_ERROR(Log("commit-apply", id));
    if (peer_->held.erase(id) > 0) peer_->applied.push_back(id);
    return Status::Ok();
  }
  Status AbortApply(const std::string& id) override {
    std::lock_guard l(peer_->mu);
    VMG_RETURN_IF_ERROR(Log("abort-apply", id));
    peer_->held.erase(id);
    return Status::Ok();
  }

 private:
  Status Step(const std::string& step, const std::string& id) {
    std::lock_guard l(peer_->mu);
    VMG_RETURN_IF_ERROR(Log(step, id));
    peer_->parts[id] = step;
    return Status::Ok();
  }
  // Records `step` of `id`, a check alone: NotFound without its part.
  Status RequirePart(const std::string& step, const std::string& id) {
    std::lock_guard l(peer_->mu);
    VMG_RETURN_IF_ERROR(Log(step, id));
    if (peer_->parts.count(id) == 0) return Status::NotFound("no part " + id);
    return Status::Ok();
  }
  // Records `step` of `id`, and fails it as the peer is told to. REQUIRES: peer_->mu held.
  Status Log(const std::string& step, const std::string& id) {
    peer_->steps.push_back(step + " " + id);
    if (peer_->unreachable) return Status::Unavailable(name_ + " cannot be reached");
    if (step == peer_->fail_at) return Status::Failed(step + " refused");
    return Status::Ok();
  }
  HostLease Lease(const std::string& state) {
    const int64_t now = Env::Default()->NowMicros();
    return {.vm_ids = {"u-" + name_},
            .members = {{.paused_at_us = now, .pause_us = 700, .cut_time_us = now}},
            .lease_state = state,
            .host_time_us = now};
  }

  const std::string name_;
  FakePeer* const peer_;
};

class FakePeers final : public Peers {
 public:
  Status Known(const std::string& host) override {
    if (peers.count(host) == 0) return Status::NotFound("no peer named " + host);
    return Status::Ok();
  }
  Result<std::unique_ptr<CutHost>> Connect(const std::string& host) override {
    VMG_RETURN_IF_ERROR(Known(host));
    return std::unique_ptr<CutHost>(new FakeCutHost(host, &peers.at(host)));
  }
  Status Join(const std::string& host, const std::string& group_id, const std::string&,
              const std::string& vm_id) override {
    VMG_RETURN_IF_ERROR(Known(host));
    FakePeer& p = peers.at(host);
    std::lock_guard l(p.mu);
    if (p.unreachable) return Status::Unavailable(host + " cannot be reached");
    p.members.insert(group_id + "/" + vm_id);
    return Status::Ok();
  }
  Status Leave(const std::string& host, const std::string& group_id,
               const std::string& vm_id) override {
    VMG_RETURN_IF_ERROR(Known(host));
    FakePeer& p = peers.at(host);
    std::lock_guard l(p.mu);
    if (p.unreachable) return Status::Unavailable(host + " cannot be reached");
    p.members.erase(group_id + "/" + vm_id);
    return Status::Ok();
  }

  std::map<std::string, FakePeer> peers;
};

class SpanningSnapshotsTest : public FakeGroupTest {
 protected:
  SpanningSnapshotsTest() {
    fake_peers_.peers["db1"];
    fake_peers_.peers["app1"];
    peers_ = &fake_peers_;
  }

  // `g` with one VM on each peer besides its own.
  void Span(const FakeGroup& g) {
    for (const char* host : {"db1", "app1"}) {
      ASSERT_TRUE(engine_->collections()
                      .AddRemoteMember({host, vm_on_[host] = NewGuid()}, g.collection_id)
                      .ok());
    }
  }
  SpanningSnapshots& spanning() { return engine_->snapshots().spanning(); }
  FakePeer& peer(const std::string& host) { return fake_peers_.peers.at(host); }
  std::vector<std::string> StepsOf(const std::string& host) {
    std::lock_guard l(peer(host).mu);
    return peer(host).steps;
  }
  std::map<std::string, std::string> PointsOf(const std::string& host) {
    std::lock_guard l(peer(host).mu);
    return peer(host).points;
  }
  bool HoldsPart(const std::string& host, const std::string& id) {
    std::lock_guard l(peer(host).mu);
    return peer(host).parts.count(id) > 0;
  }
  // Waits until `list` of the coordinator's catalog is empty (its recovery
  // runs in the background): at most 10 s.
  template <typename List>
  bool AwaitNone(List list) {
    for (int i = 0; i < 1000; ++i) {
      auto all = list(engine_->catalog());
      if (all.ok() && all->empty()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  // No snapshot across hosts recorded.
  bool AwaitNoneRecorded() {
    return AwaitNone([](catalog::Catalog& c) { return c.ListSpanning(); });
  }

  // The id of a snapshot of a group of `n` VMs here and one on each peer;
  // empty, and a test failure, if it cannot be taken.
  std::string SnapshotAcross(int n) {
    auto g = MakeGroup(n);
    Span(g);
    auto s = engine_->snapshots().Create({.collection_id = g.collection_id});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? s->id : "";
  }
  // A reference point of `g` (spanning hosts) whose snapshot was exported
  // in full into Path("mon") first, as a backup cycle begins: what
  // incremental exports build on.
  Result<catalog::ReferencePointRecord> ExportedReferencePoint(const FakeGroup& g) {
    VMG_ASSIGN_OR_RETURN(auto first,
                         engine_->snapshots().Create({.collection_id = g.collection_id}));
    VMG_RETURN_IF_ERROR(
        spanning().Export({.snapshot_id = first.id, .directory = Path("mon")}).status());
    return engine_->snapshots().ConvertToReferencePoint(first.id);
  }
  // That export `dir` across hosts builds on reference point `rp_id`: this
  // host's part incremental on it, each peer asked to export on it after
  // the full export of its snapshot (ExportedReferencePoint's).
  void ExpectBuiltOn(const std::string& dir, const std::string& rp_id) {
    auto here = ReadManifestIn(dir + "/localhost");
    ASSERT_TRUE(here.ok()) << here.status().ToString();
    EXPECT_EQ(here->base.reference_point_id, rp_id) << "this host's part is incremental";
    for (const char* host : {"db1", "app1"}) {
      std::lock_guard l(peer(host).mu);
      EXPECT_EQ(peer(host).bases, (std::vector<std::string>{"", rp_id})) << host;
    }
  }
  // No export in progress recorded.
  bool AwaitNoExportUnderWay() {
    return AwaitNone([](catalog::Catalog& c) { return c.ListExportIntents(); });
  }

  FakePeers fake_peers_;
  std::map<std::string, std::string> vm_on_;  // host -> its member's id
};

TEST_F(SpanningSnapshotsTest, MembersOnOtherHostsJoinTheHostsPartAndAreListedByHost) {
  auto g = MakeGroup(1);
  Span(g);
  auto group = engine_->catalog().GetCollection(g.collection_id);
  ASSERT_EQ(group->remote_members.size(), 2u);
  EXPECT_EQ(group->remote_members[0], (catalog::RemoteMember{"db1", vm_on_["db1"]}));
  EXPECT_EQ(peer("db1").members.count(g.collection_id + "/" + vm_on_["db1"]), 1u);
  CollectionManager& groups = engine_->collections();
  EXPECT_EQ(groups.AddRemoteMember({"db1", vm_on_["db1"]}, g.collection_id).code(),
            Code::kAlreadyExists);
  EXPECT_EQ(groups.AddRemoteMember({"nowhere", NewGuid()}, g.collection_id).code(),
            Code::kNotFound);
  EXPECT_EQ(groups.AddRemoteMember({"db1", "not-a-uuid"}, g.collection_id).code(),
            Code::kInvalidArgument);
  peer("app1").unreachable = true;
  EXPECT_EQ(groups.AddRemoteMember({"app1", NewGuid()}, g.collection_id).code(),
            Code::kUnavailable);
  EXPECT_EQ(engine_->catalog().GetCollection(g.collection_id)->remote_members.size(), 2u)
      << "a host that cannot be reached changes nothing";
  // A group across hosts joins no group of groups, nor the other way round.
  auto top = groups.DefineCollection("top", "", catalog::CollectionType::kCollections);
  EXPECT_EQ(groups.AddMember(g.collection_id, *top).code(), Code::kNotSupported);
  EXPECT_EQ(groups.DestroyCollection(g.collection_id).code(), Code::kInvalidState);
  ASSERT_TRUE(groups.RemoveRemoteMember({"db1", vm_on_["db1"]}, g.collection_id).ok());
  EXPECT_EQ(peer("db1").members.size(), 0u) << "it left the host's part too";
  EXPECT_EQ(groups.RemoveRemoteMember({"db1", vm_on_["db1"]}, g.collection_id).code(),
            Code::kNotFound);
}

TEST_F(SpanningSnapshotsTest, ASnapshotIsCompleteOnlyOnceEveryHostCommitted) {
  auto g = MakeGroup(2);
  Span(g);
  const auto before = Disks(g);
  const std::string id = NewGuid();
  auto s = engine_->snapshots().Create({.collection_id = g.collection_id, .id = id});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->id, id);
  EXPECT_EQ(s->state, catalog::SnapshotState::kComplete);
  EXPECT_EQ(s->members.size(), 2u) << "this host's part is the group snapshot here";
  auto record = engine_->catalog().GetSpanning(id);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->state, catalog::SpanningState::kComplete);
  ASSERT_EQ(record->parts.size(), 3u);
  EXPECT_EQ(record->parts[0].host, "");
  EXPECT_EQ(record->parts[0].vm_ids, g.vm_ids);
  EXPECT_EQ(record->parts[1].host, "db1");
  EXPECT_EQ(record->parts[1].vm_ids, std::vector<std::string>{"u-db1"});
  EXPECT_EQ(record->parts[1].longest_pause_us, 700);
  EXPECT_GT(record->parts[1].latest_cut_us, 0);
  EXPECT_GT(record->window_us, 0);
  for (const char* host : {"db1", "app1"}) {
    EXPECT_EQ(StepsOf(host), (std::vector<std::string>{"prepare " + id, "pause " + id,
                                                       "resume " + id, "commit " + id}))
        << host;
  }
  EXPECT_NE(Disks(g), before) << "this host's members were cut";
  ExpectConsistent();

  // Destroyed: every host destroys its part, this one too.
  ASSERT_TRUE(engine_->snapshots().Destroy({.snapshot_id = id}).ok());
  EXPECT_FALSE(HoldsPart("db1", id));
  EXPECT_FALSE(HoldsPart("app1", id));
  EXPECT_EQ(engine_->catalog().GetSnapshot(id).status().code(), Code::kNotFound);
  EXPECT_EQ(engine_->catalog().GetSpanning(id).status().code(), Code::kNotFound);
  ExpectConsistent();
}

TEST_F(SpanningSnapshotsTest, AHostsFailureTakesThePartBackEverywhere) {
  auto g = MakeGroup(1);
  Span(g);
  const auto before = Disks(g);
  peer("app1").fail_at = "pause";
  const std::string id = NewGuid();
  auto s = engine_->snapshots().Create({.collection_id = g.collection_id, .id = id});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("pausing on host app1: pause refused"), std::string::npos)
      << s.status().ToString();
  EXPECT_FALSE(HoldsPart("db1", id));
  EXPECT_FALSE(HoldsPart("app1", id));
  EXPECT_EQ(engine_->catalog().GetSpanning(id).status().code(), Code::kNotFound);
  EXPECT_EQ(engine_->catalog().GetSnapshot(id).status().code(), Code::kNotFound);
  EXPECT_EQ(Disks(g), before);
  ExpectConsistent();
}

TEST_F(SpanningSnapshotsTest, ACancelledSnapshotIsTakenBackOnEveryHostBeforeAnyPause) {
  auto g = MakeGroup(1);
  Span(g);
  const auto before = Disks(g);
  const std::string id = NewGuid();
  int polls = 0;
  auto s = engine_->snapshots().Create(
      {.collection_id = g.collection_id, .id = id, .cancelled = [&] { return ++polls > 0; }});
  ASSERT_EQ(s.status().code(), Code::kCancelled) << s.status().ToString();
  EXPECT_EQ(polls, 1);
  for (const char* host : {"db1", "app1"}) {
    EXPECT_EQ(StepsOf(host),
              (std::vector<std::string>{"prepare " + id, "abort " + id, "abort " + id}))
        << host << ": prepared, never paused, then taken back (once more by Take's undo)";
    EXPECT_FALSE(HoldsPart(host, id)) << host;
  }
  EXPECT_EQ(engine_->catalog().GetSpanning(id).status().code(), Code::kNotFound);
  EXPECT_EQ(engine_->catalog().GetSnapshot(id).status().code(), Code::kNotFound);
  EXPECT_EQ(Disks(g), before);
  ExpectConsistent();
}

TEST_F(SpanningSnapshotsTest, AHostThatCannotBeReachedKeepsTheRecordUntilItAnswers) {
  auto g = MakeGroup(1);
  Span(g);
  peer("db1").fail_at = "commit";
  peer("app1").unreachable = true;
  const std::string id = NewGuid();
  auto s = engine_->snapshots().Create({.collection_id = g.collection_id, .id = id});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("still being taken back"), std::string::npos)
      << s.status().ToString();
  auto record = engine_->catalog().GetSpanning(id);
  ASSERT_TRUE(record.ok()) << "kept for the retries";
  EXPECT_EQ(record->state, catalog::SpanningState::kUndoing);
  peer("app1").unreachable = false;
  EXPECT_EQ(spanning().Recover(), 0);
  EXPECT_EQ(engine_->catalog().GetSpanning(id).status().code(), Code::kNotFound);
  EXPECT_EQ(StepsOf("app1").back(), "abort " + id);
  ExpectConsistent();
}

TEST_F(SpanningSnapshotsTest, ACoordinatorKilledAtAnyPhaseLeavesNothingOnAnyHostOnceRestarted) {
  auto g = MakeGroup(2);
  Span(g);
  const auto before = Disks(g);
  for (std::string_view point : fault::kSpanAll) {
    SCOPED_TRACE(std::string(point));
    const std::string id = NewGuid();
    // The subject of a host's commit is its name: the first host's (this one).
    const std::string subject = point == fault::kSpanHostCommitted ? "this host" : id;
    ASSERT_TRUE(CrashAt(
        point,
        [&](Engine& e) {
          (void)e.snapshots().Create({.collection_id = g.collection_id, .id = id});
        },
        subject));
    // Restarted: the snapshot is taken back on every host, in the background.
    ASSERT_TRUE(AwaitNoneRecorded());
    EXPECT_FALSE(HoldsPart("db1", id));
    EXPECT_FALSE(HoldsPart("app1", id));
    EXPECT_EQ(engine_->catalog().GetSnapshot(id).status().code(), Code::kNotFound);
    EXPECT_EQ(Disks(g), before);
    ExpectConsistent();
  }
}

// An apply across hosts: every host checks, then prepares and holds its
// part; once all did, the decision is recorded and every host commits.
TEST_F(SpanningSnapshotsTest, AnApplyTakesEveryHostsPartBackToTheSnapshot) {
  auto g = MakeGroup(2);
  Span(g);
  auto s = engine_->snapshots().Create({.collection_id = g.collection_id});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const std::string id = s->id;
  const auto before = Disks(g);
  ASSERT_TRUE(engine_->snapshots().ValidateApply({.snapshot_id = id}).ok());
  auto applied = engine_->snapshots().Apply({.snapshot_id = id});
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ(applied->id, id);
  for (const char* host : {"db1", "app1"}) {
    const auto steps = StepsOf(host);
    ASSERT_GE(steps.size(), 3u);
    EXPECT_EQ(std::vector<std::string>(steps.end() - 3, steps.end()),
              (std::vector<std::string>{"validate-apply " + id, "prepare-apply " + id,
                                        "commit-apply " + id}))
        << host;
    std::lock_guard l(peer(host).mu);
    EXPECT_EQ(peer(host).applied, std::vector<std::string>{id}) << host;
  }
  const auto now = Disks(g);
  for (const auto& m : s->members) {
    EXPECT_NE(now.at(m.vm_id), before.at(m.vm_id)) << "on a new overlay";
    EXPECT_EQ(Vm(m.vm_id).last_applied, m.id);
    EXPECT_EQ(Vm(m.vm_id).power, catalog::Power::kOff) << "left off, as an apply on one host";
  }
  EXPECT_EQ(engine_->catalog().GetSpanning(id)->state, catalog::SpanningState::kComplete);
  EXPECT_TRUE(engine_->snapshots().host_applies().Held().empty());
  EXPECT_TRUE(engine_->catalog().ListApplyIntents()->empty());
  ExpectConsistent();
}

// A host that refuses its part's checks, or fails to prepare it: every
// host takes its part back, and the group is as it was.
TEST_F(SpanningSnapshotsTest, AHostThatCannotApplyItsPartLeavesEveryMemberAsItWas) {
  auto g = MakeGroup(2);
  Span(g);
  auto s = engine_->snapshots().Create({.collection_id = g.collection_id});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const auto before = Disks(g);
  for (const char* step : {"validate-apply", "prepare-apply"}) {
    SCOPED_TRACE(step);
    peer("app1").fail_at = step;
    auto applied = engine_->snapshots().Apply({.snapshot_id = s->id});
    ASSERT_FALSE(applied.ok());
    EXPECT_NE(applied.status().message().find("host app1"), std::string::npos)
        << applied.status().ToString();
    for (const char* host : {"db1", "app1"}) {
      std::lock_guard l(peer(host).mu);
      EXPECT_TRUE(peer(host).held.empty()) << host;
      EXPECT_TRUE(peer(host).applied.empty()) << host;
    }
    EXPECT_EQ(Disks(g), before);
    for (const auto& id : g.vm_ids) {
      EXPECT_EQ(Vm(id).power, catalog::Power::kRunning);
    }
    EXPECT_EQ(engine_->catalog().GetSpanning(s->id)->state, catalog::SpanningState::kComplete);
    EXPECT_TRUE(engine_->catalog().ListApplyIntents()->empty());
    ExpectConsistent();
  }
  const auto steps = StepsOf("db1");
  EXPECT_EQ(std::count(steps.begin(), steps.end(), "prepare-apply " + s->id), 1)
      << "no host prepared while one refused its checks";
}

// Decided, an apply is finished, never taken back: a host that missed its
// commit is told again until it answers; meanwhile the snapshot is being
// applied (no destroy).
TEST_F(SpanningSnapshotsTest, AnApplyThatMissedAHostsCommitIsFinishedThereOnceItAnswers) {
  auto g = MakeGroup(1);
  Span(g);
  auto s = engine_->snapshots().Create({.collection_id = g.collection_id});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  peer("app1").fail_at = "commit-apply";
  auto applied = engine_->snapshots().Apply({.snapshot_id = s->id});
  ASSERT_EQ(applied.status().code(), Code::kUnavailable) << applied.status().ToString();
  EXPECT_NE(applied.status().message().find("host app1"), std::string::npos);
  EXPECT_EQ(engine_->catalog().GetSpanning(s->id)->state, catalog::SpanningState::kApplyCommitting);
  EXPECT_EQ(engine_->snapshots().ValidateDestroy({.snapshot_id = s->id}).code(),
            Code::kInvalidState);
  EXPECT_EQ(Vm(g.vm_ids[0]).last_applied, s->members[0].id) << "this host committed";
  EXPECT_TRUE(engine_->snapshots().Get(s->id).ok()) << "still listed";
  peer("app1").fail_at.clear();
  EXPECT_EQ(spanning().Recover(), 0);
  EXPECT_EQ(engine_->catalog().GetSpanning(s->id)->state, catalog::SpanningState::kComplete);
  std::lock_guard l(peer("app1").mu);
  EXPECT_EQ(peer("app1").applied, std::vector<std::string>{s->id});
}

// The coordinator killed at each point of an apply: once back, an apply
// not decided is taken back on every host (this one's held part too), and
// one decided is committed on every host.
TEST_F(SpanningSnapshotsTest, ACoordinatorKilledMidApplyFinishesItEitherWayOnceBack) {
  auto g = MakeGroup(2);
  Span(g);
  for (std::string_view point : fault::kSpanApplyAll) {
    SCOPED_TRACE(std::string(point));
    // Each round's VMs run (the last round's apply left them off).
    for (const auto& vm : g.vm_ids) {
      if (Vm(vm).power == catalog::Power::kOff) {
        ASSERT_TRUE(engine_->vms().Start(vm).ok());
      }
    }
    auto s = engine_->snapshots().Create({.collection_id = g.collection_id});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    const std::string id = s->id;
    const auto before = Disks(g);
    ASSERT_TRUE(CrashAt(
        point, [&](Engine& e) { (void)e.snapshots().Apply({.snapshot_id = id}); }, id));
    for (int i = 0; i < 1000; ++i) {
      auto now = engine_->catalog().GetSpanning(id);
      if (now.ok() && now->state == catalog::SpanningState::kComplete) break;
      std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(spanning().Recover(), 0);
    const bool decided = point != fault::kSpanApplyPrepared;
    for (const auto& m : s->members) {
      EXPECT_EQ(Vm(m.vm_id).last_applied == m.id, decided) << m.vm_id;
      EXPECT_EQ(Vm(m.vm_id).power, decided ? catalog::Power::kOff : catalog::Power::kRunning);
    }
    if (!decided) {
      EXPECT_EQ(Disks(g), before);
    }
    for (const char* host : {"db1", "app1"}) {
      std::lock_guard l(peer(host).mu);
      EXPECT_TRUE(peer(host).held.empty()) << host;
      EXPECT_EQ(std::count(peer(host).applied.begin(), peer(host).applied.end(), id),
                decided ? 1 : 0)
          << host;
    }
    EXPECT_TRUE(engine_->snapshots().host_applies().Held().empty());
    ExpectConsistent();
  }
}

// A backup session across hosts: a snapshot across hosts taken for it, a
// session of every host's own on its part, all of them listed as one; its
// end ends each and converts or destroys the snapshot everywhere.
TEST_F(SpanningSnapshotsTest, ABackupSessionAcrossHostsServesEveryHostsPartAndEndsEverywhere) {
  auto g = MakeGroup(2);
  Span(g);
  SpanningBackups& backups = engine_->snapshots().spanning_backups();
  auto s = backups.Begin({.collection_id = g.collection_id}, 600s);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(backups.Has(s->id));
  EXPECT_TRUE(s->took_snapshot);
  ASSERT_EQ(s->members.size(), 4u) << "two here, one on each peer";
  std::map<std::string, int> by_host;
  for (const auto& m : s->members) ++by_host[m.host];
  EXPECT_EQ(by_host, (std::map<std::string, int>{{"", 2}, {"app1", 1}, {"db1", 1}}));
  auto record = engine_->catalog().GetSpanning(s->snapshot_id);
  ASSERT_TRUE(record.ok()) << "the session's snapshot is one across hosts";
  EXPECT_EQ(record->state, catalog::SpanningState::kComplete);
  for (const char* host : {"db1", "app1"}) {
    std::lock_guard l(peer(host).mu);
    ASSERT_EQ(peer(host).sessions.size(), 1u) << host;
    EXPECT_EQ(peer(host).sessions.begin()->second.snapshot_id, s->snapshot_id);
    EXPECT_EQ(peer(host).sessions.begin()->second.idle_timeout, 600s);
  }
  ASSERT_EQ(engine_->snapshots().backups().List().size(), 1u) << "this host's part serves";
  auto recorded = engine_->catalog().ListSpanningBackups();
  ASSERT_TRUE(recorded.ok() && recorded->size() == 1u);
  EXPECT_EQ((*recorded)[0].sessions.size(), 3u) << "every host's session, for a restart";
  // The changes of each disk, as the host that serves it answers.
  auto there = backups.Changes(s->id, "u-db1", 0, 0, 0);
  ASSERT_TRUE(there.ok()) << there.status().ToString();
  EXPECT_EQ(there->ranges, (std::vector<storage::ByteRange>{{0, 64 << 10}}));
  EXPECT_EQ(there->processed, uint64_t{1} << 20);
  auto here = backups.Changes(s->id, g.vm_ids[0], 0, 0, 0);
  ASSERT_TRUE(here.ok()) << here.status().ToString();
  ASSERT_EQ(here->ranges.size(), 1u) << "a full read: changed everywhere";
  EXPECT_EQ(here->ranges[0].length, here->processed);
  EXPECT_EQ(backups.Changes(s->id, "nobody", 0, 0, 0).status().code(), Code::kNotFound);
  Status refused = backups.Changes(s->id, "u-app1", 3, 0, 0).status();
  EXPECT_EQ(refused.code(), Code::kNotFound);
  EXPECT_NE(refused.message().find("host app1"), std::string::npos) << refused.ToString();

  // Ended into a reference point across hosts: the next session's base.
  const std::string rp_id = NewGuid();
  auto rp = backups.End({.id = s->id, .to_reference_point = true, .reference_point_id = rp_id});
  ASSERT_TRUE(rp.ok() && rp->has_value()) << rp.status().ToString();
  EXPECT_EQ((*rp)->id, rp_id);
  EXPECT_FALSE(backups.Has(s->id));
  EXPECT_TRUE(engine_->snapshots().backups().List().empty());
  EXPECT_TRUE(engine_->catalog().ListSpanningBackups()->empty());
  for (const char* host : {"db1", "app1"}) {
    EXPECT_TRUE(peer(host).sessions.empty()) << host;
    EXPECT_EQ(PointsOf(host).count(rp_id), 1u) << host;
  }

  // Incremental from it: every host publishes the changes since its part of it.
  auto next = backups.Begin({.collection_id = g.collection_id, .incremental_from = rp_id}, 60s);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  for (const auto& m : next->members) {
    if (m.host.empty()) continue;
    EXPECT_EQ(m.disks.at(0).context, "qemu:dirty-bitmap:" + rp_id) << m.host;
  }
  for (const auto& local : engine_->snapshots().backups().List()) {
    EXPECT_EQ(local.incremental_from, rp_id) << "this host's part too";
  }
  ASSERT_TRUE(backups.End({.id = next->id}).ok());
  EXPECT_FALSE(engine_->catalog().GetSpanning(next->snapshot_id).ok()) << "destroyed";
  EXPECT_FALSE(HoldsPart("db1", next->snapshot_id));
  EXPECT_FALSE(HoldsPart("app1", next->snapshot_id));
  EXPECT_EQ(engine_->catalog().GetSnapshot(next->snapshot_id).status().code(), Code::kNotFound);
  EXPECT_TRUE(engine_->snapshots().backups().List().empty());
  ExpectConsistent();
}

TEST_F(SpanningSnapshotsTest, ABackupSessionAHostCannotServeLeavesNothingOnAnyHost) {
  auto g = MakeGroup(1);
  Span(g);
  SpanningBackups& backups = engine_->snapshots().spanning_backups();
  peer("app1").fail_at = "begin-backup";
  auto s = backups.Begin({.collection_id = g.collection_id}, 60s);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("app1"), std::string::npos) << s.status().ToString();
  EXPECT_TRUE(backups.List().empty());
  EXPECT_TRUE(peer("db1").sessions.empty()) << "the host that served stopped";
  EXPECT_TRUE(engine_->snapshots().backups().List().empty());
  EXPECT_TRUE(engine_->catalog().ListSpanningBackups()->empty());
  EXPECT_TRUE(AwaitNoneRecorded()) << "the snapshot taken for it is destroyed everywhere";
  EXPECT_TRUE(engine_->catalog().ListSnapshots(g.collection_id)->empty());
  ExpectConsistent();
}

// Each host's session ends by itself once idle; the group's once all have.
TEST_F(SpanningSnapshotsTest, ABackupSessionAcrossHostsEndsOnceEveryHostsSessionIdledOut) {
  auto g = MakeGroup(1);
  Span(g);
  SpanningBackups& backups = engine_->snapshots().spanning_backups();
  auto s = backups.Begin({.collection_id = g.collection_id}, 60s);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  {
    std::lock_guard l(peer("db1").mu);
    peer("db1").sessions.clear();  // idled out there
  }
  std::atomic<int> polls = 0;
  auto how = backups.Serve(
      s->id, [&] { return ++polls > 3; }, 1ms);
  ASSERT_TRUE(how.ok()) << how.status().ToString();
  EXPECT_EQ(*how, BackupEnding::kStopped) << "app1 and this host still serve";
  EXPECT_FALSE(engine_->catalog().GetSpanning(s->snapshot_id).ok()) << "a stop ends it";

  auto again = backups.Begin({.collection_id = g.collection_id}, 60s);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  for (const char* host : {"db1", "app1"}) {
    std::lock_guard l(peer(host).mu);
    peer(host).sessions.clear();
  }
  BackupSessions& here = engine_->snapshots().backups();
  ASSERT_EQ(here.List().size(), 1u);
  ASSERT_TRUE(here.End({.id = here.List()[0].id}).ok()) << "this host's idled out too";
  how = backups.Serve(again->id, {}, 1ms);
  ASSERT_TRUE(how.ok()) << how.status().ToString();
  EXPECT_EQ(*how, BackupEnding::kIdle);
  EXPECT_FALSE(backups.Has(again->id));
  EXPECT_FALSE(engine_->catalog().GetSpanning(again->snapshot_id).ok()) << "destroyed";
  EXPECT_TRUE(engine_->catalog().ListSpanningBackups()->empty());
  ExpectConsistent();
}

// A coordinator that dies while its session serves: once back, every host's
// session is ended and the snapshot it took destroyed everywhere.
TEST_F(SpanningSnapshotsTest, ABackupSessionWhoseCoordinatorDiedIsEndedEverywhereOnceBack) {
  auto g = MakeGroup(1);
  Span(g);
  auto s = engine_->snapshots().spanning_backups().Begin({.collection_id = g.collection_id}, 60s);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  peer("app1").unreachable = true;  // away as the coordinator comes back
  engine_.reset();
  Open();
  // Its recovery runs in the background: the host that answers first.
  auto db1_serves = [&] {
    std::lock_guard l(peer("db1").mu);
    return !peer("db1").sessions.empty();
  };
  for (int i = 0; i < 1000 && db1_serves(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(db1_serves()) << "ended on the host that answered";
  EXPECT_EQ(engine_->catalog().ListSpanningBackups()->size(), 1u) << "kept for app1";
  peer("app1").unreachable = false;
  EXPECT_EQ(engine_->snapshots().spanning().Recover(), 0);
  EXPECT_TRUE(engine_->catalog().ListSpanningBackups()->empty());
  EXPECT_TRUE(peer("app1").sessions.empty());
  EXPECT_TRUE(AwaitNoneRecorded());
  EXPECT_FALSE(HoldsPart("db1", s->snapshot_id));
  EXPECT_FALSE(HoldsPart("app1", s->snapshot_id));
  EXPECT_TRUE(engine_->catalog().ListSnapshots(g.collection_id)->empty());
  ExpectConsistent();
}

TEST_F(SpanningSnapshotsTest, WhatIsNotOfferedAcrossHostsIsRefusedAndChangesNothing) {
  auto g = MakeGroup(1);
  Span(g);
  SnapshotEngine& snapshots = engine_->snapshots();
  EXPECT_EQ(
      snapshots.Validate({.collection_id = g.collection_id, .type = kSnapshotStandard}).code(),
      Code::kNotSupported);
  EXPECT_EQ(snapshots.backups().Validate({.collection_id = g.collection_id}).code(),
            Code::kNotSupported)
      << "this host's sessions alone are no cut of the group";
  SpanningBackups& across = snapshots.spanning_backups();
  EXPECT_EQ(
      across.Validate({.collection_id = g.collection_id, .incremental_from = NewGuid()}).code(),
      Code::kNotSupported)
      << "no reference point across hosts";
  EXPECT_EQ(across.Validate({.collection_id = g.collection_id, .snapshot_id = NewGuid()}).code(),
            Code::kNotSupported)
      << "no snapshot across hosts";
  auto alone = MakeGroup(1, "solo");
  EXPECT_EQ(across.Validate({.collection_id = alone.collection_id}).code(), Code::kInvalidArgument);
  auto s = snapshots.Create({.collection_id = g.collection_id});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  // An incremental export across hosts builds on a reference point across
  // hosts, not on a snapshot.
  Status incremental =
      snapshots.ValidateExport({.snapshot_id = s->id, .directory = Path("export"), .base = s->id});
  EXPECT_EQ(incremental.code(), Code::kNotSupported);
  EXPECT_NE(incremental.message().find("export it in full"), std::string::npos)
      << incremental.ToString();
  EXPECT_TRUE(engine_->catalog().GetSpanning(s->id).ok());
  ExpectConsistent();
}

// Every host exports its part into a folder named for it; this host writes
// the manifest naming them last. The folders here are this host's export
// (its real SnapshotExport) and the fake peers' stand-ins.
TEST_F(SpanningSnapshotsTest, AnExportHasEveryHostsPartInItsFolderAndTheManifestLast) {
  const std::string id = SnapshotAcross(2);
  ASSERT_FALSE(id.empty());
  const std::string dir = Path("export");
  std::vector<int> progress;
  auto m = spanning().Export(
      {.snapshot_id = id, .directory = dir, .progress = [&](int p) { progress.push_back(p); }});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->parts.size(), 3u);
  EXPECT_EQ(m->parts[0].folder, "localhost") << "this host's part: SnapshotOptions::host_name";
  EXPECT_EQ(m->parts[0].vm_ids.size(), 2u);
  EXPECT_EQ(m->parts[1].host, "db1");
  EXPECT_EQ(m->parts[1].folder, "db1");
  EXPECT_EQ(progress.back(), 100);
  auto own = ReadManifestIn(dir + "/localhost");
  ASSERT_TRUE(own.ok()) << own.status().ToString();
  EXPECT_EQ(own->snapshot_id, id);
  EXPECT_EQ(own->vms.size(), 2u);
  for (const char* host : {"db1", "app1"}) {
    EXPECT_EQ(*Env::Default()->ReadFile(dir + "/" + host + "/" + kManifestFile), id) << host;
  }
  auto top = Env::Default()->ReadFile(dir + "/" + kManifestFile);
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(*top, SpanningManifestToJson(*m));
  EXPECT_NE(top->find(kSpanningManifestFormat), std::string::npos);
  // An export's directory takes one export.
  EXPECT_EQ(engine_->snapshots().ValidateExport({.snapshot_id = id, .directory = dir}).code(),
            Code::kAlreadyExists);
  ExpectConsistent();
}

// Presumed abort: a host that fails its export has every finished part
// removed by its host, this one's included; nothing of the export stays.
TEST_F(SpanningSnapshotsTest, AHostThatFailsItsExportLeavesNoPartAnywhere) {
  const std::string id = SnapshotAcross(1);
  ASSERT_FALSE(id.empty());
  peer("app1").fail_at = "export";
  const std::string dir = Path("export");
  auto m = spanning().Export({.snapshot_id = id, .directory = dir});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("host app1: export refused"), std::string::npos)
      << m.status().ToString();
  EXPECT_NE(m.status().message().find("were removed"), std::string::npos) << m.status().ToString();
  EXPECT_FALSE(Env::Default()->FileExists(dir)) << "made by the export, gone with it";
  EXPECT_EQ(StepsOf("db1").back(), "remove-export " + id);
  EXPECT_NE(StepsOf("app1").back(), "remove-export " + id) << "it finished nothing";
  EXPECT_TRUE(engine_->catalog().ExportsOf(id)->empty()) << "this host forgot its part";

  // The same export, once the host is well again, is whole.
  peer("app1").fail_at = "";
  auto again = spanning().Export({.snapshot_id = id, .directory = dir});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(Env::Default()->FileExists(dir + "/" + kManifestFile));
  ExpectConsistent();
}

// A second export into a directory an export across hosts is writing is
// refused, and the first is left to finish, also by a recovery pass.
TEST_F(SpanningSnapshotsTest, AnExportIntoADirectoryBeingWrittenIsRefused) {
  // Wholly on the peers, which hold their exports before writing anything:
  // the directory is still missing when the second export is asked.
  auto far =
      engine_->collections().DefineCollection("far", "", catalog::CollectionType::kVirtualSystems);
  ASSERT_TRUE(far.ok());
  Span({.collection_id = *far});
  auto taken = engine_->snapshots().Create({.collection_id = *far});
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  const std::string id = taken->id;
  const std::string dir = Path("export");
  std::promise<void> exporting, go;
  std::shared_future<void> gone = go.get_future().share();
  std::once_flag first_host;
  const auto hold = [&] {
    std::call_once(first_host, [&] { exporting.set_value(); });
    gone.wait_for(10s);  // bounded: a failed step below ends the test
  };
  peer("db1").exporting = hold;
  peer("app1").exporting = hold;
  auto first = std::async(std::launch::async,
                          [&] { return spanning().Export({.snapshot_id = id, .directory = dir}); });
  ASSERT_EQ(exporting.get_future().wait_for(10s), std::future_status::ready);
  auto second = spanning().Export({.snapshot_id = id, .directory = dir});
  // The refused one let go of nothing: a recovery pass leaves the first be.
  const int left = spanning().Recover();
  const size_t under_way = engine_->catalog().ListExportIntents()->size();
  go.set_value();
  EXPECT_EQ(second.status().code(), Code::kAlreadyExists) << second.status().ToString();
  EXPECT_EQ(left, 0);
  EXPECT_EQ(under_way, 1u) << "the first export's intent";
  auto done = first.get();
  EXPECT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_TRUE(Env::Default()->FileExists(dir + "/" + kManifestFile));
  peer("db1").exporting = nullptr;
  peer("app1").exporting = nullptr;
}

// The coordinator killed at each step of an export across hosts: once it
// is back, the export is whole (its manifest was written) or nothing of it
// is left on any host, and the snapshot can be destroyed again.
TEST_F(SpanningSnapshotsTest, ACoordinatorKilledMidExportLeavesItWholeOrNowhereOnceBack) {
  const std::string id = SnapshotAcross(1);
  ASSERT_FALSE(id.empty());
  for (std::string_view point : fault::kSpanExportAll) {
    SCOPED_TRACE(std::string(point));
    const std::string dir = Path("export-" + std::string(point));
    ASSERT_TRUE(CrashAt(
        point,
        [&](Engine& e) {
          (void)e.snapshots().spanning().Export({.snapshot_id = id, .directory = dir});
        },
        id));
    // Reopened: its recovery settles the export, in the background.
    ASSERT_TRUE(AwaitNoExportUnderWay());
    const bool whole = point == fault::kSpanExportWritten;
    EXPECT_EQ(Env::Default()->FileExists(dir), whole);
    if (whole) {
      auto top = Env::Default()->ReadFile(dir + "/" + kManifestFile);
      ASSERT_TRUE(top.ok());
      EXPECT_TRUE(ParseSpanningManifest(*top).ok());
      EXPECT_TRUE(ReadManifestIn(dir + "/localhost").ok());
      EXPECT_TRUE(Env::Default()->FileExists(dir + "/db1/" + kManifestFile));
    } else {
      EXPECT_TRUE(engine_->catalog().ExportsOf(id)->empty());
    }
  }
  EXPECT_TRUE(engine_->snapshots().Destroy({.snapshot_id = id}).ok());
  ExpectConsistent();
}

// Converted, every host's part is a reference point of one id; the
// snapshot is gone everywhere, the group's reference point listed here as
// this host's part; destroyed, it is gone on every host.
TEST_F(SpanningSnapshotsTest, AConvertedSnapshotIsOneReferencePointOnEveryHost) {
  const std::string id = SnapshotAcross(1);
  ASSERT_FALSE(id.empty());
  SnapshotEngine& snapshots = engine_->snapshots();
  ASSERT_TRUE(snapshots.ValidateConvert(id).ok());
  EXPECT_EQ(snapshots.ValidateConvert(id, "not-a-guid").code(), Code::kInvalidArgument);
  auto rp = snapshots.ConvertToReferencePoint(id);
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  EXPECT_EQ(rp->snapshot_id, id);
  ASSERT_EQ(rp->members.size(), 1u) << "this host's part";
  for (const char* host : {"db1", "app1"}) {
    EXPECT_FALSE(HoldsPart(host, id)) << host;
    EXPECT_EQ(PointsOf(host), (std::map<std::string, std::string>{{rp->id, id}})) << host;
  }
  EXPECT_EQ(snapshots.Get(id).status().code(), Code::kNotFound);
  EXPECT_EQ(snapshots.ValidateDestroy({.snapshot_id = id}).code(), Code::kNotFound);
  EXPECT_EQ(snapshots.ValidateConvert(id).code(), Code::kNotFound);
  auto listed = snapshots.ListReferencePoints();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->at(0).id, rp->id);
  EXPECT_EQ(snapshots.GetReferencePoint(rp->id)->members.size(), 1u);
  // What changed since it builds on an export of its snapshot: none here.
  EXPECT_TRUE(snapshots.ValidateExportReferencePoint(rp->id, {.directory = Path("x")}).ok());
  EXPECT_EQ(snapshots.ExportReferencePoint(rp->id, {.directory = Path("x")}).status().code(),
            Code::kInvalidArgument)
      << "spanning().ExportReferencePoint exports it";

  ASSERT_TRUE(snapshots.DestroyReferencePoint(rp->id).ok());
  for (const char* host : {"db1", "app1"}) {
    EXPECT_TRUE(PointsOf(host).empty()) << host;
  }
  EXPECT_TRUE(snapshots.ListReferencePoints()->empty());
  EXPECT_TRUE(engine_->catalog().ListSpanning()->empty());
  ExpectConsistent();
}

// A host that refuses its part's conversion: nothing is converted anywhere.
TEST_F(SpanningSnapshotsTest, AHostRefusingToConvertItsPartLeavesTheSnapshotAsItWas) {
  const std::string id = SnapshotAcross(1);
  ASSERT_FALSE(id.empty());
  peer("db1").fail_at = "validate-convert";
  auto rp = engine_->snapshots().ConvertToReferencePoint(id);
  ASSERT_FALSE(rp.ok());
  EXPECT_NE(rp.status().message().find("host db1"), std::string::npos) << rp.status().ToString();
  for (const char* host : {"db1", "app1"}) {
    EXPECT_TRUE(HoldsPart(host, id)) << host;
    EXPECT_TRUE(PointsOf(host).empty()) << host;
  }
  EXPECT_EQ(engine_->catalog().GetSpanning(id)->state, catalog::SpanningState::kComplete);
  EXPECT_TRUE(engine_->snapshots().Get(id).ok());
  EXPECT_TRUE(engine_->catalog().ListReferencePoints()->empty());
  ExpectConsistent();
}

// A conversion that did not reach every host is not taken back: it is
// finished there once the host answers; until then the reference point is
// not listed.
TEST_F(SpanningSnapshotsTest, AConversionThatMissedAHostIsFinishedThereOnceItAnswers) {
  const std::string id = SnapshotAcross(1);
  ASSERT_FALSE(id.empty());
  peer("app1").fail_at = "convert";
  auto rp = engine_->snapshots().ConvertToReferencePoint(id);
  ASSERT_EQ(rp.status().code(), Code::kUnavailable) << rp.status().ToString();
  EXPECT_NE(rp.status().message().find("host app1"), std::string::npos) << rp.status().ToString();
  auto record = engine_->catalog().GetSpanning(id);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->state, catalog::SpanningState::kConverting);
  EXPECT_TRUE(engine_->snapshots().ListReferencePoints()->empty());
  EXPECT_EQ(engine_->snapshots().Get(id).status().code(), Code::kNotFound);
  peer("app1").fail_at.clear();
  EXPECT_EQ(spanning().Recover(), 0);
  EXPECT_EQ(engine_->catalog().GetSpanning(id)->state, catalog::SpanningState::kReferencePoint);
  EXPECT_EQ(PointsOf("app1").count(record->reference_point_id), 1u);
  EXPECT_EQ(engine_->snapshots().ListReferencePoints()->size(), 1u);
  ExpectConsistent();
}

// The coordinator killed at each point of a conversion: once back, every
// host converted its part, and the reference point can be destroyed.
TEST_F(SpanningSnapshotsTest, ACoordinatorKilledMidConversionFinishesItOnceBack) {
  auto g = MakeGroup(1);
  Span(g);
  for (std::string_view point : fault::kSpanConvertAll) {
    SCOPED_TRACE(std::string(point));
    auto taken = engine_->snapshots().Create({.collection_id = g.collection_id});
    ASSERT_TRUE(taken.ok()) << taken.status().ToString();
    const std::string id = taken->id;
    const std::string rp = NewGuid();
    ASSERT_TRUE(CrashAt(
        point, [&](Engine& e) { (void)e.snapshots().ConvertToReferencePoint(id, rp); }, id));
    // Reopened: its recovery converts the rest, in the background.
    for (int i = 0; i < 1000; ++i) {
      auto s = engine_->catalog().GetSpanning(id);
      if (s.ok() && s->state == catalog::SpanningState::kReferencePoint) break;
      std::this_thread::sleep_for(10ms);
    }
    // That pass holds the record until it ends (a destroy meanwhile is
    // Busy): a pass of our own runs once it has.
    EXPECT_EQ(spanning().Recover(), 0);
    auto got = engine_->snapshots().GetReferencePoint(rp);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->members.size(), 1u);
    for (const char* host : {"db1", "app1"}) {
      EXPECT_EQ(PointsOf(host).count(rp), 1u) << host;
    }
    ASSERT_TRUE(engine_->snapshots().DestroyReferencePoint(rp).ok());
    ExpectConsistent();
  }
}

// CreateReferencePoint of a group across hosts: a recovery snapshot of it
// converted at once on every host; when a host refuses the conversion, the
// snapshot is gone again from every host.
TEST_F(SpanningSnapshotsTest, AReferencePointCreatedForAGroupAcrossHostsIsOnEveryHost) {
  auto g = MakeGroup(1);
  Span(g);
  SnapshotEngine& snapshots = engine_->snapshots();
  ASSERT_TRUE(snapshots.ValidateCreateReferencePoint(g.collection_id).ok());
  auto rp = snapshots.CreateReferencePoint(g.collection_id, "nightly");
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  EXPECT_EQ(rp->name, "nightly");
  EXPECT_EQ(rp->members.size(), 1u);
  for (const char* host : {"db1", "app1"}) {
    std::lock_guard l(peer(host).mu);
    EXPECT_TRUE(peer(host).parts.empty()) << host;
    EXPECT_EQ(peer(host).points.count(rp->id), 1u) << host;
  }
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());

  peer("app1").fail_at = "validate-convert";
  auto refused = snapshots.CreateReferencePoint(g.collection_id, "");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("host app1"), std::string::npos)
      << refused.status().ToString();
  for (const char* host : {"db1", "app1"}) {
    std::lock_guard l(peer(host).mu);
    EXPECT_TRUE(peer(host).parts.empty()) << host << ": the snapshot is taken back";
    EXPECT_EQ(peer(host).points.size(), 1u) << host;
  }
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
  EXPECT_EQ(snapshots.ListReferencePoints()->size(), 1u);
  ExpectConsistent();
}

// The backup cycle across hosts: a snapshot exported in full and
// converted, the next one exported on top of it, each host on its own part
// (this host's a real incremental export), the manifest naming the base. A
// host that left the group since has no part to build on: refused.
TEST_F(SpanningSnapshotsTest, AnIncrementalExportAcrossHostsBuildsEachPartOnItsReferencePoint) {
  auto g = MakeGroup(1);
  Span(g);
  SnapshotEngine& snapshots = engine_->snapshots();
  auto rp = ExportedReferencePoint(g);
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  auto next = snapshots.Create({.collection_id = g.collection_id});
  ASSERT_TRUE(next.ok()) << next.status().ToString();

  const ExportRequest incremental{
      .snapshot_id = next->id, .directory = Path("tue"), .base = rp->id};
  ASSERT_TRUE(snapshots.ValidateExport(incremental).ok());
  auto m = spanning().Export(incremental);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->base_reference_point_id, rp->id);
  auto top = Env::Default()->ReadFile(Path("tue") + "/" + kManifestFile);
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(ParseSpanningManifest(*top)->base_reference_point_id, rp->id);
  ExpectBuiltOn(Path("tue"), rp->id);

  ASSERT_TRUE(
      engine_->collections().RemoveRemoteMember({"app1", vm_on_["app1"]}, g.collection_id).ok());
  auto fewer = snapshots.Create({.collection_id = g.collection_id});
  ASSERT_TRUE(fewer.ok()) << fewer.status().ToString();
  Status refused = snapshots.ValidateExport(
      {.snapshot_id = fewer->id, .directory = Path("wed"), .base = rp->id});
  EXPECT_EQ(refused.code(), Code::kInvalidState) << refused.ToString();
  EXPECT_NE(refused.message().find("export in full"), std::string::npos) << refused.ToString();
  ExpectConsistent();
}

// ExportReferencePoint across hosts: a snapshot of the group taken for it,
// exported by every host on its part of the reference point, then
// destroyed on every host. A host failing its part leaves neither that
// snapshot nor any part of the export anywhere; what cannot be exported is
// refused before anything is taken.
TEST_F(SpanningSnapshotsTest, AReferencePointAcrossHostsIsExportedThroughASnapshotTakenForIt) {
  auto g = MakeGroup(1);
  Span(g);
  auto rp = ExportedReferencePoint(g);
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  const auto only_the_point = [&] {
    EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty()) << "this host's part is gone";
    EXPECT_EQ(engine_->catalog().ListSpanning()->size(), 1u) << "the reference point's record";
    for (const char* host : {"db1", "app1"}) {
      std::lock_guard l(peer(host).mu);
      EXPECT_TRUE(peer(host).parts.empty()) << host << ": the snapshot taken for it is gone";
      EXPECT_EQ(peer(host).points.count(rp->id), 1u) << host;
    }
  };
  const size_t asked = StepsOf("db1").size();

  // Refused before any cut: a directory in use, a base that is no
  // reference point across hosts, one being destroyed, an unknown one.
  ASSERT_TRUE(Env::Default()->CreateDirs(Path("used") + "/x").ok());
  EXPECT_EQ(spanning().ValidateExportReferencePoint(rp->id, {.directory = Path("used")}).code(),
            Code::kAlreadyExists);
  EXPECT_EQ(spanning()
                .ExportReferencePoint(rp->id, {.directory = Path("x"), .base = NewGuid()})
                .status()
                .code(),
            Code::kNotSupported);
  ASSERT_TRUE(engine_->catalog()
                  .SetSpanningState(rp->snapshot_id, catalog::SpanningState::kForgetting)
                  .ok());
  EXPECT_EQ(spanning().ValidateExportReferencePoint(rp->id, {.directory = Path("x")}).code(),
            Code::kInvalidState);
  ASSERT_TRUE(engine_->catalog()
                  .SetSpanningState(rp->snapshot_id, catalog::SpanningState::kReferencePoint)
                  .ok());
  EXPECT_EQ(spanning().ValidateExportReferencePoint(NewGuid(), {.directory = Path("x")}).code(),
            Code::kNotFound);
  EXPECT_EQ(StepsOf("db1").size(), asked) << "no host was asked anything";

  auto m = spanning().ExportReferencePoint(rp->id, {.directory = Path("tue")});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->base_reference_point_id, rp->id);
  EXPECT_NE(m->snapshot_id, rp->snapshot_id);
  EXPECT_EQ(m->snapshot_name, "Export of reference point " + rp->name);
  ExpectBuiltOn(Path("tue"), rp->id);
  for (const char* host : {"db1", "app1"}) {
    EXPECT_EQ(StepsOf(host).back(), "abort " + m->snapshot_id) << host << ": destroyed";
  }
  only_the_point();

  peer("app1").fail_at = "export";
  auto failed = spanning().ExportReferencePoint(rp->id, {.directory = Path("wed")});
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("host app1"), std::string::npos)
      << failed.status().ToString();
  EXPECT_FALSE(Env::Default()->FileExists(Path("wed")));
  only_the_point();
  peer("app1").fail_at.clear();
  ExpectConsistent();
}

// ConsistencyLevel 1 across hosts: every host is asked to freeze its
// guests through the cut (with the fallback as asked), this host's own
// part is frozen and recorded so, and so is the group snapshot.
TEST_F(SpanningSnapshotsTest, AnApplicationConsistentSnapshotHasEveryHostFreezeItsGuests) {
  auto g = MakeGroup(1);
  Span(g);
  SnapshotRequest request{.collection_id = g.collection_id};
  request.consistency = catalog::Consistency::kApplication;
  request.fallback = true;
  ASSERT_TRUE(engine_->snapshots().Validate(request).ok());
  auto s = engine_->snapshots().Create(request);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  for (const char* host : {"db1", "app1"}) {
    std::lock_guard l(peer(host).mu);
    EXPECT_EQ(peer(host).prepared.consistency, catalog::Consistency::kApplication) << host;
    EXPECT_TRUE(peer(host).prepared.fallback) << host;
  }
  EXPECT_EQ(s->consistency, catalog::Consistency::kApplication);
  ASSERT_EQ(s->members.size(), 1u) << "this host's part";
  EXPECT_EQ(s->members[0].consistency, catalog::Consistency::kApplication);
  const auto calls = Fake(g.vm_ids[0])->calls();
  EXPECT_NE(std::find(calls.begin(), calls.end(), "freeze"), calls.end());
  EXPECT_NE(std::find(calls.begin(), calls.end(), "thaw"), calls.end());
  EXPECT_EQ(engine_->catalog().GetSpanning(s->id)->consistency, catalog::Consistency::kApplication);
  ExpectConsistent();
}

// A reference point destroyed while a host is away is destroyed there once
// it answers; until then it is listed nowhere.
TEST_F(SpanningSnapshotsTest, AReferencePointIsDestroyedOnAHostThatWasAwayOnceItAnswers) {
  const std::string id = SnapshotAcross(1);
  ASSERT_FALSE(id.empty());
  auto rp = engine_->snapshots().ConvertToReferencePoint(id);
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  peer("db1").unreachable = true;
  EXPECT_EQ(engine_->snapshots().DestroyReferencePoint(rp->id).code(), Code::kUnavailable);
  EXPECT_EQ(engine_->catalog().GetSpanning(id)->state, catalog::SpanningState::kForgetting);
  EXPECT_TRUE(engine_->snapshots().ListReferencePoints()->empty());
  EXPECT_EQ(engine_->snapshots().GetReferencePoint(rp->id).status().code(), Code::kNotFound);
  peer("db1").unreachable = false;
  EXPECT_EQ(spanning().Recover(), 0);
  EXPECT_TRUE(engine_->catalog().ListSpanning()->empty());
  EXPECT_TRUE(PointsOf("db1").empty());
}

TEST_F(SpanningSnapshotsTest, AGroupWhollyOnOtherHostsHasNoPartHereAndKeepsItsSnapshots) {
  auto id =
      engine_->collections().DefineCollection("far", "", catalog::CollectionType::kVirtualSystems);
  ASSERT_TRUE(id.ok());
  const FakeGroup g{.collection_id = *id};
  Span(g);
  auto s = engine_->snapshots().Create({.collection_id = g.collection_id});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(s->members.empty());
  EXPECT_EQ(engine_->catalog().GetSnapshot(s->id).status().code(), Code::kNotFound);
  auto known = engine_->snapshots().Get(s->id);
  ASSERT_TRUE(known.ok()) << "known here by its record across hosts";
  EXPECT_EQ(known->state, catalog::SnapshotState::kComplete);
  EXPECT_EQ(known->name, s->name);
  auto record = engine_->catalog().GetSpanning(s->id);
  ASSERT_TRUE(record.ok());
  ASSERT_EQ(record->parts.size(), 2u) << "no part of this host";
  EXPECT_TRUE(HoldsPart("db1", s->id));
  // The group keeps its snapshot: it cannot go while the snapshot stays.
  CollectionManager& groups = engine_->collections();
  for (const char* host : {"db1", "app1"}) {
    ASSERT_TRUE(groups.RemoveRemoteMember({host, vm_on_[host]}, g.collection_id).ok());
  }
  EXPECT_EQ(groups.DestroyCollection(g.collection_id).code(), Code::kInvalidState);
  ASSERT_TRUE(engine_->snapshots().Destroy({.snapshot_id = s->id}).ok());
  EXPECT_FALSE(HoldsPart("db1", s->id));
  EXPECT_TRUE(groups.DestroyCollection(g.collection_id).ok());
}

// A pass of Recover (the one a start runs in the background, or a retry)
// that comes while a snapshot is being taken leaves that snapshot alone.
TEST_F(SpanningSnapshotsTest, ARecoveryPassDuringATakeLeavesItAlone) {
  auto g = MakeGroup(1);
  Span(g);
  int left = -1;
  points_.OnHit([&](std::string_view point, std::string_view) {
    if (point == fault::kSpanIntentRecorded || point == fault::kSpanAllCommitted) {
      left = spanning().Recover();
    }
    return Status::Ok();
  });
  auto s = engine_->snapshots().Create({.collection_id = g.collection_id});
  points_.OnHit(nullptr);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(left, 0);
  EXPECT_EQ(engine_->catalog().GetSpanning(s->id)->state, catalog::SpanningState::kComplete);
  EXPECT_TRUE(HoldsPart("db1", s->id));
  ExpectConsistent();
}

}  // namespace
}  // namespace vmgroup::engine
