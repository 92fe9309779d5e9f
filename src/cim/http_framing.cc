#include "cim/http_framing.h"

#include <cctype>
#include <string_view>
#include <vector>

#include "cim/model.h"

namespace vmgroup::cim {
namespace {

// RFC 9110 §5.6.2: tchar.
bool IsTokenChar(unsigned char c) {
  return std::isalnum(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The codings of every Transfer-Encoding line, in order, without empty
// list elements.
std::vector<std::string_view> Codings(const Headers& headers) {
  std::vector<std::string_view> out;
  for (const auto& [name, value] : headers) {
    if (!NameEquals(name, "Transfer-Encoding")) continue;
    std::string_view rest = value;
    while (true) {
      const size_t comma = rest.find(',');
      std::string_view item = Trim(rest.substr(0, comma));
      if (!item.empty()) out.push_back(item);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return out;
}

FramingError Refuse(int status, std::string reason) { return {status, std::move(reason)}; }

}  // namespace

std::variant<BodyFraming, FramingError> CheckFraming(const Headers& headers,
                                                     const std::string& version,
                                                     uint64_t max_body) {
  int lengths = 0, encodings = 0;
  const std::string* length = nullptr;
  for (const auto& [name, value] : headers) {
    if (!IsToken(name)) {
      return Refuse(400, "header field name '" + name.substr(0, 64) +
                             "' is not a token (whitespace before the colon?)");
    }
    if (NameEquals(name, "Content-Length")) {
      ++lengths;
      length = &value;
    }
    if (NameEquals(name, "Transfer-Encoding")) ++encodings;
  }
  if (encodings > 0) {
    if (version == "HTTP/1.0") {
      return Refuse(400, "Transfer-Encoding is not defined for HTTP/1.0 requests");
    }
    if (lengths > 0) {
      return Refuse(400, "Transfer-Encoding and Content-Length together are refused");
    }
    const std::vector<std::string_view> codings = Codings(headers);
    if (codings.empty()) return Refuse(400, "Transfer-Encoding names no transfer coding");
    if (!NameEquals(codings.back(), "chunked")) {
      return Refuse(400, "chunked must be the final transfer coding; got '" +
                             std::string(codings.back()) + "'");
    }
    for (size_t i = 0; i + 1 < codings.size(); ++i) {
      if (NameEquals(codings[i], "chunked")) {
        return Refuse(400, "chunked may be applied only once");
      }
      return Refuse(501, "transfer coding '" + std::string(codings[i]) +
                             "' is not implemented; only chunked is accepted");
    }
    return BodyFraming{BodyFraming::Kind::kChunked, 0};
  }
  if (lengths == 0) return BodyFraming{};
  if (lengths > 1) return Refuse(400, "more than one Content-Length");
  const std::string_view digits = Trim(*length);
  if (digits.empty()) return Refuse(400, "Content-Length is empty");
  for (unsigned char c : digits) {
    if (!std::isdigit(c)) return Refuse(400, "Content-Length is not a decimal number");
  }
  uint64_t n = 0;
  for (unsigned char c : digits) {
    const uint64_t digit = c - '0';
    if (n > max_body / 10 || n * 10 + digit > max_body) {
      return Refuse(413,
                    "the request body is over the limit of " + std::to_string(max_body) + " bytes");
    }
    n = n * 10 + digit;
  }
  return BodyFraming{BodyFraming::Kind::kLength, n};
}

}  // namespace vmgroup::cim
