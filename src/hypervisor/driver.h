// The hypervisor seam. The engine drives VMs only through Driver and Vm; it
// never sees QMP, processes or block-node names. Drivers know VMs, disks,
// overlays and change tracking, and nothing of groups, jobs or CIM.
// (Modelled on libvirt's driver tables and Cloud Hypervisor's Hypervisor/Vm traits.)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/env.h"
#include "base/result.h"
#include "base/vm_config.h"

namespace vmgroup::hypervisor {

// What a VM is made of. Disks are named by their index in `disks`.
struct VmSpec {
  std::string uuid;
  std::string name;
  VmConfig config;
  // The active (top) image of each disk, absolute paths to qcow2 files. A
  // backing chain below an image is opened from its header.
  std::vector<std::string> disks;
  // Directory for the VM's runtime files (monitor socket, log); must exist.
  std::string run_dir;
  // A memory state saved by SendResume to start from instead of booting:
  // Start then returns the VM paused exactly where the state was taken.
  std::string incoming;
  // Start with the guest's CPUs stopped, before it runs a single
  // instruction (Vm::Resume runs it): what starting again a VM that was
  // paused needs, without a moment of running first.
  bool paused = false;
};

// The fault point (Env::Hit, subject: the VM's name) Driver::Start reaches
// once the hypervisor is admitted and answers, before it loads a memory state.
inline constexpr std::string_view kFaultStarted = "hypervisor.started";

// Every tracking vmgroup makes is named "vmgroup-<tag>" (see "Change
// tracking" below): a name without this prefix is another tool's.
inline constexpr std::string_view kTrackingPrefix = "vmgroup-";

// kIoError: the hypervisor paused the VM itself because a disk request
// failed (with QEMU, a write that found no space left: its "io-error"
// status); the failed requests are retried when the VM is resumed.
enum class RunState { kRunning, kPaused, kShutoff, kIoError, kOther };
const char* RunStateName(RunState s);

// A VM as a hypervisor that keeps its own VM definitions knows it (libvirt:
// a domain). vmgroup does not define such VMs: it finds them (Driver::List)
// and follows them (Driver::Watch).
struct DomainInfo {
  std::string uuid;  // lower-case, with dashes: also the VM's id in vmgroup
  std::string name;
  int memory_mib = 0;
  int vcpus = 0;
  RunState state = RunState::kShutoff;
  // The active (top) image of each disk vmgroup can snapshot, by disk
  // index: the domain's file-backed qcow2 disks (device "disk") in the
  // order its definition lists them; the live definition while it runs.
  std::vector<std::string> disks;
  // Empty when vmgroup can snapshot the domain; else why not, for a person
  // ("disk vdb is a network disk (rbd): only file-backed qcow2 disks are
  // snapshotted"). A domain with no disk at all is not refused here.
  std::string unsupported;
};

// A VM definition of the hypervisor's own as an export carries it
// (Driver::ExportDefinition): libvirt's inactive domain XML, without
// secrets, and the host files it boots (a kernel, an initrd; "" for none),
// which the export copies so that a restore never boots a host path.
struct ExportedDefinition {
  std::string definition;
  std::string kernel, initrd;
};

// What a restore makes of an exported definition (Driver::PrepareRestore).
// `definition` is data from outside: it is refused when it names host
// resources a restore cannot vouch for, and rewritten to name only
// `uuid`, `name`, the restored copies and files in `files_dir`.
struct RestoredDefinition {
  std::string definition;
  std::string uuid, name;
  bool as_new = false;  // a new VM beside the original: fresh MAC addresses and generation id
  // The restored top image of each disk, by disk index (DomainInfo::disks).
  std::vector<std::string> disks;
  // The restored copies of the files it boots; "" when the export has none.
  std::string kernel, initrd;
  // Where files the VM writes on the host (a serial log) go, named
  // `files_prefix` + "-<what>": a directory of the restore's.
  std::string files_prefix;
};

// A prepared overlay: `path` is a qcow2 file whose backing file is `base`,
// the current top image of disk `disk` (the image the snapshot freezes, and
// the one an undo of the switch merges the overlay into: never another).
// `tag` is unique per VM (the engine uses the snapshot's short id) and lets
// the driver name what it creates.
struct Overlay {
  int disk = 0;
  std::string path;
  std::string tag;
  std::string base;
};

// One frozen image of a disk to serve to readers (Vm::ServeImages).
struct ServedImage {
  int disk = 0;
  std::string image;        // a frozen image open in disk `disk`'s chain
  std::string export_name;  // the NBD export name clients ask for
  std::string tracking;     // a tracking on `image` whose marks to publish, or ""
};

// Where a serving of frozen images listens (Vm::ServeImages,
// Driver::ServeImages).
struct NbdListen {
  // Unix (tcp_host ""): the driver creates a listening socket here, mode
  // 0600 (the caller's directory decides who else may reach it).
  // TCP: no socket is made here; the path names the serving (what the
  // driver records of it lies beside it), for StopServing to find it.
  std::string path;
  // TCP with TLS: the address to listen on, on a port the kernel picks,
  // and a directory of x509 files in QEMU's layout (ca-cert.pem,
  // server-cert.pem, server-key.pem), readable by the hypervisor's user.
  // Clients must present a certificate that CA signed; nobody reads over
  // TCP without TLS.
  std::string tcp_host;
  std::string tls_dir;
};

// What a served image is to a reader.
struct ServedExport {
  uint64_t size = 0;  // the disk's virtual size in bytes
  // The NBD metadata context ("qemu:dirty-bitmap:<bitmap>") whose extents
  // mark what the tracking marks; "" when no tracking was asked for.
  std::string context;
  int port = 0;  // the TCP port its server listens on; 0 on a unix socket
};

// A running (or paused) VM. Each Vm serialises its own calls; different Vms
// may be driven from different threads at once.
class Vm {
 public:
  virtual ~Vm() = default;

  virtual int pid() const = 0;

  // Unavailable when the hypervisor process is gone.
  virtual Result<RunState> State(Deadline deadline) = 0;
  // Stops the vCPUs; returns once in-flight I/O is drained.
  virtual Status Pause(Deadline deadline) = 0;
  virtual Status Resume(Deadline deadline) = 0;
  // What each disk that holds the VM paused on an I/O error (kIoError)
  // reports, one text per such disk: "disk 0 (/img.qcow2): no space left on
  // device". Empty when no disk reports one.
  virtual Result<std::vector<std::string>> IoErrors(Deadline deadline) = 0;

  // Opens each overlay file so that the switch (SendSwitch) has nothing left
  // to do but switch. Runs while the guest runs. All or nothing: on error,
  // what this call opened is closed again.
  virtual Status OpenOverlays(const std::vector<Overlay>& overlays, Deadline deadline) = 0;

  // Switching disks to opened overlays, in the form the group cut needs:
  // Send* puts the request on its way and returns at once, Await* collects
  // the outcome. One thread can so reach every member within microseconds,
  // while each hypervisor does its part in parallel. REQUIRES: no other call
  // on this Vm between a Send* and its Await*.
  //
  // SendSwitch: pauses the VM when `pause`, then, in one atomic step for this
  // VM, makes every overlay the active image of its disk; with `tracking`
  // non-empty, the switched disks are tracked under that name from the cut
  // on (see "Change tracking" below). Either every disk switched or none.
  // REQUIRES: OpenOverlays succeeded for these overlays, and, with
  // `tracking`, PrepareTracking for it.
  virtual Status SendSwitch(const std::vector<Overlay>& overlays, const std::string& tracking,
                            bool pause, Deadline deadline) = 0;
  // `*paused` says whether the VM is paused afterwards, also on error. If the
  // pause failed the switch may still have happened: revert before resuming.
  virtual Status AwaitSwitch(Deadline deadline, bool* paused) = 0;
  // When the last AwaitSwitch got the answer to its pause (the VM stopped,
  // its in-flight I/O drained and flushed), on this side's clock; the zero
  // time when the VM cannot tell it apart from the switch's answer.
  virtual Clock::time_point PauseAnsweredAt() { return {}; }
  // SendResume with `save_state` first saves the VM's RAM and device state,
  // as they are at that moment, to the file PrepareStateSave opened: the
  // guest runs again as soon as its device state is written (AwaitResume
  // returns then) and its RAM is streamed out while it runs, pages it writes
  // copied first (QEMU's background snapshot). AwaitStateSaved waits until
  // the whole state is in the file (NotFound if no save was ever started;
  // IoError if the file could not take it: it is removed then, and the VM
  // runs on; a Vm attached after PrepareStateSave cannot tell, its caller
  // checks the file).
  // PrepareStateSave, while the VM runs,
  // arms the background snapshot and creates `path` (AlreadyExists if it
  // exists: a stale state is never overwritten). A save prepared and never
  // started (no SendResume with `save_state`) leaves `path` empty; it is
  // ended by the next PrepareStateSave, RevertOverlays (undoing the
  // snapshot it was for) or PowerOff.
  virtual Status SendResume(Deadline deadline, bool save_state) = 0;
  virtual Status AwaitResume(Deadline deadline) = 0;
  // FinishSwitch: once the cut is over and the VM runs again, does what the
  // driver kept out of the pause for the switch (QEMU: stores in the images
  // the switch froze the trackings it held in memory meanwhile, see
  // qemu/held_trackings.h). Until it returns OK such a tracking would not
  // outlive the hypervisor. OK when there is nothing to do, so also when
  // called again; RevertOverlays does the same for the images it reverts.
  virtual Status FinishSwitch(Deadline deadline) = 0;
  virtual Status PrepareStateSave(const std::string& path, Deadline deadline) = 0;
  virtual Status AwaitStateSaved(Deadline deadline) = 0;

  // Undoes the switch for each overlay that is active: merges it into its
  // `base` and nothing else (writes made since the switch are kept; no image
  // further down changes) and makes `base` the disk's active image again;
  // then closes every overlay. A merge left running by a process that died
  // is adopted and finished. Safe to call after a partial or failed switch,
  // or more than once. InvalidState, before anything is merged, when an
  // active overlay does not lie directly on its `base` in the running graph
  // (or an adopted merge does not write into `base`); Failed when, after
  // the merge, a disk's active image is not its `base`.
  virtual Status RevertOverlays(const std::vector<Overlay>& overlays) = 0;

  // The file of each disk's active image, by disk index.
  virtual Result<std::vector<std::string>> ActiveImages(Deadline deadline) = 0;

  // Merges image `top` of disk `disk`'s open chain into `base`, the image
  // right below it, while the guest runs, and takes `top` out of the chain:
  // the image above `top` reads through `base` from then on (its header is
  // rewritten), or, when `top` was the active image, `base` becomes the
  // active image. `top`'s file stays. InvalidArgument when the two are not
  // both open in that chain. A merge left running by a process that died is
  // adopted and finished.
  virtual Status CommitImage(int disk, const std::string& top, const std::string& base,
                             Deadline deadline) = 0;

  // Change tracking (recovery snapshots, reference points, incremental
  // exports). A tracking has a name in vmgroup's namespace (`vmgroup-<tag>`)
  // and marks every cluster written to a disk from the moment it starts; how
  // is the driver's (QEMU: a persistent dirty bitmap on an image; libvirt: a
  // checkpoint of the domain, whose bitmaps libvirt keeps in the images).
  // The engine never needs to know which.
  //
  // PrepareTracking: whatever a tracking `name` needs before the switch
  // that starts it, done while the guest runs (after OpenOverlays, never
  // inside the pause). QEMU puts it on the overlays, which nothing writes
  // before the switch makes them active, so it marks exactly what is written
  // after the cut; libvirt starts a checkpoint, which marks a superset of
  // that. AlreadyExists when the VM has a tracking of that name already.
  // Undone by DropTracking (or by closing the overlays).
  virtual Status PrepareTracking(const std::vector<Overlay>& overlays, const std::string& name,
                                 Deadline deadline) = 0;
  // KeepTracking: makes tracking `name`, started by the switch that froze
  // `image` (disk `disk`'s image below that switch's overlay), outlive the
  // merge of that overlay into `image` that follows: afterwards `image`
  // holds tracking `name`, marking every cluster written to the disk since
  // that cut, merged ones included, and every later write. Done again, it
  // changes nothing (a conversion cut short by a crash is retried on the
  // same images: what the first call added marks at least as much).
  // NotFound when the tracking the switch started is gone.
  virtual Status KeepTracking(int disk, const std::string& image, const std::string& name,
                              Deadline deadline) = 0;
  // DropTracking: ends tracking `name` of disk `disk` kept on `image` (or
  // started by a switch onto `image`): OK when there is none (also when
  // `image` is no longer open). An error while it cannot be removed (QEMU:
  // `image` read-only, below the active image).
  virtual Status DropTracking(int disk, const std::string& image, const std::string& name,
                              Deadline deadline) = 0;
  // The names of the trackings in vmgroup's namespace (`vmgroup-*`) the
  // hypervisor keeps as objects of the VM's own (libvirt's checkpoints), so
  // that a caller can drop those no record names. A driver whose trackings
  // live only in images (QEMU) returns none.
  virtual Result<std::vector<std::string>> Trackings(Deadline deadline) = 0;
  // Copies every cluster tracking `name` marks in `image` (as `image` reads
  // now) into `target`, a qcow2 file of the disk's size open nowhere; the
  // rest of `target` is left unwritten and the tracking as it was.
  // REQUIRES: `image` is frozen (nothing writes it any more). `target` is
  // not synced: the caller syncs it. NotFound when `image` has no such
  // tracking; InvalidState when the hypervisor no longer trusts it (it was
  // left unsaved by a hypervisor that died).
  virtual Status CopyMarked(int disk, const std::string& image, const std::string& name,
                            const std::string& target, Deadline deadline) = 0;

  // --- Serving frozen images to readers (backup sessions) ---
  // ServeImages: serves each of `images`, read-only and as it reads now,
  // over NBD where `at` says (a new unix socket, or TCP with TLS), and
  // returns one ServedExport per image, in order. The guest runs on; reads
  // never block it; snapshots may come and go above the images meanwhile.
  // REQUIRES: each image is frozen (nothing writes it any more).
  // AlreadyExists when the VM serves already (one serving per VM at a time)
  // or a unix `at.path` exists; NotFound when an image is not open in its
  // disk's chain or has no tracking of that name; InvalidState when the
  // hypervisor does not trust the tracking (stored unsaved by a hypervisor
  // that died); an error naming the file when the TLS files cannot be read.
  // On any error nothing is left served and the socket file is gone (one
  // that existed before is left as it was).
  virtual Result<std::vector<ServedExport>> ServeImages(const NbdListen& at,
                                                        const std::vector<ServedImage>& images,
                                                        Deadline deadline) = 0;
  // StopServing: ends the VM's serving: clients are cut off, every export,
  // the server and its TLS credentials are gone, the socket file at
  // `socket` (the path it served at) is removed, and the images are free
  // again for merges. OK when the VM serves nothing, so that it also ends a
  // serving a previous process started (after a restart of the daemon).
  virtual Status StopServing(const std::string& socket, Deadline deadline) = 0;

  // The guest's filesystems, through the agent running in it (QEMU's guest
  // agent on the VM's agent channel). FreezeFilesystems flushes and freezes
  // every filesystem the guest has mounted and returns how many: writes in
  // the guest then wait until ThawFilesystems, which returns how many it
  // thawed (0 when none was frozen). Unavailable at once (within seconds)
  // when no agent answers: none installed or running, or the VM not
  // running. A freeze that misses `deadline` is Timeout and thaws again by
  // itself. Failed with the agent's reason otherwise.
  //
  // OpenAgent connects to the agent ahead of a freeze and keeps the channel
  // open for it and for the thaw that follows (the thaw, or a freeze that
  // fails, closes it): an agent may take a poll interval to notice a new
  // connection, which would otherwise fall inside the freeze window. Same
  // errors as a freeze's. Without it each call connects by itself.
  virtual Status OpenAgent(Deadline deadline) = 0;
  virtual Result<int> FreezeFilesystems(Deadline deadline) = 0;
  virtual Result<int> ThawFilesystems(Deadline deadline) = 0;
  // True while the guest's filesystems are frozen.
  virtual Result<bool> FilesystemsFrozen(Deadline deadline) = 0;

  // Asks the hypervisor to exit and waits for it; kills it if it will not:
  // the plug pulled (Hyper-V's Stop-VM -TurnOff, `virsh destroy`).
  virtual Status PowerOff() = 0;
  // A clean shutdown: presses the guest's ACPI power button (as `virsh
  // shutdown` and Hyper-V's Stop-VM) and waits until the VM is off: OK once
  // it is (QEMU exited, the domain shut off). Timeout when it still runs at
  // `deadline` (its guest ignores the button, or is slow): nothing else is
  // done, the VM runs on and may still shut down later. Unavailable when
  // the hypervisor is gone before the button is pressed.
  virtual Status Shutdown(Deadline deadline) = 0;
};

// Thaws guests' filesystems unless told otherwise in time: whoever freezes
// guests arms one first, so that a guest never stays frozen because its
// caller stalled or died. It lives in a process of its own; Disarm (or
// destroying it) ends it without a thaw. ThawNow has it thaw every guest at
// once, a second attempt independent of the caller's, and returns when it is
// done. Either ends the guard.
class ThawGuard {
 public:
  virtual ~ThawGuard() = default;
  virtual void Disarm() = 0;
  virtual void ThawNow() = 0;
};

// Resumes paused VMs unless told otherwise in time: whoever pauses VMs on
// another's word (engine::LeasedPause) arms one first, so that a VM never
// stays paused because this process died before it resumed them. It lives
// in a process of its own; Disarm (or destroying it) ends it without a
// resume. ResumeNow has it resume every VM at once, an attempt independent
// of the caller's, and returns when it is done. Either ends the guard.
class ResumeGuard {
 public:
  virtual ~ResumeGuard() = default;
  virtual void Disarm() = 0;
  virtual void ResumeNow() = 0;
};

class Driver {
 public:
  virtual ~Driver() = default;

  // The VMs a hypervisor that keeps its own definitions knows (libvirt's
  // domains on one connection), in no particular order. A driver whose VMs
  // vmgroup defines itself (QEMU) has none: an empty list. Unavailable
  // when the hypervisor's service cannot be reached.
  virtual Result<std::vector<DomainInfo>> List() { return std::vector<DomainInfo>{}; }
  // Calls `changed` (on a thread of the driver's, never while a call of
  // this driver's is running on that thread) whenever a VM of List() is
  // defined, undefined, renamed, started, stopped, paused or resumed by
  // anyone, or the connection to the service is lost or back: the caller
  // lists again. Drivers with no list of their own never call it. A later
  // Watch replaces the callback, an empty one ends the calls (a call
  // already under way may still finish: the callback keeps alive what it
  // uses).
  virtual void Watch(std::function<void()> changed) { (void)changed; }

  // Arms a guard that thaws the filesystems of every VM in `vms` through
  // its agent once `within` has passed, or at once if this process dies.
  // Each VM's agent channel must be open (Vm::OpenAgent): the guard keeps a
  // copy of it, so that its thaw gets through even while this process,
  // stalled, still holds the channel. InvalidState for a VM whose channel
  // is not open; `vms` are this driver's.
  virtual Result<std::unique_ptr<ThawGuard>> GuardThaw(const std::vector<std::shared_ptr<Vm>>& vms,
                                                       Duration within) = 0;

  // Arms a guard that resumes every VM in `vms` once `within` has passed,
  // or at once if this process dies. The guard holds connections of its
  // own, made here, so that its resume gets through whatever state this
  // process's own connections are in. NotSupported by a driver that has no
  // such guard; Unavailable when a VM cannot have one (says why). The
  // caller then pauses unguarded: should it die, its VMs stay paused until
  // it restarts. InvalidArgument for a VM that is not this driver's.
  virtual Result<std::unique_ptr<ResumeGuard>> GuardResume(
      const std::vector<std::shared_ptr<Vm>>& vms, Duration within) {
    (void)vms;
    (void)within;
    return Status::NotSupported("this hypervisor driver has no resume guard");
  }

  // Starts a VM (running). Unavailable when the hypervisor will not start;
  // the message carries what it printed. `admit` (may be empty) is called
  // with the hypervisor's pid once its process exists and before it runs
  // (SpawnOptions::admit): the caller records the process there, so that
  // no hypervisor ever runs that its records do not name. The driver then
  // reaches fault point kFaultStarted, before it loads `spec.incoming`.
  // RAM on huge pages (VmConfig::hugepages): InvalidArgument for a size
  // that is not whole 2 MiB pages, Unavailable, before any process starts,
  // when the host has too few free (base/huge_pages.h).
  //
  // A driver with its own definitions (List) starts the VM it knows by
  // `spec.uuid`; when `spec.disks` differ from its definition, it first
  // rewrites the definition's disks to them (each image opened by its own
  // header's backing chain: no chain the definition recorded is kept).
  // Its hypervisor's processes are its service's, not this process's: it
  // never calls `admit`, and its Vms' pid() is 0. Its definition says
  // where guest RAM lives; vmgroup never asks such a VM for huge pages.
  virtual Result<std::unique_ptr<Vm>> Start(const VmSpec& spec,
                                            const std::function<Status(int pid)>& admit) = 0;

  // Makes the definition of VM `spec.uuid`, shut off, name `spec.disks` as
  // its disks, each image opened by its own header's backing chain (no
  // chain the definition recorded is kept): what applying a snapshot or
  // merging images offline needs, so that the hypervisor's own view (virsh)
  // names the images vmgroup runs the VM on. OK when the definition names
  // them already. A driver whose VMs vmgroup defines itself (the catalog is
  // their only definition) has nothing to do: OK. InvalidState while the VM
  // runs; NotFound when it is undefined; Unavailable when the hypervisor's
  // service cannot be reached.
  virtual Status DefineDisks(const VmSpec& spec) {
    (void)spec;
    return Status::Ok();
  }

  // --- Change tracking of VMs that are off (Vm's calls are for those that run) ---
  // The trackings in vmgroup's namespace that shut-off VM `spec.uuid` keeps
  // as objects of its own (as Vm::Trackings). A driver whose trackings live
  // only in images: none. InvalidState while the VM runs.
  virtual Result<std::vector<std::string>> Trackings(const VmSpec& spec) {
    (void)spec;
    return std::vector<std::string>{};
  }
  // Ends tracking `name` of shut-off VM `spec.uuid`: whatever it left in
  // the images of `spec.disks`' chains first, then the object itself. OK
  // when there is none. InvalidState while the VM runs.
  virtual Status DropTracking(const VmSpec& spec, const std::string& name) {
    (void)spec, (void)name;
    return Status::Ok();
  }
  // As Vm::KeepTracking, for shut-off VM `spec.uuid`, whose cut was merged
  // (or is to be merged) offline: afterwards `image`, disk `disk`'s image
  // below the cut, holds tracking `name`, marking every cluster the offline
  // merge that follows writes into it and every later write. Done again it
  // changes nothing (a tracking of that name there already: OK).
  // NotSupported for a driver whose trackings only a running VM can make
  // (libvirt's checkpoints).
  // REQUIRES: the VM is off and stays off until the merge is done.
  virtual Status KeepTracking(const VmSpec& spec, int disk, const std::string& image,
                              const std::string& name) {
    (void)spec, (void)disk, (void)image, (void)name;
    return Status::NotSupported("this hypervisor cannot keep change tracking of a VM that is off");
  }

  // --- Serving the frozen images of VMs that are off (backup sessions) ---
  // ServeImages: as Vm::ServeImages, for shut-off VM `spec.uuid`, whose
  // disks' chains are those of `spec.disks`: the driver runs a server of
  // its own (QEMU: a qemu-storage-daemon), which outlives this process and
  // is recorded beside `at.path`, so that StopServing ends it also after a
  // restart. The same errors, but AlreadyExists only for an `at.path` that
  // exists or is served already: one serving per VM is the caller's to
  // keep. NotSupported for a driver that cannot.
  // REQUIRES: the VM stays off or, if started, never writes the images.
  virtual Result<std::vector<ServedExport>> ServeImages(const VmSpec& spec, const NbdListen& at,
                                                        const std::vector<ServedImage>& images) {
    (void)spec, (void)at, (void)images;
    return Status::NotSupported("this hypervisor cannot serve the disks of a VM that is off");
  }
  // StopServing: ends what ServeImages(spec, {socket, ...}, ...) started (by this
  // process or an earlier one): clients cut off, the server gone, the socket
  // file removed. OK when nothing is served there.
  virtual Status StopServing(const VmSpec& spec, const std::string& socket) {
    (void)spec, (void)socket;
    return Status::Ok();
  }

  // Reconnects to a VM started earlier (possibly by another process) with
  // this spec, whose hypervisor runs as `pid`. Unavailable if it is gone.
  // A driver with its own definitions finds the VM by `spec.uuid` (pid is
  // 0): Unavailable while it is shut off, NotFound when it is undefined.
  virtual Result<std::unique_ptr<Vm>> Attach(const VmSpec& spec, int pid) = 0;

  // --- Exporting and restoring the VMs a hypervisor defines itself ---
  // (libvirt's domains; vmgroupd's own VMs are exported from their catalog
  // records, so the QEMU driver answers NotSupported to each call.)

  // What an export carries to define VM `uuid` again: ExportedDefinition.
  // Unavailable when the service cannot be reached; NotFound when undefined.
  virtual Result<ExportedDefinition> ExportDefinition(const std::string& uuid) {
    (void)uuid;
    return Status::NotSupported("this hypervisor keeps no VM definitions of its own");
  }
  // The definition `r.definition` (from an export: untrusted) made fit to
  // define here (RestoredDefinition). Changes nothing. InvalidArgument
  // naming what is refused; AlreadyExists when `r.uuid` or `r.name` is a
  // VM the hypervisor knows; Unavailable when it cannot be reached.
  virtual Result<std::string> PrepareRestore(const RestoredDefinition& r) {
    (void)r;
    return Status::NotSupported("this hypervisor keeps no VM definitions of its own");
  }
  // Defines a VM, shut off, from a definition PrepareRestore returned, and
  // describes it as List would. AlreadyExists when its uuid or name is
  // taken (nothing is redefined); Unavailable when unreachable.
  virtual Result<DomainInfo> DefineRestored(const std::string& definition) {
    (void)definition;
    return Status::NotSupported("this hypervisor keeps no VM definitions of its own");
  }
  // Undefines VM `uuid`, shut off, leaving its images: what takes back a
  // restore. OK when it is not defined; InvalidState while it runs;
  // Unavailable when the service cannot be reached.
  virtual Status UndefineRestored(const std::string& uuid) {
    (void)uuid;
    return Status::NotSupported("this hypervisor keeps no VM definitions of its own");
  }
};

}  // namespace vmgroup::hypervisor
