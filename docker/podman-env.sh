# Sourced by docker/*.sh: podman settings that work on these machines (no Docker engine,
# crun fails on this kernel's cgroup layout, default rlimits are refused), with podman's
# storage in a work folder of its own instead of /var/lib/containers.
#   SALMUBENCH_PODMAN_DIR  where storage and config live (default /var/tmp/salmubench-podman)
# shellcheck shell=bash
PODMAN_DIR=${SALMUBENCH_PODMAN_DIR:-/var/tmp/salmubench-podman}
mkdir -p "$PODMAN_DIR"
cat > "$PODMAN_DIR/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "host"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
cat > "$PODMAN_DIR/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$PODMAN_DIR/storage"
runroot = "$PODMAN_DIR/run"
CONF
export CONTAINERS_CONF="$PODMAN_DIR/containers.conf"
export CONTAINERS_STORAGE_CONF="$PODMAN_DIR/storage.conf"

# The tools, from Debian's packages, when missing (CI runs as root on a fresh machine).
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ((${#need[@]})); then
    echo "installing ${need[*]} (apt-get)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
