// The lifecycle events only the portal can vouch for (SPEC §4 items 4 and 5), through the real
// ingest listener of an in-process service and a fake portal on 127.0.0.1: a new application
// token in ONAPPUPDATE confirmed by app.info at the STORED client_endpoint (verified, forged,
// without access token, unreachable), ONAPPPAYMENT confirmed with the stored install token and
// stored with data.APP_INFO (verified, refused, no stored token, unreachable), and other
// portals' events not waiting while one portal's app.info is outstanding. Runs on both backends
// (lifecycle_test, lifecycle_test_pg; tests/test_backend.h).
#define BOOST_TEST_MODULE lifecycle
#include <boost/test/unit_test.hpp>

#include "test_backend.h"

#include <future>

#include "b24_fake.h"
#include "oauth_fake.h"
#include "service.h"
#include "test_support.h"

using namespace b24es;
using namespace b24es::test;

namespace {

const std::string kUpdateToken = "lifecycle-update-access-token-7d2e";

std::string withEvent(std::string form, const std::string& prefix) {
  const std::string deal = "event=ONCRMDEALADD&event_handler_id=58&data%5BFIELDS%5D%5BID%5D=7405";
  BOOST_REQUIRE(form.rfind(deal, 0) == 0);
  return prefix + form.substr(deal.size());
}

// ONAPPUPDATE with `applicationToken` and `accessToken` in auth.
std::string updateForm(InstallSpec spec, const std::string& applicationToken,
                       const std::string& accessToken) {
  spec.applicationToken = applicationToken;
  return withEvent(dealAddForm(spec, accessToken, "", spec.expires - 60),
                   "event=ONAPPUPDATE&event_handler_id=12&data%5BVERSION%5D=2");
}

// ONAPPPAYMENT: no application token; it claims a payment state of its own in data.APP_INFO.
std::string paymentForm(const InstallSpec& spec) {
  std::string form =
      withEvent(dealAddForm(spec, "payment-claimed-access-token", "", spec.expires - 60),
                "event=ONAPPPAYMENT&event_handler_id=13&data%5BID%5D=7&data%5BAPP_INFO%5D%5BSTATUS%"
                "5D=FORGED");
  std::string::size_type at = form.find("&auth%5Bapplication_token%5D=");
  BOOST_REQUIRE(at != std::string::npos);
  return form.substr(0, at);
}

struct Harness {
  TempDir dir;
  SystemClock clock;
  FakeBitrix24 portal;
  Settings settings;
  std::unique_ptr<Service> service;
  int installs = 0;

  Harness() {
    settings = testSettings(dir);
    settings.rest.allowHttp = true;
    settings.rest.allowedHosts = {"127.0.0.1"};
    service = std::make_unique<Service>(settings, clock);
    service->start();
  }
  ~Harness() { service->stop(); }

  InstallSpec install(const std::string& clientEndpoint, bool withToken = true) {
    InstallSpec spec;
    ++installs;
    char id[33];
    std::snprintf(id, sizeof id, "%032x", 0x1c000000 + installs);
    spec.memberId = id;
    spec.domain = "life" + std::to_string(installs) + ".bitrix24.com";
    spec.applicationToken = "life-app-token-" + std::to_string(installs);
    spec.accessToken = withToken ? "life-install-access-" + std::to_string(installs) : "";
    spec.clientEndpoint = clientEndpoint;
    spec.expires = clock.nowSeconds() + 3600;
    HttpResult r = post(installForm(spec));
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
    return spec;
  }
  HttpResult post(const std::string& form) {
    return postForm(service->ingestUrl(), settings.ingest.path, form);
  }
  std::string scalar(const std::string& sql) { return queryScalar(settings, sql); }
  std::string storedToken(const InstallSpec& spec) {
    return scalar("SELECT application_token FROM portals WHERE member_id = '" + spec.memberId +
                  "'");
  }
  std::string events(const InstallSpec& spec) {
    return scalar("SELECT count(*) FROM events WHERE member_id = '" + spec.memberId + "'");
  }
};

std::string unreachableEndpoint() {
  return "http://127.0.0.1:" + std::to_string(closedPort()) + "/rest/";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(application_token_rotation)

BOOST_AUTO_TEST_CASE(a_new_token_confirmed_by_app_info_replaces_the_stored_one) {
  Harness h;
  InstallSpec a = h.install(h.portal.clientEndpoint());
  h.portal.acceptToken(kUpdateToken);
  HttpResult r = h.post(updateForm(a, "life-rotated-app-token", kUpdateToken));
  BOOST_CHECK_MESSAGE(r.status == 200, r.body);
  BOOST_CHECK_EQUAL(h.storedToken(a), "life-rotated-app-token");
  BOOST_CHECK_EQUAL(h.events(a), "2");
  auto calls = h.portal.requestsOf("app.info");
  BOOST_REQUIRE_EQUAL(calls.size(), 1u);
  BOOST_CHECK_EQUAL(calls[0].param("auth"), kUpdateToken);
  BOOST_CHECK_EQUAL(calls[0].requestLine, "POST /rest/app.info HTTP/1.1");

  // From then on the new token verifies and the old one does not.
  InstallSpec rotated = a;
  rotated.applicationToken = "life-rotated-app-token";
  BOOST_CHECK_EQUAL(h.post(dealAddForm(rotated, "x", "", 1)).status, 200);
  BOOST_CHECK_EQUAL(h.post(dealAddForm(a, "x", "", 1)).status, 401);
}

BOOST_AUTO_TEST_CASE(an_update_with_the_stored_token_needs_no_app_info) {
  Harness h;
  InstallSpec a = h.install(h.portal.clientEndpoint());
  BOOST_CHECK_EQUAL(h.post(updateForm(a, a.applicationToken, kUpdateToken)).status, 200);
  BOOST_CHECK(h.portal.requests().empty());
}

BOOST_AUTO_TEST_CASE(a_forged_rotation_is_refused_at_the_stored_endpoint_and_changes_nothing) {
  Harness h;
  InstallSpec a = h.install(h.portal.clientEndpoint());
  // The forger names a portal of its own that would confirm anything.
  FakeBitrix24 forger;
  forger.acceptToken(kUpdateToken);
  InstallSpec forged = a;
  forged.clientEndpoint = forger.clientEndpoint();
  HttpResult r = h.post(updateForm(forged, "forged-app-token", kUpdateToken));
  BOOST_CHECK_EQUAL(r.status, 401);
  BOOST_CHECK_EQUAL(r.json()->getValue<std::string>("error"), "verification_failed");
  BOOST_CHECK(r.body.find(kUpdateToken) == std::string::npos);
  BOOST_CHECK(r.body.find("forged-app-token") == std::string::npos);
  BOOST_CHECK_EQUAL(h.storedToken(a), a.applicationToken);
  BOOST_CHECK_EQUAL(h.events(a), "1");
  BOOST_CHECK(forger.requests().empty());
  BOOST_CHECK_EQUAL(h.portal.requestsOf("app.info").size(), 1u);
}

BOOST_AUTO_TEST_CASE(a_rotation_without_an_access_token_is_refused_without_a_call) {
  Harness h;
  InstallSpec a = h.install(h.portal.clientEndpoint());
  HttpResult r = h.post(updateForm(a, "life-rotated-app-token", ""));
  BOOST_CHECK_EQUAL(r.status, 401);
  BOOST_CHECK_EQUAL(h.storedToken(a), a.applicationToken);
  BOOST_CHECK_EQUAL(h.events(a), "1");
  BOOST_CHECK(h.portal.requests().empty());
}

BOOST_AUTO_TEST_CASE(an_unreachable_portal_answers_503_with_retry_after) {
  Harness h;
  InstallSpec a = h.install(unreachableEndpoint());
  HttpResult r = h.post(updateForm(a, "life-rotated-app-token", kUpdateToken));
  BOOST_CHECK_EQUAL(r.status, 503);
  BOOST_CHECK_EQUAL(r.json()->getValue<std::string>("error"), "portal_unreachable");
  BOOST_CHECK(r.headers.count("Retry-After"));
  BOOST_CHECK_EQUAL(h.storedToken(a), a.applicationToken);
  BOOST_CHECK_EQUAL(h.events(a), "1");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(payment)

BOOST_AUTO_TEST_CASE(a_payment_confirmed_with_the_install_token_is_stored_with_app_info) {
  Harness h;
  InstallSpec a = h.install(h.portal.clientEndpoint());
  h.portal.acceptToken(a.accessToken);
  HttpResult r = h.post(paymentForm(a));
  BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
  const std::string id = std::to_string(r.json()->getValue<Poco::Int64>("id"));
  // What was stored, as the query API reads it back (on either backend).
  HttpResult stored = httpGet(h.service->queryUrl(), "/api/v1/events/" + id);
  BOOST_REQUIRE_EQUAL(stored.status, 200);
  Poco::JSON::Object::Ptr data = stored.json()->getObject("data");
  BOOST_REQUIRE(data);
  Poco::JSON::Object::Ptr appInfo = data->getObject("APP_INFO");
  BOOST_REQUIRE(appInfo);
  BOOST_CHECK_EQUAL(appInfo->getValue<std::string>("STATUS"), "P");  // the portal's word
  BOOST_CHECK_EQUAL(appInfo->getValue<std::string>("CODE"), "local.fake");
  BOOST_CHECK_EQUAL(data->getValue<std::string>("ID"), "7");
  BOOST_CHECK_EQUAL(stored.json()->getValue<std::string>("event"), "ONAPPPAYMENT");
  BOOST_CHECK_EQUAL(h.scalar("SELECT event FROM events WHERE id = " + id), "ONAPPPAYMENT");
  auto calls = h.portal.requestsOf("app.info");
  BOOST_REQUIRE_EQUAL(calls.size(), 1u);
  BOOST_CHECK_EQUAL(calls[0].param("auth"), a.accessToken);
}

BOOST_AUTO_TEST_CASE(a_payment_the_portal_does_not_confirm_is_refused_and_not_stored) {
  Harness h;
  InstallSpec a = h.install(h.portal.clientEndpoint());  // the portal accepts no token
  HttpResult r = h.post(paymentForm(a));
  BOOST_CHECK_EQUAL(r.status, 401);
  BOOST_CHECK_EQUAL(r.json()->getValue<std::string>("error"), "verification_failed");
  BOOST_CHECK_EQUAL(h.events(a), "1");
}

BOOST_AUTO_TEST_CASE(a_payment_without_a_stored_token_is_refused_without_a_call) {
  Harness h;
  InstallSpec a = h.install(h.portal.clientEndpoint(), /*withToken=*/false);
  BOOST_CHECK_EQUAL(h.post(paymentForm(a)).status, 401);
  BOOST_CHECK_EQUAL(h.events(a), "1");
  BOOST_CHECK(h.portal.requests().empty());
}

BOOST_AUTO_TEST_CASE(a_payment_of_an_unreachable_portal_answers_503) {
  Harness h;
  InstallSpec a = h.install(unreachableEndpoint());
  HttpResult r = h.post(paymentForm(a));
  BOOST_CHECK_EQUAL(r.status, 503);
  BOOST_CHECK(r.headers.count("Retry-After"));
  BOOST_CHECK_EQUAL(h.events(a), "1");
}

BOOST_AUTO_TEST_CASE(a_payment_of_an_unknown_portal_is_refused) {
  Harness h;
  InstallSpec stranger;
  stranger.clientEndpoint = h.portal.clientEndpoint();
  BOOST_CHECK_EQUAL(h.post(paymentForm(stranger)).status, 401);
  BOOST_CHECK(h.portal.requests().empty());
}

BOOST_AUTO_TEST_CASE(other_portals_events_do_not_wait_for_an_outstanding_app_info) {
  Harness h;
  InstallSpec a = h.install(h.portal.clientEndpoint());
  FakeBitrix24 other;
  InstallSpec b = h.install(other.clientEndpoint());
  h.portal.acceptToken(a.accessToken);
  h.portal.hold("app.info");
  auto payment = std::async(std::launch::async, [&] { return h.post(paymentForm(a)); });
  BOOST_REQUIRE(
      h.portal.waitFor([&] { return h.portal.requestsOf("app.info").size() == 1; }, 10000));
  // Portal A's app.info has no answer yet; B's events are stored meanwhile.
  for (int i = 0; i < 3; ++i) BOOST_CHECK_EQUAL(h.post(dealAddForm(b, "x", "", 1)).status, 200);
  BOOST_CHECK_EQUAL(h.events(a), "1");
  h.portal.release();
  BOOST_CHECK_EQUAL(payment.get().status, 200);
  BOOST_CHECK_EQUAL(h.events(a), "2");
}

BOOST_AUTO_TEST_SUITE_END()
