#include "catalog/catalog.h"

#include <nlohmann/json.hpp>
#include <unordered_map>

#include "catalog/columns.h"
#include "catalog/schema.h"

namespace vmgroup::catalog {

std::string ToJson(const std::vector<std::string>& v) { return nlohmann::json(v).dump(); }

std::vector<std::string> FromJson(const std::string& s) {
  auto j = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
  std::vector<std::string> out;
  if (j.is_array()) {
    for (const auto& e : j) {
      if (e.is_string()) out.push_back(e.get<std::string>());
    }
  }
  return out;
}

Result<std::vector<std::string>> Texts(Stmt& q) {
  std::vector<std::string> out;
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return out;
    out.push_back(q.Text(0));
  }
}

Status NotFoundIfUnchanged(Db& db, const std::string& what) {
  return db.Changes() == 0 ? Status::NotFound(what + " does not exist") : Status::Ok();
}

const char* PowerName(Power p) {
  switch (p) {
    case Power::kOff:
      return "off";
    case Power::kRunning:
      return "running";
    case Power::kPaused:
      return "paused";
  }
  return "off";
}

Result<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path) {
  VMG_ASSIGN_OR_RETURN(auto db, Db::Open(path));
  std::unique_ptr<Catalog> catalog(new Catalog(std::move(db)));
  VMG_RETURN_IF_ERROR(catalog->Migrate());
  return catalog;
}

Status Catalog::Migrate() {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(int version, SchemaVersion());
  auto migrations = Migrations();
  if (version > static_cast<int>(migrations.size())) {
    return Status::InvalidState("catalog schema version " + std::to_string(version) +
                                " is newer than this vmgroup (" +
                                std::to_string(migrations.size()) + ")");
  }
  for (size_t i = static_cast<size_t>(version); i < migrations.size(); ++i) {
    Transaction txn(db_.get());
    VMG_RETURN_IF_ERROR(txn.status());
    VMG_RETURN_IF_ERROR(db_->Exec(migrations[i]));
    VMG_RETURN_IF_ERROR(db_->Exec("PRAGMA user_version=" + std::to_string(i + 1)));
    VMG_RETURN_IF_ERROR(txn.Commit());
  }
  return Status::Ok();
}

Result<int> Catalog::SchemaVersion() {
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("PRAGMA user_version"));
  VMG_ASSIGN_OR_RETURN(bool row, q.Step());
  return row ? static_cast<int>(q.Int(0)) : 0;
}

// ---- VMs ----

Status Catalog::InsertDisksLocked(const VmRecord& vm) {
  for (size_t i = 0; i < vm.disks.size(); ++i) {
    VMG_ASSIGN_OR_RETURN(Stmt d,
                         db_->Prepare("INSERT INTO disks(vm_id,idx,image) VALUES(?1,?2,?3)"));
    VMG_RETURN_IF_ERROR(d.Bind(1, vm.id).Bind(2, static_cast<int>(i)).Bind(3, vm.disks[i]).Run());
  }
  return Status::Ok();
}

Status Catalog::InsertVm(const VmRecord& vm) {
  std::lock_guard lock(mu_);
  Transaction txn(db_.get());
  VMG_RETURN_IF_ERROR(txn.status());
  VMG_ASSIGN_OR_RETURN(
      Stmt ins,
      db_->Prepare(
          "INSERT INTO vms(id,name,memory_mib,vcpus,kernel,initrd,append,extra_args,power,pid,"
          "current_snapshot,libvirt_uri,hugepages) "
          "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)"));
  ins.Bind(1, vm.id)
      .Bind(2, vm.name)
      .Bind(3, vm.config.memory_mib)
      .Bind(4, vm.config.vcpus)
      .Bind(5, vm.config.kernel)
      .Bind(6, vm.config.initrd)
      .Bind(7, vm.config.append)
      .Bind(8, ToJson(vm.config.extra_args))
      .Bind(9, static_cast<int>(vm.power))
      .Bind(10, vm.pid)
      .Bind(11, vm.current_snapshot)
      .Bind(12, vm.libvirt_uri)
      .Bind(13, vm.config.hugepages ? 1 : 0);
  Status s = ins.Run();
  if (s.code() == Code::kAlreadyExists) return Status::AlreadyExists("VM " + vm.id + " exists");
  VMG_RETURN_IF_ERROR(s);
  VMG_RETURN_IF_ERROR(InsertDisksLocked(vm));
  return txn.Commit();
}

Result<VmRecord> Catalog::GetVmLocked(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(
      Stmt q,
      db_->Prepare(
          "SELECT "
          "id,name,memory_mib,vcpus,kernel,initrd,append,extra_args,power,pid,current_snapshot,"
          "last_applied,libvirt_uri,hugepages FROM vms WHERE id=?1"));
  q.Bind(1, id);
  VMG_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Status::NotFound("VM " + id + " does not exist");
  VmRecord vm;
  vm.id = q.Text(0);
  vm.name = q.Text(1);
  vm.config.memory_mib = q.Int(2);
  vm.config.vcpus = q.Int(3);
  vm.config.kernel = q.Text(4);
  vm.config.initrd = q.Text(5);
  vm.config.append = q.Text(6);
  vm.config.extra_args = FromJson(q.Text(7));
  vm.power = static_cast<Power>(q.Int(8));
  vm.pid = static_cast<int>(q.Int(9));
  vm.current_snapshot = q.Text(10);
  vm.last_applied = q.Text(11);
  vm.libvirt_uri = q.Text(12);
  vm.config.hugepages = q.Int(13) != 0;
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("SELECT image FROM disks WHERE vm_id=?1 ORDER BY idx"));
  d.Bind(1, id);
  VMG_ASSIGN_OR_RETURN(vm.disks, Texts(d));
  return vm;
}

Result<VmRecord> Catalog::GetVm(const std::string& id) {
  std::lock_guard lock(mu_);
  return GetVmLocked(id);
}

Result<std::vector<VmRecord>> Catalog::ListVms() {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("SELECT id FROM vms ORDER BY name, id"));
  return LoadEach(q, &Catalog::GetVmLocked);
}

Status Catalog::SetVmPower(const std::string& id, Power power, int pid) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt u, db_->Prepare("UPDATE vms SET power=?2, pid=?3 WHERE id=?1"));
  VMG_RETURN_IF_ERROR(u.Bind(1, id).Bind(2, static_cast<int>(power)).Bind(3, pid).Run());
  return NotFoundIfUnchanged(*db_, "VM " + id);
}

Status Catalog::UpdateDomain(const VmRecord& vm) {
  std::lock_guard lock(mu_);
  Transaction txn(db_.get());
  VMG_RETURN_IF_ERROR(txn.status());
  VMG_ASSIGN_OR_RETURN(Stmt u, db_->Prepare("UPDATE vms SET name=?2, memory_mib=?3, vcpus=?4, "
                                            "power=?5, pid=0 WHERE id=?1 AND libvirt_uri=?6"));
  VMG_RETURN_IF_ERROR(u.Bind(1, vm.id)
                          .Bind(2, vm.name)
                          .Bind(3, vm.config.memory_mib)
                          .Bind(4, vm.config.vcpus)
                          .Bind(5, static_cast<int>(vm.power))
                          .Bind(6, vm.libvirt_uri)
                          .Run());
  VMG_RETURN_IF_ERROR(NotFoundIfUnchanged(*db_, "libvirt domain " + vm.id));
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM disks WHERE vm_id=?1"));
  VMG_RETURN_IF_ERROR(d.Bind(1, vm.id).Run());
  VMG_RETURN_IF_ERROR(InsertDisksLocked(vm));
  return txn.Commit();
}

Status Catalog::DeleteVm(const std::string& id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM vms WHERE id=?1"));
  VMG_RETURN_IF_ERROR(d.Bind(1, id).Run());
  return NotFoundIfUnchanged(*db_, "VM " + id);
}

Status Catalog::InsertProcess(const ProcessRecord& p) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(
      Stmt ins, db_->Prepare("INSERT INTO processes(pid,start_time,vm_id) VALUES(?1,?2,?3)"));
  return ins.Bind(1, p.pid).Bind(2, p.start_time).Bind(3, p.vm_id).Run();
}

Status Catalog::DeleteProcess(const ProcessRecord& p) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d,
                       db_->Prepare("DELETE FROM processes WHERE pid=?1 AND start_time=?2"));
  return d.Bind(1, p.pid).Bind(2, p.start_time).Run();
}

Result<std::vector<ProcessRecord>> Catalog::ListProcesses() {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(
      Stmt q, db_->Prepare("SELECT vm_id,pid,start_time FROM processes ORDER BY vm_id, pid"));
  std::vector<ProcessRecord> out;
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({q.Text(0), static_cast<int>(q.Int(1)), q.Int(2)});
  }
  return out;
}

// ---- Collections ----

Status Catalog::InsertCollection(const CollectionRecord& c) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(
      Stmt ins,
      db_->Prepare("INSERT INTO collections(id,name,type,created_us) VALUES(?1,?2,?3,?4)"));
  Status s = ins.Bind(1, c.id)
                 .Bind(2, c.name)
                 .Bind(3, static_cast<int>(c.type))
                 .Bind(4, c.created_us)
                 .Run();
  if (s.code() == Code::kAlreadyExists) {
    return Status::AlreadyExists("a collection with Id " + c.id + " already exists");
  }
  return s;
}

Result<CollectionRecord> Catalog::GetCollectionLocked(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(Stmt q,
                       db_->Prepare("SELECT id,name,type,created_us FROM collections WHERE id=?1"));
  q.Bind(1, id);
  VMG_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Status::NotFound("collection " + id + " does not exist");
  CollectionRecord c{q.Text(0), q.Text(1), static_cast<CollectionType>(q.Int(2)), q.Int(3), {}};
  VMG_ASSIGN_OR_RETURN(
      Stmt m,
      db_->Prepare(
          "SELECT member_id FROM collection_members WHERE collection_id=?1 ORDER BY position"));
  m.Bind(1, id);
  VMG_ASSIGN_OR_RETURN(c.members, Texts(m));
  VMG_ASSIGN_OR_RETURN(Stmt r, db_->Prepare("SELECT host,vm_id FROM remote_members WHERE "
                                            "collection_id=?1 ORDER BY position"));
  r.Bind(1, id);
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool more, r.Step());
    if (!more) break;
    c.remote_members.push_back({r.Text(0), r.Text(1)});
  }
  return c;
}

Result<CollectionRecord> Catalog::GetCollection(const std::string& id) {
  std::lock_guard lock(mu_);
  return GetCollectionLocked(id);
}

Result<std::vector<CollectionRecord>> Catalog::ListCollections() {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("SELECT id FROM collections ORDER BY created_us, id"));
  return LoadEach(q, &Catalog::GetCollectionLocked);
}

Status Catalog::RenameCollection(const std::string& id, const std::string& name) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt u, db_->Prepare("UPDATE collections SET name=?2 WHERE id=?1"));
  VMG_RETURN_IF_ERROR(u.Bind(1, id).Bind(2, name).Run());
  return NotFoundIfUnchanged(*db_, "collection " + id);
}

Status Catalog::DeleteCollection(const std::string& id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM collections WHERE id=?1"));
  VMG_RETURN_IF_ERROR(d.Bind(1, id).Run());
  return NotFoundIfUnchanged(*db_, "collection " + id);
}

Status Catalog::AddMember(const std::string& collection_id, const std::string& member_id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(
      Stmt ins,
      db_->Prepare("INSERT INTO collection_members(collection_id,member_id,position) SELECT ?1, ?2,"
                   " COALESCE(MAX(position),0)+1 FROM collection_members WHERE collection_id=?1"));
  Status s = ins.Bind(1, collection_id).Bind(2, member_id).Run();
  if (s.code() == Code::kAlreadyExists) {
    return Status::AlreadyExists(member_id + " is already a member of collection " + collection_id);
  }
  return s;
}

Status Catalog::RemoveMember(const std::string& collection_id, const std::string& member_id,
                             bool* removed) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(
      Stmt d,
      db_->Prepare("DELETE FROM collection_members WHERE collection_id=?1 AND member_id=?2"));
  VMG_RETURN_IF_ERROR(d.Bind(1, collection_id).Bind(2, member_id).Run());
  *removed = db_->Changes() > 0;
  return Status::Ok();
}

Result<std::vector<std::string>> Catalog::CollectionsOf(const std::string& member_id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("SELECT collection_id FROM collection_members WHERE "
                                            "member_id=?1 ORDER BY collection_id"));
  q.Bind(1, member_id);
  return Texts(q);
}

// ---- Snapshots ----

Status Catalog::InsertSnapshot(const SnapshotRecord& s) {
  std::lock_guard lock(mu_);
  Transaction txn(db_.get());
  VMG_RETURN_IF_ERROR(txn.status());
  VMG_ASSIGN_OR_RETURN(
      Stmt ins,
      db_->Prepare("INSERT INTO snapshots(id,collection_id,name,tag,type,state,created_us,"
                   "consistency,coordinated) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)"));
  VMG_RETURN_IF_ERROR(ins.Bind(1, s.id)
                          .Bind(2, s.collection_id)
                          .Bind(3, s.name)
                          .Bind(4, s.tag)
                          .Bind(5, s.type)
                          .Bind(6, static_cast<int>(s.state))
                          .Bind(7, s.created_us)
                          .Bind(8, static_cast<int>(s.consistency))
                          .Bind(9, s.coordinated ? 1 : 0)
                          .Run());
  for (size_t i = 0; i < s.members.size(); ++i) {
    const MemberSnapshot& m = s.members[i];
    VMG_ASSIGN_OR_RETURN(
        Stmt mi,
        db_->Prepare(
            "INSERT INTO member_snapshots(id,snapshot_id,vm_id,parent_id,power_at_cut,position,"
            "memory_state,consistency) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)"));
    VMG_RETURN_IF_ERROR(mi.Bind(1, m.id)
                            .Bind(2, s.id)
                            .Bind(3, m.vm_id)
                            .Bind(4, m.parent_id)
                            .Bind(5, static_cast<int>(m.power_at_cut))
                            .Bind(6, static_cast<int>(i))
                            .Bind(7, m.memory_state)
                            .Bind(8, static_cast<int>(m.consistency))
                            .Run());
    for (const SnapshotDisk& d : m.disks) {
      VMG_ASSIGN_OR_RETURN(
          Stmt di, db_->Prepare("INSERT INTO snapshot_disks(member_id,idx,frozen_image,overlay) "
                                "VALUES(?1,?2,?3,?4)"));
      VMG_RETURN_IF_ERROR(
          di.Bind(1, m.id).Bind(2, d.index).Bind(3, d.frozen_image).Bind(4, d.overlay).Run());
    }
  }
  return txn.Commit();
}

Status Catalog::SetDiskImageLocked(const std::string& vm_id, int index, const std::string& image) {
  VMG_ASSIGN_OR_RETURN(Stmt du,
                       db_->Prepare("UPDATE disks SET image=?3 WHERE vm_id=?1 AND idx=?2"));
  VMG_RETURN_IF_ERROR(du.Bind(1, vm_id).Bind(2, index).Bind(3, image).Run());
  return NotFoundIfUnchanged(*db_, "disk " + std::to_string(index) + " of VM " + vm_id);
}

Status Catalog::CompleteSnapshot(const SnapshotRecord& s) {
  std::lock_guard lock(mu_);
  Transaction txn(db_.get());
  VMG_RETURN_IF_ERROR(txn.status());
  VMG_ASSIGN_OR_RETURN(
      Stmt u, db_->Prepare("UPDATE snapshots SET state=?2, pause_window_us=?3, duration_us=?4, "
                           "freeze_window_us=?5 WHERE id=?1"));
  VMG_RETURN_IF_ERROR(u.Bind(1, s.id)
                          .Bind(2, static_cast<int>(SnapshotState::kComplete))
                          .Bind(3, s.pause_window_us)
                          .Bind(4, s.duration_us)
                          .Bind(5, s.freeze_window_us)
                          .Run());
  VMG_RETURN_IF_ERROR(NotFoundIfUnchanged(*db_, "snapshot " + s.id));
  for (const MemberSnapshot& m : s.members) {
    VMG_ASSIGN_OR_RETURN(
        Stmt mu,
        db_->Prepare("UPDATE member_snapshots SET cut_time_us=?2, pause_us=?3, consistency=?4 "
                     "WHERE id=?1"));
    VMG_RETURN_IF_ERROR(mu.Bind(1, m.id)
                            .Bind(2, m.cut_time_us)
                            .Bind(3, m.pause_us)
                            .Bind(4, static_cast<int>(m.consistency))
                            .Run());
    VMG_ASSIGN_OR_RETURN(Stmt vu, db_->Prepare("UPDATE vms SET current_snapshot=?2 WHERE id=?1"));
    VMG_RETURN_IF_ERROR(vu.Bind(1, m.vm_id).Bind(2, m.id).Run());
    for (const SnapshotDisk& d : m.disks) {
      VMG_RETURN_IF_ERROR(SetDiskImageLocked(m.vm_id, d.index, d.overlay));
    }
  }
  return txn.Commit();
}

Status Catalog::InsertApplyIntent(const ApplyIntent& intent) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt ins,
                       db_->Prepare("INSERT INTO apply_intents(snapshot_id,restart,paused) "
                                    "VALUES(?1,?2,?3)"));
  Status s = ins.Bind(1, intent.snapshot_id)
                 .Bind(2, ToJson(intent.restart))
                 .Bind(3, ToJson(intent.paused))
                 .Run();
  if (s.code() == Code::kAlreadyExists) {
    return Status::Busy("snapshot " + intent.snapshot_id + " is being applied already");
  }
  return s;
}

Status Catalog::HoldApplyIntent(const std::string& snapshot_id, const std::string& tag) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt u, db_->Prepare("UPDATE apply_intents SET held=1,tag=?2 "
                                            "WHERE snapshot_id=?1 AND committed=0"));
  VMG_RETURN_IF_ERROR(u.Bind(1, snapshot_id).Bind(2, tag).Run());
  return NotFoundIfUnchanged(*db_, "the apply of snapshot " + snapshot_id);
}

Status Catalog::DeleteApplyIntent(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM apply_intents WHERE snapshot_id=?1"));
  return d.Bind(1, snapshot_id).Run();
}

Result<std::vector<ApplyIntent>> Catalog::ListApplyIntents() {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(
      Stmt q,
      db_->Prepare("SELECT snapshot_id,restart,paused,committed,held,tag FROM apply_intents"));
  std::vector<ApplyIntent> out;
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({.snapshot_id = q.Text(0),
                   .restart = FromJson(q.Text(1)),
                   .paused = FromJson(q.Text(2)),
                   .committed = q.Int(3) != 0,
                   .held = q.Int(4) != 0,
                   .tag = q.Text(5)});
  }
  return out;
}

Status Catalog::InsertRestoreIntent(const RestoreIntent& intent) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(
      Stmt ins, db_->Prepare("INSERT INTO restore_intents(collection_id,vm_ids,libvirt_uris,files) "
                             "VALUES(?1,?2,?3,?4)"));
  Status s = ins.Bind(1, intent.collection_id)
                 .Bind(2, ToJson(intent.vm_ids))
                 .Bind(3, ToJson(intent.libvirt_uris))
                 .Bind(4, ToJson(intent.files))
                 .Run();
  if (s.code() == Code::kAlreadyExists) {
    return Status::AlreadyExists("a restore of group " + intent.collection_id + " is in progress");
  }
  return s;
}

Status Catalog::DeleteRestoreIntent(const std::string& collection_id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM restore_intents WHERE collection_id=?1"));
  return d.Bind(1, collection_id).Run();
}

Result<std::vector<RestoreIntent>> Catalog::ListRestoreIntents() {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("SELECT collection_id,vm_ids,libvirt_uris,files "
                                            "FROM restore_intents ORDER BY collection_id"));
  std::vector<RestoreIntent> out;
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({q.Text(0), FromJson(q.Text(1)), FromJson(q.Text(2)), FromJson(q.Text(3))});
  }
  return out;
}

Status Catalog::ApplySnapshot(const std::string& snapshot_id,
                              const std::vector<AppliedMember>& members) {
  std::lock_guard lock(mu_);
  Transaction txn(db_.get());
  VMG_RETURN_IF_ERROR(txn.status());
  VMG_ASSIGN_OR_RETURN(Stmt ci, db_->Prepare("UPDATE apply_intents SET committed=1 "
                                             "WHERE snapshot_id=?1"));
  VMG_RETURN_IF_ERROR(ci.Bind(1, snapshot_id).Run());
  for (const AppliedMember& m : members) {
    VMG_ASSIGN_OR_RETURN(
        Stmt vu, db_->Prepare("UPDATE vms SET current_snapshot=?2, last_applied=?2, power=?3, "
                              "pid=?4 WHERE id=?1"));
    VMG_RETURN_IF_ERROR(vu.Bind(1, m.vm_id)
                            .Bind(2, m.member_id)
                            .Bind(3, static_cast<int>(m.pid ? Power::kRunning : Power::kOff))
                            .Bind(4, m.pid)
                            .Run());
    VMG_RETURN_IF_ERROR(NotFoundIfUnchanged(*db_, "VM " + m.vm_id));
    for (size_t i = 0; i < m.disks.size(); ++i) {
      VMG_RETURN_IF_ERROR(SetDiskImageLocked(m.vm_id, static_cast<int>(i), m.disks[i]));
    }
    for (const auto& image : m.discarded) {
      VMG_ASSIGN_OR_RETURN(Stmt cu,
                           db_->Prepare("UPDATE snapshot_disks SET overlay='' WHERE overlay=?1"));
      VMG_RETURN_IF_ERROR(cu.Bind(1, image).Run());
      VMG_RETURN_IF_ERROR(DropReferencePointsOnLocked(image));
    }
  }
  return txn.Commit();
}

Status Catalog::SetSnapshotStateLocked(const std::string& id, SnapshotState from,
                                       SnapshotState to) {
  VMG_ASSIGN_OR_RETURN(Stmt u,
                       db_->Prepare("UPDATE snapshots SET state=?3 WHERE id=?1 AND state=?2"));
  VMG_RETURN_IF_ERROR(
      u.Bind(1, id).Bind(2, static_cast<int>(from)).Bind(3, static_cast<int>(to)).Run());
  if (db_->Changes() > 0) return Status::Ok();
  VMG_RETURN_IF_ERROR(GetSnapshotLocked(id).status());
  return Status::InvalidState("snapshot " + id + " is not in the state this step needs");
}

Status Catalog::BeginDestroy(const std::string& snapshot_id, const std::vector<DiskMerge>& merges) {
  std::lock_guard lock(mu_);
  Transaction txn(db_.get());
  VMG_RETURN_IF_ERROR(txn.status());
  VMG_RETURN_IF_ERROR(
      SetSnapshotStateLocked(snapshot_id, SnapshotState::kComplete, SnapshotState::kDestroying));
  for (const DiskMerge& m : merges) {
    VMG_ASSIGN_OR_RETURN(
        Stmt ins,
        db_->Prepare("INSERT INTO disk_merges(snapshot_id,vm_id,idx,frozen_image,child,others) "
                     "VALUES(?1,?2,?3,?4,?5,?6)"));
    VMG_RETURN_IF_ERROR(ins.Bind(1, snapshot_id)
                            .Bind(2, m.vm_id)
                            .Bind(3, m.index)
                            .Bind(4, m.frozen_image)
                            .Bind(5, m.child)
                            .Bind(6, ToJson(m.others))
                            .Run());
  }
  return txn.Commit();
}

Status Catalog::CancelDestroy(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  Transaction txn(db_.get());
  VMG_RETURN_IF_ERROR(txn.status());
  VMG_RETURN_IF_ERROR(
      SetSnapshotStateLocked(snapshot_id, SnapshotState::kDestroying, SnapshotState::kComplete));
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM disk_merges WHERE snapshot_id=?1"));
  VMG_RETURN_IF_ERROR(d.Bind(1, snapshot_id).Run());
  return txn.Commit();
}

Result<std::vector<DiskMerge>> Catalog::DiskMergesLocked(const std::string& snapshot_id) {
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("SELECT vm_id,idx,frozen_image,child,others FROM "
                                            "disk_merges WHERE snapshot_id=?1 ORDER BY vm_id,idx"));
  q.Bind(1, snapshot_id);
  std::vector<DiskMerge> out;
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return out;
    out.push_back(
        {q.Text(0), static_cast<int>(q.Int(1)), q.Text(2), q.Text(3), FromJson(q.Text(4))});
  }
}

Result<std::vector<DiskMerge>> Catalog::DiskMerges(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  return DiskMergesLocked(snapshot_id);
}

Status Catalog::FinishDestroy(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  Transaction txn(db_.get());
  VMG_RETURN_IF_ERROR(txn.status());
  VMG_ASSIGN_OR_RETURN(SnapshotRecord s, GetSnapshotLocked(snapshot_id));
  if (s.state != SnapshotState::kDestroying) {
    return Status::InvalidState("snapshot " + snapshot_id + " is not being destroyed");
  }
  VMG_ASSIGN_OR_RETURN(auto merges, DiskMergesLocked(snapshot_id));
  auto run = [&](const char* sql, const std::string& a, const std::string& b) -> Status {
    VMG_ASSIGN_OR_RETURN(Stmt u, db_->Prepare(sql));
    return u.Bind(1, a).Bind(2, b).Run();
  };
  for (const DiskMerge& m : merges) {
    if (m.child.empty()) {  // the frozen image goes: nothing may name it
      VMG_RETURN_IF_ERROR(DropReferencePointsOnLocked(m.frozen_image));
      VMG_RETURN_IF_ERROR(
          run("UPDATE snapshot_disks SET overlay=?2 WHERE overlay=?1", m.frozen_image, ""));
      continue;
    }
    VMG_RETURN_IF_ERROR(DropReferencePointsOnLocked(m.child));
    VMG_RETURN_IF_ERROR(run("UPDATE disks SET image=?2 WHERE image=?1", m.child, m.frozen_image));
    VMG_RETURN_IF_ERROR(run("UPDATE snapshot_disks SET frozen_image=?2 WHERE frozen_image=?1",
                            m.child, m.frozen_image));
    VMG_RETURN_IF_ERROR(
        run("UPDATE snapshot_disks SET overlay=?2 WHERE overlay=?1", m.child, m.frozen_image));
  }
  for (const MemberSnapshot& m : s.members) {
    VMG_RETURN_IF_ERROR(
        run("UPDATE member_snapshots SET parent_id=?2 WHERE parent_id=?1", m.id, m.parent_id));
    VMG_RETURN_IF_ERROR(
        run("UPDATE vms SET current_snapshot=?2 WHERE current_snapshot=?1", m.id, m.parent_id));
    VMG_RETURN_IF_ERROR(run("UPDATE vms SET last_applied=?2 WHERE last_applied=?1", m.id, ""));
  }
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM snapshots WHERE id=?1"));
  VMG_RETURN_IF_ERROR(d.Bind(1, snapshot_id).Run());
  return txn.Commit();
}

Status Catalog::DeleteSnapshot(const std::string& id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM snapshots WHERE id=?1"));
  VMG_RETURN_IF_ERROR(d.Bind(1, id).Run());
  return NotFoundIfUnchanged(*db_, "snapshot " + id);
}

Result<std::vector<SnapshotRecord>> Catalog::LoadSnapshotsLocked(const std::string& where,
                                                                 const std::string& value) {
  VMG_ASSIGN_OR_RETURN(
      Stmt q, db_->Prepare("SELECT s.id,s.collection_id,s.name,s.tag,s.type,s.state,s.created_us,"
                           "s.pause_window_us,s.duration_us,s.consistency,s.freeze_window_us,"
                           "s.coordinated "
                           "FROM snapshots s WHERE " +
                           where + " ORDER BY s.created_us, s.rowid"));
  q.Bind(1, value);
  std::vector<SnapshotRecord> out;
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    SnapshotRecord s;
    s.id = q.Text(0);
    s.collection_id = q.Text(1);
    s.name = q.Text(2);
    s.tag = q.Text(3);
    s.type = static_cast<int>(q.Int(4));
    s.state = static_cast<SnapshotState>(q.Int(5));
    s.created_us = q.Int(6);
    s.pause_window_us = q.Int(7);
    s.duration_us = q.Int(8);
    s.consistency = static_cast<Consistency>(q.Int(9));
    s.freeze_window_us = q.Int(10);
    s.coordinated = q.Int(11) != 0;
    out.push_back(std::move(s));
  }
  std::unordered_map<std::string, SnapshotRecord*> snapshots;
  for (auto& s : out) snapshots[s.id] = &s;
  VMG_ASSIGN_OR_RETURN(
      Stmt m, db_->Prepare("SELECT m.snapshot_id,m.id,m.vm_id,m.parent_id,m.power_at_cut,"
                           "m.cut_time_us,m.pause_us,m.memory_state,m.consistency "
                           "FROM member_snapshots m JOIN snapshots s ON s.id=m.snapshot_id WHERE " +
                           where + " ORDER BY m.snapshot_id, m.position"));
  m.Bind(1, value);
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool row, m.Step());
    if (!row) break;
    snapshots[m.Text(0)]->members.push_back({m.Text(1),
                                             m.Text(2),
                                             m.Text(3),
                                             static_cast<Power>(m.Int(4)),
                                             m.Int(5),
                                             m.Int(6),
                                             {},
                                             m.Text(7),
                                             static_cast<Consistency>(m.Int(8))});
  }
  std::unordered_map<std::string, MemberSnapshot*> members;  // now that no vector grows
  for (auto& s : out) {
    for (auto& member : s.members) members[member.id] = &member;
  }
  VMG_ASSIGN_OR_RETURN(
      Stmt d,
      db_->Prepare("SELECT d.member_id,d.idx,d.frozen_image,d.overlay FROM snapshot_disks d "
                   "JOIN member_snapshots m ON m.id=d.member_id "
                   "JOIN snapshots s ON s.id=m.snapshot_id WHERE " +
                   where + " ORDER BY d.member_id, d.idx"));
  d.Bind(1, value);
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool row, d.Step());
    if (!row) break;
    members[d.Text(0)]->disks.push_back({static_cast<int>(d.Int(1)), d.Text(2), d.Text(3)});
  }
  return out;
}

Result<SnapshotRecord> Catalog::GetSnapshotLocked(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(auto found, LoadSnapshotsLocked("s.id=?1", id));
  if (found.empty()) return Status::NotFound("snapshot " + id + " does not exist");
  return std::move(found[0]);
}

Result<SnapshotRecord> Catalog::GetSnapshot(const std::string& id) {
  std::lock_guard lock(mu_);
  return GetSnapshotLocked(id);
}

Result<SnapshotRecord> Catalog::SnapshotOfMember(const std::string& member_id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt q,
                       db_->Prepare("SELECT snapshot_id FROM member_snapshots WHERE id=?1"));
  q.Bind(1, member_id);
  VMG_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Status::NotFound("no snapshot has member " + member_id);
  return GetSnapshotLocked(q.Text(0));
}

Result<std::vector<SnapshotRecord>> Catalog::ListSnapshots(const std::string& collection_id) {
  std::lock_guard lock(mu_);
  return LoadSnapshotsLocked("(?1='' OR s.collection_id=?1)", collection_id);
}

// ---- Jobs ----

Status Catalog::InsertJob(const JobRecord& j) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(
      Stmt ins,
      db_->Prepare("INSERT INTO jobs(id,type,state,percent,error_code,error_description,created_us,"
                   "started_us,ended_us,affected,description,cancellable) "
                   "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)"));
  Status s = ins.Bind(1, j.id)
                 .Bind(2, j.type)
                 .Bind(3, static_cast<int>(j.state))
                 .Bind(4, j.percent)
                 .Bind(5, j.error_code)
                 .Bind(6, j.error_description)
                 .Bind(7, j.created_us)
                 .Bind(8, j.started_us)
                 .Bind(9, j.ended_us)
                 .Bind(10, ToJson(j.affected))
                 .Bind(11, j.description)
                 .Bind(12, j.cancellable ? 1 : 0)
                 .Run();
  if (s.code() == Code::kAlreadyExists) return Status::AlreadyExists("job " + j.id + " exists");
  return s;
}

Status Catalog::UpdateJob(const JobRecord& j) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(
      Stmt u,
      db_->Prepare(
          "UPDATE jobs SET state=?2,percent=?3,error_code=?4,error_description=?5,started_us=?6,"
          "ended_us=?7,affected=?8 WHERE id=?1"));
  VMG_RETURN_IF_ERROR(u.Bind(1, j.id)
                          .Bind(2, static_cast<int>(j.state))
                          .Bind(3, j.percent)
                          .Bind(4, j.error_code)
                          .Bind(5, j.error_description)
                          .Bind(6, j.started_us)
                          .Bind(7, j.ended_us)
                          .Bind(8, ToJson(j.affected))
                          .Run());
  return NotFoundIfUnchanged(*db_, "job " + j.id);
}

Result<JobRecord> Catalog::ReadJob(Stmt& q) {
  JobRecord j;
  j.id = q.Text(0);
  j.type = static_cast<int>(q.Int(1));
  j.state = static_cast<JobState>(q.Int(2));
  j.percent = static_cast<int>(q.Int(3));
  j.error_code = static_cast<int>(q.Int(4));
  j.error_description = q.Text(5);
  j.created_us = q.Int(6);
  j.started_us = q.Int(7);
  j.ended_us = q.Int(8);
  j.affected = FromJson(q.Text(9));
  j.description = q.Text(10);
  j.cancellable = q.Int(11) != 0;
  return j;
}

constexpr const char* kJobColumns =
    "SELECT id,type,state,percent,error_code,error_description,created_us,started_us,ended_us,"
    "affected,description,cancellable FROM jobs";

Result<JobRecord> Catalog::GetJob(const std::string& id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare(std::string(kJobColumns) + " WHERE id=?1"));
  q.Bind(1, id);
  VMG_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Status::NotFound("job " + id + " does not exist");
  return ReadJob(q);
}

Status Catalog::DeleteJobsEndedBefore(int64_t us) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d,
                       db_->Prepare("DELETE FROM jobs WHERE ended_us > 0 AND ended_us < ?1"));
  return d.Bind(1, us).Run();
}

Result<std::vector<JobRecord>> Catalog::ListJobs() {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare(std::string(kJobColumns) + " ORDER BY created_us, id"));
  std::vector<JobRecord> out;
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    VMG_ASSIGN_OR_RETURN(JobRecord j, ReadJob(q));
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace vmgroup::catalog
