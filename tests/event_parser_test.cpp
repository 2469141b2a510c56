// Unit tests of server/event_parser.cpp: required fields, derived columns, token grants and
// redaction, on bodies decoded by the real decoder.
#define BOOST_TEST_MODULE event_parser
#include <boost/test/unit_test.hpp>

#include "body_decoder.h"
#include "event_parser.h"
#include "test_support.h"

using namespace b24es;

namespace {

const std::int64_t kNow = 1767261600;

IncomingEvent parseForm(const std::string& body) {
  DecodedBody decoded = decodeFormBody(body, DecodeLimits{});
  BOOST_REQUIRE(!decoded.error);
  auto parsed = parseEvent(*decoded.root, kNow);
  BOOST_REQUIRE(std::holds_alternative<IncomingEvent>(parsed));
  return std::get<IncomingEvent>(parsed);
}

EventError parseFormError(const std::string& body) {
  DecodedBody decoded = decodeFormBody(body, DecodeLimits{});
  BOOST_REQUIRE(!decoded.error);
  auto parsed = parseEvent(*decoded.root, kNow);
  BOOST_REQUIRE(std::holds_alternative<EventError>(parsed));
  return std::get<EventError>(parsed);
}

}  // namespace

BOOST_AUTO_TEST_CASE(install_sample_gives_portal_fields_and_install_tokens) {
  IncomingEvent e = parseForm(test::sample("01-ONAPPINSTALL.form"));
  BOOST_TEST((e.kind == EventKind::kInstall));
  BOOST_TEST(e.event == "ONAPPINSTALL");
  BOOST_TEST(e.memberId == "7c1e5a93d2b84f06a9e3c5d71b2f8e40");
  BOOST_TEST(e.domain == "acme-test.bitrix24.com");
  BOOST_TEST(e.serverEndpoint == "https://oauth.bitrix.info/rest/");
  BOOST_TEST(e.clientEndpoint == "https://acme-test.bitrix24.com/rest/");
  BOOST_TEST(e.status == "F");
  BOOST_TEST(e.scope == "crm,task,imbot,im,user,calendar,placement");
  BOOST_TEST(e.applicationToken == "f4a8c2e61b9d7035e8c4a1f6d2b97e53");
  BOOST_TEST(*e.eventHandlerId == 11);
  BOOST_TEST(*e.ts == 1767261600);
  BOOST_TEST(*e.userId == 1);
  BOOST_TEST(!e.entityId);
  BOOST_REQUIRE(e.tokens.size() == 1u);
  BOOST_TEST(e.tokens[0].userId == 1);
  BOOST_TEST(e.tokens[0].accessToken.rfind("b0535669", 0) == 0u);
  BOOST_TEST(e.tokens[0].refreshToken.value().rfind("a0d27d69", 0) == 0u);
  BOOST_TEST(*e.tokens[0].expiresAt == 1767265200);
  BOOST_TEST(e.dataJson == R"({"VERSION":"1","ACTIVE":"Y","INSTALLED":"Y","LANGUAGE_ID":"en"})");
}

BOOST_AUTO_TEST_CASE(event_code_is_upper_cased) {
  IncomingEvent e = parseForm("event=onCrmDealAdd&auth[member_id]=m&auth[application_token]=t");
  BOOST_TEST(e.event == "ONCRMDEALADD");
  BOOST_TEST((e.kind == EventKind::kOther));
}

BOOST_AUTO_TEST_CASE(deal_sample_has_entity_id_and_an_access_token_without_refresh_token) {
  IncomingEvent e = parseForm(test::sample("03-ONCRMDEALADD.form"));
  BOOST_TEST(*e.entityId == 7405);
  BOOST_TEST(*e.userId == 9);
  BOOST_REQUIRE(e.tokens.size() == 1u);
  BOOST_TEST(!e.tokens[0].refreshToken);
}

BOOST_AUTO_TEST_CASE(dynamic_item_sample_has_entity_type_id) {
  IncomingEvent e = parseForm(test::sample("12-ONCRMDYNAMICITEMADD.form"));
  BOOST_TEST(*e.entityId == 22);
  BOOST_TEST(*e.entityTypeId == 1220);
}

BOOST_AUTO_TEST_CASE(event_without_tokens_yields_no_grant) {
  IncomingEvent e = parseForm(test::sample("21-ONCRMDEALUPDATE-notokens.form"));
  BOOST_TEST(e.tokens.empty());
  BOOST_TEST(!e.userId);
}

BOOST_AUTO_TEST_CASE(entity_id_is_the_first_integer_among_the_candidates) {
  const std::string base = "event=X&auth[member_id]=m&";
  BOOST_TEST(
      *parseForm(base + "data[FIELDS][ID]=abc&data[FIELDS_AFTER][ID]=5&data[ID]=6").entityId == 5);
  BOOST_TEST(*parseForm(base + "data[ID]=7&data[id]=8").entityId == 7);
  BOOST_TEST(*parseForm(base + "data[id]=8").entityId == 8);
  BOOST_TEST(!parseForm(base + "data[ID]=1x").entityId);
  BOOST_TEST(!parseForm(base + "data[OTHER]=3").entityId);
}

BOOST_AUTO_TEST_CASE(expires_in_gives_the_expiry_when_expires_is_absent) {
  IncomingEvent e = parseForm(
      "event=X&auth[member_id]=m&auth[user_id]=3&auth[access_token]=A&auth[expires_in]=3600");
  BOOST_REQUIRE(e.tokens.size() == 1u);
  BOOST_TEST(*e.tokens[0].expiresAt == kNow + 3600);
}

BOOST_AUTO_TEST_CASE(missing_event_is_a_400) {
  EventError error = parseFormError("auth[member_id]=m");
  BOOST_TEST(error.code == "missing_field");
}

BOOST_AUTO_TEST_CASE(missing_member_id_is_a_400) {
  EventError error = parseFormError("event=ONCRMDEALADD&auth[domain]=x");
  BOOST_TEST(error.code == "missing_field");
  BOOST_TEST(parseFormError("event=X&auth=flat").code == "missing_field");
}

BOOST_AUTO_TEST_CASE(absent_data_is_stored_as_an_empty_object) {
  BOOST_TEST(parseForm("event=X&auth[member_id]=m").dataJson == "{}");
}

BOOST_AUTO_TEST_CASE(bot_tokens_are_kept_as_grants_and_redacted_everywhere_in_data) {
  IncomingEvent e = parseForm(
      "event=ONIMBOTMESSAGEADD&auth[member_id]=m&auth[application_token]=APP&"
      "data[BOT][77][access_token]=BOTACCESS&data[BOT][77][refresh_token]=BOTREFRESH&"
      "data[BOT][77][expires]=1767265200&data[BOT][77][application_token]=APP&"
      "data[BOT][77][AUTH][access_token]=BOTACCESS&data[BOT][77][AUTH][Refresh_Token]=BR2&"
      "data[PARAMS][MESSAGE]=hi&data[LIST][0][access_token]=L0");
  BOOST_REQUIRE(e.tokens.size() == 1u);
  BOOST_TEST(e.tokens[0].userId == 77);
  BOOST_TEST(e.tokens[0].accessToken == "BOTACCESS");
  BOOST_TEST(e.tokens[0].refreshToken.value() == "BOTREFRESH");
  BOOST_TEST(*e.tokens[0].expiresAt == 1767265200);
  for (const char* secret : {"BOTACCESS", "BOTREFRESH", "APP", "BR2", "L0"}) {
    BOOST_TEST(e.dataJson.find(secret) == std::string::npos, secret);
  }
  BOOST_TEST(e.dataJson.find("\"access_token\":\"[redacted]\"") != std::string::npos);
  BOOST_TEST(e.dataJson.find("\"MESSAGE\":\"hi\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(json_body_parses_like_the_form_body) {
  DecodedBody decoded = decodeJsonBody(test::sample("41-ONCRMDEALADD.json"), DecodeLimits{});
  BOOST_REQUIRE(!decoded.error);
  auto parsed = parseEvent(*decoded.root, kNow);
  IncomingEvent json = std::get<IncomingEvent>(parsed);
  IncomingEvent form = parseForm(test::sample("03-ONCRMDEALADD.form"));
  BOOST_TEST(json.event == form.event);
  BOOST_TEST(*json.entityId == *form.entityId);
  BOOST_TEST(*json.userId == *form.userId);
  BOOST_TEST(json.dataJson == form.dataJson);
  BOOST_TEST(json.tokens.size() == form.tokens.size());
}

BOOST_AUTO_TEST_CASE(integer_of_accepts_only_whole_integers) {
  auto number = [](BodyValue::Type type, std::string text) {
    BodyValue v;
    v.type = type;
    v.text = std::move(text);
    return v;
  };
  BOOST_TEST(*integerOf(BodyValue::string("-12")) == -12);
  BOOST_TEST(*integerOf(number(BodyValue::Type::kInteger, "42")) == 42);
  BOOST_TEST(!integerOf(BodyValue::string("")));
  BOOST_TEST(!integerOf(BodyValue::string("12 ")));
  BOOST_TEST(!integerOf(BodyValue::string("99999999999999999999")));
  BOOST_TEST(!integerOf(number(BodyValue::Type::kInteger, "18446744073709551615")));
  BOOST_TEST(!integerOf(number(BodyValue::Type::kReal, "1.5")));
  BOOST_TEST(!integerOf(BodyValue()));
  BOOST_TEST(!integerOf(BodyValue::object()));
}

BOOST_AUTO_TEST_CASE(json_data_that_is_null_is_stored_as_an_empty_object) {
  DecodedBody decoded = decodeJsonBody(
      R"({"event":"ONX","auth":{"member_id":"m","application_token":"t"},"data":null})", {});
  BOOST_REQUIRE(!decoded.error);
  auto parsed = parseEvent(*decoded.root, kNow);
  BOOST_REQUIRE(std::holds_alternative<IncomingEvent>(parsed));
  BOOST_TEST(std::get<IncomingEvent>(parsed).dataJson == "{}");
}

// Issue 12 (SPEC §4 v2, amended): data that PHP decodes as a list or a string is stored as it is.
BOOST_AUTO_TEST_CASE(regression_issue12_data_that_is_a_list_or_a_string_is_stored_as_such) {
  IncomingEvent text = parseForm("event=ONX&auth[member_id]=m&data=text");
  BOOST_TEST(text.dataJson == R"("text")");
  BOOST_TEST(!text.entityId);
  IncomingEvent list = parseForm("event=ONX&auth[member_id]=m&data[0]=7&data[1][ID]=8");
  BOOST_TEST(list.dataJson == R"(["7",{"ID":"8"}])");
  BOOST_TEST(!list.entityId);
  BOOST_TEST(!list.entityTypeId);
  IncomingEvent appended = parseForm("event=ONX&auth[member_id]=m&data[][TOKEN]=secret");
  BOOST_TEST(appended.dataJson == R"([{"TOKEN":"[redacted]"}])");
  DecodedBody json = decodeJsonBody(
      R"({"event":"ONX","auth":{"member_id":"m"},"data":[1,{"access_token":"A"}]})", {});
  BOOST_REQUIRE(!json.error);
  auto parsed = parseEvent(*json.root, kNow);
  BOOST_REQUIRE(std::holds_alternative<IncomingEvent>(parsed));
  BOOST_TEST(std::get<IncomingEvent>(parsed).dataJson == R"([1,{"access_token":"[redacted]"}])");
}

BOOST_AUTO_TEST_CASE(regression_issue12_onappmethodconfirm_token_is_redacted) {
  IncomingEvent e = parseForm(
      "event=ONAPPMETHODCONFIRM&auth[member_id]=m&data[TOKEN]=CONFIRMTOKEN&data[METHOD]=crm.deal."
      "add&data[CONFIRMED]=1");
  BOOST_TEST(e.dataJson.find("CONFIRMTOKEN") == std::string::npos);
  BOOST_TEST(e.dataJson == R"({"TOKEN":"[redacted]","METHOD":"crm.deal.add","CONFIRMED":"1"})");
}

BOOST_AUTO_TEST_CASE(every_token_key_of_the_v2_list_is_redacted_in_any_letter_case) {
  IncomingEvent e = parseForm(
      "event=ONX&auth[member_id]=m&data[x][Token]=S1&data[AUTH_ID]=S2&data[y][0][refresh_ID]=S3&"
      "data[Client_Secret]=S4&data[ACCESS_TOKEN]=S5&data[Refresh_Token][deep]=S6&"
      "data[application_TOKEN]=S7&data[tokens]=keep1&data[my_token]=keep2&data[TOKEN_TYPE]=keep3");
  for (const char* secret : {"S1", "S2", "S3", "S4", "S5", "S6", "S7"}) {
    BOOST_TEST(e.dataJson.find(secret) == std::string::npos, secret);
  }
  for (const char* kept : {"keep1", "keep2", "keep3"}) {
    BOOST_TEST(e.dataJson.find(kept) != std::string::npos, kept);
  }
  BOOST_TEST(e.dataJson.find(R"("Refresh_Token":"[redacted]")") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(json_scalars_in_auth_read_as_their_text) {
  DecodedBody decoded = decodeJsonBody(
      R"({"event":"ONX","auth":{"member_id":12345,"application_token":"t","user_id":"7",)"
      R"("access_token":"a","expires":1767265200.0,"expires_in":3600},"ts":true})",
      {});
  BOOST_REQUIRE(!decoded.error);
  auto parsed = parseEvent(*decoded.root, kNow);
  BOOST_REQUIRE(std::holds_alternative<IncomingEvent>(parsed));
  const IncomingEvent& e = std::get<IncomingEvent>(parsed);
  BOOST_TEST(e.memberId == "12345");
  BOOST_TEST(*e.userId == 7);
  BOOST_TEST(!e.ts);  // a boolean is not a time
  BOOST_REQUIRE(e.tokens.size() == 1u);
  // A real expires is not an integer: expires_in decides.
  BOOST_TEST(*e.tokens[0].expiresAt == kNow + 3600);
}

BOOST_AUTO_TEST_CASE(uninstall_with_clean_1_asks_to_delete_the_data) {
  const std::string uninstall = "event=ONAPPUNINSTALL&auth%5Bmember_id%5D=m&data%5BCLEAN%5D=";
  BOOST_CHECK(parseForm(test::sample("32-ONAPPUNINSTALL.form")).clean);
  BOOST_CHECK(!parseForm(uninstall + "0").clean);
  BOOST_CHECK(!parseForm("event=ONAPPUNINSTALL&auth%5Bmember_id%5D=m").clean);
  // Only an uninstall asks for it.
  BOOST_CHECK(!parseForm("event=ONCRMDEALADD&auth%5Bmember_id%5D=m&data%5BCLEAN%5D=1").clean);
}
