// Rejected requests (SPEC §5 GET /api/v1/rejections, §7 `rejections`): what the ingest listener
// records of every 4xx answer, and how the query API pages through them. Plain values and one
// pure function; the EventSink (storage.h) writes them, the EventReader (event_query.h) reads
// them. Nothing here is SQLite specific.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace b24es {

// One row of `rejections`. Never holds a body or a token: only what the answer said (status,
// error code) and what the request claimed to be (event, member_id, domain), each cut to
// kRejectionValueChars characters before it is stored.
struct RejectionRecord {
  std::int64_t id = 0;                  // set by the store; ignored when recording
  std::int64_t receivedAt = 0;          // unix milliseconds; set by the store when recording
  std::string clientAddr;               // the resolved client address (ingest.trusted_proxies)
  int status = 0;                       // the answer's HTTP status, 400..499
  std::string error;                    // the answer's error code, e.g. "verification_failed"
  std::optional<std::string> event;     // as claimed by the request, when it got that far
  std::optional<std::string> memberId;  // as claimed (auth[member_id])
  std::optional<std::string> domain;    // as claimed (auth[domain])
};

// SPEC §5: every value of a rejection is cut to this many characters.
inline constexpr std::size_t kRejectionValueChars = 64;

// `text` cut to at most `chars` characters (UTF-8 code points), so that a cut never splits one;
// a byte that does not begin a valid UTF-8 sequence becomes one U+FFFD character (a form body
// may carry any bytes, and the row is served as JSON and read with sqlite3). Pure.
std::string cutToChars(const std::string& text, std::size_t chars = kRejectionValueChars);

// `record` with every text value cut by cutToChars(); an empty optional text becomes nullopt.
RejectionRecord cutRejection(RejectionRecord record);

// Which rejections to list: newest first, a page of `limit` after the cursor.
struct RejectionFilter {
  std::optional<std::int64_t> afterId;  // keyset cursor: only ids below it (>= 0)
  std::optional<std::string> memberId;  // only those that claimed this member_id
  std::size_t limit = 100;              // 1..kMaxLimit

  static constexpr std::size_t kMaxLimit = 1000;
};

// A page of rejections, newest first, and the cursor of the next one (nullopt on the last).
struct RejectionPage {
  std::vector<RejectionRecord> items;
  std::optional<std::int64_t> nextAfterId;
};

}  // namespace b24es
