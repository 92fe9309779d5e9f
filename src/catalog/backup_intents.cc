// The catalog's backup sessions being served, on this host and across hosts.
#include "catalog/catalog.h"
#include "catalog/columns.h"

namespace vmgroup::catalog {

Status Catalog::InsertBackupIntent(const BackupIntent& intent) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt ins,
                       db_->Prepare("INSERT INTO backup_intents(id,collection_id,snapshot_id,"
                                    "took_snapshot,directory,vm_ids) VALUES(?1,?2,?3,?4,?5,?6)"));
  Status s = ins.Bind(1, intent.id)
                 .Bind(2, intent.collection_id)
                 .Bind(3, intent.snapshot_id)
                 .Bind(4, intent.took_snapshot ? 1 : 0)
                 .Bind(5, intent.directory)
                 .Bind(6, ToJson(intent.vm_ids))
                 .Run();
  if (s.code() == Code::kAlreadyExists) {
    return Status::AlreadyExists("backup session " + intent.id + " is recorded already");
  }
  return s;
}

Status Catalog::SetBackupIntentVms(const BackupIntent& intent) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt u, db_->Prepare("UPDATE backup_intents SET vm_ids=?2 WHERE id=?1"));
  VMG_RETURN_IF_ERROR(u.Bind(1, intent.id).Bind(2, ToJson(intent.vm_ids)).Run());
  return NotFoundIfUnchanged(*db_, "backup session " + intent.id);
}

Status Catalog::DeleteBackupIntent(const std::string& id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM backup_intents WHERE id=?1"));
  return d.Bind(1, id).Run();
}

Result<std::vector<BackupIntent>> Catalog::ListBackupIntents() {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("SELECT id,collection_id,snapshot_id,took_snapshot,"
                                            "directory,vm_ids FROM backup_intents ORDER BY id"));
  std::vector<BackupIntent> out;
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({q.Text(0), q.Text(1), q.Text(2), q.Int(3) != 0, q.Text(4), FromJson(q.Text(5))});
  }
  return out;
}

Status Catalog::InsertSpanningBackup(const SpanningBackupIntent& intent) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt ins, db_->Prepare("INSERT INTO spanning_backups(id,collection_id,"
                                              "snapshot_id,took_snapshot,hosts,sessions) "
                                              "VALUES(?1,?2,?3,?4,?5,?6)"));
  Status s = ins.Bind(1, intent.id)
                 .Bind(2, intent.collection_id)
                 .Bind(3, intent.snapshot_id)
                 .Bind(4, intent.took_snapshot ? 1 : 0)
                 .Bind(5, ToJson(intent.hosts))
                 .Bind(6, ToJson(intent.sessions))
                 .Run();
  if (s.code() == Code::kAlreadyExists) {
    return Status::AlreadyExists("backup session " + intent.id + " is recorded already");
  }
  return s;
}

Status Catalog::SetSpanningBackupSessions(const SpanningBackupIntent& intent) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(
      Stmt u, db_->Prepare("UPDATE spanning_backups SET hosts=?2, sessions=?3 WHERE id=?1"));
  VMG_RETURN_IF_ERROR(
      u.Bind(1, intent.id).Bind(2, ToJson(intent.hosts)).Bind(3, ToJson(intent.sessions)).Run());
  return NotFoundIfUnchanged(*db_, "backup session " + intent.id);
}

Status Catalog::DeleteSpanningBackup(const std::string& id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt d, db_->Prepare("DELETE FROM spanning_backups WHERE id=?1"));
  return d.Bind(1, id).Run();
}

Result<std::vector<SpanningBackupIntent>> Catalog::ListSpanningBackups() {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(Stmt q, db_->Prepare("SELECT id,collection_id,snapshot_id,took_snapshot,"
                                            "hosts,sessions FROM spanning_backups ORDER BY id"));
  std::vector<SpanningBackupIntent> out;
  while (true) {
    VMG_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(
        {q.Text(0), q.Text(1), q.Text(2), q.Int(3) != 0, FromJson(q.Text(4)), FromJson(q.Text(5))});
  }
  return out;
}

}  // namespace vmgroup::catalog
