package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type dashPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults  struct{ Unit string } `json:"defaults"`
		Overrides []struct {
			Matcher struct {
				ID      string `json:"id"`
				Options string `json:"options"`
			} `json:"matcher"`
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
}

// unitOf is the unit a target's series are drawn in: the panel's, unless an
// override by refId sets another.
func (p *dashPanel) unitOf(refID string) string {
	for _, o := range p.FieldConfig.Overrides {
		if o.Matcher.ID == "byFrameRefID" && o.Matcher.Options == refID {
			for _, pr := range o.Properties {
				if u, ok := pr.Value.(string); ok && pr.ID == "unit" {
					return u
				}
			}
		}
	}
	return p.FieldConfig.Defaults.Unit
}

// unitProblems finds a series drawn in seconds that is no duration (a count
// on a seconds axis), a histogram's buckets or count not turned into a
// quantile or a mean, and a process_/go_ metric of every scraped job rather
// than tollgate's.
func unitProblems(p *dashPanel) []string {
	var out []string
	for _, t := range p.Targets {
		e := t.Expr
		if p.unitOf(t.RefID) == "s" {
			for _, n := range exprMetrics(e) {
				if !strings.HasSuffix(n, "_seconds") && !strings.HasSuffix(n, "_seconds_bucket") &&
					!strings.HasSuffix(n, "_seconds_sum") && !strings.HasSuffix(n, "_seconds_count") {
					out = append(out, t.RefID+": "+n+" is not a duration but is drawn in seconds")
				}
			}
			if strings.Contains(e, "_seconds_bucket") && !strings.Contains(e, "histogram_quantile(") {
				out = append(out, t.RefID+": histogram buckets drawn in seconds without histogram_quantile")
			}
			if strings.Contains(e, "_seconds_count") && !strings.Contains(e, "_seconds_sum") {
				out = append(out, t.RefID+": a histogram's _count (a number of events) drawn in seconds")
			}
		}
		for _, n := range exprMetrics(e) {
			if (strings.HasPrefix(n, "process_") || strings.HasPrefix(n, "go_")) &&
				!strings.Contains(e, "and on (job, instance) tollgate_ready") && !strings.Contains(e, `job="tollgate"`) {
				out = append(out, t.RefID+": "+n+" is exported by every Go or process exporter; select tollgate's targets")
			}
		}
	}
	return out
}

func TestDashboardUnitsAndJobs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("grafana", "tollgate-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct{ Panels []dashPanel }
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	for i := range d.Panels {
		for _, pr := range unitProblems(&d.Panels[i]) {
			t.Errorf("panel %q: %s", d.Panels[i].Title, pr)
		}
	}
}

// The check catches the two panels issue 15 found.
func TestDashboardUnitsCatchMistakes(t *testing.T) {
	for name, js := range map[string]string{
		"count on a seconds axis": `{"title":"v","targets":[{"refId":"A","expr":"max(tollgate_velocity_evaluation_seconds)"},{"refId":"B","expr":"max(tollgate_velocity_scopes)"}],"fieldConfig":{"defaults":{"unit":"s"}}}`,
		"buckets as seconds":      `{"title":"v","targets":[{"refId":"A","expr":"sum(rate(tollgate_velocity_evaluation_duration_seconds_bucket[5m]))"}],"fieldConfig":{"defaults":{"unit":"s"}}}`,
		"count as seconds":        `{"title":"v","targets":[{"refId":"A","expr":"sum(rate(tollgate_velocity_evaluation_duration_seconds_count[5m]))"}],"fieldConfig":{"defaults":{"unit":"s"}}}`,
		"memory of every job":     `{"title":"m","targets":[{"refId":"A","expr":"process_resident_memory_bytes{instance=~\"$instance\"}"}],"fieldConfig":{"defaults":{"unit":"bytes"}}}`,
	} {
		var p dashPanel
		if err := json.Unmarshal([]byte(js), &p); err != nil {
			t.Fatal(err)
		}
		if len(unitProblems(&p)) == 0 {
			t.Errorf("%s: not caught", name)
		}
	}
}
