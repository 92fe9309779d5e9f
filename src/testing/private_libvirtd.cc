#include "testing/private_libvirtd.h"

#include <signal.h>
#include <sys/un.h>

#include <filesystem>
#include <initializer_list>
#include <pugixml.hpp>
#include <sstream>
#include <utility>

#include "testing/process_status.h"

namespace vmgroup::testing {
namespace {

// The host paths hidden behind a scratch directory of the same name under
// `dir` (the libvirt subdirectories made beforehand, as a package would).
struct Scratch {
  const char* host;
  const char* local;
};
constexpr Scratch kScratch[] = {{"/run", "run"},
                                {"/var/lib", "lib"},
                                {"/var/log", "log"},
                                {"/var/cache", "cache"},
                                {"/etc/libvirt", "etc/libvirt"}};

// libvirt resolves its default QEMU user before it reads qemu.conf: the
// user must exist even though qemu.conf runs QEMU as root.
constexpr const char* kQemuPasswd =
    "libvirt-qemu:x:64055:64055:Libvirt Qemu:/nonexistent:/usr/sbin/nologin\n";
constexpr const char* kQemuGroup = "libvirt-qemu:x:64055:\nkvm:x:64056:\n";

Status WriteFiles(Env* env, const std::string& dir) {
  VMG_RETURN_IF_ERROR(
      env->WriteFile(dir + "/etc/libvirt/libvirtd.conf",
                     "unix_sock_dir = \"" + dir +
                         "/sock\"\n"
                         "unix_sock_rw_perms = \"0777\"\n"
                         "auth_unix_rw = \"none\"\n"
                         "auth_unix_ro = \"none\"\n"
                         "log_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n"));
  // stdio_handler "file": QEMU's stderr goes to its log without virtlogd,
  // which this namespace does not run.
  VMG_RETURN_IF_ERROR(env->WriteFile(dir + "/etc/libvirt/qemu.conf",
                                     "user = \"root\"\n"
                                     "group = \"root\"\n"
                                     "dynamic_ownership = 0\n"
                                     "remember_owner = 0\n"
                                     "security_driver = \"none\"\n"
                                     "namespaces = [ ]\n"
                                     "cgroup_controllers = [ ]\n"
                                     "stdio_handler = \"file\"\n"));
  VMG_ASSIGN_OR_RETURN(std::string passwd, env->ReadFile("/etc/passwd"));
  VMG_ASSIGN_OR_RETURN(std::string group, env->ReadFile("/etc/group"));
  if (!passwd.empty() && passwd.back() != '\n') passwd += '\n';
  if (!group.empty() && group.back() != '\n') group += '\n';
  VMG_RETURN_IF_ERROR(env->WriteFile(dir + "/passwd", passwd + kQemuPasswd));
  return env->WriteFile(dir + "/group", group + kQemuGroup);
}

// The shell that becomes PID 1 of the new namespace, $1 being `dir`: tini,
// which runs libvirtd, passes it SIGTERM, and reaps the processes libvirtd
// orphans (its QEMUs daemonize; libvirtd waits for each one it kills to be
// reaped, up to 40 s a time). tini ends when libvirtd does.
std::string EnterScript() {
  std::string s;
  for (const Scratch& m : kScratch) {
    s += std::string("mount --bind \"$1/") + m.local + "\" " + m.host + " && ";
  }
  return s +
         "mount --bind \"$1/passwd\" /etc/passwd && mount --bind \"$1/group\" /etc/group && "
         "exec tini -- libvirtd -f \"$1/etc/libvirt/libvirtd.conf\"";
}

// The pid of the child of `parent` that runs `command`, 0 while none does.
int ChildOf(int parent, const std::string& command) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const int pid = std::stoi(name);
    if (ProcessStatus(pid, "PPid") == std::to_string(parent) &&
        ProcessStatus(pid, "Name") == command) {
      return pid;
    }
  }
  return 0;
}

std::string TailOf(Env* env, const std::string& path) {
  auto text = env->ReadFile(path);
  if (!text.ok()) return "(" + path + ": none)";
  constexpr size_t kTail = 4000;
  return path + ":\n" + (text->size() > kTail ? text->substr(text->size() - kTail) : *text);
}

// Appends <name attr="value"...>text</name> to `parent`.
pugi::xml_node Add(pugi::xml_node parent, const char* name,
                   std::initializer_list<std::pair<const char*, std::string>> attrs = {},
                   const std::string& text = "") {
  pugi::xml_node node = parent.append_child(name);
  for (const auto& [attr, value] : attrs) node.append_attribute(attr) = value.c_str();
  if (!text.empty()) node.text().set(text.c_str());
  return node;
}

}  // namespace

std::string DomainXml(const GuestDomain& g) {
  pugi::xml_document doc;
  pugi::xml_node domain = Add(doc, "domain", {{"type", "qemu"}});
  Add(domain, "name", {}, g.name);
  Add(domain, "memory", {{"unit", "MiB"}}, std::to_string(g.memory_mib));
  Add(domain, "vcpu", {}, "1");
  pugi::xml_node os = Add(domain, "os");
  Add(os, "type", {{"arch", "x86_64"}, {"machine", "pc"}}, "hvm");
  if (!g.kernel.empty()) {
    Add(os, "kernel", {}, g.kernel);
    if (!g.initrd.empty()) Add(os, "initrd", {}, g.initrd);
    Add(os, "cmdline", {}, g.append);
  }
  // ACPI, as virt-install defines a domain: its power button is what
  // virDomainShutdown presses (libvirt refuses a shutdown without it).
  Add(Add(domain, "features"), "acpi");
  for (const char* event : {"on_poweroff", "on_reboot", "on_crash"})
    Add(domain, event, {}, "destroy");
  pugi::xml_node devices = Add(domain, "devices");
  Add(devices, "emulator", {}, "/usr/bin/qemu-system-x86_64");
  for (size_t i = 0; i < g.disks.size(); ++i) {
    pugi::xml_node disk = Add(devices, "disk", {{"type", "file"}, {"device", "disk"}});
    Add(disk, "driver", {{"name", "qemu"}, {"type", "qcow2"}});
    Add(disk, "source", {{"file", g.disks[i]}});
    Add(disk, "target",
        {{"dev", "vd" + std::string(1, static_cast<char>('a' + i))}, {"bus", "virtio"}});
  }
  if (!g.serial_log.empty()) {
    pugi::xml_node serial = Add(devices, "serial", {{"type", "file"}});
    Add(serial, "source", {{"path", g.serial_log}});
    Add(serial, "target", {{"port", "0"}});
    pugi::xml_node console = Add(devices, "console", {{"type", "file"}});
    Add(console, "source", {{"path", g.serial_log}});
    Add(console, "target", {{"type", "serial"}, {"port", "0"}});
  }
  if (g.agent) {
    pugi::xml_node channel = Add(devices, "channel", {{"type", "unix"}});
    Add(channel, "target", {{"type", "virtio"}, {"name", "org.qemu.guest_agent.0"}});
  }
  Add(devices, "controller", {{"type", "usb"}, {"model", "none"}});
  Add(devices, "memballoon", {{"model", "none"}});
  std::ostringstream out;
  doc.save(out, "  ", pugi::format_default | pugi::format_no_declaration);
  return out.str();
}

Result<std::unique_ptr<PrivateLibvirtd>> PrivateLibvirtd::Start(Env* env, const std::string& dir) {
  const std::string socket = dir + "/sock/libvirt-sock";
  if (socket.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Status::InvalidArgument("libvirtd's socket " + socket +
                                   " would be too long for a unix socket: use a shorter dir");
  }
  if (dir.empty() || dir[0] != '/' || dir.find_first_of("\"\\\n") != std::string::npos) {
    return Status::InvalidArgument(
        "libvirtd's dir must be an absolute path without quotes, "
        "backslashes or newlines: " +
        dir);
  }
  for (const Scratch& m : kScratch) VMG_RETURN_IF_ERROR(env->CreateDirs(dir + "/" + m.local));
  for (const char* sub :
       {"sock", "run/libvirt", "lib/libvirt", "log/libvirt/qemu", "cache/libvirt", "domains"}) {
    VMG_RETURN_IF_ERROR(env->CreateDirs(dir + "/" + sub));
  }
  VMG_RETURN_IF_ERROR(WriteFiles(env, dir));
  // -p -f: unshare forks the namespace's first process and waits for it;
  // --kill-child: ending unshare by its pid ends that process too.
  VMG_ASSIGN_OR_RETURN(
      int unshare_pid,
      env->Spawn({"unshare", "-m", "-p", "-f", "--mount-proc", "--propagation", "private",
                  "--kill-child", "--", "sh", "-c", EnterScript(), "sh", dir},
                 {.log_path = dir + "/libvirtd.out", .new_session = false}));
  std::unique_ptr<PrivateLibvirtd> d(new PrivateLibvirtd(env, dir, unshare_pid));
  VMG_RETURN_IF_ERROR(d->AwaitReady());
  return d;
}

PrivateLibvirtd::PrivateLibvirtd(Env* env, std::string dir, int unshare_pid)
    : env_(env),
      dir_(std::move(dir)),
      unshare_pid_(unshare_pid),
      uri_("qemu+unix:///system?socket=" + dir_ + "/sock/libvirt-sock") {}

Status PrivateLibvirtd::AwaitReady() {
  const auto deadline = env_->Now() + std::chrono::seconds(30);
  while (env_->Now() < deadline) {
    if (!env_->IsAlive(unshare_pid_)) return Status::Failed("libvirtd exited:\n" + Logs());
    if (init_pid_ == 0) init_pid_ = ChildOf(unshare_pid_, "tini");
    if (init_pid_ != 0 && init_started_ == 0) {
      init_started_ = env_->ProcessStartTime(init_pid_).value_or(0);
    }
    if (init_started_ != 0 && pid_ == 0) pid_ = ChildOf(init_pid_, "libvirtd");
    if (pid_ != 0 && env_->FileExists(dir_ + "/sock/libvirt-sock") && Virsh({"uri"}).ok()) {
      return Status::Ok();
    }
    env_->SleepFor(std::chrono::milliseconds(50));
  }
  return Status::Failed("libvirtd did not answer within 30 s:\n" + Logs());
}

std::string PrivateLibvirtd::Logs() {
  return TailOf(env_, dir_ + "/libvirtd.out") + "\n" + TailOf(env_, LibvirtdLog());
}

std::string PrivateLibvirtd::DomainReport(const std::string& name, const std::string& serial_log) {
  auto state = Virsh({"domstate", "--reason", name});
  return "domain " + name + ": " + (state.ok() ? *state : state.status().ToString()) + "\n" +
         TailOf(env_, QemuLog(name)) + "\n" + TailOf(env_, serial_log);
}

PrivateLibvirtd::~PrivateLibvirtd() {
  // tini passes SIGTERM to libvirtd and ends with it. libvirtd leaves its
  // QEMUs running when it ends; the end of the namespace's first process
  // (tini) takes them with it. unshare returns only once
  // the kernel has reaped every process of the namespace.
  auto init_alive = [&] {
    return init_started_ != 0 && env_->ProcessStartTime(init_pid_).value_or(-1) == init_started_;
  };
  if (init_alive()) (void)env_->Kill(init_pid_, SIGTERM);
  if (env_->WaitGone(unshare_pid_, std::chrono::seconds(30)).ok()) return;
  if (init_alive()) (void)env_->Kill(init_pid_, SIGKILL);
  (void)env_->Kill(unshare_pid_, SIGKILL);
  (void)env_->WaitGone(unshare_pid_, std::chrono::seconds(30));
}

Result<std::string> PrivateLibvirtd::RunClient(const std::string& tool, const std::string& uri,
                                               const std::vector<std::string>& args) {
  std::vector<std::string> argv = {tool, "-c", uri};
  argv.insert(argv.end(), args.begin(), args.end());
  VMG_ASSIGN_OR_RETURN(CommandOutput r, env_->Run(argv, std::chrono::minutes(2)));
  if (r.exit_code != 0) {
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    return Status::Failed(tool + cmd + ": " + r.err);
  }
  return r.out;
}

Result<std::string> PrivateLibvirtd::Virsh(const std::vector<std::string>& args) {
  return RunClient("virsh", uri_, args);
}

Result<std::string> PrivateLibvirtd::VirtAdmin(const std::vector<std::string>& args) {
  return RunClient("virt-admin", "libvirtd:///system?socket=" + dir_ + "/sock/libvirt-admin-sock",
                   args);
}

Status PrivateLibvirtd::CheckClean(const std::string& name,
                                   const std::vector<std::string>& images) {
  auto state = Virsh({"domstate", name});
  if (!state.ok()) return state.status();
  const bool running = state->starts_with("running");
  if (running) VMG_RETURN_IF_ERROR(Virsh({"suspend", name}).status());
  Status result = Status::Ok();
  for (const auto& image : images) {
    auto r = env_->Run({"qemu-img", "check", "-U", image}, std::chrono::minutes(1));
    if (!r.ok()) {
      result = r.status();
    } else if (r->exit_code != 0) {
      result = Status::Failed("qemu-img check " + image + ": " + r->out + r->err);
    }
    if (!result.ok()) break;
  }
  if (running) VMG_RETURN_IF_ERROR(Virsh({"resume", name}).status());
  return result;
}

Result<std::string> PrivateLibvirtd::Define(const GuestDomain& g, bool start) {
  const std::string xml_path = dir_ + "/domains/" + g.name + ".xml";
  VMG_RETURN_IF_ERROR(env_->WriteFile(xml_path, DomainXml(g)));
  VMG_RETURN_IF_ERROR(Virsh({"define", xml_path}).status());
  if (start) VMG_RETURN_IF_ERROR(Virsh({"start", g.name}).status());
  VMG_ASSIGN_OR_RETURN(std::string uuid, Virsh({"domuuid", g.name}));
  while (!uuid.empty() && (uuid.back() == '\n' || uuid.back() == ' ')) uuid.pop_back();
  return uuid;
}

}  // namespace vmgroup::testing
