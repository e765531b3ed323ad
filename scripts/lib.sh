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

# The S3 clients the S3 tests drive: rclone and s3cmd from Debian, aws-cli and boto3 from
# PyPI into the project's venv (.venv), whose bin/ is then put first on PATH.
ensure_s3_clients() {
    ensure_debian_packages rclone s3cmd python3-venv curl || return 1
    local root venv
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="$root/.venv"
    if [ ! -x "$venv/bin/python3" ]; then
        python3 -m venv "$venv" || return 1
    fi
    if ! "$venv/bin/python3" -c 'import boto3' 2>/dev/null || [ ! -x "$venv/bin/aws" ]; then
        echo "installing awscli and boto3 (PyPI) into $venv" >&2
        "$venv/bin/pip" install --quiet --upgrade pip >&2 || return 1
        "$venv/bin/pip" install --quiet awscli boto3 >&2 || return 1
    fi
    export PATH="$venv/bin:$PATH"
}
