#!/usr/bin/env bash
# Builds the real control plane the e2e suite runs, from the Go module proxy at the versions in
# test/e2e/versions.env (and Crossplane core at test/conformance/versions.env), cached under
# .cache/bin/<component>-<version>/ and rebuilt only when missing:
#
#   .cache/bin/kubernetes-<v>/{kube-apiserver,kube-controller-manager,kubectl}
#   .cache/bin/etcd-<v>/etcd
#   .cache/bin/provider-kubernetes-<v>/{provider-kubernetes,crds/}
#   .cache/bin/core-<v>/{crossplane,crds/}  + .cache/bin/cli-<v>/crossplane  (build-crossplane.sh)
#   .cache/bin/core-<v>-webhooks/usage.yaml (Crossplane's Usage webhook configuration)
#   .cache/bin/lws-<v>/leaderworkersets.yaml (the LeaderWorkerSet CRD, for the gang scenario)
#   .cache/bin/{crane,oras}-<v>/ (test/oci/build.sh: the registry and tools of the oci scenario)
#
#   test/e2e/build.sh            # build what is missing
#   FORCE=1 test/e2e/build.sh    # rebuild everything
#
# Needs Go >= 1.26. Nothing upstream is committed: wrapper modules are generated under
# .cache/build at build time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"
# shellcheck source=../conformance/versions.env
. "$root/test/conformance/versions.env"

bin="$root/.cache/bin"
build="$root/.cache/build"
command -v go >/dev/null || {
  echo "e2e build: go is not on PATH; it is needed to build the control plane" >&2
  exit 1
}
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export CGO_ENABLED=0
t0=$(date +%s)
elapsed() { echo $(($(date +%s) - $1)); }
say() { echo "e2e build: $*" >&2; }

# The directory a module version was downloaded to, asked outside any module so that the
# repository's own setup plays no part.
module_dir() {
  local tmp dir
  tmp="$(mktemp -d)"
  dir="$(cd "$tmp" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  rmdir "$tmp"
  [[ -n "$dir" && -d "$dir" ]] || {
    say "could not download $1"
    exit 1
  }
  echo "$dir"
}

# A module requiring MODULE@VERSION... exactly, importing PKG so that `go mod tidy` keeps it.
# Fails if the build list resolved any of them to another version.
wrapper() {
  local dir="$1" pkg="$2"
  shift 2
  rm -rf "$dir"
  mkdir -p "$dir"
  printf 'module modelcache.local/e2e-%s\n\ngo 1.26.0\n' "$(basename "$dir")" >"$dir/go.mod"
  printf '//go:build tools\n\n// Package tools pins the command to build.\npackage tools\n\nimport _ "%s"\n' \
    "$pkg" >"$dir/tools.go"
  (
    cd "$dir"
    go get "$@"
    go mod tidy
    check_versions "$@"
  )
}

check_versions() {
  local want mod got
  for want in "$@"; do
    mod="${want%@*}"
    got="$(go list -m -f '{{.Version}}' "$mod")"
    if [[ "$got" != "${want##*@}" ]]; then
      say "$mod resolved to $got, want ${want##*@}"
      exit 1
    fi
  done
}

fresh() { [[ "${FORCE:-}" == 1 ]] || ! "$@"; }
all_x() { local f; for f in "$@"; do [[ -x "$f" ]] || return 1; done; }

# --- Kubernetes ----------------------------------------------------------------------------
kdir="$bin/kubernetes-$K8S_VERSION"
if fresh all_x "$kdir/kube-apiserver" "$kdir/kube-controller-manager" "$kdir/kubectl"; then
  s=$(date +%s)
  say "kubernetes $K8S_VERSION: generating the wrapper module"
  kmod="$(module_dir "$K8S_MODULE@$K8S_VERSION")"
  w="$build/kubernetes-$K8S_VERSION"
  rm -rf "$w"
  mkdir -p "$w" "$kdir"
  # The staging modules k8s.io/kubernetes replaces with ./staging/..., from its own go.mod: a
  # dependent module ignores those replaces, so it replaces each with the published twin.
  {
    printf 'module modelcache.local/e2e-kubernetes\n\ngo 1.26.0\n\ngodebug default=go1.26\n\n'
    printf 'require %s %s\n\nreplace (\n' "$K8S_MODULE" "$K8S_VERSION"
    sed -n '/^replace (/,/^)/p' "$kmod/go.mod" | awk '/=> .\/staging/ {print $1}' |
      while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$K8S_STAGING_VERSION"; done
    printf ')\n'
  } >"$w/go.mod"
  printf '//go:build tools\n\n// Package tools pins the commands to build.\npackage tools\n\nimport (\n' >"$w/tools.go"
  for c in kube-apiserver kube-controller-manager kubectl; do
    printf '\t_ "%s/cmd/%s"\n' "$K8S_MODULE" "$c" >>"$w/tools.go"
  done
  printf ')\n' >>"$w/tools.go"
  (cd "$w" && go mod tidy && check_versions "$K8S_MODULE@$K8S_VERSION")
  # The version the binaries report (kubectl version, /version); upstream's build sets the same.
  minor="${K8S_VERSION#v1.}"
  minor="${minor%%.*}"
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  say "kubernetes: modules ready in $(elapsed "$s") s"
  for c in kube-apiserver kube-controller-manager kubectl; do
    s=$(date +%s)
    (cd "$w" && go build -trimpath -ldflags "$ld" -o "$kdir/$c.tmp" "$K8S_MODULE/cmd/$c")
    mv "$kdir/$c.tmp" "$kdir/$c"
    say "$c $K8S_VERSION built in $(elapsed "$s") s"
  done
else
  say "kubernetes $K8S_VERSION: cached at $kdir"
fi

# --- Crossplane core (and the CLI the conformance suite uses) ---------------------------------
s=$(date +%s)
FORCE="${FORCE:-}" bash "$root/test/conformance/build-crossplane.sh" >/dev/null
say "crossplane (cli $CROSSPLANE_CLI_VERSION, core $CROSSPLANE_CORE_VERSION) ready in $(elapsed "$s") s"
whk="$bin/core-$CROSSPLANE_CORE_VERSION-webhooks"
if fresh test -f "$whk/usage.yaml"; then
  xd="$(module_dir "$CROSSPLANE_CORE_MODULE@$CROSSPLANE_CORE_VERSION")"
  mkdir -p "$whk"
  cp "$xd/cluster/webhookconfigurations/usage.yaml" "$whk/usage.yaml.tmp"
  chmod u+w "$whk/usage.yaml.tmp"
  mv "$whk/usage.yaml.tmp" "$whk/usage.yaml"
fi

# --- provider-kubernetes ---------------------------------------------------------------------
pdir="$bin/provider-kubernetes-$PROVIDER_KUBERNETES_VERSION"
if fresh all_x "$pdir/provider-kubernetes"; then
  s=$(date +%s)
  mkdir -p "$pdir"
  w="$build/provider-kubernetes-$PROVIDER_KUBERNETES_VERSION"
  wrapper "$w" "$PROVIDER_KUBERNETES_MODULE/cmd/provider" \
    "$PROVIDER_KUBERNETES_MODULE@$PROVIDER_KUBERNETES_VERSION"
  (cd "$w" && go build -trimpath \
    -ldflags "-s -w -X=$PROVIDER_KUBERNETES_MODULE/internal/version.Version=$PROVIDER_KUBERNETES_VERSION" \
    -o "$pdir/provider-kubernetes.tmp" "$PROVIDER_KUBERNETES_MODULE/cmd/provider")
  mv "$pdir/provider-kubernetes.tmp" "$pdir/provider-kubernetes"
  say "provider-kubernetes $PROVIDER_KUBERNETES_VERSION built in $(elapsed "$s") s"
else
  say "provider-kubernetes $PROVIDER_KUBERNETES_VERSION: cached at $pdir"
fi
if fresh test -d "$pdir/crds"; then
  pd="$(module_dir "$PROVIDER_KUBERNETES_MODULE@$PROVIDER_KUBERNETES_VERSION")"
  rm -rf "$pdir/crds.tmp"
  mkdir -p "$pdir/crds.tmp"
  cp "$pd"/package/crds/*.yaml "$pdir/crds.tmp/"
  chmod u+w "$pdir/crds.tmp"/*.yaml
  rm -rf "$pdir/crds"
  mv "$pdir/crds.tmp" "$pdir/crds"
fi

# --- etcd ------------------------------------------------------------------------------------
edir="$bin/etcd-$ETCD_VERSION"
if fresh all_x "$edir/etcd"; then
  s=$(date +%s)
  mkdir -p "$edir"
  w="$build/etcd-$ETCD_VERSION"
  # The server module and its siblings are tagged together; requiring them all at the tag keeps
  # the build list from mixing releases.
  wrapper "$w" "$ETCD_MODULE" "$ETCD_MODULE@$ETCD_VERSION" \
    "go.etcd.io/etcd/api/v3@$ETCD_VERSION" "go.etcd.io/etcd/client/pkg/v3@$ETCD_VERSION" \
    "go.etcd.io/etcd/client/v3@$ETCD_VERSION" "go.etcd.io/etcd/pkg/v3@$ETCD_VERSION"
  (cd "$w" && go build -trimpath -ldflags "-s -w" -o "$edir/etcd.tmp" "$ETCD_MODULE")
  mv "$edir/etcd.tmp" "$edir/etcd"
  say "etcd $ETCD_VERSION built in $(elapsed "$s") s"
else
  say "etcd $ETCD_VERSION: cached at $edir"
fi

# --- LeaderWorkerSet CRD: .cache/bin/lws-<v>/leaderworkersets.yaml ------------------------------
ldir="$bin/lws-$LWS_VERSION"
if fresh test -f "$ldir/leaderworkersets.yaml"; then
  ld="$(module_dir "$LWS_MODULE@$LWS_VERSION")"
  mkdir -p "$ldir"
  cp "$ld/config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml" "$ldir/leaderworkersets.yaml.tmp"
  chmod u+w "$ldir/leaderworkersets.yaml.tmp"
  mv "$ldir/leaderworkersets.yaml.tmp" "$ldir/leaderworkersets.yaml"
fi

# --- the OCI source's peers: crane (its registry, image builds) and oras (test/oci/versions.env) --
bash "$root/test/oci/build.sh"

say "all binaries ready in $(elapsed "$t0") s"
