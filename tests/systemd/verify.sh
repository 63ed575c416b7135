#!/usr/bin/env bash
# Checks dist/systemd/sluice.service with systemd-analyze verify (syntax, every key known,
# the binary it starts exists), after pointing ExecStart at the binary this build made.
# Exits 77 (ctest: skipped) where systemd-analyze is missing.
set -euo pipefail
unit=$1 bin=$2
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed: skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|^ExecStart=/usr/local/bin/sluice |ExecStart=$bin |" "$unit" >"$work/sluice.service"
grep -q "^ExecStart=$bin " "$work/sluice.service" || { echo "no ExecStart line to point at $bin"; exit 1; }
out=$(systemd-analyze verify "$work/sluice.service" 2>&1) || { echo "$out"; exit 1; }
# verify exits 0 for some warnings; any line about the unit itself is a failure.
if grep -F "sluice.service" <<<"$out"; then exit 1; fi
for key in Type=notify ProtectSystem=strict PrivateTmp=yes NoNewPrivileges=yes \
  CapabilityBoundingSet=CAP_NET_BIND_SERVICE User=sluice ReadWritePaths= ExecReload=; do
  grep -q "^$key" "$unit" || { echo "the unit lacks $key"; exit 1; }
done
echo "systemd-analyze verify: OK"
