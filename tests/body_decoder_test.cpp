#define BOOST_TEST_MODULE body_decoder
#include <boost/test/unit_test.hpp>

#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "body_decoder.h"

using b24es::DecodedBody;
using b24es::decodeFormBody;
using b24es::decodeJsonBody;
using b24es::DecodeLimits;
using b24es::phpUrlDecode;
using b24es::sanitizeUtf8;

namespace {

const std::string kFffd = "\xEF\xBF\xBD";
constexpr std::size_t kMiB = 1024 * 1024;

std::string condensed(const std::optional<b24es::BodyValue>& root) {
  BOOST_REQUIRE(root && root->isObject());
  return b24es::toJson(*root);
}

std::string decodedForm(std::string_view body, const DecodeLimits& limits = {}) {
  const DecodedBody decoded = decodeFormBody(body, limits);
  BOOST_REQUIRE_MESSAGE(!decoded.error, "unexpected error " << decoded.error->code);
  BOOST_REQUIRE(decoded.root);
  return condensed(decoded.root);
}

std::string formErrorCode(std::string_view body, const DecodeLimits& limits = {}) {
  const DecodedBody decoded = decodeFormBody(body, limits);
  BOOST_REQUIRE(!decoded.root);
  BOOST_REQUIRE(decoded.error);
  BOOST_CHECK(!decoded.error->message.empty());
  return decoded.error->code;
}

std::string decodedJson(std::string_view body, const DecodeLimits& limits = {}) {
  const DecodedBody decoded = decodeJsonBody(body, limits);
  BOOST_REQUIRE_MESSAGE(!decoded.error, "unexpected error " << decoded.error->code);
  BOOST_REQUIRE(decoded.root);
  return condensed(decoded.root);
}

std::string jsonErrorCode(std::string_view body, const DecodeLimits& limits = {}) {
  const DecodedBody decoded = decodeJsonBody(body, limits);
  BOOST_REQUIRE(!decoded.root);
  BOOST_REQUIRE(decoded.error);
  BOOST_CHECK(!decoded.error->message.empty());
  return decoded.error->code;
}

std::string repeat(std::string_view unit, std::size_t times) {
  std::string out;
  out.reserve(unit.size() * times);
  for (std::size_t i = 0; i < times; ++i) out.append(unit);
  return out;
}

// "k0=v&k1=v&..." with `count` pairs.
std::string manyFormPairs(std::size_t count) {
  std::string out;
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) out.push_back('&');
    out += "k" + std::to_string(i) + "=v";
  }
  return out;
}

// {"k0":1,"k1":1,...} with `count` leaves.
std::string manyJsonLeaves(std::size_t count) {
  std::string out = "{";
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) out.push_back(',');
    out += "\"k" + std::to_string(i) + "\":1";
  }
  out.push_back('}');
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Real Bitrix24 shapes

BOOST_AUTO_TEST_CASE(real_bitrix24_form_body_decodes_to_nested_objects) {
  const std::string body =
      "event=ONCRMDYNAMICITEMADD&event_handler_id=194&data%5BFIELDS%5D%5BID%5D=22"
      "&data%5BFIELDS%5D%5BENTITY_TYPE_ID%5D=1220&ts=1767262740"
      "&auth%5Bdomain%5D=acme-test.bitrix24.com"
      "&auth%5Bmember_id%5D=7c1e5a93d2b84f06a9e3c5d71b2f8e40";
  BOOST_TEST(decodedForm(body) ==
             R"({"event":"ONCRMDYNAMICITEMADD","event_handler_id":"194",)"
             R"("data":{"FIELDS":{"ID":"22","ENTITY_TYPE_ID":"1220"}},"ts":"1767262740",)"
             R"("auth":{"domain":"acme-test.bitrix24.com",)"
             R"("member_id":"7c1e5a93d2b84f06a9e3c5d71b2f8e40"}})");
}

BOOST_AUTO_TEST_CASE(department_list_becomes_an_array) {
  BOOST_TEST(decodedForm("data[UF_DEPARTMENT][0]=1&data[UF_DEPARTMENT][1]=5") ==
             R"({"data":{"UF_DEPARTMENT":["1","5"]}})");
}

// ---------------------------------------------------------------------------------------------
// Key structure

BOOST_AUTO_TEST_CASE(brackets_nest_objects) {
  BOOST_TEST(decodedForm("a[b][c]=v&a[b][d]=w&a[e]=x") ==
             R"({"a":{"b":{"c":"v","d":"w"},"e":"x"}})");
}

BOOST_AUTO_TEST_CASE(empty_brackets_append_with_the_next_integer_index) {
  BOOST_TEST(decodedForm("a[]=x&a[]=y&a[]=z") == R"({"a":["x","y","z"]})");
}

BOOST_AUTO_TEST_CASE(append_continues_after_the_largest_explicit_integer_key) {
  BOOST_TEST(decodedForm("a[5]=x&a[]=y") == R"({"a":{"5":"x","6":"y"}})");
  BOOST_TEST(decodedForm("a[]=x&a[3]=y&a[]=z") == R"({"a":{"0":"x","3":"y","4":"z"}})");
  BOOST_TEST(decodedForm("a[]=x&a[1]=y&a[]=z") == R"({"a":["x","y","z"]})");
  BOOST_TEST(decodedForm("a[1]=x&a[]=y&a[0]=z") == R"({"a":{"1":"x","2":"y","0":"z"}})");
}

BOOST_AUTO_TEST_CASE(append_ignores_string_keys) {
  BOOST_TEST(decodedForm("a[k]=x&a[]=y&a[]=z") == R"({"a":{"k":"x","0":"y","1":"z"}})");
}

BOOST_AUTO_TEST_CASE(append_after_only_negative_keys_continues_from_the_largest) {
  BOOST_TEST(decodedForm("a[-3]=x&a[]=y") == R"({"a":{"-3":"x","-2":"y"}})");
}

BOOST_AUTO_TEST_CASE(append_past_the_largest_int64_key_is_dropped_like_php) {
  BOOST_TEST(decodedForm("a[9223372036854775807]=x&a[]=y&b=1") ==
             R"({"a":{"9223372036854775807":"x"},"b":"1"})");
}

BOOST_AUTO_TEST_CASE(space_inside_empty_brackets_still_appends) {
  BOOST_TEST(decodedForm("a[ ]=x&a[ ]=y") == R"({"a":["x","y"]})");
  BOOST_TEST(decodedForm("a[ b]=x") == R"({"a":{" b":"x"}})");
}

// Issue 12: PHP tests isspace() (C locale), not only ' ', before a closing ']'.
BOOST_AUTO_TEST_CASE(regression_issue12_one_whitespace_character_before_a_closing_bracket_appends) {
  BOOST_TEST(decodedForm("data[a][%09]=x&data[a][%0A]=y&data[a][%0B]=z&data[a][%0C]=w&"
                         "data[a][%0D]=v&data[a][+]=u") ==
             R"({"data":{"a":["x","y","z","w","v","u"]}})");
}

BOOST_AUTO_TEST_CASE(only_one_whitespace_character_is_skipped_and_an_index_keeps_its_own) {
  BOOST_TEST(decodedForm("a[%09%09]=x&a[%09k]=y&a[%A0]=z") ==
             "{\"a\":{\"\\t\\t\":\"x\",\"\\tk\":\"y\",\"\xEF\xBF\xBD\":\"z\"}}");
}

BOOST_AUTO_TEST_CASE(names_that_mangling_or_nesting_makes_look_like_host_cookies_are_dropped) {
  // PHP 8.2 (CVE-2022-31629 fix): a level named __Host-* or __Secure-* is dropped unless the
  // whole key starts so; the levels above it are still created.
  BOOST_TEST(decodedForm("data[__Host-x]=1&data[ok]=2") == R"({"data":{"ok":"2"}})");
  BOOST_TEST(decodedForm("data[b][__Secure-y]=2") == R"({"data":{"b":[]}})");
  BOOST_TEST(decodedForm("data[a]=s&data[a][__Host-][c]=1") == R"({"data":{"a":[]}})");
  BOOST_TEST(decodedForm("..Host-z=3&__Host-q=4&__Host-r[__Host-s]=5&data[_Host-]=6") ==
             R"({"__Host-q":"4","__Host-r":{"__Host-s":"5"},"data":{"_Host-":"6"}})");
  BOOST_TEST(decodedForm("data[__host-x]=1&data[][__Secure-]=2") ==
             R"({"data":{"__host-x":"1","0":[]}})");
}

BOOST_AUTO_TEST_CASE(an_empty_nested_array_is_a_list_as_json_encode_writes_it) {
  BOOST_TEST(decodedForm("data[__Host-x]=1") == R"({"data":[]})");
}

BOOST_AUTO_TEST_CASE(nested_append_creates_a_new_container_each_time) {
  BOOST_TEST(decodedForm("a[][b]=1&a[][b]=2") == R"({"a":[{"b":"1"},{"b":"2"}]})");
}

BOOST_AUTO_TEST_CASE(consecutive_integer_keys_from_zero_become_an_array) {
  BOOST_TEST(decodedForm("a[0]=x&a[1]=y&a[2]=z") == R"({"a":["x","y","z"]})");
  BOOST_TEST(decodedForm("a[0][0]=x&a[0][1]=y") == R"({"a":[["x","y"]]})");
}

BOOST_AUTO_TEST_CASE(keys_zero_and_two_stay_an_object) {
  BOOST_TEST(decodedForm("a[0]=x&a[2]=y") == R"({"a":{"0":"x","2":"y"}})");
}

BOOST_AUTO_TEST_CASE(keys_one_then_zero_stay_an_object) {
  BOOST_TEST(decodedForm("a[1]=x&a[0]=y") == R"({"a":{"1":"x","0":"y"}})");
}

BOOST_AUTO_TEST_CASE(leading_zero_key_is_a_string_not_an_index) {
  BOOST_TEST(decodedForm("a[01]=x") == R"({"a":{"01":"x"}})");
  BOOST_TEST(decodedForm("a[0]=x&a[01]=y") == R"({"a":{"0":"x","01":"y"}})");
  BOOST_TEST(decodedForm("a[01]=x&a[]=y") == R"({"a":{"01":"x","0":"y"}})");
}

BOOST_AUTO_TEST_CASE(non_canonical_numbers_are_string_keys) {
  BOOST_TEST(decodedForm("a[%2B1]=x&a[]=y") == R"({"a":{"+1":"x","0":"y"}})");
  BOOST_TEST(decodedForm("a[-0]=x&a[]=y") == R"({"a":{"-0":"x","0":"y"}})");
  BOOST_TEST(decodedForm("a[%201]=x&a[]=y") == R"({"a":{" 1":"x","0":"y"}})");
  BOOST_TEST(decodedForm("a[9223372036854775808]=x&a[]=y") ==
             R"({"a":{"9223372036854775808":"x","0":"y"}})");
}

BOOST_AUTO_TEST_CASE(top_level_is_always_an_object) {
  BOOST_TEST(decodedForm("0=x&1=y") == R"({"0":"x","1":"y"})");
}

BOOST_AUTO_TEST_CASE(later_duplicate_scalar_wins) {
  BOOST_TEST(decodedForm("a=1&b=2&a=3") == R"({"a":"3","b":"2"})");
  BOOST_TEST(decodedForm("x[a]=1&x[b]=2&x[a]=3") == R"({"x":{"a":"3","b":"2"}})");
}

BOOST_AUTO_TEST_CASE(later_duplicate_in_a_wide_map_wins_in_place) {
  // Past 32 keys a map finds its keys through a hash index instead of a scan.
  std::string body;
  std::string expected = "{\"x\":{";
  for (int i = 0; i < 50; ++i) {
    const std::string key = "k" + std::to_string(i);
    body += "x[" + key + "]=" + std::to_string(i) + "&";
    expected += "\"" + key + "\":\"" + (i == 3 ? "again" : std::to_string(i)) + "\"";
    expected += i < 49 ? "," : "}}";
  }
  body += "x[k3]=again";
  BOOST_TEST(decodedForm(body) == expected);
}

BOOST_AUTO_TEST_CASE(scalar_used_as_a_container_is_replaced_by_it) {
  BOOST_TEST(decodedForm("a=1&b=2&a[c]=3") == R"({"a":{"c":"3"},"b":"2"})");
}

BOOST_AUTO_TEST_CASE(container_assigned_a_scalar_is_replaced_by_it) {
  BOOST_TEST(decodedForm("a[b]=1&c=3&a=2") == R"({"a":"2","c":"3"})");
  BOOST_TEST(decodedForm("a[b][c]=1&a[b]=2") == R"({"a":{"b":"2"}})");
}

BOOST_AUTO_TEST_CASE(dots_and_spaces_in_the_base_name_become_underscores) {
  BOOST_TEST(decodedForm("a.b+c=1&x.y[p.q]=2") == R"({"a_b_c":"1","x_y":{"p.q":"2"}})");
}

BOOST_AUTO_TEST_CASE(keys_inside_brackets_are_taken_verbatim) {
  BOOST_TEST(decodedForm("a[b.c d]=1&a[x[y]=2") == R"({"a":{"b.c d":"1","x[y":"2"}})");
}

BOOST_AUTO_TEST_CASE(leading_spaces_of_the_key_are_dropped) {
  BOOST_TEST(decodedForm("++a=1&%20b[c]=2") == R"({"a":"1","b":{"c":"2"}})");
}

BOOST_AUTO_TEST_CASE(unclosed_bracket_becomes_an_underscore_in_a_plain_name) {
  BOOST_TEST(decodedForm("a[b=1") == R"({"a_b":"1"})");
  BOOST_TEST(decodedForm("a[b.c[d e=1") == R"({"a_b_c_d_e":"1"})");
}

BOOST_AUTO_TEST_CASE(unclosed_bracket_after_a_closed_one_ends_the_key) {
  BOOST_TEST(decodedForm("a[x][y=1") == R"({"a":{"x":"1"}})");
  BOOST_TEST(decodedForm("a[][y=1&a[][y=2") == R"({"a":["1","2"]})");
}

BOOST_AUTO_TEST_CASE(text_after_a_closing_bracket_is_ignored) {
  BOOST_TEST(decodedForm("a[b]c=1") == R"({"a":{"b":"1"}})");
  BOOST_TEST(decodedForm("a[b]c[d]=1") == R"({"a":{"b":"1"}})");
}

BOOST_AUTO_TEST_CASE(empty_key_is_skipped) {
  BOOST_TEST(decodedForm("=1&&b=2&[x]=3&+=4&&") == R"({"b":"2"})");
}

BOOST_AUTO_TEST_CASE(empty_body_gives_an_empty_object) {
  BOOST_TEST(decodedForm("") == "{}");
  BOOST_TEST(decodedForm("&&&") == "{}");
}

BOOST_AUTO_TEST_CASE(key_ends_at_a_nul_byte_but_value_keeps_it) {
  BOOST_TEST(decodedForm("a%00b=x%00y") == R"({"a":"x\u0000y"})");
}

// ---------------------------------------------------------------------------------------------
// Values and escapes

BOOST_AUTO_TEST_CASE(segment_without_equals_has_an_empty_value) {
  BOOST_TEST(decodedForm("a&b=&c[d]") == R"({"a":"","b":"","c":{"d":""}})");
}

BOOST_AUTO_TEST_CASE(value_splits_at_the_first_equals_only) {
  BOOST_TEST(decodedForm("a=b=c&k%3Dx=1") == R"({"a":"b=c","k=x":"1"})");
}

BOOST_AUTO_TEST_CASE(values_stay_strings) {
  BOOST_TEST(decodedForm("n=42&f=1.5&t=true&z=") == R"({"n":"42","f":"1.5","t":"true","z":""})");
}

BOOST_AUTO_TEST_CASE(plus_is_a_space) {
  BOOST_TEST(phpUrlDecode("a+b++c") == "a b  c");
  BOOST_TEST(decodedForm("msg=hello+world") == R"({"msg":"hello world"})");
}

BOOST_AUTO_TEST_CASE(encoded_plus_is_a_literal_plus) {
  BOOST_TEST(phpUrlDecode("1%2B1%2b1") == "1+1+1");
  BOOST_TEST(decodedForm("q=1%2B1") == R"({"q":"1+1"})");
}

BOOST_AUTO_TEST_CASE(percent_escapes_decode_to_bytes) {
  BOOST_TEST(phpUrlDecode("%41%7a%5B%5d%26%3D%25") == "Az[]&=%");
}

BOOST_AUTO_TEST_CASE(malformed_percent_escape_is_kept_literally) {
  BOOST_TEST(phpUrlDecode("%ZZ") == "%ZZ");
  BOOST_TEST(phpUrlDecode("%4") == "%4");
  BOOST_TEST(phpUrlDecode("x%") == "x%");
  BOOST_TEST(phpUrlDecode("%%41") == "%A");
  BOOST_TEST(phpUrlDecode("%4G%G4") == "%4G%G4");
  BOOST_TEST(decodedForm("a=%ZZ&b=%4&c=%%41&d=%") == R"({"a":"%ZZ","b":"%4","c":"%A","d":"%"})");
}

// ---------------------------------------------------------------------------------------------
// UTF-8

BOOST_AUTO_TEST_CASE(valid_multibyte_utf8_is_kept) {
  const std::string text =
      "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF \xEF\xBF\xBD";
  BOOST_TEST(sanitizeUtf8(text) == text);
  BOOST_TEST(decodedForm("k=caf%C3%A9+%E2%82%AC") == "{\"k\":\"caf\xC3\xA9 \xE2\x82\xAC\"}");
}

BOOST_AUTO_TEST_CASE(lone_ff_byte_becomes_replacement_character) {
  BOOST_TEST(sanitizeUtf8("a\xFF"
                          "b") == "a" + kFffd + "b");
}

BOOST_AUTO_TEST_CASE(truncated_sequence_becomes_replacement_characters) {
  BOOST_TEST(sanitizeUtf8("\xE2\x82") == kFffd + kFffd);
  BOOST_TEST(sanitizeUtf8("\xE2\x82"
                          "A") == kFffd + kFffd + "A");
  BOOST_TEST(sanitizeUtf8("\xF0\x9F\x98") == kFffd + kFffd + kFffd);
}

BOOST_AUTO_TEST_CASE(overlong_encoding_becomes_replacement_characters) {
  BOOST_TEST(sanitizeUtf8("\xC0\xAF") == kFffd + kFffd);
  BOOST_TEST(sanitizeUtf8("\xE0\x80\xAF") == kFffd + kFffd + kFffd);
}

BOOST_AUTO_TEST_CASE(cesu_surrogate_becomes_replacement_characters) {
  BOOST_TEST(sanitizeUtf8("\xED\xA0\x80") == kFffd + kFffd + kFffd);
}

BOOST_AUTO_TEST_CASE(code_point_above_10ffff_becomes_replacement_characters) {
  BOOST_TEST(sanitizeUtf8("\xF4\x90\x80\x80") == kFffd + kFffd + kFffd + kFffd);
  BOOST_TEST(sanitizeUtf8("\xF5") == kFffd);
}

BOOST_AUTO_TEST_CASE(stray_continuation_byte_becomes_replacement_character) {
  BOOST_TEST(sanitizeUtf8("x\x80y") == "x" + kFffd + "y");
}

BOOST_AUTO_TEST_CASE(invalid_utf8_in_form_keys_and_values_is_replaced_and_event_kept) {
  BOOST_TEST(decodedForm("k%FF=v%C0%AF&ok=1") ==
             "{\"k" + kFffd + "\":\"v" + kFffd + kFffd + "\",\"ok\":\"1\"}");
}

// ---------------------------------------------------------------------------------------------
// Form limits

namespace {
std::string formKeyWithLevels(std::size_t levels) { return "a" + repeat("[x]", levels) + "=v"; }
}  // namespace

BOOST_AUTO_TEST_CASE(form_depth_of_exactly_32_is_accepted) {
  const std::string decoded = decodedForm(formKeyWithLevels(32));
  BOOST_TEST(decoded == "{\"a\":" + repeat("{\"x\":", 32) + "\"v\"" + repeat("}", 33));
}

BOOST_AUTO_TEST_CASE(form_depth_of_33_is_rejected) {
  BOOST_TEST(formErrorCode(formKeyWithLevels(33)) == "nesting_too_deep");
  BOOST_TEST(formErrorCode("ok=1&a" + repeat("[]", 33) + "=v") == "nesting_too_deep");
}

BOOST_AUTO_TEST_CASE(form_depth_counts_the_brackets_of_data_fields_id_as_two) {
  DecodeLimits limits;
  limits.maxDepth = 2;
  BOOST_TEST(decodedForm("data[FIELDS][ID]=1", limits) == R"({"data":{"FIELDS":{"ID":"1"}}})");
  BOOST_TEST(formErrorCode("data[FIELDS][ID][X]=1", limits) == "nesting_too_deep");
}

BOOST_AUTO_TEST_CASE(form_with_exactly_10000_pairs_is_accepted) {
  const DecodedBody decoded = decodeFormBody(manyFormPairs(10000), DecodeLimits{});
  BOOST_REQUIRE(!decoded.error);
  BOOST_TEST(decoded.root->members.size() == 10000u);
  BOOST_TEST(decoded.root->find("k9999")->text == "v");
}

BOOST_AUTO_TEST_CASE(form_with_10001_pairs_is_rejected) {
  BOOST_TEST(formErrorCode(manyFormPairs(10001)) == "too_many_fields");
}

BOOST_AUTO_TEST_CASE(empty_segments_do_not_count_as_pairs) {
  const DecodedBody decoded =
      decodeFormBody(repeat("&", 50000) + manyFormPairs(10000) + "&&", DecodeLimits{});
  BOOST_TEST(!decoded.error);
}

BOOST_AUTO_TEST_CASE(pair_count_is_checked_before_key_depth) {
  const std::string body = repeat(formKeyWithLevels(40) + "&", 10001);
  BOOST_TEST(formErrorCode(body) == "too_many_fields");
}

BOOST_AUTO_TEST_CASE(megabyte_of_empty_brackets_in_form_is_rejected_as_too_deep) {
  BOOST_TEST(formErrorCode("a" + repeat("[]", kMiB / 2) + "=v") == "nesting_too_deep");
}

BOOST_AUTO_TEST_CASE(megabyte_of_open_brackets_in_form_is_a_plain_name_without_crashing) {
  // PHP turns an unclosed '[' into '_', so "a[[[[..." is one long plain name, not deep nesting.
  const DecodedBody decoded = decodeFormBody("a" + repeat("[", kMiB) + "=v", DecodeLimits{});
  BOOST_REQUIRE(!decoded.error);
  BOOST_TEST(decoded.root->members.size() == 1u);
  BOOST_TEST(decoded.root->find("a" + repeat("_", kMiB)) != nullptr);
}

BOOST_AUTO_TEST_CASE(megabyte_of_ten_thousand_wide_siblings_decodes) {
  std::string body;
  for (int i = 0; i < 10000; ++i) body += "a[k" + std::to_string(i) + "]=" + repeat("x", 90) + "&";
  const DecodedBody decoded = decodeFormBody(body, DecodeLimits{});
  BOOST_REQUIRE(!decoded.error);
  BOOST_TEST(decoded.root->find("a")->members.size() == 10000u);
}

BOOST_AUTO_TEST_CASE(error_message_never_quotes_the_body) {
  const std::string secret = "SECRETTOKEN123";
  const DecodedBody deep = decodeFormBody("auth[" + secret + "]" + repeat("[x]", 40), {});
  BOOST_REQUIRE(deep.error);
  BOOST_TEST(deep.error->message.find(secret) == std::string::npos);
  const DecodedBody broken = decodeJsonBody("{\"auth\":\"" + secret + "\",}", {});
  BOOST_REQUIRE(broken.error);
  BOOST_TEST(broken.error->message.find(secret) == std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// JSON

BOOST_AUTO_TEST_CASE(json_object_keeps_key_order) {
  BOOST_TEST(decodedJson(R"({"b":"1","a":{"z":"2","y":"3"},"c":["x"]})") ==
             R"({"b":"1","a":{"z":"2","y":"3"},"c":["x"]})");
}

BOOST_AUTO_TEST_CASE(json_number_stays_a_number) {
  const DecodedBody decoded = decodeJsonBody(R"({"id":22,"ratio":1.5,"s":"22"})", {});
  BOOST_REQUIRE(!decoded.error);
  BOOST_TEST((decoded.root->find("id")->type == b24es::BodyValue::Type::kInteger));
  BOOST_TEST((decoded.root->find("ratio")->type == b24es::BodyValue::Type::kReal));
  BOOST_TEST((decoded.root->find("s")->type == b24es::BodyValue::Type::kString));
  BOOST_TEST(condensed(decoded.root) == R"({"id":22,"ratio":1.5,"s":"22"})");
}

BOOST_AUTO_TEST_CASE(json_null_and_booleans_keep_their_types) {
  BOOST_TEST(decodedJson(R"({"n":null,"t":true,"f":false})") == R"({"n":null,"t":true,"f":false})");
}

BOOST_AUTO_TEST_CASE(json_later_duplicate_key_wins) {
  BOOST_TEST(decodedJson(R"({"a":1,"b":2,"a":3})") == R"({"a":3,"b":2})");
}

BOOST_AUTO_TEST_CASE(json_syntax_error_is_malformed) {
  BOOST_TEST(jsonErrorCode(R"({"a":1,})") == "malformed_body");
  BOOST_TEST(jsonErrorCode(R"({"a":)") == "malformed_body");
  BOOST_TEST(jsonErrorCode(R"({"a":1} trailing)") == "malformed_body");
  BOOST_TEST(jsonErrorCode("{\"a\":\"\\ud800\"}") == "malformed_body");
}

BOOST_AUTO_TEST_CASE(json_top_level_array_is_rejected) {
  BOOST_TEST(jsonErrorCode(R"([{"a":1}])") == "malformed_body");
}

BOOST_AUTO_TEST_CASE(json_top_level_scalar_or_empty_body_is_rejected) {
  BOOST_TEST(jsonErrorCode(R"("text")") == "malformed_body");
  BOOST_TEST(jsonErrorCode("42") == "malformed_body");
  BOOST_TEST(jsonErrorCode("") == "malformed_body");
  BOOST_TEST(jsonErrorCode(" \n ") == "malformed_body");
}

BOOST_AUTO_TEST_CASE(json_invalid_utf8_is_replaced_and_event_kept) {
  BOOST_TEST(decodedJson("{\"a\":\"x\xFFy\",\"b\":\"\xED\xA0\x80\"}") ==
             "{\"a\":\"x" + kFffd + "y\",\"b\":\"" + kFffd + kFffd + kFffd + "\"}");
}

BOOST_AUTO_TEST_CASE(json_valid_multibyte_utf8_is_kept) {
  BOOST_TEST(decodedJson("{\"t\":\"\xE2\x82\xAC\xF0\x9F\x98\x80\"}") ==
             "{\"t\":\"\xE2\x82\xAC\xF0\x9F\x98\x80\"}");
}

namespace {
std::string jsonWithLevels(std::size_t levels) {
  return "{" + repeat("\"x\":{", levels) + "\"v\":\"1\"" + repeat("}", levels) + "}";
}
}  // namespace

BOOST_AUTO_TEST_CASE(json_depth_counts_data_fields_id_as_two) {
  DecodeLimits limits;
  limits.maxDepth = 2;
  BOOST_TEST(decodedJson(R"({"data":{"FIELDS":{"ID":"1"}}})", limits) ==
             R"({"data":{"FIELDS":{"ID":"1"}}})");
  BOOST_TEST(jsonErrorCode(R"({"data":{"FIELDS":{"ID":["1"]}}})", limits) == "nesting_too_deep");
}

BOOST_AUTO_TEST_CASE(json_depth_of_exactly_32_is_accepted) {
  BOOST_TEST(decodedJson(jsonWithLevels(32)) == jsonWithLevels(32));
}

BOOST_AUTO_TEST_CASE(json_depth_of_33_is_rejected) {
  BOOST_TEST(jsonErrorCode(jsonWithLevels(33)) == "nesting_too_deep");
}

BOOST_AUTO_TEST_CASE(json_brackets_and_commas_inside_strings_do_not_count) {
  DecodeLimits limits;
  limits.maxDepth = 1;
  limits.maxPairs = 2;
  const std::string body = R"({"a":"[[[{{{,,,,\"[[,,","b":{"c":"]]]}}}"}})";
  BOOST_TEST(decodedJson(body, limits) == body);
}

BOOST_AUTO_TEST_CASE(json_with_exactly_10000_leaves_is_accepted) {
  const DecodedBody decoded = decodeJsonBody(manyJsonLeaves(10000), DecodeLimits{});
  BOOST_REQUIRE(!decoded.error);
  BOOST_TEST(decoded.root->members.size() == 10000u);
}

BOOST_AUTO_TEST_CASE(json_with_10001_leaves_is_rejected) {
  BOOST_TEST(jsonErrorCode(manyJsonLeaves(10001)) == "too_many_fields");
}

BOOST_AUTO_TEST_CASE(json_empty_containers_count_as_leaves) {
  DecodeLimits limits;
  limits.maxPairs = 3;
  BOOST_TEST(decodedJson(R"({"a":[],"b":{},"c":1})", limits) == R"({"a":[],"b":{},"c":1})");
  BOOST_TEST(jsonErrorCode(R"({"a":[],"b":{},"c":1,"d":[[]]})", limits) == "too_many_fields");
  BOOST_TEST(decodedJson("{}", limits) == "{}");
}

BOOST_AUTO_TEST_CASE(megabyte_of_open_brackets_in_json_is_rejected_without_crashing) {
  BOOST_TEST(jsonErrorCode(repeat("[", kMiB)) == "malformed_body");
  BOOST_TEST(jsonErrorCode("{\"a\":" + repeat("[", kMiB)) == "nesting_too_deep");
  BOOST_TEST(jsonErrorCode(repeat("{\"a\":", kMiB / 5)) == "nesting_too_deep");
}

BOOST_AUTO_TEST_CASE(huge_max_depth_is_clamped_so_the_parser_cannot_overflow_the_stack) {
  DecodeLimits limits;
  limits.maxDepth = static_cast<std::size_t>(-1);
  BOOST_TEST(jsonErrorCode("{\"a\":" + repeat("[", kMiB), limits) == "nesting_too_deep");
  BOOST_TEST(formErrorCode("a" + repeat("[]", kMiB / 2) + "=v", limits) == "nesting_too_deep");
}

BOOST_AUTO_TEST_CASE(json_comma_flood_is_rejected_before_parsing) {
  BOOST_TEST(jsonErrorCode("{\"a\":[" + repeat("1,", kMiB / 2) + "1]}") == "too_many_fields");
}

// ---------------------------------------------------------------------------------------------
// Container limit (issue 6): every object and array a body creates counts, so nesting cannot
// multiply the 10,000 pairs into hundreds of thousands of objects.

namespace {

// `names` top-level names of `levels` named bracket levels each: names * levels nested maps.
std::string nestedFormNames(std::size_t names, std::size_t levels) {
  std::string out;
  for (std::size_t i = 0; i < names; ++i) {
    if (i > 0) out.push_back('&');
    out += "n" + std::to_string(i) + repeat("[b]", levels) + "=v";
  }
  return out;
}

// {"data":[X,X,...]} with `leaves` items, each X `levels` nested empty arrays.
std::string nestedJsonArrays(std::size_t leaves, std::size_t levels) {
  std::string out = "{\"data\":[";
  for (std::size_t i = 0; i < leaves; ++i) {
    if (i > 0) out.push_back(',');
    out += repeat("[", levels) + repeat("]", levels);
  }
  return out + "]}";
}

}  // namespace

// Issue 6 refused these bodies with a container limit; issue 12 (SPEC §4 v2) forbids that: both
// are within 32 levels and 10,000 pairs, so they decode. The work stays bounded by
// pairs × levels, the memory by the body size (see README "Fuzzing and sanitizers").
BOOST_AUTO_TEST_CASE(regression_issue12_form_body_of_10000_names_32_levels_deep_decodes) {
  const std::string body = nestedFormNames(9997, 32);
  BOOST_REQUIRE_LE(body.size(), kMiB);
  const DecodedBody decoded = decodeFormBody(body, DecodeLimits{});
  BOOST_REQUIRE_MESSAGE(!decoded.error, "unexpected error " << decoded.error->code);
  BOOST_TEST(decoded.root->members.size() == 9997u);
  const b24es::BodyValue* leaf = decoded.root->find("n9996");
  for (int level = 0; level < 32 && leaf; ++level) leaf = leaf->find("b");
  BOOST_REQUIRE(leaf);
  BOOST_TEST(leaf->text == "v");
}

BOOST_AUTO_TEST_CASE(regression_issue12_json_body_of_nested_arrays_decodes) {
  const std::string body = nestedJsonArrays(9999, 31);
  BOOST_REQUIRE_LE(body.size(), kMiB);
  const DecodedBody decoded = decodeJsonBody(body, DecodeLimits{});
  BOOST_REQUIRE_MESSAGE(!decoded.error, "unexpected error " << decoded.error->code);
  BOOST_TEST(decoded.root->find("data")->members.size() == 9999u);
}

BOOST_AUTO_TEST_CASE(regression_issue12_maps_replaced_by_scalars_never_reject_a_body) {
  // The issue's finding: an internal count that included maps later replaced by a scalar
  // rejected this (10,000 pairs, each building 31 maps that the next pair throws away).
  std::string body;
  for (int i = 0; i < 5000; ++i) {
    body += "data[a]" + repeat("[b]", 31) + "=1&data[a]=" + std::to_string(i) + "&";
  }
  const DecodedBody decoded = decodeFormBody(body, DecodeLimits{});
  BOOST_REQUIRE_MESSAGE(!decoded.error, "unexpected error " << decoded.error->code);
  BOOST_TEST(toJson(*decoded.root) == R"({"data":{"a":"4999"}})");
}

BOOST_AUTO_TEST_CASE(form_map_replaced_by_a_scalar_and_rebuilt_keeps_its_place) {
  BOOST_TEST(decodedForm("a[b]=1&z=0&a=2&a[c]=3") == R"({"a":{"c":"3"},"z":"0"})");
  BOOST_TEST(decodedForm("a=1&a[]=2&a[]=3") == R"({"a":["2","3"]})");
}
