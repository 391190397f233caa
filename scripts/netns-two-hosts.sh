#!/usr/bin/env bash
# Two hosts on one machine: data-parallel training with one rank in each of two network
# namespaces joined by a veth pair, over Open MPI's TCP transport, launched the way a real
# two-machine job is (`mpirun -H hostA,hostB`; mpirun reaches the second "host" through an rsh
# agent that enters its namespace instead of ssh).
#
#   sudo scripts/netns-two-hosts.sh <config.json> [more tunekit train arguments]
#   sudo scripts/netns-two-hosts.sh --exec <program> [arguments]     any 2-rank program instead
#        (bench: --exec node bench/.out/data_parallel.js --allreduce)
#
# What it does:
#   1. namespaces tkA-<pid> (10.231.7.1) and tkB-<pid> (10.231.7.2), a veth pair between them,
#      loopback up in each; nothing else is reachable from them;
#   2. a probe job: each rank prints its rank and the address of the namespace it runs in;
#   3. `tunekit train <config.json>` as that 2-rank job (PML ob1 + BTL tcp,self only, limited to
#      the veth subnet: no shared memory between the "hosts"), then the bytes the veth carried;
#   4. removes the namespaces (also on failure or Ctrl-C).
# Needs root (ip netns), iproute2 and Open MPI's mpirun. Exit status: the job's; 77 when the
# namespaces cannot be made here (not root, no ip netns): test/distributed/two_hosts.test.ts
# then skips, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || { [ "$1" = --exec ] && [ $# -lt 2 ]; }; then
  echo "usage: $0 <config.json> [tunekit train arguments] | --exec <program> [arguments]" >&2
  exit 2
fi
NODE=$(command -v node)
if [ "$1" = --exec ]; then
  shift
  JOB=("$@")
  WHAT="$*"
else
  JOB=("$NODE" dist/cli/main.js train "$@")
  WHAT="tunekit train $*"
fi
MPIRUN=${TUNEKIT_MPIRUN:-mpirun}
A=tkA-$$
B=tkB-$$
VA=tkva$$
VB=tkvb$$
IP_A=10.231.7.1
IP_B=10.231.7.2
NET=10.231.7.0/24
WORK=$(mktemp -d)

cleanup() {
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! ip netns add "$A" 2>"$WORK/err"; then
  echo "netns-two-hosts: cannot make network namespaces here (needs root and iproute2): $(cat "$WORK/err" 2>/dev/null)" >&2
  exit 77
fi
if ! command -v "$MPIRUN" >/dev/null; then
  echo "netns-two-hosts: no $MPIRUN (apt-get install openmpi-bin)" >&2
  exit 77
fi
ip netns add "$B"
ip link add "$VA" type veth peer name "$VB"
ip link set "$VA" netns "$A"
ip link set "$VB" netns "$B"
ip -n "$A" addr add "$IP_A/24" dev "$VA"
ip -n "$B" addr add "$IP_B/24" dev "$VB"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set "$VA" up
ip -n "$B" link set "$VB" up

# Open MPI's rsh agent is called as `<agent> [options] <host> <command words>`: enter the host's
# namespace instead of logging in to it, and run the command words with a shell, as sshd would.
cat > "$WORK/agent" <<EOF
#!/bin/sh
while [ \$# -gt 0 ]; do
  case "\$1" in
    $IP_A) ns=$A; shift; break ;;
    $IP_B) ns=$B; shift; break ;;
    *) shift ;;
  esac
done
exec ip netns exec "\$ns" sh -c "\$*"
EOF
chmod +x "$WORK/agent"

root_flag=()
[ "$(id -u)" = 0 ] && root_flag=(--allow-run-as-root)
mpi=("$MPIRUN" "${root_flag[@]}" -np 2 -H "$IP_A:1,$IP_B:1" --bind-to none
  --mca plm_rsh_agent "$WORK/agent" --mca pml ob1 --mca btl tcp,self
  --mca btl_tcp_if_include "$NET" --mca oob_tcp_if_include "$NET")

echo "== where the ranks run"
ip netns exec "$A" "${mpi[@]}" sh -c 'echo "rank $OMPI_COMM_WORLD_RANK: $(ip -o -4 addr show scope global | awk "{print \$2, \$4}")"' | sort

bytes() { ip netns exec "$A" cat "/sys/class/net/$VA/statistics/$1_bytes"; }
tx0=$(bytes tx)
rx0=$(bytes rx)
echo "== $WHAT (2 ranks, one per namespace)"
status=0
ip netns exec "$A" "${mpi[@]}" "${JOB[@]}" || status=$?
echo "== the veth of $IP_A carried $(( $(bytes tx) - tx0 )) bytes out and $(( $(bytes rx) - rx0 )) bytes in"
exit $status
