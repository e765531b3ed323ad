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

# openssl makes the local grid's CA and certificates.
ensure_openssl() {
    command -v openssl >/dev/null 2>&1 || ensure_debian_packages openssl
}

# make_local_ca DIR: a self-signed CA in DIR (ca.pem, ca.key) unless one is there.
make_local_ca() {
    local dir=$1
    [ -s "$dir/ca.pem" ] && [ -s "$dir/ca.key" ] && return 0
    mkdir -p "$dir"
    (umask 077
     openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout "$dir/ca.key.tmp" -out "$dir/ca.pem.tmp" -days 3650 -subj "/CN=FileGrid local CA" \
         -addext "basicConstraints=critical,CA:TRUE" \
         -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
     mv "$dir/ca.key.tmp" "$dir/ca.key"
     mv "$dir/ca.pem.tmp" "$dir/ca.pem")
}

# issue_local_cert DIR NAME SAN: NAME.pem and NAME.key in DIR, signed by DIR's CA, for the
# subjectAltName SAN (e.g. IP:127.0.0.1,DNS:localhost), usable as server and client
# certificate; kept when present and valid for another 30 days.
issue_local_cert() {
    local dir=$1 name=$2 san=$3
    if [ -s "$dir/$name.pem" ] && [ -s "$dir/$name.key" ] \
        && openssl x509 -in "$dir/$name.pem" -noout -checkend $((30 * 86400)) >/dev/null 2>&1; then
        return 0
    fi
    (umask 077
     openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout "$dir/$name.key.tmp" -out "$dir/$name.csr" -subj "/CN=$name" 2>/dev/null
     printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' "$san" > "$dir/$name.ext"
     openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
         -days 825 -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.pem.tmp" 2>/dev/null
     rm -f "$dir/$name.csr" "$dir/$name.ext"
     # The key first: a process reloading its files never sees a certificate without its key.
     mv "$dir/$name.key.tmp" "$dir/$name.key"
     mv "$dir/$name.pem.tmp" "$dir/$name.pem")
}

# The S3 clients the S3 tests drive: rclone and s3cmd from Debian, aws-cli and boto3 from
# PyPI into the project's venv (.venv), whose bin/ is then put first on PATH.
ensure_s3_clients() {
    # minio-go (MinIO's Go SDK) sends signed streaming bodies; its test builds a small
    # program with Debian's Go and the library's Debian package.
    ensure_debian_packages rclone s3cmd python3-venv curl golang-go golang-github-minio-minio-go-v7-dev || return 1
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
