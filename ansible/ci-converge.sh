#!/usr/bin/env bash
# CI: converge the CI inventory on this machine (connection local, no init system,
# everything under /opt/payivr-ci on its own ports), converge again and require zero
# changes, then leave the stack running for the smoke test
# (tests/ansible/test_ansible.py runs this script and then the SIPp smoke check).
#
#   ansible/ci-converge.sh              converge inventories/ci twice
#   ansible/ci-converge.sh --sentinel   converge inventories/ci-sentinel (redis role,
#                                       Sentinel mode, two Redis on loopback) twice
#   ansible/ci-converge.sh --stop       stop what the converges started
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
bin="${ANSIBLE_BIN_DIR:-$repo/.venv/bin}"
root=/opt/payivr-ci
logs="${PAYIVR_CI_LOG_DIR:-$root-logs}"
cd "$here"

if [[ "${1:-}" == "--stop" ]]; then
    # Only the processes the converge started, by their pid files.
    for pidfile in "$root"/run/payivr/*.pid "$root"/run/redis/redis-server.pid "$root"/run/redis-server.pid \
                   "$root"/sentinel/run/*/redis-sentinel.pid "$root"/sentinel/run/*/redis-server.pid; do
        [[ -e "$pidfile" ]] && start-stop-daemon --stop --pidfile "$pidfile" --retry TERM/10/KILL/5 --oknodo --remove-pidfile >/dev/null || true
    done
    if [[ -e "$root/run/kamailio/kamailio.pid" ]]; then
        start-stop-daemon --stop --pidfile "$root/run/kamailio/kamailio.pid" --exec /usr/sbin/kamailio --retry TERM/10/KILL/5 --oknodo >/dev/null || true
    fi
    exit 0
fi

inventory=inventories/ci/hosts.yml
tags=()
name=converge
if [[ "${1:-}" == "--sentinel" ]]; then
    inventory=inventories/ci-sentinel/hosts.yml
    tags=(--tags redis)
    name=sentinel
    # A fresh Sentinel set every time: Sentinel rewrites its own file (the role writes
    # it once), so a previous run's failover or settings would otherwise carry over.
    for pidfile in "$root"/sentinel/run/*/redis-sentinel.pid "$root"/sentinel/run/*/redis-server.pid; do
        [[ -e "$pidfile" ]] && start-stop-daemon --stop --pidfile "$pidfile" --retry TERM/10/KILL/5 --oknodo --remove-pidfile >/dev/null || true
    done
    rm -rf "$root/sentinel"
fi

mkdir -p "$logs"
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1
run() {
    local n="$1"
    local start=$SECONDS
    local log="$logs/$name-$n.log"
    if ! "$bin/ansible-playbook" -i "$inventory" site.yml "${tags[@]}" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "ci-converge: $name $n failed (log: $log)" >&2
        exit 1
    fi
    echo "ci-converge: $name $n took $((SECONDS - start)) s:"
    sed -n '/^PLAY RECAP/,$p' "$log" | grep -E ' : ok='
}

changes() {
    # Sum of changed= over every host of the recap.
    sed -n '/^PLAY RECAP/,$p' "$1" | grep -oE 'changed=[0-9]+' | awk -F= '{s += $2} END {print s + 0}'
}

run 1
run 2
changed="$(changes "$logs/$name-2.log")"
if [[ "$changed" != "0" ]]; then
    grep -E '^(changed|TASK|RUNNING HANDLER)' "$logs/$name-2.log" | grep -B1 '^changed' >&2 || true
    echo "ci-converge: the second $name changed $changed thing(s); it must change none" >&2
    exit 1
fi
echo "ci-converge: $name is idempotent (second run: changed=0)"
