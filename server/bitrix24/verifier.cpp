#include "verifier.h"

#include "constant_time.h"

namespace b24es {

Verdict verifyEvent(const IncomingEvent& event, const std::optional<PortalRecord>& portal,
                    const std::vector<std::string>& staticTokens) {
  using Action = Verdict::Action;
  const std::string& presented = event.applicationToken;
  const bool installed = portal && portal->installed() && portal->applicationToken;
  // Confirmed by app.info before the transaction (server/rest/lifecycle.cpp); the portal must
  // still be as it was then.
  if (event.confirmed == IncomingEvent::Confirmed::kPayment) {
    if (installed && event.kind == EventKind::kOther) return Verdict{Action::kStore, {}};
    return Verdict{Action::kReject, "the portal is not installed"};
  }
  if (event.confirmed == IncomingEvent::Confirmed::kRotation) {
    if (installed && event.kind == EventKind::kOther && !presented.empty() &&
        constantTimeEquals(event.replacedToken, *portal->applicationToken)) {
      return Verdict{Action::kRotate, {}};
    }
    return Verdict{Action::kReject,
                   "the portal changed while its new application token was being verified"};
  }
  if (presented.empty()) {
    return Verdict{Action::kReject, "the event carries no auth[application_token]"};
  }

  if (event.kind == EventKind::kInstall) {
    // An installed portal keeps its application token: a second install with another token
    // would let anyone who knows a member_id take the portal over.
    if (installed && !constantTimeEquals(presented, *portal->applicationToken)) {
      return Verdict{Action::kReject, "the portal is installed with a different application token"};
    }
    return Verdict{Action::kInstall, {}};
  }

  bool verified = installed && constantTimeEquals(presented, *portal->applicationToken);
  bool byStatic = false;
  for (const std::string& token : staticTokens) {
    // No early exit: the time taken must not tell which static token matched.
    if (!token.empty() && constantTimeEquals(presented, token)) byStatic = true;
  }
  // SPEC §4 (v2): a static token speaks only for portals that never had an application token
  // of their own. A portal installed through ONAPPINSTALL keeps installed_at after an
  // uninstall, so a static token can neither uninstall it (and clear the way for someone
  // else's install) nor send events in its name afterwards.
  const bool staticApplies = !portal || !portal->installedAt;
  if (!verified && !(byStatic && staticApplies)) {
    if (!portal) return Verdict{Action::kReject, "unknown portal"};
    if (portal->uninstalledAt) return Verdict{Action::kReject, "the portal is uninstalled"};
    return Verdict{Action::kReject, "wrong application token"};
  }
  if (event.kind == EventKind::kUninstall) return Verdict{Action::kUninstall, {}};
  if (!portal) return Verdict{Action::kStoreAndCreatePortal, {}};
  return Verdict{Action::kStore, {}};
}

}  // namespace b24es
