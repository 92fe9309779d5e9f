#include "daemon/daemon.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"
#include "base/unique_fd.h"
#include "daemon/pam_auth.h"
#include "daemon/systemd.h"
#include "hypervisor/libvirt/libvirt_driver.h"
#include "services/providers.h"

namespace vmgroup::daemon {
namespace {

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

std::string Dir(const std::string& path) { return path.substr(0, path.rfind('/')); }

// GET /metrics: Prometheus's text format (docs/metrics.md), for readers and
// admins, refused to others as the CIM operations that read are.
cim::HttpResponse Metrics(const cim::HttpRequest& r, engine::Engine& engine) {
  if (r.method != "GET") {
    cim::HttpResponse no = cim::TextResponse(405, "/metrics is read with GET");
    no.headers.emplace_back("Allow", "GET");
    return no;
  }
  const cim::Peer& peer = r.peer;
  if (peer.role == cim::Role::kNone) {
    return cim::TextResponse(
        403, "user " + peer.name + " may not read /metrics: it needs group " + peer.admin_group +
                 (peer.reader_group.empty() ? "" : " or " + peer.reader_group));
  }
  auto jobs = engine.catalog().ListJobs();
  if (!jobs.ok()) return cim::TextResponse(500, "reading the jobs: " + jobs.status().message());
  engine::OperationMetrics& metrics = engine.snapshots().metrics();
  metrics.SetJobs(*jobs);
  cim::HttpResponse ok{.status = 200, .body = metrics.registry().Render()};
  ok.headers.emplace_back("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  return ok;
}

// Each --peer, said once at start, with what its credentials lack: a
// missing or unreadable password file is only a warning here (a peer may
// be configured before its password, and each call reads it again), but
// its groups fail until it is fixed.
void LogPeers(const Options& o, remote::CimPeers& peers) {
  for (const auto& [name, url] : o.peers) {
    auto credentials = peers.Credentials(name);
    if (!credentials.ok()) {
      Log(LogLevel::kWarning, "--peer " + name + ": " + credentials.status().message());
      continue;
    }
    Log(LogLevel::kInfo, "peer " + name + ": " + url +
                             (credentials->cacert.empty() ? " (the system's CA store)"
                                                          : " (CA " + credentials->cacert + ")"));
    struct stat st {};
    const std::string file = peers.PasswordFile(name);
    if (!credentials->password.empty() && ::stat(file.c_str(), &st) == 0 &&
        (st.st_mode & 077) != 0) {
      Log(LogLevel::kWarning, file + " is readable by others than its owner: chmod 600 it");
    }
    ::explicit_bzero(credentials->password.data(), credentials->password.size());
  }
}

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::Start(const Options& o) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->access_ = std::make_unique<Access>(o.admin_group, o.reader_group);
  if (Status groups = d->access_->CheckGroupsExist(); !groups.ok()) {
    // The default group missing leaves root alone in charge; a group named
    // on the command line missing is a mistake to fix.
    if (o.admin_group != kDefaultAdminGroup || !o.reader_group.empty()) return groups;
    Log(LogLevel::kWarning, groups.message() + ": only root may manage vmgroupd");
  }
  hypervisor::qemu::QemuOptions qemu;
  qemu.accel = o.accel;
  // Only root can start QEMU as another user; anyone else runs it as itself.
  if (::geteuid() == 0) qemu.user = o.qemu_user;
  // The daemon's own, to say which accelerator it resolved (kAuto: the probe).
  VMG_ASSIGN_OR_RETURN(d->qemu_, hypervisor::qemu::QemuDriver::Create(Env::Default(), qemu));
  const std::string accel = hypervisor::qemu::AccelName(d->qemu_->accel());
  if (!d->qemu_->kvm_refusal().ok()) {
    Log(LogLevel::kWarning, "KVM cannot run guests here (" + d->qemu_->kvm_refusal().ToString() +
                                "): VMs run under TCG, slower; --accel kvm insists on KVM");
  }
  Log(LogLevel::kInfo, "QEMU accelerator: " + accel +
                           (o.accel == hypervisor::qemu::Accel::kAuto ? " (--accel auto)" : ""));
  engine::EngineOptions eo;
  eo.state_dir = o.state_dir;
  eo.driver = d->qemu_.get();
  eo.snapshot.freeze_bound = o.freeze_bound;
  if (!o.nbd_tls_dir.empty()) VMG_RETURN_IF_ERROR(CheckNbdTlsDir(o.nbd_tls_dir));
  eo.snapshot.nbd_listen = o.nbd_listen;
  eo.snapshot.nbd_tls_dir = o.nbd_tls_dir;
  // Its folder in an export across hosts, beside its peers' named as it names them.
  eo.snapshot.host_name = HostName();
  eo.snapshot.host_lease = o.pause_lease;
  // The catalog and exports are for root and the admin group only.
  eo.admin_gid = d->access_->AdminGid();
  d->peers_ = std::make_unique<remote::CimPeers>(
      Env::Default(),
      remote::CimPeers::Options{.endpoints = o.peers, .credentials_dir = o.peer_credentials});
  LogPeers(o, *d->peers_);
  eo.peers = d->peers_.get();
  for (const auto& uri : o.libvirt) {
    auto libvirt = hypervisor::libvirt::LibvirtDriver::Connect(Env::Default(), uri);
    if (!libvirt.ok()) return libvirt.status().Annotate("--libvirt " + uri);
    eo.libvirt[uri] = libvirt->get();
    d->libvirt_.push_back(std::move(libvirt).value());
  }
  VMG_ASSIGN_OR_RETURN(d->engine_, engine::Engine::Open(eo));
  const auto& rec = d->engine_->recovery();
  // What recovery could not repair waits for the next start: say so loudly.
  Log(rec.problems.ok() && rec.io_errors.empty() ? LogLevel::kInfo : LogLevel::kWarning,
      "state directory " + o.state_dir + ": " + rec.Summary());

  d->jobs_ = std::make_unique<services::JobManager>(Env::Default(), &d->engine_->catalog());
  VMG_RETURN_IF_ERROR(d->jobs_->EndInterrupted(rec));

  const std::string host = HostName();
  d->dispatcher_ = std::make_unique<cim::Dispatcher>(services::kNamespace, host);
  services::Register(*d->dispatcher_, {d->engine_.get(), d->jobs_.get(), host, accel});

  VMG_RETURN_IF_ERROR(d->StartListeners(o));
  return d;
}

Status Daemon::StartListeners(const Options& o) {
  std::string cert, key;
  if (!o.tls_cert.empty()) {
    auto read = [](const std::string& flag, const std::string& path) -> Result<std::string> {
      auto text = Env::Default()->ReadFile(path);
      if (!text.ok())
        return Status::InvalidArgument("cannot read " + flag + " " + path + ": " +
                                       text.status().message());
      return text;
    };
    VMG_ASSIGN_OR_RETURN(cert, read("--tls-cert", o.tls_cert));
    VMG_ASSIGN_OR_RETURN(key, read("--tls-key", o.tls_key));
    struct stat st {};
    if (::stat(o.tls_key.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      Log(LogLevel::kWarning,
          "--tls-key " + o.tls_key + " is readable by others than its owner: chmod 600 it");
    }
  }

  cim::Dispatcher* dispatcher = dispatcher_.get();
  engine::Engine* engine = engine_.get();
  server_ = std::make_unique<cim::HttpServer>(
      [dispatcher, engine](const cim::HttpRequest& r) {
        // The server passes /metrics only from the listeners --metrics-on names.
        cim::HttpResponse resp =
            r.target == "/metrics" ? Metrics(r, *engine) : dispatcher->Handle(r);
        if (resp.status != 200) {
          const std::string* why = resp.Header("CIMError");
          Log(LogLevel::kWarning, "refused a request: HTTP " + std::to_string(resp.status) +
                                      (why ? " " + *why : std::string()));
        }
        return resp;
      },
      cim::HttpServer::Options{
          .connection_nice = 10,
          .log = [](LogLevel level, std::string_view line) { Log(level, line); }});
  const Access* access = access_.get();
  VMG_ASSIGN_OR_RETURN(std::vector<UniqueFd> passed, TakePassedSockets(o.listens));
  for (size_t i = 0; i < o.listens.size(); ++i) {
    const Listen& l = o.listens[i];
    // The server owns a passed socket from the call on, also on an error.
    const int fd = passed[i].release();
    const std::string how = fd >= 0 ? " (passed by systemd)" : "";
    if (!l.unix_path.empty()) {
      if (fd < 0) VMG_RETURN_IF_ERROR(Env::Default()->CreateDirs(Dir(l.unix_path)));
      // Everyone may connect: each peer's uid decides what it may do.
      VMG_RETURN_IF_ERROR(server_->ListenUnix(
          {.path = l.unix_path,
           .mode = 0666,
           .who = [access](uid_t uid, gid_t gid) { return access->ForUid(uid, gid); },
           .metrics = l.metrics,
           .inherited_fd = fd}));
      Log(LogLevel::kInfo,
          "listening on unix:" + l.unix_path + (l.metrics ? " (with /metrics)" : "") + how);
      continue;
    }
    cim::HttpServer::TcpListener tcp{
        .host = l.host, .port = l.port, .metrics = l.metrics, .inherited_fd = fd};
    if (!o.insecure_loopback) {
      tcp.auth = [access](const std::string& user,
                          const std::string& password) -> std::optional<cim::Peer> {
        if (!PamAuthenticate("vmgroupd", user, password)) {
          Log(LogLevel::kWarning, "PAM refused user " + user);
          return std::nullopt;
        }
        return access->ForUser(user);
      };
    }
    if (l.tls) {
      tcp.tls_cert_pem = cert;
      tcp.tls_key_pem = key;
    }
    auto port_or = server_->ListenTcp(tcp);
    ::explicit_bzero(tcp.tls_key_pem.data(), tcp.tls_key_pem.size());
    VMG_ASSIGN_OR_RETURN(int port, std::move(port_or));
    tcp_ports_.push_back(port);
    const std::string scheme = l.tls ? "https://" : "http://";
    const std::string host = l.host.find(':') == std::string::npos ? l.host : "[" + l.host + "]";
    Log(LogLevel::kInfo, "listening on " + scheme + host + ":" + std::to_string(port) +
                             (tcp.auth ? " (HTTP Basic, PAM service vmgroupd)"
                                       : " (no authentication: loopback only)") +
                             (l.metrics ? " (with /metrics)" : "") + how);
  }
  ::explicit_bzero(key.data(), key.size());
  return Status::Ok();
}

Daemon::~Daemon() {
  if (server_) server_->Stop();
  // A backup session's job lasts as long as it serves: ended here, its job
  // ends with it (and its QEMUs serve no more).
  if (Status s = engine_ ? engine_->snapshots().backups().EndAll() : Status::Ok(); !s.ok()) {
    Log(LogLevel::kWarning, "ending the backup sessions: " + s.ToString());
  }
  jobs_.reset();  // waits for running jobs
  Log(LogLevel::kInfo, "stopped; the VMs keep running");
}

}  // namespace vmgroup::daemon
