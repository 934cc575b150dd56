package throwaway

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 60 * time.Second

// Server is a running throwaway database server.
type Server struct {
	dsn  string
	dir  string // removed by Stop; "" when its owner removes it
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	stop syscall.Signal

	once    sync.Once
	stopErr error
}

// DSN returns the data source name of the server's "test" database, in the
// form the project's driver for it takes: go-sql-driver/mysql for MariaDB,
// a pgx URL for PostgreSQL.
func (s *Server) DSN() string { return s.dsn }

// Stop shuts the server down and removes its data. It is safe to call more
// than once.
func (s *Server) Stop() error {
	s.once.Do(func() {
		if s.stop == syscall.SIGKILL {
			// Nothing gets to clean up anyway: the whole process group.
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		} else {
			_ = s.cmd.Process.Signal(s.stop)
		}
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if s.dir != "" {
			s.stopErr = os.RemoveAll(s.dir)
		}
	})
	return s.stopErr
}

// start runs cmd as a child that dies with this process, logging to logPath.
func start(cmd *exec.Cmd, dir, logPath string, stop syscall.Signal) (*Server, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	// Its own process group: a Ctrl-C meant for the parent must not stop the
	// server before the parent has finished with it.
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("throwaway: starting %s: %w", cmd.Path, err)
	}
	s := &Server{dir: dir, cmd: cmd, done: make(chan struct{}), stop: stop}
	go func() { _ = cmd.Wait(); close(s.done) }()
	return s, nil
}

// discard undoes a start-up that failed: it stops s if it was started (Stop
// removes dir), else removes dir.
func discard(s *Server, dir string) {
	if s != nil {
		s.Stop()
		return
	}
	os.RemoveAll(dir)
}

// createTestDB waits until the server answers on admin, then creates the
// "test" database with the statement create.
func (s *Server) createTestDB(ctx context.Context, admin *sql.DB, logPath, create string) error {
	if err := s.waitReady(ctx, admin, logPath); err != nil {
		return err
	}
	if _, err := admin.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("throwaway: creating database test: %w", err)
	}
	return nil
}

// waitReady polls db until it answers, the server exits or the deadline
// passes; on failure the error carries the tail of the server's log.
func (s *Server) waitReady(ctx context.Context, db *sql.DB, logPath string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		err := db.PingContext(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("throwaway: %s exited at start-up:\n%s", filepath.Base(s.cmd.Path), tail(logPath))
		case <-ctx.Done():
			return fmt.Errorf("throwaway: %s did not accept connections (%v):\n%s", filepath.Base(s.cmd.Path), err, tail(logPath))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findBinary returns the first existing path among the candidates (glob
// patterns allowed; the highest version wins) or "".
func findBinary(candidates ...string) string {
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil && !filepath.IsAbs(c) {
			return p
		}
		matches, _ := filepath.Glob(c)
		sort.Slice(matches, func(i, j int) bool { return versionLess(matches[i], matches[j]) })
		for i := len(matches) - 1; i >= 0; i-- {
			if fi, err := os.Stat(matches[i]); err == nil && !fi.IsDir() {
				return matches[i]
			}
		}
	}
	return ""
}

// versionLess orders paths such as /usr/lib/postgresql/9/bin before .../15/bin.
func versionLess(a, b string) bool {
	va, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(a))))
	vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b))))
	if va != vb {
		return va < vb
	}
	return a < b
}

var aptMu sync.Mutex

// ensureBinary finds a server binary, installing pkg with apt-get if needed.
func ensureBinary(pkg string, candidates ...string) (string, error) {
	if p := findBinary(candidates...); p != "" {
		return p, nil
	}
	aptMu.Lock()
	defer aptMu.Unlock()
	if p := findBinary(candidates...); p != "" {
		return p, nil
	}
	if err := aptInstall(pkg); err != nil {
		return "", err
	}
	if p := findBinary(candidates...); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("throwaway: installed %s but found none of %v", pkg, candidates)
}

func aptInstall(pkg string) error {
	var prefix []string
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("sudo"); err != nil {
			return fmt.Errorf("throwaway: %s is not installed and this user cannot install it (not root, no sudo): run apt-get install %s", pkg, pkg)
		}
		prefix = []string{"sudo", "-n"}
	}
	run := func(args ...string) error {
		args = append(prefix, args...)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("throwaway: %v: %w\n%s", args, err, out)
		}
		return nil
	}
	fmt.Fprintf(os.Stderr, "throwaway: installing %s with apt-get\n", pkg)
	// Another install (unattended upgrades, another test run) may hold
	// dpkg's lock for a while: wait for it rather than fail at once.
	wait := "-oDPkg::Lock::Timeout=600"
	if err := run("apt-get", wait, "update", "-qq"); err != nil {
		return err
	}
	return run("apt-get", wait, "install", "-y", "-qq", "--no-install-recommends", pkg)
}
