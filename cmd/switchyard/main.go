// Command switchyard runs the proxy: it loads the config, starts the
// PostgreSQL, MySQL and admin listeners, reloads on SIGHUP, drains on
// SIGTERM and stops at once on SIGINT.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/fleet"
	"github.com/switchyard/switchyard/internal/limits"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/wire/mysqlwire"
	"github.com/switchyard/switchyard/wire/pgwire"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `Switchyard: a PostgreSQL and MySQL connection pooler and router.

Usage:
  switchyard [-config FILE] [-instance-id N] [-log-format text|json]
             [-log-level LEVEL]      run the proxy
  switchyard check -config FILE      validate a config file; exit 1 naming
                                     the line of each problem
  switchyard reload [-config FILE]   ask the running proxy (its admin_listen)
                                     to reload its config file
  switchyard version                 print the version

-instance-id N (or the environment variable SWITCHYARD_INSTANCE_ID) sets
proxy.instance_id, so that one file serves every instance of a fleet; N is
1..1023, or "from-hostname": the ordinal K at the end of the host name
(a StatefulSet pod "switchyard-K") plus one.

Signals: SIGHUP reloads the config file, SIGTERM stops accepting and lets
transactions finish (up to shutdown_timeout), SIGINT stops at once.
`

func main() {
	if len(os.Args) < 2 || strings.HasPrefix(os.Args[1], "-") && !isHelp(os.Args[1]) {
		tuneRuntime() // serving: see runtime.go
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "-version", "--version":
		return true
	}
	return false
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return check(args[1:], stdout, stderr)
		case "reload":
			return reload(args[1:], stdout, stderr)
		case "version", "-version", "--version":
			fmt.Fprintln(stdout, "switchyard", version)
			return 0
		case "help", "-h", "-help", "--help":
			fmt.Fprint(stdout, usage)
			return 0
		}
	}
	// The CLI has a FlagSet of its own: some dependencies register flags
	// on the global one.
	fs := flag.NewFlagSet("switchyard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	path := fs.String("config", "config.toml", "config file")
	instance := fs.String("instance-id", os.Getenv(instanceEnv), "proxy.instance_id of this instance (overrides the file; default $"+instanceEnv+")")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "switchyard: -log-level: %v\n", err)
		return 2
	}
	opts := &slog.HandlerOptions{Level: level}
	var log *slog.Logger
	switch *logFormat {
	case "json":
		log = slog.New(slog.NewJSONHandler(stderr, opts))
	case "text":
		log = slog.New(slog.NewTextHandler(stderr, opts))
	default:
		fmt.Fprintf(stderr, "switchyard: -log-format must be text or json\n")
		return 2
	}
	cfg, err := loadConfig(*path, *instance)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard: %v\n", err)
		return 1
	}
	p, err := start(cfg, *path, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			if err := p.reload(); err != nil {
				log.Warn("reload rejected; the running config stays", "err", err)
			}
		case syscall.SIGTERM:
			log.Info("SIGTERM: draining", "timeout", p.cfg().Proxy.ShutdownTimeout)
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg().Proxy.ShutdownTimeout)
			p.shutdown(ctx)
			cancel()
			return 0
		case syscall.SIGINT:
			log.Info("SIGINT: closing now")
			p.close()
			return 0
		}
	}
	return 0
}

// proxy is the running process: the listeners and what serves them.
type proxy struct {
	path  string
	log   *slog.Logger
	mu    sync.Mutex // serializes reloads
	pg    *pgwire.Server
	my    *mysqlwire.Server
	admin *http.Server
	// adminCert is the admin listener's certificate under admin_tls,
	// loaded again at each reload (a renewed file under the same name).
	adminCert atomic.Pointer[tls.Certificate]
	lns       []net.Listener
	cur       *config.Config
	// version counts the configs applied (1 at start); under mu.
	version uint64
	// instance is proxy.instance_id as started: a reload keeps it
	// whatever the file says (the file may be shared by the fleet).
	instance string
	// bound is the config the listeners were bound with, and restart what
	// the last accepted file asks for that only a restart applies (a
	// listener's address); both under mu.
	bound   *config.Config
	restart []string
}

func (p *proxy) cfg() *config.Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

var registerMySQL sync.Once

func start(cfg *config.Config, path string, log *slog.Logger) (*proxy, error) {
	registerMySQL.Do(func() { metrics.Registry.MustRegister(mysqlwire.Collectors()...) })
	p := &proxy{path: path, log: log, cur: cfg, bound: cfg, version: 1, instance: strconv.Itoa(cfg.Proxy.InstanceID)}
	// One door policy for both protocols: max_client_conns counts every
	// client, and an address that fails MySQL logins is refused by the
	// PostgreSQL listener too.
	lim := limits.New()
	if cfg.Proxy.InstanceID == 0 && len(cfg.Peers) > 0 {
		log.Warn("[[peers]] are configured but proxy.instance_id is not: this instance forwards no cancel or KILL (set instance_id, -instance-id or " + instanceEnv + ")")
	}
	if cfg.Proxy.InstanceID != 0 && len(cfg.OtherPeers()) > 0 && cfg.Proxy.MySQLListen != "" && cfg.Proxy.AdminToken == "" {
		log.Warn("proxy.admin_token is not set: MySQL KILLs for other instances' clients cannot be forwarded, nor received from them (the peer channel needs the token)")
	}
	if cfg.Proxy.PostgresListen != "" {
		pg, err := pgwire.NewServer(cfg, log.With("protocol", "postgres"))
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", cfg.Proxy.PostgresListen)
		if err != nil {
			return nil, err
		}
		pg.OnReload = p.reload
		pg.Limits = lim
		p.pg, p.lns = pg, append(p.lns, ln)
		go func() {
			if err := pg.Serve(ln); err != nil {
				log.Error("postgres listener failed", "err", err)
			}
		}()
		log.Info("listening for PostgreSQL clients", "addr", ln.Addr().String())
	}
	if cfg.Proxy.MySQLListen != "" {
		my := mysqlwire.NewServer(cfg, log.With("protocol", "mysql"))
		my.Limits = lim
		ln, err := net.Listen("tcp", cfg.Proxy.MySQLListen)
		if err != nil {
			p.close()
			return nil, err
		}
		p.my, p.lns = my, append(p.lns, ln)
		go func() {
			if err := my.Serve(ln); err != nil && !errors.Is(err, mysqlwire.ErrServerClosed) {
				log.Error("mysql listener failed", "err", err)
			}
		}()
		log.Info("listening for MySQL clients", "addr", ln.Addr().String())
	}
	if cfg.Proxy.AdminListen != "" {
		ln, err := net.Listen("tcp", cfg.Proxy.AdminListen)
		if err != nil {
			p.close()
			return nil, err
		}
		h := admin.NewHandler(p.reload, log)
		h.Token = func() string { return p.cfg().Proxy.AdminToken }
		h.Instance = p.instanceStatus
		if p.my != nil {
			h.PeerKill = func(k fleet.KillRequest) fleet.KillReply { return p.my.KillFromPeer(k.ID, k.Query, k.User) }
		}
		h.Sections = map[string]func() any{}
		if p.pg != nil {
			h.Sections["postgres"] = p.pg.Status
		}
		if p.my != nil {
			h.Sections["mysql"] = p.my.Status
		}
		p.admin = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
			// Failed handshakes and the like: noise at debug level.
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		if cfg.Proxy.AdminTLS {
			if err := p.loadAdminCert(cfg); err != nil {
				ln.Close()
				p.close()
				return nil, err
			}
			p.admin.TLSConfig = &tls.Config{
				MinVersion: tls.VersionTLS12,
				GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
					return p.adminCert.Load(), nil
				},
			}
			ln = tls.NewListener(ln, p.admin.TLSConfig)
		}
		go func() {
			if err := p.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin listener failed", "err", err)
			}
		}()
		log.Info("admin listening", "addr", ln.Addr().String())
	}
	return p, nil
}

// reload reads the config file again and applies it whole, or not at all.
func (p *proxy) reload() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cfg, err := loadConfig(p.path, p.instance)
	if err != nil {
		return err
	}
	// Listeners against those bound at start, not the last file: a
	// change reverted in the file is no change, and one kept is still
	// pending at the next reload.
	ch := config.Diff(p.bound, cfg)
	if len(ch.RestartNeeded) > 0 {
		p.log.Warn("reload: these changes take effect after a restart", "keys", strings.Join(ch.RestartNeeded, ", "))
	}
	if p.my != nil {
		if err := p.my.CheckReload(cfg); err != nil {
			return err // before PostgreSQL takes it: all or nothing
		}
	}
	if p.admin != nil && p.admin.TLSConfig != nil && cfg.Proxy.AdminTLS {
		if err := p.loadAdminCert(cfg); err != nil {
			return err
		}
	}
	if p.pg != nil {
		if err := p.pg.Reload(cfg); err != nil {
			return err
		}
	}
	if p.my != nil {
		if err := p.my.Reload(cfg); err != nil {
			return err
		}
	}
	p.cur = cfg
	p.restart = ch.RestartNeeded
	p.version++
	p.log.Info("config reloaded", "path", p.path, "config_version", p.version)
	return nil
}

// instanceStatus describes this instance for /status and reload answers.
func (p *proxy) instanceStatus() admin.Instance {
	p.mu.Lock()
	in := admin.Instance{InstanceID: p.cur.Proxy.InstanceID, ConfigVersion: p.version, MapVersions: map[string]uint64{}, RestartNeeded: p.restart}
	p.mu.Unlock()
	if p.pg != nil {
		for k, v := range p.pg.MapVersions() {
			in.MapVersions[k] = v
		}
	}
	if p.my != nil {
		for k, v := range p.my.MapVersions() {
			in.MapVersions[k] = v
		}
	}
	return in
}

// loadAdminCert loads the certificate the admin listener serves under
// admin_tls: the client listener's tls_cert and tls_key.
func (p *proxy) loadAdminCert(cfg *config.Config) error {
	cert, err := tls.LoadX509KeyPair(cfg.Proxy.TLSCert, cfg.Proxy.TLSKey)
	if err != nil {
		return fmt.Errorf("admin_tls: %w", err)
	}
	p.adminCert.Store(&cert)
	return nil
}

// shutdown drains both protocols at once: each stops accepting, closes its
// idle clients and waits for its transactions in flight, all within ctx.
// One after the other, the second listener would go on accepting (and its
// idle clients stay) while the first waits for its transactions, and the
// second's transactions would get only what is left of ctx.
func (p *proxy) shutdown(ctx context.Context) {
	var wg sync.WaitGroup
	if p.pg != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.pg.Shutdown(ctx); err != nil {
				p.log.Warn("shutdown timeout reached; closed remaining clients", "err", err)
			}
		}()
	}
	if p.my != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.my.Shutdown(ctx); err != nil {
				p.log.Warn("shutdown timeout reached; closed remaining MySQL clients", "err", err)
			}
		}()
	}
	wg.Wait()
	if p.admin != nil {
		_ = p.admin.Shutdown(ctx)
	}
}

func (p *proxy) close() {
	if p.pg != nil {
		p.pg.Close()
	}
	if p.my != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // no grace: close now
		_ = p.my.Shutdown(ctx)
	}
	if p.admin != nil {
		_ = p.admin.Close()
	}
}

// instanceEnv names the environment variable that sets proxy.instance_id
// when -instance-id is not given.
const instanceEnv = "SWITCHYARD_INSTANCE_ID"

// loadConfig loads the file at path and applies an instance id given on
// the command line or in the environment ("" : the file's).
func loadConfig(path, instance string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if instance == "" {
		return cfg, nil
	}
	id, err := parseInstanceID(instance, os.Hostname)
	if err != nil {
		return nil, err
	}
	cfg.Proxy.InstanceID = id // cfg is not shared yet
	return cfg, nil
}

// parseInstanceID reads an -instance-id value: a number from 0 to
// config.MaxInstanceID, or "from-hostname".
func parseInstanceID(s string, hostname func() (string, error)) (int, error) {
	if s == "from-hostname" {
		h, err := hostname()
		if err != nil {
			return 0, fmt.Errorf("-instance-id from-hostname: %w", err)
		}
		h, _, _ = strings.Cut(h, ".")
		i := strings.LastIndexByte(h, '-')
		k, err := strconv.Atoi(h[i+1:])
		if i < 0 || err != nil || k < 0 || k >= config.MaxInstanceID {
			return 0, fmt.Errorf("-instance-id from-hostname: the host name %q does not end in -K with K from 0 to %d (a StatefulSet pod's ordinal)", h, config.MaxInstanceID-1)
		}
		return k + 1, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > config.MaxInstanceID {
		return 0, fmt.Errorf("-instance-id (or %s): %q is not a number from 1 to %d (0: no fleet) nor from-hostname", instanceEnv, s, config.MaxInstanceID)
	}
	return n, nil
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchyard check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.toml", "config file to validate")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := config.Load(*path); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return 0
}

func reload(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchyard reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.toml", "config file whose admin_listen names the running proxy")
	all := fs.Bool("all", false, "reload every instance of the fleet too: the admin_listen of each [[peers]] entry")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *all {
		return reloadAll(cfg, stdout, stderr)
	}
	if cfg.Proxy.AdminListen == "" {
		fmt.Fprintln(stderr, "switchyard reload: the config has no admin_listen to send the reload to")
		return 1
	}
	client, err := fleet.NewClient(cfg, 30*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard reload: %v\n", err)
		return 1
	}
	body, err := postReload(client, cfg.Proxy.AdminListen)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard reload: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, body)
	return 0
}

// postReload asks the admin listener at addr to reload and returns its
// answer; a rejected file is an error that carries the proxy's words.
func postReload(client *fleet.Client, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := client.Post(ctx, addr, "/reload", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// reloadAll reloads this instance (admin_listen, when the file has one)
// and every peer at once, and prints one line for each: its answer
// (instance id, config version, shard map versions), or why it failed,
// a peer that does not answer as DOWN. The exit code is 1 when any
// failed. Each instance reloads its own file: the operator has changed
// the file of each (or the one they share) before.
func reloadAll(cfg *config.Config, stdout, stderr io.Writer) int {
	client, err := fleet.NewClient(cfg, 30*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "switchyard reload: %v\n", err)
		return 1
	}
	type target struct{ name, addr string }
	var targets []target
	seen := map[string]bool{}
	if a := cfg.Proxy.AdminListen; a != "" {
		targets = append(targets, target{"this instance at " + a, a})
		seen[a] = true
	}
	for _, p := range cfg.Peers {
		if p.AdminListen == "" || seen[p.AdminListen] {
			continue
		}
		seen[p.AdminListen] = true
		targets = append(targets, target{fmt.Sprintf("peer %d at %s", p.InstanceID, p.AdminListen), p.AdminListen})
	}
	if len(targets) == 0 {
		fmt.Fprintln(stderr, "switchyard reload --all: the config has no admin_listen and no [[peers]] admin_listen")
		return 1
	}
	lines := make([]string, len(targets))
	failed := make([]bool, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, err := postReload(client, tg.addr)
			var ne net.Error
			var oe *net.OpError
			switch {
			case err == nil:
				lines[i] = tg.name + ": " + strings.TrimSpace(body)
			case errors.As(err, &oe) || errors.As(err, &ne):
				lines[i], failed[i] = tg.name+": DOWN: "+err.Error(), true
			default:
				lines[i], failed[i] = tg.name+": FAILED: "+strings.ReplaceAll(err.Error(), "\n", "\n    "), true
			}
		}()
	}
	wg.Wait()
	code := 0
	for i, l := range lines {
		if failed[i] {
			fmt.Fprintln(stderr, l)
			code = 1
		} else {
			fmt.Fprintln(stdout, l)
		}
	}
	return code
}
