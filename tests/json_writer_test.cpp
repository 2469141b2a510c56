#define BOOST_TEST_MODULE json_writer
#include <boost/test/unit_test.hpp>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>

#include <sstream>
#include <string>

#include "body_decoder.h"
#include "json_writer.h"
#include "test_support.h"

using b24es::condensedJson;

namespace {

std::string pocoCondensed(const Poco::Dynamic::Var& value) {
  std::ostringstream out;
  Poco::JSON::Stringifier::condense(value, out);
  return out.str();
}

Poco::JSON::Object::Ptr decodedSample(const std::string& name) {
  const std::string body = b24es::test::sample(name);
  const b24es::DecodedBody decoded = name.size() > 5 && name.substr(name.size() - 5) == ".json"
                                         ? b24es::decodeJsonBody(body, {})
                                         : b24es::decodeFormBody(body, {});
  BOOST_REQUIRE(decoded.root);
  return decoded.root;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_sample_is_written_exactly_as_poco_writes_it) {
  for (const char* name :
       {"01-ONAPPINSTALL.form", "03-ONCRMDEALADD.form", "06-ONCRMCONTACTADD.form",
        "09-ONCRMTIMELINECOMMENTADD.form", "12-ONCRMDYNAMICITEMADD.form",
        "21-ONCRMDEALUPDATE-notokens.form", "32-ONAPPUNINSTALL.form", "40-ONAPPINSTALL.json",
        "41-ONCRMDEALADD.json"}) {
    BOOST_TEST_CONTEXT(name) {
      const Poco::JSON::Object::Ptr root = decodedSample(name);
      BOOST_TEST(condensedJson(root) == pocoCondensed(root));
    }
  }
}

BOOST_AUTO_TEST_CASE(scalars_escapes_and_empty_containers_are_written_as_poco_writes_them) {
  const std::string body =
      R"({"s":"q\"b\\s\/c\u0001\n\t\u00e9\ud83d\ude00","i":-42,"u":18446744073709551615,)"
      R"("d":1.5e300,"t":true,"f":false,"n":null,"e":{},"a":[],"m":[[1,{"x":[null]}],"z"]})";
  const b24es::DecodedBody decoded = b24es::decodeJsonBody(body, {});
  BOOST_REQUIRE(decoded.root);
  BOOST_TEST(condensedJson(decoded.root) == pocoCondensed(decoded.root));
}

BOOST_AUTO_TEST_CASE(objects_without_preserved_order_are_written_sorted_as_poco_does) {
  Poco::JSON::Object::Ptr sorted = new Poco::JSON::Object();
  sorted->set("b", 1);
  sorted->set("a", std::string("x"));
  Poco::JSON::Array::Ptr list = new Poco::JSON::Array();
  list->add(sorted);
  list->add(Poco::Dynamic::Var());
  BOOST_TEST(condensedJson(list) == R"([{"a":"x","b":1},null])");
  BOOST_TEST(condensedJson(list) == pocoCondensed(list));
  BOOST_TEST(condensedJson(std::string("plain")) == "\"plain\"");
}

BOOST_AUTO_TEST_CASE(object_with_10000_keys_keeps_insertion_order) {
  // The linear writer exists for this size (Poco's is quadratic in keys, json_writer.h);
  // decode_bench measures the time, this checks the output at that size.
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
  BOOST_TEST(condensedJson(decoded.root) == expected);
}
