#include "daemon/options.h"

#include <charconv>

namespace vmgroup::daemon {

std::string Usage() {
  return R"(usage: vmgroupd [options]

Serves the Hyper-V collection API (root/virtualization/v2) over CIM-XML and
runs the VMs it manages. Runs in the foreground; logs to stderr.

  --state-dir DIR        catalog, VM run directories, snapshots (default /var/lib/vmgroup)
  --listen unix:PATH     a unix socket (default unix:/run/vmgroup/vmgroupd.sock);
                         its file mode (0660) and group are its access control
  --listen http://HOST:PORT
                         CIM-XML over TCP; clients authenticate with HTTP Basic,
                         checked by PAM (service "vmgroupd")
  --insecure-loopback    allow TCP without authentication, loopback addresses only
  --accel auto|kvm|tcg   QEMU accelerator (default auto: KVM when /dev/kvm exists)
  --qemu-user NAME        the user QEMU runs as when vmgroupd runs as root
                         (default vmgroup-qemu; "root" keeps QEMU root)
  --freeze-bound SECONDS  longest guests stay frozen for an application-consistent
                         snapshot (default 10)
  --log-level LEVEL      debug, info, warning or error (default info)
  --help
)";
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

Result<Listen> ParseListen(const std::string& text) {
  Listen l;
  if (text.starts_with("unix:")) {
    l.unix_path = text.substr(5);
    if (l.unix_path.empty() || l.unix_path[0] != '/') {
      return Status::InvalidArgument("--listen " + text + ": the socket path must be absolute");
    }
    return l;
  }
  if (!text.starts_with("http://")) {
    return Status::InvalidArgument("--listen " + text + ": use unix:PATH or http://HOST:PORT");
  }
  std::string rest = text.substr(7);
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || rest.back() == ']') {
    return Status::InvalidArgument("--listen " + text + ": give a port (http://HOST:PORT)");
  }
  l.host = rest.substr(0, colon);
  if (l.host.size() > 1 && l.host.front() == '[') l.host = l.host.substr(1, l.host.size() - 2);
  const std::string port = rest.substr(colon + 1);
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), l.port);
  if (ec != std::errc() || end != port.data() + port.size() || l.port < 0 || l.port > 65535 ||
      l.host.empty()) {
    return Status::InvalidArgument("--listen " + text + ": bad host or port");
  }
  return l;
}

Result<Options> ParseOptions(const std::vector<std::string>& args) {
  Options o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> Result<std::string> {
      if (i + 1 >= args.size()) return Status::InvalidArgument(a + " needs a value");
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      o.help = true;
    } else if (a == "--state-dir") {
      VMG_ASSIGN_OR_RETURN(o.state_dir, value());
      if (o.state_dir.empty() || o.state_dir[0] != '/') {
        return Status::InvalidArgument("--state-dir must be an absolute path");
      }
    } else if (a == "--listen") {
      VMG_ASSIGN_OR_RETURN(std::string v, value());
      VMG_ASSIGN_OR_RETURN(Listen l, ParseListen(v));
      o.listens.push_back(std::move(l));
    } else if (a == "--insecure-loopback") {
      o.insecure_loopback = true;
    } else if (a == "--accel") {
      VMG_ASSIGN_OR_RETURN(std::string v, value());
      auto accel = hypervisor::qemu::ParseAccel(v);
      if (!accel.ok()) return accel.status();
      o.accel = *accel;
    } else if (a == "--qemu-user") {
      VMG_ASSIGN_OR_RETURN(o.qemu_user, value());
      if (o.qemu_user.empty()) return Status::InvalidArgument("--qemu-user needs a user name");
    } else if (a == "--freeze-bound") {
      VMG_ASSIGN_OR_RETURN(std::string v, value());
      // Below 4 s no freeze could be answered beside the cut's 2 s and the thaws.
      int seconds = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
      if (ec != std::errc() || end != v.data() + v.size() || seconds < 4 || seconds > 300) {
        return Status::InvalidArgument(
            "--freeze-bound must be a whole number of seconds, 4 to 300");
      }
      o.freeze_bound = std::chrono::seconds(seconds);
    } else if (a == "--log-level") {
      VMG_ASSIGN_OR_RETURN(std::string v, value());
      if (!ParseLogLevel(v, &o.log_level)) {
        return Status::InvalidArgument("--log-level must be debug, info, warning or error");
      }
    } else {
      return Status::InvalidArgument("unknown option " + a + " (see --help)");
    }
  }
  if (o.listens.empty()) o.listens.push_back({kDefaultSocket, "", 0});
  for (const auto& l : o.listens) {
    if (!l.unix_path.empty() || !o.insecure_loopback) continue;
    if (!IsLoopback(l.host)) {
      return Status::InvalidArgument(
          "--insecure-loopback serves without authentication, so it "
          "only allows loopback listeners; " +
          l.host + " is not one");
    }
  }
  return o;
}

}  // namespace vmgroup::daemon
