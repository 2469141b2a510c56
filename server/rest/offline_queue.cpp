#include "offline_queue.h"

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <Poco/JSON/Array.h>
#include <Poco/Logger.h>
#include <Poco/NumberParser.h>
#include <Poco/String.h>

#include <sstream>

#include "body_decoder.h"
#include "event_parser.h"

namespace b24es {
namespace {

constexpr int kBatchLimit = 50;  // Bitrix24's largest page of event.offline.get

Poco::Logger& offlineLog() { return Poco::Logger::get("b24es.offline"); }

std::optional<std::int64_t> integerOf(const Poco::Dynamic::Var& v) {
  if (v.isEmpty()) return std::nullopt;
  try {
    if (v.isInteger()) return v.convert<Poco::Int64>();
    Poco::Int64 n = 0;
    if (v.isString() && Poco::NumberParser::tryParse64(v.toString(), n)) return n;
  } catch (const Poco::Exception&) {
  }
  return std::nullopt;
}

// TIMESTAMP_X is ISO 8601 with the portal's offset ("2026-01-01T13:00:00+03:00").
std::optional<std::int64_t> unixOf(const std::string& text) {
  Poco::DateTime parsed;
  int tzd = 0;
  if (!Poco::DateTimeParser::tryParse(Poco::DateTimeFormat::ISO8601_FORMAT, text, parsed, tzd) &&
      !Poco::DateTimeParser::tryParse(text, parsed, tzd)) {
    return std::nullopt;
  }
  return parsed.timestamp().epochTime() - tzd;
}

std::string stringified(const Poco::Dynamic::Var& v) {
  std::ostringstream out;
  Poco::JSON::Stringifier::stringify(v, out);
  return out.str();
}

std::string describe(const RestResult& r) {
  return r.error + (r.description.empty() ? "" : ": " + r.description);
}

// event.offline.clear of one noted batch: its process_id (never empty, see pass()) and ids.
std::vector<std::pair<std::string, std::string>> clearParams(const OfflineNote& note) {
  std::vector<std::pair<std::string, std::string>> form;
  form.emplace_back("process_id", note.processId);
  for (std::int64_t id : note.ids) form.emplace_back("id[]", std::to_string(id));
  return form;
}

}  // namespace

std::optional<OfflineEvent> offlineEventOf(const Poco::JSON::Object::Ptr& record,
                                           const PortalRecord& portal, std::int64_t nowSeconds) {
  std::optional<std::int64_t> id = integerOf(record->get("ID"));
  const std::string name = record->optValue<std::string>("EVENT_NAME", "");
  if (!id || name.empty()) return std::nullopt;
  // Built as the JSON body of an online event and read by the same parser, so derived columns
  // and redaction are exactly those of online events.
  Poco::JSON::Object body(Poco::JSON_PRESERVE_KEY_ORDER);
  body.set("event", name);
  Poco::Dynamic::Var data = record->get("EVENT_DATA");
  const bool none = data.isEmpty() || (data.isBoolean() && !data.extract<bool>());
  body.set("data",
           none ? Poco::Dynamic::Var(Poco::JSON::Object::Ptr(new Poco::JSON::Object)) : data);
  if (auto ts = unixOf(record->optValue<std::string>("TIMESTAMP_X", ""))) body.set("ts", *ts);
  Poco::JSON::Object auth(Poco::JSON_PRESERVE_KEY_ORDER);
  auth.set("member_id", portal.memberId);
  auth.set("domain", portal.domain);
  if (auto additional = record->getObject("EVENT_ADDITIONAL")) {
    std::optional<std::int64_t> user = integerOf(additional->get("user_id"));
    if (user && *user != 0) auth.set("user_id", *user);
  }
  body.set("auth", auth);
  std::ostringstream text;
  body.stringify(text);
  DecodedBody decoded = decodeJsonBody(text.str(), DecodeLimits{});
  if (decoded.error) return std::nullopt;
  auto parsed = parseEvent(*decoded.root, nowSeconds);
  auto* event = std::get_if<IncomingEvent>(&parsed);
  if (!event) return std::nullopt;
  OfflineEvent out;
  out.event = std::move(*event);
  out.event.tokens.clear();  // a queued record's tokens are long stale
  out.offlineId = *id;
  std::string message = record->optValue<std::string>("MESSAGE_ID", "");
  if (!message.empty()) out.messageId = message;
  return out;
}

OfflineQueue::OfflineQueue(RestClient& rest, PortalStateStore& store, const Clock& clock,
                           Metrics* metrics)
    : rest_(rest), store_(store), clock_(clock), metrics_(metrics) {}

bool OfflineQueue::clear(const PortalRecord& portal, const OfflineNote& note, std::string& error) {
  if (note.processId.empty()) {  // never: without one Bitrix24 clears every unreserved record
    store_.dropOfflineNote(portal.memberId, note.processId);
    return true;
  }
  RestParams params;
  params.form = clearParams(note);
  RestResult r = rest_.call(portal, std::nullopt, "event.offline.clear", params);
  if (!r.ok()) {
    error = "event.offline.clear: " + r.error + (r.description.empty() ? "" : ": " + r.description);
    return false;
  }
  store_.dropOfflineNote(portal.memberId, note.processId);
  return true;
}

OfflinePassReport OfflineQueue::pass(const PortalRecord& portal) {
  OfflinePassReport report;
  Poco::Logger& log = offlineLog();
  auto fail = [&](std::string error) {
    report.failed = true;
    report.error = std::move(error);
  };
  OfflineState state = store_.offlineState(portal.memberId);
  // Batches a crash (or a failed clear) left committed but not cleared.
  for (const OfflineNote& note : store_.offlineNotes(portal.memberId)) {
    std::string error;
    if (!clear(portal, note, error)) {
      fail(error);
      break;
    }
  }
  // This pass's last batch: committed, noted, not yet cleared. Its clear travels in one `batch`
  // call with the next event.offline.get, so a pass makes one call per 50 records, not two
  // (rest.rate=2 allows about 100 records/s then; known gap (c) of branch rest).
  std::optional<OfflineNote> pending;
  try {
    while (!report.failed) {
      const bool clearMode = state.mode == "clear";
      RestParams params;
      params.form = {{"clear", clearMode ? "1" : "0"}, {"limit", std::to_string(kBatchLimit)}};
      RestResult r;
      if (pending) {
        RestParams batch;
        // halt=1: no event.offline.get runs after a failed clear (its records would be
        // reserved again under a new process_id while the old note still names them).
        batch.form = {{"halt", "1"},
                      {"cmd[clear]", batchCommand("event.offline.clear", clearParams(*pending))},
                      {"cmd[get]", batchCommand("event.offline.get", params.form)}};
        RestResult both = rest_.call(portal, std::nullopt, "batch", batch);
        if (!both.ok()) {
          fail("batch of event.offline.clear and event.offline.get: " + describe(both));
          break;
        }
        RestResult cleared = batchPart(both, "clear");
        if (!cleared.ok()) {
          fail("event.offline.clear: " + describe(cleared));
          break;
        }
        store_.dropOfflineNote(portal.memberId, pending->processId);
        pending.reset();
        r = batchPart(both, "get");
      } else {
        r = rest_.call(portal, std::nullopt, "event.offline.get", params);
      }
      if (!r.ok()) {
        if (!clearMode && r.error == "WRONG_LICENSE") {
          log.warning(
              "portal %s: its plan has no reservation for offline events (WRONG_LICENSE); "
              "pulling with clear=1 from now on, so a crash between an answer and its commit "
              "can lose that batch",
              portal.memberId);
          store_.setOfflineMode(portal.memberId, "clear");
          state.mode = "clear";
          continue;
        }
        fail("event.offline.get: " + r.error + (r.description.empty() ? "" : ": " + r.description));
        break;
      }
      Poco::JSON::Object::Ptr result;
      if (r.result().type() == typeid(Poco::JSON::Object::Ptr)) {
        result = r.result().extract<Poco::JSON::Object::Ptr>();
      }
      Poco::JSON::Array::Ptr events = result ? result->getArray("events") : nullptr;
      if (!events || events->size() == 0) break;
      const std::string processId =
          result->has("process_id") && !result->get("process_id").isEmpty()
              ? result->get("process_id").toString()
              : std::string();
      if (!clearMode && processId.empty()) {
        fail("event.offline.get answered records without a process_id; they are not cleared");
        break;
      }
      std::vector<OfflineEvent> records;
      OfflineNote note{processId, {}};
      for (const Poco::Dynamic::Var& item : *events) {
        if (item.type() != typeid(Poco::JSON::Object::Ptr)) continue;
        auto record = item.extract<Poco::JSON::Object::Ptr>();
        if (auto id = integerOf(record->get("ID"))) note.ids.push_back(*id);
        if (auto e = offlineEventOf(record, portal, clock_.nowSeconds())) {
          records.push_back(std::move(*e));
        } else {
          log.warning("portal %s: skipped an offline record that is not an event (%s)",
                      portal.memberId, stringified(item).substr(0, 200));
        }
      }
      std::size_t stored = 0;
      try {
        stored = store_.storeOfflineBatch(portal.memberId, clearMode ? "" : processId, records,
                                          clock_.nowMillis());
      } catch (const StorageError& e) {
        if (clearMode) {
          log.error(
              "portal %s: lost %z offline records: Bitrix24 deleted them as it returned "
              "them (clear=1) and they could not be committed: %s",
              portal.memberId, events->size(), std::string(e.what()));
        }
        throw;
      }
      report.fetched += stored;
      if (metrics_) metrics_->countOfflineFetched(stored);
      if (clearMode) continue;
      pending = std::move(note);
    }
  } catch (const StorageError& e) {
    fail(std::string("database: ") + e.what());
  }
  try {
    store_.recordOfflinePass(
        portal.memberId,
        report.failed ? std::optional<std::string>(report.error.substr(0, 300)) : std::nullopt,
        clock_.nowSeconds());
  } catch (const StorageError&) {
    // The pass's outcome is in the log; the database is failing anyway.
  }
  if (report.failed) {
    log.warning("offline pass of portal %s: %z stored, then failed: %s", portal.memberId,
                report.fetched, report.error);
  } else if (report.fetched > 0) {
    log.information("offline pass of portal %s: %z stored", portal.memberId, report.fetched);
  }
  return report;
}

}  // namespace b24es
