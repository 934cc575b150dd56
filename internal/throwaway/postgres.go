package throwaway

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// PostgreSQL starts a throwaway PostgreSQL server (installing postgresql when
// missing) and returns it with an empty "test" database, owned by the
// superuser "postgres" with trust authentication on loopback. As root the
// server runs as the postgres system user, since initdb refuses root.
func PostgreSQL(ctx context.Context) (_ *Server, err error) {
	pgBin := "/usr/lib/postgresql/*/bin/"
	postgres, err := ensureBinary("postgresql", pgBin+"postgres")
	if err != nil {
		return nil, err
	}
	initdb := filepath.Join(filepath.Dir(postgres), "initdb")

	dir, err := os.MkdirTemp("", "throwaway-postgres-")
	if err != nil {
		return nil, err
	}
	var s *Server
	defer func() {
		if err != nil {
			discard(s, dir)
		}
	}()
	cred, err := postgresCredential(dir)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	init := exec.CommandContext(ctx, initdb, "-D", data, "-U", "postgres", "-A", "trust", "--no-sync")
	init.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := init.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("throwaway: initdb: %w\n%s", err, out)
	}
	cmd := exec.Command(postgres, "-D", data,
		"-p", strconv.Itoa(port),
		"-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	logPath := filepath.Join(dir, "server.log")
	// SIGINT is PostgreSQL's fast shutdown: abort sessions, stop cleanly.
	if s, err = start(cmd, dir, logPath, syscall.SIGINT); err != nil {
		return nil, err
	}
	base := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/", port)
	admin, err := sql.Open("pgx", base+"postgres?sslmode=disable")
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if err := s.createTestDB(ctx, admin, logPath, "CREATE DATABASE test"); err != nil {
		return nil, err
	}
	s.dsn = base + "test?sslmode=disable"
	return s, nil
}

// postgresCredential returns the identity to run the server as: nil (this
// process's) unless running as root, then the postgres system user, which
// is given dir.
func postgresCredential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("throwaway: running as root needs the postgres system user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
