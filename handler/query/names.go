package query

import "github.com/tollgate/tollgate/policy"

// checkNames refuses an account or subaccount no account can have (the
// one rule, policy.ValidName): such a query used to fall back to the
// default policy as an unknown account. An empty field means "none".
func checkNames(account, subaccount string) decodeError {
	if account != "" && !policy.IsValidName(account) {
		return decodeError{kind: errBadName, field: fAccount}
	}
	if subaccount != "" && !policy.IsValidName(subaccount) {
		return decodeError{kind: errBadName, field: fSubaccount}
	}
	return decodeError{}
}
