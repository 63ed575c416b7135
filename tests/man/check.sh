#!/usr/bin/env bash
# Checks the manual pages in man/: each is clean under mandoc -T lint, sluice(8) has an
# entry for every option and command that sluice --help prints, sluice.yaml(5) one for
# every key of config_keys[] (src/config.c), sluice-policy(5) one for every key of the
# policy key tables (src/policy.c), and no page documents an option or key that is gone.
# Usage: check.sh SOURCE_DIR SLUICE_BINARY.  Exits 77 (ctest: skipped) without mandoc.
set -euo pipefail
src=$1 bin=$2
command -v mandoc >/dev/null || { echo "mandoc not installed: skipped"; exit 77; }
man8=$src/man/sluice.8 conf5=$src/man/sluice.yaml.5 pol5=$src/man/sluice-policy.5
failed=0

# fail MESSAGE: records a failure and goes on, so one run lists every gap.
fail() {
  echo "FAIL: $*"
  failed=1
}

# render PAGE: the page as plain text, one line per paragraph line, bold and underline
# overstrikes removed, lines wide enough that no option or key is broken.
render() {
  mandoc -T ascii -O width=1000 "$1" | sed 's/.\x08//g'
}

# section TEXT HEADING...: the body of the named sections of a rendered page.
section() {
  local text=$1
  shift
  awk -v want="$(IFS='|'; echo "$*")" '
    BEGIN { n = split(want, w, "|"); for (i = 1; i <= n; i++) keep[w[i]] = 1 }
    /^[A-Z]/ { on = ($0 in keep); next }
    on' <<<"$text"
}

# has_entry TEXT NAME: true when a line of TEXT starts (after its indent) with NAME,
# optionally after a short option ("-w N, --workers"): an entry of a tagged list, not a
# word in passing.
has_entry() {
  local re=${2//./\\.}
  grep -qE -- "^ +(-[[:alnum:]]( [^ ,]+)?, )?${re}( |,|$)" <<<"$1"
}

# 1. Lint: any message at warning level or above is a failure.
for page in "$man8" "$conf5" "$pol5"; do
  [ -f "$page" ] || { fail "$page is missing"; continue; }
  if ! out=$(mandoc -T lint -W warning "$page" 2>&1) || [ -n "$out" ]; then
    fail "mandoc -T lint -W warning $page:"
    echo "$out"
  fi
done
[ "$failed" -eq 0 ] || exit 1
echo "mandoc -T lint -W warning: 3 pages clean"

# 2. sluice(8): every option and command of the usage, and no option the usage lacks.
help=$("$bin" --help)
mapfile -t longs < <(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$help" | sort -u)
mapfile -t shorts < <(grep -oE '^  -[[:alnum:]],' <<<"$help" | tr -d ' ,' | sort -u)
mapfile -t commands < <(sed -nE 's/^(usage:| +) sluice ([a-z]+) .*/\2/p' <<<"$help")
if [ "${#longs[@]}" -lt 20 ] || [ "${#commands[@]}" -lt 2 ]; then
  echo "cannot read the options and commands from $bin --help"
  exit 1
fi
text=$(section "$(render "$man8")" OPTIONS)
for opt in "${longs[@]}"; do
  has_entry "$text" "$opt" || fail "sluice.8 has no entry for $opt"
done
for opt in "${shorts[@]}"; do
  grep -qE -- "^ +${opt}( [^ ,]+)?, --" <<<"$text" || fail "sluice.8 has no entry for $opt"
done
for cmd in "${commands[@]}"; do
  grep -qE "^ +sluice ${cmd}( |$)" <<<"$(section "$(render "$man8")" COMMANDS)" || fail "sluice.8 has no entry for command $cmd"
done
while read -r opt; do
  grep -qxF -- "$opt" <(printf '%s\n' "${longs[@]}") ||
    fail "sluice.8 documents $opt, which sluice --help does not print"
done < <(grep -E '^\.It Fl' "$man8" | grep -oE 'Fl -[a-z][a-z0-9-]*' | sed 's/^Fl /-/' | sort -u)
echo "sluice.8: ${#longs[@]} long options, ${#shorts[@]} short options, ${#commands[@]} commands"

# 3. sluice.yaml(5): every key of config_keys[] has an entry, and every entry is a key.
mapfile -t keys < <(sed -nE 's/^    \{"([a-z0-9_.]+)", CFG_.*/\1/p' "$src/src/config.c")
[ "${#keys[@]}" -ge 20 ] || { echo "cannot read config_keys[] from $src/src/config.c"; exit 1; }
text=$(section "$(render "$conf5")" KEYS)
for key in "${keys[@]}"; do
  has_entry "$text" "$key" || fail "sluice.yaml.5 has no entry for key $key"
done
while read -r key; do
  grep -qxF -- "$key" <(printf '%s\n' "${keys[@]}") ||
    fail "sluice.yaml.5 documents $key, which config_keys[] does not have"
done < <(sed -nE 's/^\.It Cm ([a-z0-9_.]+).*/\1/p' "$conf5" | sort -u)
echo "sluice.yaml.5: ${#keys[@]} configuration keys"

# 4. sluice-policy(5): every key of the profile, identify and endpoint tables has an entry
# under TOOL PROFILE, every key of the organisation and request_headers tables one under
# ORGANISATION POLICY, and every entry is a key.
# policy_keys TABLE...: the key names of the named policy_key tables of src/policy.c.
policy_keys() {
  awk -v want="$(IFS='|'; echo "$*")" '
    BEGIN { n = split(want, w, "|"); for (i = 1; i <= n; i++) keep[w[i]] = 1 }
    /^static const struct policy_key [a-z_]+\[\] = \{/ {
      name = $5; sub(/\[\]$/, "", name); on = (name in keep); next
    }
    /^};/ { on = 0 }
    on && match($0, /^    \{"[a-z0-9_]+", PK_/) { split($0, q, "\""); print q[2] }
  ' "$src/src/policy.c"
}
mapfile -t tkeys < <(policy_keys tool_keys identify_keys endpoint_keys)
mapfile -t okeys < <(policy_keys org_keys header_rule_keys)
if [ "${#tkeys[@]}" -lt 10 ] || [ "${#okeys[@]}" -lt 10 ]; then
  echo "cannot read the policy key tables from $src/src/policy.c"
  exit 1
fi
page=$(render "$pol5")
text=$(section "$page" "TOOL PROFILE")
for key in "${tkeys[@]}"; do
  has_entry "$text" "$key" || fail "sluice-policy.5 has no entry for profile key $key"
done
text=$(section "$page" "ORGANISATION POLICY")
for key in "${okeys[@]}"; do
  has_entry "$text" "$key" || fail "sluice-policy.5 has no entry for organisation key $key"
done
while read -r key; do
  grep -qxF -- "$key" <(printf '%s\n' "${tkeys[@]}" "${okeys[@]}") ||
    fail "sluice-policy.5 documents $key, which src/policy.c does not have"
done < <(sed -nE 's/^\.It Cm ([a-z0-9_.]+).*/\1/p' "$pol5" | sort -u)
echo "sluice-policy.5: ${#tkeys[@]} profile keys, ${#okeys[@]} organisation keys"

[ "$failed" -eq 0 ] || exit 1
echo "OK"
