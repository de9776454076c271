package kubernetes

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/netsentry/netsentry/configs"
)

// object is one decoded manifest document.
type object struct {
	file string
	kind string
	obj  any
}

// decodeAll decodes every document of every YAML file here strictly:
// an unknown or duplicate field is an error.
func decodeAll(t *testing.T) []object {
	t.Helper()
	files, _ := filepath.Glob("*.yaml")
	if len(files) < 5 {
		t.Fatalf("only %d manifests: %v", len(files), files)
	}
	var out []object
	for _, f := range files {
		if f == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 Namespace":
				obj = &corev1.Namespace{}
			case "v1 ConfigMap":
				obj = &corev1.ConfigMap{}
			case "v1 Service":
				obj = &corev1.Service{}
			case "apps/v1 DaemonSet":
				obj = &appsv1.DaemonSet{}
			case "apps/v1 Deployment":
				obj = &appsv1.Deployment{}
			case "apps/v1 StatefulSet":
				obj = &appsv1.StatefulSet{}
			default:
				t.Fatalf("%s document %d: kind %q of %q is not one this test knows", f, i, tm.Kind, tm.APIVersion)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s document %d (%s): %v", f, i, tm.Kind, err)
			}
			out = append(out, object{file: f, kind: tm.Kind, obj: obj})
		}
	}
	return out
}

// routes are the API's GET routes that need no token (probes send none),
// and every GET route, read from httpd's router.
func routes(t *testing.T) (open, all []string) {
	t.Helper()
	src, err := os.ReadFile("../../httpd/server.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`s\.handle\(r, "GET", "([^"]+)", (auth\w+),`)
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		all = append(all, m[1])
		if m[2] == "authNone" {
			open = append(open, m[1])
		}
	}
	if !slices.Contains(open, "/healthz") || !slices.Contains(all, "/metrics") {
		t.Fatalf("httpd routes not found (open %v, all %v)", open, all)
	}
	return open, all
}

// imageUser is the uid and gid of the image's user (deploy/container/passwd).
func imageUser(t *testing.T) (int64, int64) {
	t.Helper()
	b, err := os.ReadFile("../container/passwd")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) == 7 && f[0] == "netsentry" {
			uid, _ := strconv.ParseInt(f[2], 10, 64)
			gid, _ := strconv.ParseInt(f[3], 10, 64)
			return uid, gid
		}
	}
	t.Fatal("no netsentry user in deploy/container/passwd")
	return 0, 0
}

// sensorConfig checks a sensor ConfigMap's netsentry.yaml with the
// sensor's own strict decoder and validation, the API token coming from
// the environment (NETSENTRY_API_TOKEN, from the secret).
func sensorConfig(t *testing.T, cm *corev1.ConfigMap) configs.Config {
	t.Helper()
	data, ok := cm.Data["netsentry.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no netsentry.yaml", cm.Name)
	}
	c, _, err := configs.Check([]byte(data), cm.Name+"/netsentry.yaml", func(c *configs.Config) {
		c.APIToken = "0123456789abcdef0123456789abcdef" // what the secret supplies
	})
	if err != nil {
		// Until the remote writers land (storage.type prometheus,
		// victoriametrics, influxdb; issue 15), validation says they
		// are not built; that, and nothing else, is allowed.
		for _, p := range err.(*configs.Errors).Problems {
			if p.Key != "storage.type" || !strings.Contains(p.Msg, "not built yet") {
				t.Fatalf("%s: %v", cm.Name, err)
			}
		}
		c, _, err = configs.Check([]byte(data), cm.Name, func(c *configs.Config) {
			c.APIToken = "0123456789abcdef0123456789abcdef"
			c.Storage.Type = "local"
		})
		if err != nil {
			t.Fatalf("%s: %v", cm.Name, err)
		}
	}
	return c
}

func TestManifests(t *testing.T) {
	objs := decodeAll(t)
	open, all := routes(t)
	uid, gid := imageUser(t)
	cms := map[string]*corev1.ConfigMap{}
	var services []*corev1.Service
	var sensors []*appsv1.DaemonSet
	for _, o := range objs {
		switch x := o.obj.(type) {
		case *corev1.ConfigMap:
			cms[x.Name] = x
		case *corev1.Service:
			services = append(services, x)
		case *appsv1.DaemonSet:
			sensors = append(sensors, x)
		}
		if m, ok := o.obj.(metav1.Object); ok && o.kind != "Namespace" && m.GetNamespace() != "netsentry" {
			t.Errorf("%s: %s %s is in namespace %q, want netsentry", o.file, o.kind, m.GetName(), m.GetNamespace())
		}
	}
	if len(sensors) != 2 {
		t.Fatalf("%d sensor DaemonSets, want 2 (deployment.yaml, ha-deployment.yaml)", len(sensors))
	}
	var dashboard bool
	for _, ds := range sensors {
		t.Run(ds.Name, func(t *testing.T) {
			ps := &ds.Spec.Template.Spec
			if !ps.HostNetwork || ps.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
				t.Errorf("hostNetwork %v, dnsPolicy %q: the sensor captures the node's traffic", ps.HostNetwork, ps.DNSPolicy)
			}
			if sc := ps.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
				sc.RunAsUser == nil || *sc.RunAsUser != uid || sc.RunAsGroup == nil || *sc.RunAsGroup != gid {
				t.Errorf("pod securityContext %+v: want runAsNonRoot as the image's user %d:%d", sc, uid, gid)
			}
			if len(ps.Containers) != 1 {
				t.Fatalf("%d containers", len(ps.Containers))
			}
			c := &ps.Containers[0]
			sc := c.SecurityContext
			if sc == nil || sc.Capabilities == nil {
				t.Fatal("no capabilities")
			}
			add := slices.Sorted(slices.Values(sc.Capabilities.Add))
			if !slices.Equal(add, []corev1.Capability{"BPF", "NET_RAW"}) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("capabilities add %v drop %v: want exactly NET_RAW and BPF, drop ALL", add, sc.Capabilities.Drop)
			}
			// no_new_privs (allowPrivilegeEscalation: false) would keep the
			// image binary's file capabilities from a non-root user.
			if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
				t.Error("allowPrivilegeEscalation false: the non-root sensor would get no capability")
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Error("want a read-only root file system")
			}

			// The configuration the container runs with.
			cfgPath := ""
			for i, a := range c.Args {
				if a == "--config" && i+1 < len(c.Args) {
					cfgPath = c.Args[i+1]
				}
			}
			var cm *corev1.ConfigMap
			var dataMount string
			for _, m := range c.VolumeMounts {
				for _, v := range ps.Volumes {
					if v.Name != m.Name {
						continue
					}
					if v.ConfigMap != nil && filepath.Join(m.MountPath, "netsentry.yaml") == cfgPath {
						cm = cms[v.ConfigMap.Name]
					}
					if v.HostPath != nil {
						dataMount = m.MountPath
						if m.ReadOnly {
							t.Errorf("the store's hostPath %s is mounted read-only", v.HostPath.Path)
						}
					}
				}
			}
			if cm == nil {
				t.Fatalf("--config %q is not the netsentry.yaml of a mounted ConfigMap", cfgPath)
			}
			cfg := sensorConfig(t, cm)
			if dataMount == "" || !strings.HasPrefix(cfg.Storage.LocalPath, dataMount+"/") || !strings.HasPrefix(cfg.Alerts.ConfigPath, dataMount+"/") {
				t.Errorf("storage.local_path %q and alerts.config_path %q must be on the hostPath mount %q",
					cfg.Storage.LocalPath, cfg.Alerts.ConfigPath, dataMount)
			}
			var tokenFromSecret bool
			for _, e := range c.Env {
				if e.Name == "NETSENTRY_API_TOKEN" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					tokenFromSecret = true
				}
			}
			if !tokenFromSecret {
				t.Error("NETSENTRY_API_TOKEN does not come from a secret; the API listens beyond loopback and needs it")
			}

			// Ports and probes against the configuration and httpd.
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if ports["api"] != int32(cfg.APIPort) || ports["dashboard"] != int32(cfg.WebPort) {
				t.Errorf("container ports %v: want api %d, dashboard %d (api_port, web_port)", ports, cfg.APIPort, cfg.WebPort)
			}
			for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("%s probe: want an httpGet", name)
					continue
				}
				if !slices.Contains(open, p.HTTPGet.Path) {
					t.Errorf("%s probe path %q is not an httpd GET route that needs no token (%v)", name, p.HTTPGet.Path, open)
				}
				if port := p.HTTPGet.Port; ports[port.StrVal] != int32(cfg.APIPort) && port.IntVal != int32(cfg.APIPort) {
					t.Errorf("%s probe port %v is not api_port %d", name, port.String(), cfg.APIPort)
				}
			}
			if p := c.LivenessProbe; p != nil && p.HTTPGet != nil && p.HTTPGet.Path != "/healthz" {
				t.Errorf("liveness probe on %q, want /healthz", p.HTTPGet.Path)
			}

			// Prometheus scrape annotations.
			an := ds.Spec.Template.Annotations
			if an["prometheus.io/scrape"] != "true" || an["prometheus.io/port"] != strconv.Itoa(cfg.APIPort) || !slices.Contains(all, an["prometheus.io/path"]) {
				t.Errorf("prometheus.io annotations %v: want scrape true on api_port %d and a path httpd serves", an, cfg.APIPort)
			}

			// Memory: memory_limit_mb + ring_size_mb + 112 MiB (docs/memory.md).
			want := resource.MustParse(fmt.Sprintf("%dMi", cfg.Performance.MemoryLimitMB+cfg.Performance.RingSizeMB+64+48))
			if lim := c.Resources.Limits[corev1.ResourceMemory]; lim.Cmp(want) != 0 {
				t.Errorf("memory limit %s, want %s (memory_limit_mb %d + ring_size_mb %d + 112 MiB)", lim.String(), want.String(),
					cfg.Performance.MemoryLimitMB, cfg.Performance.RingSizeMB)
			}
			if req := c.Resources.Requests[corev1.ResourceMemory]; req.Cmp(want) != 0 {
				t.Errorf("memory request %s, want %s", req.String(), want.String())
			}

			// Services that select this DaemonSet reach its named ports.
			for _, s := range services {
				if s.Spec.Selector["app.kubernetes.io/name"] != ds.Spec.Template.Labels["app.kubernetes.io/name"] {
					continue
				}
				for _, p := range s.Spec.Ports {
					if ports[p.TargetPort.StrVal] == 0 {
						t.Errorf("service %s port %s targets %q, not a container port", s.Name, p.Name, p.TargetPort.String())
					}
					if s.Name == "netsentry-dashboard" {
						dashboard = p.Port == 9090 && ports[p.TargetPort.StrVal] == int32(cfg.WebPort)
					}
				}
			}
		})
	}
	if !dashboard {
		t.Error("no netsentry-dashboard service on 9090 to the sensor's web_port")
	}
	for _, o := range objs {
		if cm, ok := o.obj.(*corev1.ConfigMap); ok && cm.Name == "netsentry-ha-config" {
			cfg := sensorConfig(t, cm)
			var am int
			for _, ch := range cfg.Alerts.NotificationChannels {
				if ch.Type == "prometheus-alertmanager" {
					am++
				}
			}
			if am != 2 || !strings.Contains(cm.Data["netsentry.yaml"], `type: "victoriametrics"`) || !strings.Contains(cfg.Storage.RemoteURL, "vminsert") {
				t.Errorf("the HA configuration wants storage.type victoriametrics to vminsert and two Alertmanagers: %+v", cfg)
			}
		}
	}
}

// TestKustomization: kustomization.yaml decodes strictly and lists every
// manifest of the single-sensor layout, each of which exists.
func TestKustomization(t *testing.T) {
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Namespace  string   `json:"namespace"`
		Resources  []string `json:"resources"`
		Images     []struct {
			Name    string `json:"name"`
			NewName string `json:"newName,omitempty"`
			NewTag  string `json:"newTag,omitempty"`
		} `json:"images"`
	}
	data, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatal(err)
	}
	if k.Kind != "Kustomization" || k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Namespace != "netsentry" {
		t.Fatalf("kustomization: %+v", k)
	}
	for _, want := range []string{"namespace.yaml", "configmap.yaml", "deployment.yaml", "service.yaml"} {
		if !slices.Contains(k.Resources, want) {
			t.Errorf("kustomization does not list %s", want)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(r); err != nil {
			t.Errorf("kustomization lists %s: %v", r, err)
		}
	}
	if len(k.Images) != 1 || k.Images[0].Name != "netsentry" {
		t.Errorf("images %+v: want the netsentry image", k.Images)
	}
}
