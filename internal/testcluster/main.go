package testcluster

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"
)

// stderr receives Main's messages.
var stderr io.Writer = os.Stderr

// PG and Maria are the clusters Main started for this test binary (nil if
// not requested).
var (
	PG    *Postgres
	Maria *MariaDB
)

// Main is the body of a TestMain: it starts the requested clusters (in
// parallel) into PG and Maria, runs the tests, stops the clusters and returns
// the exit code:
//
//	func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, true, true)) }
//
// If a server is not installed, or a cluster does not start, it says so on
// stderr and returns 1; it never skips the tests silently.
func Main(m *testing.M, needPG, needMaria bool) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	var missing []string
	if needPG {
		if _, err := findPostgres(); err != nil {
			missing = append(missing, err.Error())
		}
	}
	if needMaria {
		if _, _, err := findMariaDB(); err != nil {
			missing = append(missing, err.Error())
		}
	}
	if len(missing) > 0 {
		for _, s := range missing {
			fmt.Fprintf(stderr, "testcluster: %s\n", s)
		}
		fmt.Fprintln(stderr, "testcluster: these tests need real database servers. Run `make test` (it installs the packages with scripts/install-deps.sh), or run scripts/install-deps.sh as root, then run the tests again.")
		return 1
	}

	var (
		wg           sync.WaitGroup
		pgErr, myErr error
		pgDur, myDur time.Duration
		pgc          *Postgres
		myc          *MariaDB
		start        = time.Now()
	)
	if needPG {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pgc, pgErr = StartPostgres(Options{Log: stderr})
			pgDur = time.Since(start)
		}()
	}
	if needMaria {
		wg.Add(1)
		go func() {
			defer wg.Done()
			myc, myErr = StartMariaDB(Options{Log: stderr})
			myDur = time.Since(start)
		}()
	}
	wg.Wait()
	PG, Maria = pgc, myc
	stop := func() {
		if PG != nil {
			PG.Stop()
		}
		if Maria != nil {
			Maria.Stop()
		}
	}
	if pgErr != nil || myErr != nil {
		stop()
		if pgErr != nil {
			fmt.Fprintln(stderr, pgErr)
		}
		if myErr != nil {
			fmt.Fprintln(stderr, myErr)
		}
		return 1
	}
	if testing.Verbose() {
		if PG != nil {
			fmt.Fprintf(stderr, "testcluster: PostgreSQL primary %s, replicas %v, ready in %v\n", PG.Primary.Addr(), addrs(PG.Replicas), pgDur.Round(time.Millisecond))
		}
		if Maria != nil {
			fmt.Fprintf(stderr, "testcluster: MariaDB primary %s, replicas %v, ready in %v\n", Maria.Primary.Addr(), addrs(Maria.Replicas), myDur.Round(time.Millisecond))
		}
	}
	defer stop()
	return m.Run()
}

func addrs(ns []Node) []string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.Addr()
	}
	return s
}
