// Backup sessions on real QEMU (issue 17), read by the clients backup
// products use: nbdcopy reads every disk as of the cut, nbdinfo --map reads
// the changed-block context, and libnbd reads the changed ranges themselves.
// On guests that keep writing (tests/guest_kit, writer=raw): a full read
// equals the frozen images; the incremental's context covers every cluster
// the guests changed between the cuts, and those ranges, applied onto the
// first read, give the disks as at the second cut. Afterwards nothing of a
// session is left, whether it ended, went idle, lost its reader half-way or
// died with the daemon.
#include <arpa/inet.h>
#include <libnbd.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "base/tcp_peers.h"
#include "base/unix_peers.h"
#include "engine/backup_sessions.h"
#include "engine/fault_points.h"
#include "engine/snapshot_plan.h"
#include "guest_fixture.h"
#include "testing/guest_io.h"

namespace vmgroup::integration {
namespace {

namespace fs = std::filesystem;
constexpr int kGuests = 3;
constexpr uint64_t kCluster = 64 << 10;

struct Range {
  uint64_t offset = 0, length = 0;
};

// Waits until `peers` counts reader `pid` connected to session `id`, kills
// the reader, and expects the session, idle from then on, to end by itself.
void KillReaderThenIdle(engine::BackupSessions& backups, const std::string& id, int pid,
                        const std::function<Result<int>()>& peers) {
  for (int i = 0; i < 300 && peers().value_or(0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(peers().value_or(0), 1) << "the reader is connected";
  ASSERT_TRUE(Env::Default()->Kill(pid, SIGKILL).ok());
  ASSERT_TRUE(Env::Default()->WaitGone(pid, std::chrono::seconds(10)).ok());
  auto how = backups.Serve(id, std::chrono::milliseconds(300), {}, std::chrono::milliseconds(50));
  ASSERT_TRUE(how.ok()) << how.status().ToString();
  EXPECT_EQ(*how, engine::BackupEnding::kIdle);
}

class NbdBackupTest : public GuestFixture {
 protected:
  engine::BackupSessions& Backups() { return engine_->snapshots().backups(); }

  // nbdcopy of `uri` into a new raw file `name` in the test's directory.
  std::string Copy(const std::string& uri, const std::string& name) {
    const std::string out = dir_ / name;
    auto r = Env::Default()->Run({"nbdcopy", uri, out}, std::chrono::minutes(2));
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
    return out;
  }

  // The ranges nbdinfo --map says `context` marks (type bit 0) in `uri`.
  std::vector<Range> Map(const std::string& uri, const std::string& context) {
    auto r = Env::Default()->Run({"nbdinfo", "--map=" + context, uri}, std::chrono::minutes(1));
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
    std::vector<Range> out;
    if (!r.ok()) return out;
    std::istringstream lines(r->out);
    std::string line;
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      uint64_t offset = 0, length = 0, type = 0;
      if (!(fields >> offset >> length >> type)) continue;
      if (type & 1) out.push_back({offset, length});
    }
    return out;
  }

  // The 64 KiB clusters in which raw files `a` and `b` differ.
  static std::vector<uint64_t> DifferingClusters(const std::string& a, const std::string& b) {
    std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
    std::vector<char> ba(kCluster), bb(kCluster);
    std::vector<uint64_t> out;
    for (uint64_t c = 0;; ++c) {
      fa.read(ba.data(), kCluster);
      fb.read(bb.data(), kCluster);
      if (fa.gcount() == 0 && fb.gcount() == 0) break;
      if (fa.gcount() != fb.gcount() || ba != bb) out.push_back(c);
    }
    return out;
  }

  static bool Covered(const std::vector<Range>& ranges, uint64_t cluster) {
    for (const auto& r : ranges) {
      if (r.offset <= cluster * kCluster && cluster * kCluster + kCluster <= r.offset + r.length) {
        return true;
      }
    }
    return false;
  }

  // Reads each of `ranges` from `uri` with libnbd and writes it at the same
  // offset of raw file `file`: what a backup product does with an incremental.
  static void Apply(const std::string& uri, const std::vector<Range>& ranges,
                    const std::string& file) {
    nbd_handle* nbd = nbd_create();
    ASSERT_NE(nbd, nullptr);
    ASSERT_EQ(nbd_connect_uri(nbd, uri.c_str()), 0) << nbd_get_error();
    std::fstream out(file, std::ios::in | std::ios::out | std::ios::binary);
    for (const auto& r : ranges) {
      std::vector<char> buf(r.length);
      ASSERT_EQ(nbd_pread(nbd, buf.data(), r.length, r.offset, 0), 0) << nbd_get_error();
      out.seekp(static_cast<std::streamoff>(r.offset));
      out.write(buf.data(), static_cast<std::streamsize>(r.length));
    }
    nbd_shutdown(nbd, 0);
    nbd_close(nbd);
  }

  // The frozen image of each member of snapshot `id`, as raw files.
  std::vector<std::string> FrozenAsRaw(const std::string& id, const std::string& tag) {
    auto s = engine_->catalog().GetSnapshot(id);
    EXPECT_TRUE(s.ok());
    std::vector<std::string> out;
    for (const auto& m : s->members) {
      out.push_back(dir_ / (tag + "-" + m.vm_id + ".raw"));
      auto r = Env::Default()->Run(
          {"qemu-img", "convert", "-U", "-O", "raw", m.disks.at(0).frozen_image, out.back()},
          std::chrono::minutes(1));
      EXPECT_TRUE(r.ok() && r->exit_code == 0);
    }
    return out;
  }

  // Nothing of session `s` is left: no socket, no directory, no snapshot it
  // took, no record; a reader can no longer connect.
  void ExpectGone(const engine::BackupSession& s) {
    for (const auto& m : s.members) {
      for (const auto& d : m.disks) {
        EXPECT_FALSE(fs::exists(d.socket)) << d.socket;
        auto r = Env::Default()->Run({"nbdinfo", "--size", d.uri});
        EXPECT_TRUE(r.ok() && r->exit_code != 0) << "still served: " << d.uri;
      }
    }
    EXPECT_FALSE(fs::exists(dir_ / ("state/backups/" + s.id)));
    if (s.took_snapshot) {
      EXPECT_EQ(engine_->catalog().GetSnapshot(s.snapshot_id).status().code(), Code::kNotFound);
    }
    auto intents = engine_->catalog().ListBackupIntents();
    ASSERT_TRUE(intents.ok()) << intents.status().ToString();
    EXPECT_TRUE(intents->empty());
    EXPECT_TRUE(Backups().List().empty());
  }
};

TEST_F(NbdBackupTest, AFullThenAnIncrementalReadGiveTheDisksAsAtEachCut) {
  auto g = WritingGroup("nb", kGuests);
  ASSERT_EQ(g.vm_ids.size(), size_t{kGuests});

  // Round 1: a full read of every disk, equal to the frozen images.
  auto s1 = Backups().Begin({.collection_id = g.collection_id});
  ASSERT_TRUE(s1.ok()) << s1.status().ToString();
  std::vector<std::string> copies;
  const auto frozen1 = FrozenAsRaw(s1->snapshot_id, "cut1");
  for (int i = 0; i < kGuests; ++i) {
    const engine::BackupDisk& d = s1->members[i].disks.at(0);
    EXPECT_EQ(d.context, "");
    copies.push_back(Copy(d.uri, "full-" + std::to_string(i) + ".raw"));
    EXPECT_TRUE(SameContent(copies.back(), frozen1[i])) << "disk of VM " << i;
  }
  auto rp1 = Backups().End({.id = s1->id, .to_reference_point = true});
  ASSERT_TRUE(rp1.ok() && rp1->has_value()) << rp1.status().ToString();
  ExpectGone(*s1);

  // The guests write on; round 2 reads only what changed.
  WaitForWrites(g.vm_ids, AcknowledgedAll(g.vm_ids), 50);
  auto s2 = Backups().Begin({.collection_id = g.collection_id, .incremental_from = (*rp1)->id});
  ASSERT_TRUE(s2.ok()) << s2.status().ToString();
  const auto frozen2 = FrozenAsRaw(s2->snapshot_id, "cut2");
  uint64_t marked = 0, changed = 0;
  for (int i = 0; i < kGuests; ++i) {
    const engine::BackupDisk& d = s2->members[i].disks.at(0);
    ASSERT_EQ(d.context, "qemu:dirty-bitmap:" + (*rp1)->bitmap);
    const std::vector<Range> map = Map(d.uri, d.context);
    const auto differing = DifferingClusters(copies[i], frozen2[i]);
    EXPECT_FALSE(differing.empty()) << "the guest wrote between the cuts";
    for (uint64_t c : differing) EXPECT_TRUE(Covered(map, c)) << "cluster " << c << " of VM " << i;
    for (const auto& r : map) marked += r.length;
    changed += differing.size() * kCluster;
    // The same ranges through the engine (GetVirtualDiskChanges).
    auto changes = Backups().Changes(s2->id, s2->members[i].vm_id, 0, 0, 0);
    ASSERT_TRUE(changes.ok()) << changes.status().ToString();
    EXPECT_EQ(changes->processed, d.size);
    ASSERT_EQ(changes->ranges.size(), map.size());
    for (size_t k = 0; k < map.size(); ++k) {
      EXPECT_EQ(changes->ranges[k].offset, map[k].offset);
      EXPECT_EQ(changes->ranges[k].length, map[k].length);
    }
    // Applied onto the first read: the disk as at the second cut.
    Apply(d.uri, map, copies[i]);
    EXPECT_TRUE(SameContent(copies[i], frozen2[i])) << "disk of VM " << i;
  }
  // Marked beyond what differs: clusters the guest rewrote with the same
  // bytes, and the cut's own granularity. Reported, not asserted tightly.
  RecordProperty("marked_bytes", std::to_string(marked));
  RecordProperty("changed_bytes", std::to_string(changed));
  std::printf("incremental: %llu bytes marked, %llu bytes differ (ratio %.2f)\n",
              static_cast<unsigned long long>(marked), static_cast<unsigned long long>(changed),
              changed ? static_cast<double>(marked) / static_cast<double>(changed) : 0.0);
  EXPECT_LE(marked, 4 * changed + 4 * kCluster * kGuests) << "nothing else of note is marked";
  ASSERT_TRUE(Backups().End({.id = s2->id}).ok());
  ExpectGone(*s2);
  for (const auto& id : g.vm_ids) EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
  WaitForWrites(g.vm_ids, AcknowledgedAll(g.vm_ids), 20);  // they never stopped
  for (const auto& id : g.vm_ids) ExpectCatalogMatchesDisk(id);
}

TEST_F(NbdBackupTest, AReaderKilledHalfWayOrAnIdleSessionLeavesNothingAndTheNextIncrementalHolds) {
  auto g = WritingGroup("nb", kGuests);
  ASSERT_EQ(g.vm_ids.size(), size_t{kGuests});
  auto rp = engine_->snapshots().CreateReferencePoint(g.collection_id, "base");
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  WaitForWrites(g.vm_ids, AcknowledgedAll(g.vm_ids), 20);

  // A reader that dies half-way through its copy.
  auto s = Backups().Begin({.collection_id = g.collection_id, .incremental_from = rp->id});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const engine::BackupDisk& d0 = s->members[0].disks.at(0);
  auto reader = Env::Default()->Spawn(
      {"nbdcopy", "--connections=1", "--requests=1", d0.uri, dir_ / "half.raw"},
      {.log_path = dir_ / "reader.log"});
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  KillReaderThenIdle(Backups(), s->id, *reader,
                     [&] { return ConnectedPeers(Env::Default(), d0.socket); });
  ExpectGone(*s);

  // The reference point still marks everything since its cut.
  WaitForWrites(g.vm_ids, AcknowledgedAll(g.vm_ids), 20);
  auto again = Backups().Begin({.collection_id = g.collection_id, .incremental_from = rp->id});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  for (const auto& m : again->members) EXPECT_EQ(m.disks.at(0).full_read_reason, "");
  ASSERT_TRUE(Backups().End({.id = again->id}).ok());
  ExpectGone(*again);
}

// The changed ranges a session of the written group gives are known exactly.
class NbdExactTest : public WrittenGroupFixture {
 protected:
  NbdExactTest() : WrittenGroupFixture("ex") {}
  engine::BackupSessions& Backups() { return engine_->snapshots().backups(); }
  // Every member's changed ranges in session `id`, as (offset, length).
  std::vector<std::vector<std::pair<uint64_t, uint64_t>>> ChangesOf(const std::string& id) {
    std::vector<std::vector<std::pair<uint64_t, uint64_t>>> out;
    for (const auto& vm : g_.vm_ids) {
      auto c = Backups().Changes(id, vm, 0, 0, 0);
      EXPECT_TRUE(c.ok()) << c.status().ToString();
      out.emplace_back();
      if (!c.ok()) continue;
      EXPECT_EQ(c->processed, uint64_t{8} << 20);
      for (const auto& r : c->ranges) out.back().emplace_back(r.offset, r.length);
    }
    return out;
  }
};

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

TEST_F(NbdExactTest, TheChangedRangesAreExactlyWhatWasWrittenSinceThePoint) {
  auto rp = engine_->snapshots().CreateReferencePoint(g_.collection_id, "base");
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  Write(0x22, 1 << 20, 1 << 20);
  Write(0x33, 6 << 20, 64 << 10);
  auto s = Backups().Begin({.collection_id = g_.collection_id, .incremental_from = rp->id});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Write(0x44, 3 << 20, 64 << 10);  // after the cut: not this session's
  for (const auto& changes : ChangesOf(s->id)) {
    EXPECT_EQ(changes, (Ranges{{1 << 20, 1 << 20}, {6 << 20, 64 << 10}}));
  }
  // A range asked for in part: only what lies in it, and how far it looked.
  auto part = Backups().Changes(s->id, g_.vm_ids[0], 0, 1536 << 10, 4 << 20);
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  ASSERT_EQ(part->ranges.size(), 1u) << "[1.5 MiB, 5.5 MiB) holds part of the first write only";
  EXPECT_EQ(part->ranges[0].offset, uint64_t{1536} << 10);
  EXPECT_EQ(part->ranges[0].length, uint64_t{512} << 10);
  EXPECT_EQ(part->processed, uint64_t{4} << 20);
  auto rp2 = Backups().End({.id = s->id, .to_reference_point = true});
  ASSERT_TRUE(rp2.ok() && rp2->has_value()) << rp2.status().ToString();
  // From the new point on: what came after its cut, the write above too.
  auto next = Backups().Begin({.collection_id = g_.collection_id, .incremental_from = (*rp2)->id});
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  for (const auto& changes : ChangesOf(next->id)) {
    EXPECT_EQ(changes, (Ranges{{3 << 20, 64 << 10}}));
  }
  ASSERT_TRUE(Backups().End({.id = next->id}).ok());
  for (const auto& id : g_.vm_ids) ExpectCatalogMatchesDisk(id);
}

// The daemon killed while a session serves, or while it is begun or ended:
// the next start ends it (no socket, no export, no snapshot it took, the
// nodes free for merges), and the point's tracking is whole.
TEST_F(NbdExactTest, ADaemonKilledDuringASessionLeavesNothingAndTheNextIncrementalIsExact) {
  auto rp = engine_->snapshots().CreateReferencePoint(g_.collection_id, "base");
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  Write(0x22, 1 << 20, 64 << 10);
  const std::string points[] = {std::string(engine::fault::kBackupMemberServed), "serving",
                                std::string(engine::fault::kBackupStopped)};
  for (const std::string& point : points) {
    SCOPED_TRACE(point);
    engine_.reset();  // the helper is the daemon now
    auto r = Env::Default()->Run(
        {CRASH_HELPER, dir_ / "state", "backup", g_.collection_id, point, rp->id},
        std::chrono::minutes(2));
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->exit_code, -1) << "killed at " << point << ": " << r->err;
    OpenEngine();
    EXPECT_EQ(engine_->recovery().backup_sessions.size(), 1u) << engine_->recovery().Summary();
    EXPECT_TRUE(engine_->catalog().ListSnapshots(g_.collection_id)->empty());
    EXPECT_TRUE(engine_->catalog().ListBackupIntents()->empty());
    EXPECT_TRUE(Env::Default()->ListDir(dir_ / "state/backups")->empty());
    for (const auto& id : g_.vm_ids) {
      EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
      ExpectCatalogMatchesDisk(id);
    }
  }
  Write(0x33, 2 << 20, 64 << 10);
  auto s = Backups().Begin({.collection_id = g_.collection_id, .incremental_from = rp->id});
  ASSERT_TRUE(s.ok()) << "QEMU serves nothing of the dead sessions: " << s.status().ToString();
  for (const auto& changes : ChangesOf(s->id)) {
    EXPECT_EQ(changes, (Ranges{{1 << 20, 64 << 10}, {2 << 20, 64 << 10}}));
  }
  ASSERT_TRUE(Backups().End({.id = s->id}).ok());
}

// A member off during the second round: qemu-storage-daemon serves its
// frozen image (run by vmgroupd, as QEMU's user), read equal to it; the
// point's tracking held through the shutdown (its QEMU stored the bitmap),
// so the changed ranges of both members are exact. End leaves no process,
// socket or export.
TEST_F(NbdExactTest, AMemberThatIsOffIsServedByQemuStorageDaemonAndItsChangesAreExact) {
  auto rp = engine_->snapshots().CreateReferencePoint(g_.collection_id, "base");
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  Write(0x22, 1 << 20, 1 << 20);
  ASSERT_TRUE(engine_->vms().Stop(g_.vm_ids[1]).ok());
  ASSERT_TRUE(testing::WriteAsGuest(testing::GuestMonitorPath(dir_ / "images", "ex0"), 0, 0x33,
                                    6 << 20, 64 << 10)
                  .ok());
  auto s = Backups().Begin({.collection_id = g_.collection_id, .incremental_from = rp->id});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const engine::BackupDisk& off = s->members[1].disks[0];
  EXPECT_EQ(off.context, "qemu:dirty-bitmap:" + rp->bitmap) << off.full_read_reason;
  EXPECT_EQ(off.size, uint64_t{8} << 20);
  // The daemon that serves it: recorded beside the socket.
  auto recorded = Env::Default()->ReadFile(off.socket + ".pid");
  ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();
  const int pid = std::stoi(*recorded);
  auto cmdline = Env::Default()->ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  ASSERT_TRUE(cmdline.ok());
  EXPECT_NE(cmdline->find("qemu-storage-daemon"), std::string::npos);
  EXPECT_EQ(Vm(g_.vm_ids[1]).power, catalog::Power::kOff);

  // Read in full, it is its frozen image.
  auto snapshot = engine_->catalog().GetSnapshot(s->snapshot_id);
  ASSERT_TRUE(snapshot.ok());
  const std::string copy = dir_ / "off.raw";
  auto r = Env::Default()->Run({"nbdcopy", off.uri, copy}, std::chrono::minutes(1));
  ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
  r = Env::Default()->Run({"qemu-img", "compare", "-U", "-f", "raw", "-F", "qcow2", copy,
                           snapshot->members[1].disks.at(0).frozen_image});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0) << r->out << r->err;
  const auto changes = ChangesOf(s->id);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0], (Ranges{{1 << 20, 1 << 20}, {6 << 20, 64 << 10}}));
  EXPECT_EQ(changes[1], (Ranges{{1 << 20, 1 << 20}})) << "what it was written before it stopped";

  ASSERT_TRUE(Backups().End({.id = s->id}).ok());
  EXPECT_FALSE(Env::Default()->IsAlive(pid)) << "qemu-storage-daemon " << pid << " runs on";
  EXPECT_FALSE(fs::exists(off.socket + ".pid"));
  for (const auto& m : s->members) {
    for (const auto& d : m.disks) {
      EXPECT_FALSE(fs::exists(d.socket)) << d.socket;
      r = Env::Default()->Run({"nbdinfo", "--size", d.uri});
      EXPECT_TRUE(r.ok() && r->exit_code != 0) << "still served: " << d.uri;
    }
  }
  for (const auto& id : g_.vm_ids) ExpectCatalogMatchesDisk(id);
}

// The daemon killed while a member that is off is served: its
// qemu-storage-daemon runs on (as a QEMU would) until the next start ends
// it, found by its record; the next incremental is exact.
TEST_F(NbdExactTest, ADaemonKilledWhileAMemberThatIsOffIsServedLeavesNoStorageDaemon) {
  auto rp = engine_->snapshots().CreateReferencePoint(g_.collection_id, "base");
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  Write(0x22, 1 << 20, 64 << 10);
  ASSERT_TRUE(engine_->vms().Stop(g_.vm_ids[1]).ok());
  engine_.reset();  // the helper is the daemon now
  auto r = Env::Default()->Run(
      {CRASH_HELPER, dir_ / "state", "backup", g_.collection_id, "serving", rp->id},
      std::chrono::minutes(2));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->exit_code, -1) << r->err;
  int pid = 0;
  for (const auto& session : fs::directory_iterator(dir_ / "state/backups")) {
    auto recorded = Env::Default()->ReadFile(session.path() / "vm1.sock.pid");
    if (recorded.ok()) pid = std::stoi(*recorded);
  }
  ASSERT_GT(pid, 0) << "the off member's daemon is recorded beside its socket";
  EXPECT_TRUE(Env::Default()->IsAlive(pid)) << "it outlives the daemon, as a QEMU does";
  OpenEngine();
  EXPECT_EQ(engine_->recovery().backup_sessions.size(), 1u) << engine_->recovery().Summary();
  EXPECT_FALSE(Env::Default()->IsAlive(pid)) << "qemu-storage-daemon " << pid << " runs on";
  EXPECT_TRUE(Env::Default()->ListDir(dir_ / "state/backups")->empty());
  EXPECT_TRUE(engine_->catalog().ListSnapshots(g_.collection_id)->empty());
  auto s = Backups().Begin({.collection_id = g_.collection_id, .incremental_from = rp->id});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  for (const auto& changes : ChangesOf(s->id)) EXPECT_EQ(changes, (Ranges{{1 << 20, 64 << 10}}));
  ASSERT_TRUE(Backups().End({.id = s->id}).ok());
  for (const auto& id : g_.vm_ids) ExpectCatalogMatchesDisk(id);
}

// A member off at the cut and when the session ends into a reference
// point: its tracking is added to its frozen image offline (a persistent
// bitmap, by qemu-img) before the offline merge, so that it marks what the
// merge writes (its overlay: what was written since the cut) and, once it
// runs again, its QEMU's writes. The next incremental is exact for both.
TEST_F(NbdExactTest, AMemberThatIsOffIsConvertedOfflineAndItsNextChangesAreExact) {
  const std::string off = g_.vm_ids[1];
  // Writes `command` into the disk of VM `off`, which is off, with qemu-io.
  auto write_off = [&](const std::string& command) {
    auto r = Env::Default()->Run({"qemu-io", "-f", "qcow2", "-c", command, Vm(off).disks[0]});
    ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
  };
  ASSERT_TRUE(engine_->vms().Stop(off).ok());
  write_off("write -P 0x55 2M 64k");  // before the cut: never the point's
  auto cut = engine_->snapshots().Create(
      {.collection_id = g_.collection_id, .type = engine::kSnapshotRecovery});
  ASSERT_TRUE(cut.ok()) << cut.status().ToString();
  write_off("write -P 0x66 7M 64k");  // into its overlay: merged by the conversion
  auto s = Backups().Begin({.collection_id = g_.collection_id, .snapshot_id = cut->id});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto rp = Backups().End({.id = s->id, .to_reference_point = true});
  ASSERT_TRUE(rp.ok() && rp->has_value()) << rp.status().ToString();
  EXPECT_EQ(Vm(off).power, catalog::Power::kOff) << "converted without starting it";
  for (const auto& m : (*rp)->members) EXPECT_EQ(m.images, Vm(m.vm_id).disks);

  ASSERT_TRUE(engine_->vms().Start(off).ok());
  Write(0x77, 5 << 20, 128 << 10);
  auto next = Backups().Begin({.collection_id = g_.collection_id, .incremental_from = (*rp)->id});
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  for (const auto& m : next->members) {
    EXPECT_EQ(m.disks[0].context, "qemu:dirty-bitmap:" + (*rp)->bitmap)
        << m.disks[0].full_read_reason;
  }
  const auto changes = ChangesOf(next->id);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0], (Ranges{{5 << 20, 128 << 10}}));
  EXPECT_EQ(changes[1], (Ranges{{5 << 20, 128 << 10}, {7 << 20, 64 << 10}}))
      << "what the offline merge wrote, and what its QEMU wrote since";
  ASSERT_TRUE(Backups().End({.id = next->id}).ok());
  for (const auto& id : g_.vm_ids) ExpectCatalogMatchesDisk(id);
}

// Over TCP with TLS: a CA, the server's certificate for 127.0.0.1 and the
// daemon's own client certificate (its --nbd-tls-dir), and a reader's,
// made with certtool.
class NbdTlsTest : public NbdExactTest {
 protected:
  void SetUp() override {
    NbdExactTest::SetUp();
    fs::create_directories(ca_);
    fs::create_directories(server_);
    fs::create_directories(client_);
    Certtool({"--generate-privkey", "--outfile", ca_ + "/ca-key.pem"});
    Template("ca.info", "cn = vmgroup test CA\nca\ncert_signing_key\nexpiration_days = 2\n");
    Certtool({"--generate-self-signed", "--load-privkey", ca_ + "/ca-key.pem", "--template",
              dir_ / "ca.info", "--outfile", server_ + "/ca-cert.pem"});
    fs::copy_file(server_ + "/ca-cert.pem", client_ + "/ca-cert.pem");
    // A reader that trusts the server but has no certificate of its own.
    fs::create_directories(anonymous_);
    fs::copy_file(server_ + "/ca-cert.pem", anonymous_ + "/ca-cert.pem");
    Issue("server", server_,
          "cn = 127.0.0.1\nip_address = 127.0.0.1\ndns_name = localhost\ntls_www_server\n"
          "encryption_key\nsigning_key\nexpiration_days = 2\n");
    const std::string client_info =
        "cn = reader\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 2\n";
    Issue("client", client_, client_info);
    // The daemon's, for the changed ranges it reads itself (Changes).
    Issue("client", server_, client_info);
    // QEMU's user must read the server's files (the test's directory
    // lets it pass; nobody else lists it).
    fs::permissions(server_ + "/server-key.pem",
                    fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    OpenEngine({.nbd_listen = "127.0.0.1", .nbd_tls_dir = server_});
  }

  void Certtool(std::vector<std::string> args) {
    args.insert(args.begin(), "certtool");
    auto r = Env::Default()->Run(args, std::chrono::minutes(1));
    ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
  }
  void Template(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  // `who`-key.pem and `who`-cert.pem in `dir`, the certificate signed by the CA.
  void Issue(const std::string& who, const std::string& dir, const std::string& info) {
    Template(who + ".info", info);
    Certtool({"--generate-privkey", "--outfile", dir + "/" + who + "-key.pem"});
    Certtool({"--generate-certificate", "--load-privkey", dir + "/" + who + "-key.pem",
              "--load-ca-certificate", server_ + "/ca-cert.pem", "--load-ca-privkey",
              ca_ + "/ca-key.pem", "--template", dir_ / (who + ".info"), "--outfile",
              dir + "/" + who + "-cert.pem"});
  }
  // `uri` as a reader with the client's certificate gives it.
  std::string Certified(const std::string& uri) { return uri + "?tls-certificates=" + client_; }
  // Whether anything accepts connections on 127.0.0.1:`port`.
  static bool Listening(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{.sin_family = AF_INET,
                  .sin_port = htons(static_cast<uint16_t>(port)),
                  .sin_addr = {htonl(INADDR_LOOPBACK)}};
    const bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return connected;
  }
  // The ranges nbdinfo --map gives of `uri` (with `context`), as text.
  std::string MapText(const std::string& uri, const std::string& context) {
    auto r = Env::Default()->Run({"nbdinfo", "--map=" + context, uri}, std::chrono::minutes(1));
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << uri << ": " << (r.ok() ? r->err : "");
    return r.ok() ? r->out : "";
  }

  // The dirty ranges (bit 0 of the type) nbdinfo --map printed, merged.
  static Ranges Dirty(const std::string& map) {
    Ranges out;
    std::istringstream lines(map);
    std::string line;
    while (std::getline(lines, line)) {
      uint64_t offset = 0, length = 0;
      unsigned type = 0;
      if (!(std::istringstream(line) >> offset >> length >> type) || (type & 1) == 0) continue;
      if (!out.empty() && out.back().first + out.back().second == offset) {
        out.back().second += length;
      } else {
        out.emplace_back(offset, length);
      }
    }
    return out;
  }

  const std::string ca_ = dir_ / "ca", server_ = dir_ / "nbd-tls", client_ = dir_ / "reader",
                    anonymous_ = dir_ / "anonymous";
};

// Every disk, of a VM that runs (its QEMU) and of one that is off
// (qemu-storage-daemon), read over TLS with the reader's certificate equal
// to its frozen image, with the same changed blocks as over the unix
// socket; no reader without a certificate, nor a plain NBD one, gets in;
// idleness counts TCP readers; the end leaves nothing listening and no
// TLS credentials (a second session over TCP adds them again).
TEST_F(NbdTlsTest, OnlyCertifiedReadersReadTheCutOverTcpAndTheEndLeavesNothing) {
  auto rp = engine_->snapshots().CreateReferencePoint(g_.collection_id, "base");
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  Write(0x22, 1 << 20, 1 << 20);
  ASSERT_TRUE(engine_->vms().Stop(g_.vm_ids[1]).ok());
  auto unix = Backups().Begin({.collection_id = g_.collection_id, .incremental_from = rp->id});
  ASSERT_TRUE(unix.ok()) << unix.status().ToString();
  std::vector<std::string> unix_maps;
  for (const auto& m : unix->members) {
    unix_maps.push_back(MapText(m.disks[0].uri, m.disks[0].context));
  }
  ASSERT_TRUE(Backups().End({.id = unix->id}).ok());

  auto s = Backups().Begin({.collection_id = g_.collection_id,
                            .incremental_from = rp->id,
                            .transport = engine::BackupTransport::kTcp});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto snapshot = engine_->catalog().GetSnapshot(s->snapshot_id);
  ASSERT_TRUE(snapshot.ok());
  ASSERT_EQ(s->members.size(), 2u);
  std::vector<int> ports;
  for (size_t i = 0; i < s->members.size(); ++i) {
    SCOPED_TRACE("VM " + std::to_string(i));
    const engine::BackupMember& m = s->members[i];
    const engine::BackupDisk& d = m.disks.at(0);
    ports.push_back(m.port);
    ASSERT_GT(m.port, 0);
    EXPECT_EQ(d.uri, "nbds://127.0.0.1:" + std::to_string(m.port) + "/disk0");
    EXPECT_EQ(d.socket, "");
    EXPECT_EQ(d.context, "qemu:dirty-bitmap:" + rp->bitmap) << d.full_read_reason;
    const std::string copy = dir_ / ("tls-" + std::to_string(i) + ".raw");
    auto r = Env::Default()->Run({"nbdcopy", Certified(d.uri), copy}, std::chrono::minutes(1));
    ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
    r = Env::Default()->Run({"qemu-img", "compare", "-U", "-f", "raw", "-F", "qcow2", copy,
                             snapshot->members[i].disks.at(0).frozen_image});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->exit_code, 0) << r->out << r->err;
    EXPECT_EQ(MapText(Certified(d.uri), d.context), unix_maps[i]) << "the same changed blocks";
    // No certificate: the server wants one (verify-peer); plain NBD: it
    // wants TLS.
    r = Env::Default()->Run({"nbdinfo", "--size", d.uri + "?tls-certificates=" + anonymous_},
                            std::chrono::minutes(1));
    EXPECT_TRUE(r.ok() && r->exit_code != 0) << "read without a certificate";
    r = Env::Default()->Run(
        {"nbdinfo", "--size", "nbd://127.0.0.1:" + std::to_string(m.port) + "/disk0"},
        std::chrono::minutes(1));
    EXPECT_TRUE(r.ok() && r->exit_code != 0) << "read without TLS";
  }
  EXPECT_NE(s->members[1].port, s->members[0].port) << "a port per served VM";

  // A reader connected over TCP is counted (a session with one is not
  // idle); once it is killed, the session ends by itself.
  auto reader = Env::Default()->Spawn({"nbdcopy", "--connections=1", "--requests=1",
                                       Certified(s->members[0].disks[0].uri), "null:"},
                                      {.log_path = dir_ / "reader.log"});
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  KillReaderThenIdle(Backups(), s->id, *reader,
                     [&] { return ConnectedTcpPeers(Env::Default(), ports[0]); });
  for (int port : ports) EXPECT_FALSE(Listening(port)) << "port " << port << " still listens";
  EXPECT_TRUE(Env::Default()->ListDir(dir_ / "state/backups")->empty());

  // The QEMU that served has no TLS credentials left: it serves over TCP
  // again (an object of the same id would be refused).
  ASSERT_TRUE(engine_->vms().Start(g_.vm_ids[1]).ok());
  auto again = Backups().Begin({.collection_id = g_.collection_id,
                                .incremental_from = rp->id,
                                .transport = engine::BackupTransport::kTcp});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  for (const auto& m : again->members) {
    auto r = Env::Default()->Run({"nbdinfo", "--size", Certified(m.disks[0].uri)});
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : "");
  }
  ASSERT_TRUE(Backups().End({.id = again->id}).ok());
  for (const auto& m : again->members) EXPECT_FALSE(Listening(m.port));
  for (const auto& id : g_.vm_ids) ExpectCatalogMatchesDisk(id);
}

// The changed ranges of a session over TCP, of a VM that runs and of one
// that is off, are read by the daemon with its own client certificate at
// the address it serves on: the same as the unix session's of the same
// incremental and as nbdinfo --map's over TLS. Without the daemon's client
// files they are refused, naming the files to add; once they are back,
// read again (no restart).
TEST_F(NbdTlsTest, ChangesOverTcpAreReadWithTheDaemonsOwnClientCertificate) {
  auto rp = engine_->snapshots().CreateReferencePoint(g_.collection_id, "base");
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  Write(0x22, 1 << 20, 1 << 20);
  Write(0x33, 6 << 20, 64 << 10);
  ASSERT_TRUE(engine_->vms().Stop(g_.vm_ids[1]).ok());
  auto unix = Backups().Begin({.collection_id = g_.collection_id, .incremental_from = rp->id});
  ASSERT_TRUE(unix.ok()) << unix.status().ToString();
  const auto unix_changes = ChangesOf(unix->id);
  ASSERT_TRUE(Backups().End({.id = unix->id}).ok());
  for (const auto& changes : unix_changes) {
    EXPECT_EQ(changes, (Ranges{{1 << 20, 1 << 20}, {6 << 20, 64 << 10}}));
  }

  auto s = Backups().Begin({.collection_id = g_.collection_id,
                            .incremental_from = rp->id,
                            .transport = engine::BackupTransport::kTcp});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(ChangesOf(s->id), unix_changes);
  for (size_t i = 0; i < s->members.size(); ++i) {
    const engine::BackupDisk& d = s->members[i].disks.at(0);
    EXPECT_EQ(Dirty(MapText(Certified(d.uri), d.context)), unix_changes.at(i)) << "VM " << i;
  }
  auto part = Backups().Changes(s->id, g_.vm_ids[0], 0, 1536 << 10, 4 << 20);
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  EXPECT_EQ(part->ranges, (std::vector<storage::ByteRange>{{1536 << 10, 512 << 10}}));
  EXPECT_EQ(part->processed, uint64_t{4} << 20);

  const std::string aside = dir_ / "aside";
  fs::create_directories(aside);
  for (const char* file : {"client-cert.pem", "client-key.pem"}) {
    fs::rename(server_ + "/" + file, aside + "/" + file);
  }
  auto refused = Backups().Changes(s->id, g_.vm_ids[0], 0, 0, 0);
  EXPECT_EQ(refused.status().code(), Code::kNotSupported) << refused.status().ToString();
  for (const char* named : {"client-cert.pem", "client-key.pem", "nbdinfo --map"}) {
    EXPECT_NE(refused.status().message().find(named), std::string::npos)
        << named << " not in: " << refused.status().ToString();
  }
  for (const char* file : {"client-cert.pem", "client-key.pem"}) {
    fs::rename(aside + "/" + file, server_ + "/" + file);
  }
  EXPECT_EQ(ChangesOf(s->id), unix_changes) << "the files, once added, are used";
  ASSERT_TRUE(Backups().End({.id = s->id}).ok());
}

}  // namespace
}  // namespace vmgroup::integration
