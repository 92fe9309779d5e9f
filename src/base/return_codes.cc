#include "base/return_codes.h"

namespace vmgroup {

uint32_t ReturnCodeA(const Status& s) {
  switch (s.code()) {
    case Code::kOk:
      return kRcCompleted;
    case Code::kNotSupported:
      return kRcNotSupported;
    case Code::kTimeout:
      return kRcTimeout;
    // An unknown object named by a parameter is a bad parameter to the caller.
    case Code::kInvalidArgument:
    case Code::kTooLarge:
    case Code::kNotFound:
    case Code::kFileNotFound:
    case Code::kAlreadyExists:
      return kRcInvalidParameter;
    case Code::kInvalidState:
    case Code::kBusy:
      return kRcInvalidState;
    case Code::kInvalidType:
      return kRcInvalidType;
    case Code::kUnavailable:
    case Code::kFailed:
    case Code::kCancelled:
    case Code::kIoError:
    case Code::kInternal:
      return kRcFailed;
  }
  return kRcFailed;
}

Status StatusOfReturnCodeA(uint32_t code, const std::string& why) {
  switch (code) {
    case kRcNotSupported:
      return Status::NotSupported(why);
    case kRcTimeout:
      return Status::Timeout(why);
    case kRcInvalidParameter:
      return Status::InvalidArgument(why);
    case kRcInvalidState:
      return Status::InvalidState(why);
    case kRcInvalidType:
      return Status::InvalidType(why);
  }
  return Status::Failed(why);
}

Status StatusOfReturnCodeB(uint32_t code, const std::string& why) {
  switch (code) {
    case kRcBAccessDenied:
      return Status::Failed("access denied: " + why);
    case kRcBNotSupported:
      return Status::NotSupported(why);
    case kRcBTimeout:
      return Status::Timeout(why);
    case kRcBInvalidParameter:
      return Status::InvalidArgument(why);
    case kRcBSystemInUse:
      return Status::Busy(why);
    case kRcBInvalidState:
      return Status::InvalidState(why);
    case kRcBIncorrectType:
      return Status::InvalidType(why);
    case kRcBNotAvailable:
      return Status::Unavailable(why);
    case kRcBFileNotFound:
      return Status::FileNotFound(why);
  }
  return Status::Failed(why);
}

uint32_t ReturnCodeB(const Status& s) {
  switch (s.code()) {
    case Code::kOk:
      return kRcCompleted;
    case Code::kNotSupported:
      return kRcBNotSupported;
    case Code::kTimeout:
      return kRcBTimeout;
    case Code::kInvalidArgument:
    case Code::kTooLarge:
    case Code::kNotFound:
    case Code::kAlreadyExists:
      return kRcBInvalidParameter;
    case Code::kFileNotFound:
      return kRcBFileNotFound;
    case Code::kInvalidState:
      return kRcBInvalidState;
    case Code::kInvalidType:
      return kRcBIncorrectType;
    case Code::kBusy:
      return kRcBSystemInUse;
    case Code::kUnavailable:
      return kRcBNotAvailable;
    case Code::kFailed:
    case Code::kCancelled:
    case Code::kIoError:
    case Code::kInternal:
      return kRcBFailed;
  }
  return kRcBFailed;
}

}  // namespace vmgroup
