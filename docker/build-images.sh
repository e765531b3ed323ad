#!/usr/bin/env bash
# Builds FileGrid's container images without pulling anything from a registry.
#
#   filegrid/base:bookworm      Debian bookworm minbase, debootstrapped from the mirror named in
#                               this machine's apt sources and `docker import`ed
#   filegrid/node:TAG           filegrid-node, zk_head_server_monitor and filegrid (built by cargo here)
#   filegrid/zookeeper:TAG      Debian's zookeeper package and a headless JRE
#   filegrid/prometheus:TAG     Debian's prometheus package with FileGrid's scrape configuration
#   filegrid/operator:TAG       filegrid-operator (skip with --skip-operator)
#
# The debootstrapped root is cached as a tarball, and every image is an ordinary `docker build`
# on top of the local base, so a rerun only rebuilds what changed.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKER_DIR="$REPO_ROOT/docker"
TAG="${FILEGRID_IMAGE_TAG:-0.1.0}"
SUITE="bookworm"
BASE_IMAGE="filegrid/base:$SUITE"
CACHE_DIR="${FILEGRID_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/filegrid/images}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
NODE_BINARIES=(filegrid-node zk_head_server_monitor filegrid)

usage() {
    cat <<EOF
Usage: docker/build-images.sh [options]

Builds the FileGrid images from Debian packages and the binaries cargo builds here; nothing is
pulled from a registry.

Options:
  --only LIST       comma-separated subset of: base,node,zookeeper,prometheus,operator
  --skip-operator   do not build filegrid/operator (its crate may not compile yet)
  --no-cargo        use the release binaries already in the cargo target directory
  --rebuild-base    debootstrap the base again even when a cached one exists
  -h, --help        show this help

Environment:
  FILEGRID_IMAGE_TAG      tag of the FileGrid images (default 0.1.0)
  FILEGRID_IMAGE_CACHE    where the debootstrapped base tarball is cached
                          (default \$XDG_CACHE_HOME/filegrid/images or ~/.cache/filegrid/images)
  FILEGRID_DEBIAN_MIRROR  Debian mirror URL to use instead of the one in the apt sources
  CARGO_TARGET_DIR        cargo's target directory (default <repo>/target)
EOF
}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-images: error: %s\n' "$*" >&2; exit 1; }

ONLY="base,node,zookeeper,prometheus,operator"
SKIP_OPERATOR=0
RUN_CARGO=1
REBUILD_BASE=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --only) [[ $# -ge 2 ]] || die "--only needs a list"; ONLY="$2"; shift 2 ;;
        --only=*) ONLY="${1#--only=}"; shift ;;
        --skip-operator) SKIP_OPERATOR=1; shift ;;
        --no-cargo) RUN_CARGO=0; shift ;;
        --rebuild-base) REBUILD_BASE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done
for part in ${ONLY//,/ }; do
    case "$part" in
        base|node|zookeeper|prometheus|operator) ;;
        *) die "--only: unknown image '$part' (expected base,node,zookeeper,prometheus,operator)" ;;
    esac
done
wanted() { [[ ",$ONLY," == *",$1,"* ]]; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (is dockerd running, may you use it?)"

# Without the buildx plugin, newer docker clients refuse BuildKit builds; the classic builder
# handles these Dockerfiles just as well.
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Prints "<kind> <uri>" for each Debian source of $SUITE in the host's apt configuration, where kind
# is main, updates or security. Reads one-line (sources.list, *.list) and deb822 (*.sources) files.
apt_sources() {
    local files=()
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    local f
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] && files+=("$f")
    done
    [[ ${#files[@]} -gt 0 ]] || return 0
    awk -v suite="$SUITE" '
        function emit(uri, s) {
            sub(/\/+$/, "", uri)
            if (s == suite) print "main " uri
            else if (s == suite "-updates") print "updates " uri
            else if (s == suite "-security" || s == suite "/updates") print "security " uri
        }
        function flush(   i, j, nu, ns, us, ss) {
            if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled !~ /^[ \t]*(no|false)/) {
                nu = split(uris, us, /[ \t]+/); ns = split(suites, ss, /[ \t]+/)
                for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) if (us[i] != "" && ss[j] != "") emit(us[i], ss[j])
            }
            types = uris = suites = enabled = ""
        }
        FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
        /^[ \t]*#/ { next }
        deb822 {
            if ($0 ~ /^[ \t]*$/) { flush(); next }
            line = $0; key = tolower(line); sub(/:.*/, "", key); sub(/^[^:]*:[ \t]*/, "", line)
            if (key == "types") types = line
            else if (key == "uris") uris = line
            else if (key == "suites") suites = line
            else if (key == "enabled") enabled = tolower(line)
            next
        }
        $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            emit($i, $(i + 1))
        }
        END { flush() }
    ' "${files[@]}"
}

mirror_for() {
    apt_sources | awk -v kind="$1" '$1 == kind { print $2; exit }'
}

# ---------------------------------------------------------------------------------------------
# base
# ---------------------------------------------------------------------------------------------

# Writes the apt and dpkg configuration every FileGrid image shares into the new root.
configure_root() {
    local root="$1" main="$2" updates="$3" security="$4"
    {
        echo "deb $main $SUITE main"
        [[ -n "$updates" ]] && echo "deb $updates $SUITE-updates main"
        [[ -n "$security" ]] && echo "deb $security $SUITE-security main"
    } >"$root/etc/apt/sources.list"
    cat >"$root/etc/apt/apt.conf.d/90filegrid" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
EOF
    cat >"$root/etc/dpkg/dpkg.cfg.d/90filegrid-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
}

build_base_tarball() {
    local tarball="$1"
    if ! command -v debootstrap >/dev/null && command -v apt-get >/dev/null; then
        log "install debootstrap (apt-get install debootstrap)"
        if ! { as_root apt-get update -qq >/dev/null && as_root apt-get install -y -qq debootstrap >/dev/null; }; then
            die "could not install debootstrap; install it and rerun"
        fi
    fi
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    local main updates security
    main="${FILEGRID_DEBIAN_MIRROR:-$(mirror_for main)}"
    [[ -n "$main" ]] || die "no 'deb ... $SUITE main' source in /etc/apt/sources.list{,.d}; set FILEGRID_DEBIAN_MIRROR"
    updates="$(mirror_for updates)"
    security="$(mirror_for security)"
    [[ -n "${FILEGRID_DEBIAN_MIRROR:-}" ]] && updates="${updates:+$FILEGRID_DEBIAN_MIRROR}"
    log "debootstrap $SUITE (minbase) from $main"

    local work root include=""
    work="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
    root="$work/root"
    # shellcheck disable=SC2064
    trap "as_root rm -rf '$work'" EXIT
    [[ "$main" == https:* ]] && include="--include=ca-certificates"
    as_root debootstrap --variant=minbase $include "$SUITE" "$root" "$main" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (full log above)"; }
    as_root bash -c "$(declare -f configure_root); SUITE=$SUITE; configure_root '$root' '$main' '$updates' '$security'"
    log "apply $SUITE updates to the base"
    as_root chroot "$root" /bin/bash -c '
        set -e
        export DEBIAN_FRONTEND=noninteractive
        apt-get -qq update
        apt-get -qq -y upgrade
        apt-get -qq clean
        rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old
        rm -rf /usr/share/doc/*/changelog* /usr/share/man/* /usr/share/info/* /usr/share/locale/*
        : >/etc/machine-id
    ' >"$work/upgrade.log" 2>&1 || { tail -n 30 "$work/upgrade.log" >&2; die "updating the base failed"; }
    as_root tar --numeric-owner --xattrs -C "$root" -cf "$tarball.tmp" .
    as_root chown "$(id -u):$(id -g)" "$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    as_root rm -rf "$work"
    trap - EXIT
}

build_base() {
    mkdir -p "$CACHE_DIR"
    local tarball
    tarball="$CACHE_DIR/debian-$SUITE-minbase-$(dpkg --print-architecture 2>/dev/null || uname -m).tar"
    if [[ $REBUILD_BASE -eq 0 ]] && image_exists "$BASE_IMAGE"; then
        log "$BASE_IMAGE exists (use --rebuild-base to make it again)"
        return
    fi
    if [[ $REBUILD_BASE -eq 1 || ! -s "$tarball" ]]; then
        build_base_tarball "$tarball"
    else
        log "reuse cached base root $tarball"
    fi
    log "docker import $BASE_IMAGE"
    docker import \
        --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        --message "Debian $SUITE minbase for FileGrid" \
        "$tarball" "$BASE_IMAGE" >/dev/null
}

# ---------------------------------------------------------------------------------------------
# images on top of the base
# ---------------------------------------------------------------------------------------------

# Copies the given files into a fresh, small build context and runs docker build there, so the
# repository (and its multi-gigabyte target directory) is never sent to the engine.
docker_build() {
    local image="$1" dockerfile="$2"
    shift 2
    local ctx
    ctx="$(mktemp -d "$CACHE_DIR/context.XXXXXX")"
    cp "$dockerfile" "$ctx/Dockerfile"
    local f
    for f in "$@"; do cp -p "$f" "$ctx/"; done
    log "docker build $image"
    local previous
    previous="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
    if ! docker build --pull=false --force-rm \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --build-arg "FILEGRID_VERSION=$TAG" \
        -t "$image" "$ctx" >"$ctx.log" 2>&1; then
        tail -n 40 "$ctx.log" >&2
        rm -rf "$ctx" "$ctx.log"
        die "docker build of $image failed (last lines above)"
    fi
    rm -rf "$ctx" "$ctx.log"
    # Drop the image this build replaced, unless a container still uses it.
    if [[ -n "$previous" && "$previous" != "$(docker image inspect -f '{{.Id}}' "$image")" ]]; then
        docker rmi "$previous" >/dev/null 2>&1 || true
    fi
}

require_base() {
    image_exists "$BASE_IMAGE" || die "$BASE_IMAGE is missing; build it first (--only base)"
}

# Copies a release binary into dir, stripped of debug information to keep the image small.
stage_binary() {
    local name="$1" dir="$2" src="$TARGET_DIR/release/$1"
    [[ -x "$src" ]] || die "$src is missing; build it with cargo build --release or drop --no-cargo"
    if command -v strip >/dev/null; then
        strip --strip-debug -o "$dir/$name" "$src"
    else
        cp "$src" "$dir/$name"
    fi
}

build_node() {
    require_base
    if [[ $RUN_CARGO -eq 1 ]]; then
        log "cargo build --release -p filegrid-node"
        (cd "$REPO_ROOT" && cargo build --release --locked -p filegrid-node) \
            || die "cargo build of filegrid-node failed"
    fi
    local bins
    bins="$(mktemp -d "$CACHE_DIR/bin.XXXXXX")"
    local b
    for b in "${NODE_BINARIES[@]}"; do stage_binary "$b" "$bins"; done
    docker_build "filegrid/node:$TAG" "$DOCKER_DIR/node/Dockerfile" \
        "$DOCKER_DIR/node/setup-runtime.sh" "$DOCKER_DIR/node/entrypoint.sh" "$DOCKER_DIR/node/init-secrets.sh" \
        "$DOCKER_DIR/healthcheck.sh" \
        "${NODE_BINARIES[@]/#/$bins/}"
    rm -rf "$bins"
}

build_zookeeper() {
    require_base
    docker_build "filegrid/zookeeper:$TAG" "$DOCKER_DIR/zookeeper/Dockerfile" \
        "$DOCKER_DIR/zookeeper/zoo.cfg" "$DOCKER_DIR/zookeeper/start-zookeeper.sh" "$DOCKER_DIR/healthcheck.sh"
}

build_prometheus() {
    require_base
    docker_build "filegrid/prometheus:$TAG" "$DOCKER_DIR/prometheus/Dockerfile" \
        "$DOCKER_DIR/prometheus/prometheus.yml" "$DOCKER_DIR/prometheus/start-prometheus.sh" \
        "$DOCKER_DIR/healthcheck.sh"
}

build_operator() {
    require_base
    if [[ $RUN_CARGO -eq 1 ]]; then
        log "cargo build --release -p filegrid-operator"
        (cd "$REPO_ROOT" && cargo build --release --locked -p filegrid-operator) \
            || die "cargo build of filegrid-operator failed (use --skip-operator to build the other images)"
    fi
    local bins
    bins="$(mktemp -d "$CACHE_DIR/bin.XXXXXX")"
    stage_binary filegrid-operator "$bins"
    docker_build "filegrid/operator:$TAG" "$DOCKER_DIR/operator/Dockerfile" "$bins/filegrid-operator"
    rm -rf "$bins"
}

# Runs one build step and reports how long it took.
timed() {
    local name="$1" t0=$SECONDS
    shift
    "$@"
    log "$name ready in $((SECONDS - t0))s"
}

mkdir -p "$CACHE_DIR"
start=$SECONDS
wanted base && timed "$BASE_IMAGE" build_base
wanted zookeeper && timed "filegrid/zookeeper:$TAG" build_zookeeper
wanted prometheus && timed "filegrid/prometheus:$TAG" build_prometheus
wanted node && timed "filegrid/node:$TAG" build_node
if wanted operator; then
    if [[ $SKIP_OPERATOR -eq 1 ]]; then
        log "skip filegrid/operator (--skip-operator)"
    else
        timed "filegrid/operator:$TAG" build_operator
    fi
fi
log "all images ready in $((SECONDS - start))s"
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep '^filegrid/' | sort >&2 || true
