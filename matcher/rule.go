package matcher

import "github.com/tollgate/tollgate/policy"

// appendOrigin writes the origin rule: "account acme: origin: <origin's
// sentence>".
func (v *Verdict) appendOrigin(dst []byte) []byte {
	dst = v.appendLayer(dst)
	dst = append(dst, ": origin: "...)
	return v.Origin.AppendText(dst)
}

// AppendRule appends the sentence that explains v to an operator ("account
// acme: countries deny-all-except; CU not listed") and returns the extended
// buffer. It allocates nothing when dst has room, so transports can write
// it straight into a response.
func (v *Verdict) AppendRule(dst []byte) []byte {
	if v.DecidedBy == DecidedByRN {
		dst = append(dst, "routing number: "...)
	}
	dst = v.appendRule(dst)
	if v.originRan && v.Rule != RuleOrigin {
		// An allowed call says which origin rule let it through too.
		dst = append(dst, "; origin: "...)
		dst = v.Origin.AppendText(dst)
	}
	return dst
}

func (v *Verdict) appendRule(dst []byte) []byte {
	switch v.Rule {
	case RuleOrigin:
		return v.appendOrigin(dst)
	case RuleEmergency:
		dst = append(dst, "emergency number "...)
		dst = append(dst, v.E164Bytes()...)
		if v.Country != "" {
			dst = append(dst, " ("...)
			dst = append(dst, v.Country...)
			dst = append(dst, ')')
		}
		return append(dst, ": always allowed"...)
	case RuleInvalid:
		dst = append(dst, "invalid number: "...)
		return append(dst, v.Invalid.String()...)
	case RuleUnknownAccount:
		dst = append(dst, "operator: unknown account "...)
		if v.Account == "" {
			dst = append(dst, "(none given)"...)
		} else {
			dst = append(dst, '"')
			dst = append(dst, v.Account...)
			dst = append(dst, '"')
		}
		return append(dst, " refused (unknown_accounts=reject)"...)
	case RuleUnknownSub:
		dst = v.appendLayer(dst)
		dst = append(dst, ": unknown subaccount \""...)
		dst = append(dst, v.Detail...)
		return append(dst, "\" refused (unknown_subaccounts=reject)"...)
	case RuleFleetCap:
		dst = v.appendLayer(dst)
		dst = append(dst, ": "...)
		dst = append(dst, v.Reason.String()...)
		return append(dst, ": the fleet's other tollgates use the whole cap"...)
	case RuleQuarantined:
		dst = append(dst, "operator: account \""...)
		dst = append(dst, v.Account...)
		return append(dst, "\" quarantined: its stored records were damaged (restore it with PUT /v1/accounts)"...)
	case RuleCountryDisabled:
		dst = append(dst, "operator: calls to "...)
		dst = append(dst, v.Country...)
		dst = append(dst, " disabled"...)
		return v.appendDetail(dst)
	case RuleBlockedPrefix:
		dst = append(dst, "operator: prefix "...)
		dst = v.appendPrefix(dst)
		dst = append(dst, " blocked"...)
		return v.appendDetail(dst)
	case RuleAllowPrefix, RuleBlockPrefix:
		dst = v.appendLayer(dst)
		if v.Rule == RuleAllowPrefix {
			dst = append(dst, ": allow prefix "...)
		} else {
			dst = append(dst, ": block prefix "...)
		}
		return v.appendPrefix(dst)
	case RuleHighRisk:
		dst = append(dst, "high-risk "...)
		if v.MatchLen > 0 {
			dst = append(dst, "prefix "...)
			dst = v.appendPrefix(dst)
		} else {
			dst = append(dst, "number "...)
			dst = append(dst, v.E164Bytes()...)
		}
		if v.Detail != "" {
			dst = append(dst, " ("...)
			dst = append(dst, v.Detail...)
			dst = append(dst, ')')
		}
		dst = append(dst, ", blocked by "...)
		dst = v.appendLayer(dst)
		return append(dst, " (high_risk=block)"...)
	case RuleCountryAllowed, RuleCountryDenied:
		dst = v.appendLayer(dst)
		// Allowed and listed, or denied and not listed: deny-all-except.
		denyDefault := (v.Rule == RuleCountryAllowed) == (v.Selector != "")
		if denyDefault {
			dst = append(dst, ": countries deny-all-except; "...)
		} else {
			dst = append(dst, ": countries allow-all-except; "...)
		}
		dst = append(dst, v.Country...)
		if v.Selector == "" {
			return append(dst, " not listed"...)
		}
		dst = append(dst, " listed"...)
		if v.Selector != v.Country {
			dst = append(dst, " via "...)
			dst = append(dst, v.Selector...)
		}
		return dst
	case RuleLockdown:
		dst = v.appendLayer(dst)
		dst = append(dst, ": international calls locked (lockdown); "...)
		if v.Detail == "" {
			return append(dst, "no home country, so every destination is international"...)
		}
		dst = append(dst, v.Country...)
		dst = append(dst, " is not the home country "...)
		return append(dst, v.Detail...)
	case RuleRateExceeded:
		dst = v.appendLayer(dst)
		dst = append(dst, ": max_destination_rate "...)
		dst = policy.AppendMicro(dst, v.MaxRate)
		dst = append(dst, ' ')
		dst = append(dst, v.Currency...)
		dst = append(dst, "/min; prefix "...)
		dst = v.appendPrefix(dst)
		dst = append(dst, " costs "...)
		dst = policy.AppendMicro(dst, v.Rate)
		dst = append(dst, ' ')
		dst = append(dst, v.Currency...)
		return append(dst, "/min"...)
	}
	return dst
}

// RuleString is AppendRule as a string (allocates; for logs, tests, CLI).
func (v *Verdict) RuleString() string { return string(v.AppendRule(nil)) }

func (v *Verdict) appendLayer(dst []byte) []byte {
	switch v.Layer {
	case LayerAccount:
		dst = append(dst, "account "...)
		return append(dst, v.Account...)
	case LayerSubaccount:
		dst = append(dst, "subaccount "...)
		dst = append(dst, v.Account...)
		dst = append(dst, '/')
		return append(dst, v.Subaccount...)
	case LayerDefault:
		return append(dst, "default policy"...)
	case LayerTemplate:
		// "account acme via template:retail-eu": whose call, and the
		// template whose setting decided it.
		if v.Subaccount != "" {
			dst = append(dst, "subaccount "...)
			dst = append(dst, v.Account...)
			dst = append(dst, '/')
			dst = append(dst, v.Subaccount...)
		} else {
			dst = append(dst, "account "...)
			dst = append(dst, v.Account...)
		}
		dst = append(dst, " via template:"...)
		return append(dst, v.Template...)
	}
	return append(dst, v.Layer.String()...)
}

func (v *Verdict) appendPrefix(dst []byte) []byte {
	n := v.MatchLen + 1 // '+' and the matched digits
	if n > int(v.e164n) {
		n = int(v.e164n)
	}
	return append(dst, v.e164[:n]...)
}

func (v *Verdict) appendDetail(dst []byte) []byte {
	if v.Detail == "" {
		return dst
	}
	dst = append(dst, ": "...)
	return append(dst, v.Detail...)
}
