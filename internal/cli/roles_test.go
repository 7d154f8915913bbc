package cli

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
)

// TestRoleParse: a role's configuration is the defaults, then the YAML
// file, then the flags given; list flags replace the file's list, --point
// adds to its points, sizes take one convention.
func TestRoleParse(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sched := file("sched.yaml", `role: scheduler
log: {level: debug, format: json}
cluster: {senders: [http://s1:9001, http://s2:9001], replicas: 3, secret: k}
scheduler: {origins: [http://o1:8080, http://o2:8080], look_ahead: 9, token_ttl: 2m}
`)
	sender := file("sender.yaml", "role: sender\ndata: /blocks\nsender: {ram: 2G, ram_send: copy}\ncluster: {etcd: [http://e:2379], secret: k}\n")
	origin := file("origin.yaml", "points: [{name: a, token: t}]\ningests: [http://i1:8080]\ningest_memory: 2GB\n")
	for _, tc := range []struct {
		r    role
		args []string
		want func(c config.Config) bool
	}{
		{schedulerRole(), []string{"--config", sched}, func(c config.Config) bool {
			return c.Listen == "127.0.0.1:8090" && c.Log == config.Log{Level: "debug", Format: "json"} &&
				reflect.DeepEqual(c.Scheduler.Origins, []string{"http://o1:8080", "http://o2:8080"}) &&
				c.Scheduler.LookAhead == 9 && c.Scheduler.TokenTTL == 2*time.Minute && c.Scheduler.AltSend == 2 &&
				c.Cluster.Replicas == 3 && len(c.Cluster.Senders) == 2
		}},
		{schedulerRole(), []string{"--config", sched, "--origin", "http://o3:8080", "--look-ahead", "1", "--senders", "http://s9:9001", "--log-level", "warn"}, func(c config.Config) bool {
			return reflect.DeepEqual(c.Scheduler.Origins, []string{"http://o3:8080"}) && c.Scheduler.LookAhead == 1 &&
				reflect.DeepEqual(c.Cluster.Senders, []string{"http://s9:9001"}) && c.Log.Level == "warn" && c.Log.Format == "json"
		}},
		{senderRole(), []string{"--config", sender, "--ram", "512M"}, func(c config.Config) bool {
			return c.Listen == "127.0.0.1:9001" && c.Data == "/blocks" && c.Sender.RAM == 512<<20 && c.Sender.RAMSend == "copy" &&
				c.Cluster.EtcdPrefix == config.DefaultEtcdPrefix && c.Sender.EtcdTTL == 3*time.Second
		}},
		{senderRole(), []string{"--config", sender}, func(c config.Config) bool { return c.Sender.RAM == 2<<30 }},
		{originRole(), []string{"--config", origin, "--point", "b", "--point", "a", "--ingest-memory", "1GiB"}, func(c config.Config) bool {
			return len(c.Points) == 2 && c.Points[0].Token == "t" && c.Points[1].Name == "b" &&
				reflect.DeepEqual(c.Ingests, []string{"http://i1:8080"}) && c.IngestMemory == 1<<30
		}},
		{originRole(), []string{"--config", origin}, func(c config.Config) bool { return c.IngestMemory == 2e9 }},
		{distributionRole(), []string{"--origin", "http://o:1", "--cache-size", "2G", "--max-object", "1MB"}, func(c config.Config) bool {
			return c.Distribution.CacheBytes == 2<<30 && c.Distribution.MaxObject == 1e6
		}},
	} {
		c, err := tc.r.parse(tc.args, io.Discard)
		if err != nil {
			t.Errorf("%s %v: %v", tc.r.name, tc.args, err)
			continue
		}
		if !tc.want(c) {
			t.Errorf("%s %v: got %+v", tc.r.name, tc.args, c)
		}
	}
	for _, tc := range []struct {
		r    role
		args []string
		want string
	}{
		{senderRole(), []string{"--config", sched}, `for role "scheduler", not "sender"`},
		{senderRole(), []string{"--ram", "0"}, "--ram"},
		{senderRole(), []string{"--ram-send", "mmap"}, "--ram-send"},
		{schedulerRole(), []string{"--log-format", "xml"}, "--log-format"},
		{schedulerRole(), []string{"extra"}, "unexpected arguments"},
	} {
		if _, err := tc.r.parse(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: %v, want an error with %q", tc.r.name, tc.args, err, tc.want)
		}
	}
}
