#include "bindings.h"

#include <Poco/JSON/Array.h>
#include <Poco/Logger.h>
#include <Poco/String.h>

#include <algorithm>
#include <set>

namespace b24es {
namespace {

Poco::Logger& bindLog() { return Poco::Logger::get("b24es.bindings"); }

struct Bound {
  std::string event;
  std::string handler;
  bool offline = false;
};

bool truthy(const Poco::Dynamic::Var& v) {
  if (v.isEmpty()) return false;
  if (v.isBoolean()) return v.extract<bool>();
  const std::string text = v.toString();
  return !text.empty() && text != "0" && Poco::icompare(text, "false") != 0 &&
         Poco::icompare(text, "N") != 0;
}

// The bindings event.get lists, or nullopt when its answer has no list.
std::optional<std::vector<Bound>> boundOf(const RestResult& r) {
  Poco::Dynamic::Var result = r.result();
  if (result.type() != typeid(Poco::JSON::Array::Ptr)) return std::nullopt;
  std::vector<Bound> out;
  for (const Poco::Dynamic::Var& item : *result.extract<Poco::JSON::Array::Ptr>()) {
    if (item.type() != typeid(Poco::JSON::Object::Ptr)) continue;
    auto o = item.extract<Poco::JSON::Object::Ptr>();
    Bound b;
    b.event = Poco::toUpper(o->optValue<std::string>("event", ""));
    b.handler = o->has("handler") && !o->get("handler").isEmpty() ? o->get("handler").toString()
                                                                  : std::string();
    b.offline = o->has("offline") && truthy(o->get("offline"));
    if (!b.event.empty()) out.push_back(std::move(b));
  }
  return out;
}

// Bitrix24 answers a second event.bind of the same handler with an error whose text says so
// ("Handler already binded").
bool alreadyBound(const RestResult& r) {
  const std::string text = Poco::toLower(r.error + " " + r.description);
  return text.find("already bind") != std::string::npos ||
         text.find("already bound") != std::string::npos ||
         text.find("already exists") != std::string::npos;
}

std::string describe(const RestResult& r) {
  return r.error + (r.description.empty() ? "" : ": " + r.description);
}

}  // namespace

bool bindingsConfigured(const Bitrix24Settings& settings) {
  return !settings.handlerUrl.empty() &&
         (!settings.events.empty() || !settings.offlineEvents.empty());
}

BindingSync::BindingSync(const Bitrix24Settings& settings, RestClient& rest,
                         PortalStateStore& store, const Clock& clock)
    : settings_(settings), rest_(rest), store_(store), clock_(clock) {}

BindingReport BindingSync::sync(const PortalRecord& portal, bool dryRun) {
  BindingReport report;
  const std::set<std::string> online(settings_.events.begin(), settings_.events.end());
  const std::set<std::string> offline(settings_.offlineEvents.begin(),
                                      settings_.offlineEvents.end());
  const std::int64_t now = clock_.nowSeconds();
  auto record = [&](const std::string& event, const std::string& type, const RestResult* failed) {
    if (dryRun) return;
    BindingRecord b{event, type, failed ? "error" : "bound", std::nullopt, now};
    if (failed) b.error = describe(*failed).substr(0, 300);
    store_.recordBinding(portal.memberId, b);
  };
  auto fail = [&](const RestResult& r, const std::string& what) {
    ++report.failed;
    if (report.error.empty()) report.error = what + ": " + describe(r);
  };

  RestResult listed = rest_.call(portal, std::nullopt, "event.get", {});
  std::optional<std::vector<Bound>> bound;
  if (listed.ok()) bound = boundOf(listed);
  if (!bound) {
    if (listed.ok()) {
      listed.kind = RestResult::Kind::kError;
      listed.error = "bad_answer";
      listed.description = "event.get answered without a list";
    }
    // Nothing is known about the portal's bindings: every configured one is in error.
    for (const std::string& e : online) {
      fail(listed, "event.get");
      record(e, "online", &listed);
    }
    for (const std::string& e : offline) {
      fail(listed, "event.get");
      record(e, "offline", &listed);
    }
    if (online.empty() && offline.empty()) fail(listed, "event.get");
    return report;
  }
  auto has = [&](const std::string& event, bool isOffline) {
    return std::any_of(bound->begin(), bound->end(), [&](const Bound& b) {
      return b.event == event && b.offline == isOffline &&
             (isOffline || b.handler == settings_.handlerUrl);
    });
  };

  auto bindOne = [&](const std::string& event, bool isOffline) {
    if (has(event, isOffline)) {
      ++report.bound;
      record(event, isOffline ? "offline" : "online", nullptr);
      return;
    }
    if (dryRun) {
      ++report.bound;
      return;
    }
    RestParams params;
    params.form.emplace_back("event", event);
    if (isOffline) {
      params.form.emplace_back("event_type", "offline");
    } else {
      params.form.emplace_back("handler", settings_.handlerUrl);
    }
    RestResult r = rest_.call(portal, std::nullopt, "event.bind", params);
    if (r.ok() || alreadyBound(r)) {
      ++report.bound;
      record(event, isOffline ? "offline" : "online", nullptr);
    } else {
      fail(r, "event.bind " + event);
      record(event, isOffline ? "offline" : "online", &r);
    }
  };
  for (const std::string& e : online) bindOne(e, false);
  for (const std::string& e : offline) bindOne(e, true);

  // Ours and no longer configured: handler_url's online bindings, and offline ones.
  std::set<std::pair<std::string, bool>> unbinding;
  for (const Bound& b : *bound) {
    if (b.offline && !offline.count(b.event)) unbinding.insert({b.event, true});
    if (!b.offline && b.handler == settings_.handlerUrl && !online.count(b.event)) {
      unbinding.insert({b.event, false});
    }
  }
  for (const auto& [event, isOffline] : unbinding) {
    const std::string type = isOffline ? "offline" : "online";
    if (dryRun) {
      ++report.unbound;
      continue;
    }
    RestParams params;
    params.form.emplace_back("event", event);
    if (isOffline) {
      params.form.emplace_back("event_type", "offline");
    } else {
      params.form.emplace_back("handler", settings_.handlerUrl);
    }
    RestResult r = rest_.call(portal, std::nullopt, "event.unbind", params);
    if (r.ok()) {
      ++report.unbound;
      store_.removeBinding(portal.memberId, event, type);
    } else {
      fail(r, "event.unbind " + event);
      record(event, type, &r);
    }
  }
  // Rows of bindings neither configured nor bound any more (removed on the portal by hand).
  if (!dryRun) {
    for (const BindingRecord& row : store_.bindings(portal.memberId)) {
      const bool isOffline = row.type == "offline";
      const bool configured = isOffline ? offline.count(row.event) : online.count(row.event);
      if (!configured && !unbinding.count({row.event, isOffline})) {
        store_.removeBinding(portal.memberId, row.event, row.type);
      }
    }
  }
  if (report.failed > 0) {
    bindLog().warning("bindings of portal %s: %z failed (%s)", portal.memberId, report.failed,
                      report.error);
  } else if (!dryRun) {
    bindLog().information("bindings of portal %s: %z bound, %z unbound", portal.memberId,
                          report.bound, report.unbound);
  }
  return report;
}

}  // namespace b24es
