// Package deploy holds the ways to run the shop: dapr.yaml multi-app run
// files for the launcher (`shop run -f`), Kubernetes manifests in k8s/, and
// the pinned daprd build module in daprd/. Its test checks that the
// manifests, the run files, the components and the code agree.
package deploy
