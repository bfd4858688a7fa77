#!/usr/bin/env bash
# Container test, run by .ci/run at its end (docs/containers.md): build the CPU image offline and check
# that it serves what the checkout serves.
#
# 1. start a private dockerd on loopback only (--bridge=none --iptables=false; its own socket), with a
#    data-root under the cache folder, so the base image and build layers of the last run are reused;
# 2. make the base image gateway-base:bookworm from a `debootstrap --variant=minbase` root with Python 3.11
#    (once: it stays in that data-root);
# 3. make a wheelhouse with `pip wheel` (the project's dependencies at the versions of this environment,
#    so the container runs the same torch as the test suite; cached by their hash), and build the image
#    with `docker build --network none --build-arg WHEELHOUSE=...`;
# 4. run it with --network host on a free loopback port, wait for /ready, compare one embedding with the
#    checkout's own server (.ci/container_compare.py); run it also with its defaults and --network none,
#    and check its HEALTHCHECK turns healthy and its user is not root; then remove exactly the containers
#    it started and stop exactly the dockerd it started.
#
# No Docker daemon can be started here (not root, no apt, no privileges): prints "SKIP ..." and exits 0.
# Anything wrong once the daemon runs (build, start, readiness, a different vector) exits non-zero.
# Run it from the environment the tests use (python with gateway's dependencies), as .ci/run does.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
started=$(date +%s)

skip() { echo "SKIP container test: $*"; exit 0; }
log() { echo "[container test +$(( $(date +%s) - started ))s] $*"; }

[ "$(id -u)" -eq 0 ] || skip "not root, so no dockerd can be started"
cache=${GATEWAY_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gateway-ci}
mkdir -p "$cache"

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap; } \
        >"$cache/apt.log" 2>&1 || skip "could not install docker.io and debootstrap (see $cache/apt.log)"
fi

# One run at a time per cache folder: the dockerd data-root is not shareable.
exec 9>"$cache/lock"
flock -w 1800 9 || { echo "FAIL: another container test held $cache/lock for 30 minutes"; exit 1; }

tmp=$(mktemp -d /tmp/gateway-container-test.XXXXXX)
export DOCKER_HOST="unix://$tmp/docker.sock"
dockerd_pid=""
container_ids=()
cleanup() {
    status=$?
    if [ ${#container_ids[@]} -gt 0 ]; then docker rm -f "${container_ids[@]}" >/dev/null 2>&1 || true; fi
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        # bounded wait for the daemon to exit (it stops its containerd first)
        for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    fi
    # dockerd leaves its network namespace mounted under its exec-root: unmount what lies under $tmp
    awk -v dir="$tmp/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | while read -r mount; do
        umount "$mount" 2>/dev/null || true
    done
    rm -rf "$repo/wheelhouse/ci" "$tmp" || echo "warning: could not remove all of $tmp"
    exit $status
}
trap cleanup EXIT

dockerd --bridge=none --iptables=false --data-root "$cache/docker" --exec-root "$tmp/exec" \
    --pidfile "$tmp/dockerd.pid" -H "$DOCKER_HOST" >"$tmp/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.5
done
if ! docker info >/dev/null 2>&1; then
    tail -5 "$tmp/dockerd.log" | sed 's/^/  dockerd: /'
    skip "dockerd did not start (no privileges for containers here?)"
fi
log "dockerd $dockerd_pid up"

base=gateway-base:bookworm
if ! docker image inspect "$base" >/dev/null 2>&1; then
    log "making $base with debootstrap (once per cache folder)"
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$tmp/root" \
        http://deb.debian.org/debian >"$tmp/debootstrap.log" 2>&1 \
        || { tail -20 "$tmp/debootstrap.log"; exit 1; }
    rm -rf "$tmp/root"/var/cache/apt/archives/*.deb "$tmp/root"/var/lib/apt/lists/*
    tar -C "$tmp/root" -c . | docker import --change 'CMD ["python3"]' - "$base" >/dev/null
    rm -rf "$tmp/root"
fi
log "base image $base ready"

# The wheelhouse: this environment's versions of gateway's dependencies (torch as .ci/run installed it).
# Also setuptools, which builds gateway, and async-timeout, which redis needs on the base's Python 3.11.2
# (python_full_version < 3.11.3) though not on this machine's.
extra_wheels=("setuptools>=68" "async-timeout>=4.0.3")
python -m pip freeze --exclude-editable | grep -E '^[A-Za-z0-9_.-]+==' >"$tmp/constraints.txt"
key=$( (cat pyproject.toml "$tmp/constraints.txt"; echo "${extra_wheels[*]}"; python -c 'import sys; print(sys.version)') \
       | sha256sum | cut -c1-16)
wheels="$cache/wheelhouse-$key"
if [ ! -d "$wheels" ]; then
    log "pip wheel -> $wheels"
    rm -rf "$cache"/wheelhouse-*
    python -m pip wheel -q --wheel-dir "$wheels.partial" -c "$tmp/constraints.txt" "${extra_wheels[@]}" \
        -r <(python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))")
    mv "$wheels.partial" "$wheels"
fi
rm -rf wheelhouse/ci
cp -al "$wheels" wheelhouse/ci 2>/dev/null || cp -a "$wheels" wheelhouse/ci

image=gateway:ci
previous=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
log "docker build --network none"
docker build --network none --build-arg BASE_IMAGE="$base" --build-arg WHEELHOUSE=wheelhouse/ci \
    -t "$image" . >"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log"; exit 1; }
rm -rf wheelhouse/ci
size=$(docker image inspect -f '{{.Size}}' "$image")
log "image $image built: $((size / 1000000)) MB ($((size / 1048576)) MiB)"
# the previous run's image, untagged now (only it: the builder stage's layers stay as the build cache)
current=$(docker image inspect -f '{{.Id}}' "$image")
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then docker rmi "$previous" >/dev/null 2>&1 || true; fi

# Two containers side by side. The first as an operator runs it, with the image's defaults (0.0.0.0:8000,
# its HEALTHCHECK on that port) and no network at all (--network none: only its own loopback): it must turn
# healthy. The second with --network host on a free loopback port (GATEWAY_HOST keeps it on loopback,
# GATEWAY_PORT moves it off 8000): its vector is compared with the checkout's server.
offline_id=$(docker run -d --network none "$image")
container_ids+=("$offline_id")
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
served_id=$(docker run -d --network host -e GATEWAY_HOST=127.0.0.1 -e GATEWAY_PORT="$port" "$image")
container_ids+=("$served_id")
log "containers ${offline_id:0:12} (--network none, defaults) and ${served_id:0:12} (127.0.0.1:$port)"
if ! python .ci/container_compare.py --container-url "http://127.0.0.1:$port" --timeout-s 300; then
    docker logs "$served_id" 2>&1 | tail -30
    exit 1
fi

user=$(docker exec "$offline_id" id -u)
[ "$user" != 0 ] || { echo "FAIL: the container runs as root"; exit 1; }
health=starting
for _ in $(seq 360); do  # bounded: the first check runs one --interval (15 s) after the start
    health=$(docker inspect -f '{{.State.Health.Status}}' "$offline_id")
    [ "$health" = starting ] || break
    sleep 0.5
done
if [ "$health" != healthy ]; then
    echo "FAIL: the HEALTHCHECK of the container run with no network says $health"
    docker inspect -f '{{json .State.Health}}' "$offline_id"
    docker logs "$offline_id" 2>&1 | tail -30
    exit 1
fi
log "container run with no network: HEALTHCHECK healthy, uid $user"
docker rm -f "${container_ids[@]}" >/dev/null
container_ids=()
log "PASS container test ($(( $(date +%s) - started )) s)"
