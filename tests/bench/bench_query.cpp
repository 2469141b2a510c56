// b24es-bench-query: the query API benchmark behind scripts/bench-query (run by hand, never by
// ctest; timings belong in README, not in assertions).
//
// 1. Builds a database of --events realistic events over --portals portals through the storage
//    layer: each portal is installed with ONAPPINSTALL, then the events go through the real
//    verifier and EventSink::write from --threads threads (group commit), each carrying an
//    access token as Bitrix24's do. Skipped when --db already holds that many events.
// 2. Starts a Service on that database (query listener on 127.0.0.1:0) and times, over HTTP
//    with one keep-alive connection, --reps requests of each query; beside each, the same query
//    through the storage layer in-process (EventReader, the very SQL the API runs): the floor.
// 3. Prints a Markdown table of p50 and p99.
#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/Exception.h>
#include <Poco/File.h>
#include <Poco/MD5Engine.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <Poco/String.h>
#include <Poco/URI.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "clock.h"
#include "embedded_migrations.h"
#include "service.h"
#include "sqlite_storage.h"
#include "verifier.h"

namespace {

using b24es::EventFilter;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string db = "data/bench-query.db";
  std::int64_t events = 1000000;
  int portals = 100;
  int threads = 32;
  int reps = 2000;
  std::string only;      // run only the queries whose name contains this
  bool sqlFill = false;  // --fill sql: build the database with SQL, not through the writer
};

void usage() {
  std::cerr << "usage: b24es-bench-query [--db PATH] [--events N] [--portals N] [--threads N] "
               "[--reps N] [--only TEXT] [--fill writer|sql]\n";
}

bool parseOptions(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string name = argv[i];
    if (i + 1 >= argc) return false;
    std::string value = argv[++i];
    try {
      if (name == "--db") {
        o.db = value;
      } else if (name == "--events") {
        o.events = std::stoll(value);
      } else if (name == "--portals") {
        o.portals = std::stoi(value);
      } else if (name == "--threads") {
        o.threads = std::stoi(value);
      } else if (name == "--reps") {
        o.reps = std::stoi(value);
      } else if (name == "--only") {
        o.only = value;
      } else if (name == "--fill") {
        if (value != "sql" && value != "writer") return false;
        o.sqlFill = value == "sql";
      } else {
        return false;
      }
    } catch (const std::exception&) {
      return false;
    }
  }
  return o.events > 0 && o.portals > 0 && o.threads > 0 && o.reps > 0;
}

std::string md5(const std::string& text) {
  Poco::MD5Engine engine;
  engine.update(text);
  return Poco::DigestEngine::digestToHex(engine.digest());
}

// The shape of the generated data, shared by the builder and the queries.
struct Dataset {
  explicit Dataset(const Options& o) : options(o) {
    for (int p = 0; p < o.portals; ++p) {
      memberIds.push_back(md5("portal-" + std::to_string(p)));
      domains.push_back("portal-" + std::to_string(p) + ".bitrix24.com");
      appTokens.push_back(md5("application-token-" + std::to_string(p)));
    }
  }
  // Events spread evenly over 30 days from 2026-01-01.
  std::int64_t tsOf(std::int64_t i) const { return kStart + i * kSpan / options.events; }

  static constexpr std::int64_t kStart = 1767225600;
  static constexpr std::int64_t kSpan = 30 * 86400;
  static constexpr int kEntitiesPerPortal = 2000;
  static constexpr int kUsersPerPortal = 50;

  const Options options;
  std::vector<std::string> memberIds, domains, appTokens;
};

// What Bitrix24 sends most, roughly in its proportions: updates dominate.
struct EventKind {
  const char* code;
  int weight;
};
const EventKind kEvents[] = {
    {"ONCRMDEALUPDATE", 30},         {"ONCRMDEALADD", 10},
    {"ONCRMCONTACTUPDATE", 15},      {"ONCRMCONTACTADD", 5},
    {"ONCRMTIMELINECOMMENTADD", 10}, {"ONCRMDYNAMICITEMUPDATE", 10},
    {"ONCRMDYNAMICITEMADD", 5},      {"ONTASKUPDATE", 10},
    {"ONCRMACTIVITYADD", 5},
};

b24es::IncomingEvent baseEvent(const Dataset& d, int portal) {
  b24es::IncomingEvent e;
  e.memberId = d.memberIds[portal];
  e.domain = d.domains[portal];
  e.clientEndpoint = "https://" + d.domains[portal] + "/rest/";
  e.serverEndpoint = "https://oauth.bitrix.info/rest/";
  e.status = "P";
  e.scope = "crm,task,user";
  e.applicationToken = d.appTokens[portal];
  return e;
}

b24es::IncomingEvent generated(const Dataset& d, std::int64_t i, std::mt19937_64& rng) {
  const int portal = static_cast<int>(i % d.options.portals);
  b24es::IncomingEvent e = baseEvent(d, portal);
  int pick = static_cast<int>(rng() % 100);
  const EventKind* kind = &kEvents[0];
  for (const EventKind& k : kEvents) {
    if (pick < k.weight) {
      kind = &k;
      break;
    }
    pick -= k.weight;
  }
  e.event = kind->code;
  e.eventHandlerId = 100 + static_cast<std::int64_t>(kind - kEvents);
  e.ts = d.tsOf(i) + static_cast<std::int64_t>(rng() % 60) - 30;
  e.userId = 1 + static_cast<std::int64_t>(rng() % Dataset::kUsersPerPortal);
  e.entityId = 1 + static_cast<std::int64_t>(rng() % Dataset::kEntitiesPerPortal);
  std::string fields = "{\"ID\":\"" + std::to_string(*e.entityId) + "\"";
  if (e.event.find("DYNAMICITEM") != std::string::npos) {
    e.entityTypeId = 1030 + static_cast<std::int64_t>(rng() % 4) * 2;
    fields += ",\"ENTITY_TYPE_ID\":\"" + std::to_string(*e.entityTypeId) + "\"";
  }
  e.dataJson = "{\"FIELDS\":" + fields + "}}";
  b24es::TokenGrant token;
  token.userId = *e.userId;
  token.accessToken = md5("access-" + std::to_string(i)) + md5(std::to_string(i));
  token.expiresAt = *e.ts + 3600;
  token.scope = e.scope;
  e.tokens.push_back(token);
  return e;
}

std::int64_t countEvents(b24es::Storage& storage) {
  std::int64_t total = 0;
  for (const auto& byEvent : storage.reader().stats().byEvent) total += byEvent.count;
  return total;
}

void build(const Dataset& d, b24es::Storage& storage) {
  const std::vector<std::string> noStaticTokens;
  auto sink = storage.openEventSink(
      [&](const b24es::IncomingEvent& e, const std::optional<b24es::PortalRecord>& p) {
        return b24es::verifyEvent(e, p, noStaticTokens);
      },
      b24es::SinkSettings{});
  for (int p = 0; p < d.options.portals; ++p) {
    b24es::IncomingEvent install = baseEvent(d, p);
    install.kind = b24es::EventKind::kInstall;
    install.event = "ONAPPINSTALL";
    install.ts = Dataset::kStart;
    install.userId = 1;
    install.dataJson =
        "{\"VERSION\":\"1\",\"ACTIVE\":\"Y\",\"INSTALLED\":\"Y\",\"LANGUAGE_ID\":\"en\"}";
    b24es::TokenGrant grant{1, md5("install-access-" + std::to_string(p)),
                            md5("install-refresh-" + std::to_string(p)), Dataset::kStart + 3600,
                            install.scope};
    install.tokens.push_back(grant);
    if (sink->write(install).status != b24es::IngestOutcome::Status::kStored) {
      throw std::runtime_error("install of portal " + std::to_string(p) + " was not stored");
    }
  }
  const std::int64_t total = d.options.events - d.options.portals;
  std::atomic<std::int64_t> next{0}, failed{0};
  auto started = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < d.options.threads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) * 7919 + 1);
      for (std::int64_t i; (i = next.fetch_add(1)) < total;) {
        if (sink->write(generated(d, i, rng)).status != b24es::IngestOutcome::Status::kStored) {
          ++failed;
        }
        if (i > 0 && i % 100000 == 0) std::cerr << "  " << i << " events" << std::endl;
      }
    });
  }
  for (auto& t : threads) t.join();
  sink->close();
  double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::cerr << "built " << total << " events in " << seconds << " s ("
            << static_cast<std::int64_t>(static_cast<double>(total) / seconds)
            << " events/s, synchronous=normal, " << d.options.threads << " writer threads)"
            << std::endl;
  if (failed > 0) throw std::runtime_error(std::to_string(failed.load()) + " events failed");
}

// --fill sql: the events of the same shape (portals, codes in their proportions, users,
// entities, smart-process types, 30 days) written by INSERT ... SELECT over a recursive CTE on
// a database migrated up to 0005, with the events indexes dropped while it fills and made again
// from their own CREATE statements afterwards; then migration 0006 backfills the counters as
// it does on any existing database. For 10,000,000 events, where the writer would take hours.
void buildWithSql(const Dataset& d, const b24es::SqliteSettings& db, const b24es::Clock& clock) {
  std::vector<b24es::Migration> before;
  for (const b24es::Migration& m : b24es::embeddedMigrations()) {
    if (m.version < 6) before.push_back(m);
  }
  {
    auto storage = b24es::openSqliteStorage(db, clock, before);
    if (!storage->migrator().apply().ok) throw std::runtime_error("migrations up to 0005 failed");
  }
  Poco::Data::SQLite::Connector::registerConnector();
  Poco::Data::Session session("SQLite", db.path);
  using Poco::Data::Keywords::now;
  auto started = Clock::now();
  session << "PRAGMA journal_mode=OFF", now;
  session << "PRAGMA synchronous=OFF", now;
  session << "PRAGMA cache_size=-262144", now;
  std::vector<std::string> indexes, names;
  session << "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
             "AND sql IS NOT NULL",
      Poco::Data::Keywords::into(names), Poco::Data::Keywords::into(indexes), now;
  session << "BEGIN", now;
  for (const std::string& name : names) session << "DROP INDEX " + name, now;
  session << "CREATE TEMP TABLE bench_portals(k INTEGER PRIMARY KEY, member_id, domain)", now;
  session << "CREATE TEMP TABLE bench_codes(k INTEGER PRIMARY KEY, code, handler)", now;
  for (int p = 0; p < d.options.portals; ++p) {
    session << "INSERT INTO bench_portals VALUES(?, ?, ?)", Poco::Data::Keywords::bind(p),
        Poco::Data::Keywords::bind(d.memberIds[p]), Poco::Data::Keywords::bind(d.domains[p]), now;
    session << "INSERT INTO portals(member_id, domain, client_endpoint, server_endpoint, "
               "application_token, status, scope, installed_at, updated_at) "
               "VALUES(?, ?, ?, 'https://oauth.bitrix.info/rest/', ?, 'P', 'crm,task,user', ?, ?)",
        Poco::Data::Keywords::bind(d.memberIds[p]), Poco::Data::Keywords::bind(d.domains[p]),
        Poco::Data::Keywords::bind("https://" + d.domains[p] + "/rest/"),
        Poco::Data::Keywords::bind(d.appTokens[p]), Poco::Data::Keywords::bind(Dataset::kStart),
        Poco::Data::Keywords::bind(Dataset::kStart), now;
    session << "INSERT INTO tokens(member_id, user_id, access_token, refresh_token, expires_at, "
               "refresh_token_at, scope, source, updated_at) "
               "VALUES(?, 1, ?, ?, ?, ?, 'crm,task,user', 'install', ?)",
        Poco::Data::Keywords::bind(d.memberIds[p]),
        Poco::Data::Keywords::bind(md5("install-access-" + std::to_string(p))),
        Poco::Data::Keywords::bind(md5("install-refresh-" + std::to_string(p))),
        Poco::Data::Keywords::bind(Dataset::kStart + 3600),
        Poco::Data::Keywords::bind(Dataset::kStart), Poco::Data::Keywords::bind(Dataset::kStart),
        now;
  }
  int k = 0;
  for (const EventKind& kind : kEvents) {
    for (int w = 0; w < kind.weight; ++w, ++k) {
      session << "INSERT INTO bench_codes VALUES(?, ?, ?)", Poco::Data::Keywords::bind(k),
          Poco::Data::Keywords::bind(std::string(kind.code)),
          Poco::Data::Keywords::bind(100 + static_cast<int>(&kind - kEvents)), now;
    }
  }
  const std::string n = std::to_string(d.options.events);
  const std::string portals = std::to_string(d.options.portals);
  session << "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < " + n +
                 " - 1), "
                 "r AS (SELECT i, " +
                 std::to_string(Dataset::kStart) + " + i * " + std::to_string(Dataset::kSpan) +
                 " / " + n +
                 " AS t, abs(random()) % 100 AS pick, 1 + abs(random()) % 2000 AS entity, "
                 "1 + abs(random()) % 50 AS user, abs(random()) % 4 AS type FROM n) "
                 "INSERT INTO events(member_id, domain, event, event_handler_id, ts, received_at, "
                 "user_id, entity_id, entity_type_id, data) "
                 "SELECT p.member_id, p.domain, c.code, c.handler, r.t, r.t * 1000 + r.i % 1000, "
                 "r.user, r.entity, "
                 "CASE WHEN c.code LIKE '%DYNAMICITEM%' THEN 1030 + r.type * 2 END, "
                 "'{\"FIELDS\":{\"ID\":\"' || r.entity || '\"' || "
                 "CASE WHEN c.code LIKE '%DYNAMICITEM%' THEN ',\"ENTITY_TYPE_ID\":\"' || "
                 "(1030 + r.type * 2) || '\"' ELSE '' END || '}}' "
                 "FROM r JOIN bench_portals p ON p.k = r.i % " +
                 portals + " JOIN bench_codes c ON c.k = r.pick ORDER BY r.i",
      now;
  std::cerr << "  inserted " << n << " events in "
            << std::chrono::duration<double>(Clock::now() - started).count() << " s" << std::endl;
  for (const std::string& sql : indexes) session << sql, now;
  session << "COMMIT", now;
  std::cerr << "  indexed in " << std::chrono::duration<double>(Clock::now() - started).count()
            << " s" << std::endl;
  session << "PRAGMA journal_mode=WAL", now;
  session.close();
  auto storage = b24es::openSqliteStorage(db, clock, b24es::embeddedMigrations());
  if (!storage->migrator().apply().ok) throw std::runtime_error("migration 0006 failed");
  std::cerr << "built " << n << " events with SQL, counters backfilled by 0006, in "
            << std::chrono::duration<double>(Clock::now() - started).count() << " s" << std::endl;
}

std::string queryOf(const EventFilter& f) {
  std::string q = "/api/v1/events?limit=" + std::to_string(f.limit);
  auto add = [&q](const char* name, const std::string& value) {
    std::string encoded;
    Poco::URI::encode(value, "&=+#%?", encoded);
    q += std::string("&") + name + "=" + encoded;
  };
  if (f.memberId) add("member_id", *f.memberId);
  if (f.event) add("event", Poco::toLower(*f.event));
  if (f.entityId) add("entity_id", std::to_string(*f.entityId));
  if (f.from) add("from", std::to_string(*f.from));
  if (f.to) add("to", std::to_string(*f.to));
  if (f.afterId) add("after_id", std::to_string(*f.afterId));
  return q;
}

struct Percentiles {
  double p50 = 0, p99 = 0;  // milliseconds
};

Percentiles percentiles(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    std::size_t i = static_cast<std::size_t>(q * static_cast<double>(ms.size() - 1) + 0.5);
    return ms[std::min(i, ms.size() - 1)];
  };
  return {at(0.50), at(0.99)};
}

// One keep-alive connection to the query listener; GET returns the body size (0 on error).
class HttpClient {
 public:
  explicit HttpClient(const std::string& url) {
    Poco::URI uri(url);
    session_ = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
    session_->setKeepAlive(true);
  }
  std::size_t get(const std::string& target) {
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, target,
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    request.setKeepAlive(true);
    session_->sendRequest(request);
    Poco::Net::HTTPResponse response;
    std::istream& in = session_->receiveResponse(response);
    body_.clear();
    Poco::StreamCopier::copyToString(in, body_);
    if (response.getStatus() != 200) {
      throw std::runtime_error(target + " answered " + std::to_string(response.getStatus()) + ": " +
                               body_);
    }
    return body_.size();
  }

 private:
  std::unique_ptr<Poco::Net::HTTPClientSession> session_;
  std::string body_;
};

struct Case {
  std::string name;
  std::function<EventFilter(int rep)> filter;
};

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parseOptions(argc, argv, options)) {
    usage();
    return 2;
  }
  try {
    Dataset data(options);
    b24es::Settings settings;
    settings.db.path = options.db;
    settings.db.synchronous = "normal";
    settings.ingest.listen = "127.0.0.1:0";
    settings.query.listen = "127.0.0.1:0";
    b24es::SystemClock clock;
    if (options.sqlFill && !Poco::File(options.db).exists()) {
      std::cerr << "building " << options.events << " events over " << options.portals
                << " portals in " << options.db << " with SQL" << std::endl;
      buildWithSql(data, settings.db, clock);
    }
    {
      auto storage = b24es::openSqliteStorage(settings.db, clock, b24es::embeddedMigrations());
      b24es::MigrationResult migrated = storage->migrator().apply();
      if (!migrated.ok) throw std::runtime_error(migrated.error);
      std::int64_t existing = countEvents(*storage);
      if (existing == 0) {
        std::cerr << "building " << options.events << " events over " << options.portals
                  << " portals in " << options.db << std::endl;
        build(data, *storage);
      } else if (existing != options.events) {
        throw std::runtime_error(options.db + " holds " + std::to_string(existing) +
                                 " events, not " + std::to_string(options.events) +
                                 "; remove it or pass --events " + std::to_string(existing));
      } else {
        std::cerr << "reusing " << options.db << " (" << existing << " events)" << std::endl;
      }
    }

    b24es::Service service(settings, clock);
    service.start();
    b24es::EventReader& reader = service.storage().reader();

    // The cursor of the 10,000th page (or the last one of a smaller database), found by walking.
    const std::int64_t pageNumber = std::min<std::int64_t>(10000, options.events / 100);
    EventFilter walk;
    for (std::int64_t page = 1; page < pageNumber; ++page) {
      walk.afterId = reader.queryEvents(walk).nextAfterId;
    }
    const std::optional<std::int64_t> deepCursor = walk.afterId;

    std::mt19937_64 rng(42);
    std::vector<std::int64_t> entity(options.reps), hour(options.reps);
    for (int r = 0; r < options.reps; ++r) {
      entity[r] = 1 + static_cast<std::int64_t>(rng() % Dataset::kEntitiesPerPortal);
      hour[r] = static_cast<std::int64_t>(rng() % (Dataset::kSpan / 3600 - 1));
    }
    auto portal = [&](int rep) { return data.memberIds[rep % options.portals]; };
    const std::vector<Case> cases = {
        {"page of 100, one portal",
         [&](int r) {
           EventFilter f;
           f.memberId = portal(r);
           return f;
         }},
        {"portal + event code",
         [&](int r) {
           EventFilter f;
           f.memberId = portal(r);
           f.event = "ONCRMDEALUPDATE";
           return f;
         }},
        {"one entity's history (portal + entity_id)",
         [&](int r) {
           EventFilter f;
           f.memberId = portal(r);
           f.entityId = entity[r];
           return f;
         }},
        {"from/to window of one hour",
         [&](int r) {
           EventFilter f;
           f.from = Dataset::kStart + hour[r] * 3600;
           f.to = *f.from + 3599;
           return f;
         }},
        {"page " + std::to_string(pageNumber) + " via cursor",
         [&](int) {
           EventFilter f;
           f.afterId = deepCursor;
           return f;
         }},
    };

    HttpClient http(service.queryUrl());
    const int warmup = std::min(200, options.reps);
    std::printf("| query | API p50 | API p99 | floor p50 | floor p99 | p50 API/floor |\n");
    std::printf("|---|---:|---:|---:|---:|---:|\n");
    for (const Case& c : cases) {
      if (c.name.find(options.only) == std::string::npos) continue;
      std::vector<double> api, floor;
      std::size_t rows = 0, bytes = 0;
      // Floor and API alternate, so that both see the same moments of a shared machine, but
      // on different inputs (half the repetitions apart): neither may find the pages of the
      // query it times freshly read by the other.
      for (int r = -warmup; r < options.reps; ++r) {
        const int rep = std::max(r, 0);
        std::string target = queryOf(c.filter((rep + options.reps / 2) % options.reps));
        auto t0 = Clock::now();
        b24es::EventPage page = reader.queryEvents(c.filter(rep));
        auto t1 = Clock::now();
        std::size_t size = http.get(target);
        auto t2 = Clock::now();
        if (r >= 0) {
          floor.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
          api.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
          rows += page.items.size();
          bytes += size;
        }
      }
      Percentiles a = percentiles(api), fl = percentiles(floor);
      std::printf("| %s (%.0f rows, %.0f KB) | %.3f ms | %.3f ms | %.3f ms | %.3f ms | %.1fx |\n",
                  c.name.c_str(), static_cast<double>(rows) / options.reps,
                  static_cast<double>(bytes) / options.reps / 1024, a.p50, a.p99, fl.p50, fl.p99,
                  a.p50 / fl.p50);
      std::fflush(stdout);
    }
    // The routes answered from counters: their cost must not grow with the events table.
    struct CounterCase {
      std::string name;
      std::function<void(int)> floor;
      std::function<std::string(int)> target;
    };
    const std::int64_t lastDay = Dataset::kStart + Dataset::kSpan - 86400;
    auto timelineOf = [&](std::int64_t width, std::int64_t from, std::int64_t to,
                          std::optional<std::string> member) {
      b24es::TimelineQuery q;
      q.width = width;
      q.from = from;
      q.to = to;
      q.memberId = std::move(member);
      return q;
    };
    const std::vector<CounterCase> counterCases = {
        {"/api/v1/stats", [&](int) { reader.stats(); }, [](int) { return "/api/v1/stats"; }},
        {"/api/v1/portals", [&](int) { reader.listPortals({}); },
         [](int) { return "/api/v1/portals"; }},
        {"/api/v1/portals/{id}", [&](int r) { reader.findPortalView(portal(r)); },
         [&](int r) { return "/api/v1/portals/" + portal(r); }},
        {"timeline: minutes of the last hour",
         [&](int) {
           reader.timeline(timelineOf(60, lastDay + 82800, lastDay + 86399, std::nullopt));
         },
         [&](int) {
           return "/api/v1/stats/timeline?from=" + std::to_string(lastDay + 82800) +
                  "&to=" + std::to_string(lastDay + 86399);
         }},
        {"timeline: days of 30 days",
         [&](int) {
           reader.timeline(timelineOf(86400, Dataset::kStart, lastDay + 86399, std::nullopt));
         },
         [&](int) {
           return "/api/v1/stats/timeline?bucket=day&from=" + std::to_string(Dataset::kStart) +
                  "&to=" + std::to_string(lastDay + 86399);
         }},
        {"timeline: one portal, hours of a day",
         [&](int r) { reader.timeline(timelineOf(3600, lastDay, lastDay + 86399, portal(r))); },
         [&](int r) {
           return "/api/v1/stats/timeline?bucket=hour&member_id=" + portal(r) +
                  "&from=" + std::to_string(lastDay) + "&to=" + std::to_string(lastDay + 86399);
         }},
    };
    for (const CounterCase& c : counterCases) {
      if (c.name.find(options.only) == std::string::npos) continue;
      std::vector<double> api, floor;
      std::size_t bytes = 0;
      for (int r = -warmup; r < options.reps; ++r) {
        const int rep = std::max(r, 0);
        auto t0 = Clock::now();
        c.floor(rep);
        auto t1 = Clock::now();
        std::size_t size = http.get(c.target((rep + options.reps / 2) % options.reps));
        auto t2 = Clock::now();
        if (r >= 0) {
          floor.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
          api.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
          bytes += size;
        }
      }
      Percentiles a = percentiles(api), fl = percentiles(floor);
      std::printf("| %s (%.0f KB) | %.3f ms | %.3f ms | %.3f ms | %.3f ms | %.1fx |\n",
                  c.name.c_str(), static_cast<double>(bytes) / options.reps / 1024, a.p50, a.p99,
                  fl.p50, fl.p99, a.p50 / fl.p50);
      std::fflush(stdout);
    }
    service.stop();
    return 0;
  } catch (const Poco::Exception& e) {
    std::cerr << "bench-query: " << e.displayText() << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "bench-query: " << e.what() << std::endl;
    return 1;
  }
}
