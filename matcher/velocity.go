package matcher

// Velocity is what a decision needs from the stateful velocity counters
// (package velocity implements it). The matcher stays the one decision
// function: it asks for an account's scope once per call, reads its
// international lock, and records the attempt. Implementations must answer
// without blocking, locking or allocating, and must not keep the strings or
// bytes they are given.
type Velocity interface {
	// Scope returns the live state of an account, or of one of its
	// subaccounts when sub is not empty, or nil when there is none.
	Scope(account, sub string) VelocityScope
}

// VelocityScope is one account's (or subaccount's) live state.
type VelocityScope interface {
	// IntlLocked says whether international calls are locked, and at which
	// level: LayerAccount (the account, and so every subaccount),
	// LayerSubaccount (only this subaccount) or LayerNone.
	IntlLocked() Layer
	// Record counts one decided attempt (never an emergency call): its
	// resolved E.164 destination (0 for a short or invalid number) and the
	// destination's country (0 when unknown).
	Record(dest Number, country Country, o Outcome)
}

// FleetScope is a VelocityScope that knows, in fleet mode, how much of its
// caps the other tollgates of the fleet use: the channels they hold of the
// scope's max_channels and of its account's account_max_channels (from
// their call events), and their attempts in the last second against its
// max_cps. The caps in a verdict are then this node's share: the cap minus
// the others' use; a share of nothing refuses the call (fleet_channel_limit,
// fleet_account_channel_limit, fleet_cps_limit), since 0 in a verdict means no cap.
// RemoteUse must not block, lock or allocate.
type FleetScope interface {
	RemoteUse() (channels, accountChannels, cps int)
}

// shareCaps turns the verdict's caps into this node's share of them.
func shareCaps(v *Verdict, fs FleetScope) {
	ch, ach, cps := fs.RemoteUse()
	if ch|ach|cps == 0 {
		return
	}
	share := func(c *int, used int, r Reason) bool {
		if *c <= 0 || used <= 0 {
			return true
		}
		if *c -= used; *c <= 0 {
			*c = 0
			v.Action, v.Reason, v.Layer, v.Rule = Reject, r, LayerAccount, RuleFleetCap
			if r != ReasonAccountChannelLimit && v.Subaccount != "" {
				v.Layer = LayerSubaccount
			}
			return false
		}
		return true
	}
	_ = share(&v.AccountMaxChannels, ach, ReasonAccountChannelLimit) &&
		share(&v.MaxChannels, ch, ReasonChannelLimit) &&
		share(&v.MaxCPS, cps, ReasonCPSLimit)
}

// Outcome classifies a decided attempt for the velocity counters.
type Outcome uint8

// Attempt outcomes.
const (
	// OutcomeAllowed is a call the verdict lets through.
	OutcomeAllowed Outcome = iota
	// OutcomeBarred is a refused attempt that blocked-attempt velocity
	// counts: a barred destination (country_barred, country_disabled,
	// number_barred, rate_exceeded) or an invented subaccount name
	// (unknown_subaccount). Blocked attempts also count OutcomeInvalid and
	// OutcomeLocked, which have outcomes of their own for the probing
	// measures.
	OutcomeBarred
	// OutcomeOther is any other refusal (origin checks, unknown account
	// refused).
	OutcomeOther
	// OutcomeInvalid is a number refused invalid_number (probing for a
	// dial plan's gaps): a blocked attempt, and an invalid_numbers one.
	OutcomeInvalid
	// OutcomeLocked is an international call refused because the scope is
	// locked (international_locked: a fraudster trying on after the
	// lockdown): a blocked attempt, and a locked_attempts one.
	OutcomeLocked
)

// OutcomeOf classifies a verdict.
func OutcomeOf(v *Verdict) Outcome {
	switch v.Reason {
	case ReasonOK:
		return OutcomeAllowed
	case ReasonCountryBarred, ReasonCountryDisabled, ReasonNumberBarred, ReasonRateExceeded, ReasonUnknownSubaccount:
		return OutcomeBarred
	case ReasonInvalidNumber:
		return OutcomeInvalid
	case ReasonInternationalLocked:
		return OutcomeLocked
	}
	return OutcomeOther
}
