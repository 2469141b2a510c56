// jsonbCompatible (storage/postgresql/pg_json_text.h): which event data the PostgreSQL writer
// must keep in data_json because jsonb cannot hold it, and what data then holds. Pure; no
// server needed. The round trip through a real PostgreSQL is storage_contract_test's
// (event_data_with_nul_*).
#define BOOST_TEST_MODULE pg_json_text
#include <boost/test/unit_test.hpp>

#include <optional>
#include <string>

#include "pg_json_text.h"

using b24es::pg::jsonbCompatible;

namespace {

// The text as written here, with `|` standing for one backslash, so that the cases read as
// the JSON they are (R"()" would do too, but backslash counts are what these cases are about).
std::string j(std::string text) {
  for (char& c : text) {
    if (c == '|') c = '\\';
  }
  return text;
}

std::string shown(const std::optional<std::string>& v) { return v ? *v : "(nullopt)"; }

}  // namespace

BOOST_AUTO_TEST_CASE(text_without_a_nul_escape_is_left_to_jsonb) {
  for (const std::string& text :
       {std::string(), j("{}"), j(R"({"a":"b"})"), j(R"({"a":"|u0001|n|t|"|/"})"),
        j(R"({"a":"u0000"})"), j(R"({"a":"|uFFFD"})")}) {
    BOOST_TEST_CONTEXT(text) { BOOST_TEST(shown(jsonbCompatible(text)) == "(nullopt)"); }
  }
}

BOOST_AUTO_TEST_CASE(a_nul_escape_becomes_the_replacement_character) {
  BOOST_TEST(shown(jsonbCompatible(j(R"({"NAME":"a|u0000b"})"))) == j(R"({"NAME":"a|ufffdb"})"));
  // At the very start and end of a string, and followed by a digit (four hex digits only).
  BOOST_TEST(shown(jsonbCompatible(j(R"(["|u0000","x|u0000","|u00000"])"))) ==
             j(R"(["|ufffd","x|ufffd","|ufffd0"])"));
}

BOOST_AUTO_TEST_CASE(every_nul_escape_is_replaced_in_keys_and_values) {
  BOOST_TEST(shown(jsonbCompatible(j(R"({"k|u0000":"|u0000|u0000","n":{"m":["|u0000"]}})"))) ==
             j(R"({"k|ufffd":"|ufffd|ufffd","n":{"m":["|ufffd"]}})"));
}

BOOST_AUTO_TEST_CASE(an_escaped_backslash_before_u0000_is_not_a_nul) {
  // Two backslashes: an escaped backslash, then the text u0000.
  BOOST_TEST(shown(jsonbCompatible(j(R"({"p":"C:||u0000"})"))) == "(nullopt)");
  // Four: two escaped backslashes. Three and five: escaped backslashes, then a NUL.
  BOOST_TEST(shown(jsonbCompatible(j(R"({"p":"||||u0000"})"))) == "(nullopt)");
  BOOST_TEST(shown(jsonbCompatible(j(R"({"p":"|||u0000"})"))) == j(R"({"p":"|||ufffd"})"));
  BOOST_TEST(shown(jsonbCompatible(j(R"({"p":"|||||u0000"})"))) == j(R"({"p":"|||||ufffd"})"));
  // An escaped quote or a NUL does not shift what follows.
  BOOST_TEST(shown(jsonbCompatible(j(R"({"p":"|"|u0000|"||u0000"})"))) ==
             j(R"({"p":"|"|ufffd|"||u0000"})"));
}

BOOST_AUTO_TEST_CASE(only_the_escape_u0000_counts_not_its_neighbours) {
  for (const std::string& text : {j(R"("|u0001")"), j(R"("|u1000")"), j(R"("|u000a")"),
                                  j(R"("|U0000")"), j(R"("|x0000")"), j(R"("|0000")")}) {
    BOOST_TEST_CONTEXT(text) { BOOST_TEST(shown(jsonbCompatible(text)) == "(nullopt)"); }
  }
}

BOOST_AUTO_TEST_CASE(malformed_text_is_scanned_to_its_end_and_left_as_it_is) {
  // A lone backslash at the end, an escape cut short, a NUL escape that is the whole text.
  for (const std::string& text : {j("|"), j(R"("a|)"), j(R"("|u000)"), j("|u00"), j("||")}) {
    BOOST_TEST_CONTEXT(text) { BOOST_TEST(shown(jsonbCompatible(text)) == "(nullopt)"); }
  }
  BOOST_TEST(shown(jsonbCompatible(j("|u0000"))) == j("|ufffd"));
  BOOST_TEST(shown(jsonbCompatible(j("x|u0000"))) == j("x|ufffd"));
}

BOOST_AUTO_TEST_CASE(a_raw_nul_byte_is_not_an_escape) {
  // Our encoder never writes one (body_value.cpp escapes every control character); should one
  // come, it is left to PostgreSQL, which refuses it in any text value.
  const std::string text("\"a\0b\"", 5);
  BOOST_TEST(shown(jsonbCompatible(text)) == "(nullopt)");
}
