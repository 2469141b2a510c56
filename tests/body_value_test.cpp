// Unit tests of server/body_value.cpp: the stored data JSON reads exactly as Poco::JSON wrote it
// before the tree was our own (same escapes, number formats and key order), so rows written
// before and after the change look alike.
#define BOOST_TEST_MODULE body_value
#include <boost/test/unit_test.hpp>

#include <Poco/JSON/ParseHandler.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>

#include <sstream>
#include <string>

#include "body_decoder.h"
#include "body_value.h"
#include "test_support.h"

using b24es::BodyValue;
using b24es::toJson;

namespace {

// What Poco writes for a JSON document it parsed itself, keeping key order.
std::string pocoRewrite(const std::string& json) {
  Poco::JSON::Parser parser(new Poco::JSON::ParseHandler(true));
  std::ostringstream out;
  Poco::JSON::Stringifier::condense(parser.parse(json), out);
  return out.str();
}

BodyValue decodedSample(const std::string& name) {
  const std::string body = b24es::test::sample(name);
  b24es::DecodedBody decoded = name.size() > 5 && name.substr(name.size() - 5) == ".json"
                                   ? b24es::decodeJsonBody(body, {})
                                   : b24es::decodeFormBody(body, {});
  BOOST_REQUIRE(decoded.root);
  return std::move(*decoded.root);
}

}  // namespace

BOOST_AUTO_TEST_CASE(json_samples_are_written_exactly_as_poco_writes_them) {
  for (const char* name : {"40-ONAPPINSTALL.json", "41-ONCRMDEALADD.json"}) {
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(toJson(decodedSample(name)) == pocoRewrite(b24es::test::sample(name)));
    }
  }
}

BOOST_AUTO_TEST_CASE(form_samples_are_written_as_json_poco_writes_back_unchanged) {
  for (const char* name :
       {"01-ONAPPINSTALL.form", "03-ONCRMDEALADD.form", "06-ONCRMCONTACTADD.form",
        "09-ONCRMTIMELINECOMMENTADD.form", "12-ONCRMDYNAMICITEMADD.form",
        "21-ONCRMDEALUPDATE-notokens.form", "32-ONAPPUNINSTALL.form"}) {
    BOOST_TEST_CONTEXT(name) {
      const std::string json = toJson(decodedSample(name));
      BOOST_TEST(json == pocoRewrite(json));
    }
  }
}

BOOST_AUTO_TEST_CASE(scalars_escapes_and_empty_containers_are_written_as_poco_writes_them) {
  const std::string body =
      R"({"s":"q\"b\\s\/c\u0001\n\t\u00e9\ud83d\ude00\u007f","i":-42,"u":18446744073709551615,)"
      R"("d":1.5e300,"r":0.1,"x":1e21,"t":true,"f":false,"n":null,"e":{},"a":[],)"
      R"("m":[[1,{"x":[null]}],"z"],"0":"not an array"})";
  const b24es::DecodedBody decoded = b24es::decodeJsonBody(body, {});
  BOOST_REQUIRE(decoded.root);
  BOOST_TEST(toJson(*decoded.root) == pocoRewrite(body));
}

BOOST_AUTO_TEST_CASE(every_control_and_ascii_byte_is_escaped_as_poco_escapes_it) {
  for (int c = 1; c < 0x80; ++c) {
    const std::string text(1, static_cast<char>(c));
    std::ostringstream poco;
    Poco::JSON::Stringifier::formatString(text, poco, Poco::JSON_WRAP_STRINGS);
    std::string ours;
    b24es::appendJsonString(text, ours);
    BOOST_TEST(ours == poco.str(), "byte " << c);
  }
  std::string ours;
  b24es::appendJsonString(std::string("a\0b\xE2\x82\xAC", 6), ours);
  BOOST_TEST(ours == "\"a\\u0000b\xE2\x82\xAC\"");
}

BOOST_AUTO_TEST_CASE(object_with_10000_keys_keeps_insertion_order) {
  std::string body = "{";
  std::string expected = "{";
  for (int i = 9999; i >= 0; --i) {
    const std::string pair = "\"k" + std::to_string(i) + "\":" + std::to_string(i);
    body += pair + (i > 0 ? "," : "");
    expected += pair + (i > 0 ? "," : "");
  }
  body += "}";
  expected += "}";
  const b24es::DecodedBody decoded = b24es::decodeJsonBody(body, {});
  BOOST_REQUIRE(decoded.root);
  BOOST_TEST(toJson(*decoded.root) == expected);
}

BOOST_AUTO_TEST_CASE(a_later_duplicate_in_a_large_object_replaces_in_place) {
  // Past 32 keys the decoder finds duplicates through a hash index instead of a scan.
  std::string body = "{";
  for (int i = 0; i < 50; ++i) body += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  body += "\"k3\":\"again\",\"k49\":null}";
  const b24es::DecodedBody decoded = b24es::decodeJsonBody(body, {});
  BOOST_REQUIRE(decoded.root);
  BOOST_TEST(decoded.root->members.size() == 50u);
  BOOST_TEST(toJson(*decoded.root) == pocoRewrite(body));
  BOOST_TEST(decoded.root->find("k3")->text == "again");
}
