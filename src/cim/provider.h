// Provider: what one CIM class does behind the dispatcher — its declaration,
// its instances and its methods. The services layer implements one per
// class; the dispatcher (cim/dispatcher.h) turns the intrinsic operations
// into calls on these and never knows what a VM or a snapshot is.
//
// Providers report failures as Status values; the dispatcher maps them onto
// CIM status codes (NotFound -> CIM_ERR_NOT_FOUND, InvalidArgument ->
// CIM_ERR_INVALID_PARAMETER, NotSupported -> CIM_ERR_NOT_SUPPORTED, anything
// else -> CIM_ERR_FAILED). A method's own failures are not errors at this
// level: they are its ReturnValue.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "cim/class_spec.h"
#include "cim/model.h"
#include "cim/xml_writer.h"

namespace vmgroup::cim {

// The answer of an extrinsic method: its ReturnValue and out-parameters.
struct MethodResult {
  uint32_t return_value = 0;
  std::vector<OutParam> out;
};

class Provider {
 public:
  virtual ~Provider() = default;

  virtual const ClassSpec& spec() const = 0;

  // Every instance of the class, every property filled.
  virtual Result<std::vector<Instance>> Enumerate() = 0;

  // Hands `each` the instances Enumerate() returns, in the same order, and
  // fails as it would (after handing over those made before the failure).
  // Providers of thousands of instances build each one here as `each`
  // takes it, so that a listing is written out as it is built and never
  // holds them all; the default hands over Enumerate()'s.
  virtual Status ForEach(const std::function<void(Instance)>& each);

  // The instance `path` names (its keys); NotFound if there is none. The
  // default scans Enumerate(); providers with many instances look it up.
  virtual Result<Instance> Get(const ObjectPath& path);

  // Runs `method` on `target` (an instance of this class, not yet looked
  // up). `args` were checked against the declaration: only declared
  // in-parameters, with values of their types, by declared name.
  virtual Result<MethodResult> Invoke(const MethodSpec& method, const ObjectPath& target,
                                      const std::map<std::string, Value>& args);
};

// Builds an instance of a declared class: starts with every declared
// property null, so rendering shows the whole class, and refuses (aborts
// on) a property the declaration lacks — the declaration is the one truth.
class InstanceBuilder {
 public:
  explicit InstanceBuilder(const ClassSpec& spec);

  InstanceBuilder& Str(std::string_view name, std::string value);
  InstanceBuilder& Int(std::string_view name, int64_t value);
  InstanceBuilder& Bool(std::string_view name, bool value);
  InstanceBuilder& Strs(std::string_view name, std::vector<std::string> values);
  InstanceBuilder& Ints(std::string_view name, const std::vector<int64_t>& values);
  InstanceBuilder& Ref(std::string_view name, ObjectPath path);

  Instance Build() { return std::move(inst_); }

 private:
  Property& Slot(std::string_view name);

  Instance inst_;
};

// True if `a` and `b` name the same instance: same class and the same keys
// (names as CIM compares them, values exactly); host and namespace aside.
bool SamePath(const ObjectPath& a, const ObjectPath& b);

}  // namespace vmgroup::cim
