// Unit tests of server/settings.cpp: defaults, every key, and the precedence of SPEC §2.
#define BOOST_TEST_MODULE settings
#include <boost/test/unit_test.hpp>

#include <Poco/Exception.h>
#include <Poco/Util/MapConfiguration.h>

#include <fstream>

#include "settings.h"
#include "test_support.h"

using namespace b24es;

namespace {

std::string writeConfig(const test::TempDir& dir, const std::string& text) {
  std::string path = dir.file("b24.properties");
  std::ofstream(path) << text;
  return path;
}

}  // namespace

BOOST_AUTO_TEST_CASE(defaults_match_the_spec) {
  Settings s = loadSettings(*layerConfiguration("", {}, {}));
  BOOST_TEST(s.db.path == "data/events.db");
  BOOST_TEST(s.db.synchronous == "full");
  BOOST_TEST(s.ingest.listen == "127.0.0.1:8080");
  BOOST_TEST(s.ingest.path == "/bitrix24/events");
  BOOST_TEST(s.ingest.maxBodyBytes == 1048576u);
  BOOST_TEST(s.ingest.requestTimeoutSeconds == 30);
  BOOST_TEST(s.ingest.threads == 2);
  BOOST_TEST(s.query.listen == "127.0.0.1:8081");
  BOOST_TEST(s.query.token.empty());
  BOOST_TEST(s.ingest.staticTokens.empty());
  BOOST_TEST(s.oauth.allowedHosts.size() == 2u);
  BOOST_TEST(!s.oauth.allowHttp);
  BOOST_TEST(s.refresh.intervalSeconds == 3600);
  BOOST_TEST(s.refresh.maxAgeDays == 30);
  BOOST_TEST(s.refresh.rate == 2.0);
}

BOOST_AUTO_TEST_CASE(file_sets_every_key) {
  test::TempDir dir;
  std::string file = writeConfig(dir,
                                 "# comment\n"
                                 "db.path = /tmp/x.db\n"
                                 "db.synchronous = NORMAL\n"
                                 "ingest.listen = 127.0.0.1:9\n"
                                 "ingest.path = /in\n"
                                 "ingest.max_body_bytes = 10\n"
                                 "query.listen = 127.0.0.1:10\n"
                                 "query.token = qt\n"
                                 "bitrix24.client_id = cid\n"
                                 "bitrix24.client_secret = cs\n"
                                 "bitrix24.application_tokens = a, b ,,c\n"
                                 "oauth.allowed_hosts = h1,h2,h3\n"
                                 "oauth.allow_http = true\n"
                                 "refresh.interval = 0\n"
                                 "refresh.max_age_days = 7\n"
                                 "refresh.rate = 0.5\n");
  Settings s = loadSettings(*layerConfiguration(file, {}, {}));
  BOOST_TEST(s.db.path == "/tmp/x.db");
  BOOST_TEST(s.db.synchronous == "normal");
  BOOST_TEST(s.ingest.listen == "127.0.0.1:9");
  BOOST_TEST(s.ingest.path == "/in");
  BOOST_TEST(s.ingest.maxBodyBytes == 10u);
  BOOST_TEST(s.query.listen == "127.0.0.1:10");
  BOOST_TEST(s.query.token == "qt");
  BOOST_TEST(s.oauth.clientId == "cid");
  BOOST_TEST(s.oauth.clientSecret == "cs");
  BOOST_TEST((s.ingest.staticTokens == std::vector<std::string>{"a", "b", "c"}));
  BOOST_TEST((s.oauth.allowedHosts == std::vector<std::string>{"h1", "h2", "h3"}));
  BOOST_TEST(s.oauth.allowHttp);
  BOOST_TEST(s.refresh.intervalSeconds == 0);
  BOOST_TEST(s.refresh.maxAgeDays == 7);
  BOOST_TEST(s.refresh.rate == 0.5);
}

BOOST_AUTO_TEST_CASE(flag_beats_environment_beats_file) {
  test::TempDir dir;
  std::string file = writeConfig(dir, "db.path = from-file\nquery.token = file-token\n");
  std::map<std::string, std::string> env = {{"B24ES_DB", "from-env"},
                                            {"B24ES_QUERY_TOKEN", "env-token"},
                                            {"B24_CLIENT_ID", "env-id"},
                                            {"B24_CLIENT_SECRET", "env-secret"}};
  Settings fileOnly = loadSettings(*layerConfiguration(file, {}, {}));
  BOOST_TEST(fileOnly.db.path == "from-file");
  Settings withEnv = loadSettings(*layerConfiguration(file, env, {}));
  BOOST_TEST(withEnv.db.path == "from-env");
  BOOST_TEST(withEnv.query.token == "env-token");
  BOOST_TEST(withEnv.oauth.clientId == "env-id");
  BOOST_TEST(withEnv.oauth.clientSecret == "env-secret");
  Settings withFlag = loadSettings(*layerConfiguration(file, env, {{"db.path", "from-flag"}}));
  BOOST_TEST(withFlag.db.path == "from-flag");
}

// Issue 13: an empty B24ES_QUERY_TOKEN silently switched a configured query.token off.
BOOST_AUTO_TEST_CASE(an_empty_environment_variable_counts_as_unset) {
  test::TempDir dir;
  std::string file = writeConfig(dir,
                                 "db.path = from-file\nquery.token = file-token\n"
                                 "bitrix24.client_secret = file-secret\n");
  std::map<std::string, std::string> env = {{"B24ES_DB", ""},
                                            {"B24ES_QUERY_TOKEN", ""},
                                            {"B24_CLIENT_ID", ""},
                                            {"B24_CLIENT_SECRET", ""}};
  Settings s = loadSettings(*layerConfiguration(file, env, {}));
  BOOST_TEST(s.query.token == "file-token");
  BOOST_TEST(s.db.path == "from-file");
  BOOST_TEST(s.oauth.clientSecret == "file-secret");
  BOOST_TEST(s.oauth.clientId.empty());
  // Without a file, the defaults stay.
  BOOST_TEST(loadSettings(*layerConfiguration("", env, {})).db.path == Settings{}.db.path);
}

BOOST_AUTO_TEST_CASE(malformed_number_names_the_key_not_the_value) {
  test::TempDir dir;
  std::string file = writeConfig(dir, "ingest.max_body_bytes = lots\n");
  try {
    loadSettings(*layerConfiguration(file, {}, {}));
    BOOST_FAIL("expected an exception");
  } catch (const Poco::SyntaxException& e) {
    BOOST_TEST(e.displayText().find("ingest.max_body_bytes") != std::string::npos);
    BOOST_TEST(e.displayText().find("lots") == std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(ingest_threads_and_request_timeout_are_bounded) {
  test::TempDir dir;
  BOOST_TEST(loadSettings(*layerConfiguration(writeConfig(dir, "ingest.threads = 4\n"), {}, {}))
                 .ingest.threads == 4);
  for (const char* line :
       {"ingest.threads = 0\n", "ingest.threads = 65\n", "ingest.request_timeout = 0\n"}) {
    BOOST_TEST_CONTEXT(line) {
      BOOST_CHECK_THROW(loadSettings(*layerConfiguration(writeConfig(dir, line), {}, {})),
                        Poco::SyntaxException);
    }
  }
  // 256 was the default when it counted connection threads: the error says what it is now.
  try {
    loadSettings(*layerConfiguration(writeConfig(dir, "ingest.threads = 256\n"), {}, {}));
    BOOST_FAIL("expected an exception");
  } catch (const Poco::SyntaxException& e) {
    BOOST_TEST(e.displayText().find("event-loop threads") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(missing_config_file_is_an_error) {
  BOOST_CHECK_THROW(layerConfiguration("/nonexistent/b24.properties", {}, {}), Poco::Exception);
}

BOOST_AUTO_TEST_CASE(split_host_port_handles_ipv4_ipv6_and_bad_ports) {
  BOOST_TEST(splitHostPort("127.0.0.1:8080").first == "127.0.0.1");
  BOOST_TEST(splitHostPort("127.0.0.1:8080").second == 8080);
  BOOST_TEST(splitHostPort("[::1]:0").first == "::1");
  BOOST_TEST(splitHostPort(":9").first == "0.0.0.0");
  BOOST_CHECK_THROW(splitHostPort("127.0.0.1"), Poco::InvalidArgumentException);
  BOOST_CHECK_THROW(splitHostPort("127.0.0.1:99999"), Poco::InvalidArgumentException);
  BOOST_CHECK_THROW(splitHostPort("127.0.0.1:x"), Poco::InvalidArgumentException);
}

BOOST_AUTO_TEST_CASE(bad_listen_address_is_a_configuration_error) {
  BOOST_CHECK_THROW(loadSettings(*layerConfiguration("", {}, {{"ingest.listen", "127.0.0.1:x"}})),
                    Poco::Exception);
  BOOST_CHECK_THROW(
      loadSettings(*layerConfiguration("", {}, {{"query.listen", "127.0.0.1:99999"}})),
      Poco::Exception);
}

BOOST_AUTO_TEST_CASE(retention_days_and_purge_on_clean) {
  Poco::AutoPtr<Poco::Util::MapConfiguration> c(new Poco::Util::MapConfiguration);
  b24es::Settings defaults = b24es::loadSettings(*c);
  BOOST_CHECK_EQUAL(defaults.retention.days, 0);
  BOOST_CHECK(!defaults.retention.purgeOnClean);
  c->setString("retention.days", "30");
  c->setString("bitrix24.purge_on_clean", "true");
  b24es::Settings s = b24es::loadSettings(*c);
  BOOST_CHECK_EQUAL(s.retention.days, 30);
  BOOST_CHECK(s.retention.purgeOnClean);
  c->setString("retention.days", "-1");
  BOOST_CHECK_THROW(b24es::loadSettings(*c), Poco::SyntaxException);
  c->setString("retention.days", "30");
  c->setString("bitrix24.purge_on_clean", "sometimes");
  BOOST_CHECK_THROW(b24es::loadSettings(*c), Poco::SyntaxException);
}

BOOST_AUTO_TEST_CASE(ingest_keep_rejections_defaults_to_10000_and_is_not_negative) {
  Poco::AutoPtr<Poco::Util::MapConfiguration> c(new Poco::Util::MapConfiguration);
  BOOST_CHECK_EQUAL(b24es::loadSettings(*c).ingest.keepRejections, 10000u);  // SPEC §3
  c->setString("ingest.keep_rejections", "0");
  BOOST_CHECK_EQUAL(b24es::loadSettings(*c).ingest.keepRejections, 0u);
  c->setString("ingest.keep_rejections", "250");
  BOOST_CHECK_EQUAL(b24es::loadSettings(*c).ingest.keepRejections, 250u);
  c->setString("ingest.keep_rejections", "-1");
  BOOST_CHECK_THROW(b24es::loadSettings(*c), Poco::SyntaxException);
}

// Issue 12 (SPEC §3): the keys of REST calls, bindings and the offline queue.
BOOST_AUTO_TEST_CASE(rest_bindings_and_offline_keys_have_spec_defaults_and_are_read) {
  Settings d = loadSettings(*layerConfiguration("", {}, {}));
  BOOST_TEST(d.rest.allowedHosts.empty());
  BOOST_TEST(!d.rest.allowHttp);
  BOOST_TEST(d.rest.rate == 2.0);
  BOOST_TEST(d.rest.burst == 10.0);
  BOOST_TEST(d.rest.timeoutSeconds == 10);
  BOOST_TEST(d.bitrix24.handlerUrl.empty());
  BOOST_TEST(d.bitrix24.offlineIntervalSeconds == 300);
  test::TempDir dir;
  Settings s = loadSettings(*layerConfiguration(
      writeConfig(dir,
                  "rest.allowed_hosts = a.example.com, *.bitrix24.de\nrest.allow_http = true\n"
                  "rest.rate = 0.5\nrest.burst = 3\nrest.timeout = 4\n"
                  "bitrix24.handler_url = https://h.example.com/e\n"
                  "bitrix24.events = onCrmDealAdd, ONCRMDEALUPDATE\n"
                  "bitrix24.offline_events = onCrmContactAdd\noffline.interval = 0\n"),
      {}, {}));
  BOOST_TEST(s.rest.allowedHosts == (std::vector<std::string>{"a.example.com", "*.bitrix24.de"}));
  BOOST_TEST(s.rest.allowHttp);
  BOOST_TEST(s.rest.rate == 0.5);
  BOOST_TEST(s.rest.burst == 3.0);
  BOOST_TEST(s.rest.timeoutSeconds == 4);
  BOOST_TEST(s.bitrix24.handlerUrl == "https://h.example.com/e");
  BOOST_TEST(s.bitrix24.events == (std::vector<std::string>{"ONCRMDEALADD", "ONCRMDEALUPDATE"}));
  BOOST_TEST(s.bitrix24.offlineEvents == (std::vector<std::string>{"ONCRMCONTACTADD"}));
  BOOST_TEST(s.bitrix24.offlineIntervalSeconds == 0);
  for (const char* bad :
       {"rest.rate = 0\n", "rest.burst = 0.5\n", "rest.timeout = 0\n", "offline.interval = -1\n",
        "rest.allow_http = maybe\n", "rest.rate = fast\n"}) {
    BOOST_CHECK_THROW(loadSettings(*layerConfiguration(writeConfig(dir, bad), {}, {})),
                      Poco::SyntaxException);
  }
}

BOOST_AUTO_TEST_CASE(query_max_streams_defaults_to_256_and_is_at_least_1) {
  test::TempDir dir;
  BOOST_TEST(loadSettings(*layerConfiguration("", {}, {})).query.maxStreams == 256u);
  BOOST_TEST(loadSettings(*layerConfiguration(writeConfig(dir, "query.max_streams = 3\n"), {}, {}))
                 .query.maxStreams == 3u);
  for (const char* line :
       {"query.max_streams = 0\n", "query.max_streams = -1\n", "query.max_streams = many\n"}) {
    BOOST_TEST_CONTEXT(line) {
      BOOST_CHECK_THROW(loadSettings(*layerConfiguration(writeConfig(dir, line), {}, {})),
                        Poco::SyntaxException);
    }
  }
}
