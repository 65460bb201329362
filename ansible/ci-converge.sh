#!/usr/bin/env bash
# CI: converge the CI inventory on this machine (connection local, no init system,
# everything under /opt/payivr-ci on its own ports), converge again and require zero
# changes, then leave the stack running for the smoke test
# (tests/ansible/test_ansible.py runs this script and then the SIPp smoke check).
#
#   ansible/ci-converge.sh            converge twice
#   ansible/ci-converge.sh --stop     stop what the converge started
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
bin="${ANSIBLE_BIN_DIR:-$repo/.venv/bin}"
root=/opt/payivr-ci
logs="${PAYIVR_CI_LOG_DIR:-$root-logs}"
cd "$here"

if [[ "${1:-}" == "--stop" ]]; then
    # Only the processes the converge started, by their pid files.
    for pidfile in "$root"/run/payivr/*.pid "$root"/run/redis-server.pid; do
        [[ -e "$pidfile" ]] && start-stop-daemon --stop --pidfile "$pidfile" --retry TERM/10/KILL/5 --oknodo --remove-pidfile >/dev/null || true
    done
    if [[ -e "$root/run/kamailio/kamailio.pid" ]]; then
        start-stop-daemon --stop --pidfile "$root/run/kamailio/kamailio.pid" --exec /usr/sbin/kamailio --retry TERM/10/KILL/5 --oknodo >/dev/null || true
    fi
    exit 0
fi

mkdir -p "$logs"
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1
run() {
    local n="$1"
    local start=$SECONDS
    if ! "$bin/ansible-playbook" -i inventories/ci/hosts.yml site.yml >"$logs/converge-$n.log" 2>&1; then
        tail -n 60 "$logs/converge-$n.log"
        echo "ci-converge: converge $n failed (log: $logs/converge-$n.log)" >&2
        exit 1
    fi
    local recap
    recap="$(grep -E '^ci-local +:' "$logs/converge-$n.log" | tail -n1)"
    echo "ci-converge: converge $n took $((SECONDS - start)) s: $recap"
}

run 1
run 2
changed="$(grep -E '^ci-local +:' "$logs/converge-2.log" | tail -n1 | sed -E 's/.*changed=([0-9]+).*/\1/')"
if [[ "$changed" != "0" ]]; then
    grep -E '^(changed|TASK|RUNNING HANDLER)' "$logs/converge-2.log" | grep -B1 '^changed' >&2 || true
    echo "ci-converge: the second converge changed $changed thing(s); it must change none" >&2
    exit 1
fi
echo "ci-converge: idempotent (second converge: changed=0)"
