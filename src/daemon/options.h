// vmgroupd's options: where state lives, where to listen, how to log. One
// table (OptionTable) declares each option once; the command line, --help
// and the configuration file (vmgroupd.conf(5)) all work from it.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "hypervisor/qemu/qemu_driver.h"

namespace vmgroup::daemon {

// One --listen: a unix socket or a TCP address, with TLS or without.
struct Listen {
  std::string unix_path;  // for unix:PATH
  std::string host;       // for http(s)://HOST:PORT
  int port = 0;
  bool tls = false;      // https://
  bool metrics = false;  // --metrics-on names it: serves GET /metrics
};

inline constexpr const char* kDefaultAdminGroup = "vmgroup";
inline constexpr const char* kDefaultPeerCredentials = "/etc/vmgroup/peers";

struct Options {
  std::string state_dir = "/var/lib/vmgroup";
  std::vector<Listen> listens;  // default: unix:/run/vmgroup/vmgroupd.sock
  // TCP without authentication; only with listeners bound to loopback.
  bool insecure_loopback = false;
  // http:// (no TLS) on an address other than loopback.
  bool insecure_plaintext = false;
  // PEM files of the https:// listeners' certificate (chain) and key.
  std::string tls_cert, tls_key;
  // Who may manage (admin) and who may only read, by group; uid 0 is
  // always an admin. An empty reader group: nobody only reads.
  std::string admin_group = kDefaultAdminGroup;
  std::string reader_group;
  LogLevel log_level = LogLevel::kInfo;
  hypervisor::qemu::Accel accel = hypervisor::qemu::Accel::kAuto;
  // libvirt connections whose domains vmgroupd serves too, each once.
  std::vector<std::string> libvirt;
  // Longest guests stay frozen for an application-consistent snapshot
  // (engine::SnapshotOptions::freeze_bound).
  std::chrono::seconds freeze_bound{10};
  // Whom QEMU runs as when vmgroupd runs as root (QemuOptions::user); as
  // vmgroupd itself otherwise.
  std::string qemu_user = "vmgroup-qemu";
  // Backup sessions over TCP with TLS (engine::SnapshotOptions::nbd_listen,
  // nbd_tls_dir): the numeric address their NBD servers listen on and the
  // directory of QEMU-format x509 files; both or neither. Default none:
  // sessions serve on unix sockets only.
  std::string nbd_listen, nbd_tls_dir;
  // The other hosts' vmgroupd groups may span (issue 20), by peer name
  // (letters, digits, - _ .): https://USER@HOST[:PORT] (http:// on
  // loopback only; unix:PATH for tests on one machine), with no password
  // in it. Default none: groups stay on this host.
  std::map<std::string, std::string> peers;
  // Where each peer's NAME.password (first line: the password of the
  // URL's USER) and the peers' CA, ca.pem, are (remote/cim_peers.h).
  std::string peer_credentials = kDefaultPeerCredentials;
  // The pause lease of a snapshot across hosts this host coordinates
  // (engine::SnapshotOptions::host_lease): 50 ms to 60 s, the longest a
  // host accepts.
  std::chrono::milliseconds pause_lease{500};
  // --metrics-on as given; ParseOptions marks the listeners they name
  // (Listen::metrics).
  std::vector<std::string> metrics_on;
  // --config FILE, or "" for --no-config; unset: the default file. Once
  // ParseOptions returns (but for --help, --version): the file it read, ""
  // for none.
  std::optional<std::string> config;
  bool help = false;
  bool version = false;  // --version: print it and exit
};

inline constexpr const char* kDefaultSocket = "/run/vmgroup/vmgroupd.sock";
inline constexpr const char* kDefaultConfigFile = "/etc/vmgroup/vmgroupd.conf";

// One option, declared once: --NAME on the command line, NAME in the file.
struct OptionSpec {
  std::string_view name;           // without the dashes
  std::string_view value;          // the placeholder in --help ("DIR"); empty: a flag
  std::string_view help;           // lines of --help's text, '\n' between them
  bool repeats = false;            // each use adds one (listen, libvirt, metrics-on, peer)
  bool command_line_only = false;  // help, version, config, no-config
  // Checks `value` ("" for a flag) and sets it in `o`; InvalidArgument
  // with what to fix.
  Status (*apply)(const std::string& value, Options& o) = nullptr;
};
// Every option, in --help's order.
std::span<const OptionSpec> OptionTable();

// The configuration file first (--config's, none with --no-config, else
// `default_config` if it exists; "" for no default), then `args`: a scalar
// on the command line replaces the file's, a repeatable option given there
// replaces all the file's lines of it. With --help or --version, `args`
// alone. InvalidArgument with what to fix, for a bad command line,
// "FILE:LINE: ..." for a bad line in the file (unknown, missing value, a
// value to a flag, a bad value), FileNotFound for a missing --config file,
// and on the merged options: a TCP listener that would serve without
// authentication, or without TLS, off loopback, https:// without a
// certificate and key (or those without https://).
Result<Options> ParseOptions(const std::vector<std::string>& args,
                             const std::string& default_config = "");
Result<Listen> ParseListen(const std::string& text);
bool IsLoopback(const std::string& host);
// One --peer NAME=URL, checked as Options::peers says: {NAME, URL};
// InvalidArgument with what to fix (never repeating a password the URL holds).
Result<std::pair<std::string, std::string>> ParsePeer(const std::string& text);
// A group name as the host's tools accept it: letters, digits, _ - . and
// not starting with -.
bool IsGroupName(const std::string& name);
std::string Usage();

// The files an --nbd-tls-dir must hold (QEMU's tls-creds-x509 layout).
inline constexpr const char* kNbdTlsFiles[] = {"ca-cert.pem", "server-cert.pem", "server-key.pem"};
// OK when directory `dir` holds each of kNbdTlsFiles as a regular file;
// InvalidArgument naming what is missing otherwise.
Status CheckNbdTlsDir(const std::string& dir);

}  // namespace vmgroup::daemon
