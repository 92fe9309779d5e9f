#include "testing/net_hosts.h"

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "base/tied_command.h"
#include "testing/process_status.h"

namespace vmgroup::testing {
namespace {

// The host's end of every pair: names inside a host's namespace are its own.
constexpr const char* kHostLink = "eth0";

// The network namespace `pid` is in ("net:[4026531840]"), "" when gone.
std::string NetNamespaceOf(const std::string& pid) {
  std::error_code ec;
  const auto target = std::filesystem::read_symlink("/proc/" + pid + "/ns/net", ec);
  return ec ? "" : target.string();
}

std::string Joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace

Status EnterPrivateNetwork(Env* env) {
  if (ProcessStatus(::getpid(), "Threads") != "1") {
    return Status::InvalidState(
        "EnterPrivateNetwork: this process already runs other threads, which would stay in the "
        "machine's network namespace: call it before any thread starts");
  }
  if (::unshare(CLONE_NEWNET) != 0) {
    return Status::Failed(std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) +
                          " (root needed)");
  }
  // Children start in this namespace now; /proc/sys/net is the opener's.
  VMG_ASSIGN_OR_RETURN(CommandOutput r, env->Run({"ip", "link", "set", "lo", "up"}));
  if (r.exit_code != 0) return Status::Failed("ip link set lo up: " + r.err);
  // Written in place: a /proc file cannot be replaced as Env::WriteFile does.
  std::ofstream forward("/proc/sys/net/ipv4/ip_forward");
  if (!(forward << "1\n" << std::flush)) return Status::Failed("cannot turn IPv4 forwarding on");
  return Status::Ok();
}

NetHostAddresses AddressesOf(int index) {
  const std::string net = "10.77." + std::to_string(index) + ".";
  return {.test_side = net + "1", .host_side = net + "2"};
}

Result<std::unique_ptr<NetHost>> NetHost::Start(Env* env, const NetHostAddresses& a) {
  // Tied to this process: a test that dies takes its hosts with it.
  VMG_ASSIGN_OR_RETURN(
      int pid, env->Spawn(TiedToThisProcess({"unshare", "--net", "--", "sleep", "infinity"}),
                          {.log_path = "/dev/null", .new_session = false}));
  std::unique_ptr<NetHost> host(new NetHost(env, a, pid));
  VMG_RETURN_IF_ERROR(host->Configure());
  return host;
}

NetHost::NetHost(Env* env, NetHostAddresses a, int holder_pid)
    : env_(env),
      addresses_(std::move(a)),
      holder_pid_(holder_pid),
      link_("vh" + std::to_string(holder_pid)) {}

NetHost::~NetHost() {
  (void)env_->Kill(holder_pid_, SIGKILL);
  (void)env_->WaitGone(holder_pid_, std::chrono::seconds(30));
  // The kernel takes the namespace down, and the pair with it, a moment
  // after its last process: wait, so that what follows sees the link gone.
  const auto deadline = env_->Now() + std::chrono::seconds(10);
  while (env_->Now() < deadline && Ip({"link", "show", "dev", link_}, false).ok()) {
    env_->SleepFor(std::chrono::milliseconds(10));
  }
}

Status NetHost::Configure() {
  // The holder is in its namespace once it runs sleep (unshare execs it).
  const std::string ours = NetNamespaceOf("self");
  const auto deadline = env_->Now() + std::chrono::seconds(10);
  while (NetNamespaceOf(std::to_string(holder_pid_)) == ours ||
         ProcessStatus(holder_pid_, "Name") != "sleep") {
    if (!env_->IsAlive(holder_pid_)) return Status::Failed("unshare --net exited (root needed)");
    if (env_->Now() > deadline) return Status::Failed("unshare --net: no namespace within 10 s");
    env_->SleepFor(std::chrono::milliseconds(5));
  }
  const std::string prefix = "/" + std::to_string(addresses_.prefix);
  VMG_RETURN_IF_ERROR(Ip({"link", "add", link_, "type", "veth", "peer", "name", kHostLink, "netns",
                          std::to_string(holder_pid_)},
                         false));
  VMG_RETURN_IF_ERROR(Ip({"address", "add", addresses_.test_side + prefix, "dev", link_}, false));
  VMG_RETURN_IF_ERROR(Ip({"link", "set", link_, "up"}, false));
  VMG_RETURN_IF_ERROR(Ip({"link", "set", "lo", "up"}, true));
  VMG_RETURN_IF_ERROR(
      Ip({"address", "add", addresses_.host_side + prefix, "dev", kHostLink}, true));
  return SetLinkUp(true);
}

std::vector<std::string> NetHost::Command(const std::vector<std::string>& argv) const {
  std::vector<std::string> in = {"nsenter",
                                 "--net=/proc/" + std::to_string(holder_pid_) + "/ns/net", "--"};
  in.insert(in.end(), argv.begin(), argv.end());
  return in;
}

Status NetHost::SetLinkUp(bool up) {
  VMG_RETURN_IF_ERROR(Ip({"link", "set", kHostLink, up ? "up" : "down"}, true));
  // The kernel drops the routes through a link that goes down: the default
  // route comes back with the link only when set again.
  if (!up) return Status::Ok();
  return Ip({"route", "replace", "default", "via", addresses_.test_side}, true);
}

Status NetHost::Ip(const std::vector<std::string>& args, bool inside) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  if (inside) argv = Command(argv);
  VMG_ASSIGN_OR_RETURN(CommandOutput r, env_->Run(argv, std::chrono::seconds(30)));
  if (r.exit_code != 0) return Status::Failed(Joined(argv) + ": " + r.err);
  return Status::Ok();
}

}  // namespace vmgroup::testing
