package throwaway

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"syscall"

	"github.com/go-sql-driver/mysql"
)

// MariaDB starts a throwaway MariaDB server (installing mariadb-server when
// missing) and returns it with an empty "test" database. Grant tables are
// skipped, so root has every privilege and no password. Durability settings
// are relaxed for speed: the data is deleted by Stop anyway.
func MariaDB(ctx context.Context) (_ *Server, err error) {
	bin, err := ensureBinary("mariadb-server", "mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "throwaway-mariadb-")
	if err != nil {
		return nil, err
	}
	var s *Server
	defer func() {
		if err != nil {
			discard(s, dir)
		}
	}()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, err
	}
	args := []string{
		"--no-defaults",
		"--datadir=" + data,
		"--socket=" + filepath.Join(dir, "mysql.sock"),
		"--pid-file=" + filepath.Join(dir, "mysql.pid"),
		fmt.Sprintf("--port=%d", port),
		"--bind-address=127.0.0.1",
		"--skip-grant-tables",
		"--skip-log-bin",
		"--innodb-flush-log-at-trx-commit=2",
		"--max-connections=500",
	}
	sizes := []string{"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=32M"}
	args = append(args, sizes...)
	var asUser []string
	if os.Geteuid() == 0 {
		// mariadbd refuses to run as root unless told to.
		if u, err := user.Current(); err == nil {
			asUser = []string{"--user=" + u.Username}
			args = append(args, asUser...)
		}
	}
	// The system schema, as on any installed server: without it MariaDB
	// tries (and fails) to open its statistics tables at every statement
	// that opens a table, which would make statements cost more than they
	// do on a real server. It takes well under a second.
	if install := findBinary("mariadb-install-db", "/usr/bin/mariadb-install-db", "mysql_install_db"); install != "" {
		iargs := append([]string{"--no-defaults", "--datadir=" + data, "--skip-test-db", "--auth-root-authentication-method=normal"}, sizes...)
		if out, err := exec.CommandContext(ctx, install, append(iargs, asUser...)...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("throwaway: %s: %w\n%s", install, err, out)
		}
	}
	logPath := filepath.Join(dir, "server.log")
	if s, err = start(exec.Command(bin, args...), dir, logPath, syscall.SIGTERM); err != nil {
		return nil, err
	}
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "tcp"
	cfg.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	admin, err := openMySQL(cfg)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if err := s.createTestDB(ctx, admin, logPath, "CREATE DATABASE IF NOT EXISTS test"); err != nil {
		return nil, err
	}
	cfg.DBName = "test"
	cfg.ParseTime = true
	s.dsn = cfg.FormatDSN()
	return s, nil
}

func openMySQL(cfg *mysql.Config) (*sql.DB, error) {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}
