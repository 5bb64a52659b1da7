// Package manifests checks deploy/kubernetes/: every manifest decodes
// strictly into its Kubernetes API type, and the Deployment agrees with
// the server settings in the ConfigMap. A module of its own, so that the
// server's module takes no Kubernetes dependency.
package manifests

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const dir = ".."

// margin is what terminationGracePeriodSeconds must leave beyond
// shutdown_delay + graceful_timeout (the arbiter's own exit, the kubelet's
// timing).
const margin = 5 * time.Second

// serviceMonitor is the part of the Prometheus Operator's type this
// deployment uses (strict decoding rejects anything else).
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type kustomization struct {
	metav1.TypeMeta `json:",inline"`
	Labels          []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Resources []string `json:"resources"`
}

type manifests struct {
	cm  corev1.ConfigMap
	dep appsv1.Deployment
	svc corev1.Service
	pdb policyv1.PodDisruptionBudget
	hpa autoscalingv2.HorizontalPodAutoscaler
	sm  serviceMonitor
}

// settings are the server settings the manifests depend on.
type settings struct {
	bind, stats                    []string // host, port
	shutdownDelay, gracefulTimeout time.Duration
}

func load(t *testing.T) *manifests {
	t.Helper()
	var k kustomization
	decode(t, "kustomization.yaml", &k, "kustomize.config.k8s.io/v1beta1", "Kustomization")
	m := &manifests{}
	want := map[string]struct {
		obj              any
		apiVersion, kind string
	}{
		"configmap.yaml":               {&m.cm, "v1", "ConfigMap"},
		"deployment.yaml":              {&m.dep, "apps/v1", "Deployment"},
		"service.yaml":                 {&m.svc, "v1", "Service"},
		"poddisruptionbudget.yaml":     {&m.pdb, "policy/v1", "PodDisruptionBudget"},
		"horizontalpodautoscaler.yaml": {&m.hpa, "autoscaling/v2", "HorizontalPodAutoscaler"},
		"servicemonitor.yaml":          {&m.sm, "monitoring.coreos.com/v1", "ServiceMonitor"},
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if name == "kustomization.yaml" {
			continue
		}
		if !slices.Contains(k.Resources, name) {
			t.Errorf("%s is not listed in kustomization.yaml's resources", name)
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: no decoder for this manifest; add it to the test", name)
			continue
		}
		decode(t, name, w.obj, w.apiVersion, w.kind)
	}
	for _, r := range k.Resources {
		if _, ok := want[r]; !ok {
			t.Errorf("kustomization.yaml lists %s, which the test does not check", r)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

// decode reads a manifest strictly (an unknown or misspelt field is an
// error) into obj and checks its apiVersion and kind.
func decode(t *testing.T, name string, obj any, apiVersion, kind string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("\n---")) {
		t.Fatalf("%s: one object per file", name)
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(b, &tm); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if tm.APIVersion != apiVersion || tm.Kind != kind {
		t.Fatalf("%s: %s %s, want %s %s", name, tm.APIVersion, tm.Kind, apiVersion, kind)
	}
	if err := yaml.UnmarshalStrict(b, obj); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// config reads the settings from the ConfigMap's multiserve.toml with the
// TOML library the server uses.
func config(t *testing.T, m *manifests) (string, settings) {
	t.Helper()
	text, ok := m.cm.Data["multiserve.toml"]
	if !ok {
		t.Fatal("the ConfigMap has no multiserve.toml")
	}
	var raw map[string]any
	if err := toml.Unmarshal([]byte(text), &raw); err != nil {
		t.Fatalf("multiserve.toml: %v", err)
	}
	var s settings
	binds, _ := raw["bind"].([]any)
	if len(binds) != 1 {
		t.Fatalf("multiserve.toml: bind %v, want one TCP address", raw["bind"])
	}
	s.bind = hostPort(t, "bind", fmt.Sprint(binds[0]))
	s.stats = hostPort(t, "stats_bind", fmt.Sprint(raw["stats_bind"]))
	s.shutdownDelay = duration(t, raw, "shutdown_delay")
	s.gracefulTimeout = duration(t, raw, "graceful_timeout")
	return text, s
}

func hostPort(t *testing.T, key, v string) []string {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		t.Fatalf("multiserve.toml: %s %q: %v", key, v, err)
	}
	if host != "0.0.0.0" && host != "" && host != "::" {
		t.Errorf("multiserve.toml: %s %q listens on %s only; a pod is reached on its own IP", key, v, host)
	}
	return []string{host, port}
}

// duration reads a setting as the server does: Go syntax or seconds.
func duration(t *testing.T, raw map[string]any, key string) time.Duration {
	t.Helper()
	switch v := raw[key].(type) {
	case string:
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("multiserve.toml: %s: %v", key, err)
		}
		return d
	case int64:
		return time.Duration(v) * time.Second
	case float64:
		return time.Duration(v * float64(time.Second))
	default:
		t.Fatalf("multiserve.toml: %s must be set (got %v); the Deployment's timing depends on it", key, raw[key])
		return 0
	}
}

func container(t *testing.T, m *manifests) corev1.Container {
	t.Helper()
	cs := m.dep.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("the Deployment has %d containers, want 1", len(cs))
	}
	return cs[0]
}

// portNumber resolves a probe's or a Service's target port (a number or a
// container port's name).
func portNumber(c corev1.Container, p intstr.IntOrString) string {
	if p.Type == intstr.Int {
		return strconv.Itoa(p.IntValue())
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return strconv.Itoa(int(cp.ContainerPort))
		}
	}
	return "unknown port " + p.StrVal
}

func TestManifestsDecode(t *testing.T) { load(t) }

func TestDeploymentMatchesConfig(t *testing.T) {
	m := load(t)
	_, s := config(t, m)
	c := container(t, m)
	spec := m.dep.Spec.Template.Spec

	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe on %s", p.name, p.path)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || portNumber(c, p.probe.HTTPGet.Port) != s.stats[1] {
			t.Errorf("%s: %s on port %s, want %s on the stats port %s", p.name, p.probe.HTTPGet.Path,
				portNumber(c, p.probe.HTTPGet.Port), p.path, s.stats[1])
		}
	}
	// The readiness probe must fail (and the pod leave the endpoints)
	// well inside shutdown_delay, while the server still accepts.
	if r := c.ReadinessProbe; r != nil {
		period, fails := r.PeriodSeconds, r.FailureThreshold
		if period == 0 {
			period = 10 // the Kubernetes defaults
		}
		if fails == 0 {
			fails = 3
		}
		noticed := time.Duration(period*fails) * time.Second
		if noticed >= s.shutdownDelay {
			t.Errorf("readinessProbe notices a stop after %v, not within shutdown_delay %v", noticed, s.shutdownDelay)
		}
	}

	grace := spec.TerminationGracePeriodSeconds
	if need := s.shutdownDelay + s.gracefulTimeout + margin; grace == nil || time.Duration(*grace)*time.Second < need {
		got := "unset"
		if grace != nil {
			got = strconv.FormatInt(*grace, 10)
		}
		t.Errorf("terminationGracePeriodSeconds %s, want at least shutdown_delay %v + graceful_timeout %v + %v",
			got, s.shutdownDelay, s.gracefulTimeout, margin)
	}

	ru := m.dep.Spec.Strategy.RollingUpdate
	if m.dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil ||
		ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != "0" && ru.MaxUnavailable.String() != "0%" {
		t.Errorf("strategy %+v, want RollingUpdate with maxUnavailable 0", m.dep.Spec.Strategy)
	}
	if ru != nil && (ru.MaxSurge == nil || ru.MaxSurge.String() == "0" || ru.MaxSurge.String() == "0%") {
		t.Errorf("maxSurge %v: with maxUnavailable 0 a rollout needs a surge", ru.MaxSurge)
	}

	ports := map[string]bool{}
	for _, p := range c.Ports {
		ports[strconv.Itoa(int(p.ContainerPort))] = true
	}
	if !ports[s.bind[1]] || !ports[s.stats[1]] {
		t.Errorf("container ports %v, want bind port %s and stats port %s", c.Ports, s.bind[1], s.stats[1])
	}

	ann := m.dep.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != s.stats[1] || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("pod annotations %v, want prometheus.io/scrape true, port %s, path /metrics", ann, s.stats[1])
	}
	checkConfigMount(t, m, c)
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("the pod does not set runAsNonRoot")
	}
	if c.Resources.Requests.Cpu().IsZero() {
		t.Error("no CPU request: the HorizontalPodAutoscaler's utilization is relative to it")
	}
}

// checkConfigMount: --config names multiserve.toml in a volume of the
// ConfigMap.
func checkConfigMount(t *testing.T, m *manifests, c corev1.Container) {
	t.Helper()
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("container args %v: no --config", c.Args)
	}
	file := c.Args[i+1]
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != path.Dir(file) || path.Base(file) != "multiserve.toml" {
			continue
		}
		for _, v := range m.dep.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == m.cm.Name {
				return
			}
		}
	}
	t.Errorf("--config %s is not multiserve.toml of the ConfigMap %s mounted at %s", file, m.cm.Name, path.Dir(file))
}

func selects(sel *metav1.LabelSelector, set map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return false
	}
	return s.Matches(labels.Set(set))
}

func TestSelectorsAndPorts(t *testing.T) {
	m := load(t)
	_, s := config(t, m)
	c := container(t, m)
	pod := m.dep.Spec.Template.Labels
	if !selects(m.dep.Spec.Selector, pod) {
		t.Errorf("the Deployment's selector does not match its pods")
	}
	if !selects(&metav1.LabelSelector{MatchLabels: m.svc.Spec.Selector}, pod) {
		t.Errorf("the Service's selector %v does not match the pods %v", m.svc.Spec.Selector, pod)
	}
	if !selects(m.pdb.Spec.Selector, pod) {
		t.Errorf("the PodDisruptionBudget's selector does not match the pods")
	}
	if !selects(&m.sm.Spec.Selector, m.svc.Labels) {
		t.Errorf("the ServiceMonitor's selector does not match the Service %v", m.svc.Labels)
	}
	svcPorts := map[string]string{} // Service port name -> container port
	for _, p := range m.svc.Spec.Ports {
		svcPorts[p.Name] = portNumber(c, p.TargetPort)
	}
	if !slices.Contains(mapValues(svcPorts), s.bind[1]) {
		t.Errorf("no Service port targets the bind port %s: %v", s.bind[1], svcPorts)
	}
	if len(m.sm.Spec.Endpoints) == 0 {
		t.Error("the ServiceMonitor has no endpoint")
	}
	for _, e := range m.sm.Spec.Endpoints {
		if svcPorts[e.Port] != s.stats[1] || e.Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoint %s%s, want the Service port targeting stats port %s, /metrics", e.Port, e.Path, s.stats[1])
		}
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestAvailability(t *testing.T) {
	m := load(t)
	hpa := m.hpa.Spec
	if hpa.ScaleTargetRef.Kind != "Deployment" || hpa.ScaleTargetRef.Name != m.dep.Name {
		t.Errorf("the HorizontalPodAutoscaler scales %s %s, want Deployment %s", hpa.ScaleTargetRef.Kind, hpa.ScaleTargetRef.Name, m.dep.Name)
	}
	cpu := false
	for _, mt := range hpa.Metrics {
		cpu = cpu || mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil &&
			mt.Resource.Name == corev1.ResourceCPU && mt.Resource.Target.Type == autoscalingv2.UtilizationMetricType
	}
	if !cpu {
		t.Error("the HorizontalPodAutoscaler does not scale on CPU utilization")
	}
	// A disruption budget that lets one pod go needs at least two.
	if hpa.MinReplicas == nil || *hpa.MinReplicas < 2 || m.dep.Spec.Replicas == nil || *m.dep.Spec.Replicas < *hpa.MinReplicas {
		t.Errorf("replicas %v, minReplicas %v: want minReplicas >= 2 and replicas >= minReplicas", m.dep.Spec.Replicas, hpa.MinReplicas)
	}
	if mu := m.pdb.Spec.MaxUnavailable; (mu == nil || mu.String() == "0" || mu.String() == "0%") && m.pdb.Spec.MinAvailable == nil {
		t.Error("the PodDisruptionBudget allows no disruption (a node drain would block) or sets nothing")
	}
}

// TestServerAcceptsConfig: the server itself validates the ConfigMap's
// multiserve.toml (--check-config binds nothing).
func TestServerAcceptsConfig(t *testing.T) {
	m := load(t)
	text, _ := config(t, m)
	tmp := t.TempDir()
	file := filepath.Join(tmp, "multiserve.toml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "multiserve")
	build := exec.Command("go", "build", "-o", bin, "./cmd/multiserve")
	build.Dir = filepath.Join(dir, "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/multiserve: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--check-config", "--config", file).CombinedOutput()
	if err != nil {
		t.Errorf("multiserve --check-config rejects the ConfigMap's multiserve.toml: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "unknown") {
		t.Errorf("--check-config: %s", out)
	}
}
