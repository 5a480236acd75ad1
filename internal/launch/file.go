package launch

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// File is a dapr multi-app run file.
type File struct {
	Version int    `yaml:"version"`
	Common  Common `yaml:"common"`
	// Hosts, the launcher's own section, runs the apps across hosts made of
	// network namespaces (see Hosts); without it every app runs once, here.
	Hosts *Hosts `yaml:"hosts,omitempty"`
	Apps  []App  `yaml:"apps"`

	dir           string // directory of the file: relative paths start here
	path          string
	internalToken string // InternalToken's, once chosen
}

// Common holds settings shared by every app; an app's own win.
type Common struct {
	ResourcesPath  string            `yaml:"resourcesPath"`
	ResourcesPaths []string          `yaml:"resourcesPaths"`
	Env            map[string]string `yaml:"env"`
	LogLevel       string            `yaml:"logLevel"`
	AppProtocol    string            `yaml:"appProtocol"`
	ConfigFilePath string            `yaml:"configFilePath"`
	ListenAddress  string            `yaml:"listenAddress"`
	// DaprdEnv is the launcher's own field: environment given to every
	// sidecar (not to the apps), where components read values with envRef,
	// e.g. REDIS_HOST. An app's own daprdEnv adds to it.
	DaprdEnv map[string]string `yaml:"daprdEnv,omitempty"`
}

// App is one app of the file.
type App struct {
	AppID            string            `yaml:"appID"`
	AppDirPath       string            `yaml:"appDirPath"`
	AppPort          int               `yaml:"appPort"`
	AppProtocol      string            `yaml:"appProtocol"`
	DaprHTTPPort     int               `yaml:"daprHTTPPort"`
	DaprGRPCPort     int               `yaml:"daprGRPCPort"`
	DaprInternalPort int               `yaml:"daprInternalGRPCPort"`
	MetricsPort      int               `yaml:"metricsPort"`
	Command          []string          `yaml:"command"`
	Env              map[string]string `yaml:"env"`
	ResourcesPath    string            `yaml:"resourcesPath"`
	ResourcesPaths   []string          `yaml:"resourcesPaths"`
	ConfigFilePath   string            `yaml:"configFilePath"`
	LogLevel         string            `yaml:"logLevel"`
	EnableAPILogging bool              `yaml:"enableApiLogging"`
	MaxBodySize      string            `yaml:"maxBodySize"`
	EnableProfiling  bool              `yaml:"enableProfiling"`
	ProfilePort      int               `yaml:"profilePort"`
	// ListenAddress is the launcher's own field (not the dapr CLI's): the
	// address the app and its daprd's API, internal and metrics ports
	// listen on. Default 127.0.0.1: nothing of a single-host run answers
	// from another address. 0.0.0.0 (or a host's address) is an explicit
	// choice for running across hosts.
	ListenAddress string `yaml:"listenAddress"`
	// AppMetricsPort is the launcher's own field too: the port of the app's
	// own Prometheus metrics (its METRICS_PORT), beside its daprd's
	// metricsPort. 0 for none.
	AppMetricsPort int `yaml:"appMetricsPort"`
	// DaprdEnv is the launcher's own field: environment for this app's
	// daprd only, over common.daprdEnv.
	DaprdEnv map[string]string `yaml:"daprdEnv,omitempty"`
}

// DefaultListenAddress is where the launcher's apps and sidecars listen
// unless the run file says otherwise.
const DefaultListenAddress = "127.0.0.1"

// listenAddress is the address a's processes listen on.
func (f *File) listenAddress(a App) string {
	return firstNonEmpty(a.ListenAddress, f.Common.ListenAddress, DefaultListenAddress)
}

// probeHost is the address the launcher reaches a's sidecar at.
func (f *File) probeHost(a App) string {
	if h := f.listenAddress(a); !wildcard(h) {
		return h
	}
	return "127.0.0.1"
}

// wildcard reports whether addr means every address of the host.
func wildcard(addr string) bool { return addr == "0.0.0.0" || addr == "::" }

var (
	appIDPattern   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	unknownField   = regexp.MustCompile(`line (\d+): field (\S+) not found in type launch\.(\w+)`)
	protocolValues = []string{"", "http", "grpc"}
)

// Load reads and checks a run file. Errors name the file and the field.
func Load(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read run file: %w", err)
	}
	return Parse(path, raw)
}

// Parse decodes and checks the run file raw read from path (named in
// errors; relative paths in the file start at its directory).
func Parse(path string, raw []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
			return nil, fmt.Errorf("%s: line %s: unknown field %q in %s (see the dapr multi-app run file format)", path, m[1], m[2], section(m[3]))
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	abs, _ := filepath.Abs(path)
	f.path, f.dir = path, filepath.Dir(abs)
	if err := f.check(); err != nil {
		return nil, err
	}
	return &f, nil
}

func section(typ string) string {
	switch typ {
	case "App":
		return "apps[]"
	case "Common":
		return "common"
	}
	return "the top level"
}

func (f *File) check() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", f.path, field, fmt.Sprintf(format, args...)))
	}
	if f.Version != 1 {
		bad("version", "must be 1, got %d", f.Version)
	}
	if len(f.Apps) == 0 {
		bad("apps", "no apps to run")
	}
	ids, ports := map[string]bool{}, map[int]string{}
	usePort := func(field string, p int) {
		if p == 0 {
			return
		}
		if p < 1 || p > 65535 {
			bad(field, "port %d out of range", p)
			return
		}
		if other, dup := ports[p]; dup {
			bad(field, "port %d already used by %s", p, other)
		}
		ports[p] = field
	}
	if !containsStr(protocolValues, f.Common.AppProtocol) {
		bad("common.appProtocol", "must be http or grpc, got %q", f.Common.AppProtocol)
	}
	for i, a := range f.Apps {
		at := fmt.Sprintf("apps[%d]", i)
		if !appIDPattern.MatchString(a.AppID) {
			bad(at+".appID", "%q is not a valid app-id (lower-case letters, digits and dashes)", a.AppID)
		}
		if ids[a.AppID] {
			bad(at+".appID", "%q appears twice", a.AppID)
		}
		ids[a.AppID] = true
		if len(a.Command) == 0 {
			bad(at+".command", "missing: the app's command line, e.g. [\"bin/shop\"]")
		}
		if a.DaprHTTPPort == 0 || a.DaprGRPCPort == 0 {
			bad(at, "daprHTTPPort and daprGRPCPort are required (the launcher does not pick ports)")
		}
		if !containsStr(protocolValues, a.AppProtocol) {
			bad(at+".appProtocol", "must be http or grpc, got %q", a.AppProtocol)
		}
		usePort(at+".appPort", a.AppPort)
		usePort(at+".daprHTTPPort", a.DaprHTTPPort)
		usePort(at+".daprGRPCPort", a.DaprGRPCPort)
		usePort(at+".daprInternalGRPCPort", a.DaprInternalPort)
		usePort(at+".metricsPort", a.MetricsPort)
		usePort(at+".appMetricsPort", a.AppMetricsPort)
		usePort(at+".profilePort", a.ProfilePort)
		if t, ok := a.Env["INTERNAL_TOKEN"]; ok && t != f.Common.Env["INTERNAL_TOKEN"] {
			bad(at+".env.INTERNAL_TOKEN", "every app of a run shares one internal credential: set INTERNAL_TOKEN in common.env, or nowhere for a fresh one per run")
		}
		if la := f.listenAddress(a); la != "0.0.0.0" && net.ParseIP(la) == nil {
			bad(at+".listenAddress", "%q is not an IP address, e.g. 127.0.0.1 (the default) or 0.0.0.0", la)
		}
		for k := range merged(f.Common.DaprdEnv, a.DaprdEnv) {
			if k == "APP_API_TOKEN" || k == "DAPR_API_TOKEN" {
				bad(at+".daprdEnv."+k, "set the tokens in env: the launcher gives them to the app and its daprd alike")
			}
		}
		if a.EnableProfiling && a.ProfilePort == 0 {
			bad(at+".profilePort", "required with enableProfiling: daprd's default 7777 would collide between apps")
		}
		if len(f.resources(a)) == 0 {
			bad(at+".resourcesPath", "no resources path for this app or in common")
		}
		for _, r := range f.resources(a) {
			if st, err := os.Stat(r); err != nil || !st.IsDir() {
				bad(at+".resourcesPath", "%s is not a directory", r)
			}
			if strings.Contains(r, ",") {
				bad(at+".resourcesPath", "%s: daprd splits --resources-path at commas; rename the directory", r)
			}
		}
	}
	if f.Hosts != nil {
		errs = append(errs, f.Hosts.check(f)...)
	}
	return errors.Join(errs...)
}

// merged is the union of maps, the later winning.
func merged(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// daprdFileEnv is the environment the file gives a's daprd (daprdEnv), as
// KEY=VALUE entries.
func (f *File) daprdFileEnv(a App) []string {
	var out []string
	for k, v := range merged(f.Common.DaprdEnv, a.DaprdEnv) {
		out = append(out, k+"="+v)
	}
	return out
}

// Resources returns the app's resources directories, absolute.
func (f *File) Resources(a App) []string { return f.resources(a) }

// resources returns the app's resources directories, absolute.
func (f *File) resources(a App) []string {
	paths := append([]string{}, a.ResourcesPaths...)
	if a.ResourcesPath != "" {
		paths = append(paths, a.ResourcesPath)
	}
	if len(paths) == 0 {
		paths = append(paths, f.Common.ResourcesPaths...)
		if f.Common.ResourcesPath != "" {
			paths = append(paths, f.Common.ResourcesPath)
		}
	}
	for i, p := range paths {
		paths[i] = f.abs(p)
	}
	return paths
}

func (f *File) abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(f.dir, p)
}

// tokens are the API tokens an app and its daprd share: APP_API_TOKEN (daprd
// sends it on every call to the app, which rejects calls without it) from
// the file or, when it sets none, a fresh random one per run, so only the
// app's own sidecar can call the app; and DAPR_API_TOKEN when the file sets
// one (daprd then requires it from every caller of its API, the seed's curl
// lines too, so it is not on by default).
func (f *File) tokens(a App) []string {
	get := func(k string) string {
		if v, ok := a.Env[k]; ok {
			return v
		}
		return f.Common.Env[k]
	}
	appToken := get("APP_API_TOKEN")
	if appToken == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		appToken = hex.EncodeToString(b[:])
	}
	out := []string{"APP_API_TOKEN=" + appToken}
	if t := get("DAPR_API_TOKEN"); t != "" {
		out = append(out, "DAPR_API_TOKEN="+t)
	}
	return out
}

// InternalToken is the credential every app of one run shares
// (INTERNAL_TOKEN): the runtime's sidecar client sends it on service
// invocations and Internal routes require it. It is the file's, when its
// common env sets one, or a fresh random one per run.
func (f *File) InternalToken() string {
	if f.internalToken == "" {
		f.internalToken = f.Common.Env["INTERNAL_TOKEN"]
	}
	if f.internalToken == "" {
		var b [32]byte
		_, _ = rand.Read(b[:])
		f.internalToken = hex.EncodeToString(b[:])
	}
	return f.internalToken
}

// env is the app's environment: common, then the app's own, then what the
// launcher sets as dapr run does, the listen address and the run's
// internal credential.
func (f *File) env(a App) []string {
	m := map[string]string{}
	for k, v := range f.Common.Env {
		m[k] = v
	}
	for k, v := range a.Env {
		m[k] = v
	}
	if _, ok := m["INTERNAL_TOKEN"]; !ok {
		m["INTERNAL_TOKEN"] = f.InternalToken()
	}
	if _, ok := m["INTERNAL_APP_IDS"]; !ok {
		ids := make([]string, len(f.Apps))
		for i, o := range f.Apps {
			ids[i] = o.AppID
		}
		m["INTERNAL_APP_IDS"] = strings.Join(ids, ",")
	}
	m["LISTEN_ADDRESS"] = f.listenAddress(a)
	if _, ok := m["DAPR_HOST"]; !ok {
		m["DAPR_HOST"] = f.probeHost(a) // where its daprd's APIs listen
	}
	if _, set := m["METRICS_PORT"]; !set && a.AppMetricsPort != 0 {
		m["METRICS_PORT"] = itoa(a.AppMetricsPort)
	}
	m["APP_ID"] = a.AppID
	m["APP_PROTOCOL"] = f.protocol(a)
	m["DAPR_HTTP_PORT"] = itoa(a.DaprHTTPPort)
	m["DAPR_GRPC_PORT"] = itoa(a.DaprGRPCPort)
	m["DAPR_RESOURCES_PATH"] = strings.Join(f.resources(a), ",")
	if a.AppPort != 0 {
		m["APP_PORT"] = itoa(a.AppPort)
	}
	out := os.Environ()
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func (f *File) protocol(a App) string {
	switch {
	case a.AppProtocol != "":
		return a.AppProtocol
	case f.Common.AppProtocol != "":
		return f.Common.AppProtocol
	}
	return "http"
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func itoa(n int) string { return fmt.Sprint(n) }
