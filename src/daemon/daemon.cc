#include "daemon/daemon.h"

#include <unistd.h>

#include "base/log.h"
#include "daemon/pam_auth.h"
#include "services/providers.h"

namespace vmgroup::daemon {
namespace {

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

std::string Dir(const std::string& path) { return path.substr(0, path.rfind('/')); }

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::Start(const Options& o) {
  std::unique_ptr<Daemon> d(new Daemon());
  engine::EngineOptions eo;
  eo.state_dir = o.state_dir;
  eo.qemu.accel = o.accel;
  // Only root can start QEMU as another user; anyone else runs it as itself.
  if (::geteuid() == 0) eo.qemu.user = o.qemu_user;
  eo.snapshot.freeze_bound = o.freeze_bound;
  VMG_ASSIGN_OR_RETURN(d->engine_, engine::Engine::Open(eo));
  const auto& rec = d->engine_->recovery();
  // What recovery could not repair waits for the next start: say so loudly.
  Log(rec.problems.ok() ? LogLevel::kInfo : LogLevel::kWarning,
      "state directory " + o.state_dir + ": " + rec.Summary());

  d->jobs_ = std::make_unique<services::JobManager>(Env::Default(), &d->engine_->catalog());
  VMG_RETURN_IF_ERROR(d->jobs_->EndInterrupted());

  const std::string host = HostName();
  d->dispatcher_ = std::make_unique<cim::Dispatcher>(services::kNamespace, host);
  services::Register(*d->dispatcher_, {d->engine_.get(), d->jobs_.get(), host});

  cim::Dispatcher* dispatcher = d->dispatcher_.get();
  d->server_ = std::make_unique<cim::HttpServer>(
      [dispatcher](const cim::HttpRequest& r) {
        cim::HttpResponse resp = dispatcher->Handle(r);
        if (resp.status != 200) {
          const std::string* why = resp.Header("CIMError");
          Log(LogLevel::kWarning, "refused a request: HTTP " + std::to_string(resp.status) +
                                      (why ? " " + *why : std::string()));
        }
        return resp;
      },
      cim::HttpServer::Options{.connection_nice = 10});
  for (const auto& l : o.listens) {
    if (!l.unix_path.empty()) {
      VMG_RETURN_IF_ERROR(Env::Default()->CreateDirs(Dir(l.unix_path)));
      VMG_RETURN_IF_ERROR(d->server_->ListenUnix(l.unix_path, 0660));
      Log(LogLevel::kInfo, "listening on unix:" + l.unix_path);
      continue;
    }
    cim::HttpServer::Authenticator auth;
    if (!o.insecure_loopback) {
      auth = [](const std::string& user, const std::string& password) {
        const bool ok = PamAuthenticate("vmgroupd", user, password);
        if (!ok) Log(LogLevel::kWarning, "PAM refused user " + user);
        return ok;
      };
    }
    VMG_ASSIGN_OR_RETURN(int port, d->server_->ListenTcp(l.host, l.port, auth));
    d->tcp_ports_.push_back(port);
    Log(LogLevel::kInfo,
        "listening on http://" + l.host + ":" + std::to_string(port) +
            (auth ? " (HTTP Basic, PAM service vmgroupd)" : " (no authentication: loopback only)"));
  }
  d->server_->Start();
  return d;
}

Daemon::~Daemon() {
  if (server_) server_->Stop();
  jobs_.reset();  // waits for running jobs
  Log(LogLevel::kInfo, "stopped; the VMs keep running");
}

}  // namespace vmgroup::daemon
