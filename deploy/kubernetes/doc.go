// Package kubernetes holds NetSentry's Kubernetes manifests (this folder's
// YAML files: a DaemonSet with its ConfigMap and Services, the HA layout in
// ha-deployment.yaml, tied together by kustomization.yaml) and the test
// that decodes every one of them strictly into the k8s.io/api types and
// checks what the sensor needs of them. It has no code of its own.
package kubernetes
