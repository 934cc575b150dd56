// Package proxytest gives exactlyoncev5's integration tests a real Apache
// RocketMQ proxy: Start runs a throwaway name server and a proxy in local
// mode (broker and proxy in one JVM, from Maven Central jars cached in the
// user's cache directory), and FromEnv hands a test the one named by the
// environment, skipping the test without it unless
// REQUIRE_APACHE_ROCKETMQ=1.
//
// It follows internal/throwaway's Apache RocketMQ (same release, same JVM
// flags and sizing for a 2-core machine) and is for tests only.
package proxytest

import (
	"context"
	"crypto/sha256"
	_ "embed" // the pom
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

//go:embed pom.xml
var pom []byte

// Version is the Apache RocketMQ release Start runs, as pinned by pom.xml.
var Version = func() string {
	m := regexp.MustCompile(`<rocketmq\.version>([^<]+)</rocketmq\.version>`).FindSubmatch(pom)
	if m == nil {
		panic("proxytest: pom.xml has no rocketmq.version")
	}
	return string(m[1])
}()

// Proxy is a running throwaway name server and proxy (local mode).
type Proxy struct {
	Endpoint   string // the proxy's gRPC address, host:port, for the v5 clients
	NameServer string // the name server's address, for remoting clients
	Broker     string // the broker's remoting address
	Lib        string // the jars, for mqadmin

	dir   string
	procs []*exec.Cmd
	done  []chan struct{}
}

// jvmFlags are the flags a RocketMQ JVM needs on JDK 17 (DESIGN.md §6),
// with one GC thread for a small machine.
var jvmFlags = []string{
	"--add-opens", "java.base/java.lang=ALL-UNNAMED",
	"--add-opens", "java.base/java.nio=ALL-UNNAMED",
	"--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
	"--add-exports", "java.base/sun.nio.ch=ALL-UNNAMED",
	"--add-exports", "java.base/jdk.internal.ref=ALL-UNNAMED",
	"-XX:+UseSerialGC",
	"-Djava.net.preferIPv4Stack=true",
}

// Start starts a name server and a proxy in local mode on free loopback
// ports, fetching the jars the first time (Maven, installed with apt-get
// when missing, like java). It returns when the proxy serves gRPC and the
// broker takes requests. The proxy accepts invisible durations from 1 s
// (the default minimum is 10 s) so that expiry tests are quick.
func Start(ctx context.Context) (_ *Proxy, err error) {
	java, err := ensure("default-jre-headless", "java")
	if err != nil {
		return nil, err
	}
	lib, err := jars(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "proxytest-")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Lib: lib, dir: dir}
	defer func() {
		if err != nil {
			p.Stop()
		}
	}()
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	namesrvPort, grpcPort, remotingPort, haPort := ports[0], ports[1], ports[2], ports[3]
	brokerPort, err := freeBrokerPort()
	if err != nil {
		return nil, err
	}
	p.NameServer = fmt.Sprintf("127.0.0.1:%d", namesrvPort)
	p.Endpoint = fmt.Sprintf("127.0.0.1:%d", grpcPort)
	p.Broker = fmt.Sprintf("127.0.0.1:%d", brokerPort)
	home := filepath.Join(dir, "home")
	store := filepath.Join(dir, "store")
	for _, d := range []string{home, store} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := writeConf(filepath.Join(dir, "namesrv.conf"), "listenPort", strconv.Itoa(namesrvPort), "bindAddress", "127.0.0.1"); err != nil {
		return nil, err
	}
	if err := writeConf(filepath.Join(dir, "broker.conf"),
		"brokerClusterName", "DefaultCluster",
		"brokerName", "broker-a",
		"brokerId", "0",
		"namesrvAddr", p.NameServer,
		"brokerIP1", "127.0.0.1",
		"bindAddress", "127.0.0.1",
		"listenPort", strconv.Itoa(brokerPort),
		"haListenPort", strconv.Itoa(haPort),
		"storePathRootDir", store,
		"autoCreateTopicEnable", "true",
		"autoCreateSubscriptionGroup", "true",
		"flushDiskType", "ASYNC_FLUSH",
		"mappedFileSizeCommitLog", strconv.Itoa(64<<20),
		"mappedFileSizeTimerLog", strconv.Itoa(4<<20),
		"maxHashSlotNum", "10000",
		"maxIndexNum", "40000",
		"messageDelayLevel", strings.TrimSpace(strings.Repeat("1s ", 18)),
	); err != nil {
		return nil, err
	}
	pc, err := json.Marshal(map[string]any{
		"rocketMQClusterName":          "DefaultCluster",
		"namesrvAddr":                  p.NameServer,
		"grpcServerPort":               grpcPort,
		"remotingListenPort":           remotingPort,
		"minInvisibleTimeMillsForRecv": 1000,
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "proxy.json"), pc, 0o600); err != nil {
		return nil, err
	}
	jvm := func(name, heap, logback, mainClass string, args ...string) error {
		all := append([]string{"-Xmx" + heap}, jvmFlags...)
		if name == "proxy" {
			all = append(all, "-XX:MaxDirectMemorySize=512m")
		}
		all = append(all,
			"-Drocketmq.home.dir="+home,
			"-Duser.home="+home,
			"-Drmq.logback.configurationFile="+logback,
			"-cp", filepath.Join(lib, "*"),
			mainClass)
		all = append(all, args...)
		cmd := exec.Command(java, all...)
		cmd.Dir = dir
		out, err := os.Create(filepath.Join(dir, name+".out"))
		if err != nil {
			return err
		}
		defer out.Close()
		cmd.Stdout, cmd.Stderr = out, out
		// Die with the parent; a group of its own so that a Ctrl-C meant
		// for the test does not stop it first.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("proxytest: starting the %s: %w", name, err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		p.procs = append(p.procs, cmd)
		p.done = append(p.done, done)
		return nil
	}
	if err := jvm("namesrv", "128m", "rmq.namesrv.logback.xml", "org.apache.rocketmq.namesrv.NamesrvStartup", "-c", "namesrv.conf"); err != nil {
		return nil, err
	}
	if err := p.waitLine(ctx, 0, "namesrv.out", "boot success"); err != nil {
		return nil, err
	}
	if err := jvm("proxy", "768m", "rmq.proxy.logback.xml", "org.apache.rocketmq.proxy.ProxyStartup",
		"-pm", "local", "-bc", "broker.conf", "-n", p.NameServer, "-pc", "proxy.json"); err != nil {
		return nil, err
	}
	if err := p.waitLine(ctx, 1, "proxy.out", "startup successfully"); err != nil {
		return nil, err
	}
	for _, addr := range []string{p.Endpoint, p.Broker} {
		if err := waitPort(ctx, addr); err != nil {
			return nil, fmt.Errorf("proxytest: %s: %w\n%s", addr, err, p.logs())
		}
	}
	return p, nil
}

// Env returns the environment variables that hand p to tests (see FromEnv).
func (p *Proxy) Env() []string {
	return []string{
		EnvProxy + "=" + p.Endpoint,
		EnvNameServer + "=" + p.NameServer,
		EnvBroker + "=" + p.Broker,
		EnvLib + "=" + p.Lib,
	}
}

// Stop kills the JVMs and removes their store and logs. Safe to call more
// than once.
func (p *Proxy) Stop() {
	for i := len(p.procs) - 1; i >= 0; i-- {
		_ = p.procs[i].Process.Kill()
		<-p.done[i]
	}
	p.procs, p.done = nil, nil
	_ = os.RemoveAll(p.dir)
}

// waitLine waits until file (in p's dir) has a line containing want, or
// the i-th JVM exits.
func (p *Proxy) waitLine(ctx context.Context, i int, file, want string) error {
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	for {
		if b, err := os.ReadFile(filepath.Join(p.dir, file)); err == nil && strings.Contains(string(b), want) {
			return nil
		}
		select {
		case <-p.done[i]:
			return fmt.Errorf("proxytest: %s exited at start-up:\n%s", file, p.logs())
		case <-ctx.Done():
			return fmt.Errorf("proxytest: no %q in %s: %w\n%s", want, file, ctx.Err(), p.logs())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// logs returns the end of the JVMs' output and RocketMQ logs.
func (p *Proxy) logs() string {
	var b strings.Builder
	for _, f := range []string{"namesrv.out", "proxy.out", "home/logs/rocketmqlogs/proxy.log", "home/logs/rocketmqlogs/broker.log"} {
		data, _ := os.ReadFile(filepath.Join(p.dir, f))
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "--- %s:\n%s\n", f, data)
	}
	return b.String()
}

func waitPort(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func writeConf(path string, kv ...string) error {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "%s=%s\n", kv[i], kv[i+1])
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// freeBrokerPort returns a port p such that p and p-2 were free: the broker
// listens on both.
func freeBrokerPort() (int, error) {
	for range 50 {
		ps, err := freePorts(1)
		if err != nil {
			return 0, err
		}
		p := ps[0]
		if p <= 1026 {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p-2))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, errors.New("proxytest: no free pair of ports p, p-2 for the broker")
}

// ensure returns the path of bin, installing pkg with apt-get when missing.
func ensure(pkg, bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	fmt.Fprintf(os.Stderr, "proxytest: installing %s for %s\n", pkg, bin)
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", pkg}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("proxytest: apt-get %v: %w\n%s", args, err, out)
		}
	}
	return exec.LookPath(bin)
}

// jars returns the directory of the pinned release's jars, fetching them
// with Maven the first time into the user's cache directory, under a name
// keyed by the pom's hash, filled in a temp dir and renamed into place.
func jars(ctx context.Context) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(pom)
	base := filepath.Join(cache, "rocketmq-exactlyonce", "apache-rocketmq-proxy-"+Version+"-"+hex.EncodeToString(sum[:4]))
	lib := filepath.Join(base, "lib")
	if _, err := os.Stat(lib); err == nil {
		return lib, nil
	}
	mvn, err := ensure("maven", "mvn")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(base, "download-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if err := os.WriteFile(filepath.Join(work, "pom.xml"), pom, 0o644); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "proxytest: fetching Apache RocketMQ %s (proxy) from Maven Central into %s\n", Version, lib)
	cmd := exec.CommandContext(ctx, mvn, "-q", "-B", "-f", filepath.Join(work, "pom.xml"),
		"-Dmaven.repo.local="+filepath.Join(work, "repository"),
		"dependency:copy-dependencies", "-DoutputDirectory="+filepath.Join(work, "lib"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("proxytest: %v: %w\n%s", cmd.Args, err, out)
	}
	if err := os.Rename(filepath.Join(work, "lib"), lib); err != nil {
		if _, statErr := os.Stat(lib); statErr == nil {
			return lib, nil
		}
		return "", err
	}
	return lib, nil
}

// MQAdmin runs mqadmin (MQAdminStartup) from lib with args, for what the Go
// admin API cannot do, and returns its output.
func MQAdmin(ctx context.Context, lib string, args ...string) (string, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return "", err
	}
	home, err := os.MkdirTemp("", "mqadmin-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(home)
	all := append([]string{"-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"}, jvmFlags[:10]...)
	all = append(all, "-Drocketmq.home.dir="+home, "-Duser.home="+home,
		"-Drmq.logback.configurationFile=rmq.tools.logback.xml",
		"-cp", filepath.Join(lib, "*"), "org.apache.rocketmq.tools.command.MQAdminStartup")
	out, err := exec.CommandContext(ctx, java, append(all, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("proxytest: mqadmin %v: %w\n%s", args, err, out)
	}
	return string(out), nil
}
