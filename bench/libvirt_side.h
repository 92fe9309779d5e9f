// The peer measured in the same run: a group "snapshot" done the way people
// script it with libvirt's API — suspend every domain, take a disk-only
// atomic external snapshot of each, resume every domain — one thread per
// domain per phase, against a session libvirtd.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/env.h"
#include "stats.h"

namespace vmgroup::bench {

// Runs inside the unprivileged worker process: defines and starts n
// firmware-only domains with two qcow2 disks each (images in `image_dir`)
// for each n in `sizes`, measures `rounds` group snapshots (after one
// warm-up), destroys the domains. Samples by n.
Result<std::map<int, Samples>> MeasureLibvirt(const std::string& uri, const std::string& image_dir,
                                              const std::vector<int>& sizes, int rounds);

// Starts a session libvirtd as user nobody with all its state under `dir`,
// runs this program again as nobody with `worker_args` (the worker side),
// stops libvirtd and every process it left, by PID. Returns the worker's
// standard output.
Result<std::string> RunLibvirtWorker(Env* env, const std::string& dir,
                                     const std::vector<std::string>& worker_args);

}  // namespace vmgroup::bench
