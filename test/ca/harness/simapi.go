package harness

import (
	"encoding/json"
	"testing"
)

// SimServer is the part of the simulator's full server view that tests read.
type SimServer struct {
	UUID   string            `json:"uuid"`
	Name   string            `json:"name"`
	Status string            `json:"status"`
	Tags   map[string]string `json:"tags"`
	Flavor struct {
		Slug string `json:"slug"`
	} `json:"flavor"`
	Zone struct {
		Slug string `json:"slug"`
	} `json:"zone"`
}

// Servers returns every server the simulated cloud holds, by uuid.
func (s *Sim) Servers(tb testing.TB) map[string]SimServer {
	tb.Helper()
	var st struct {
		Servers []SimServer `json:"servers"`
	}
	if err := json.Unmarshal(s.Control(tb, "GET", "/_sim/state", nil), &st); err != nil {
		tb.Fatalf("simulator state is not JSON: %v", err)
	}
	out := make(map[string]SimServer, len(st.Servers))
	for _, srv := range st.Servers {
		out[srv.UUID] = srv
	}
	return out
}

// Seed creates one running flex-4-1 server behind the provider's back (as a
// person or another tool would) and returns its uuid.
func (s *Sim) Seed(tb testing.TB, name, zone string, tags map[string]string) string {
	tb.Helper()
	if tags == nil {
		tags = map[string]string{}
	}
	body := map[string]any{"name": name, "flavor": "flex-4-1", "image": "debian-13", "zone": zone, "status": "running", "tags": tags}
	var res struct {
		UUIDs []string `json:"uuids"`
	}
	if err := json.Unmarshal(s.Control(tb, "POST", "/_sim/servers", body), &res); err != nil || len(res.UUIDs) != 1 {
		tb.Fatalf("seeding server %s: %v %v", name, res, err)
	}
	return res.UUIDs[0]
}
