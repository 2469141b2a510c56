#!/usr/bin/env bash
# Calls one Bitrix24 REST method for a portal with the access token b24-event-store keeps, and
# retries once with a refreshed token when the portal answers expired_token. This is the
# on-demand refresh Bitrix24 asks for (SPEC §6): use the stored token, refresh only when a call
# says it expired, never "just in case" before every call.
#
#   scripts/examples/b24-call.sh MEMBER_ID METHOD [KEY=VALUE...]
#   scripts/examples/b24-call.sh 7c1e5a93d2b84f06a9e3c5d71b2f8e40 profile
#   scripts/examples/b24-call.sh 7c1e5a93d2b84f06a9e3c5d71b2f8e40 crm.deal.get id=7405
#
# Prints the JSON answer; exits 0 when it has no "error", 1 when it has, 2 on a usage error.
# Environment:
#   B24ES_BIN            the b24-event-store binary (default: b24-event-store on PATH)
#   B24ES_CONFIG         its properties file, passed as --config (optional)
#   B24_CLIENT_ENDPOINT  the portal's REST URL, e.g. https://acme.bitrix24.com/rest/ (default:
#                        portals.client_endpoint, read with sqlite3 from B24ES_DB)
#   B24ES_DB             the database for that lookup (default: data/events.db)
# The token travels in the POST body (read by curl from stdin), never in a URL or an argument
# list that `ps` would show.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,19s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi
member="$1" method="$2"
shift 2
# member_id goes into a SQL literal and method into the URL below: allow only what Bitrix24 uses.
[[ "$member" =~ ^[0-9A-Za-z]+$ ]] || { echo "bad member_id: $member" >&2; exit 2; }
[[ "$method" =~ ^[0-9A-Za-z._]+$ ]] || { echo "bad method: $method" >&2; exit 2; }

bin="${B24ES_BIN:-b24-event-store}"
config=()
[ -n "${B24ES_CONFIG:-}" ] && config=(--config "$B24ES_CONFIG")

endpoint="${B24_CLIENT_ENDPOINT:-}"
if [ -z "$endpoint" ]; then
  endpoint="$(sqlite3 -readonly "${B24ES_DB:-data/events.db}" \
    "SELECT client_endpoint FROM portals WHERE member_id = '$member'")"
  [ -n "$endpoint" ] || { echo "no client_endpoint stored for portal $member" >&2; exit 1; }
fi
url="${endpoint%/}/${method}.json"

params=()
for pair in "$@"; do params+=(--data-urlencode "$pair"); done

call() {
  printf '%s' "$1" | curl -sS --max-time 30 --data-urlencode "auth@-" "${params[@]}" "$url"
}

token="$("$bin" token "$member" "${config[@]}")"
answer="$(call "$token")"
if [[ "$answer" =~ \"error\"[[:space:]]*:[[:space:]]*\"expired_token\" ]]; then
  # The stored token was refused: refresh it once (other callers waiting on the same portal get
  # the same new token; b24-event-store never spends a refresh token twice) and try again.
  token="$("$bin" token "$member" --refresh "${config[@]}")"
  answer="$(call "$token")"
fi
printf '%s\n' "$answer"
[[ ! "$answer" =~ \"error\"[[:space:]]*: ]]
