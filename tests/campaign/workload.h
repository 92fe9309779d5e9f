// What the campaign does to vmgroupd: real guests (tests/guest_kit, writer=raw:
// record n stamped into sector n, acknowledged by "wrote n" on the serial
// console) on disks that are overlays of one shared template, in one group;
// then, step by step, one random operation of any kind the state allows,
// sent through the CLI with --no-wait where the CLI has it, or, to read a
// backup session's disks, a reader of the campaign's own.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "daemon_process.h"
#include "options.h"

namespace vmgroup::campaign {

struct Operation {
  std::string kind;               // "snapshot-standard", "apply", "vm-stop", ...
  std::vector<std::string> args;  // the CLI's arguments
  std::string export_dir;         // the target, for the kinds that export
  bool full_export = false;       // a `snapshot export` with storage: restorable
  // For "backup-read": a reader of a served disk (nbdcopy, nbdinfo), run
  // instead of the CLI (args empty), by PID.
  std::vector<std::string> reader;
};

class Workload {
 public:
  Workload(const Options& options, DaemonProcess& daemon, std::string state_dir,
           std::string image_dir, std::string export_root)
      : options_(options),
        daemon_(daemon),
        state_dir_(std::move(state_dir)),
        image_dir_(std::move(image_dir)),
        export_root_(std::move(export_root)) {}

  // Makes the template and one overlay of it per guest, defines and starts
  // the guests through the CLI, groups them and waits until each has
  // acknowledged records. Failed with what the CLI or the guest said.
  Status CreateGuests();

  // A random operation among those the catalog's state allows. Also removes
  // the oldest export directories beyond a few (the export tmpfs is small).
  Operation Pick(std::mt19937_64& rng, catalog::Catalog& catalog);
  // Notes that `op` was sent: an export target it named is kept (a few at
  // a time), and one that ends with a manifest becomes a restore source.
  void Sent(const Operation& op);

  const std::string& template_path() const { return template_; }
  const std::vector<std::string>& guest_ids() const { return guests_; }
  const std::string& group_id() const { return group_; }
  bool IsGuest(const std::string& vm_id) const;

 private:
  const Options& options_;
  DaemonProcess& daemon_;
  std::string state_dir_, image_dir_, export_root_;
  std::string template_;
  std::string group_;
  std::vector<std::string> guests_;
  int exports_made_ = 0;
  std::vector<Operation> exports_;  // oldest first
};

// The last "wrote N" on a writer=raw guest's serial console (0: none yet),
// and how many such lines there are.
struct SerialProgress {
  int64_t last = 0;
  int64_t lines = 0;
};
SerialProgress ReadSerialProgress(const std::string& serial_log);
// Where vmgroupd keeps VM `vm_id`'s serial console.
std::string SerialLog(const std::string& state_dir, const std::string& vm_id);

}  // namespace vmgroup::campaign
