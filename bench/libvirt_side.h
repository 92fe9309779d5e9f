// The peer measured in the same run: a group "snapshot" done the way people
// script it with libvirt's API — suspend every domain, take a disk-only
// atomic external snapshot of each, resume every domain — one thread per
// domain per phase, against a session libvirtd.
#pragma once

#include <libvirt/libvirt.h>

#include <map>
#include <string>
#include <vector>

#include "base/env.h"
#include "freeze_timeline.h"
#include "stats.h"

namespace vmgroup::bench {

// A domain as the script drives it.
struct ScriptDomain {
  virConnectPtr conn = nullptr;  // its own connection (ConnectEach), or null
  virDomainPtr dom = nullptr;
  std::string name;
  std::vector<std::string> disks;  // the images it was defined with
  // The active image of each disk: the overlays of the last round that
  // switched it (ScriptRound), or `disks` before any.
  std::vector<std::string> tops;
};

// Gives each domain of `doms` (by name) a connection of its own to `uri`,
// as a script with one thread per domain would: libvirtd serves at most 5
// calls of one connection at a time.
Status ConnectEach(const std::string& uri, std::vector<ScriptDomain>& doms);
// Frees what ConnectEach opened; the domains keep running.
void Disconnect(std::vector<ScriptDomain>& doms);

// One group round of the script: suspend all -> virDomainSnapshotCreateXML
// (DISK_ONLY|ATOMIC|`extra_flags`) of each -> resume all, one thread per
// domain per phase. Each disk's overlay is <its image in `disks`>.<tag>:
// made inside the call, or beforehand by the caller (on the disk's top)
// with VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT. With `quiesce`, each guest's
// filesystems are frozen through its agent first and thawed last
// (virDomainFSFreeze/FSThaw). Appends to `out` (window_us: first suspend
// -> last resume; total_us: first call -> last return, which with
// `quiesce` is the freeze window) and advances `tops`, or returns the first
// error. With `timeline`, its guests get each domain's: freeze sent and
// answered, its snapshot call returned (cut), thaw sent and answered
// (steady clock, to Rebase).
Status ScriptRound(std::vector<ScriptDomain>& doms, const std::string& tag,
                   unsigned int extra_flags, Samples& out, bool quiesce = false,
                   RoundTimeline* timeline = nullptr);

// A real guest (kernel + initrd) of `memory_mib` with one qcow2 disk.
struct GuestSpec {
  int memory_mib = 128;
  std::string kernel, initrd, cmdline;
  std::string ready_marker;  // printed on the serial console once the workload runs
  bool agent = false;        // with a guest-agent channel
};

// Runs inside the unprivileged worker process: defines and starts n
// firmware-only domains with two 16 MiB qcow2 disks each (images in
// `image_dir`) for each n in `sizes`, measures `rounds` group snapshots
// (after one warm-up), destroys the domains. Samples by n. With `guest`,
// the domains run that guest instead of their firmware (still two such
// disks), and are measured once every one has printed its ready marker.
Result<std::map<int, Samples>> MeasureLibvirt(const std::string& uri, const std::string& image_dir,
                                              const std::vector<int>& sizes, int rounds,
                                              const GuestSpec* guest = nullptr);

// Runs inside the worker: starts n such guests, waits for their marker, then
// measures `rounds` group snapshots with memory the way libvirt does them
// (an external snapshot with <memory snapshot='external'> of each domain,
// one thread per domain: each domain is paused while its memory is saved).
// window_us is first call -> last return.
Result<Samples> MeasureLibvirtMemory(const std::string& uri, const std::string& image_dir,
                                     const GuestSpec& guest, int n, int rounds);

// Runs inside the worker: starts n such guests (with their agent) on ext4
// disks made here, waits for their marker, then measures `rounds` group
// snapshots scripted with libvirt as application consistent: freeze every
// guest, suspend all, disk-only snapshot of each, resume all, thaw every
// guest, one thread per domain per phase. window_us is the pause window
// (first suspend -> last resume), total_us the freeze window (first freeze
// -> last thaw); `timelines` gets each round's per-domain timeline. Each
// round's first freeze is sent `gap` after the last thaw of the previous
// one: how long the guests write between freezes.
Result<Samples> MeasureLibvirtQuiesced(const std::string& uri, const std::string& image_dir,
                                       const GuestSpec& guest, int n, int rounds, Duration gap,
                                       std::vector<RoundTimeline>* timelines);

// Starts a session libvirtd as user nobody with all its state under `dir`,
// runs this program again as nobody with `worker_args` (the worker side),
// stops libvirtd and every process it left, by PID. Returns the worker's
// standard output.
Result<std::string> RunLibvirtWorker(Env* env, const std::string& dir,
                                     const std::vector<std::string>& worker_args);

// RunLibvirtWorker for a worker that prints samples by key as JSON
// (report.h): the samples.
Result<std::map<int, Samples>> RunLibvirtSamples(Env* env, const std::string& dir,
                                                 const std::vector<std::string>& worker_args);

}  // namespace vmgroup::bench
