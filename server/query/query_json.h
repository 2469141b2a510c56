// The JSON bodies of the query API (SPEC §5): EVENT, PORTAL, the events page, the portal list
// and the statistics. Times are ISO 8601 UTC strings except ts, last_event_ts, first_ts and
// last_ts, which stay unix seconds as Bitrix24 sends ts; absent values are null. Pure
// functions; thread-safe. Nothing here can emit a token: the records carry none.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "event_query.h"

namespace b24es {

// unix seconds -> "2026-01-01T10:00:00Z"; unix milliseconds -> "2026-01-01T10:00:00.250Z".
std::string isoSeconds(std::int64_t unixSeconds);
std::string isoMillis(std::int64_t unixMillis);

// One EVENT object. `data` is the stored JSON object itself, not a string.
std::string eventJson(const EventRecord& event);
// {"items":[EVENT...],"next_after_id":N or null}
std::string eventPageJson(const EventPage& page);

// How big a page of events may grow (SPEC §5): it ends with the first event that brings its
// JSON to this size or more.
inline constexpr std::size_t kMaxEventPageBytes = 8 * 1024 * 1024;

// Builds the body of GET /api/v1/events from the rows of EventReader::scanEvents as they are
// read, so the server holds the page's JSON and one row, never the rows of the whole page. Not
// thread-safe: one per request.
class EventPageWriter {
 public:
  // `limit` is the filter's (the reader hands over up to limit + 1 rows).
  explicit EventPageWriter(std::size_t limit, std::size_t maxBytes = kMaxEventPageBytes);
  // Adds the row to the page, or, once the page is full (limit events, or maxBytes of JSON),
  // takes it only as proof that a next page exists. False when no more rows are wanted.
  bool add(const EventRecord& event);
  // {"items":[EVENT...],"next_after_id":N or null}; call once, after the last add().
  std::string finish();

 private:
  const std::size_t limit_;     // const after construction
  const std::size_t maxBytes_;  // const after construction
  std::string out_;             // the body so far
  std::size_t count_ = 0;
  std::int64_t lastId_ = 0;
  bool full_ = false;
  bool more_ = false;  // a row after the page's last one exists
};
// One PORTAL object; a token counts as expired when its expiry is at or before `nowSeconds`
// (null when the expiry is unknown).
std::string portalJson(const PortalView& portal, std::int64_t nowSeconds);
// {"items":[PORTAL...],"next_after":MEMBER_ID or null}
std::string portalPageJson(const PortalPage& page, std::int64_t nowSeconds);
// {"total","by_event":[{"event","count"}],"by_portal":[{"member_id","domain","count"}],
//  "first_ts","last_ts"}
std::string statsJson(const EventStats& stats);
// GET /api/v1/rejections: {"items":[{"id","received_at","client_addr","status","error","event",
// "member_id","domain"}...],"next_after_id":N or null}; received_at as ISO 8601 with
// milliseconds, absent claims as null.
std::string rejectionPageJson(const RejectionPage& page);
// GET /api/v1/stats/timeline: {"bucket","series":[{"event","points":[[start,count]...]}]}.
std::string timelineJson(std::int64_t width, const Timeline& timeline);

}  // namespace b24es
