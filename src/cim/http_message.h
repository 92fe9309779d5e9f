// HTTP/1.1 messages as the CIM-XML transport needs them: a request line,
// headers and a body framed by Content-Length (or chunked, when reading a
// response). Shared by the server, the client and the dispatcher.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vmgroup::cim {

using Headers = std::vector<std::pair<std::string, std::string>>;

// The value of header `name` (case-insensitive), or null.
const std::string* FindHeader(const Headers& headers, std::string_view name);

struct HttpRequest {
  std::string method;  // "POST"
  std::string target;  // "/cimom"
  Headers headers;
  std::string body;
  std::string peer_user;  // who authenticated, when the listener asks for it

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

// "OK", "Bad Request", ...: the reason phrase of a status code.
const char* ReasonPhrase(int status);

}  // namespace vmgroup::cim
