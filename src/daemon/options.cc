#include "daemon/options.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "base/env.h"
#include "daemon/config_file.h"

namespace vmgroup::daemon {

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

Result<std::pair<std::string, std::string>> ParsePeer(const std::string& text) {
  const size_t eq = text.find('=');
  const std::string name = text.substr(0, eq);
  if (eq == std::string::npos || name.empty()) {
    return Status::InvalidArgument(
        "--peer needs NAME=URL, such as db1=https://root@db1.example.com:5989");
  }
  const bool name_ok = name.size() <= 64 && std::isalnum(static_cast<unsigned char>(name[0])) &&
                       std::all_of(name.begin(), name.end(), [](unsigned char c) {
                         return std::isalnum(c) || c == '-' || c == '_' || c == '.';
                       });
  if (!name_ok) {
    return Status::InvalidArgument("--peer: the name '" + name +
                                   "' must be letters, digits, - _ and . (starting with a letter "
                                   "or a digit, at most 64)");
  }
  const std::string url = text.substr(eq + 1);
  const std::string where = "--peer " + name + ": ";
  if (url.starts_with("unix:")) {
    if (url.size() < 6 || url[5] != '/') {
      return Status::InvalidArgument(where + "the socket path of unix:PATH must be absolute");
    }
    return std::pair{name, url};
  }
  const bool https = url.starts_with("https://");
  if (!https && !url.starts_with("http://")) {
    return Status::InvalidArgument(where + "give the URL of its vmgroupd as " + name +
                                   "=https://USER@HOST[:PORT]");
  }
  std::string rest = url.substr(https ? 8 : 7);
  const size_t at = rest.rfind('@');
  const std::string user = at == std::string::npos ? "" : rest.substr(0, at);
  if (user.find(':') != std::string::npos) {
    // The URL is not repeated: it holds the password.
    return Status::InvalidArgument(
        where +
        "the URL holds a password: take it out (it would show in ps and in the log) "
        "and put it on the first line of " +
        name + ".password in the --peer-credentials directory (default " + kDefaultPeerCredentials +
        ")");
  }
  if (at != std::string::npos) rest.erase(0, at + 1);
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  const bool user_ok = std::all_of(user.begin(), user.end(), [](unsigned char c) {
    return std::isgraph(c) && c != '/' && c != '?' && c != '#';
  });
  if (!user_ok || (https && user.empty())) {
    return Status::InvalidArgument(where + url +
                                   ": name the user this vmgroupd logs in as on that host, an "
                                   "admin there: https://USER@HOST[:PORT]");
  }
  // HOST, [IPv6] or either with :PORT.
  std::string host = rest, port;
  if (rest.starts_with("[")) {
    const size_t close = rest.find(']');
    host = close == std::string::npos ? "" : rest.substr(1, close - 1);
    const std::string after = close == std::string::npos ? "" : rest.substr(close + 1);
    if (after.starts_with(":")) port = after.substr(1);
    if (!after.empty() && (!after.starts_with(":") || port.empty())) host.clear();
  } else if (const size_t colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) host.clear();
  }
  int number = 0;
  if (!port.empty()) {
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (ec != std::errc() || end != port.data() + port.size() || number < 1 || number > 65535) {
      host.clear();
    }
  }
  const bool host_ok = !host.empty() && std::all_of(host.begin(), host.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == ':' || c == '_';
  });
  if (!host_ok) {
    return Status::InvalidArgument(where + url +
                                   ": bad host or port (https://USER@HOST[:PORT], no path)");
  }
  if (!https && !IsLoopback(host)) {
    return Status::InvalidArgument(where + url +
                                   ": http:// is for loopback addresses only (a password would "
                                   "cross the network in clear text): use https://");
  }
  return std::pair{name, url};
}

namespace {

Status AbsolutePath(const std::string& v, std::string& field, const char* option) {
  if (v.empty() || v[0] != '/') {
    return Status::InvalidArgument(std::string(option) + " must be an absolute path");
  }
  field = v;
  return Status::Ok();
}

Status NonEmpty(const std::string& v, std::string& field, const char* message) {
  if (v.empty()) return Status::InvalidArgument(message);
  field = v;
  return Status::Ok();
}

Status GroupName(const std::string& v, std::string& field, const char* option) {
  if (!IsGroupName(v)) {
    return Status::InvalidArgument(std::string(option) + " '" + v + "' is not a group name");
  }
  field = v;
  return Status::Ok();
}

// The apply of a flag: sets `field`.
template <bool Options::*field>
Status SetFlag(const std::string&, Options& o) {
  o.*field = true;
  return Status::Ok();
}

constexpr OptionSpec kOptions[] = {
    {.name = "state-dir",
     .value = "DIR",
     .help = "catalog, VM run directories, snapshots (default /var/lib/vmgroup)",
     .apply = [](const std::string& v,
                 Options& o) { return AbsolutePath(v, o.state_dir, "--state-dir"); }},
    {.name = "listen",
     .value = "LISTENER",
     .help = "where to serve; repeatable (default\n"
             "unix:/run/vmgroup/vmgroupd.sock):\n"
             "unix:PATH  a unix socket, open to every local user\n"
             "  (mode 0666): each peer is judged by its uid\n"
             "  (SO_PEERCRED) and that user's groups\n"
             "https://HOST:PORT  CIM-XML over TLS (WBEM's port is 5989);\n"
             "  clients authenticate with HTTP Basic, checked by PAM\n"
             "  (service \"vmgroupd\")\n"
             "http://HOST:PORT  CIM-XML over TCP without TLS: loopback\n"
             "  addresses only, unless --insecure-plaintext",
     .repeats = true,
     .apply =
         [](const std::string& v, Options& o) {
           VMG_ASSIGN_OR_RETURN(Listen l, ParseListen(v));
           o.listens.push_back(std::move(l));
           return Status::Ok();
         }},
    {.name = "tls-cert",
     .value = "FILE",
     .help = "the https listeners' certificate (chain), PEM",
     .apply = [](const std::string& v,
                 Options& o) { return NonEmpty(v, o.tls_cert, "--tls-cert needs a file"); }},
    {.name = "tls-key",
     .value = "FILE",
     .help = "its private key, PEM (readable by root alone)",
     .apply = [](const std::string& v,
                 Options& o) { return NonEmpty(v, o.tls_key, "--tls-key needs a file"); }},
    {.name = "metrics-on",
     .value = "LISTENER",
     .help = "also serve Prometheus metrics (GET /metrics) on this one of\n"
             "the --listen listeners, as unix:PATH or https://HOST:PORT;\n"
             "readers and admins may read them; repeatable",
     .repeats = true,
     .apply =
         [](const std::string& v, Options& o) {
           o.metrics_on.push_back(v);
           return Status::Ok();
         }},
    {.name = "admin-group",
     .value = "NAME",
     .help = "users who may manage VMs, groups and snapshots (default\n"
             "vmgroup); root always may",
     .apply = [](const std::string& v,
                 Options& o) { return GroupName(v, o.admin_group, "--admin-group"); }},
    {.name = "reader-group",
     .value = "NAME",
     .help = "users who may only read (enumerate, get, follow associations)",
     .apply = [](const std::string& v,
                 Options& o) { return GroupName(v, o.reader_group, "--reader-group"); }},
    {.name = "insecure-loopback",
     .value = "",
     .help = "allow TCP without authentication, loopback addresses only",
     .apply = SetFlag<&Options::insecure_loopback>},
    {.name = "insecure-plaintext",
     .value = "",
     .help = "allow http:// on addresses other than loopback: passwords\n"
             "then cross the network in clear text",
     .apply = SetFlag<&Options::insecure_plaintext>},
    {.name = "libvirt",
     .value = "URI",
     .help = "also serve the domains of this libvirt connection\n"
             "(qemu:///system, qemu+ssh://HOST/system, ...): each is a VM,\n"
             "followed as libvirt changes it; repeatable",
     .repeats = true,
     .apply =
         [](const std::string& uri, Options& o) {
           if (uri.empty() || uri.find(':') == std::string::npos) {
             return Status::InvalidArgument(
                 "--libvirt needs a libvirt URI, such as qemu:///system");
           }
           if (std::find(o.libvirt.begin(), o.libvirt.end(), uri) == o.libvirt.end()) {
             o.libvirt.push_back(uri);
           }
           return Status::Ok();
         }},
    {.name = "peer",
     .value = "NAME=URL",
     .help = "another host's vmgroupd that groups may span: NAME of\n"
             "letters, digits, - _ . and URL https://USER@HOST[:PORT]\n"
             "(5989 by default), USER an admin there whose password is the\n"
             "first line of NAME.password in --peer-credentials (never in\n"
             "the URL); repeatable, each NAME once",
     .repeats = true,
     .apply =
         [](const std::string& v, Options& o) {
           VMG_ASSIGN_OR_RETURN(auto peer, ParsePeer(v));
           if (o.peers.contains(peer.first)) {
             return Status::InvalidArgument("--peer " + peer.first +
                                            " is given twice: give each peer once");
           }
           o.peers.insert(std::move(peer));
           return Status::Ok();
         }},
    {.name = "peer-credentials",
     .value = "DIR",
     .help = "the peers' NAME.password files (readable by root alone) and\n"
             "the CA their certificates are signed by, ca.pem (without it:\n"
             "the system's CA store); default /etc/vmgroup/peers",
     .apply = [](const std::string& v,
                 Options& o) { return AbsolutePath(v, o.peer_credentials, "--peer-credentials"); }},
    {.name = "pause-lease",
     .value = "MS",
     .help = "longest each host keeps a group's members paused for a\n"
             "snapshot across hosts this vmgroupd coordinates, waiting for\n"
             "its word: more than two round trips to the farthest peer\n"
             "(default 500; 50 to 60000)",
     .apply =
         [](const std::string& v, Options& o) {
           // Below 50 ms no round trip over a network fits; above 60 s the peers refuse it.
           int ms = 0;
           const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
           if (ec != std::errc() || end != v.data() + v.size() || ms < 50 || ms > 60'000) {
             return Status::InvalidArgument(
                 "--pause-lease must be a whole number of milliseconds, 50 to 60000");
           }
           o.pause_lease = std::chrono::milliseconds(ms);
           return Status::Ok();
         }},
    {.name = "accel",
     .value = "auto|kvm|tcg",
     .help = "QEMU accelerator (default auto: KVM if a tiny guest runs\n"
             "under it at start, within 5 s, else TCG with a warning;\n"
             "a /dev/kvm that opens may still not run guests)",
     .apply =
         [](const std::string& v, Options& o) {
           VMG_ASSIGN_OR_RETURN(o.accel, hypervisor::qemu::ParseAccel(v));
           return Status::Ok();
         }},
    {.name = "qemu-user",
     .value = "NAME",
     .help = "the user QEMU runs as when vmgroupd runs as root\n"
             "(default vmgroup-qemu; \"root\" keeps QEMU root)",
     .apply = [](const std::string& v,
                 Options& o) { return NonEmpty(v, o.qemu_user, "--qemu-user needs a user name"); }},
    {.name = "freeze-bound",
     .value = "SECONDS",
     .help = "longest guests stay frozen for an application-consistent\n"
             "snapshot (default 10)",
     .apply =
         [](const std::string& v, Options& o) {
           // Below 4 s no freeze could be answered beside the cut's 2 s and the thaws.
           int seconds = 0;
           const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
           if (ec != std::errc() || end != v.data() + v.size() || seconds < 4 || seconds > 300) {
             return Status::InvalidArgument(
                 "--freeze-bound must be a whole number of seconds, 4 to 300");
           }
           o.freeze_bound = std::chrono::seconds(seconds);
           return Status::Ok();
         }},
    {.name = "nbd-tls-dir",
     .value = "DIR",
     .help = "serve backup sessions over TCP too when asked, with TLS from\n"
             "DIR's ca-cert.pem, server-cert.pem, server-key.pem (readable\n"
             "by QEMU's user); readers need a certificate that CA signed;\n"
             "with client-cert.pem and client-key.pem there too, vmgroupd\n"
             "answers their changed ranges itself (backup changes)",
     .apply = [](const std::string& v,
                 Options& o) { return AbsolutePath(v, o.nbd_tls_dir, "--nbd-tls-dir"); }},
    {.name = "nbd-listen",
     .value = "HOST",
     .help = "the numeric address those sessions listen on (with\n"
             "--nbd-tls-dir; their URIs name it)",
     .apply =
         [](const std::string& v, Options& o) {
           unsigned char addr[sizeof(in6_addr)];
           if (::inet_pton(AF_INET, v.c_str(), addr) != 1 &&
               ::inet_pton(AF_INET6, v.c_str(), addr) != 1) {
             return Status::InvalidArgument("--nbd-listen " + v +
                                            " is not a numeric IPv4 or IPv6 address");
           }
           o.nbd_listen = v;
           return Status::Ok();
         }},
    {.name = "log-level",
     .value = "LEVEL",
     .help = "debug, info, warning or error (default info)",
     .apply =
         [](const std::string& v, Options& o) {
           if (!ParseLogLevel(v, &o.log_level)) {
             return Status::InvalidArgument("--log-level must be debug, info, warning or error");
           }
           return Status::Ok();
         }},
    {.name = "config",
     .value = "FILE",
     .help = "read options from FILE first (default\n"
             "/etc/vmgroup/vmgroupd.conf if it exists; see\n"
             "vmgroupd.conf(5)); options given here win",
     .command_line_only = true,
     .apply =
         [](const std::string& v, Options& o) {
           if (v.empty()) return Status::InvalidArgument("--config needs a file");
           if (o.config && o.config->empty()) {
             return Status::InvalidArgument("--config and --no-config exclude each other");
           }
           o.config = v;
           return Status::Ok();
         }},
    {.name = "no-config",
     .value = "",
     .help = "read no configuration file, not even the default one",
     .command_line_only = true,
     .apply =
         [](const std::string&, Options& o) {
           if (o.config && !o.config->empty()) {
             return Status::InvalidArgument("--config and --no-config exclude each other");
           }
           o.config = "";
           return Status::Ok();
         }},
    {.name = "help",
     .value = "",
     .help = "print this text and exit (also -h)",
     .command_line_only = true,
     .apply = SetFlag<&Options::help>},
    {.name = "version",
     .value = "",
     .help = "print vmgroupd's version and exit",
     .command_line_only = true,
     .apply = SetFlag<&Options::version>},
};

const OptionSpec* FindOption(std::string_view name) {
  for (const OptionSpec& spec : kOptions) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

// One use of an option, from the command line (line 0) or a file's line.
struct Setting {
  const OptionSpec* spec;
  std::string value;
  int line = 0;
};

Result<std::vector<Setting>> ReadCommandLine(const std::vector<std::string>& args) {
  std::vector<Setting> settings;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const OptionSpec* spec = a == "-h"             ? FindOption("help")
                             : a.starts_with("--") ? FindOption(std::string_view(a).substr(2))
                                                   : nullptr;
    if (spec == nullptr) return Status::InvalidArgument("unknown option " + a + " (see --help)");
    if (spec->value.empty()) {
      settings.push_back({spec, ""});
    } else if (i + 1 >= args.size()) {
      return Status::InvalidArgument(a + " needs a value");
    } else {
      settings.push_back({spec, args[++i]});
    }
  }
  return settings;
}

Result<std::vector<Setting>> ReadConfigFile(const std::string& path) {
  auto text = Env::Default()->ReadFile(path);
  if (!text.ok()) {
    return Status(text.status().code(),
                  "cannot read configuration file: " + text.status().message());
  }
  VMG_ASSIGN_OR_RETURN(std::vector<ConfigLine> lines, ParseConfigText(*text, path));
  std::vector<Setting> settings;
  for (ConfigLine& l : lines) {
    const std::string where = path + ":" + std::to_string(l.line) + ": ";
    const OptionSpec* spec = FindOption(l.name);
    if (spec == nullptr) {
      return Status::InvalidArgument(where + "unknown option '" + l.name +
                                     "' (the options are vmgroupd's long ones without the "
                                     "dashes; see vmgroupd.conf(5))");
    }
    if (spec->command_line_only) {
      return Status::InvalidArgument(where + l.name + " is for the command line only (--" + l.name +
                                     "); remove the line");
    }
    if (spec->value.empty() && l.value) {
      return Status::InvalidArgument(where + l.name + " takes no value: write " + l.name +
                                     " alone on its line");
    }
    if (!spec->value.empty() && l.value.value_or("").empty()) {
      return Status::InvalidArgument(where + l.name + " needs a value: write " + l.name + " = " +
                                     std::string(spec->value));
    }
    settings.push_back({spec, l.value.value_or(""), l.line});
  }
  return settings;
}

// `settings` applied in order to default options; a file's line (from
// `path`) that fails is named "PATH:LINE: ...".
Result<Options> Apply(const std::vector<Setting>& settings, const std::string& path) {
  Options o;
  for (const Setting& s : settings) {
    Status st = s.spec->apply(s.value, o);
    if (!st.ok() && s.line > 0) {
      return Status(st.code(), path + ":" + std::to_string(s.line) + ": " + st.message());
    }
    VMG_RETURN_IF_ERROR(st);
  }
  return o;
}

// The checks of options against each other, once on the merged result.
Status CheckTogether(Options& o) {
  if (o.listens.empty()) o.listens.push_back({kDefaultSocket, "", 0, false});
  for (const auto& text : o.metrics_on) {
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
  return Status::Ok();
}

}  // namespace

std::span<const OptionSpec> OptionTable() { return kOptions; }

std::string Usage() {
  constexpr size_t kColumn = 25;  // where the help text starts
  std::string text = R"(usage: vmgroupd [options]

Serves the Hyper-V collection API (root/virtualization/v2) over CIM-XML and
runs the VMs it manages. Runs in the foreground; logs to stderr. Options
come from /etc/vmgroup/vmgroupd.conf (NAME = VALUE, see vmgroupd.conf(5)),
then from the command line, which wins.

)";
  for (const OptionSpec& spec : kOptions) {
    std::string head = "  --" + std::string(spec.name);
    if (!spec.value.empty()) head += " " + std::string(spec.value);
    text += head;
    text += head.size() < kColumn ? std::string(kColumn - head.size(), ' ')
                                  : "\n" + std::string(kColumn, ' ');
    for (char c : spec.help) {
      text += c;
      if (c == '\n') text += std::string(kColumn, ' ');
    }
    text += "\n";
  }
  return text;
}

Result<Options> ParseOptions(const std::vector<std::string>& args,
                             const std::string& default_config) {
  VMG_ASSIGN_OR_RETURN(std::vector<Setting> command_line, ReadCommandLine(args));
  // The command line alone first: it checks its values and says which file to read.
  VMG_ASSIGN_OR_RETURN(Options given, Apply(command_line, ""));
  if (given.help || given.version) return given;
  std::string path = given.config.value_or(default_config);
  std::vector<Setting> file;
  if (!path.empty()) {
    auto read = ReadConfigFile(path);
    if (read.ok()) {
      file = std::move(*read);
    } else if (read.status().code() == Code::kFileNotFound && !given.config) {
      path.clear();  // no default file: no settings
    } else {
      return read.status();
    }
  }
  // Every line of the file is checked, even one the command line replaces:
  // the daemon starts on no file with a mistake in it.
  VMG_RETURN_IF_ERROR(Apply(file, path).status());
  std::vector<Setting> merged;
  for (const Setting& s : file) {
    const bool replaced =
        s.spec->repeats && std::any_of(command_line.begin(), command_line.end(),
                                       [&](const Setting& c) { return c.spec == s.spec; });
    if (!replaced) merged.push_back(s);
  }
  merged.insert(merged.end(), command_line.begin(), command_line.end());
  VMG_ASSIGN_OR_RETURN(Options o, Apply(merged, path));
  VMG_RETURN_IF_ERROR(CheckTogether(o));
  o.config = path;
  return o;
}

}  // namespace vmgroup::daemon
