// Event bindings (SPEC §8.2) against the fake portal on 127.0.0.1: the background sync after a
// committed ONAPPINSTALL (and what PORTAL shows of it), bindings found bound already or answered
// "already binded", unbinding only our own handler's and offline bindings that are no longer
// configured, and the `bind` command (summary line, --dry-run, exit codes) as a user runs it.
#define BOOST_TEST_MODULE bindings
#include <boost/test/unit_test.hpp>

#include <fstream>

#include "b24_fake.h"
#include "oauth_fake.h"
#include "service.h"
#include "test_support.h"

using namespace b24es;
using namespace b24es::test;

namespace {

const std::string kHandler = "https://store.example.com/bitrix24/events";

struct Harness {
  TempDir dir;
  SystemClock clock;
  FakeBitrix24 portal;
  Settings settings;
  std::unique_ptr<Service> service;
  std::string config;
  InstallSpec spec;

  explicit Harness(const std::string& events = "ONCRMDEALADD,OnCrmDealUpdate",
                   const std::string& offlineEvents = "ONCRMCONTACTADD") {
    settings = testSettings(dir);
    settings.rest.allowHttp = true;
    settings.rest.allowedHosts = {"127.0.0.1"};
    settings.bitrix24.handlerUrl = kHandler;
    config = dir.file("b24es.properties");
    std::ofstream out(config);
    out << "db.path = " << settings.db.path << "\n"
        << "rest.allowed_hosts = 127.0.0.1\nrest.allow_http = true\n"
        << "bitrix24.handler_url = " << kHandler << "\n"
        << "bitrix24.events = " << events << "\n"
        << "bitrix24.offline_events = " << offlineEvents << "\n";
    out.close();
    auto layered = layerConfiguration(config, {}, {});
    settings.bitrix24 = loadSettings(*layered).bitrix24;
    spec.clientEndpoint = portal.clientEndpoint();
    spec.expires = clock.nowSeconds() + 3600;
    portal.acceptToken(spec.accessToken);
  }
  ~Harness() {
    if (service) service->stop();
  }
  // withBindings=false: a service that does not sync, so the `bind` command finds the portal
  // as the test left it.
  void start(bool withBindings = true) {
    Settings run = settings;
    if (!withBindings) run.bitrix24.handlerUrl.clear();
    service = std::make_unique<Service>(run, clock);
    service->start();
  }
  void install() {
    HttpResult r = postForm(service->ingestUrl(), settings.ingest.path, installForm(spec));
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
  }
  int run(std::vector<std::string> args, std::string& out, std::string& err) {
    args.push_back("--config");
    args.push_back(config);
    return runBinary(args, out, err, backendEnv(dir));
  }
  // The bindings table as "EVENT/type/state ..." in (event, type) order; byte order on
  // PostgreSQL too, whatever the database's collation.
  std::string rows() {
    if (testBackend() == Backend::postgresql) {
      return queryScalar(settings,
                         "SELECT string_agg(event || '/' || type || '/' || state, ' ' ORDER BY "
                         "event COLLATE \"C\", type COLLATE \"C\") FROM bindings");
    }
    return queryScalar(settings,
                       "SELECT group_concat(event || '/' || type || '/' || state, ' ') FROM "
                       "(SELECT * FROM bindings ORDER BY event, type)");
  }
  bool has(const std::string& event, const std::string& handler, bool offline) {
    for (const auto& b : portal.bindings()) {
      if (b.event == event && b.handler == handler && b.offline == offline) return true;
    }
    return false;
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(an_install_gets_its_bindings_in_the_background_and_portal_shows_them) {
  Harness h;
  h.start();
  h.install();
  BOOST_REQUIRE(h.portal.waitFor([&] { return h.portal.bindings().size() == 3; }, 20000));
  BOOST_CHECK(h.has("ONCRMDEALADD", kHandler, false));
  BOOST_CHECK(h.has("ONCRMDEALUPDATE", kHandler, false));
  BOOST_CHECK(h.has("ONCRMCONTACTADD", "", true));
  BOOST_REQUIRE(h.portal.waitFor(
      [&] {
        return h.rows() ==
               "ONCRMCONTACTADD/offline/bound ONCRMDEALADD/online/bound "
               "ONCRMDEALUPDATE/online/bound";
      },
      20000));
  HttpResult r = httpGet(h.service->queryUrl(), "/api/v1/portals/" + h.spec.memberId);
  BOOST_REQUIRE_EQUAL(r.status, 200);
  auto bindings = r.json()->getArray("bindings");
  BOOST_REQUIRE_EQUAL(bindings->size(), 3u);
  auto first = bindings->getObject(0);
  BOOST_CHECK_EQUAL(first->getValue<std::string>("event"), "ONCRMCONTACTADD");
  BOOST_CHECK_EQUAL(first->getValue<std::string>("type"), "offline");
  BOOST_CHECK_EQUAL(first->getValue<std::string>("state"), "bound");
  BOOST_CHECK(first->isNull("error"));
  // Known gap (b) of branch rest: bindings by type and state in /metrics, the calls by method.
  HttpResult m = httpGet(h.service->queryUrl(), "/metrics");
  BOOST_REQUIRE_EQUAL(m.status, 200);
  for (const char* line : {"b24es_bindings{type=\"online\",state=\"bound\"} 2\n",
                           "b24es_bindings{type=\"online\",state=\"error\"} 0\n",
                           "b24es_bindings{type=\"offline\",state=\"bound\"} 1\n",
                           "b24es_bindings{type=\"offline\",state=\"error\"} 0\n",
                           "b24es_rest_calls_total{method=\"event.bind\",result=\"ok\"} 3\n",
                           "b24es_rest_calls_total{method=\"event.get\",result=\"ok\"} 1\n"}) {
    BOOST_CHECK_MESSAGE(m.body.find(line) != std::string::npos, line);
  }
  // The calls carried the token in the body only.
  for (const auto& q : h.portal.requests()) {
    BOOST_CHECK(q.requestLine.find(h.spec.accessToken) == std::string::npos);
    BOOST_CHECK_EQUAL(q.param("auth"), h.spec.accessToken);
  }
  auto binds = h.portal.requestsOf("event.bind");
  BOOST_REQUIRE_EQUAL(binds.size(), 3u);
  BOOST_CHECK_EQUAL(binds[0].param("handler"), kHandler);
  BOOST_CHECK_EQUAL(binds[2].param("event_type"), "offline");
}

// Known gap (a) of branch rest: Bitrix24 drops some bindings when an application is updated, so
// a committed ONAPPUPDATE syncs again and binds what went missing.
BOOST_AUTO_TEST_CASE(an_update_syncs_again_and_binds_what_the_update_dropped) {
  Harness h;
  h.start();
  h.install();
  BOOST_REQUIRE(h.portal.waitFor([&] { return h.portal.bindings().size() == 3; }, 20000));
  BOOST_REQUIRE(h.portal.waitFor(
      [&] { return h.rows().find("ONCRMDEALUPDATE/online/bound") != std::string::npos; }, 20000));
  h.portal.dropBinding("ONCRMDEALUPDATE");
  h.portal.dropBinding("ONCRMCONTACTADD");
  BOOST_REQUIRE_EQUAL(h.portal.requestsOf("event.get").size(), 1u);
  // The same application token: verified by the writer like any event, then the sync.
  std::string update = dealAddForm(h.spec, h.spec.accessToken, "", h.spec.expires - 60);
  const std::string deal = "event=ONCRMDEALADD&event_handler_id=58&data%5BFIELDS%5D%5BID%5D=7405";
  BOOST_REQUIRE(update.rfind(deal, 0) == 0);
  update = "event=ONAPPUPDATE&event_handler_id=12&data%5BVERSION%5D=2" + update.substr(deal.size());
  HttpResult r = postForm(h.service->ingestUrl(), h.settings.ingest.path, update);
  BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
  BOOST_REQUIRE(h.portal.waitFor([&] { return h.portal.bindings().size() == 3; }, 20000));
  BOOST_CHECK(h.has("ONCRMDEALUPDATE", kHandler, false));
  BOOST_CHECK(h.has("ONCRMCONTACTADD", "", true));
  BOOST_CHECK_EQUAL(h.portal.requestsOf("event.get").size(), 2u);
  // Only the two that went missing were bound again (3 at install, 2 after the update).
  BOOST_CHECK_EQUAL(h.portal.requestsOf("event.bind").size(), 5u);
  BOOST_CHECK_EQUAL(
      queryScalar(h.settings, "SELECT count(*) FROM events WHERE event = 'ONAPPUPDATE'"), "1");
}

BOOST_AUTO_TEST_CASE(bindings_found_bound_or_answered_already_bound_count_as_bound) {
  Harness h;
  h.portal.addBinding({"ONCRMDEALADD", kHandler, false, false});
  h.portal.addBinding({"ONCRMDEALUPDATE", kHandler, false, /*hidden=*/true});
  h.start(/*withBindings=*/false);
  h.install();
  h.service->stop();
  h.service.reset();
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"bind"}, out, err), 0);
  BOOST_CHECK_EQUAL(out, "portals=1 bound=3 unbound=0 failed=0\n");
  BOOST_CHECK_EQUAL(h.rows(),
                    "ONCRMCONTACTADD/offline/bound ONCRMDEALADD/online/bound "
                    "ONCRMDEALUPDATE/online/bound");
  // ONCRMDEALADD was listed, so never bound again.
  for (const auto& q : h.portal.requestsOf("event.bind")) {
    BOOST_CHECK(q.param("event") != "ONCRMDEALADD");
  }
}

BOOST_AUTO_TEST_CASE(only_our_handler_and_offline_bindings_no_longer_configured_are_unbound) {
  Harness h("ONCRMDEALADD", "");
  h.portal.addBinding({"ONCRMLEADADD", kHandler, false, false});
  h.portal.addBinding({"ONCRMLEADADD", "https://other.example.com/hook", false, false});
  h.portal.addBinding({"ONCRMDEALADD", "https://other.example.com/hook", false, false});
  h.portal.addBinding({"ONTASKADD", "", true, false});
  h.start(/*withBindings=*/false);
  h.install();
  h.service->stop();
  h.service.reset();
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"bind", "--dry-run"}, out, err), 0);
  BOOST_CHECK_EQUAL(out, "portals=1 bound=1 unbound=2 failed=0\n");
  BOOST_CHECK(h.portal.requestsOf("event.unbind").empty());

  BOOST_CHECK_EQUAL(h.run({"bind", "--member-id", h.spec.memberId}, out, err), 0);
  BOOST_CHECK_EQUAL(out, "portals=1 bound=1 unbound=2 failed=0\n");
  BOOST_CHECK(!h.has("ONCRMLEADADD", kHandler, false));
  BOOST_CHECK(!h.has("ONTASKADD", "", true));
  BOOST_CHECK(h.has("ONCRMLEADADD", "https://other.example.com/hook", false));
  BOOST_CHECK(h.has("ONCRMDEALADD", "https://other.example.com/hook", false));
  BOOST_CHECK(h.has("ONCRMDEALADD", kHandler, false));
  for (const auto& q : h.portal.requestsOf("event.unbind")) {
    BOOST_CHECK(q.param("handler") != "https://other.example.com/hook");
  }
  BOOST_CHECK_EQUAL(h.rows(), "ONCRMDEALADD/online/bound");
}

BOOST_AUTO_TEST_CASE(a_portal_that_cannot_list_its_bindings_fails_and_says_so) {
  Harness h;
  h.start(/*withBindings=*/false);
  h.install();
  h.service->stop();
  h.service.reset();
  h.portal.injectServerError("event.get", 1);
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"bind"}, out, err), 1);
  BOOST_CHECK_EQUAL(out, "portals=1 bound=0 unbound=0 failed=3\n");
  BOOST_CHECK(err.find("http_500") != std::string::npos);
  BOOST_CHECK_EQUAL(h.rows(),
                    "ONCRMCONTACTADD/offline/error ONCRMDEALADD/online/error "
                    "ONCRMDEALUPDATE/online/error");
  BOOST_CHECK(err.find(h.spec.accessToken) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(bind_without_handler_url_or_with_a_foreign_option_exits_2) {
  Harness h;
  h.start(/*withBindings=*/false);
  h.install();
  h.service->stop();
  h.service.reset();
  std::string out, err;
  BOOST_CHECK_EQUAL(h.run({"bind", "--force"}, out, err), 2);
  std::ofstream(h.config, std::ios::app) << "bitrix24.handler_url =\n";
  BOOST_CHECK_EQUAL(h.run({"bind"}, out, err), 2);
  BOOST_CHECK(err.find("bitrix24.handler_url") != std::string::npos);
}
