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
// One PORTAL object; a token counts as expired when its expiry is at or before `nowSeconds`
// (null when the expiry is unknown).
std::string portalJson(const PortalView& portal, std::int64_t nowSeconds);
// {"items":[PORTAL...]}
std::string portalListJson(const std::vector<PortalView>& portals, std::int64_t nowSeconds);
// {"total","by_event":[{"event","count"}],"by_portal":[{"member_id","domain","count"}],
//  "first_ts","last_ts"}
std::string statsJson(const EventStats& stats);
// GET /api/v1/stats/timeline: {"bucket","series":[{"event","points":[[start,count]...]}]}.
std::string timelineJson(std::int64_t width, const Timeline& timeline);

}  // namespace b24es
