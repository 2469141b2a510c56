// The Prometheus exposition (server/metrics.h): unit tests of the rendering, and the gauges a
// running service reads from its store (token states), on both backends (test_backend.h). The
// counters as fed by the real ingest path are checked over HTTP in query_api_test.
#define BOOST_TEST_MODULE metrics
#include <boost/test/unit_test.hpp>

#include "test_backend.h"

#include <Poco/StringTokenizer.h>

#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "metrics.h"
#include "service.h"
#include "test_support.h"
#include "token_store.h"

using b24es::Metrics;

namespace {

bool hasLine(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

}  // namespace

BOOST_AUTO_TEST_CASE(ingest_results_are_counted_by_result_and_event_code) {
  Metrics m;
  m.countIngest(Metrics::IngestResult::kStored, "ONCRMDEALADD", 0.002);
  m.countIngest(Metrics::IngestResult::kStored, "ONCRMDEALADD", 0.003);
  m.countIngest(Metrics::IngestResult::kRejected, "ONCRMDEALADD", 0.001);
  m.countIngest(Metrics::IngestResult::kInvalid, "", 0.0001);
  m.countIngest(Metrics::IngestResult::kUnavailable, "ONAPPINSTALL", 2);
  std::string text = m.render(std::nullopt);
  BOOST_TEST_MESSAGE(text);
  BOOST_CHECK(
      hasLine(text, "b24es_events_received_total{result=\"stored\",event=\"ONCRMDEALADD\"} 2"));
  BOOST_CHECK(
      hasLine(text, "b24es_events_received_total{result=\"rejected\",event=\"ONCRMDEALADD\"} 1"));
  BOOST_CHECK(hasLine(text, "b24es_events_received_total{result=\"invalid\",event=\"\"} 1"));
  BOOST_CHECK(hasLine(
      text, "b24es_events_received_total{result=\"unavailable\",event=\"ONAPPINSTALL\"} 1"));
  BOOST_CHECK(hasLine(text, "# TYPE b24es_events_received_total counter"));
}

BOOST_AUTO_TEST_CASE(latency_histogram_buckets_are_cumulative) {
  Metrics m;
  m.countIngest(Metrics::IngestResult::kStored, "E", 0.0004);
  m.countIngest(Metrics::IngestResult::kStored, "E", 0.003);
  m.countIngest(Metrics::IngestResult::kStored, "E", 30);
  std::string text = m.render(std::nullopt);
  BOOST_CHECK(hasLine(text, "# TYPE b24es_ingest_duration_seconds histogram"));
  BOOST_CHECK(hasLine(text, "b24es_ingest_duration_seconds_bucket{le=\"0.0005\"} 1"));
  BOOST_CHECK(hasLine(text, "b24es_ingest_duration_seconds_bucket{le=\"0.0025\"} 1"));
  BOOST_CHECK(hasLine(text, "b24es_ingest_duration_seconds_bucket{le=\"0.005\"} 2"));
  BOOST_CHECK(hasLine(text, "b24es_ingest_duration_seconds_bucket{le=\"10\"} 2"));
  BOOST_CHECK(hasLine(text, "b24es_ingest_duration_seconds_bucket{le=\"+Inf\"} 3"));
  BOOST_CHECK(hasLine(text, "b24es_ingest_duration_seconds_count 3"));
  BOOST_CHECK(hasLine(text, "b24es_ingest_duration_seconds_sum 30.0034"));
}

BOOST_AUTO_TEST_CASE(writer_batches_and_refresh_results_are_recorded) {
  Metrics m;
  m.observeBatch(1);
  m.observeBatch(200);
  m.countRefresh("success");
  m.countRefresh("success");
  m.countRefresh("invalid_grant");
  std::string text = m.render(std::nullopt);
  BOOST_CHECK(hasLine(text, "b24es_writer_batch_events_bucket{le=\"1\"} 1"));
  BOOST_CHECK(hasLine(text, "b24es_writer_batch_events_bucket{le=\"128\"} 1"));
  BOOST_CHECK(hasLine(text, "b24es_writer_batch_events_bucket{le=\"256\"} 2"));
  BOOST_CHECK(hasLine(text, "b24es_writer_batch_events_sum 201"));
  BOOST_CHECK(hasLine(text, "b24es_token_refresh_total{result=\"success\"} 2"));
  BOOST_CHECK(hasLine(text, "b24es_token_refresh_total{result=\"invalid_grant\"} 1"));
}

BOOST_AUTO_TEST_CASE(token_states_appear_only_when_storage_answered) {
  Metrics m;
  std::string down = m.render(std::nullopt);
  BOOST_CHECK(hasLine(down, "b24es_storage_up 0"));
  BOOST_CHECK(down.find("b24es_tokens{") == std::string::npos);
  b24es::TokenStateCounts counts;
  counts.valid = 3;
  counts.accessExpired = 2;
  counts.noRefreshToken = 1;
  std::string up = m.render(counts);
  BOOST_CHECK(hasLine(up, "b24es_storage_up 1"));
  BOOST_CHECK(hasLine(up, "b24es_tokens{state=\"valid\"} 3"));
  BOOST_CHECK(hasLine(up, "b24es_tokens{state=\"access_expired\"} 2"));
  BOOST_CHECK(hasLine(up, "b24es_tokens{state=\"no_refresh_token\"} 1"));
  BOOST_CHECK(hasLine(up, "b24es_tokens{state=\"refresh_failed\"} 0"));
}

// Issue 12: REST calls by method and result, offline records, bindings by type and state.
BOOST_AUTO_TEST_CASE(rest_calls_offline_records_and_binding_states_are_rendered) {
  Metrics m;
  m.countRestCall("event.bind", "ok");
  m.countRestCall("event.bind", "ok");
  m.countRestCall("event.offline.get", "WRONG_LICENSE");
  m.countOfflineFetched(50);
  m.countOfflineFetched(7);
  std::string down = m.render(std::nullopt);
  BOOST_CHECK(hasLine(down, "b24es_rest_calls_total{method=\"event.bind\",result=\"ok\"} 2"));
  BOOST_CHECK(hasLine(
      down, "b24es_rest_calls_total{method=\"event.offline.get\",result=\"WRONG_LICENSE\"} 1"));
  BOOST_CHECK(hasLine(down, "b24es_offline_events_fetched_total 57"));
  BOOST_CHECK(down.find("b24es_bindings{") == std::string::npos);
  std::vector<b24es::BindingStateCount> bindings = {{"offline", "error", 1},
                                                    {"online", "bound", 4}};
  std::string up = m.render(b24es::TokenStateCounts{}, bindings);
  BOOST_CHECK(hasLine(up, "b24es_bindings{type=\"online\",state=\"bound\"} 4"));
  BOOST_CHECK(hasLine(up, "b24es_bindings{type=\"online\",state=\"error\"} 0"));
  BOOST_CHECK(hasLine(up, "b24es_bindings{type=\"offline\",state=\"bound\"} 0"));
  BOOST_CHECK(hasLine(up, "b24es_bindings{type=\"offline\",state=\"error\"} 1"));
}

BOOST_AUTO_TEST_CASE(label_values_are_escaped) {
  Metrics m;
  m.countIngest(Metrics::IngestResult::kRejected, "A\"B\\C\nD", 0.001);
  std::string text = m.render(std::nullopt);
  BOOST_CHECK(hasLine(
      text, "b24es_events_received_total{result=\"rejected\",event=\"A\\\"B\\\\C\\nD\"} 1"));
}

BOOST_AUTO_TEST_CASE(random_event_codes_cannot_grow_the_metrics_without_bound) {
  Metrics m;
  for (int i = 0; i < 1000; ++i) {
    m.countIngest(Metrics::IngestResult::kRejected, "RANDOM" + std::to_string(i), 0.001);
  }
  std::string text = m.render(std::nullopt);
  BOOST_CHECK(hasLine(text, "b24es_events_received_total{result=\"rejected\",event=\"_other\"} " +
                                std::to_string(1000 - Metrics::kMaxLabelValues)));
  BOOST_CHECK(text.find("RANDOM999") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(recording_from_many_threads_loses_nothing) {
  Metrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&m] {
      for (int i = 0; i < 1000; ++i) {
        m.countIngest(Metrics::IngestResult::kStored, "E", 0.001);
        m.observeBatch(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::string text = m.render(std::nullopt);
  BOOST_CHECK(hasLine(text, "b24es_events_received_total{result=\"stored\",event=\"E\"} 8000"));
  BOOST_CHECK(hasLine(text, "b24es_writer_batch_events_count 8000"));
}

BOOST_AUTO_TEST_CASE(rejections_recorded_and_dropped_are_counters_from_zero) {
  Metrics m;
  std::string before = m.render(std::nullopt);
  BOOST_CHECK(hasLine(before, "b24es_rejections_recorded_total 0"));
  BOOST_CHECK(hasLine(before, "b24es_rejections_dropped_total 0"));
  BOOST_CHECK(before.find("# TYPE b24es_rejections_dropped_total counter") != std::string::npos);
  m.countRejections(5, 0);
  m.countRejections(2, 3);
  m.countRejections(0, 1);
  std::string after = m.render(std::nullopt);
  BOOST_CHECK(hasLine(after, "b24es_rejections_recorded_total 7"));
  BOOST_CHECK(hasLine(after, "b24es_rejections_dropped_total 4"));
}

// The token gauges are counted by the store at each scrape, against the service's clock: a token
// is valid until its expiry, expired from that second on, and a failed refresh outranks both.
BOOST_AUTO_TEST_CASE(token_states_follow_the_stored_rows_and_the_clock) {
  b24es::test::TempDir dir;
  b24es::test::FakeClock clock;  // 2026-01-01T10:00:00Z; the install's token expires an hour on
  const std::int64_t now = clock.nowMillis() / 1000;
  b24es::Service service(b24es::test::testSettings(dir), clock);
  service.start();
  auto scrape = [&] {
    b24es::test::HttpResult r = b24es::test::httpGet(service.queryUrl(), "/metrics");
    BOOST_REQUIRE_EQUAL(r.status, 200);
    std::map<std::string, std::string> samples;  // "name{labels}" -> value
    Poco::StringTokenizer lines(r.body, "\n", Poco::StringTokenizer::TOK_IGNORE_EMPTY);
    for (const std::string& line : lines) {
      if (line[0] == '#') continue;
      std::size_t space = line.rfind(' ');
      samples[line.substr(0, space)] = line.substr(space + 1);
    }
    BOOST_CHECK_EQUAL(samples["b24es_storage_up"], "1");
    return samples;
  };
  auto states = [&] {
    std::map<std::string, std::string> samples = scrape();
    std::string out;
    for (const char* state : {"valid", "access_expired", "no_refresh_token", "refresh_failed"}) {
      out += std::string(state) + "=" +
             samples[std::string("b24es_tokens{state=\"") + state + "\"}"] + " ";
    }
    return out;
  };
  BOOST_CHECK_EQUAL(states(), "valid=0 access_expired=0 no_refresh_token=0 refresh_failed=0 ");

  const std::string path = b24es::test::testSettings(dir).ingest.path;
  BOOST_REQUIRE_EQUAL(
      b24es::test::postForm(service.ingestUrl(), path, b24es::test::sample("01-ONAPPINSTALL.form"))
          .status,
      200);
  BOOST_CHECK_EQUAL(states(), "valid=1 access_expired=0 no_refresh_token=0 refresh_failed=0 ");
  // User 2's access token comes with an event, without a refresh token.
  const std::string event =
      "event=ONCRMDEALADD&data%5BFIELDS%5D%5BID%5D=7&auth%5Bdomain%5D=acme-test.bitrix24.com"
      "&auth%5Bmember_id%5D=7c1e5a93d2b84f06a9e3c5d71b2f8e40"
      "&auth%5Bapplication_token%5D=f4a8c2e61b9d7035e8c4a1f6d2b97e53&auth%5Buser_id%5D=2"
      "&auth%5Baccess_token%5D=event-access-2d7c9e1f&auth%5Bexpires%5D=" +
      std::to_string(now + 60);
  BOOST_REQUIRE_EQUAL(b24es::test::postForm(service.ingestUrl(), path, event).status, 200);
  BOOST_CHECK_EQUAL(states(), "valid=1 access_expired=0 no_refresh_token=1 refresh_failed=0 ");
  std::map<std::string, std::string> samples = scrape();
  BOOST_CHECK_EQUAL(
      samples["b24es_events_received_total{result=\"stored\",event=\"ONAPPINSTALL\"}"], "1");
  BOOST_CHECK_EQUAL(
      samples["b24es_events_received_total{result=\"stored\",event=\"ONCRMDEALADD\"}"], "1");

  // The install's token expires at now + 3600: valid one second before, expired at that second.
  clock.setSeconds(now + 3599);
  BOOST_CHECK_EQUAL(states(), "valid=1 access_expired=0 no_refresh_token=1 refresh_failed=0 ");
  clock.setSeconds(now + 3600);
  BOOST_CHECK_EQUAL(states(), "valid=0 access_expired=1 no_refresh_token=1 refresh_failed=0 ");

  // A failed refresh, recorded as the refresher records it, outranks the expiry.
  b24es::TokenStore& tokens = service.storage().tokenStore();
  std::optional<b24es::StoredToken> installed =
      tokens.findToken("7c1e5a93d2b84f06a9e3c5d71b2f8e40", 1);
  BOOST_REQUIRE(installed && installed->refreshToken);
  b24es::ClaimRequest request;
  request.memberId = installed->memberId;
  request.userId = 1;
  request.expectedRefreshToken = installed->refreshToken;
  b24es::Claim claim = tokens.claim(request, now + 3600);
  BOOST_REQUIRE(claim.status == b24es::Claim::Status::kClaimed);
  BOOST_REQUIRE(tokens.recordFailure(claim, "temporarily_unavailable", false, now + 3600));
  BOOST_CHECK_EQUAL(states(), "valid=0 access_expired=0 no_refresh_token=1 refresh_failed=1 ");
  service.stop();
}
