package service

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
)

// RecommendedDenyReason starts the reason of every country disabled by
// ApplyRecommendedDenies, followed by the set's version. RemoveRecommendedDenies
// lifts exactly the disables whose reason starts with it, so a country the
// operator disabled for its own reasons is never lifted by it.
const RecommendedDenyReason = "recommended deny "

// RecommendedDeny is one country of the recommended country denies: the
// prefixes disabling it covers, the guidance naming it, and whether the
// operator has it disabled now (by applying the set or by hand).
type RecommendedDeny struct {
	Country  string   `json:"country"`
	Name     string   `json:"name"`
	Prefixes []string `json:"prefixes"`
	Sources  []string `json:"sources"`
	Disabled bool     `json:"disabled"`
	Reason   string   `json:"reason,omitempty"`
}

// RecommendedDenies is the shipped set of whole countries public guidance
// names for IRSF, kept off the default high-risk list because a whole
// country is too broad a default (docs/highrisk.md).
type RecommendedDenies struct {
	Version   string `json:"version"`
	Generated string `json:"generated"`
	// Applied is true when every country of the set is disabled.
	Applied   bool              `json:"applied"`
	Countries []RecommendedDeny `json:"countries"`
}

// RecommendedDeniesChange is what applying or removing the set did.
type RecommendedDeniesChange struct {
	Version string `json:"version"`
	// Added are the countries this call disabled, Removed those it
	// enabled again.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// AlreadyDisabled were disabled before (by hand or by an earlier
	// apply) and are left as they are.
	AlreadyDisabled []string `json:"already_disabled,omitempty"`
}

func recommendedCountries() (policy.HighRiskList, map[string]*RecommendedDeny, []string, error) {
	l, err := matcher.DefaultRecommendedDenies()
	if err != nil {
		return l, nil, nil, fmt.Errorf("shipped recommended denies: %w", err)
	}
	by := map[string]*RecommendedDeny{}
	var order []string
	for _, e := range l.Entries {
		d := by[e.Country]
		if d == nil {
			c, _ := policy.LookupCountry(e.Country)
			d = &RecommendedDeny{Country: e.Country, Name: c.Name}
			by[e.Country] = d
			order = append(order, e.Country)
		}
		d.Prefixes = append(d.Prefixes, e.Prefix)
		found := false
		for _, s := range d.Sources {
			found = found || s == e.Source
		}
		if !found {
			d.Sources = append(d.Sources, e.Source)
		}
	}
	sort.Strings(order)
	return l, by, order, nil
}

// RecommendedDenies returns the shipped set and which of its countries
// the operator has disabled.
func (s *Service) RecommendedDenies() (RecommendedDenies, error) {
	l, by, order, err := recommendedCountries()
	if err != nil {
		return RecommendedDenies{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return RecommendedDenies{}, err
	}
	out := RecommendedDenies{Version: l.Meta.Version, Generated: l.Meta.Generated, Applied: true}
	for _, cc := range order {
		d := *by[cc]
		if dc, ok := s.set.Operator.DisabledCountries[cc]; ok {
			d.Disabled, d.Reason = true, dc.Reason
		} else {
			out.Applied = false
		}
		out.Countries = append(out.Countries, d)
	}
	return out, nil
}

// ApplyRecommendedDenies disables every country of the set the operator
// has not disabled already, in one audited change; the reason of each
// names the set's version. Countries already disabled keep their reason.
// Applying twice changes nothing the second time.
func (s *Service) ApplyRecommendedDenies(who Actor) (RecommendedDeniesChange, error) {
	l, _, order, err := recommendedCountries()
	if err != nil {
		return RecommendedDeniesChange{}, err
	}
	ch := RecommendedDeniesChange{Version: l.Meta.Version}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return ch, err
	}
	op := s.set.Operator.Clone()
	if op.DisabledCountries == nil {
		op.DisabledCountries = map[string]policy.DisabledCountry{}
	}
	for _, cc := range order {
		if _, ok := op.DisabledCountries[cc]; ok {
			ch.AlreadyDisabled = append(ch.AlreadyDisabled, cc)
			continue
		}
		op.DisabledCountries[cc] = policy.DisabledCountry{Reason: RecommendedDenyReason + l.Meta.Version}
		ch.Added = append(ch.Added, cc)
	}
	if len(ch.Added) == 0 {
		return ch, nil
	}
	_, err = s.putOperatorLocked(who, op, store.AuditEntry{Action: "recommended_denies.apply", Object: "operator/recommended-denies",
		Before: mustJSON(s.set.Operator.DisabledCountries), After: mustJSON(op.DisabledCountries)})
	return ch, err
}

// RemoveRecommendedDenies enables again every country disabled by
// ApplyRecommendedDenies (of any version), in one audited change; countries
// the operator disabled with a reason of its own stay disabled.
func (s *Service) RemoveRecommendedDenies(who Actor) (RecommendedDeniesChange, error) {
	l, _, _, err := recommendedCountries()
	if err != nil {
		return RecommendedDeniesChange{}, err
	}
	ch := RecommendedDeniesChange{Version: l.Meta.Version}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return ch, err
	}
	op := s.set.Operator.Clone()
	for cc, d := range op.DisabledCountries {
		if strings.HasPrefix(d.Reason, RecommendedDenyReason) {
			delete(op.DisabledCountries, cc)
			ch.Removed = append(ch.Removed, cc)
		}
	}
	if len(ch.Removed) == 0 {
		return ch, &NotFoundError{What: "country disabled by the recommended denies"}
	}
	sort.Strings(ch.Removed)
	_, err = s.putOperatorLocked(who, op, store.AuditEntry{Action: "recommended_denies.remove", Object: "operator/recommended-denies",
		Before: mustJSON(s.set.Operator.DisabledCountries), After: mustJSON(op.DisabledCountries)})
	return ch, err
}
