// What every Msvm_* provider shares: the namespace, object paths of the
// classes the services serve, typed access to checked method arguments,
// CIM datetimes, and ServiceProvider — a singleton service class whose
// methods are a table of handlers.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/return_codes.h"
#include "catalog/records.h"
#include "cim/provider.h"
#include "engine/engine.h"
#include "schema/classes.h"
#include "schema/values.h"
#include "services/jobs.h"

namespace vmgroup::services {

inline constexpr const char* kNamespace = schema::kNamespace;
std::vector<std::string> NamespaceParts();

// What providers need from the daemon.
struct Context {
  engine::Engine* engine;
  JobManager* jobs;
  std::string host;         // SystemName of the services
  std::string accelerator;  // what QEMU runs VMs under: "kvm" or "tcg"
};

// A path with one string key.
cim::ObjectPath KeyPath(const std::string& class_name, const std::string& key,
                        const std::string& value);
// Paths of the objects the services serve, from their ids.
cim::ObjectPath VmPath(const std::string& vm_id);  // Msvm_ComputerSystem
// A VM of another host (a group's member there): VmPath with that host's
// name as the path's HOST.
cim::ObjectPath RemoteVmPath(const catalog::RemoteMember& m);
// True for the HOST of a path that names this host: none, "localhost", a
// loopback address or this machine's name.
bool IsThisHost(const std::string& host);
cim::ObjectPath SettingsPath(const std::string& id);  // Msvm_VirtualSystemSettingData
cim::ObjectPath CollectionPath(const catalog::CollectionRecord& c);
cim::ObjectPath SnapshotCollectionPath(const std::string& snapshot_id);
cim::ObjectPath ReferencePointPath(const catalog::ReferencePointRecord& rp);
cim::ObjectPath MemberReferencePointPath(const catalog::ReferencePointMember& m);
cim::ObjectPath JobPath(const std::string& job_id);
// The path an affected-element entry of a job ("<class>:<id>") stands for.
cim::ObjectPath AffectedPath(const std::string& entry);
std::string Affected(const std::string& class_name, const std::string& id);

// The JobType of an export, a group snapshot's or a host's part of one:
// Hyper-V documents none for a group; 62 is Export Virtual Machine, done
// for each member.
inline constexpr int kJobExportSnapshotCollection = 62;
// The JobType of converting a group snapshot, or a host's part of one, to
// a reference point (docs/api.md).
inline constexpr int kJobConvertToReferencePoint = 200;

// What a job that made reference point `rp` or export `m` affected: the
// reference point or snapshot, then the member VMs.
std::vector<std::string> AffectedBy(const catalog::ReferencePointRecord& rp);
std::vector<std::string> AffectedBy(const engine::ExportManifest& m);
// An export across hosts: the snapshot and this host's VMs in it.
std::vector<std::string> AffectedBy(const engine::SpanningExportManifest& m);

// The ElementName of embedded settings that name what a method makes (a
// snapshot, a reference point): empty when left out or NULL (the engine
// then names it), else checked as a name (base/validate.h CheckName;
// `what` says whose name it is).
Result<std::string> ElementNameOf(const cim::Instance& settings, const std::string& what);

// The ConsistencyLevel of a snapshot's or reference point's settings:
// 1 application consistent; 2 crash consistent, as are 0 (unknown) and none.
// InvalidArgument for any other value.
Result<catalog::Consistency> ReadConsistencyLevel(const cim::Instance& settings);

// The InstanceID of a VM's configuration and of a per-VM snapshot: Hyper-V
// prefixes both with "Microsoft:"; the rest is the VM's or snapshot's id.
std::string SettingsId(const std::string& id);
// The id inside a path's key (CollectionID, Name, InstanceID without its
// "Microsoft:" prefix), or empty when the path lacks that key.
std::string IdOf(const cim::ObjectPath& p, const std::string& key);

// CIM datetime of a wall-clock time in microseconds ("20261124210455.123456+000"),
// and of an interval ("00000000000500.000000:000").
std::string CimTime(int64_t us);
std::string CimInterval(int64_t us);
// The microseconds of a CIM interval ("00000000000500.000000:000");
// InvalidArgument for a timestamp or wildcards.
Result<int64_t> ParseCimInterval(const std::string& text);

// Longest path a client may send (PATH_MAX less its terminating NUL).
inline constexpr size_t kMaxPathBytes = 4095;

// Checked arguments by name (cim::CheckArguments made sure of their types).
// The Result getters say what is missing or wrong as InvalidArgument, which
// a method answers with its Invalid parameter code.
class Args {
 public:
  explicit Args(const std::map<std::string, cim::Value>& args) : args_(args) {}
  const cim::ObjectPath* Ref(const std::string& name) const;
  std::string Str(const std::string& name) const;  // empty when absent
  bool Has(const std::string& name) const;
  // A string argument that must be given and not be empty.
  Result<std::string> Required(const std::string& name) const;
  // A required path: as Required, then valid UTF-8 without control
  // characters, at most kMaxPathBytes (whether it is absolute, or may be
  // used, is the engine's to say).
  Result<std::string> Path(const std::string& name) const;
  // The id (IdOf) under `key` of the reference argument `name`, which
  // must name a `what`: refused when the reference or its key is absent or empty.
  Result<std::string> RefId(const std::string& name, const std::string& key,
                            const std::string& what) const;
  // The value, or `fallback` when absent.
  int64_t Int(const std::string& name, int64_t fallback) const;
  std::vector<std::string> Strs(const std::string& name) const;

 private:
  const std::map<std::string, cim::Value>& args_;
};

// The answers of a method: done, refused with a code and the reason (in
// the vendor out-parameter schema::MethodOut::kErrorDescription: Hyper-V
// gives only the code, people need the reason), or a job started.
cim::MethodResult Done(uint32_t code = 0);
cim::MethodResult Refused(uint32_t code, std::string why);
cim::MethodResult JobStarted(const std::string& job_id);
// Done for OK, else Refused with the code of the method's family.
cim::MethodResult Outcome(ErrorCodeOf family, const Status& s);

// A singleton CIM_Service (keys CreationClassName, Name,
// SystemCreationClassName, SystemName) whose methods are handlers.
class ServiceProvider : public cim::Provider {
 public:
  using Handler = std::function<Result<cim::MethodResult>(const Args&)>;
  ServiceProvider(const Context& ctx, std::string class_name, std::string name, std::string caption,
                  std::vector<cim::MethodSpec> methods);
  // REQUIRES: `method` is declared.
  void On(const std::string& method, Handler h) { handlers_[method] = std::move(h); }
  // Declares a read-only string property `name` of the class, whose value
  // the instance carries.
  void AddProperty(const std::string& name, std::string value);

  const cim::ClassSpec& spec() const override { return spec_; }
  Result<std::vector<cim::Instance>> Enumerate() override;
  Result<cim::MethodResult> Invoke(const cim::MethodSpec& method, const cim::ObjectPath& target,
                                   const std::map<std::string, cim::Value>& args) override;

 private:
  cim::ClassSpec spec_;
  std::string name_, caption_, host_;
  std::map<std::string, Handler> handlers_;
  std::vector<std::pair<std::string, std::string>> added_;  // AddProperty: (name, value)
};

// A read-only class: its declaration and a function listing its instances.
class ListProvider : public cim::Provider {
 public:
  using Lister = std::function<Result<std::vector<cim::Instance>>(const cim::ClassSpec&)>;
  ListProvider(cim::ClassSpec spec, Lister list) : spec_(std::move(spec)), list_(std::move(list)) {}
  const cim::ClassSpec& spec() const override { return spec_; }
  Result<std::vector<cim::Instance>> Enumerate() override { return list_(spec_); }

 private:
  cim::ClassSpec spec_;
  Lister list_;
};

// An association class: two key references, `left` to `left_class` and
// `right` to `right_class`.
cim::ClassSpec LinkSpec(const char* name, const char* superclass, const char* left,
                        const char* left_class, const char* right, const char* right_class);

// Parameters every Hyper-V method family shares.
cim::ParamSpec RefIn(std::string name, std::string reference_class);
cim::ParamSpec RefOut(std::string name, std::string reference_class);
// An [in, out] reference: the object a method makes, which a caller may name.
cim::ParamSpec RefInOut(std::string name, std::string reference_class);
cim::ParamSpec JobOut();
// schema::MethodOut::kErrorDescription; ServiceProvider adds it to every method.
cim::ParamSpec ErrorOut();

}  // namespace vmgroup::services
