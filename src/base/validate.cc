#include "base/validate.h"

#include <charconv>

namespace vmgroup {
namespace {

// The code point starting at text[*i], advancing *i past it; -1 when the
// bytes there are not well-formed UTF-8 (RFC 3629).
int32_t NextCodePoint(std::string_view text, size_t* i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t b0 = byte(*i);
  if (b0 < 0x80) {
    ++*i;
    return b0;
  }
  int extra = 0;
  int32_t cp = 0, min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    extra = 1, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    extra = 2, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    extra = 3, cp = b0 & 0x07, min = 0x10000;
  } else {
    return -1;
  }
  if (text.size() - *i <= static_cast<size_t>(extra)) return -1;  // cut short
  for (int k = 1; k <= extra; ++k) {
    const uint8_t b = byte(*i + static_cast<size_t>(k));
    if ((b & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  *i += static_cast<size_t>(extra) + 1;
  return cp;
}

bool IsControl(int32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

std::string Quoted(std::string_view text) {
  constexpr size_t kShown = 80;
  std::string p = Printable(text.substr(0, kShown));
  return "'" + p + (text.size() > kShown ? "...'" : "'");
}

// Valid UTF-8 without control characters, at most `max` bytes.
Status CheckCharacters(std::string_view what, std::string_view text, size_t max) {
  if (text.size() > max) {
    return Status::InvalidArgument(std::string(what) + " is " + std::to_string(text.size()) +
                                   " bytes long; at most " + std::to_string(max) + " are allowed");
  }
  for (size_t i = 0; i < text.size();) {
    const int32_t cp = NextCodePoint(text, &i);
    if (cp < 0) {
      return Status::InvalidArgument(std::string(what) + " " + Quoted(text) +
                                     " is not valid UTF-8");
    }
    if (IsControl(cp)) {
      return Status::InvalidArgument(std::string(what) + " " + Quoted(text) +
                                     " holds a control character (newline, tab, escape...), "
                                     "which is not allowed");
    }
  }
  return Status::Ok();
}

}  // namespace

bool IsValidUtf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    if (NextCodePoint(text, &i) < 0) return false;
  }
  return true;
}

std::string ToValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    if (NextCodePoint(text, &i) < 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      ++i;
      continue;
    }
    out.append(text.substr(start, i - start));
  }
  return out;
}

Status CheckName(std::string_view what, std::string_view name, size_t max_bytes) {
  if (name.empty()) return Status::InvalidArgument(std::string(what) + " must not be empty");
  VMG_RETURN_IF_ERROR(CheckCharacters(what, name, max_bytes));
  if (name.front() == ' ' || name.back() == ' ') {
    return Status::InvalidArgument(std::string(what) + " " + Quoted(name) +
                                   " starts or ends with a space");
  }
  return Status::Ok();
}

Status CheckText(std::string_view what, std::string_view text, size_t max_bytes) {
  return CheckCharacters(what, text, max_bytes);
}

Result<int64_t> ParseInt(std::string_view what, std::string_view text, int64_t min, int64_t max) {
  const auto range = [&] {
    return std::string(what) + " must be a whole number from " + std::to_string(min) + " to " +
           std::to_string(max);
  };
  int64_t v = 0;
  const char* end = text.data() + text.size();
  auto [stop, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec == std::errc::invalid_argument || stop != end) {
    return Status::InvalidArgument(range() + ", not " + Quoted(text));
  }
  if (ec == std::errc::result_out_of_range || v < min || v > max) {
    return Status::InvalidArgument(range() + "; " + Quoted(text) + " is out of range");
  }
  return v;
}

Result<uint64_t> ParseSize(std::string_view what, std::string_view text, uint64_t min,
                           uint64_t max) {
  const auto bounds = [&] {
    return std::string(what) + " must be a size from " + std::to_string(min) + " to " +
           std::to_string(max) + " bytes, written as bytes or with K, M, G or T (e.g. 8G)";
  };
  uint64_t n = 0;
  const char* end = text.data() + text.size();
  auto [stop, ec] = std::from_chars(text.data(), end, n);
  if (text.empty() || ec == std::errc::invalid_argument || stop == text.data()) {
    return Status::InvalidArgument(bounds() + ", not " + Quoted(text));
  }
  const std::string_view unit(stop, static_cast<size_t>(end - stop));
  int shift = -1;
  if (unit.empty() || unit == "B") shift = 0;
  if (unit == "K" || unit == "KiB") shift = 10;
  if (unit == "M" || unit == "MiB") shift = 20;
  if (unit == "G" || unit == "GiB") shift = 30;
  if (unit == "T" || unit == "TiB") shift = 40;
  if (shift < 0) return Status::InvalidArgument(bounds() + ", not " + Quoted(text));
  if (ec == std::errc::result_out_of_range || n > (max >> shift)) {
    return Status::InvalidArgument(bounds() + "; " + Quoted(text) + " is out of range");
  }
  const uint64_t bytes = n << shift;
  if (bytes < min || bytes > max) {
    return Status::InvalidArgument(bounds() + "; " + Quoted(text) + " is out of range");
  }
  return bytes;
}

std::string Printable(std::string_view text, bool ascii_only) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < text.size();) {
    size_t next = i;
    const int32_t cp = NextCodePoint(text, &next);
    const bool plain = cp >= 0 && !IsControl(cp) && !(ascii_only && cp >= 0x80);
    if (plain) {
      out.append(text.substr(i, next - i));
      i = next;
      continue;
    }
    const auto b = static_cast<uint8_t>(text[i]);
    out += "\\x";
    out += kHex[b >> 4];
    out += kHex[b & 15];
    ++i;
  }
  return out;
}

}  // namespace vmgroup
