package throwaway

import (
	"context"
	"crypto/sha256"
	_ "embed" // the pom
	"encoding/hex"
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

	"github.com/b74fc070/rocketmq-exactlyonce/internal/remoting"
)

// pom fetches the pinned Apache RocketMQ release and its dependencies; see
// the comment in it for the choice of release.
//
//go:embed apacherocketmq/pom.xml
var pom []byte

// ApacheRocketMQVersion is the Apache RocketMQ release ApacheRocketMQ runs,
// as pinned by apacherocketmq/pom.xml.
var ApacheRocketMQVersion = func() string {
	m := regexp.MustCompile(`<rocketmq\.version>([^<]+)</rocketmq\.version>`).FindSubmatch(pom)
	if m == nil {
		panic("throwaway: apacherocketmq/pom.xml has no rocketmq.version")
	}
	return string(m[1])
}()

// rocketMQStartTimeout bounds the JVMs' start, the broker's registration
// and the first route: about 4 s on an idle 2-core machine, 15-30 s on a
// loaded one.
const rocketMQStartTimeout = 90 * time.Second

// RocketMQ is a running throwaway Apache RocketMQ: one name server and one
// broker (cluster "DefaultCluster", broker "broker-a") on loopback ports.
type RocketMQ struct {
	namesrv, broker         *Server
	namesrvAddr, brokerAddr string
	proxyAddr               string // "" without WithProxy
	dir                     string
	// startBroker starts the broker JVM on the instance's configuration
	// (ports, store): again after KillBroker.
	startBroker func() (*Server, error)
}

// NameServer returns the name server's address, host:port: what clients
// take as their name server list.
func (r *RocketMQ) NameServer() string { return r.namesrvAddr }

// Broker returns the broker's address, host:port, for requests clients
// send to a broker directly (topic creation, offset queries).
func (r *RocketMQ) Broker() string { return r.brokerAddr }

// Proxy returns the gRPC address, host:port, of the rocketmq-proxy that
// serves the RocketMQ 5 clients (github.com/apache/rocketmq-clients), or ""
// when the broker was started without WithProxy.
func (r *RocketMQ) Proxy() string { return r.proxyAddr }

// A RocketMQOption configures ApacheRocketMQ.
type RocketMQOption func(*rocketMQConfig)

type rocketMQConfig struct{ proxy bool }

// WithProxy runs the broker inside rocketmq-proxy in local mode (broker and
// proxy in one JVM, DESIGN.md §6), which also serves the gRPC protocol of
// the RocketMQ 5 clients at Proxy(). The broker is the same, on the same
// ports, for remoting clients. The proxy accepts invisible durations from
// 1 s (its default minimum is 10 s), so that tests of their expiry are
// quick. Default: a plain broker.
func WithProxy() RocketMQOption { return func(c *rocketMQConfig) { c.proxy = true } }

// Stop kills both JVMs and removes their store and logs. It is safe to
// call more than once.
func (r *RocketMQ) Stop() error {
	// The broker first: stopped after its name server it would log a
	// failed unregistration, for nothing.
	var err error
	for _, s := range []*Server{r.broker, r.namesrv} {
		if s != nil {
			err = errors.Join(err, s.Stop())
		}
	}
	return errors.Join(err, os.RemoveAll(r.dir))
}

// jvmFlags are the flags every RocketMQ JVM needs on JDK 17: the store and
// the remoting layer reach into java.nio internals (DESIGN.md §6).
var jvmFlags = []string{
	"--add-opens", "java.base/java.lang=ALL-UNNAMED",
	"--add-opens", "java.base/java.nio=ALL-UNNAMED",
	"--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
	"--add-exports", "java.base/sun.nio.ch=ALL-UNNAMED",
	"--add-exports", "java.base/jdk.internal.ref=ALL-UNNAMED",
	// One GC thread instead of G1's pool, and the quick JIT only (somewhat
	// less CPU to start, 6-9 s against 7-11 s for both JVMs as measured):
	// the machine has 2 cores, shared with the databases and the tests,
	// and a test broker carries little load.
	"-XX:+UseSerialGC",
	"-XX:TieredStopAtLevel=1",
	"-Djava.net.preferIPv4Stack=true",
}

// ApacheRocketMQ starts a throwaway Apache RocketMQ name server and broker
// (see ApacheRocketMQVersion), installing a JRE and Maven with apt-get when
// missing and fetching the release from Maven Central into the user's cache
// directory the first time. It returns once the broker is registered and
// the name server serves the route of a topic created on it. Heaps and
// mapped files are sized for a small machine; retries of sent-back messages
// wait 1 s per level instead of 10 s, 30 s, 1 min ...; topics are created
// automatically on first send.
func ApacheRocketMQ(ctx context.Context, opts ...RocketMQOption) (_ *RocketMQ, err error) {
	var cfg rocketMQConfig
	for _, o := range opts {
		o(&cfg)
	}
	java, err := ensureBinary("default-jre-headless", "java")
	if err != nil {
		return nil, err
	}
	lib, err := rocketMQLib(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "throwaway-rocketmq-")
	if err != nil {
		return nil, err
	}
	r := &RocketMQ{dir: dir}
	defer func() {
		if err != nil {
			r.Stop()
		}
	}()
	namesrvPort, err := freePort()
	if err != nil {
		return nil, err
	}
	brokerPort, err := freeBrokerPort()
	if err != nil {
		return nil, err
	}
	haPort, err := freePort()
	if err != nil {
		return nil, err
	}
	r.namesrvAddr = fmt.Sprintf("127.0.0.1:%d", namesrvPort)
	r.brokerAddr = fmt.Sprintf("127.0.0.1:%d", brokerPort)
	home := filepath.Join(dir, "home") // logs/rocketmqlogs, the name server's kv config
	store := filepath.Join(dir, "store")
	for _, d := range []string{home, store} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	namesrvConf := filepath.Join(dir, "namesrv.conf")
	if err := writeConf(namesrvConf,
		"listenPort", strconv.Itoa(namesrvPort),
		"bindAddress", "127.0.0.1",
	); err != nil {
		return nil, err
	}
	brokerConf := filepath.Join(dir, "broker.conf")
	if err := writeConf(brokerConf,
		"brokerClusterName", "DefaultCluster",
		"brokerName", "broker-a",
		"brokerId", "0",
		"namesrvAddr", r.namesrvAddr,
		// Without these it registers (and binds) a non-loopback address.
		"brokerIP1", "127.0.0.1",
		"bindAddress", "127.0.0.1",
		"listenPort", strconv.Itoa(brokerPort), // and listenPort-2, the "VIP" channel
		"haListenPort", strconv.Itoa(haPort),
		"storePathRootDir", store,
		"autoCreateTopicEnable", "true",
		"flushDiskType", "ASYNC_FLUSH",
		// Mapped files default to 1 GiB (commit log), 100 MiB (timer log)
		// and ~420 MB (index): small ones start faster and fit any disk.
		"mappedFileSizeCommitLog", strconv.Itoa(64<<20),
		"mappedFileSizeTimerLog", strconv.Itoa(4<<20),
		"maxHashSlotNum", "10000",
		"maxIndexNum", "40000",
		// 18 levels, as the client expects, of 1 s each: a sent-back
		// message returns in about a second at any reconsume count.
		"messageDelayLevel", strings.TrimSpace(strings.Repeat("1s ", 18)),
		// A loaded 2-core machine makes the broker shed load: sends that
		// waited more than 200 ms in its queue are refused with "broker
		// busy" (fast failure), and every request while a commit log
		// write has held its lock for 1 s. Tests want slowness, not
		// refusals.
		"brokerFastFailureEnable", "false",
		"osPageCacheBusyTimeOutMills", "10000",
	); err != nil {
		return nil, err
	}

	startJVM := func(name, heap, mainClass string, mainArgs []string, extra ...string) (*Server, error) {
		args := append([]string{"-Xmx" + heap}, extra...)
		args = append(args, jvmFlags...)
		args = append(args,
			"-Drocketmq.home.dir="+home,
			"-Duser.home="+home,
			// Each jar of the shared classpath brings its own logback
			// file; without this the first one found wins.
			"-Drmq.logback.configurationFile=rmq."+name+".logback.xml",
			"-cp", filepath.Join(lib, "*"),
			mainClass,
		)
		args = append(args, mainArgs...)
		// SIGKILL: the store is thrown away, so a clean shutdown (seconds
		// of flushing) buys nothing.
		return start(exec.Command(java, args...), "", filepath.Join(dir, name+".out"), syscall.SIGKILL)
	}
	if r.namesrv, err = startJVM("namesrv", "128m", "org.apache.rocketmq.namesrv.NamesrvStartup", []string{"-c", namesrvConf}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, rocketMQStartTimeout)
	defer cancel()
	// The broker registers at start and then every 30 s: started before
	// its name server listens, it would be routable only half a minute
	// later.
	if err := r.waitNameServer(ctx); err != nil {
		return nil, err
	}
	var proxyConf string
	if cfg.proxy {
		if proxyConf, err = r.proxyConf(dir); err != nil {
			return nil, err
		}
	}
	r.startBroker = func() (*Server, error) {
		if cfg.proxy {
			return startJVM("proxy", "768m", "org.apache.rocketmq.proxy.ProxyStartup",
				[]string{"-pm", "local", "-bc", brokerConf, "-n", r.namesrvAddr, "-pc", proxyConf},
				"-XX:MaxDirectMemorySize=512m")
		}
		return startJVM("broker", "512m", "org.apache.rocketmq.broker.BrokerStartup", []string{"-c", brokerConf},
			"-XX:MaxDirectMemorySize=512m")
	}
	if r.broker, err = r.startBroker(); err != nil {
		return nil, err
	}
	if err := r.waitRoute(ctx); err != nil {
		return nil, err
	}
	if cfg.proxy {
		if err := r.waitProxy(ctx); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// proxyConf writes the proxy's JSON configuration into dir, choosing the
// gRPC port (r.proxyAddr) and the proxy's own remoting port (unused here,
// but its default 8080 would collide).
func (r *RocketMQ) proxyConf(dir string) (string, error) {
	grpcPort, err := freePort()
	if err != nil {
		return "", err
	}
	remotingPort, err := freePort()
	if err != nil {
		return "", err
	}
	r.proxyAddr = fmt.Sprintf("127.0.0.1:%d", grpcPort)
	conf := fmt.Sprintf(`{"rocketMQClusterName": "DefaultCluster", "namesrvAddr": %q, "grpcServerPort": %d, "remotingListenPort": %d, "minInvisibleTimeMillsForRecv": 1000}`,
		r.namesrvAddr, grpcPort, remotingPort)
	path := filepath.Join(dir, "proxy.json")
	return path, os.WriteFile(path, []byte(conf), 0o600)
}

// waitProxy waits until the proxy accepts connections on its gRPC port (it
// opens it after the broker is up); ctx's deadline bounds it.
func (r *RocketMQ) waitProxy(ctx context.Context) error {
	for {
		c, err := net.DialTimeout("tcp", r.proxyAddr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-r.broker.done:
			return fmt.Errorf("throwaway: the RocketMQ proxy exited at start-up:\n%s", r.logs())
		case <-ctx.Done():
			return fmt.Errorf("throwaway: the RocketMQ proxy did not open %s (%v):\n%s", r.proxyAddr, err, r.logs())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// KillBroker kills the broker JVM with SIGKILL, as a crash would, and waits
// until it has exited; the name server and the broker's store stay. For
// fault injection on an instance of the test's own: the one of
// ROCKETMQ_NAMESRV is shared by every test of the run.
func (r *RocketMQ) KillBroker() error {
	return r.broker.Stop() // the broker's Server owns no directory: the store stays
}

// RestartBroker starts the broker again after KillBroker, on the same
// ports and store (it recovers what it had written, as after a crash), and
// returns once it takes requests and the name server routes to it.
func (r *RocketMQ) RestartBroker(ctx context.Context) error {
	select {
	case <-r.broker.done:
	default:
		return errors.New("throwaway: RestartBroker: the broker is running (KillBroker first)")
	}
	b, err := r.startBroker()
	if err != nil {
		return err
	}
	r.broker = b
	ctx, cancel := context.WithTimeout(ctx, rocketMQStartTimeout)
	defer cancel()
	return r.waitRoute(ctx)
}

// waitRoute waits until the broker takes a topic and the name server serves
// its route: the broker is up and registered, and clients can start. On
// failure (ctx's deadline bounds it) the error carries the end of the JVMs'
// output and logs.
func (r *RocketMQ) waitRoute(ctx context.Context) error {
	const probe = "throwaway_probe"
	var last error
	for {
		call, cancelCall := context.WithTimeout(ctx, 2*time.Second)
		last = remoting.CreateTopic(call, r.brokerAddr, probe, 1)
		if last == nil {
			var route []byte
			route, last = remoting.Route(call, r.namesrvAddr, probe)
			if last == nil && !strings.Contains(string(route), r.brokerAddr) {
				last = fmt.Errorf("route of %s names no %s: %s", probe, r.brokerAddr, route)
			}
		}
		cancelCall()
		if last == nil {
			return nil
		}
		select {
		case <-r.namesrv.done:
			return fmt.Errorf("throwaway: the RocketMQ name server exited at start-up:\n%s", r.logs())
		case <-r.broker.done:
			return fmt.Errorf("throwaway: the RocketMQ broker exited at start-up:\n%s", r.logs())
		case <-ctx.Done():
			return fmt.Errorf("throwaway: Apache RocketMQ did not serve a route (%v):\n%s", last, r.logs())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitNameServer waits until the name server accepts connections.
func (r *RocketMQ) waitNameServer(ctx context.Context) error {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", r.namesrvAddr)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-r.namesrv.done:
			return fmt.Errorf("throwaway: the RocketMQ name server exited at start-up:\n%s", r.logs())
		case <-ctx.Done():
			return fmt.Errorf("throwaway: the RocketMQ name server did not listen (%v):\n%s", err, r.logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logs returns the end of each JVM's standard output and RocketMQ log.
func (r *RocketMQ) logs() string {
	var b strings.Builder
	for _, f := range []string{"namesrv.out", "home/logs/rocketmqlogs/namesrv.log", "broker.out", "proxy.out", "home/logs/rocketmqlogs/broker.log", "home/logs/rocketmqlogs/proxy.log"} {
		fmt.Fprintf(&b, "--- %s:\n%s\n", f, tail(filepath.Join(r.dir, f)))
	}
	return b.String()
}

// writeConf writes a Java properties file of the key, value pairs kv.
func writeConf(path string, kv ...string) error {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "%s=%s\n", kv[i], kv[i+1])
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// freeBrokerPort returns a loopback port p such that p and p-2 were free a
// moment ago: the broker listens on both.
func freeBrokerPort() (int, error) {
	for range 50 {
		p, err := freePort()
		if err != nil {
			return 0, err
		}
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
	return 0, errors.New("throwaway: no free pair of loopback ports p, p-2 for the broker")
}

// rocketMQLib returns the directory holding the jars of the pinned release,
// fetching them with Maven (installed with apt-get when missing) the first
// time. The cache directory is named after the release and a hash of the
// pom, so that any change to the pom fetches anew; it is filled in a temp
// dir and renamed into place, so an interrupted download is never used.
func rocketMQLib(ctx context.Context) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("throwaway: no cache directory for the Apache RocketMQ jars: %w", err)
	}
	sum := sha256.Sum256(pom)
	base := filepath.Join(cache, "rocketmq-exactlyonce", "apache-rocketmq-"+ApacheRocketMQVersion+"-"+hex.EncodeToString(sum[:4]))
	lib := filepath.Join(base, "lib")
	if _, err := os.Stat(lib); err == nil {
		return lib, nil
	}
	mvn, err := ensureBinary("maven", "mvn")
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
	fmt.Fprintf(os.Stderr, "throwaway: fetching Apache RocketMQ %s from Maven Central into %s\n", ApacheRocketMQVersion, lib)
	// A local repository of its own, removed with work: the cache keeps
	// lib/ only, not a second copy in ~/.m2 (nor Maven's plugins).
	cmd := exec.CommandContext(ctx, mvn, "-q", "-B", "-f", filepath.Join(work, "pom.xml"),
		"-Dmaven.repo.local="+filepath.Join(work, "repository"),
		"dependency:copy-dependencies", "-DoutputDirectory="+filepath.Join(work, "lib"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("throwaway: fetching Apache RocketMQ with %v: %w\n%s", cmd.Args, err, out)
	}
	if err := os.Rename(filepath.Join(work, "lib"), lib); err != nil {
		// Another process may have finished the same download first.
		if _, statErr := os.Stat(lib); statErr == nil {
			return lib, nil
		}
		return "", err
	}
	return lib, nil
}
