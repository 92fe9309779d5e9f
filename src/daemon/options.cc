#include "daemon/options.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace vmgroup::daemon {

std::string Usage() {
  return R"(usage: vmgroupd [options]

Serves the Hyper-V collection API (root/virtualization/v2) over CIM-XML and
runs the VMs it manages. Runs in the foreground; logs to stderr.

  --state-dir DIR        catalog, VM run directories, snapshots (default /var/lib/vmgroup)
  --listen unix:PATH     a unix socket (default unix:/run/vmgroup/vmgroupd.sock),
                         open to every local user (mode 0666): each peer is judged
                         by its uid (SO_PEERCRED) and that user's groups
  --listen https://HOST:PORT
                         CIM-XML over TLS (WBEM's port is 5989); clients authenticate
                         with HTTP Basic, checked by PAM (service "vmgroupd")
  --tls-cert FILE        the https listeners' certificate (chain), PEM
  --tls-key FILE         its private key, PEM (readable by root alone)
  --listen http://HOST:PORT
                         CIM-XML over TCP without TLS: loopback addresses only,
                         unless --insecure-plaintext
  --metrics-on LISTENER  also serve Prometheus metrics (GET /metrics) on this one of
                         the --listen listeners, as unix:PATH or https://HOST:PORT;
                         readers and admins may read them; repeatable
  --admin-group NAME     users who may manage VMs, groups and snapshots (default
                         vmgroup); root always may
  --reader-group NAME    users who may only read (enumerate, get, follow associations)
  --insecure-loopback    allow TCP without authentication, loopback addresses only
  --insecure-plaintext   allow http:// on addresses other than loopback: passwords
                         then cross the network in clear text
  --libvirt URI          also serve the domains of this libvirt connection
                         (qemu:///system, qemu+ssh://HOST/system, ...): each is a VM,
                         followed as libvirt changes it; repeatable
  --accel auto|kvm|tcg   QEMU accelerator (default auto: KVM if a tiny guest runs
                         under it at start, within 5 s, else TCG with a warning;
                         a /dev/kvm that opens may still not run guests)
  --qemu-user NAME        the user QEMU runs as when vmgroupd runs as root
                         (default vmgroup-qemu; "root" keeps QEMU root)
  --freeze-bound SECONDS  longest guests stay frozen for an application-consistent
                         snapshot (default 10)
  --nbd-tls-dir DIR      serve backup sessions over TCP too when asked, with TLS from
                         DIR's ca-cert.pem, server-cert.pem, server-key.pem (readable
                         by QEMU's user); readers need a certificate that CA signed
  --nbd-listen HOST      the numeric address those sessions listen on (with
                         --nbd-tls-dir; their URIs name it)
  --log-level LEVEL      debug, info, warning or error (default info)
  --help
  --version              print vmgroupd's version and exit
)";
}

Status CheckNbdTlsDir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("--nbd-tls-dir " + dir + " is not a directory");
  }
  for (const char* file : kNbdTlsFiles) {
    const std::string path = dir + "/" + file;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return Status::InvalidArgument("--nbd-tls-dir " + dir + " has no " + file + " (" + path +
                                     "): it needs ca-cert.pem, server-cert.pem and "
                                     "server-key.pem");
    }
  }
  return Status::Ok();
}

bool IsGroupName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '-') return false;
  for (unsigned char c : name) {
    if (!std::isalnum(c) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
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
  l.tls = text.starts_with("https://");
  if (!l.tls && !text.starts_with("http://")) {
    return Status::InvalidArgument("--listen " + text +
                                   ": use unix:PATH, https://HOST:PORT or http://HOST:PORT");
  }
  std::string rest = text.substr(l.tls ? 8 : 7);
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || rest.back() == ']') {
    return Status::InvalidArgument("--listen " + text + ": give a port (https://HOST:PORT)");
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
  std::vector<std::string> metrics_on;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> Result<std::string> {
      if (i + 1 >= args.size()) return Status::InvalidArgument(a + " needs a value");
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      o.help = true;
    } else if (a == "--version") {
      o.version = true;
    } else if (a == "--state-dir") {
      VMG_ASSIGN_OR_RETURN(o.state_dir, value());
      if (o.state_dir.empty() || o.state_dir[0] != '/') {
        return Status::InvalidArgument("--state-dir must be an absolute path");
      }
    } else if (a == "--listen") {
      VMG_ASSIGN_OR_RETURN(std::string v, value());
      VMG_ASSIGN_OR_RETURN(Listen l, ParseListen(v));
      o.listens.push_back(std::move(l));
    } else if (a == "--metrics-on") {
      VMG_ASSIGN_OR_RETURN(std::string v, value());
      metrics_on.push_back(v);
    } else if (a == "--insecure-loopback") {
      o.insecure_loopback = true;
    } else if (a == "--insecure-plaintext") {
      o.insecure_plaintext = true;
    } else if (a == "--tls-cert" || a == "--tls-key") {
      VMG_ASSIGN_OR_RETURN(std::string v, value());
      if (v.empty()) return Status::InvalidArgument(a + " needs a file");
      (a == "--tls-cert" ? o.tls_cert : o.tls_key) = v;
    } else if (a == "--admin-group" || a == "--reader-group") {
      VMG_ASSIGN_OR_RETURN(std::string v, value());
      if (!IsGroupName(v)) {
        return Status::InvalidArgument(a + " '" + v + "' is not a group name");
      }
      (a == "--admin-group" ? o.admin_group : o.reader_group) = v;
    } else if (a == "--libvirt") {
      VMG_ASSIGN_OR_RETURN(std::string uri, value());
      if (uri.empty() || uri.find(':') == std::string::npos) {
        return Status::InvalidArgument("--libvirt needs a libvirt URI, such as qemu:///system");
      }
      if (std::find(o.libvirt.begin(), o.libvirt.end(), uri) == o.libvirt.end()) {
        o.libvirt.push_back(uri);
      }
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
    } else if (a == "--nbd-tls-dir") {
      VMG_ASSIGN_OR_RETURN(o.nbd_tls_dir, value());
      if (o.nbd_tls_dir.empty() || o.nbd_tls_dir[0] != '/') {
        return Status::InvalidArgument("--nbd-tls-dir must be an absolute path");
      }
    } else if (a == "--nbd-listen") {
      VMG_ASSIGN_OR_RETURN(o.nbd_listen, value());
      unsigned char addr[sizeof(in6_addr)];
      if (::inet_pton(AF_INET, o.nbd_listen.c_str(), addr) != 1 &&
          ::inet_pton(AF_INET6, o.nbd_listen.c_str(), addr) != 1) {
        return Status::InvalidArgument("--nbd-listen " + o.nbd_listen +
                                       " is not a numeric IPv4 or IPv6 address");
      }
    } else if (a == "--log-level") {
      VMG_ASSIGN_OR_RETURN(std::string v, value());
      if (!ParseLogLevel(v, &o.log_level)) {
        return Status::InvalidArgument("--log-level must be debug, info, warning or error");
      }
    } else {
      return Status::InvalidArgument("unknown option " + a + " (see --help)");
    }
  }
  if (o.listens.empty()) o.listens.push_back({kDefaultSocket, "", 0, false});
  for (const auto& text : metrics_on) {
    auto parsed = ParseListen(text);
    if (!parsed.ok()) {
      return Status::InvalidArgument("--metrics-on " + text +
                                     ": name a listener as --listen names it (unix:PATH, "
                                     "https://HOST:PORT, http://HOST:PORT)");
    }
    const Listen& named = *parsed;
    auto same = [&](const Listen& l) {
      return l.unix_path == named.unix_path && l.host == named.host && l.port == named.port &&
             l.tls == named.tls;
    };
    auto it = std::find_if(o.listens.begin(), o.listens.end(), same);
    if (it == o.listens.end()) {
      return Status::InvalidArgument("--metrics-on " + text + " is none of the --listen listeners");
    }
    it->metrics = true;
  }
  bool https = false;
  for (const auto& l : o.listens) {
    if (!l.unix_path.empty()) continue;
    https = https || l.tls;
    if (o.insecure_loopback && !IsLoopback(l.host)) {
      return Status::InvalidArgument(
          "--insecure-loopback serves without authentication, so it "
          "only allows loopback listeners; " +
          l.host + " is not one");
    }
    if (!l.tls && !o.insecure_plaintext && !IsLoopback(l.host)) {
      return Status::InvalidArgument(
          "--listen http://" + l.host + ":" + std::to_string(l.port) +
          " would carry passwords in clear text: use https:// with --tls-cert and "
          "--tls-key, or add --insecure-plaintext");
    }
  }
  if (https && (o.tls_cert.empty() || o.tls_key.empty())) {
    return Status::InvalidArgument("an https:// listener needs --tls-cert FILE and --tls-key FILE");
  }
  if (!https && (!o.tls_cert.empty() || !o.tls_key.empty())) {
    return Status::InvalidArgument(
        "--tls-cert and --tls-key are for https:// listeners; "
        "none is given");
  }
  if (o.nbd_tls_dir.empty() != o.nbd_listen.empty()) {
    return Status::InvalidArgument(
        "--nbd-tls-dir and --nbd-listen go together: backup sessions serve over TCP only "
        "with TLS, on the address readers reach");
  }
  if (!o.reader_group.empty() && o.reader_group == o.admin_group) {
    return Status::InvalidArgument("--reader-group and --admin-group name the same group");
  }
  return o;
}

}  // namespace vmgroup::daemon
