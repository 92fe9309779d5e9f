// export_bench: ExportSnapshot (a full export of a group snapshot) against
// qemu-img convert of the same image, measured in the same run (issue 5).
// One running VM (firmware only, TCG) whose disk of --disk-mib is written
// full before a recovery snapshot; then rounds, in turn, of
//   - vmgroup's export of that snapshot (copy, sync, checksum, manifest),
//   - the peer: `qemu-img convert -U -O qcow2` of the snapshot's frozen
//     image, alone and followed by a sync of its output (the same
//     durability as the export),
// each into a fresh directory that is removed after, and each started with
// nothing left to write back from the one before (a `sync` first).
// Throughput is virtual disk bytes per second.
// Then the incremental cycle: the snapshot is exported in full and
// converted to a reference point; per round, --changed-pct of the disk's
// 64 KiB clusters (spread evenly) are written through the VM's QEMU, a
// recovery snapshot is taken and exported both incrementally (against the
// last reference point) and in full, and converted in turn. Reports the
// bytes the incremental export holds against the disk size, and the two
// times. Prints a table, then the JSON (also --json FILE).
//
//   build/bench/export_bench [--disk-mib 1024] [--rounds 5] [--changed-pct 1] [--json FILE]
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/snapshot_plan.h"
#include "report.h"
#include "stats.h"
#include "testing/guest_io.h"
#include "testing/temp_dir.h"
#include "testing/tiny_vms.h"

namespace {

using namespace vmgroup;
using namespace vmgroup::bench;
using nlohmann::json;

struct Args {
  int disk_mib = 1024, rounds = 5;
  double changed_pct = 1;
  std::string json_file;
};

struct Measured {
  std::vector<int64_t> export_us, convert_us, convert_sync_us;
  std::vector<int64_t> incremental_us, full_us, incremental_bytes;
};

int64_t Since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
}

Status RunOk(const std::vector<std::string>& argv) {
  VMG_ASSIGN_OR_RETURN(auto out, Env::Default()->Run(argv, std::chrono::minutes(30)));
  if (out.exit_code != 0) return Status::IoError(argv[0] + " failed: " + out.err);
  return Status::Ok();
}

// The incremental rounds on the running VM, from snapshot `first`.
Status MeasureIncremental(const Args& a, engine::Engine& engine, const testing::TempDir& dir,
                          const std::string& collection, const std::string& first,
                          const std::string& monitor, uint64_t bytes, Measured* m) {
  auto& snaps = engine.snapshots();
  VMG_RETURN_IF_ERROR(snaps.Export({.snapshot_id = first, .directory = dir / "base"}).status());
  VMG_ASSIGN_OR_RETURN(auto rp, snaps.ConvertToReferencePoint(first));
  storage::QemuImg img(Env::Default());
  for (int r = 1; r <= a.rounds; ++r) {
    VMG_RETURN_IF_ERROR(testing::WriteSpreadClusters(monitor, bytes, a.changed_pct, r));
    VMG_ASSIGN_OR_RETURN(
        auto s, snaps.Create({.collection_id = collection, .type = engine::kSnapshotRecovery}));
    const std::string inc = dir / ("inc" + std::to_string(r)), full = dir / "full";
    VMG_RETURN_IF_ERROR(RunOk({"sync"}));
    auto t0 = Clock::now();
    VMG_ASSIGN_OR_RETURN(auto mi,
                         snaps.Export({.snapshot_id = s.id, .directory = inc, .base = rp.id}));
    m->incremental_us.push_back(Since(t0));
    VMG_ASSIGN_OR_RETURN(auto held, img.OwnDataBytes(inc + "/" + mi.vms[0].disks[0].file));
    m->incremental_bytes.push_back(static_cast<int64_t>(held));
    VMG_RETURN_IF_ERROR(RunOk({"sync"}));
    t0 = Clock::now();
    VMG_RETURN_IF_ERROR(snaps.Export({.snapshot_id = s.id, .directory = full}).status());
    m->full_us.push_back(Since(t0));
    std::filesystem::remove_all(full);
    // The next round builds on this one, as a backup product's chain does.
    VMG_ASSIGN_OR_RETURN(rp, snaps.ConvertToReferencePoint(s.id));
  }
  return Status::Ok();
}

Result<Measured> Measure(const Args& a) {
  testing::TempDir dir;
  auto e = engine::Engine::Open({.state_dir = dir / "state", .qemu = testing::TestQemu()});
  if (!e.ok()) return e.status();
  engine::Engine& engine = **e;
  const uint64_t bytes = uint64_t(a.disk_mib) << 20;
  const std::string monitor = dir / "bench.sock";
  VMG_ASSIGN_OR_RETURN(
      auto group,
      testing::MakeTinyGroup(
          engine, dir / "images", "x", 1,
          {.disks = 1,
           .disk_bytes = bytes,
           .config = {.memory_mib = 64, .extra_args = testing::GuestMonitorArgs(monitor)}},
          /*start=*/false));
  const std::string vm = group.vm_ids[0];
  VMG_ASSIGN_OR_RETURN(auto record, engine.catalog().GetVm(vm));
  VMG_RETURN_IF_ERROR(
      RunOk({"qemu-io", "-c", "write -P 0x5a 0 " + std::to_string(bytes), record.disks[0]}));
  VMG_RETURN_IF_ERROR(engine.vms().Start(vm));
  VMG_ASSIGN_OR_RETURN(auto snap, engine.snapshots().Create({.collection_id = group.collection_id,
                                                             .type = engine::kSnapshotRecovery}));
  const std::string frozen = snap.members[0].disks[0].frozen_image;
  Measured m;
  Status status;
  for (int r = 0; r <= a.rounds && status.ok(); ++r) {  // round 0 warms the page cache
    const std::string out = dir / ("round" + std::to_string(r));
    status = RunOk({"sync"});
    auto t0 = Clock::now();
    if (status.ok()) {
      status = engine.snapshots().Export({.snapshot_id = snap.id, .directory = out}).status();
    }
    if (r > 0) m.export_us.push_back(Since(t0));
    std::filesystem::remove_all(out);
    for (bool sync : {false, true}) {
      if (!status.ok()) break;
      const std::string copy = dir / "peer.qcow2";
      status = RunOk({"sync"});
      t0 = Clock::now();
      if (status.ok()) {
        status = RunOk({"qemu-img", "convert", "-U", "-f", "qcow2", "-O", "qcow2", frozen, copy});
      }
      if (status.ok() && sync) status = Env::Default()->SyncFile(copy);
      if (r > 0) (sync ? m.convert_sync_us : m.convert_us).push_back(Since(t0));
      std::filesystem::remove(copy);
    }
  }
  if (status.ok()) {
    status = MeasureIncremental(a, engine, dir, group.collection_id, snap.id, monitor, bytes, &m);
  }
  Status stop = engine.vms().StopAll();
  VMG_RETURN_IF_ERROR(status);
  VMG_RETURN_IF_ERROR(stop);
  return m;
}

int Usage() {
  std::fprintf(stderr,
               "usage: export_bench [--disk-mib N] [--rounds N] [--changed-pct P] [--json FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return Usage();
    if (arg == "--disk-mib") {
      a.disk_mib = std::stoi(argv[++i]);
    } else if (arg == "--changed-pct") {
      a.changed_pct = std::stod(argv[++i]);
    } else if (arg == "--rounds") {
      a.rounds = std::stoi(argv[++i]);
    } else if (arg == "--json") {
      a.json_file = argv[++i];
    } else {
      return Usage();
    }
  }
  auto m = Measure(a);
  if (!m.ok()) {
    std::fprintf(stderr, "export_bench: %s\n", m.status().ToString().c_str());
    return 1;
  }
  const double mib = a.disk_mib;
  auto rate = [&](const std::vector<int64_t>& us) { return mib / (Median(us) / 1e6); };
  const double ours = rate(m->export_us), peer = rate(m->convert_us),
               peer_sync = rate(m->convert_sync_us);
  std::printf("full export of a %d MiB disk (written full), %d rounds, medians\n", a.disk_mib,
              a.rounds);
  std::printf("%-34s | %9s | %9s\n", "", "seconds", "MiB/s");
  std::printf("%-34s | %9.3f | %9.1f\n", "vmgroup export (synced, checksummed)",
              Median(m->export_us) / 1e6, ours);
  std::printf("%-34s | %9.3f | %9.1f\n", "qemu-img convert", Median(m->convert_us) / 1e6, peer);
  std::printf("%-34s | %9.3f | %9.1f\n", "qemu-img convert + sync",
              Median(m->convert_sync_us) / 1e6, peer_sync);
  std::printf("throughput ratio: %.2f of qemu-img convert, %.2f of convert + sync\n", ours / peer,
              ours / peer_sync);
  const double moved = Median(m->incremental_bytes) / (mib * 1024 * 1024);
  const double faster = Median(m->full_us) / Median(m->incremental_us);
  std::printf("\nincremental export after %.1f %% of the clusters changed, %d rounds, medians\n",
              a.changed_pct, a.rounds);
  std::printf("%-34s | %9.3f s | %7.2f MiB (%.2f %% of the disk)\n", "incremental export",
              Median(m->incremental_us) / 1e6, Median(m->incremental_bytes) / 1048576.0,
              moved * 100);
  std::printf("%-34s | %9.3f s\n", "full export of the same snapshot", Median(m->full_us) / 1e6);
  std::printf("incremental: %.2f %% of the disk moved, %.1fx faster than the full export\n",
              moved * 100, faster);
  json doc = {{"disk_mib", a.disk_mib},
              {"changed_pct", a.changed_pct},
              {"incremental_us", m->incremental_us},
              {"incremental_bytes", m->incremental_bytes},
              {"full_us", m->full_us},
              {"moved_fraction", moved},
              {"incremental_speedup", faster},
              {"rounds", a.rounds},
              {"export_us", m->export_us},
              {"convert_us", m->convert_us},
              {"convert_sync_us", m->convert_sync_us},
              {"ratio_to_convert", ours / peer},
              {"ratio_to_convert_sync", ours / peer_sync}};
  std::printf("%s\n", doc.dump().c_str());
  if (!a.json_file.empty()) std::ofstream(a.json_file) << doc.dump(2) << "\n";
  return 0;
}
