// Package origin decides on where a call comes from, as PortaBilling's geo-IP
// fraud detection does: the origin country of the caller's source IP (from a
// MaxMind-format database), geo profiles that group countries into zones whose
// calls are allowed, screened or rejected, the account's home location
// (stationary or roaming), the allowed location-change period, the screening
// IVR's outcome (a pass opens a window of normal calling, failures lead to
// quarantine), the service unblock code, per-account trusted source ranges and
// an operator-wide source blocklist.
//
// It sits beside the matcher's immutable snapshot: the policy-derived rules
// are compiled once (CompileOperator, Operator.Account) and carried by the
// snapshot, while the mutable parts — the Geo-IP database (GeoIP, hot
// reloaded) and each account's calling and screening state (State) — live
// here. The matcher consults it through one call, Checker.Check, which takes
// no global lock and allocates nothing in steady state.
package origin
