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
// Throughput is virtual disk bytes per second. Prints a table, then the JSON (also --json FILE).
//
//   build/bench/export_bench [--disk-mib 1024] [--rounds 5] [--json FILE]
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/snapshot_plan.h"
#include "report.h"
#include "stats.h"
#include "testing/temp_dir.h"
#include "testing/tiny_vms.h"

namespace {

using namespace vmgroup;
using namespace vmgroup::bench;
using nlohmann::json;

struct Args {
  int disk_mib = 1024, rounds = 5;
  std::string json_file;
};

struct Measured {
  std::vector<int64_t> export_us, convert_us, convert_sync_us;
};

int64_t Since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
}

Status RunOk(const std::vector<std::string>& argv) {
  VMG_ASSIGN_OR_RETURN(auto out, Env::Default()->Run(argv, std::chrono::minutes(30)));
  if (out.exit_code != 0) return Status::IoError(argv[0] + " failed: " + out.err);
  return Status::Ok();
}

Result<Measured> Measure(const Args& a) {
  testing::TempDir dir;
  auto e =
      engine::Engine::Open({.state_dir = dir / "state", .qemu = {.accel = testing::kTestAccel}});
  if (!e.ok()) return e.status();
  engine::Engine& engine = **e;
  const uint64_t bytes = uint64_t(a.disk_mib) << 20;
  VMG_ASSIGN_OR_RETURN(auto group,
                       testing::MakeTinyGroup(engine, dir / "images", "x", 1,
                                              {.disks = 1, .disk_bytes = bytes}, /*start=*/false));
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
  Status stop = engine.vms().StopAll();
  VMG_RETURN_IF_ERROR(status);
  VMG_RETURN_IF_ERROR(stop);
  return m;
}

int Usage() {
  std::fprintf(stderr, "usage: export_bench [--disk-mib N] [--rounds N] [--json FILE]\n");
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
  json doc = {{"disk_mib", a.disk_mib},
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
