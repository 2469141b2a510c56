// Event data as sent, end to end on the suite's backend (event_data_test on SQLite,
// event_data_test_pg on PostgreSQL; tests/test_backend.h): SPEC §4 stores a verified event
// whatever its content, and §5 and §5.1 serve its data as decoded. A form value with %00 is
// the case that matters: PostgreSQL's jsonb cannot hold \u0000, so that backend keeps such data
// in a json column beside it (migrations/postgresql/0005_data_with_nul.sql). The real service
// in-process on port 0, real HTTP clients; the stream is read with POCO's client until its
// first event (bounded by a socket timeout that only ends a hung test).
#define BOOST_TEST_MODULE event_data
#include <boost/test/unit_test.hpp>

#include "test_backend.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/URI.h>

#include <istream>
#include <string>

#include "service.h"
#include "test_support.h"

using namespace b24es;

namespace {

const std::string kPath = "/bitrix24/events";
// The deal of sample 03 with two more fields: NAME holds a NUL (%00), PATH a backslash and then
// the text u0000 (which is not a NUL: the encoder writes it as \\u0000).
const std::string kNulFields =
    "&data%5BFIELDS%5D%5BNAME%5D=a%00b&data%5BFIELDS%5D%5BPATH%5D=C%3A%5Cu0000";
// The data as the encoder writes it, and so as both backends must serve it, byte for byte.
const std::string kNulData = R"({"FIELDS":{"ID":"7405","NAME":"a\u0000b","PATH":"C:\\u0000"}})";

// The `data:` line of the first event the stream sends after `afterId`.
std::string firstStreamedEvent(const std::string& queryUrl, std::int64_t afterId) {
  Poco::URI uri(queryUrl);
  Poco::Net::HTTPClientSession session(uri.getHost(), uri.getPort());
  session.setTimeout(Poco::Timespan(20, 0));  // only ends a hung test
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET,
                                 "/api/v1/events/stream?after_id=" + std::to_string(afterId),
                                 Poco::Net::HTTPMessage::HTTP_1_1);
  session.sendRequest(request);
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  BOOST_REQUIRE_EQUAL(static_cast<int>(response.getStatus()), 200);
  std::string line;
  // Bounded: the stored events after afterId come first, so the first data line is there.
  for (int i = 0; i < 100 && std::getline(in, line); ++i) {
    if (line.rfind("data: ", 0) == 0) return line.substr(6);
  }
  return {};
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_event_whose_data_holds_a_nul_is_stored_and_served_exactly) {
  test::TempDir dir;
  test::FakeClock clock;
  Settings settings = test::testSettings(dir);
  Service service(settings, clock);
  service.start();
  BOOST_REQUIRE_EQUAL(
      test::postForm(service.ingestUrl(), kPath, test::sample("01-ONAPPINSTALL.form")).status, 200);
  test::HttpResult stored =
      test::postForm(service.ingestUrl(), kPath, test::sample("03-ONCRMDEALADD.form") + kNulFields);
  BOOST_REQUIRE_EQUAL(stored.status, 200);
  BOOST_TEST(stored.json()->getValue<std::string>("status") == "stored");
  const auto id = stored.json()->getValue<std::int64_t>("id");

  // GET /api/v1/events/{id}: the data as sent, and as a JSON value, NAME with its NUL.
  test::HttpResult one = test::httpGet(service.queryUrl(), "/api/v1/events/" + std::to_string(id));
  BOOST_REQUIRE_EQUAL(one.status, 200);
  BOOST_TEST(one.body.find(",\"data\":" + kNulData) != std::string::npos, one.body);
  Poco::JSON::Object::Ptr fields = one.json()->getObject("data")->getObject("FIELDS");
  BOOST_TEST(fields->getValue<std::string>("NAME") == std::string("a\0b", 3));
  BOOST_TEST(fields->getValue<std::string>("PATH") == "C:\\u0000");
  BOOST_TEST(one.json()->getValue<std::int64_t>("entity_id") == 7405);

  // A page filtered by the entity, and the stream from before it.
  test::HttpResult page = test::httpGet(service.queryUrl(), "/api/v1/events?entity_id=7405");
  BOOST_REQUIRE_EQUAL(page.status, 200);
  BOOST_TEST(page.body.find(",\"data\":" + kNulData) != std::string::npos, page.body);
  const std::string streamed = firstStreamedEvent(service.queryUrl(), id - 1);
  BOOST_TEST(streamed.find("{\"id\":" + std::to_string(id) + ",") == 0u, streamed);
  BOOST_TEST(streamed.find(",\"data\":" + kNulData) != std::string::npos, streamed);

  // Counted like any stored event.
  test::HttpResult stats = test::httpGet(service.queryUrl(), "/api/v1/stats");
  BOOST_TEST(stats.json()->getValue<std::int64_t>("total") == 2);
  service.stop();
}
