#include "sqlite_portal_state.h"

#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>

#include <sstream>

#include "sqlite_connection.h"
#include "sqlite_counters.h"
#include "sqlite_statement.h"

namespace b24es::sqlite {
namespace {

// Offline records go to the table behind the events view (migration 0011), whose keys are found
// or made first (kOfflineKeys): a view takes no ON CONFLICT, and the unique (portal,
// offline_id) index is what stores a record handed out twice only once.
const char* const kOfflineKeys[] = {
    "INSERT OR IGNORE INTO event_portals(member_id) VALUES(?1)",
    "INSERT OR IGNORE INTO event_domains(domain) SELECT ?1 WHERE ?1 IS NOT NULL",
    "INSERT OR IGNORE INTO event_codes(event) VALUES(?1)",
};
const char* const kInsertOffline =
    "INSERT INTO event_rows(portal, domain, code, event_handler_id, event_id, ts, received_at, "
    "user_id, entity_id, entity_type_id, offline, offline_id, message_id, data) "
    "VALUES((SELECT key FROM event_portals WHERE member_id = ?1), "
    "(SELECT key FROM event_domains WHERE domain = ?2), "
    "(SELECT key FROM event_codes WHERE event = ?3), NULL, NULL, ?4, ?5, ?6, ?7, ?8, 1, ?10, "
    "?11, ?9) "
    "ON CONFLICT(portal, offline_id) WHERE offline_id IS NOT NULL DO NOTHING";

template <typename F>
auto guarded(F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Poco::Exception& e) {
    throw StorageError("portal state: " + e.displayText());
  }
}

std::string idsJson(const std::vector<OfflineEvent>& records) {
  Poco::JSON::Array ids;
  for (const OfflineEvent& r : records) ids.add(r.offlineId);
  std::ostringstream out;
  ids.stringify(out);
  return out.str();
}

std::vector<std::int64_t> idsOf(const std::string& json) {
  std::vector<std::int64_t> ids;
  try {
    Poco::JSON::Parser parser;
    auto array = parser.parse(json).extract<Poco::JSON::Array::Ptr>();
    for (std::size_t i = 0; i < array->size(); ++i)
      ids.push_back(array->getElement<Poco::Int64>(i));
  } catch (const Poco::Exception&) {
    // A damaged note: cleared with no ids it would clear the whole reservation, which is what
    // its process_id names anyway.
  }
  return ids;
}

}  // namespace

SqlitePortalStateStore::SqlitePortalStateStore(const SqliteSettings& settings,
                                               const HealthBoard& board)
    : settings_(settings),
      board_(board),
      generation_(board.generation()),
      session_(openSession(settings)) {}

void SqlitePortalStateStore::reopenIfMoved() {
  std::uint64_t now = board_.generation();
  if (now == generation_) return;
  // Notes and bindings written to the old file would be lost with it.
  session_ = openSession(settings_);
  generation_ = now;
}

sqlite3* SqlitePortalStateStore::db() {
  reopenIfMoved();
  return Poco::Data::SQLite::Utility::dbHandle(session_);
}

std::vector<PortalRecord> SqlitePortalStateStore::installedPortals(
    const std::optional<std::string>& memberId) {
  return guarded([&] {
    MutexLock lock(mutex_);
    Statement s(db(),
                "SELECT member_id, domain, client_endpoint, server_endpoint, status, scope, "
                "installed_at FROM portals WHERE installed_at IS NOT NULL AND uninstalled_at IS "
                "NULL AND (?1 IS NULL OR member_id = ?1) ORDER BY member_id");
    s.bind(1, memberId);
    std::vector<PortalRecord> out;
    while (s.row()) {
      PortalRecord p;
      p.memberId = s.text(0);
      p.domain = s.text(1);
      p.clientEndpoint = s.text(2);
      p.serverEndpoint = s.text(3);
      p.status = s.text(4);
      p.scope = s.text(5);
      p.installedAt = s.optionalInteger(6);
      out.push_back(std::move(p));
    }
    return out;
  });
}

std::vector<BindingRecord> SqlitePortalStateStore::bindings(const std::string& memberId) {
  return guarded([&] {
    MutexLock lock(mutex_);
    Statement s(db(),
                "SELECT event, type, state, error, updated_at FROM bindings WHERE member_id = ?1 "
                "ORDER BY event, type");
    s.bind(1, memberId);
    std::vector<BindingRecord> out;
    while (s.row()) {
      out.push_back(
          BindingRecord{s.text(0), s.text(1), s.text(2), s.optionalText(3), s.integer(4)});
    }
    return out;
  });
}

void SqlitePortalStateStore::recordBinding(const std::string& memberId, const BindingRecord& b) {
  guarded([&] {
    MutexLock lock(mutex_);
    Statement s(db(),
                "INSERT INTO bindings(member_id, event, type, state, error, updated_at) "
                "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(member_id, event, type) DO UPDATE "
                "SET state = excluded.state, error = excluded.error, "
                "updated_at = excluded.updated_at");
    s.bind(1, memberId).bind(2, b.event).bind(3, b.type).bind(4, b.state).bind(5, b.error);
    s.bind(6, b.updatedAt).run();
  });
}

void SqlitePortalStateStore::removeBinding(const std::string& memberId, const std::string& event,
                                           const std::string& type) {
  guarded([&] {
    MutexLock lock(mutex_);
    Statement s(db(), "DELETE FROM bindings WHERE member_id = ?1 AND event = ?2 AND type = ?3");
    s.bind(1, memberId).bind(2, event).bind(3, type).run();
  });
}

OfflineState SqlitePortalStateStore::offlineState(const std::string& memberId) {
  return guarded([&] {
    MutexLock lock(mutex_);
    Statement s(db(),
                "SELECT mode, last_pass_at, last_error, fetched FROM offline_state "
                "WHERE member_id = ?1");
    s.bind(1, memberId);
    OfflineState state;
    if (s.row()) {
      state.mode = s.text(0);
      state.lastPassAt = s.optionalInteger(1);
      state.lastError = s.optionalText(2);
      state.fetched = s.integer(3);
      s.reset();
    }
    return state;
  });
}

void SqlitePortalStateStore::setOfflineMode(const std::string& memberId, const std::string& mode) {
  guarded([&] {
    MutexLock lock(mutex_);
    Statement s(db(),
                "INSERT INTO offline_state(member_id, mode) VALUES(?1, ?2) "
                "ON CONFLICT(member_id) DO UPDATE SET mode = excluded.mode");
    s.bind(1, memberId).bind(2, mode).run();
  });
}

void SqlitePortalStateStore::recordOfflinePass(const std::string& memberId,
                                               const std::optional<std::string>& error,
                                               std::int64_t nowSeconds) {
  guarded([&] {
    MutexLock lock(mutex_);
    Statement s(db(),
                "INSERT INTO offline_state(member_id, last_pass_at, last_error) VALUES(?1, ?2, ?3) "
                "ON CONFLICT(member_id) DO UPDATE SET last_pass_at = excluded.last_pass_at, "
                "last_error = excluded.last_error");
    s.bind(1, memberId).bind(2, nowSeconds).bind(3, error).run();
  });
}

std::size_t SqlitePortalStateStore::storeOfflineBatch(const std::string& memberId,
                                                      const std::string& processId,
                                                      const std::vector<OfflineEvent>& records,
                                                      std::int64_t nowMillis) {
  return guarded([&] {
    MutexLock lock(mutex_);
    sqlite3* const handle = db();
    ImmediateTransaction transaction(session_);
    std::size_t stored = 0;
    // The counters of migration 0006 change with every stored event, in its transaction, as
    // the writer changes them.
    CounterChanges counters(handle);
    {
      Statement portalKey(handle, kOfflineKeys[0]);
      Statement domainKey(handle, kOfflineKeys[1]);
      Statement codeKey(handle, kOfflineKeys[2]);
      Statement insert(handle, kInsertOffline);
      for (const OfflineEvent& r : records) {
        const IncomingEvent& e = r.event;
        portalKey.bind(1, memberId).run();
        domainKey.bindTextOrNull(1, e.domain).run();
        codeKey.bind(1, e.event).run();
        insert.bind(1, memberId).bindTextOrNull(2, e.domain).bind(3, e.event).bind(4, e.ts);
        insert.bind(5, nowMillis).bind(6, e.userId).bind(7, e.entityId).bind(8, e.entityTypeId);
        insert.bind(9, e.dataJson).bind(10, r.offlineId).bind(11, r.messageId).run();
        if (::sqlite3_changes(handle) > 0) {
          ++stored;
          counters.add(memberId, e.event, nowMillis, 1);
        }
      }
    }
    if (!processId.empty()) {
      Statement note(handle,
                     "INSERT INTO offline_batches(member_id, process_id, ids, noted_at) "
                     "VALUES(?1, ?2, ?3, ?4) ON CONFLICT(member_id, process_id) DO UPDATE "
                     "SET ids = excluded.ids, noted_at = excluded.noted_at");
      const std::string ids = idsJson(records);  // bound text must outlive run()
      note.bind(1, memberId).bind(2, processId).bind(3, ids);
      note.bind(4, nowMillis / 1000).run();
    }
    Statement count(handle,
                    "INSERT INTO offline_state(member_id, fetched) VALUES(?1, ?2) "
                    "ON CONFLICT(member_id) DO UPDATE SET fetched = fetched + excluded.fetched");
    count.bind(1, memberId).bind(2, static_cast<std::int64_t>(stored)).run();
    counters.flush();
    transaction.commit();
    return stored;
  });
}

std::vector<OfflineNote> SqlitePortalStateStore::offlineNotes(const std::string& memberId) {
  return guarded([&] {
    MutexLock lock(mutex_);
    Statement s(db(),
                "SELECT process_id, ids FROM offline_batches WHERE member_id = ?1 "
                "ORDER BY noted_at, process_id");
    s.bind(1, memberId);
    std::vector<OfflineNote> out;
    while (s.row()) out.push_back(OfflineNote{s.text(0), idsOf(s.text(1))});
    return out;
  });
}

void SqlitePortalStateStore::dropOfflineNote(const std::string& memberId,
                                             const std::string& processId) {
  guarded([&] {
    MutexLock lock(mutex_);
    Statement s(db(), "DELETE FROM offline_batches WHERE member_id = ?1 AND process_id = ?2");
    s.bind(1, memberId).bind(2, processId).run();
  });
}

}  // namespace b24es::sqlite
