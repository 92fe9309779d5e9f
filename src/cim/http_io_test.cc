#include "cim/http_io.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "cim/http_server.h"

namespace vmgroup::cim {
namespace {

TEST(HttpIoTest, Base64RoundTrips) {
  EXPECT_EQ(Base64Encode("user:secret"), "dXNlcjpzZWNyZXQ=");  // wbemcli's own header
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\xff\x00\x10 x"}) {
    EXPECT_EQ(*Base64Decode(Base64Encode(s)), s);
  }
  EXPECT_FALSE(Base64Decode("***").ok());
}

TEST(HttpIoTest, ParsesHeadsAndRefusesBrokenOnes) {
  std::string version;
  auto r = ParseRequestHead("POST /cimom HTTP/1.1\r\nCIMMethod:  GetClass \r\nX: y\r\n", &version);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->method, "POST");
  EXPECT_EQ(*r->Header("cimmethod"), "GetClass");
  EXPECT_EQ(version, "HTTP/1.1");
  EXPECT_FALSE(ParseRequestHead("garbage\r\n", &version).ok());
  EXPECT_FALSE(ParseRequestHead("POST / HTTP/1.1\r\nno colon here\r\n", &version).ok());
  EXPECT_FALSE(ContentLength({{"Content-Length", "12x"}}).ok());
  EXPECT_EQ(*ContentLength({}), -1);
}

// Raw bytes to a server, and what comes back before it closes or answers.
class RawServerTest : public ::testing::Test {
 protected:
  RawServerTest()
      : server_(
            [](const HttpRequest& r) {
              return HttpResponse{200, {}, "echo:" + r.body};
            },
            Small()) {
    port_ = *server_.ListenTcp("127.0.0.1", 0, nullptr);
    server_.Start();
  }
  static HttpServer::Options Small() {
    HttpServer::Options o;
    o.max_body_bytes = 1000;
    o.max_head_bytes = 2000;
    o.request_timeout = std::chrono::milliseconds(500);
    return o;
  }
  std::string Exchange(const std::string& bytes) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    HttpConnection c(std::move(fd));
    EXPECT_TRUE(c.Write(bytes, Clock::now() + std::chrono::seconds(2)).ok());
    auto head = c.ReadHead(Clock::now() + std::chrono::seconds(5), 10000);
    return head.ok() ? *head : head.status().ToString();
  }
  HttpServer server_;
  int port_ = 0;
};

TEST_F(RawServerTest, EveryBrokenRequestGetsAnAnswerAndTheServerGoesOn) {
  EXPECT_TRUE(
      Exchange("POST /cimom HTTP/1.1\r\nContent-Length: 5000\r\n\r\n").starts_with("HTTP/1.1 413"));
  EXPECT_TRUE(Exchange("POST /cimom HTTP/1.1\r\nX: " + std::string(3000, 'a') + "\r\n\r\n")
                  .starts_with("HTTP/1.1 431"));
  EXPECT_TRUE(Exchange("NONSENSE\r\n\r\n").starts_with("HTTP/1.1 400"));
  EXPECT_TRUE(
      Exchange("POST /cimom HTTP/1.1\r\nContent-Length: -3\r\n\r\n").starts_with("HTTP/1.1 400"));
  EXPECT_TRUE(Exchange("POST /elsewhere HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
                  .starts_with("HTTP/1.1 404"));
  // A body that never comes: the connection is dropped after the request timeout.
  EXPECT_NE(Exchange("POST /cimom HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc").find("closed"),
            std::string::npos);
  EXPECT_TRUE(Exchange("POST /cimom HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n0\r\n\r\n")
                  .starts_with("HTTP/1.1 200"));
  EXPECT_TRUE(
      Exchange("POST /cimom HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi").starts_with("HTTP/1.1 200"));
}

}  // namespace
}  // namespace vmgroup::cim
