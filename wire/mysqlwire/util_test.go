package mysqlwire

import (
	"github.com/switchyard/switchyard/internal/testcluster"
	"os/exec"
)

func execLookPath(names ...string) (string, error) {
	var err error
	for _, n := range names {
		var p string
		if p, err = exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", err
}

func runCmd(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

func testcluster_count(table string) (string, error) {
	return testcluster.Maria.QueryString(testcluster.Maria.Primary, "SELECT COUNT(*) FROM "+table)
}
