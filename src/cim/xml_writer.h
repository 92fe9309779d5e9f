// Writing CIM-XML responses (DSP0200/DSP0201). Every text and attribute
// value is escaped; element content is built as strings, in the order the
// DTD requires.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cim/model.h"

namespace vmgroup::cim {

std::string XmlEscape(std::string_view s);

// Fragments, to compose IRETURNVALUE contents.
std::string InstanceNameXml(const ObjectPath& p);
// INSTANCEPATH when `p` has a host, LOCALINSTANCEPATH when it has only a
// namespace, INSTANCENAME otherwise.
std::string PathXml(const ObjectPath& p);
std::string InstanceXml(const Instance& inst);
std::string ValueNamedInstanceXml(const ObjectPath& p, const Instance& inst);  // EnumerateInstances
std::string ObjectWithPathXml(const ObjectPath& p,
                              const Instance& inst);  // Associators, References
std::string ObjectPathXml(const ObjectPath& p);       // AssociatorNames, ReferenceNames

// An out-parameter of an extrinsic method.
struct OutParam {
  std::string name;
  std::string paramtype;  // "reference", "string", "uint32", ...
  Value value;
};

// Whole request documents, as a client sends them. Intrinsic parameters
// are IPARAMVALUEs; a reference Value becomes the INSTANCENAME or CLASSNAME
// the operation expects.
std::string IMethodCall(std::string_view message_id, std::string_view method,
                        const std::vector<std::string>& ns, const std::vector<OutParam>& params);
std::string MethodCall(std::string_view message_id, const ObjectPath& target,
                       std::string_view method, const std::vector<OutParam>& params);

// Whole response documents.
std::string IMethodResponse(std::string_view message_id, std::string_view method,
                            std::string_view ireturnvalue_content);
std::string MethodResponse(std::string_view message_id, std::string_view method,
                           uint32_t return_value, const std::vector<OutParam>& out);
// A CIM error (HTTP 200 body), for intrinsic or extrinsic calls.
std::string ErrorResponse(std::string_view message_id, std::string_view method, bool intrinsic,
                          int cim_status, std::string_view description);

}  // namespace vmgroup::cim
