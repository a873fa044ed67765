package testcluster

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// shortDir returns a new directory with a short path that the servers' OS
// user can reach (t.TempDir is mode 0700 and may be long).
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sytcfixed")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestOptionsReplicaCount(t *testing.T) {
	for _, tc := range []struct {
		o       Options
		want    int
		wantErr bool
	}{
		{Options{}, 2, false},
		{Options{Replicas: -1}, 0, false},
		{Options{Replicas: 3}, 3, false},
		{Options{Ports: []int{1, 2}}, 1, false},
		{Options{Ports: []int{1}}, 0, false},
		{Options{Replicas: -1, Ports: []int{1}}, 0, false},
		{Options{Replicas: 2, Ports: []int{1, 2}}, 0, true},
		{Options{Replicas: -1, Ports: []int{1, 2}}, 0, true},
	} {
		got, err := tc.o.replicaCount(2)
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("%+v: got %d, %v; want %d, error %v", tc.o, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestLeftByCluster(t *testing.T) {
	for name, want := range map[string]bool{
		"n0": true, "n12": true, "n0.log": true, "n1.sock": true, "n1.pid": true,
		"template": true, "owner.pid": true,
		"lock": false, "notes": false, "n": false, "nx.log": false, "pg": false, "data": false,
	} {
		if got := leftByCluster(name); got != want {
			t.Errorf("leftByCluster(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestPrepareDirRefusesLongPath(t *testing.T) {
	_, _, err := prepareDir("/tmp/"+strings.Repeat("x", maxDirLen), nil)
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("want a path-too-long error, got %v", err)
	}
}

// TestFixedPortsAndDir starts clusters on given ports in a given directory,
// twice on the same directory, and checks what Stop keeps.
func TestFixedPortsAndDir(t *testing.T) {
	dir := shortDir(t)
	ports, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	pgDir, myDir := filepath.Join(dir, "pg"), filepath.Join(dir, "my")
	// Something an earlier cluster did not create stays.
	if err := os.MkdirAll(pgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pgDir, "notes"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		pg, err := StartPostgres(Options{Ports: ports[:3], Dir: pgDir, Log: os.Stderr})
		if err != nil {
			t.Fatal(err)
		}
		my, err := StartMariaDB(Options{Ports: ports[3:], Dir: myDir, Log: os.Stderr})
		if err != nil {
			pg.Stop()
			t.Fatal(err)
		}
		if pg.Primary.Port != ports[0] || len(pg.Replicas) != 2 || pg.Replicas[0].Port != ports[1] || pg.Replicas[1].Port != ports[2] {
			t.Errorf("postgres nodes %v %v, want ports %v", pg.Primary, pg.Replicas, ports[:3])
		}
		if my.Primary.Port != ports[3] || len(my.Replicas) != 1 || my.Replicas[0].Port != ports[4] {
			t.Errorf("mariadb nodes %v %v, want ports %v", my.Primary, my.Replicas, ports[3:])
		}
		if got := filepath.Dir(pg.Primary.Dir); got != pgDir {
			t.Errorf("postgres primary in %s, want under %s", pg.Primary.Dir, pgDir)
		}
		// One cluster per directory.
		if c, err := StartMariaDB(Options{Replicas: -1, Dir: myDir}); err == nil || !strings.Contains(err.Error(), "in use by another cluster") {
			if c != nil {
				c.Stop()
			}
			t.Errorf("second cluster in %s: want an in-use error, got %v", myDir, err)
		}
		// A fixed port in use is an error at once.
		if c, err := StartMariaDB(Options{Ports: []int{ports[0]}, Dir: filepath.Join(dir, "other")}); err == nil || !strings.Contains(err.Error(), "port "+strconv.Itoa(ports[0])) {
			if c != nil {
				c.Stop()
			}
			t.Errorf("port in use: want an error naming port %d, got %v", ports[0], err)
		}
		// Each round starts from fresh data.
		if err := pg.Exec(pg.Primary, "app", "CREATE TABLE fixed_t (id int)"); err != nil {
			t.Errorf("round %d: %v", round, err)
		}
		if err := my.Exec(my.Primary, "CREATE TABLE app.fixed_t (id int)"); err != nil {
			t.Errorf("round %d: %v", round, err)
		}
		pg.Stop()
		my.Stop()
		for _, p := range ports {
			l, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(p)))
			if err != nil {
				t.Fatalf("after Stop, port %d: %v", p, err)
			}
			l.Close()
		}
		for _, f := range []string{"n0.log", "n1.log", "n0/PG_VERSION", "notes"} {
			if _, err := os.Stat(filepath.Join(pgDir, f)); err != nil {
				t.Errorf("after Stop: %v", err)
			}
		}
		if _, err := os.Stat(filepath.Join(myDir, "n0.log")); err != nil {
			t.Errorf("after Stop: %v", err)
		}
	}
}
