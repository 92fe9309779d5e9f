// Writing CIM-XML responses (DSP0200/DSP0201). Every text and attribute
// value is escaped; elements are written in the order the DTD requires.
// Each fragment has an Append form, which writes it at the end of a buffer
// the caller owns, so that a whole answer of thousands of instances is one
// buffer with no string per element; the string forms are for one fragment.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cim/model.h"

namespace vmgroup::cim {

std::string XmlEscape(std::string_view s);
void AppendEscaped(std::string* out, std::string_view s);

// Fragments, to compose IRETURNVALUE contents. A path is an INSTANCEPATH
// when it has a host, a LOCALINSTANCEPATH when it has only a namespace, an
// INSTANCENAME otherwise.
void AppendInstanceNameXml(std::string* out, const ObjectPath& p);
void AppendPathXml(std::string* out, const ObjectPath& p);
void AppendInstanceXml(std::string* out, const Instance& inst);
void AppendValueNamedInstanceXml(std::string* out, const ObjectPath& p,
                                 const Instance& inst);  // EnumerateInstances
void AppendObjectWithPathXml(std::string* out, const ObjectPath& p,
                             const Instance& inst);               // Associators, References
void AppendObjectPathXml(std::string* out, const ObjectPath& p);  // AssociatorNames, ReferenceNames

std::string InstanceNameXml(const ObjectPath& p);
std::string PathXml(const ObjectPath& p);
std::string InstanceXml(const Instance& inst);
std::string ValueNamedInstanceXml(const ObjectPath& p, const Instance& inst);

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

// Whole response documents. An IMETHODRESPONSE is also written in one
// buffer: IMethodResponseHead, the content appended to it, then
// AppendIMethodResponseTail; IMethodResponse does so with `content`.
std::string IMethodResponseHead(std::string_view message_id, std::string_view method);
void AppendIMethodResponseTail(std::string* out);
std::string IMethodResponse(std::string_view message_id, std::string_view method,
                            std::string_view ireturnvalue_content);
std::string MethodResponse(std::string_view message_id, std::string_view method,
                           uint32_t return_value, const std::vector<OutParam>& out);
// A CIM error (HTTP 200 body), for intrinsic or extrinsic calls.
std::string ErrorResponse(std::string_view message_id, std::string_view method, bool intrinsic,
                          int cim_status, std::string_view description);

}  // namespace vmgroup::cim
