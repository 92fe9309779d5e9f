#include "cim/http_io.h"

#include <charconv>
#include <cstring>

#include "base/socket_io.h"
#include "cim/model.h"

namespace vmgroup::cim {
namespace {

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string_view::npos ? "" : std::string(s.substr(b, e - b + 1));
}

// Splits a head into its start line and its headers.
Result<std::string> ParseHeaders(const std::string& head, Headers* headers) {
  size_t eol = head.find("\r\n");
  std::string start = head.substr(0, eol);
  size_t pos = eol == std::string::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    size_t next = head.find("\r\n", pos);
    if (next == std::string::npos) next = head.size();
    std::string_view line(head.data() + pos, next - pos);
    pos = next + 2;
    if (line.empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Status::InvalidArgument("malformed header line: " + std::string(line.substr(0, 80)));
    }
    headers->emplace_back(Trim(line.substr(0, colon)), Trim(line.substr(colon + 1)));
  }
  return start;
}

}  // namespace

Status HttpConnection::Fill(Deadline deadline) { return ReadSome(fd_.get(), deadline, &buffer_); }

Result<std::string> HttpConnection::ReadHead(Deadline deadline, size_t max) {
  while (true) {
    // Stray empty lines before a request are allowed (RFC 9112 §2.2).
    while (buffer_.starts_with("\r\n")) buffer_.erase(0, 2);
    if (size_t end = buffer_.find("\r\n\r\n"); end != std::string::npos) {
      if (end > max) return Status::TooLarge("message head over " + std::to_string(max) + " bytes");
      std::string head = buffer_.substr(0, end + 2);
      buffer_.erase(0, end + 4);
      return head;
    }
    if (buffer_.size() > max) {
      return Status::TooLarge("message head over " + std::to_string(max) + " bytes");
    }
    const bool idle = buffer_.empty();
    Status s = Fill(deadline);
    if (!s.ok()) {
      if (!idle && s.code() == Code::kUnavailable) {
        return Status::InvalidArgument("the peer closed the connection mid-head");
      }
      return s;
    }
  }
}

Result<std::string> HttpConnection::ReadBody(size_t n, Deadline deadline) {
  while (buffer_.size() < n) {
    Status s = Fill(deadline);
    if (!s.ok()) {
      return s.code() == Code::kUnavailable
                 ? Status::InvalidArgument("the peer closed the connection mid-body")
                 : s;
    }
  }
  std::string body = buffer_.substr(0, n);
  buffer_.erase(0, n);
  return body;
}

Result<std::string> HttpConnection::ReadLine(Deadline deadline, size_t max) {
  while (true) {
    if (size_t eol = buffer_.find("\r\n"); eol != std::string::npos) {
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 2);
      return line;
    }
    if (buffer_.size() > max) return Status::TooLarge("line too long");
    VMG_RETURN_IF_ERROR(Fill(deadline));
  }
}

Result<std::string> HttpConnection::ReadChunked(Deadline deadline, size_t max) {
  std::string body;
  while (true) {
    VMG_ASSIGN_OR_RETURN(std::string line, ReadLine(deadline, 1024));
    size_t size = 0;
    auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), size, 16);
    if (ec != std::errc()) return Status::InvalidArgument("bad chunk size: " + line);
    (void)end;  // chunk extensions after the size are ignored
    if (size == 0) break;
    if (body.size() + size > max) return Status::TooLarge("body over " + std::to_string(max));
    VMG_ASSIGN_OR_RETURN(std::string chunk, ReadBody(size + 2, deadline));
    body.append(chunk, 0, size);
  }
  // Trailers (CIMStatusCode may travel here) up to the empty line; dropped.
  while (true) {
    VMG_ASSIGN_OR_RETURN(std::string line, ReadLine(deadline, 8192));
    if (line.empty()) break;
  }
  return body;
}

Status HttpConnection::Write(const std::string& data, Deadline deadline) {
  return WriteAll(fd_.get(), data, deadline);
}

Result<HttpRequest> ParseRequestHead(const std::string& head, std::string* version) {
  HttpRequest r;
  VMG_ASSIGN_OR_RETURN(std::string start, ParseHeaders(head, &r.headers));
  size_t sp1 = start.find(' ');
  size_t sp2 = start.find(' ', sp1 == std::string::npos ? sp1 : sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) {
    return Status::InvalidArgument("malformed request line: " + start.substr(0, 80));
  }
  r.method = start.substr(0, sp1);
  r.target = start.substr(sp1 + 1, sp2 - sp1 - 1);
  *version = start.substr(sp2 + 1);
  if (!version->starts_with("HTTP/1.")) {
    return Status::InvalidArgument("not an HTTP/1.x request: " + start.substr(0, 80));
  }
  return r;
}

Result<HttpResponse> ParseResponseHead(const std::string& head) {
  HttpResponse r;
  VMG_ASSIGN_OR_RETURN(std::string start, ParseHeaders(head, &r.headers));
  if (!start.starts_with("HTTP/1.") || start.size() < 12) {
    return Status::InvalidArgument("not an HTTP/1.x response: " + start.substr(0, 80));
  }
  auto [end, ec] = std::from_chars(start.data() + 9, start.data() + 12, r.status);
  if (ec != std::errc() || end != start.data() + 12) {
    return Status::InvalidArgument("bad status line: " + start.substr(0, 80));
  }
  return r;
}

Result<int64_t> ContentLength(const Headers& headers) {
  const std::string* v = FindHeader(headers, "Content-Length");
  if (!v) return int64_t{-1};
  int64_t n = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || end != v->data() + v->size() || n < 0) {
    return Status::InvalidArgument("bad Content-Length: " + *v);
  }
  return n;
}

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string Base64Encode(std::string_view in) {
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v =
        (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kB64[(v >> s) & 63];
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (rest == 2) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += rest == 2 ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const char* p = std::strchr(kB64, c);
    if (!p || c == '\0') return Status::InvalidArgument("not base64");
    acc = (acc << 6) | static_cast<uint32_t>(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace vmgroup::cim
