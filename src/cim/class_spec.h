// ClassSpec: one declaration per CIM class — its keys, properties and
// methods with their parameters — that drives GetClass, key extraction and
// the checking of method arguments (the way libvirt-cim's method tables
// drive its providers). Declarations live with the services that implement
// the classes; this file is only the mechanism.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"
#include "cim/model.h"
#include "cim/xml_reader.h"

namespace vmgroup::cim {

// CIM status codes of an <ERROR> (DSP0200; reference linux-anchors §5.2).
enum class CimStatus {
  kFailed = 1,
  kAccessDenied = 2,
  kInvalidNamespace = 3,
  kInvalidParameter = 4,
  kInvalidClass = 5,
  kNotFound = 6,
  kNotSupported = 7,
  kAlreadyExists = 11,
  kNoSuchProperty = 12,
  kTypeMismatch = 13,
  kMethodNotAvailable = 16,
  kMethodNotFound = 17,
};

// A protocol-level failure: becomes an <ERROR CODE DESCRIPTION>.
struct CimError {
  CimStatus status;
  std::string description;
};

struct PropertySpec {
  std::string name;
  std::string type;  // "string", "uint16", "datetime", "boolean", "reference", ...
  bool key = false;
  bool is_array = false;
  std::string reference_class;  // for type "reference"
};

struct ParamSpec {
  std::string name;
  std::string type;
  bool in = true;
  bool out = false;
  bool is_array = false;
  std::string reference_class;  // for type "reference"
  std::string embedded_class;   // a string that holds an embedded instance of this class
};

struct MethodSpec {
  std::string name;
  std::vector<ParamSpec> params;
  const ParamSpec* Param(std::string_view name) const;
};

struct ClassSpec {
  std::string name;
  std::string superclass;
  bool association = false;
  std::vector<PropertySpec> properties;
  std::vector<MethodSpec> methods;

  const PropertySpec* Property(std::string_view name) const;
  const MethodSpec* Method(std::string_view name) const;
};

// The classes a namespace serves, found by name (case-insensitive).
class ClassRegistry {
 public:
  // REQUIRES: no class of that name yet.
  void Add(ClassSpec spec);
  const ClassSpec* Find(std::string_view name) const;
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, ClassSpec> classes_;  // by lower-case name
};

// The <CLASS> element GetClass returns: properties with KEY qualifiers and
// methods with PARAMETER / PARAMETER.REFERENCE / PARAMETER.ARRAY and In/Out
// qualifiers (wbemcli's `cm` reads both before calling).
std::string ClassXml(const ClassSpec& spec);

// The path of `inst` in `ns`: its class and its key properties.
ObjectPath PathOf(const ClassSpec& spec, const Instance& inst, std::vector<std::string> ns);

// Checks a scalar's text against a CIM type: integers in range, booleans
// TRUE/FALSE (any case), datetimes in DMTF form. OK for other types.
Status CheckScalar(std::string_view type, std::string_view text);

// Checks an extrinsic call's arguments against the method's declaration:
// each argument must be a declared in-parameter with a value of its type.
// Returns the arguments by declared name. INVALID_PARAMETER for an unknown
// parameter, TYPE_MISMATCH for a value of the wrong kind or type.
std::variant<std::map<std::string, Value>, CimError> CheckArguments(const MethodSpec& method,
                                                                    const std::vector<Param>& args);

}  // namespace vmgroup::cim
