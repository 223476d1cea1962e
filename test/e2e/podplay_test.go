package e2e

// The provider as the container its Deployment describes: deploy/ rendered by
// `kubectl kustomize`, the provider's Deployment and the ConfigMap and Secrets
// it names taken from that output, and run by `podman kube play` with the image
// scripts/image-build.sh builds from Containerfile. Args, env, volume mounts,
// security context and image entrypoint are the rendered ones. What is changed,
// each for a stated reason:
//   - image: the locally built tag (the operator's `kustomize edit set image`);
//   - the data an operator fills in: the ConfigMap's config.yaml is the
//     scenario's (its userDataFile the rendered one's path), the user-data Secret
//     holds the scenario's worker configuration, and the server certificate
//     Secret (cert-manager's, not in the output) holds the suite's certificates;
//   - CLOUDSCALE_API_URL is added (the simulator);
//   - host network (no CNI here), so the listen addresses 0.0.0.0:P become
//     127.0.0.1:P (this machine serves on loopback only) and `ports` go (no
//     port mapping on the host network);
//   - podman 4.3 specifics: a configMap volume mounted with subPath becomes a
//     hostPath file (podman mounts the whole volume there), secret volumes get
//     `optional: false` spelled out (podman dereferences it), and the Secrets
//     become podman secrets in the two forms podman reads (a Secret with raw
//     `data` for volumes, a JSON map of base64 values for secretKeyRef env).

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// podPlay is one provider run as its Deployment's container.
type podPlay struct {
	dir       string
	env       []string // CONTAINERS_CONF
	image     string   // the tag scripts/image-build.sh built (removed at the end)
	playFile  string
	container string
	secrets   []string
	volumes   []string
	addr      string // 127.0.0.1:PORT of the rendered --listen
	health    int
	log       []string // what was changed, for the report
}

var listenArg = regexp.MustCompile(`^0\.0\.0\.0:(\d+)$`)

func (pp *podPlay) podman(args ...string) (string, error) {
	cmd := exec.Command("podman", args...)
	cmd.Env = append(os.Environ(), pp.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("podman %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// newPodPlay builds the image and renders deploy/; it fails the scenario when either fails.
func newPodPlay(s *scenario) *podPlay {
	s.t.Helper()
	pp := &podPlay{dir: filepath.Join(s.dir, "podplay")}
	if err := os.MkdirAll(pp.dir, 0o755); err != nil {
		s.fatalf("%v", err)
	}
	envOut, err := exec.Command(filepath.Join(suite.root, "scripts/image-build.sh"), "--env").Output()
	if err != nil {
		s.fatalf("scripts/image-build.sh --env: %v", err)
	}
	pp.env = []string{strings.TrimPrefix(strings.TrimSpace(string(envOut)), "export ")}
	tag := fmt.Sprintf("localhost/autoscaler-cloudscale:e2e-%d", os.Getpid())
	t0 := time.Now()
	build := exec.Command(filepath.Join(suite.root, "scripts/image-build.sh"), "--arch", "amd64", "--x64-bin", s.bin, "--tag", tag)
	build.Env = append(os.Environ(), pp.env...)
	if out, err := build.CombinedOutput(); err != nil {
		s.fatalf("scripts/image-build.sh: %v\n%s", err, out)
	}
	pp.image = tag + "-amd64"
	s.t.Cleanup(func() {
		rm := exec.Command(filepath.Join(suite.root, "scripts/image-build.sh"), "--remove", "--tag", tag)
		rm.Env = append(os.Environ(), pp.env...)
		_ = rm.Run()
	})
	s.logf("image %s built from Containerfile in %.1fs", pp.image, time.Since(t0).Seconds())
	return pp
}

// kubeObject is the part of a rendered object the harness reads; the rest is kept as it is.
type kubeObject = map[string]any

func objField(o any, path ...string) any {
	for _, p := range path {
		m, ok := o.(map[string]any)
		if !ok {
			return nil
		}
		o = m[p]
	}
	return o
}

func objStr(o any, path ...string) string { v, _ := objField(o, path...).(string); return v }

func objList(o any, path ...string) []any { v, _ := objField(o, path...).([]any); return v }

// prepare renders deploy/, picks the provider's objects and writes the play file and podman secrets.
func (pp *podPlay) prepare(s *scenario, config string, workerConfig string) error {
	kubectl := suite.bins["kubectl"]
	rendered, err := exec.Command(kubectl, "kustomize", filepath.Join(suite.root, "deploy")).Output()
	if err != nil {
		return fmt.Errorf("kubectl kustomize deploy/: %v", err)
	}
	if err := os.WriteFile(filepath.Join(pp.dir, "rendered.yaml"), rendered, 0o644); err != nil {
		return err
	}
	var objs []kubeObject
	dec := yaml.NewDecoder(bytes.NewReader(rendered))
	for {
		var o kubeObject
		if err := dec.Decode(&o); err != nil {
			break
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	find := func(kind, name string) kubeObject {
		for _, o := range objs {
			if objStr(o, "kind") == kind && objStr(o, "metadata", "name") == name {
				return o
			}
		}
		return nil
	}
	dep := find("Deployment", "autoscaler-cloudscale")
	if dep == nil {
		return fmt.Errorf("the rendered deploy/ has no Deployment autoscaler-cloudscale")
	}
	pod := objField(dep, "spec", "template", "spec").(map[string]any)
	containers := objList(pod, "containers")
	if len(containers) != 1 {
		return fmt.Errorf("the provider's pod has %d containers, the harness expects 1", len(containers))
	}
	c := containers[0].(map[string]any)
	c["image"] = pp.image
	pp.log = append(pp.log, "image "+pp.image)

	// Listen addresses: loopback on the host network, same ports.
	args := objList(c, "args")
	for i, a := range args {
		m := listenArg.FindStringSubmatch(fmt.Sprint(a))
		if m == nil || i == 0 {
			continue
		}
		args[i] = "127.0.0.1:" + m[1]
		switch args[i-1] {
		case "--listen":
			pp.addr = args[i].(string)
		case "--health-listen":
			fmt.Sscanf(m[1], "%d", &pp.health)
		}
	}
	if pp.addr == "" || pp.health == 0 {
		return fmt.Errorf("the rendered args name no --listen / --health-listen 0.0.0.0:PORT: %v", args)
	}
	delete(c, "ports")
	c["env"] = append(objList(c, "env"), map[string]any{"name": "CLOUDSCALE_API_URL", "value": s.sim.API})

	// Env from Secrets: podman secrets holding a JSON map of base64 values.
	envSecrets := map[string][]string{}
	for _, e := range objList(c, "env") {
		if n := objStr(e, "valueFrom", "secretKeyRef", "name"); n != "" {
			envSecrets[n] = append(envSecrets[n], objStr(e, "valueFrom", "secretKeyRef", "key"))
		}
	}
	for n, keys := range envSecrets {
		values := map[string]string{}
		if sec := find("Secret", n); sec != nil {
			values = secretData(sec)
		} else {
			// The operator creates it (the API token; `kubectl create secret generic`); the simulator takes any token.
			for _, k := range keys {
				values[k] = "e2e-sim-token"
			}
		}
		data := map[string]string{}
		for k, v := range values {
			data[k] = base64.StdEncoding.EncodeToString([]byte(v))
		}
		b, _ := json.Marshal(data)
		if err := pp.secret(n, b); err != nil {
			return err
		}
	}

	// Volumes.
	mounts := objList(c, "volumeMounts")
	for _, v := range objList(pod, "volumes") {
		vol := v.(map[string]any)
		name := objStr(vol, "name")
		var mount map[string]any
		for _, m := range mounts {
			if objStr(m, "name") == name {
				mount = m.(map[string]any)
			}
		}
		switch {
		case objField(vol, "configMap") != nil:
			cmName := objStr(vol, "configMap", "name")
			cm := find("ConfigMap", cmName)
			if cm == nil || mount == nil || objStr(mount, "subPath") == "" {
				return fmt.Errorf("volume %s: ConfigMap %s mounted without subPath is not handled", name, cmName)
			}
			key := objStr(mount, "subPath")
			content := objStr(cm, "data", key)
			if key == "config.yaml" && cmName == "autoscaler-cloudscale-config" {
				content = withUserDataFile(config, content)
			}
			file := filepath.Join(pp.dir, cmName+"-"+key)
			if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
				return err
			}
			delete(vol, "configMap")
			vol["hostPath"] = map[string]any{"path": file, "type": "File"}
			delete(mount, "subPath")
		case objField(vol, "secret") != nil:
			secName := objStr(vol, "secret", "secretName")
			data := map[string]string{}
			if sec := find("Secret", secName); sec != nil {
				data = secretData(sec)
				if strings.HasPrefix(secName, "autoscaler-cloudscale-userdata") {
					for k := range data {
						data[k] = workerConfig
					}
				}
			} else if secName == "autoscaler-cloudscale-server-tls" {
				// Issued by cert-manager in a cluster (deploy/certificates.yaml); here the suite's certificates.
				for k, f := range map[string]string{"tls.crt": s.cp.certs.ServerCert, "tls.key": s.cp.certs.ServerKey, "ca.crt": s.cp.certs.CA} {
					b, err := os.ReadFile(f)
					if err != nil {
						return err
					}
					data[k] = string(b)
				}
			} else {
				return fmt.Errorf("volume %s: Secret %s is neither rendered nor one the harness can make", name, secName)
			}
			b, _ := yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": secName}, "data": data})
			if err := pp.secret(secName, b); err != nil {
				return err
			}
			vol["secret"].(map[string]any)["optional"] = false
			pp.volumes = append(pp.volumes, secName)
		default:
			return fmt.Errorf("volume %s: only configMap and secret volumes are handled", name)
		}
	}
	out, err := yaml.Marshal(dep)
	if err != nil {
		return err
	}
	pp.playFile = filepath.Join(pp.dir, "deployment.yaml")
	return os.WriteFile(pp.playFile, out, 0o644)
}

// secretData is a rendered Secret's data (base64-decoded) and stringData.
func secretData(sec kubeObject) map[string]string {
	out := map[string]string{}
	if d, ok := objField(sec, "data").(map[string]any); ok {
		for k, v := range d {
			b, _ := base64.StdEncoding.DecodeString(fmt.Sprint(v))
			out[k] = string(b)
		}
	}
	if d, ok := objField(sec, "stringData").(map[string]any); ok {
		for k, v := range d {
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

// withUserDataFile is the scenario's config with every userDataFile set to the one the rendered config names.
func withUserDataFile(config, rendered string) string {
	m := regexp.MustCompile(`userDataFile:\s*(\S+)`).FindStringSubmatch(rendered)
	if m == nil {
		return config
	}
	return regexp.MustCompile(`userDataFile:\s*\S+`).ReplaceAllString(config, "userDataFile: "+m[1])
}

func (pp *podPlay) secret(name string, data []byte) error {
	_, _ = pp.podman("secret", "rm", name)
	file := filepath.Join(pp.dir, "secret-"+name)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return err
	}
	if _, err := pp.podman("secret", "create", name, file); err != nil {
		return err
	}
	pp.secrets = append(pp.secrets, name)
	return nil
}

// play starts the Deployment and returns the container's name.
func (pp *podPlay) play() error {
	for _, v := range pp.volumes {
		_, _ = pp.podman("volume", "rm", "-f", v)
	}
	out, err := pp.podman("kube", "play", "--replace", "--network", "host", pp.playFile)
	if err != nil {
		return err
	}
	// "Pod:\n<id>\nContainer:\n<id>"
	lines := strings.Fields(out)
	for i, l := range lines {
		if l == "Container:" && i+1 < len(lines) {
			pp.container = lines[i+1]
		}
	}
	if pp.container == "" {
		return fmt.Errorf("podman kube play printed no container: %s", out)
	}
	return nil
}

// down stops the pod (SIGTERM, as the kubelet would) and removes what play made.
func (pp *podPlay) down() {
	if pp.playFile != "" {
		_, _ = pp.podman("kube", "down", pp.playFile)
	}
	for _, v := range pp.volumes {
		_, _ = pp.podman("volume", "rm", "-f", v)
	}
	for _, n := range pp.secrets {
		_, _ = pp.podman("secret", "rm", n)
	}
}
