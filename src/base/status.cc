#include "base/status.h"

namespace vmgroup {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      return "InvalidArgument";
    case Code::kNotFound:
      return "NotFound";
    case Code::kFileNotFound:
      return "FileNotFound";
    case Code::kAlreadyExists:
      return "AlreadyExists";
    case Code::kInvalidState:
      return "InvalidState";
    case Code::kInvalidType:
      return "InvalidType";
    case Code::kBusy:
      return "Busy";
    case Code::kNotSupported:
      return "NotSupported";
    case Code::kTimeout:
      return "Timeout";
    case Code::kUnavailable:
      return "Unavailable";
    case Code::kFailed:
      return "Failed";
    case Code::kIoError:
      return "IoError";
    case Code::kTooLarge:
      return "TooLarge";
    case Code::kCancelled:
      return "Cancelled";
    case Code::kInternal:
      return "Internal";
  }
  return "Unknown";
}

Status Status::Annotate(std::string_view context) const {
  if (ok()) return *this;
  return {code_, std::string(context) + ": " + message_};
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code_)) + ": " + message_;
}

}  // namespace vmgroup
