#!/usr/bin/env bash
# Kernel link shaping for live runs (optional; needs root, iproute2 with tc).
# Creates network namespace hsim-dev<i> per device, each joined to the host by
# a veth pair 10.77.<i>.1 (host, cloud side) <-> 10.77.<i>.2 (device side),
# with netem delay + tbf rate in both directions:
#
#   sudo scripts/netns-tbf.sh up 2 20mbit 20ms      # 2 devices, 20 Mbit/s, 20 ms one way
#   hatsim live cloud --listen 0.0.0.0:7070 --scenario S --set devices.0.link.latencyMs=0 --set devices.0.link.uplinkMbps=100000 --set devices.0.link.downlinkMbps=100000 &
#   sudo ip netns exec hsim-dev0 hatsim live device --server 10.77.0.1:7070 --device 0 --scenario S (same --set flags) &
#   sudo ip netns exec hsim-dev1 hatsim live device --server 10.77.1.1:7070 --device 1 --scenario S (same --set flags)
#   sudo scripts/netns-tbf.sh down 2
#
# The --set flags turn the user-space shaper off (0 latency, very high rate);
# simulate with the real link figures. tbf's burst lets short messages pass
# faster than the simulator's pure serialisation: the user-space shaper
# (src/live/shaper.ts) is the reference. Not used in CI.
set -euo pipefail
cmd=${1:-}; n=${2:-1}; rate=${3:-20mbit}; delay=${4:-20ms}
case "$cmd" in
  up)
    for ((i = 0; i < n; i++)); do
      ns=hsim-dev$i; h=hv$i; d=dv$i
      ip netns add "$ns"
      ip link add "$h" type veth peer name "$d"
      ip link set "$d" netns "$ns"
      ip addr add "10.77.$i.1/24" dev "$h"; ip link set "$h" up
      ip netns exec "$ns" ip addr add "10.77.$i.2/24" dev "$d"
      ip netns exec "$ns" ip link set "$d" up
      ip netns exec "$ns" ip link set lo up
      # downlink (host -> device) on the host end, uplink on the device end.
      # netem (delay) is missing on some kernels: then shape the rate with tbf alone
      # and keep the one-way delay in the user-space shaper (scenario latencyMs).
      for side in host dev; do
        run=(); dev="$h"
        if [ "$side" = dev ]; then run=(ip netns exec "$ns"); dev="$d"; fi
        if "${run[@]}" tc qdisc add dev "$dev" root handle 1: netem delay "$delay" 2>/dev/null; then
          "${run[@]}" tc qdisc add dev "$dev" parent 1: handle 2: tbf rate "$rate" burst 32kbit latency 400ms
        else
          [ "$side" = host ] && echo "netns-tbf: netem unavailable; shaping rate only (keep latencyMs in the scenario)" >&2
          "${run[@]}" tc qdisc add dev "$dev" root handle 1: tbf rate "$rate" burst 32kbit latency 400ms
        fi
      done
    done ;;
  down)
    for ((i = 0; i < n; i++)); do
      ip netns del "hsim-dev$i" 2>/dev/null || true
      ip link del "hv$i" 2>/dev/null || true
    done ;;
  *) echo "usage: $0 up|down <devices> [rate e.g. 20mbit] [one-way delay e.g. 20ms]" >&2; exit 2 ;;
esac
