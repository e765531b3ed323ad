# Shared helpers for FileGrid's scripts (sourced, not run).

# Runs a command as root: directly when root, through sudo when available.
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else return 1
    fi
}

# Installs Debian packages that are missing; says exactly what to run when it cannot.
ensure_debian_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing ${missing[*]} (Debian packages)" >&2
    if ! { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}"; } >&2; then
        echo "error: cannot install ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
        return 1
    fi
}

# ZooKeeper from Debian's package needs a JRE and the jar.
ensure_zookeeper() {
    ensure_debian_packages zookeeper default-jre-headless
}

# Prints the path of a free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
