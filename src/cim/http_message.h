// HTTP/1.1 messages as the CIM-XML transport needs them: method, target,
// headers and a whole body, and who sent the request. Shared by the server,
// the client and the dispatcher; the wire format is libmicrohttpd's and
// libcurl's business.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vmgroup::cim {

using Headers = std::vector<std::pair<std::string, std::string>>;

// The value of header `name` (case-insensitive), or null.
const std::string* FindHeader(const Headers& headers, std::string_view name);

// What a peer may do: kAdmin everything, kReader the operations that only
// read (Dispatcher::IsRead), kNone nothing.
enum class Role { kNone, kReader, kAdmin };

// Who sent a request, as the listener established it: a user PAM accepted,
// the owner of a unix-socket peer (SO_PEERCRED), or an anonymous client a
// --insecure-loopback listener admits.
struct Peer {
  std::string name;  // "alice", "uid 1234"; for refusals and the log
  Role role = Role::kNone;
  // The groups that grant kAdmin and kReader (empty: none), for refusals
  // that tell a person what to ask for.
  std::string admin_group, reader_group;
};

struct HttpRequest {
  std::string method;  // "POST"
  std::string target;  // "/cimom"
  Headers headers;
  std::string body;
  Peer peer;  // set by the server; a default Peer may do nothing

  const std::string* Header(std::string_view name) const { return FindHeader(headers, name); }
};

struct HttpResponse {
  int status = 200;
  Headers headers;
  std::string body;

  const std::string* Header(std::string_view name) const { return FindHeader(headers, name); }
};

// A plain-text answer for a person, with a DSP0200 CIMError header when
// `cim_error` is not empty.
HttpResponse TextResponse(int status, const std::string& text, const std::string& cim_error = "");

}  // namespace vmgroup::cim
