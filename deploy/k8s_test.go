package deploy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// manifest is one document of a deploy/k8s file, decoded into its API type.
type manifest struct {
	file string
	obj  runtime.Object
	meta metav1.ObjectMeta
	gvk  schema.GroupVersionKind
}

// loadManifests decodes every document of deploy/k8s/*.yaml strictly into
// the Kubernetes API type its apiVersion and kind name: an unknown kind, an
// unknown or duplicated field, or a value of the wrong type fails the test.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme, autoscalingv2.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob(repoPath(t, "deploy/k8s/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no deploy/k8s/*.yaml: %v", err)
	}
	var out []manifest
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range documentSep.Split(string(b), -1) {
			if len(bytes.TrimSpace(stripComments([]byte(doc)))) == 0 {
				continue
			}
			var tm metav1.TypeMeta
			if err := unmarshalYAML([]byte(doc), &tm, false); err != nil {
				t.Fatalf("%s: document %d: %v", filepath.Base(f), i, err)
			}
			gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
			obj, err := scheme.New(gvk)
			if err != nil {
				t.Errorf("%s: document %d: %v", filepath.Base(f), i, err)
				continue
			}
			if err := unmarshalYAML([]byte(doc), obj, true); err != nil {
				t.Errorf("%s: document %d (%s): %v", filepath.Base(f), i, tm.Kind, err)
				continue
			}
			accessor, ok := obj.(metav1.Object)
			if !ok {
				t.Fatalf("%s: %s has no metadata", filepath.Base(f), tm.Kind)
			}
			m := manifest{file: filepath.Base(f), obj: obj, gvk: gvk}
			m.meta.Name, m.meta.Namespace = accessor.GetName(), accessor.GetNamespace()
			if m.meta.Name == "" {
				t.Errorf("%s: document %d (%s) has no metadata.name", m.file, i, tm.Kind)
			}
			out = append(out, m)
		}
	}
	return out
}

var commentLine = regexp.MustCompile(`(?m)^\s*#.*$`)

// documentSep splits a multi-document YAML stream.
var documentSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

func stripComments(doc []byte) []byte { return commentLine.ReplaceAll(doc, nil) }

// TestKubernetesManifestsDecodeStrictly checks every manifest against the
// API types, then what the API server would only find at run time: each
// Deployment's selector selects its pods, each Service selects a
// Deployment's pods and targets a port they name, probes name ports the
// container has, and referenced ConfigMaps are in the manifests.
func TestKubernetesManifestsDecodeStrictly(t *testing.T) {
	ms := loadManifests(t)
	configMaps := map[string]bool{}
	namespaces := map[string]bool{}
	var deployments []*appsv1.Deployment
	var services []*corev1.Service
	for _, m := range ms {
		switch o := m.obj.(type) {
		case *corev1.ConfigMap:
			configMaps[o.Namespace+"/"+o.Name] = true
		case *corev1.Namespace:
			namespaces[o.Name] = true
		case *appsv1.Deployment:
			deployments = append(deployments, o)
		case *corev1.Service:
			services = append(services, o)
		}
	}
	if len(deployments) == 0 || len(services) == 0 {
		t.Fatalf("found %d deployments and %d services; the manifests run a server and a proxy", len(deployments), len(services))
	}
	for _, m := range ms {
		if m.gvk.Kind != "Namespace" && !namespaces[m.meta.Namespace] {
			t.Errorf("%s %s: namespace %q is not created by the manifests", m.gvk.Kind, m.meta.Name, m.meta.Namespace)
		}
	}
	ports := func(pod corev1.PodSpec) map[string]bool {
		named := map[string]bool{}
		for _, c := range pod.Containers {
			for _, p := range c.Ports {
				named[p.Name] = true
			}
		}
		return named
	}
	for _, d := range deployments {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Deployment %s: selector %v does not select its pods %v (%v)", d.Name, d.Spec.Selector, d.Spec.Template.Labels, err)
		}
		named := ports(d.Spec.Template.Spec)
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
				if p != nil && p.HTTPGet != nil && p.HTTPGet.Port.StrVal != "" && !named[p.HTTPGet.Port.StrVal] {
					t.Errorf("Deployment %s: a probe names port %q, which container %s lacks", d.Name, p.HTTPGet.Port.StrVal, c.Name)
				}
			}
			for _, e := range c.EnvFrom {
				if e.ConfigMapRef != nil && !configMaps[d.Namespace+"/"+e.ConfigMapRef.Name] && (e.ConfigMapRef.Optional == nil || !*e.ConfigMapRef.Optional) {
					t.Errorf("Deployment %s: envFrom names ConfigMap %s, which the manifests lack", d.Name, e.ConfigMapRef.Name)
				}
			}
		}
	}
	for _, s := range services {
		var target *appsv1.Deployment
		for _, d := range deployments {
			if d.Namespace == s.Namespace && len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				target = d
			}
		}
		if target == nil {
			t.Errorf("Service %s: selector %v selects no Deployment's pods", s.Name, s.Spec.Selector)
			continue
		}
		named := ports(target.Spec.Template.Spec)
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal != "" && !named[p.TargetPort.StrVal] {
				t.Errorf("Service %s: targetPort %q is not a port of %s's pods", s.Name, p.TargetPort.StrVal, target.Name)
			}
		}
	}
}

// TestKubernetesManifestsKeepUserSecrets checks that re-applying the
// manifests cannot wipe a Secret the docs tell users to create: `kubectl
// apply` would overwrite a Secret of the same name defined in a manifest.
func TestKubernetesManifestsKeepUserSecrets(t *testing.T) {
	create := regexp.MustCompile(`create secret (?:generic|tls|docker-registry) ([a-z0-9][-a-z0-9.]*)`)
	userSecrets := map[string]string{} // name → where the docs say to create it
	var docs []string
	for _, pattern := range []string{"README.md", "docs/*.md", "deploy/*/*.md", "deploy/k8s/*.yaml"} {
		files, err := filepath.Glob(repoPath(t, pattern))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, files...)
	}
	for _, f := range docs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range create.FindAllStringSubmatch(string(b), -1) {
			userSecrets[m[1]] = filepath.Base(f)
		}
	}
	if len(userSecrets) == 0 {
		t.Fatal("the docs tell users to create no Secret; this test expects at least the token Secret (sluice-tokens)")
	}
	for _, m := range loadManifests(t) {
		if s, ok := m.obj.(*corev1.Secret); ok {
			if where, user := userSecrets[s.Name]; user {
				t.Errorf("%s defines Secret %s, which %s tells users to create: re-applying the manifests would overwrite it", m.file, s.Name, where)
			}
		}
	}
	t.Logf("Secrets users create: %v", strings.Join(keys(userSecrets), ", "))
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
