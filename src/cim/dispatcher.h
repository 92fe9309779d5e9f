// Dispatcher: answers CIM-XML operation requests (DSP0200) for one namespace
// from the providers registered with it. It checks the HTTP headers against
// the body, decodes the call, runs the intrinsic operation (GetClass,
// GetInstance, EnumerateInstances, EnumerateInstanceNames, Associators,
// AssociatorNames, References, ReferenceNames, EnumerateClassNames,
// EnumerateClasses, GetProperty) or the extrinsic method, and encodes the
// answer. Requests it cannot read get an HTTP error with a CIMError header;
// requests it can read but not satisfy get a CIM <ERROR>.
//
// Every request is judged by its peer's role first: a reader may only read
// (IsRead), a peer without a role nothing; a refusal is CIM_ERR_ACCESS_DENIED
// naming the peer and the group it would need.
//
// Thread-safe once every provider is registered: Handle() may run on many
// connections at once; providers must be thread-safe themselves.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cim/class_spec.h"
#include "cim/http_message.h"
#include "cim/provider.h"

namespace vmgroup::cim {

class Dispatcher {
 public:
  // `ns` like "root/virtualization/v2"; `host` names this server in the
  // INSTANCEPATHs it returns.
  Dispatcher(std::string_view ns, std::string host);

  // A class with instances and methods. REQUIRES: no class of that name yet.
  void Register(std::unique_ptr<Provider> provider);
  // A class clients only need the declaration of (settings they embed,
  // errors they receive): GetClass knows it, it has no instances.
  void Declare(ClassSpec spec);

  // A POST to the CIMOM.
  HttpResponse Handle(const HttpRequest& request);

  // True if `r` only reads: the intrinsic GetClass, EnumerateClasses,
  // EnumerateClassNames, GetInstance, EnumerateInstances,
  // EnumerateInstanceNames, GetProperty, Associators, AssociatorNames,
  // References and ReferenceNames. Method calls and every other intrinsic
  // operation (Create*, Modify*, Delete*, SetProperty, ...) are writes.
  static bool IsRead(const Request& r);

  const std::vector<std::string>& namespace_parts() const { return ns_; }

 private:
  struct Entry {
    // Spelled out: clang 14 builds no aggregate from try_emplace's arguments.
    Entry(const ClassSpec* s, Provider* p) : spec(s), provider(p) {}
    const ClassSpec* spec;
    Provider* provider;  // null for declared-only classes
    // The bytes of the class's last EnumerateInstances answer: the next
    // one reserves as much. Any connection may update it.
    mutable std::atomic<size_t> listed_bytes{0};
  };
  // The table of intrinsic operations and their handlers (dispatcher.cc).
  struct Intrinsics;
  std::string Intrinsic(const Request& r) const;
  std::string Extrinsic(const Request& r);
  const Entry* Find(std::string_view class_name) const;
  // True if `name` is `ancestor` or derives from it, as far as declarations tell.
  bool IsA(std::string_view name, std::string_view ancestor) const;
  // Every registered class that is `name` or derives from it.
  std::vector<const Entry*> Family(std::string_view name) const;
  ObjectPath Rooted(ObjectPath p) const;
  Instance Rooted(Instance inst) const;

  std::vector<std::string> ns_;
  const std::string host_;
  std::vector<std::unique_ptr<Provider>> providers_;
  std::vector<std::unique_ptr<ClassSpec>> declared_;
  std::map<std::string, Entry> classes_;  // by lower-case name
};

}  // namespace vmgroup::cim
