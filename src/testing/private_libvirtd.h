// PrivateLibvirtd (tests and benchmarks only): a privileged libvirtd
// (qemu:///system) of the test's own that touches nothing of the host's:
// it runs in new mount and PID namespaces, with scratch directories under
// `dir` bind-mounted over /run, /var/lib, /var/log, /var/cache and
// /etc/libvirt, and copies of /etc/passwd and /etc/group that add the
// libvirt-qemu user libvirt looks up. qemu.conf runs QEMU as root with no
// security driver, namespaces or cgroups. The namespace's first process is
// tini, which runs libvirtd and reaps what it orphans; ending it (by its
// pid) ends libvirtd and every QEMU libvirtd started: the kernel kills what
// is left in a PID namespace whose first process exits.
// Requires root (CAP_SYS_ADMIN) and tini (scripts/install-deps.sh).
//
// What stays readable under `dir` after the end (bind mounts, not tmpfs):
//   log/libvirt/libvirtd.log       libvirtd's log (warnings and errors)
//   log/libvirt/qemu/<domain>.log  each QEMU's command line and stderr
//   lib/libvirt/qemu/...           libvirt's state (channels, snapshots)
//   etc/libvirt/qemu/<domain>.xml  persistent definitions
//
// Thread-safety: Define and Virsh may be called from any thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/env.h"

namespace vmgroup::testing {

// A domain booting a kernel and initrd (the guest kit), or its firmware
// alone when `kernel` is empty, under TCG (type='qemu': KVM guests with an
// OS hang on these machines). No network, no USB, no balloon; on reboot,
// poweroff or crash the domain ends (so panic=-1 ends it).
struct GuestDomain {
  std::string name;
  int memory_mib = 128;
  std::vector<std::string> disks;  // qcow2 images: vda, vdb, ...
  std::string kernel, initrd, append;
  std::string serial_log;  // the guest's console is written here; "": none
  bool agent = false;      // a qemu-ga channel (org.qemu.guest_agent.0)
};

// The libvirt domain XML of `g`.
std::string DomainXml(const GuestDomain& g);

class PrivateLibvirtd {
 public:
  // Starts libvirtd with its files under `dir` (created) and waits until
  // its socket answers. InvalidArgument when `dir` cannot be used (its
  // socket path would be too long, or it holds a quote or a newline);
  // Failed with libvirtd's log when it does not come up within 30 s.
  static Result<std::unique_ptr<PrivateLibvirtd>> Start(Env* env, const std::string& dir);
  // Ends it by pid (its PID namespace with it: every QEMU it ran), and
  // returns once every process of the namespace is gone.
  ~PrivateLibvirtd();
  PrivateLibvirtd(const PrivateLibvirtd&) = delete;
  PrivateLibvirtd& operator=(const PrivateLibvirtd&) = delete;

  // qemu+unix:///system?socket=<dir>/sock/libvirt-sock
  const std::string& uri() const { return uri_; }
  // libvirtd's pid as this process sees it (killing it ends the namespace
  // too: tini ends with it).
  int pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  std::string LibvirtdLog() const { return dir_ + "/log/libvirt/libvirtd.log"; }
  std::string QemuLog(const std::string& domain) const {
    return dir_ + "/log/libvirt/qemu/" + domain + ".log";
  }

  // Defines `g` (persistent) and starts it when `start`. Its UUID.
  Result<std::string> Define(const GuestDomain& g, bool start);
  // Runs `virsh -c uri() ARGS...`: its standard output; Failed with its
  // standard error when it exits non-zero.
  Result<std::string> Virsh(const std::vector<std::string>& args);
  // The same with virt-admin on libvirtd's admin socket (log filters and
  // outputs while it runs: paths in them are as libvirtd sees them, e.g.
  // /var/log/libvirt/x.log for <dir>/log/libvirt/x.log).
  Result<std::string> VirtAdmin(const std::vector<std::string>& args);
  // `qemu-img check` of images domain `name` may hold open: OK when every
  // one is clean, Failed with qemu-img's report otherwise. A running domain
  // is suspended for the check and resumed after it: QEMU keeps a running
  // image's newest refcounts and L2 entries in its cache, so its file read
  // from outside can show leaked or unreferenced clusters that are none;
  // stopping the domain writes them out.
  Status CheckClean(const std::string& name, const std::vector<std::string>& images);
  // What to print when domain `name` misbehaves in a test: its state with
  // libvirt's reason, the tail of its QEMU log and of `serial_log` (the
  // temporary folder holding them is gone once the test ends).
  std::string DomainReport(const std::string& name, const std::string& serial_log);

 private:
  PrivateLibvirtd(Env* env, std::string dir, int unshare_pid);
  // Finds tini and libvirtd and waits until libvirtd serves.
  Status AwaitReady();
  Result<std::string> RunClient(const std::string& tool, const std::string& uri,
                                const std::vector<std::string>& args);
  std::string Logs();

  Env* env_;
  std::string dir_;
  int unshare_pid_;           // our child: it waits for the namespace to end
  int init_pid_ = 0;          // the namespace's first process (tini)
  int64_t init_started_ = 0;  // its start time: signal that process only
  int pid_ = 0;               // libvirtd, tini's child
  std::string uri_;
};

}  // namespace vmgroup::testing
