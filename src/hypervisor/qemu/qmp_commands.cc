#include "hypervisor/qemu/qmp_commands.h"

#include <climits>

namespace vmgroup::hypervisor::qemu::qmp {
namespace {

// What QEMU answers is read, never trusted to have the documented shape (a
// guest that broke out into QEMU writes these replies): a field of another
// type, or an element that is no object, reads as absent instead of
// throwing through the daemon.
std::string Text(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}
uint64_t Count(const Json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}
bool Flag(const Json& j, const char* key) {
  if (!j.is_object()) return false;
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}
// The elements of an array reply; nothing for anything else.
const Json& Elements(const Json& j) {
  static const Json kNone = Json::array();
  return j.is_array() ? j : kNone;
}
const Json& Field(const Json& j, const char* key) {
  static const Json kNone;
  if (!j.is_object()) return kNone;
  auto it = j.find(key);
  return it != j.end() ? *it : kNone;
}
// The dirty bitmaps of a node of query-named-block-nodes.
std::vector<BitmapInfo> Bitmaps(const Json& node) {
  std::vector<BitmapInfo> out;
  for (const auto& b : Elements(Field(node, "dirty-bitmaps"))) {
    out.push_back({Text(b, "name"), Count(b, "count"), Flag(b, "inconsistent"),
                   Flag(b, "persistent"), Flag(b, "recording"), Count(b, "granularity")});
  }
  return out;
}

// The qcow2 nodes of a query-named-block-nodes reply, with each node's
// backing file when the reply nests images (not flat).
std::vector<FormatNode> FormatNodes(const Json& r) {
  std::map<std::string, std::string> protocol_nodes;  // file -> node-name
  for (const auto& n : Elements(r)) {
    if (Text(n, "drv") == "file") protocol_nodes[Text(n, "file")] = Text(n, "node-name");
  }
  std::vector<FormatNode> nodes;
  for (const auto& n : Elements(r)) {
    if (Text(n, "drv") != "qcow2") continue;
    const std::string file = Text(n, "file");
    auto protocol = protocol_nodes.find(file);
    nodes.push_back({Text(n, "node-name"), file,
                     Text(Field(Field(n, "image"), "backing-image"), "filename"), Flag(n, "ro"),
                     Count(Field(n, "image"), "virtual-size"),
                     protocol != protocol_nodes.end() ? protocol->second : "", Bitmaps(n)});
  }
  return nodes;
}

}  // namespace

Command StopCommand() { return {"stop", Json::object()}; }
Status Stop(QmpClient& c, Deadline d) {
  auto [command, args] = StopCommand();
  return c.Execute(command, args, d).status();
}

Command ContCommand() { return {"cont", Json::object()}; }
Status Cont(QmpClient& c, Deadline d) {
  auto [command, args] = ContCommand();
  return c.Execute(command, args, d).status();
}

Status Quit(QmpClient& c, Deadline d) { return c.Execute("quit", d).status(); }

Status SystemPowerdown(QmpClient& c, Deadline d) {
  return c.Execute("system_powerdown", d).status();
}

Result<std::string> QueryStatus(QmpClient& c, Deadline d) {
  VMG_ASSIGN_OR_RETURN(Json r, c.Execute("query-status", d));
  return Text(r, "status");
}

Result<std::vector<BlockDevice>> QueryBlock(QmpClient& c, Deadline d) {
  VMG_ASSIGN_OR_RETURN(Json r, c.Execute("query-block", d));
  std::vector<BlockDevice> devices;
  for (const auto& dev : Elements(r)) {
    const Json& inserted = Field(dev, "inserted");
    if (!inserted.is_object()) continue;
    devices.push_back({Text(dev, "qdev"), Text(inserted, "node-name"), Text(inserted, "file"),
                       Text(dev, "io-status")});
  }
  return devices;
}

Result<std::vector<std::string>> QueryNodeNames(QmpClient& c, Deadline d) {
  VMG_ASSIGN_OR_RETURN(Json r, c.Execute("query-named-block-nodes", {{"flat", true}}, d));
  std::vector<std::string> names;
  for (const auto& n : Elements(r)) names.push_back(Text(n, "node-name"));
  return names;
}

Result<std::map<std::string, std::string>> QueryFormatNodes(QmpClient& c, Deadline d) {
  VMG_ASSIGN_OR_RETURN(Json r, c.Execute("query-named-block-nodes", {{"flat", true}}, d));
  std::map<std::string, std::string> nodes;
  for (const auto& n : Elements(r)) {
    if (Text(n, "drv") == "qcow2") nodes[Text(n, "file")] = Text(n, "node-name");
  }
  return nodes;
}

Result<std::vector<FormatNode>> QueryFormatNodeGraph(QmpClient& c, Deadline d) {
  // Not flat: each node's "image" then holds its backing image's, as the
  // graph links them.
  VMG_ASSIGN_OR_RETURN(Json r, c.Execute("query-named-block-nodes", {{"flat", false}}, d));
  return FormatNodes(r);
}

Result<std::vector<FormatNode>> QueryFormatNodesShallow(QmpClient& c, Deadline d) {
  VMG_ASSIGN_OR_RETURN(Json r, c.Execute("query-named-block-nodes", {{"flat", true}}, d));
  return FormatNodes(r);
}

Status BlockdevAddOverlay(QmpClient& c, const std::string& node, const std::string& file_node,
                          const std::string& path, Deadline d) {
  Json args = {{"driver", "qcow2"},
               {"node-name", node},
               {"backing", nullptr},
               {"file", {{"driver", "file"}, {"filename", path}, {"node-name", file_node}}}};
  return c.Execute("blockdev-add", args, d).status();
}

Status BlockdevAddTarget(QmpClient& c, const std::string& node, const std::string& path,
                         Deadline d) {
  Json args = {{"driver", "qcow2"},
               {"node-name", node},
               {"backing", nullptr},
               {"cache", {{"no-flush", true}}},
               {"file", {{"driver", "file"}, {"filename", path}, {"cache", {{"no-flush", true}}}}}};
  return c.Execute("blockdev-add", args, d).status();
}

Status BlockdevDel(QmpClient& c, const std::string& node, Deadline d) {
  return c.Execute("blockdev-del", {{"node-name", node}}, d).status();
}

Status BlockdevReopen(QmpClient& c, const std::vector<ReopenNode>& nodes, bool read_only,
                      Deadline d) {
  Json options = Json::array();
  for (const auto& n : nodes) {
    Json o = {{"driver", "qcow2"},
              {"node-name", n.node},
              {"file", n.file_node},
              {"read-only", read_only}};
    if (!n.backing_node.empty()) o["backing"] = n.backing_node;
    options.push_back(std::move(o));
  }
  return c.Execute("blockdev-reopen", {{"options", options}}, d).status();
}

Json SnapshotAction(const std::string& node, const std::string& overlay) {
  return {{"type", "blockdev-snapshot"}, {"data", {{"node", node}, {"overlay", overlay}}}};
}

Json BitmapAddAction(const std::string& node, const std::string& bitmap, bool persistent,
                     uint64_t granularity) {
  Json data = {{"node", node}, {"name", bitmap}, {"persistent", persistent}};
  if (granularity != 0) data["granularity"] = granularity;
  return {{"type", "block-dirty-bitmap-add"}, {"data", std::move(data)}};
}

Json BitmapMergeAction(const std::string& node, const std::string& target,
                       const std::string& source) {
  return {{"type", "block-dirty-bitmap-merge"},
          {"data", {{"node", node}, {"target", target}, {"bitmaps", Json::array({source})}}}};
}

Json BitmapRemoveAction(const std::string& node, const std::string& bitmap) {
  return {{"type", "block-dirty-bitmap-remove"}, {"data", {{"node", node}, {"name", bitmap}}}};
}

Status BitmapAdd(QmpClient& c, const std::string& node, const std::string& bitmap, Deadline d) {
  return c.Execute("block-dirty-bitmap-add", BitmapAddAction(node, bitmap)["data"], d).status();
}

Status BitmapRemove(QmpClient& c, const std::string& node, const std::string& bitmap, Deadline d) {
  return c.Execute("block-dirty-bitmap-remove", BitmapRemoveAction(node, bitmap)["data"], d)
      .status();
}

Result<std::vector<BitmapInfo>> QueryBitmaps(QmpClient& c, const std::string& node, Deadline d) {
  VMG_ASSIGN_OR_RETURN(Json r, c.Execute("query-named-block-nodes", {{"flat", true}}, d));
  for (const auto& n : Elements(r)) {
    if (Text(n, "node-name") == node) return Bitmaps(n);
  }
  return std::vector<BitmapInfo>{};
}

Status BackupMarked(QmpClient& c, const std::string& job_id, const std::string& device,
                    const std::string& target, const std::string& bitmap, Deadline d) {
  return c
      .Execute("blockdev-backup",
               {{"job-id", job_id},
                {"device", device},
                {"target", target},
                {"sync", "bitmap"},
                {"bitmap", bitmap},
                {"bitmap-mode", "never"},
                {"auto-dismiss", false}},
               d)
      .status();
}

Status NbdServerStart(QmpClient& c, const std::string& fd_name, const std::string& tls_creds,
                      Deadline d) {
  // SocketAddressLegacy: QEMU 7.2's nbd-server-start takes no flat address.
  Json addr = {{"type", "fd"}, {"data", {{"str", fd_name}}}};
  Json args = {{"addr", addr}};
  if (!tls_creds.empty()) args["tls-creds"] = tls_creds;
  Status s = c.Execute("nbd-server-start", args, d).status();
  if (!s.ok() && s.message().find("NBD server already running") != std::string::npos) {
    return Status::AlreadyExists(s.message());
  }
  return s;
}

Status NbdServerStop(QmpClient& c, Deadline d) {
  Status s = c.Execute("nbd-server-stop", d).status();
  if (!s.ok() && s.message().find("NBD server not running") != std::string::npos) {
    return Status::NotFound(s.message());
  }
  return s;
}

Status TlsCredsX509Add(QmpClient& c, const std::string& id, const std::string& dir, Deadline d) {
  Json args = {{"qom-type", "tls-creds-x509"},
               {"id", id},
               {"dir", dir},
               {"endpoint", "server"},
               {"verify-peer", true}};
  Status s = c.Execute("object-add", args, d).status();
  if (!s.ok() && s.message().find("duplicate") != std::string::npos) {
    return Status::AlreadyExists(s.message());
  }
  return s;
}

Status ObjectDel(QmpClient& c, const std::string& id, Deadline d) {
  Status s = c.Execute("object-del", {{"id", id}}, d).status();
  if (!s.ok() && s.message().find("not found") != std::string::npos) {
    return Status::NotFound(s.message());
  }
  return s;
}

Status BlockExportAddNbd(QmpClient& c, const std::string& id, const std::string& node,
                         const std::string& name, const std::string& bitmap, Deadline d) {
  Json args = {
      {"type", "nbd"}, {"id", id}, {"node-name", node}, {"name", name}, {"writable", false}};
  if (!bitmap.empty()) args["bitmaps"] = Json::array({bitmap});
  return c.Execute("block-export-add", args, d).status();
}

Status BlockExportDel(QmpClient& c, const std::string& id, Deadline d) {
  return c.Execute("block-export-del", {{"id", id}, {"mode", "hard"}}, d).status();
}

Result<std::vector<BlockExport>> QueryBlockExports(QmpClient& c, Deadline d) {
  VMG_ASSIGN_OR_RETURN(Json r, c.Execute("query-block-exports", d));
  std::vector<BlockExport> exports;
  for (const auto& e : Elements(r)) exports.push_back({Text(e, "id"), Flag(e, "shutting-down")});
  return exports;
}

Status Transaction(QmpClient& c, const std::vector<Json>& actions, Deadline d) {
  auto [command, args] = TransactionCommand(actions);
  return c.Execute(command, args, d).status();
}

Command TransactionCommand(const std::vector<Json>& actions) {
  return {"transaction", {{"actions", actions}}};
}

Status BlockCommit(QmpClient& c, const std::string& job_id, const std::string& device,
                   const std::string& top, const std::string& base, Deadline d) {
  return c
      .Execute("block-commit",
               {{"job-id", job_id},
                {"device", device},
                {"top-node", top},
                {"base-node", base},
                {"auto-dismiss", false}},
               d)
      .status();
}

Status SetBackgroundSnapshot(QmpClient& c, bool on, Deadline d) {
  Json cap = {{"capability", "background-snapshot"}, {"state", on}};
  return c.Execute("migrate-set-capabilities", {{"capabilities", Json::array({cap})}}, d).status();
}

Command MigrateCommand(const std::string& fd_name) {
  return {"migrate", {{"uri", "fd:" + fd_name}}};
}

Status MigrateIncoming(QmpClient& c, const std::string& fd_name, Deadline d) {
  return c.Execute("migrate-incoming", {{"uri", "fd:" + fd_name}}, d).status();
}

Command GetFdCommand(const std::string& name) { return {"getfd", {{"fdname", name}}}; }

Status GetFd(QmpClient& c, const std::string& name, int fd, Deadline d) {
  auto [command, args] = GetFdCommand(name);
  return c.Execute(command, args, d, fd).status();
}

Status CloseFd(QmpClient& c, const std::string& name, Deadline d) {
  return c.Execute("closefd", {{"fdname", name}}, d).status();
}

Result<int> AddFd(QmpClient& c, int fd, Deadline d) {
  VMG_ASSIGN_OR_RETURN(Json r, c.Execute("add-fd", Json::object(), d, fd));
  const Json& id = Field(r, "fdset-id");
  if (!id.is_number_unsigned() || id.get<uint64_t>() > INT_MAX) {
    return Status::Unavailable("add-fd answered no fdset-id");
  }
  return static_cast<int>(id.get<uint64_t>());
}

Status RemoveFdSet(QmpClient& c, int fdset, Deadline d) {
  return c.Execute("remove-fd", {{"fdset-id", fdset}}, d).status();
}

std::string FdSetPath(int fdset) { return "/dev/fdset/" + std::to_string(fdset); }

Result<MigrationInfo> QueryMigrate(QmpClient& c, Deadline d) {
  VMG_ASSIGN_OR_RETURN(Json r, c.Execute("query-migrate", d));
  return MigrationInfo{Text(r, "status"), Text(r, "error-desc")};
}

Status AwaitMigration(QmpClient& c, Deadline d) {
  while (true) {
    VMG_ASSIGN_OR_RETURN(MigrationInfo m, QueryMigrate(c, d));
    if (m.status == "completed") return Status::Ok();
    if (m.failed()) {
      return Status::Failed("migration stream " + m.status + (m.error.empty() ? "" : ": ") +
                            m.error);
    }
    if (c.env()->Now() >= d) {
      return Status::Timeout("the migration stream did not finish in time");
    }
    c.env()->SleepFor(std::chrono::milliseconds(5));
  }
}

Result<std::optional<JobInfo>> QueryJob(QmpClient& c, const std::string& job_id, Deadline d) {
  VMG_ASSIGN_OR_RETURN(Json jobs, c.Execute("query-jobs", d));
  for (const auto& j : Elements(jobs)) {
    if (Text(j, "id") != job_id) continue;
    return std::optional<JobInfo>(JobInfo{Text(j, "status"), Text(j, "error")});
  }
  return std::optional<JobInfo>();
}

Status CompleteJob(QmpClient& c, const std::string& job_id, Deadline d) {
  bool completed = false;
  while (true) {
    VMG_ASSIGN_OR_RETURN(auto job, QueryJob(c, job_id, d));
    if (!job) return Status::NotFound("QEMU has no job " + job_id);
    if (job->status == "concluded") {
      VMG_RETURN_IF_ERROR(c.Execute("job-dismiss", {{"id", job_id}}, d).status());
      if (!job->error.empty()) return Status::Failed("job " + job_id + ": " + job->error);
      return Status::Ok();
    }
    if (job->status == "ready" && !completed) {
      VMG_RETURN_IF_ERROR(c.Execute("job-complete", {{"id", job_id}}, d).status());
      completed = true;
      continue;
    }
    if (c.env()->Now() >= d) return Status::Timeout("job " + job_id + " did not finish in time");
    c.env()->SleepFor(std::chrono::milliseconds(2));
  }
}

}  // namespace vmgroup::hypervisor::qemu::qmp
