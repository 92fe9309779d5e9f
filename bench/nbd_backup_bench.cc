// nbd_backup_bench: reading a backup session (issue 17) as backup products
// do, against qemu-img convert of the same frozen image, in the same run.
// One running VM (firmware only, TCG) with a second monitor; its disk of
// --disk-mib is written full (non-zero bytes) before it starts.
//
// Full reads: one full session; per round, in turn,
//   - `nbdcopy URI FILE` of its disk, then a sync of FILE (the headline),
//   - `qemu-img convert -U -O raw FROZEN FILE` of the session's frozen
//     image, then a sync of FILE (the peer, equally durable),
//   - the same convert with `-t none -W` (O_DIRECT, out of order), synced:
//     a peer that, like nbdcopy (which writes back and drops its output
//     as it goes), leaves no page cache behind,
//   - `nbdcopy URI null:` (reading alone, nothing written),
// each started with nothing left to write back from the one before (a
// `sync` first); round 0 warms the page cache and is not counted. The
// session is ended into a reference point.
//
// Incremental reads: per round, --changed-pct of the disk's 64 KiB
// clusters (spread evenly) are written through the VM's second monitor
// while tracking runs; then an incremental session since the last reference
// point, read as a backup product reads it over one libnbd connection:
// block status of the session's context over the disk, then nbd_pread of
// exactly the marked ranges, appended to a file, synced. The same session's
// disk is also read in full by nbdcopy + sync; the session is then ended
// into the next reference point.
//
// Targets (issue 17): full read >= 0.8 of qemu-img convert's throughput;
// incremental read <= 1/20 of the full read's time (medians). Prints a
// table, PASS/FAIL per target, then the JSON (also --json FILE). Exits 0
// when it measured, whatever the verdicts.
//
//   build/bench/nbd_backup_bench [--disk-mib 1024] [--rounds 5] [--changed-pct 1] [--json FILE]
#include <fcntl.h>
#include <libnbd.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/backup_sessions.h"
#include "host_load.h"
#include "stats.h"
#include "testing/guest_io.h"
#include "testing/temp_dir.h"
#include "testing/tiny_vms.h"

namespace {

using namespace vmgroup;
using namespace vmgroup::bench;
using nlohmann::json;
constexpr uint64_t kCluster = 64 << 10;
constexpr uint64_t kMaxRead = 4 << 20;  // NBD servers refuse reads over 32 MiB

struct Args {
  int disk_mib = 1024, rounds = 5;
  double changed_pct = 1;
  std::string json_file;
};

struct Measured {
  // Full reads: copy alone, and copy + sync of its output.
  std::vector<int64_t> nbdcopy_us, nbdcopy_sync_us, convert_us, convert_sync_us, null_us;
  // qemu-img convert -t none -W: O_DIRECT out of order, past the page cache.
  std::vector<int64_t> direct_sync_us;
  // Incremental reads: the map (block status), map + data + sync, the bytes
  // read, and a full nbdcopy + sync of the same session's disk.
  std::vector<int64_t> map_us, incremental_us, incremental_bytes, same_full_us;
};

// Microseconds since it was made, at each call.
class Stopwatch {
 public:
  int64_t Us() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_).count();
  }

 private:
  Clock::time_point start_ = Clock::now();
};

Status Exec(const std::vector<std::string>& argv) {
  VMG_ASSIGN_OR_RETURN(auto r, Env::Default()->Run(argv, std::chrono::minutes(30)));
  return r.exit_code == 0 ? Status::Ok() : Status::IoError(argv[0] + ": " + r.err);
}

// Runs `copy`, which writes file `out` (none when empty), then syncs and
// removes `out`: the copy's time, and its time to durable, in `alone_us`
// and `synced_us`. Starts from a synced host.
Status TimeCopy(const std::vector<std::string>& copy, const std::string& out, int64_t* alone_us,
                int64_t* synced_us) {
  VMG_RETURN_IF_ERROR(Exec({"sync"}));
  Stopwatch w;
  VMG_RETURN_IF_ERROR(Exec(copy));
  *alone_us = *synced_us = w.Us();
  if (out.empty()) return Status::Ok();
  VMG_RETURN_IF_ERROR(Env::Default()->SyncFile(out));
  *synced_us = w.Us();
  return Env::Default()->RemoveFile(out);
}

Status NbdError(const char* what) {
  return Status::IoError(std::string(what) + ": " + nbd_get_error());
}

struct Ranges {
  std::string context;
  std::vector<std::pair<uint64_t, uint64_t>> marked;  // (offset, length), bit 0 set
  uint64_t covered = 0;                               // how far the replies described
};

int OnExtents(void* data, const char* context, uint64_t offset, uint32_t* entries, size_t n, int*) {
  auto* r = static_cast<Ranges*>(data);
  if (r->context != context) return 0;
  for (size_t i = 0; i + 1 < n; i += 2) {
    if (entries[i + 1] & 1) r->marked.emplace_back(offset, entries[i]);
    offset += entries[i];
  }
  r->covered = offset;
  return 0;
}

// What a backup product does with an incremental disk: over one connection,
// block status of `context` over the disk, then every marked range read and
// appended to `out`, which is synced. Times the map alone and the whole.
Status ReadIncremental(const engine::BackupDisk& d, const std::string& out, int64_t* map_us,
                       int64_t* total_us, int64_t* bytes) {
  VMG_RETURN_IF_ERROR(Exec({"sync"}));
  Stopwatch w;
  std::unique_ptr<nbd_handle, void (*)(nbd_handle*)> h(nbd_create(), nbd_close);
  if (!h) return NbdError("nbd_create");
  if (nbd_add_meta_context(h.get(), d.context.c_str()) == -1) return NbdError("meta context");
  if (nbd_connect_uri(h.get(), d.uri.c_str()) == -1) return NbdError("connect");
  Ranges ranges{.context = d.context};
  while (ranges.covered < d.size) {
    const uint64_t at = ranges.covered;
    const uint64_t count = std::min<uint64_t>(d.size - at, uint64_t{1} << 30);
    if (nbd_block_status(h.get(), count, at, {.callback = OnExtents, .user_data = &ranges}, 0) ==
        -1) {
      return NbdError("block status");
    }
    if (ranges.covered <= at) return Status::IoError("block status made no progress");
  }
  *map_us = w.Us();
  UniqueFd fd;
  VMG_ASSIGN_OR_RETURN(fd, Env::Default()->OpenFile(out, O_WRONLY | O_CREAT | O_TRUNC, 0600));
  std::vector<char> buf;
  *bytes = 0;
  for (const auto& [offset, length] : ranges.marked) {
    for (uint64_t at = offset; at < offset + length; at += buf.size()) {
      buf.resize(std::min<uint64_t>(offset + length - at, kMaxRead));
      if (nbd_pread(h.get(), buf.data(), buf.size(), at, 0) == -1) return NbdError("pread");
      if (write(fd.get(), buf.data(), buf.size()) != static_cast<ssize_t>(buf.size())) {
        return Status::IoError("cannot write " + out);
      }
    }
    *bytes += static_cast<int64_t>(length);
  }
  if (fdatasync(fd.get()) != 0) return Status::IoError("cannot sync " + out);
  nbd_shutdown(h.get(), 0);
  *total_us = w.Us();
  return Env::Default()->RemoveFile(out);
}

// The rounds, on a running VM of `collection`; `*session` is the one open
// (for the caller to end on an error), "" when none is.
Status Rounds(const Args& a, engine::Engine& engine, const testing::TempDir& dir,
              const std::string& collection, const std::string& monitor, std::string* session,
              Measured* m) {
  engine::BackupSessions& backups = engine.snapshots().backups();
  VMG_ASSIGN_OR_RETURN(auto full, backups.Begin({.collection_id = collection}));
  *session = full.id;
  VMG_ASSIGN_OR_RETURN(auto snap, engine.catalog().GetSnapshot(full.snapshot_id));
  const std::string frozen = snap.members.at(0).disks.at(0).frozen_image;
  const engine::BackupDisk disk = full.members.at(0).disks.at(0);
  const std::string out = dir / "out.raw";
  for (int r = 0; r <= a.rounds; ++r) {
    int64_t copy = 0, synced = 0, unused = 0;
    VMG_RETURN_IF_ERROR(TimeCopy({"nbdcopy", disk.uri, out}, out, &copy, &synced));
    if (r > 0) m->nbdcopy_us.push_back(copy), m->nbdcopy_sync_us.push_back(synced);
    VMG_RETURN_IF_ERROR(
        TimeCopy({"qemu-img", "convert", "-U", "-O", "raw", frozen, out}, out, &copy, &synced));
    if (r > 0) m->convert_us.push_back(copy), m->convert_sync_us.push_back(synced);
    VMG_RETURN_IF_ERROR(
        TimeCopy({"qemu-img", "convert", "-U", "-t", "none", "-W", "-O", "raw", frozen, out}, out,
                 &copy, &synced));
    if (r > 0) m->direct_sync_us.push_back(synced);
    VMG_RETURN_IF_ERROR(TimeCopy({"nbdcopy", disk.uri, "null:"}, "", &copy, &unused));
    if (r > 0) m->null_us.push_back(copy);
  }
  VMG_ASSIGN_OR_RETURN(auto point, backups.End({.id = full.id, .to_reference_point = true}));
  session->clear();
  if (!point) return Status::Failed("the full session made no reference point");
  for (int r = 1; r <= a.rounds; ++r) {
    VMG_RETURN_IF_ERROR(testing::WriteSpreadClusters(monitor, disk.size, a.changed_pct, r));
    VMG_ASSIGN_OR_RETURN(
        auto inc, backups.Begin({.collection_id = collection, .incremental_from = point->id}));
    *session = inc.id;
    const engine::BackupDisk& d = inc.members.at(0).disks.at(0);
    if (d.context.empty()) return Status::Failed("read in full: " + d.full_read_reason);
    int64_t map = 0, total = 0, bytes = 0, unused = 0, synced = 0;
    VMG_RETURN_IF_ERROR(ReadIncremental(d, out, &map, &total, &bytes));
    m->map_us.push_back(map), m->incremental_us.push_back(total);
    m->incremental_bytes.push_back(bytes);
    VMG_RETURN_IF_ERROR(TimeCopy({"nbdcopy", d.uri, out}, out, &unused, &synced));
    m->same_full_us.push_back(synced);
    // The next round reads what changed since this one, as a backup chain does.
    VMG_ASSIGN_OR_RETURN(point, backups.End({.id = inc.id, .to_reference_point = true}));
    session->clear();
    if (!point) return Status::Failed("the incremental session made no reference point");
  }
  return Status::Ok();
}

Result<Measured> Measure(const Args& a) {
  testing::TempDir dir;
  VMG_ASSIGN_OR_RETURN(
      auto owned, engine::Engine::Open({.state_dir = dir / "state", .qemu = testing::TestQemu()}));
  engine::Engine& engine = *owned;
  const uint64_t bytes = uint64_t(a.disk_mib) << 20;
  VMG_ASSIGN_OR_RETURN(
      auto group,
      testing::MakeTinyGroup(
          engine, dir / "images", "nb", 1,
          {.disks = 1, .disk_bytes = bytes, .config = {.memory_mib = 64}, .guest_monitor = true},
          /*start=*/false));
  const std::string vm = group.vm_ids[0];
  VMG_ASSIGN_OR_RETURN(auto record, engine.catalog().GetVm(vm));
  VMG_RETURN_IF_ERROR(
      Exec({"qemu-io", "-c", "write -P 0x5a 0 " + std::to_string(bytes), record.disks[0]}));
  Measured m;
  std::string open;
  Status status = engine.vms().Start(vm);
  if (status.ok()) {
    status = Rounds(a, engine, dir, group.collection_id,
                    testing::GuestMonitorPath(dir / "images", "nb0"), &open, &m);
  }
  Status ended =
      open.empty() ? Status::Ok() : engine.snapshots().backups().End({.id = open}).status();
  Status stopped = engine.vms().StopAll();
  VMG_RETURN_IF_ERROR(status);
  VMG_RETURN_IF_ERROR(ended);
  VMG_RETURN_IF_ERROR(stopped);
  return m;
}

int Usage() {
  std::fprintf(
      stderr,
      "usage: nbd_backup_bench [--disk-mib N] [--rounds N] [--changed-pct P] [--json FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  const std::map<std::string, std::function<void(const std::string&)>> flags = {
      {"--disk-mib", [&](const std::string& v) { a.disk_mib = std::stoi(v); }},
      {"--rounds", [&](const std::string& v) { a.rounds = std::stoi(v); }},
      {"--changed-pct", [&](const std::string& v) { a.changed_pct = std::stod(v); }},
      {"--json", [&](const std::string& v) { a.json_file = v; }}};
  if (argc % 2 == 0) return Usage();  // every flag takes a value
  for (int i = 1; i < argc; i += 2) {
    auto flag = flags.find(argv[i]);
    if (flag == flags.end()) return Usage();
    flag->second(argv[i + 1]);
  }
  if (a.rounds < 1 || a.disk_mib < 1) return Usage();
  // The host's load, to judge the figures by: peers share its two cores.
  const std::string load_before = HostLoad();
  auto m = Measure(a);
  const std::string load_after = HostLoad();
  if (!m.ok()) {
    std::fprintf(stderr, "nbd_backup_bench: %s\n", m.status().ToString().c_str());
    return 1;
  }
  const double mib = a.disk_mib;
  auto row = [&](const char* what, const std::vector<int64_t>& us) {
    std::printf("%-36s | %8.3f %8.3f | %8.1f\n", what, Median(us) / 1e6, P95(us) / 1e6,
                mib / (Median(us) / 1e6));
  };
  std::printf("load before: %s\nload after:  %s\n", load_before.c_str(), load_after.c_str());
  std::printf("full read of a %d MiB disk (written full), %d rounds\n", a.disk_mib, a.rounds);
  std::printf("%-36s | %8s %8s | %8s\n", "", "median s", "p95 s", "MiB/s");
  row("nbdcopy URI FILE + sync", m->nbdcopy_sync_us);
  row("qemu-img convert -O raw + sync", m->convert_sync_us);
  row("qemu-img convert -t none -W + sync", m->direct_sync_us);
  row("nbdcopy URI FILE (no sync)", m->nbdcopy_us);
  row("qemu-img convert -O raw (no sync)", m->convert_us);
  row("nbdcopy URI null:", m->null_us);
  const double full_ratio = Median(m->convert_sync_us) / Median(m->nbdcopy_sync_us);
  std::printf(
      "throughput ratio nbdcopy / qemu-img convert, synced: %.2f (unsynced %.2f; "
      "against -t none -W %.2f)\n",
      full_ratio, Median(m->convert_us) / Median(m->nbdcopy_us),
      Median(m->direct_sync_us) / Median(m->nbdcopy_sync_us));

  const double full = Median(m->nbdcopy_sync_us);
  const double inc = Median(m->incremental_us);
  std::printf("\nincremental read after %.1f %% of the clusters changed, %d rounds\n",
              a.changed_pct, a.rounds);
  std::printf("%-36s | %8s %8s\n", "", "median s", "p95 s");
  auto srow = [](const char* what, const std::vector<int64_t>& us) {
    std::printf("%-36s | %8.3f %8.3f\n", what, Median(us) / 1e6, P95(us) / 1e6);
  };
  srow("connect + block status (the map)", m->map_us);
  srow("map + pread of ranges + sync", m->incremental_us);
  srow("full read of the same session + sync", m->same_full_us);
  std::printf(
      "incremental read %.2f MiB (%.2f %% of the disk), %.4f of the full read's time "
      "(%.4f of the same session's)\n",
      Median(m->incremental_bytes) / 1048576.0, Median(m->incremental_bytes) / (mib * 10485.76),
      inc / full, inc / Median(m->same_full_us));

  const bool full_pass = full_ratio >= 0.8, inc_pass = inc / full <= 1.0 / 20;
  std::printf("\ntargets:\n  full read >= 0.8 of qemu-img convert's throughput: %.2f %s\n",
              full_ratio, full_pass ? "PASS" : "FAIL");
  std::printf("  incremental <= 1/20 of the full read's time: %.4f (1/%.0f) %s\n", inc / full,
              full / inc, inc_pass ? "PASS" : "FAIL");
  json doc = {{"disk_mib", a.disk_mib},
              {"rounds", a.rounds},
              {"changed_pct", a.changed_pct},
              {"nbdcopy_us", m->nbdcopy_us},
              {"nbdcopy_sync_us", m->nbdcopy_sync_us},
              {"convert_us", m->convert_us},
              {"convert_sync_us", m->convert_sync_us},
              {"null_us", m->null_us},
              {"direct_sync_us", m->direct_sync_us},
              {"map_us", m->map_us},
              {"incremental_us", m->incremental_us},
              {"incremental_bytes", m->incremental_bytes},
              {"same_full_us", m->same_full_us},
              {"ratio_to_convert_sync", full_ratio},
              {"incremental_to_full", inc / full},
              {"full_pass", full_pass},
              {"loadavg_before", load_before},
              {"loadavg_after", load_after},
              {"incremental_pass", inc_pass}};
  std::printf("%s\n", doc.dump().c_str());
  if (!a.json_file.empty()) std::ofstream(a.json_file) << doc.dump(2) << "\n";
  return 0;
}
