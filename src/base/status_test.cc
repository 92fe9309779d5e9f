#include "base/status.h"

#include <gtest/gtest.h>

#include "base/result.h"
#include "base/return_codes.h"

namespace vmgroup {
namespace {

TEST(StatusTest, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, AnnotateKeepsCodeAndPrefixesMessage) {
  Status s = Status::Unavailable("QMP closed").Annotate("member db1");
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(s.message(), "member db1: QMP closed");
  EXPECT_EQ(s.ToString(), "Unavailable: member db1: QMP closed");
  EXPECT_TRUE(Status::Ok().Annotate("x").ok());
}

Result<int> Half(int x) {
  if (x % 2) return Status::InvalidArgument("odd");
  return x / 2;
}

Status Quarter(int x, int* out) {
  VMG_ASSIGN_OR_RETURN(int h, Half(x));
  VMG_ASSIGN_OR_RETURN(*out, Half(h));
  return Status::Ok();
}

TEST(ResultTest, PropagatesErrors) {
  int q = 0;
  EXPECT_TRUE(Quarter(8, &q).ok());
  EXPECT_EQ(q, 2);
  Status s = Quarter(6, &q);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "odd");
}

TEST(ReturnCodesTest, FamiliesFollowTheReference) {
  EXPECT_EQ(ReturnCodeA(Status::Ok()), 0u);
  EXPECT_EQ(ReturnCodeA(Status::InvalidArgument("x")), 4u);
  EXPECT_EQ(ReturnCodeA(Status::InvalidState("x")), 5u);
  EXPECT_EQ(ReturnCodeA(Status::Timeout("x")), 3u);
  EXPECT_EQ(ReturnCodeA(Status::InvalidType("x")), 6u);
  EXPECT_EQ(ReturnCodeB(Status::InvalidType("x")), 32776u);
  EXPECT_EQ(ReturnCodeB(Status::InvalidArgument("x")), 32773u);
  EXPECT_EQ(ReturnCodeB(Status::AlreadyExists("x")), 32773u);
  EXPECT_EQ(ReturnCodeB(Status::InvalidState("x")), 32775u);
  EXPECT_EQ(ReturnCodeB(Status::FileNotFound("x")), 32779u);
  EXPECT_EQ(ReturnCodeB(Status::Internal("x")), 32768u);
}

// A client reads a family-A ReturnValue back into the Status a server
// answered it for: the code survives the round trip, the reason with it.
TEST(ReturnCodesTest, AFamilyACodeReadsBackAsTheStatusItStandsFor) {
  for (const Status& s :
       {Status::NotSupported("n"), Status::Timeout("t"), Status::InvalidArgument("a"),
        Status::InvalidState("s"), Status::InvalidType("y"), Status::Failed("f")}) {
    const Status back = StatusOfReturnCodeA(ReturnCodeA(s), s.message());
    EXPECT_EQ(back.code(), s.code()) << s.ToString();
    EXPECT_EQ(back.message(), s.message());
  }
  EXPECT_EQ(StatusOfReturnCodeA(ReturnCodeA(Status::Busy("b")), "b").code(), Code::kInvalidState);
}

// And a family-B one (the collection management service's).
TEST(ReturnCodesTest, AFamilyBCodeReadsBackAsTheStatusItStandsFor) {
  for (const Status& s :
       {Status::NotSupported("n"), Status::Timeout("t"), Status::InvalidArgument("a"),
        Status::Busy("b"), Status::InvalidState("s"), Status::InvalidType("y"),
        Status::Unavailable("u"), Status::FileNotFound("f"), Status::Failed("x")}) {
    const Status back = StatusOfReturnCodeB(ReturnCodeB(s), s.message());
    EXPECT_EQ(back.code(), s.code()) << s.ToString();
    EXPECT_EQ(back.message(), s.message());
  }
  EXPECT_EQ(StatusOfReturnCodeB(ReturnCodeB(Status::NotFound("g")), "g").code(),
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace vmgroup
