// export_bench: ExportSnapshot (a full export of a group snapshot) against
// its durable peer, measured in the same run (issue 19): `qemu-img convert
// -U -O qcow2` of the snapshot's frozen image followed by an fsync of its
// output (a backup a power cut can still lose is not done). One running VM
// (firmware only, TCG) whose disk of --disk-mib is written full before a
// recovery snapshot; then rounds of
//   - vmgroup's export of that snapshot (copy, checksum, sync, manifest),
//   - the peer, its convert and its sync timed apart,
// interleaved and alternating which goes first, so that the load of the
// moment falls on both alike; each into a fresh directory removed after,
// each started after a `sync` (none pays for the write-back of another).
// Throughput is virtual disk bytes per second; the headline is the median
// of the per-round throughput ratios export / (convert + sync), against
// the target of 0.9. The load average and CPU pressure are printed before
// and after.
// Then the incremental cycle (--incremental-rounds, 0 skips it): the
// snapshot is exported in full and converted to a reference point; per
// round, --changed-pct of the disk's 64 KiB clusters (spread evenly) are
// written through the VM's QEMU, a recovery snapshot is taken and exported
// both incrementally (against the last reference point) and in full, and
// converted in turn. Reports the bytes the incremental export holds against
// the disk size, and the two times. Prints tables, then the JSON (also
// --json FILE).
//
//   build/bench/export_bench [--disk-mib 1024] [--rounds 9] [--incremental-rounds 5]
//                            [--changed-pct 1] [--json FILE]
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/snapshot_plan.h"
#include "host_load.h"
#include "report.h"
#include "stats.h"
#include "testing/guest_io.h"
#include "testing/temp_dir.h"
#include "testing/tiny_vms.h"

namespace {

using namespace vmgroup;
using namespace vmgroup::bench;
using nlohmann::json;

// The target: a full export at no less than this fraction of the
// durable peer's throughput.
constexpr double kTarget = 0.9;

struct Args {
  int disk_mib = 1024, rounds = 9, incremental_rounds = 5;
  double changed_pct = 1;
  std::string json_file;
};

struct Measured {
  std::vector<int64_t> export_us, convert_us, convert_sync_us;
  std::vector<double> ratio;  // per round: export throughput / convert + sync's
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
  for (int r = 1; r <= a.incremental_rounds; ++r) {
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

// The full-export rounds, then the incremental ones, on the running VM.
Status MeasureRunning(const Args& a, engine::Engine& engine, const testing::TempDir& dir,
                      const std::string& collection, const std::string& monitor, uint64_t bytes,
                      Measured* measured) {
  Measured& m = *measured;
  VMG_ASSIGN_OR_RETURN(auto snap, engine.snapshots().Create({.collection_id = collection,
                                                             .type = engine::kSnapshotRecovery}));
  const std::string frozen = snap.members[0].disks[0].frozen_image;
  Status status;
  // One step, timed from after a `sync`; `out` is removed after.
  auto step = [&](const std::string& out, const std::function<Status(Clock::time_point)>& run,
                  int64_t* us) {
    if (status.ok()) status = RunOk({"sync"});
    const auto t0 = Clock::now();
    if (status.ok()) status = run(t0);
    *us = Since(t0);
    std::filesystem::remove_all(out);
  };
  for (int r = 0; r <= a.rounds && status.ok(); ++r) {  // round 0 warms the page cache
    const std::string out = dir / ("round" + std::to_string(r)), copy = dir / "peer.qcow2";
    int64_t ours = 0, convert = 0, peer = 0;
    auto run_export = [&] {
      step(
          out,
          [&](Clock::time_point) {
            return engine.snapshots().Export({.snapshot_id = snap.id, .directory = out}).status();
          },
          &ours);
    };
    auto run_peer = [&] {
      step(
          copy,
          [&](Clock::time_point t0) {
            VMG_RETURN_IF_ERROR(
                RunOk({"qemu-img", "convert", "-U", "-f", "qcow2", "-O", "qcow2", frozen, copy}));
            convert = Since(t0);
            return Env::Default()->SyncFile(copy);
          },
          &peer);
    };
    if (r % 2 == 0) {
      run_export();
      run_peer();
    } else {
      run_peer();
      run_export();
    }
    if (r == 0 || !status.ok()) continue;
    m.export_us.push_back(ours);
    m.convert_us.push_back(convert);
    m.convert_sync_us.push_back(peer);
    m.ratio.push_back(static_cast<double>(peer) / static_cast<double>(ours));
  }
  VMG_RETURN_IF_ERROR(status);
  if (a.incremental_rounds == 0) return Status::Ok();
  return MeasureIncremental(a, engine, dir, collection, snap.id, monitor, bytes, measured);
}

Result<Measured> Measure(const Args& a) {
  testing::TempDir dir;
  auto e = engine::Engine::Open({.state_dir = dir / "state", .qemu = testing::TestQemu()});
  if (!e.ok()) return e.status();
  engine::Engine& engine = **e;
  const uint64_t bytes = uint64_t(a.disk_mib) << 20;
  VMG_ASSIGN_OR_RETURN(
      auto group,
      testing::MakeTinyGroup(
          engine, dir / "images", "x", 1,
          {.disks = 1, .disk_bytes = bytes, .config = {.memory_mib = 64}, .guest_monitor = true},
          /*start=*/false));
  const std::string monitor = testing::GuestMonitorPath(dir / "images", "x0");
  const std::string vm = group.vm_ids[0];
  VMG_ASSIGN_OR_RETURN(auto record, engine.catalog().GetVm(vm));
  VMG_RETURN_IF_ERROR(
      RunOk({"qemu-io", "-c", "write -P 0x5a 0 " + std::to_string(bytes), record.disks[0]}));
  VMG_RETURN_IF_ERROR(engine.vms().Start(vm));
  Measured m;
  Status status = MeasureRunning(a, engine, dir, group.collection_id, monitor, bytes, &m);
  // The VM's QEMU goes also when a measurement failed (the engine kills one
  // that does not quit).
  Status stop = engine.vms().StopAll();
  VMG_RETURN_IF_ERROR(status);
  VMG_RETURN_IF_ERROR(stop);
  return m;
}

int Usage() {
  std::fprintf(stderr,
               "usage: export_bench [--disk-mib N] [--rounds N] [--incremental-rounds N]\n"
               "                    [--changed-pct P] [--json FILE]\n");
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
    } else if (arg == "--incremental-rounds") {
      a.incremental_rounds = std::stoi(argv[++i]);
    } else if (arg == "--json") {
      a.json_file = argv[++i];
    } else {
      return Usage();
    }
  }
  if (a.rounds < 1 || a.incremental_rounds < 0 || a.disk_mib < 1) return Usage();
  const std::string load_before = HostLoad();
  auto m = Measure(a);
  const std::string load_after = HostLoad();
  if (!m.ok()) {
    std::fprintf(stderr, "export_bench: %s\n", m.status().ToString().c_str());
    return 1;
  }
  const double mib = a.disk_mib;
  auto row = [&](const char* what, const std::vector<int64_t>& us) {
    std::printf("%-36s | %8.3f %8.3f | %8.1f\n", what, Median(us) / 1e6, P95(us) / 1e6,
                mib / (Median(us) / 1e6));
  };
  const double ratio = Median(m->ratio), low = Quantile(m->ratio, 0.05);
  const bool met = ratio >= kTarget;
  std::printf("full export of a %d MiB disk (written full), %d rounds, interleaved\n", a.disk_mib,
              a.rounds);
  std::printf("%-36s | %8s %8s | %8s\n", "", "median s", "p95 s", "MiB/s");
  for (const auto& [what, us] : {std::pair{"vmgroup export (checksummed, synced)", &m->export_us},
                                 {"qemu-img convert + sync", &m->convert_sync_us},
                                 {"  of which qemu-img convert", &m->convert_us}}) {
    row(what, *us);
  }
  std::printf("export / (convert + sync), per round: median %.2f, p5 %.2f; target %.2f: %s\n",
              ratio, low, kTarget, met ? "met" : "MISSED");
  std::printf("host before: %s\nhost after:  %s\n", load_before.c_str(), load_after.c_str());
  json doc = {{"disk_mib", a.disk_mib},
              {"rounds", a.rounds},
              {"export_us", m->export_us},
              {"convert_us", m->convert_us},
              {"convert_sync_us", m->convert_sync_us},
              {"ratio_to_convert_sync", m->ratio},
              {"ratio_median", ratio},
              {"ratio_p5", low},
              {"target", kTarget},
              {"target_met", met},
              {"load_before", load_before},
              {"load_after", load_after}};
  if (a.incremental_rounds > 0) {
    const double moved = Median(m->incremental_bytes) / (mib * 1024 * 1024);
    const double faster = Median(m->full_us) / Median(m->incremental_us);
    std::printf("\nincremental export after %.1f %% of the clusters changed, %d rounds, medians\n",
                a.changed_pct, a.incremental_rounds);
    std::printf("%-34s | %9.3f s | %7.2f MiB (%.2f %% of the disk)\n", "incremental export",
                Median(m->incremental_us) / 1e6, Median(m->incremental_bytes) / 1048576.0,
                moved * 100);
    std::printf("%-34s | %9.3f s\n", "full export of the same snapshot", Median(m->full_us) / 1e6);
    std::printf("incremental: %.2f %% of the disk moved, %.1fx faster than the full export\n",
                moved * 100, faster);
    doc.update({{"changed_pct", a.changed_pct},
                {"incremental_rounds", a.incremental_rounds},
                {"incremental_us", m->incremental_us},
                {"incremental_bytes", m->incremental_bytes},
                {"full_us", m->full_us},
                {"moved_fraction", moved},
                {"incremental_speedup", faster}});
  }
  std::printf("%s\n", doc.dump().c_str());
  if (!a.json_file.empty()) std::ofstream(a.json_file) << doc.dump(2) << "\n";
  return 0;
}
