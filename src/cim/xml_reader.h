// Reading CIM-XML (DSP0200/DSP0201): operation requests, embedded instances
// and the CIMObject header. Lenient where clients are known to differ: any
// reference form (INSTANCEPATH, LOCALINSTANCEPATH, INSTANCENAME, class
// paths), PARAMVALUE with or without PARAMTYPE, percent-escaped or raw
// CIMObject values.
//
// What arrives is untrusted (fuzz/ tries these functions on anything): each
// refuses what it cannot read with an error, never reads past its input, and
// follows a reference whose key is itself a reference (and so on) at most
// kMaxReferenceNesting levels deep, so a reader's stack stays bounded.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"
#include "cim/model.h"

namespace vmgroup::cim {

// References nested inside keys deeper than this are refused. DSP0201 sets
// no bound; a reference to an association instance, whose keys are
// references, nests two.
inline constexpr int kMaxReferenceNesting = 8;

// A parameter of a call: IPARAMVALUE (intrinsic) or PARAMVALUE (extrinsic).
struct Param {
  std::string name;
  std::string paramtype;  // PARAMTYPE when the client sent one
  Value value;
};

struct Request {
  std::string message_id;
  bool intrinsic = true;
  std::string method;  // IMETHODCALL or METHODCALL NAME
  // Intrinsic: the namespace. Extrinsic: the instance (or class) the method
  // is invoked on, with its namespace.
  ObjectPath target;
  std::vector<Param> params;

  // The parameter named `name` (case-insensitive), or null.
  const Param* Find(std::string_view name) const;
};

// Why a request could not be read, as DSP0200's CIMError header names it.
struct RequestError {
  std::string cim_error;  // "request-not-well-formed", "request-not-valid", ...
  std::string detail;     // for a person
};

std::variant<Request, RequestError> ParseRequest(std::string_view body);

// An instance with the path it came with (empty for GetInstance).
struct NamedInstance {
  ObjectPath path;
  Instance instance;
};

// A response, as a client reads it.
struct Response {
  bool error = false;  // an <ERROR>: cim_status and description say why
  int cim_status = 0;
  std::string description;
  // Intrinsic: the instances, or the paths of the *Names operations.
  std::vector<NamedInstance> instances;
  std::vector<ObjectPath> paths;
  // Extrinsic: ReturnValue and out-parameters.
  uint32_t return_value = 0;
  std::vector<Param> out;

  const Param* Out(std::string_view name) const;
};

// InvalidArgument when `body` is not a CIM-XML response.
Result<Response> ParseResponse(std::string_view body);

// An embedded instance (e.g. SnapshotSettings): an XML <INSTANCE> document.
// InvalidArgument with the reason when it is not one.
Result<Instance> ParseEmbeddedInstance(std::string_view xml);

// The CIMObject header: percent-decoded, then "ns" or "ns:Class[.k=v,...]".
Result<ObjectPath> ParseCimObjectHeader(std::string_view header);

std::string PercentDecode(std::string_view s);

}  // namespace vmgroup::cim
