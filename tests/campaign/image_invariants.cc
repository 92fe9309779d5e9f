// The image half of Invariants (invariants.h): qemu-img check, frozen images
// against what they held at first sight, records as gap-free prefixes, bases.
#include <cstdio>

#include "invariants.h"
#include "storage/checksum.h"
#include "workload.h"

namespace vmgroup::campaign {

namespace {

Status CheckClean(const std::string& image) {
  auto r = Env::Default()->Run({"qemu-img", "check", "-U", image}, std::chrono::minutes(2));
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) return Status::Failed(r->out + r->err);
  return Status::Ok();
}

// True when snapshot `id` is still listed Complete.
bool StillComplete(catalog::Catalog& catalog, const std::string& id) {
  auto s = catalog.GetSnapshot(id);
  return s.ok() && s->state == catalog::SnapshotState::kComplete;
}

}  // namespace

Result<Invariants::Content> Invariants::Read(const std::string& path) {
  auto r = Env::Default()->Run({"qemu-img", "convert", "-U", "-O", "raw", path, scratch_},
                               std::chrono::minutes(2));
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) return Status::IoError("qemu-img convert " + path + ": " + r->err);
  auto raw = Env::Default()->ReadFile(scratch_);
  (void)Env::Default()->RemoveFile(scratch_);
  if (!raw.ok()) return raw.status();
  const std::string& data = *raw;
  storage::Digester digester;
  digester.Update(data.data(), data.size());
  Content c{.digest = digester.Digest().checksum};
  const size_t sectors = data.size() / 512;
  char want[32];
  for (size_t n = 1; n < sectors; ++n) {
    std::snprintf(want, sizeof want, "SEQ %08zu", n);
    if (data.compare(n * 512, 12, want) != 0) break;
    c.records = static_cast<int64_t>(n);
  }
  for (size_t n = static_cast<size_t>(c.records) + 1; n < sectors; ++n) {
    if (data.compare(n * 512, 4, "SEQ ") == 0) {
      return Status::Failed("record at sector " + std::to_string(n) + " after a gap at " +
                            std::to_string(c.records + 1));
    }
  }
  return c;
}

Status Invariants::NoteBase(const std::string& path) {
  auto d = storage::DigestFile(Env::Default(), path);
  if (!d.ok()) return d.status();
  bases_[path] = d->checksum;
  return Status::Ok();
}

Violations Invariants::Images(catalog::Catalog& catalog) {
  Violations v;
  for (const auto& [path, digest] : bases_) {
    auto now = storage::DigestFile(Env::Default(), path);
    if (!now.ok() || now->checksum != digest) {
      v.push_back({"base-changed", path + " (a shared template) changed: " +
                                       (now.ok() ? now->checksum : now.status().ToString()) +
                                       ", was " + digest});
    }
  }
  auto snapshots = catalog.ListSnapshots();
  auto vms = catalog.ListVms();
  if (!snapshots.ok() || !vms.ok()) return {{"catalog-unreadable", "listing snapshots or VMs"}};
  std::map<std::string, Content> seen;
  for (const auto& s : *snapshots) {
    if (s.state != catalog::SnapshotState::kComplete) continue;
    Violations found;
    for (const auto& m : s.members) {
      for (const auto& d : m.disks) {
        const std::string what = "snapshot " + s.id + ", VM " + m.vm_id + ", disk " +
                                 std::to_string(d.index) + " (" + d.frozen_image + ")";
        if (Status clean = CheckClean(d.frozen_image); !clean.ok()) {
          found.push_back({"image-check", what + ": " + clean.ToString()});
        }
        auto content = Read(d.frozen_image);
        if (!content.ok()) {
          found.push_back({"prefix-gap", what + ": " + content.status().ToString()});
          continue;
        }
        const std::string key = s.id + "/" + m.vm_id + "/" + std::to_string(d.index);
        const auto before = frozen_.find(key);
        if (before != frozen_.end() && before->second.digest != content->digest) {
          found.push_back({"frozen-image-changed",
                           what + " held records 1.." + std::to_string(before->second.records) +
                               " after its cut, now 1.." + std::to_string(content->records)});
        }
        seen[key] = before != frozen_.end() ? before->second : *content;
      }
    }
    // A destroy (a backup session's end at its idle timeout, say) that
    // began after the listing merges into the images: no violation.
    if (!found.empty() && StillComplete(catalog, s.id)) {
      v.insert(v.end(), found.begin(), found.end());
    }
  }
  frozen_ = std::move(seen);  // destroyed snapshots are forgotten
  for (const auto& vm : *vms) {
    if (vm.power != catalog::Power::kOff) continue;  // QEMU may hold metadata in its cache
    for (const auto& disk : vm.disks) {
      if (Status clean = CheckClean(disk); !clean.ok()) {
        v.push_back({"image-check", "VM " + vm.name + " (off), " + disk + ": " + clean.ToString()});
      }
    }
  }
  return v;
}

Violations Invariants::AcknowledgedKept(catalog::Catalog& catalog,
                                        const std::vector<std::string>& guests) {
  Violations v;
  for (const auto& id : guests) {
    auto vm = catalog.GetVm(id);
    if (!vm.ok() || vm->disks.empty()) continue;
    const int64_t acknowledged = ReadSerialProgress(SerialLog(state_dir_, id)).last;
    auto content = Read(vm->disks[0]);
    if (!content.ok()) {
      v.push_back({"prefix-gap",
                   "VM " + vm->name + ", " + vm->disks[0] + ": " + content.status().ToString()});
    } else if (content->records < acknowledged) {
      v.push_back({"acknowledged-lost", "VM " + vm->name + " acknowledged records 1.." +
                                            std::to_string(acknowledged) + "; its image " +
                                            vm->disks[0] + " holds 1.." +
                                            std::to_string(content->records)});
    }
  }
  return v;
}

}  // namespace vmgroup::campaign
