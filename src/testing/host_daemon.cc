#include "testing/host_daemon.h"

#include <signal.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "base/tied_command.h"
#include "hypervisor/qemu/qmp_client.h"
#include "hypervisor/qemu/qmp_commands.h"
#include "testing/daemon_ready.h"
#include "testing/process_status.h"
#include "testing/test_certs.h"

namespace vmgroup::testing {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// /etc/shadow with root's password set to `password`, written to `path`.
Status WriteShadow(const std::string& path, const std::string& password) {
  auto hash = Env::Default()->Run({"openssl", "passwd", "-6", "-salt", "vmgnethosts", password});
  if (!hash.ok()) return hash.status();
  if (hash->exit_code != 0) return Status::Failed("openssl passwd: " + hash->err);
  std::string root = "root:" + hash->out;
  while (!root.empty() && root.back() == '\n') root.pop_back();
  std::string shadow = root + ":19000:0:99999:7:::\n";
  std::istringstream lines(ReadAll("/etc/shadow"));
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("root:")) shadow += line + "\n";
  }
  return Env::Default()->WriteFile(path, shadow);
}

}  // namespace

Result<std::unique_ptr<HostDaemon>> HostDaemon::Start(const NetHost& host, const std::string& dir,
                                                      const Binaries& bin,
                                                      std::vector<std::string> more_args) {
  std::unique_ptr<HostDaemon> d(new HostDaemon());
  d->host_ = &host;
  d->dir_ = dir;
  d->address_ = host.address();
  d->vmgroup_ = bin.vmgroup;
  VMG_RETURN_IF_ERROR(Env::Default()->CreateDirs(dir));
  VMG_ASSIGN_OR_RETURN(TestCerts certs, MakeTestCerts(dir, "host", host.address()));
  d->ca_ = certs.ca;
  const std::string shadow = dir + "/shadow";
  VMG_RETURN_IF_ERROR(WriteShadow(shadow, kPassword));
  // nsenter, unshare and sh each exec the next: the pid is vmgroupd's, and
  // it dies with this process.
  d->argv_ = {"unshare",
              "-m",
              "--propagation",
              "private",
              "sh",
              "-c",
              "mount --bind \"$1\" /etc/shadow && shift && exec \"$@\"",
              "sh",
              shadow,
              bin.vmgroupd,
              "--no-config",
              "--state-dir",
              dir + "/state",
              "--accel",
              "tcg",
              "--admin-group",
              "root",
              "--listen",
              "https://" + host.address() + ":0",
              "--tls-cert",
              certs.server_cert,
              "--tls-key",
              certs.server_key};
  d->argv_.insert(d->argv_.end(), more_args.begin(), more_args.end());
  VMG_RETURN_IF_ERROR(d->Launch());
  return d;
}

Status HostDaemon::Launch() {
  const std::string log = this->log();
  // Appended to across restarts: this start's port is after what is there.
  const size_t from = ReadAll(log).size();
  VMG_ASSIGN_OR_RETURN(pid_, Env::Default()->Spawn(host_->Command(TiedToThisProcess(argv_)),
                                                   {.log_path = log, .new_session = false}));
  auto port = AwaitDaemonReady(pid_, log, from, address_);
  if (!port.ok() || *port == 0) {
    return Status::Failed("vmgroupd in host " + address_ + " did not serve" +
                          (port.ok() ? "" : " (" + port.status().message() + ")") + ":\n" +
                          ReadAll(log));
  }
  port_ = *port;
  return Status::Ok();
}

Result<std::vector<std::string>> HostDaemon::CoordinatorArgs(
    const std::map<std::string, const HostDaemon*>& peers, const std::string& dir) {
  VMG_RETURN_IF_ERROR(Env::Default()->CreateDirs(dir));
  std::vector<std::string> args = {"--peer-credentials", dir};
  std::string cas;
  for (const auto& [name, d] : peers) {
    VMG_RETURN_IF_ERROR(
        Env::Default()->WriteFile(dir + "/" + name + ".password", std::string(kPassword) + "\n"));
    VMG_ASSIGN_OR_RETURN(std::string ca, Env::Default()->ReadFile(d->ca()));
    cas += ca;
    args.insert(args.end(), {"--peer", name + "=" + d->Endpoint()});
  }
  VMG_RETURN_IF_ERROR(Env::Default()->WriteFile(dir + "/ca.pem", cas));
  return args;
}

Status HostDaemon::Restart() {
  if (pid_ != 0) return Status::InvalidState("vmgroupd in host " + address_ + " runs");
  return Launch();
}

HostDaemon::~HostDaemon() {
  (void)Stop(SIGKILL);
  auto vms = Env::Default()->ListDir(dir_ + "/state/vms");
  if (!vms.ok()) return;
  for (const auto& id : *vms) {
    for (int qemu : QemusOf(id)) {
      (void)Env::Default()->Kill(qemu, SIGKILL);
      (void)Env::Default()->WaitGone(qemu, std::chrono::seconds(30));
    }
  }
}

Status HostDaemon::Stop(int signal) {
  if (pid_ == 0) return Status::Ok();
  VMG_RETURN_IF_ERROR(Env::Default()->Kill(pid_, signal));
  VMG_RETURN_IF_ERROR(Env::Default()->WaitGone(pid_, std::chrono::seconds(30)));
  pid_ = 0;
  return Status::Ok();
}

std::string HostDaemon::Endpoint() const {
  return "https://root@" + address_ + ":" + std::to_string(port_);
}

Result<CommandOutput> HostDaemon::Cli(const std::vector<std::string>& args, const NetHost* from,
                                      const std::string& address) const {
  std::vector<std::string> argv = {
      "env",
      std::string("VMGROUP_PASSWORD=") + kPassword,
      vmgroup_,
      "--connect",
      "https://root@" + (address.empty() ? address_ : address) + ":" + std::to_string(port_),
      "--cacert",
      ca_};
  argv.insert(argv.end(), args.begin(), args.end());
  argv = TiedToThisProcess(argv);  // a test that dies takes it along
  if (from) argv = from->Command(argv);
  return Env::Default()->Run(argv, std::chrono::minutes(3));
}

Result<nlohmann::json> HostDaemon::Json(std::vector<std::string> args) const {
  args.push_back("--json");
  VMG_ASSIGN_OR_RETURN(CommandOutput r, Cli(args));
  if (r.exit_code != 0) return Status::Failed("vmgroup " + args[0] + " " + args[1] + ": " + r.err);
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Failed("vmgroup " + args[0] + " printed no JSON: " + r.out);
  return j;
}

Result<std::vector<std::string>> HostDaemon::MakeGroup(
    const std::vector<std::string>& names, const std::string& group_id,
    const std::vector<std::string>& vm_options) const {
  std::vector<std::string> create = {"group", "create", "app"};
  if (!group_id.empty()) create.insert(create.end(), {"--id", group_id});
  VMG_RETURN_IF_ERROR(Json(create).status());
  std::vector<std::string> ids;
  for (const auto& name : names) {
    std::vector<std::string> create_vm = {"vm", "create", name};
    create_vm.insert(create_vm.end(), vm_options.begin(), vm_options.end());
    create_vm.push_back("--start");
    VMG_ASSIGN_OR_RETURN(nlohmann::json vm, Json(create_vm));
    ids.push_back(vm["id"]);
    VMG_ASSIGN_OR_RETURN(CommandOutput added, Cli({"group", "add", "app", name}));
    if (added.exit_code != 0) return Status::Failed("vmgroup group add: " + added.err);
  }
  return ids;
}

std::string HostDaemon::QemuStatus(const std::string& vm_id) const {
  const std::string socket = dir_ + "/state/vms/" + vm_id + "/guard.sock";
  for (int tries = 0; tries < 100; ++tries) {  // a guard just disarmed lets go within moments
    auto qmp = hypervisor::qemu::QmpClient::Connect(Env::Default(), socket,
                                                    Clock::now() + std::chrono::seconds(2));
    if (qmp.ok()) {
      auto status =
          hypervisor::qemu::qmp::QueryStatus(**qmp, Clock::now() + std::chrono::seconds(10));
      return status.ok() ? *status : status.status().ToString();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return "no monitor at " + socket;
}

}  // namespace vmgroup::testing
