// How a request's head frames its body, checked as RFC 9112 requires of a
// server, before a byte of the body is read. libmicrohttpd parses the head
// and reads the body; it is lenient where a server that guards root must
// not be (any Transfer-Encoding counts as a body of unknown length, the
// first of several Content-Length headers wins, Transfer-Encoding beside
// Content-Length is taken), so the server runs this on every head first.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "cim/http_message.h"

namespace vmgroup::cim {

struct BodyFraming {
  enum class Kind { kNone, kLength, kChunked };
  Kind kind = Kind::kNone;
  uint64_t length = 0;  // for kLength
};

// Why a head is refused: the HTTP status and a reason for a person.
struct FramingError {
  int status = 400;
  std::string reason;
};

// The framing `headers` declare, for a request of HTTP version `version`
// ("HTTP/1.1"). Refused:
// - a header field name that is not a token (whitespace before the colon
//   would hide "Transfer-Encoding " from the framing): 400;
// - Transfer-Encoding on an HTTP/1.0 request, Transfer-Encoding together
//   with Content-Length, more than one Content-Length, a Content-Length that
//   is not a plain decimal number, `chunked` twice or not last: 400;
// - any transfer coding but `chunked` before it (gzip, chunked): 501;
// - a Content-Length over `max_body`: 413.
std::variant<BodyFraming, FramingError> CheckFraming(const Headers& headers,
                                                     const std::string& version, uint64_t max_body);

}  // namespace vmgroup::cim
