// The read side of the storage contract: what the query API (SPEC §5) and /metrics ask of the
// store, as plain values and one interface. Like storage.h, nothing here is SQLite specific;
// the SQLite backend implements EventReader in sqlite_event_reader.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "portal_state.h"
#include "rejections.h"

namespace b24es {

// Which events to list. Every set field narrows the result (AND). Validated by the caller
// (server/query_params.h); the reader trusts the ranges documented here.
struct EventFilter {
  enum class Order { kAsc, kDesc };

  std::optional<std::string> memberId;
  std::optional<std::string> domain;  // the domain stored with each event
  std::optional<std::string> event;   // upper-cased event code (stored upper-cased)
  std::optional<std::int64_t> entityId;
  std::optional<std::int64_t> entityTypeId;
  std::optional<std::int64_t> userId;
  std::optional<std::int64_t> from;     // ts >= from (unix seconds, inclusive)
  std::optional<std::int64_t> to;       // ts <= to (unix seconds, inclusive)
  std::optional<std::string> source;    // online or offline
  std::optional<std::int64_t> afterId;  // keyset cursor: ids after it in `order`; >= 0
  std::size_t limit = 100;              // 1..kMaxLimit
  Order order = Order::kAsc;

  static constexpr std::size_t kMaxLimit = 1000;
};

// One row of `events` as the API serves it. data_json is the stored JSON text (already
// redacted at ingest), passed through without re-parsing.
struct EventRecord {
  std::int64_t id = 0;
  std::string event;
  std::string memberId;
  std::optional<std::string> domain;
  std::optional<std::int64_t> eventHandlerId;
  std::optional<std::string> eventId;  // text as stored; digits when Bitrix24 sent a number
  std::optional<std::int64_t> ts;      // unix seconds
  std::int64_t receivedAt = 0;         // unix milliseconds
  std::optional<std::int64_t> userId;
  std::optional<std::int64_t> entityId;
  std::optional<std::int64_t> entityTypeId;
  std::string dataJson = "{}";
  bool offline = false;  // source: pulled from the offline queue, not posted (online)
};

// A page of events and the cursor of the next one (nullopt on the last page).
struct EventPage {
  std::vector<EventRecord> items;
  std::optional<std::int64_t> nextAfterId;
};

// Which portals to list: a page in member_id order (SPEC §5).
struct PortalFilter {
  std::optional<std::string> after;  // keyset cursor: member_ids after it
  std::size_t limit = 100;           // 1..kMaxLimit

  static constexpr std::size_t kMaxLimit = 1000;
};

// Metadata of one token row. Deliberately has no field for a token value: the reader never
// selects access_token, refresh_token or application_token.
struct TokenInfo {
  std::int64_t userId = 0;
  std::optional<std::int64_t> expiresAt;  // unix seconds
  bool hasRefreshToken = false;
  std::optional<std::int64_t> lastRefreshAt;
  std::optional<std::string> lastRefreshError;
};

// A portal as the API serves it: the record without its application token, its event count,
// the ts of its most recent event and its tokens' metadata.
struct PortalView {
  std::string memberId;
  std::string domain;
  std::optional<std::string> clientEndpoint;
  std::optional<std::string> serverEndpoint;
  std::optional<std::string> status;
  std::optional<std::string> scope;
  std::optional<std::int64_t> installedAt;  // unix seconds
  std::optional<std::int64_t> uninstalledAt;
  std::int64_t eventCount = 0;
  std::optional<std::int64_t> lastEventTs;  // ts of the portal's most recently stored event
  std::vector<TokenInfo> tokens;            // by user_id
  std::vector<BindingRecord> bindings;      // by event, type
  std::optional<OfflineState> offline;      // nullopt: never pulled from the offline queue
};

// A page of portals and the cursor of the next one (nullopt on the last page).
struct PortalPage {
  std::vector<PortalView> items;
  std::optional<std::string> nextAfter;
};

// Totals over all stored events.
struct EventStats {
  struct ByEvent {
    std::string event;
    std::int64_t count = 0;
  };
  struct ByPortal {
    std::string memberId;
    std::optional<std::string> domain;  // the portal's current domain
    std::int64_t count = 0;
  };
  std::int64_t total = 0;
  std::vector<ByEvent> byEvent;    // most frequent first
  std::vector<ByPortal> byPortal;  // most events first
  std::optional<std::int64_t> firstTs;
  std::optional<std::int64_t> lastTs;
};

// Which timeline GET /api/v1/stats/timeline asks for: the buckets of `width` seconds whose
// start lies in [from, to] (unix seconds of received time; from a multiple of width).
struct TimelineQuery {
  std::int64_t width = 60;  // 60, 3600 or 86400
  std::int64_t from = 0;
  std::int64_t to = 0;
  std::optional<std::string> memberId;
  std::optional<std::string> event;  // upper-cased
};

// Stored events per bucket and event code; buckets without events are left out.
struct Timeline {
  struct Series {
    std::string event;
    std::vector<std::pair<std::int64_t, std::int64_t>> points;  // (bucket start, count), by start
  };
  std::vector<Series> series;  // by event code
};

// Token rows by state, each row counted once in the first state that applies, in this order.
struct TokenStateCounts {
  std::int64_t refreshFailed = 0;   // the last refresh attempt recorded an error
  std::int64_t noRefreshToken = 0;  // cannot be refreshed (e.g. bot tokens from events)
  std::int64_t accessExpired = 0;   // access token expired (or expiry unknown); refreshable
  std::int64_t valid = 0;           // access token still valid
};

// Rows of `bindings` per (type, state), for /metrics.
struct BindingStateCount {
  std::string type;   // online or offline
  std::string state;  // bound or error
  std::int64_t count = 0;
};

// Read-only queries. Thread-safe: any number of request threads may call at once; each call
// uses its own pooled connection and never blocks the writer (WAL readers). Every method throws
// StorageError when the database cannot answer; "not found" is nullopt, never an exception.
class EventReader {
 public:
  virtual ~EventReader() = default;
  // The events of one page matching `filter`, ordered by id, via keyset pagination (never
  // OFFSET), handed to `each` one at a time as they are read: at most filter.limit + 1 of them
  // (the extra one tells that a next page exists), until `each` returns false. So a caller that
  // stops early (the page's JSON is big enough) never holds more than one row. `each` runs on
  // the calling thread, with a read connection held; it must not call the reader.
  virtual void scanEvents(const EventFilter& filter,
                          const std::function<bool(EventRecord&)>& each) = 0;
  // scanEvents() collected into a page of at most filter.limit events (for tools and tests;
  // the query API streams).
  EventPage queryEvents(const EventFilter& filter) {
    EventPage page;
    scanEvents(filter, [&](EventRecord& r) {
      if (page.items.size() == filter.limit) {
        page.nextAfterId = page.items.back().id;
        return false;
      }
      page.items.push_back(std::move(r));
      return true;
    });
    return page;
  }
  virtual std::optional<EventRecord> findEvent(std::int64_t id) = 0;
  // One page of portals, ordered by member_id.
  virtual PortalPage listPortals(const PortalFilter& filter) = 0;
  virtual std::optional<PortalView> findPortalView(const std::string& memberId) = 0;
  virtual EventStats stats() = 0;
  virtual Timeline timeline(const TimelineQuery& query) = 0;
  // `nowSeconds` decides which access tokens count as expired.
  virtual TokenStateCounts tokenStates(std::int64_t nowSeconds) = 0;
  // One page of rejections (rejections.h), newest first, by keyset on id (never OFFSET).
  virtual RejectionPage listRejections(const RejectionFilter& filter) = 0;
  // Binding rows by type and state (only the pairs that have rows), ordered by type, state.
  virtual std::vector<BindingStateCount> bindingStates() = 0;
  // The committed watermark as the database shows it now: every event with an id at or below
  // the answer that will ever be visible is visible (0 when there are none). Sees the commits
  // of every process on the database, not only this one's (SinkSettings::onCommitted reports
  // this process's). SQLite: the largest stored id, as its one writer at a time gives ids in
  // commit order.
  virtual std::int64_t committedThrough() = 0;
};

}  // namespace b24es
